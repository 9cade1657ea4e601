// pmfs_fuzz_replay: runs the fsck fuzz entry point without libFuzzer, so any
// compiler can run it (ctest does, briefly).
//   pmfs_fuzz_replay PATH...            each file, or each file in each
//                                       directory, as one input
//   pmfs_fuzz_replay --random N [--seed S] [--save DIR]
//                                       N seeded random patch lists, biased
//                                       towards the image's metadata; a
//                                       failing input is written to DIR
// Exit status 0 when every input gives a plausible answer; a crash or a hang
// is a failure too (run under a timeout).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "pmfs/fsck.h"
#include "pmfs/fuzz/fuzz_common.h"
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

}  // namespace

int main(int argc, char** argv) {
  uint64_t random_runs = 0;
  uint64_t seed = 1;
  std::string save_dir;
  std::vector<fs::path> paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--random" && i + 1 < argc) {
      random_runs = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--save" && i + 1 < argc) {
      save_dir = argv[++i];
    } else if (a.starts_with("--")) {
      fmt::print(stderr,
                 "usage: {} [--random N [--seed S] [--save DIR]] [PATH...]\n",
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

  uint64_t runs = 0, failures = 0, flagged = 0;
  auto one = [&](const std::vector<uint8_t>& input, const std::string& name) {
    ++runs;
    std::string wrong = sample::fsck_one(input);
    if (wrong.empty()) {
      std::vector<std::byte> img(sample::standard_image().image());
      sample::apply_patches(img, input);
      if (fsck_image(img).exit_code() != 0) ++flagged;
      return;
    }
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
  fmt::print("{} inputs in {:.2f} s: {} flagged damage, {} wrong answers\n",
             runs, secs, flagged, failures);
  return failures == 0 ? 0 : 1;
}
