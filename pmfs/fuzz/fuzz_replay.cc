// pmfs_fuzz_replay: runs the fsck, mount or repair fuzz entry point without
// libFuzzer, so any compiler can run it (ctest does, briefly).
//   pmfs_fuzz_replay [--target fsck|mount|repair] PATH...
//                                       each file, or each file in each
//                                       directory, as one input
//   pmfs_fuzz_replay [--target fsck|mount|repair] --random N [--seed S]
//                    [--save DIR]
//                                       N seeded random patch lists, biased
//                                       towards the image's metadata; a
//                                       failing input is written to DIR
// --target fsck (the default) runs fsck_one (fuzz_common.h); --target mount
// runs mount_one (mount_walk.h): pmfs::open and a walk of the FileSystem API;
// --target repair runs repair_one (mount_walk.h): fsck --repair until it
// repairs nothing more, then a clean read-only fsck, pmfs::open and the walk.
// Exit status 0 when every input gives a plausible answer. A crash or a hang
// (one input running past --hang-s seconds, default 20) is a failure too: a
// watchdog names the input and, with --save, writes it to DIR/crash-current
// before the process dies.
#include <fmt/format.h>

#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <fcntl.h>
#include <unistd.h>
#include <string>
#include <vector>

#include "pmfs/fsck.h"
#include "base/log.h"
#include "pmfs/fuzz/fuzz_common.h"
#include "pmfs/fuzz/mount_walk.h"
#include "pmfs/fuzz/sample_image.h"

namespace fs = std::filesystem;
using namespace zest::pmfs;

namespace {

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void put_u32(std::vector<uint8_t>* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(uint8_t(v >> (8 * i)));
}

// One random patch list. Offsets land in metadata 85% of the time; bytes
// are bit flips of what is there, small integers, block numbers or noise.
std::vector<uint8_t> random_input(std::mt19937_64& rng) {
  const auto& img = sample::standard_image();
  const auto ranges = img.metadata_ranges();
  const auto& bytes = img.image();
  std::vector<uint8_t> in;
  in.push_back(rng() % 2 ? sample::kPatchReseal : 0);
  int patches = 1 + int(rng() % 4);
  for (int p = 0; p < patches; ++p) {
    uint64_t off;
    if (rng() % 100 < 85) {
      const auto& [start, len] = ranges[rng() % ranges.size()];
      off = start + rng() % len;
    } else {
      off = rng() % bytes.size();
    }
    uint8_t len = uint8_t(1 + rng() % 8);
    put_u32(&in, uint32_t(off));
    in.push_back(len);
    int kind = int(rng() % 4);
    for (uint8_t i = 0; i < len; ++i) {
      uint64_t at = (off + i) % bytes.size();
      uint8_t cur = uint8_t(bytes[at]);
      switch (kind) {
        case 0:
          in.push_back(uint8_t(cur ^ (1u << (rng() % 8))));
          break;
        case 1:
          in.push_back(i == 0 ? uint8_t(rng() % 4) : 0);
          break;
        case 2: {
          uint64_t block =
              img.sb().data_start + rng() % 200;  // near real blocks
          in.push_back(i < 8 ? uint8_t(block >> (8 * i)) : 0);
          break;
        }
        default:
          in.push_back(uint8_t(rng()));
          break;
      }
    }
  }
  return in;
}

// The input being run, for the watchdog and crash handler (async-signal
// safe: plain arrays, written before each run).
char g_crash_path[4096];
char g_name[512];
std::vector<uint8_t> g_current;

void on_fatal(int sig) {
  const char* what = sig == SIGALRM ? "hang (watchdog)" : "fatal signal";
  char msg[1024];
  int n = std::snprintf(msg, sizeof msg, "pmfs_fuzz_replay: %s %d on input %s\n",
                        what, sig, g_name);
  if (n > 0) (void)!::write(2, msg, size_t(n));
  if (g_crash_path[0]) {
    int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      (void)!::write(fd, g_current.data(), g_current.size());
      ::close(fd);
    }
  }
  std::signal(sig, SIG_DFL);
  if (sig == SIGALRM) sig = SIGABRT;
  std::raise(sig);
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t random_runs = 0;
  uint64_t seed = 1;
  std::string save_dir;
  std::string target = "fsck";
  unsigned hang_s = 20;
  std::vector<fs::path> paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--random" && i + 1 < argc) {
      random_runs = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--save" && i + 1 < argc) {
      save_dir = argv[++i];
    } else if (a == "--target" && i + 1 < argc &&
               (std::string(argv[i + 1]) == "fsck" ||
                std::string(argv[i + 1]) == "mount" ||
                std::string(argv[i + 1]) == "repair")) {
      target = argv[++i];
    } else if (a == "--hang-s" && i + 1 < argc) {
      hang_s = unsigned(std::strtoul(argv[++i], nullptr, 10));
    } else if (a.starts_with("--")) {
      fmt::print(stderr,
                 "usage: {} [--target fsck|mount|repair] [--hang-s S] "
                 "[--random N [--seed S] [--save DIR]] [PATH...]\n",
                 argv[0]);
      return 2;
    } else {
      paths.emplace_back(a);
    }
  }

  // The unmodified image must be clean, or every other verdict is noise.
  auto clean = fsck_image(sample::standard_image().image());
  if (clean.exit_code() != 0) {
    fmt::print(stderr, "standard image is not clean:\n");
    for (const auto& e : clean.errors) fmt::print(stderr, "  {}\n", e);
    return 1;
  }

  const bool mount = target == "mount";
  const bool repair = target == "repair";
  // Superblock rewrites at mount warn.
  if (mount || repair) zest::set_log_level(zest::LogLevel::Error);
  if (!save_dir.empty()) {
    std::snprintf(g_crash_path, sizeof g_crash_path, "%s/crash-current",
                  save_dir.c_str());
  }
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM})
    std::signal(sig, on_fatal);
  g_current.reserve(1 << 16);

  uint64_t runs = 0, failures = 0, flagged = 0;
  uint64_t opened = 0, refused_clean = 0, operations = 0;
  uint64_t repairs = 0, skipped = 0;
  auto one = [&](const std::vector<uint8_t>& input, const std::string& name) {
    ++runs;
    g_current.assign(input.begin(), input.end());
    std::snprintf(g_name, sizeof g_name, "%s", name.c_str());
    ::alarm(hang_s);
    std::string wrong;
    if (repair) {
      sample::RepairStats st;
      wrong = sample::repair_one(input, &st);
      flagged += st.damaged;
      skipped += st.skipped;
      repairs += st.repairs;
      operations += st.operations;
    } else if (mount) {
      sample::MountWalkStats st;
      wrong = sample::mount_one(input, &st);
      opened += st.opened;
      operations += st.operations;
      if (st.refused_clean) {
        ++refused_clean;
        fmt::print(stderr, "{}: note: mount refuses a pool fsck calls clean: {}\n",
                   name, st.refusal);
        if (!save_dir.empty()) {
          std::ofstream out(fs::path(save_dir) / fmt::format("refused-clean-{}", runs),
                            std::ios::binary);
          out.write(reinterpret_cast<const char*>(input.data()),
                    std::streamsize(input.size()));
        }
      }
      if (wrong.empty() && !st.fsck_clean) ++flagged;
    } else {
      wrong = sample::fsck_one(input);
      if (wrong.empty()) {
        std::vector<std::byte> img(sample::standard_image().image());
        sample::apply_patches(img, input);
        if (fsck_image(img).exit_code() != 0) ++flagged;
      }
    }
    ::alarm(0);
    if (wrong.empty()) return;
    ++failures;
    fmt::print(stderr, "{}: {}\n", name, wrong);
    if (!save_dir.empty()) {
      std::ofstream out(fs::path(save_dir) / fmt::format("failure-{}", runs),
                        std::ios::binary);
      out.write(reinterpret_cast<const char*>(input.data()),
                std::streamsize(input.size()));
    }
  };

  auto t0 = std::chrono::steady_clock::now();
  for (const auto& p : paths) {
    if (fs::is_directory(p)) {
      for (const auto& e : fs::directory_iterator(p)) {
        if (e.is_regular_file()) one(read_file(e.path()), e.path().string());
      }
    } else {
      one(read_file(p), p.string());
    }
  }
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0; i < random_runs; ++i)
    one(random_input(rng), fmt::format("random #{}", i));
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  if (repair) {
    fmt::print(
        "repair: {} inputs in {:.2f} s: {} flagged damage by fsck, {} repairs, "
        "{} not repairable by design, {} walk operations, {} wrong answers\n",
        runs, secs, flagged, repairs, skipped, operations, failures);
  } else if (mount) {
    fmt::print(
        "mount: {} inputs in {:.2f} s: {} flagged damage by fsck, {} opened "
        "({} operations), {} clean pools refused, {} wrong answers\n",
        runs, secs, flagged, opened, operations, refused_clean, failures);
  } else {
    fmt::print("{} inputs in {:.2f} s: {} flagged damage, {} wrong answers\n",
               runs, secs, flagged, failures);
  }
  return failures == 0 ? 0 : 1;
}
