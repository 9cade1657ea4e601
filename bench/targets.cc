#include "bench/targets.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "base/fd.h"

namespace zest::bench {
namespace {

// A fresh tmpfs in the scratch directory, or a /dev/shm directory when the
// driver may not mount (not root).
Outcome<void> make_tmpfs(Target& t, ScratchDir& scratch,
                         const std::string& name, std::string* path,
                         std::string* what) {
  auto dir = scratch.make_dir(name);
  if (!dir) return dir.failure();
  auto m = KernelMount::tmpfs(*dir);
  if (m) {
    t.tmpfs.emplace(std::move(m.value()));
    *path = *dir;
    *what = "private tmpfs (mount(2))";
    return {};
  }
  int err = m.failure().err;
  if (err != EPERM && err != EACCES) return m.failure();
  auto shm = ScratchDir::create("/dev/shm");
  if (!shm) return Failure{m.error() + "; and " + shm.error()};
  *path = shm->path();
  *what = "a directory in /dev/shm (not allowed to mount: " + m.error() + ")";
  t.shm_dir.emplace(std::move(shm.value()));
  return {};
}

Outcome<std::string> build_passthrough_ll(const TargetOptions& opts,
                                          ScratchDir& scratch) {
  if (access(opts.libfuse_source.c_str(), R_OK) != 0) {
    return sys_failure("access", opts.libfuse_source);
  }
  std::string bin = scratch.file("passthrough_ll");
  std::string log = scratch.file("cc.log");
  std::string cmd =
      fmt::format("{} -O2 -o '{}' '{}' $(pkg-config --cflags --libs fuse3)",
                  opts.cc, bin, opts.libfuse_source);
  auto cc = ChildProcess::spawn({"/bin/sh", "-c", cmd}, log);
  if (!cc) return cc.failure();
  if (auto r = cc->wait(); !r) {
    return Failure{fmt::format("compiling {} failed ({}): {}",
                               opts.libfuse_source, r.error(), log_tail(log))};
  }
  return bin;
}

// Starts a FUSE server (argv) that mounts on `mnt`, logging to `log`, and
// makes it the target's; false (with t.unavailable set) if it did not mount.
bool serve(Target& t, const TargetOptions& opts, const std::vector<std::string>& argv,
           const std::string& mnt, const std::string& log) {
  auto fuse = FuseMount::start(argv, mnt, log, opts.mount_timeout);
  if (!fuse) {
    t.unavailable = fuse.error();
    return false;
  }
  t.fuse.emplace(std::move(fuse.value()));
  t.root = mnt;
  return true;
}

void make_libfuse(Target& t, const TargetOptions& opts, ScratchDir& scratch) {
  auto bin = build_passthrough_ll(opts, scratch);
  if (!bin) {
    t.unavailable = bin.error();
    return;
  }
  std::string backing, what;
  if (auto r = make_tmpfs(t, scratch, "libfuse-backing", &backing, &what); !r) {
    t.unavailable = "backing store: " + r.error();
    return;
  }
  auto mnt = scratch.make_dir("libfuse");
  if (!mnt) {
    t.unavailable = mnt.error();
    return;
  }
  // xattr: without it passthrough_ll answers GETXATTR with ENOSYS and the
  // kernel stops sending it (the no-op row would never reach the server).
  // It sends no GETXATTR on reads or writes (checked with -d: O_DIRECT
  // reads and writes are one READ or WRITE each either way).
  std::string o = "cache=never,xattr,source=" + backing;
  if (!opts.libfuse_opts.empty()) o += "," + opts.libfuse_opts;
  std::vector<std::string> argv = {*bin, "-f", "-o", o, *mnt};
  if (!serve(t, opts, argv, *mnt, scratch.file("libfuse.log"))) return;
  t.description =
      fmt::format("libfuse passthrough_ll -f -o {} (backing: {})", o, what);
}

Outcome<void> check_zest_binary(const TargetOptions& opts) {
  if (opts.zest_binary.empty()) {
    return Failure{
        "no zest binary: tools/zest was not part of this build; pass --zest"};
  }
  if (access(opts.zest_binary.c_str(), X_OK) != 0) {
    int err = errno;
    return Failure{fmt::format(
        "zest binary {}: {} (errno {}); build it (cmake --build BUILD "
        "--target zest) or pass --zest PATH",
        opts.zest_binary, std::strerror(err), err)};
  }
  return {};
}

// `zest mount -f --fs FS [extra...] [-o ...] [SOURCE] MNT`; the description
// names SOURCE `source_name` (POOL, SRC).
void start_zest(Target& t, const TargetOptions& opts, ScratchDir& scratch,
                const std::string& fs, const std::vector<std::string>& extra,
                const std::string& source, const std::string& what,
                const char* source_name = "POOL") {
  auto mnt = scratch.make_dir(t.id);
  if (!mnt) {
    t.unavailable = mnt.error();
    return;
  }
  std::vector<std::string> argv = {opts.zest_binary, "mount", "-f", "--fs", fs};
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (!source.empty()) argv.push_back(source);
  argv.push_back(*mnt);
  if (!serve(t, opts, argv, *mnt, scratch.file(t.id + ".log"))) return;
  std::string cmd;
  for (size_t i = 1; i + 1 < argv.size(); ++i) {
    cmd += (argv[i] == source ? std::string(source_name) : argv[i]) + " ";
  }
  t.description = "zest " + cmd + "(" + what + ")";
}

// zest memfs; threads and spin_us 0 leave zest's defaults.
void make_zest(Target& t, const TargetOptions& opts, ScratchDir& scratch,
               int threads, unsigned spin_us, bool uring = false) {
  if (auto r = check_zest_binary(opts); !r) {
    t.unavailable = r.error();
    return;
  }
  std::vector<std::string> extra;
  if (threads > 0) {
    extra.push_back("--threads");
    extra.push_back(std::to_string(threads));
  }
  if (spin_us > 0) {
    extra.push_back("--spin-us");
    extra.push_back(std::to_string(spin_us));
  }
  extra.push_back(uring ? "--transport=uring" : "--transport=dev");
  if (!opts.zest_opts.empty()) {  // memfs options (--zest-opts)
    extra.push_back("-o");
    extra.push_back(opts.zest_opts);
  }
  start_zest(t, opts, scratch, "memfs", extra, "",
             uring ? "memfs over FUSE io_uring" : "memfs over /dev/fuse");
}

// pmfs on a fresh pool file in a private tmpfs. Nothing is faked: if `zest
// mkfs` or `--fs pmfs` does not exist (yet), the target is n/a with zest's
// own message.
void make_pmfs(Target& t, const TargetOptions& opts, ScratchDir& scratch,
               bool uring = false) {
  // Its rows exist (n/a if need be) whether or not it can be set up.
  t.durable_on_return = true;
  if (auto r = check_zest_binary(opts); !r) {
    t.unavailable = r.error();
    return;
  }
  std::string pool_dir, what;
  if (auto r = make_tmpfs(t, scratch, t.id + "-pool", &pool_dir, &what); !r) {
    t.unavailable = "pool store: " + r.error();
    return;
  }
  // On a private tmpfs the pool goes with the mount; in the /dev/shm
  // fallback that directory's guard removes it.
  std::string pool = t.shm_dir ? t.shm_dir->file("pool") : pool_dir + "/pool";
  std::string log = scratch.file(t.id + "-mkfs.log");
  if (auto r = run_program(
          {opts.zest_binary, "mkfs", "--size", opts.pmfs_pool_size, pool}, log);
      !r) {
    t.unavailable =
        "zest mkfs --size " + opts.pmfs_pool_size + " failed: " + r.error();
    return;
  }
  std::vector<std::string> extra;
  extra.push_back(uring ? "--transport=uring" : "--transport=dev");
  start_zest(
      t, opts, scratch, "pmfs", extra, pool,
      std::string(uring ? "pmfs over FUSE io_uring" : "pmfs over /dev/fuse") +
          "; pool: " + opts.pmfs_pool_size + " file on " + what);
}

// pmfs-uring's mount, measured through libzest-direct: the workload
// attaches to it (and checks that reads and writes go to the pool) when it
// is prepared.
void make_direct(Target& t, const TargetOptions& opts, ScratchDir& scratch) {
  make_pmfs(t, opts, scratch, /*uring=*/true);
  t.libzest_direct = true;
  if (!t.unavailable.empty()) return;
  t.description +=
      "; the calls through libzest-direct (zest_direct_attach(MNT, 0)): "
      "reads and writes copy from and to the mapped pool under leases "
      "(writes durable on return, like pmfs's), opens, creates, stat and "
      "unlink go through the mount inside the library";
}

// mirrorfs over a private tmpfs, like passthrough_ll's backing store. With
// no --mirrorfs-opts it runs with its default I/O mode, passthrough: opens
// answer FOPEN_PASSTHROUGH with a backing fd and the kernel reads and writes
// the backing tmpfs file itself, so its 4 KiB rows compare with tmpfs's.
void make_mirrorfs(Target& t, const TargetOptions& opts, ScratchDir& scratch,
                   bool uring) {
  if (auto r = check_zest_binary(opts); !r) {
    t.unavailable = r.error();
    return;
  }
  std::string backing, what;
  if (auto r = make_tmpfs(t, scratch, t.id + "-backing", &backing, &what); !r) {
    t.unavailable = "backing store: " + r.error();
    return;
  }
  std::vector<std::string> extra;
  extra.push_back(uring ? "--transport=uring" : "--transport=dev");
  if (!opts.mirrorfs_opts.empty()) {
    extra.push_back("-o");
    extra.push_back(opts.mirrorfs_opts);
  }
  std::string mode = opts.mirrorfs_opts.empty()
                         ? "passthrough (mirrorfs's default)"
                         : "-o " + opts.mirrorfs_opts;
  start_zest(t, opts, scratch, "mirrorfs", extra, backing,
             fmt::format("mirrorfs over {}, {}; SRC: {}, a separate "
                         "instance of the same kind as the tmpfs target's, "
                         "so \"vs tmpfs\" is mirrorfs against its backing "
                         "file system",
                         uring ? "FUSE io_uring" : "/dev/fuse", mode, what),
             "SRC");
}

// The passthrough* files in the examples directory, for the n/a reason.
std::string list_examples(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (n.rfind("passthrough", 0) == 0) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

// libfuse's passthrough_hp (C++, multi-threaded, inode based like
// passthrough_ll), compiled from the installed examples like passthrough_ll.
// Debian's libfuse3-dev does not ship it; then the target is n/a with that
// reason: it is neither downloaded nor replaced by a copy of our own.
void make_libfuse_hp(Target& t, const TargetOptions& opts,
                     ScratchDir& scratch) {
  const std::string& src = opts.libfuse_hp_source;
  if (access(src.c_str(), R_OK) != 0) {
    std::string dir = std::filesystem::path(src).parent_path().string();
    t.unavailable = fmt::format(
        "passthrough_hp is not shipped by the installed libfuse3-dev: {} "
        "does not exist (the passthrough examples in {}: {}); it is not "
        "downloaded or substituted",
        src, dir, list_examples(dir));
    return;
  }
  std::string bin = scratch.file("passthrough_hp");
  std::string log = scratch.file("cxx.log");
  std::string dir = std::filesystem::path(src).parent_path().string();
  // -I: its cxxopts.hpp sits beside it upstream.
  std::string cmd = fmt::format(
      "{} -std=c++17 -O2 -I'{}' -o '{}' '{}' $(pkg-config --cflags --libs "
      "fuse3) -lpthread",
      opts.cxx, dir, bin, src);
  auto cc = ChildProcess::spawn({"/bin/sh", "-c", cmd}, log);
  if (!cc) {
    t.unavailable = cc.error();
    return;
  }
  if (auto r = cc->wait(); !r) {
    t.unavailable = fmt::format("compiling {} failed ({}): {}", src, r.error(),
                                log_tail(log));
    return;
  }
  std::string backing, what;
  if (auto r = make_tmpfs(t, scratch, "libfuse-hp-backing", &backing, &what);
      !r) {
    t.unavailable = "backing store: " + r.error();
    return;
  }
  auto mnt = scratch.make_dir("libfuse-hp");
  if (!mnt) {
    t.unavailable = mnt.error();
    return;
  }
  // --nocache: entry and attribute timeouts of 0, as cache=never does for
  // passthrough_ll. It stays in the foreground by itself.
  std::vector<std::string> argv = {bin, "--nocache", backing, *mnt};
  if (!serve(t, opts, argv, *mnt, scratch.file("libfuse-hp.log"))) return;
  t.description = fmt::format(
      "libfuse passthrough_hp --nocache SRC (compiled from {}; SRC: {})", src,
      what);
}

// ext4 on a loop device over a sparse image in the scratch directory, which
// is on the real disk (--workdir, /tmp by default): fsync there reaches the
// disk through the loop driver and the host file system.
void make_ext4(Target& t, const TargetOptions& opts, ScratchDir& scratch) {
  std::string mkfs = find_program("mkfs.ext4");
  if (mkfs.empty()) {
    t.unavailable = "mkfs.ext4 not found (e2fsprogs)";
    return;
  }
  std::string image = scratch.file("ext4.img");
  {
    UniqueFd fd(
        open(image.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
    if (!fd) {
      t.unavailable = sys_failure("create", image).message;
      return;
    }
    if (ftruncate(fd.get(), off_t(opts.ext4_image_mib) << 20) != 0) {
      t.unavailable = sys_failure("ftruncate", image).message;
      return;
    }
  }
  if (auto r =
          run_program({mkfs, "-q", "-F", image}, scratch.file("mkfs-ext4.log"));
      !r) {
    t.unavailable = "mkfs.ext4: " + r.error();
    return;
  }
  auto loop = LoopDevice::attach(image, scratch.file("losetup.log"));
  if (!loop) {
    t.unavailable = "loop device unavailable: " + loop.error();
    return;
  }
  t.loop.emplace(std::move(loop.value()));
  auto mnt = scratch.make_dir("ext4");
  if (!mnt) {
    t.unavailable = mnt.error();
    return;
  }
  auto m = KernelMount::mount(t.loop->device(), *mnt, "ext4");
  if (!m) {
    t.unavailable = m.error();
    return;
  }
  t.block.emplace(std::move(m.value()));
  t.root = *mnt;
  t.description = fmt::format(
      "ext4 (mkfs.ext4 -q -F, default mount options) on {} over a {} MiB "
      "sparse image in {}",
      t.loop->device(), opts.ext4_image_mib, scratch.path());
}

}  // namespace

namespace {

struct TargetHelp {
  const char* id;
  const char* help;
};

constexpr TargetHelp kTargets[] = {
    {"tmpfs", "a private tmpfs (mount(2)): the floor"},
    {"libfuse",
     "libfuse 3's passthrough_ll example, compiled from --libfuse-source, "
     "-o cache=never,xattr over a private tmpfs"},
    {"libfuse-hp",
     "libfuse 3's passthrough_hp example (--libfuse-hp-source), --nocache "
     "over a private tmpfs; n/a where the examples lack it (Debian's do)"},
    {"zest", "zest memfs over /dev/fuse, zest's defaults"},
    {"zest-1t", "the same with --threads 1"},
    {"zest-spin", "the same with --spin-us N (--zest-spin-us)"},
    {"zest-uring", "zest memfs over FUSE io_uring (--transport=uring)"},
    {"pmfs", "zest pmfs on a fresh pool on a private tmpfs, /dev/fuse"},
    {"pmfs-uring", "the same over FUSE io_uring"},
    {"direct",
     "pmfs-uring's mount (a pool of its own), the calls through "
     "libzest-direct: reads and writes from the mapped pool under leases, "
     "the rest through the mount; n/a unless the library reads and writes "
     "directly, and rows it cannot express (no-op, statx) are n/a"},
    {"mirrorfs",
     "zest mirrorfs over a private tmpfs, passthrough (its default; "
     "--mirrorfs-opts), /dev/fuse"},
    {"mirrorfs-uring", "the same over FUSE io_uring"},
    {"ext4", "ext4 on a loop device over an image in --workdir"},
};

}  // namespace

bool known_target(const std::string& id) {
  for (const auto& t : kTargets) {
    if (id == t.id) return true;
  }
  return false;
}

const char* known_targets() {
  static const std::string list = [] {
    std::string s;
    for (const auto& t : kTargets)
      s += (s.empty() ? "" : ", ") + std::string(t.id);
    return s;
  }();
  return list.c_str();
}

std::string targets_help() {
  std::string s = "Targets:\n";
  for (const auto& t : kTargets) {
    s += fmt::format("  {:<15} {}\n", t.id, t.help);
  }
  return s;
}

std::unique_ptr<Target> make_target(const std::string& id,
                                    const TargetOptions& opts,
                                    ScratchDir& scratch) {
  auto t = std::make_unique<Target>();
  t->id = id;
  if (id == "tmpfs") {
    std::string what;
    if (auto r = make_tmpfs(*t, scratch, "tmpfs", &t->root, &what); !r) {
      t->unavailable = r.error();
      t->root.clear();
    } else {
      t->description = what;
    }
  } else if (id == "libfuse") {
    make_libfuse(*t, opts, scratch);
  } else if (id == "libfuse-hp") {
    make_libfuse_hp(*t, opts, scratch);
  } else if (id == "zest") {
    make_zest(*t, opts, scratch, opts.zest_threads, 0);
  } else if (id == "zest-1t") {
    make_zest(*t, opts, scratch, 1, 0);
  } else if (id == "zest-spin") {
    make_zest(*t, opts, scratch, opts.zest_threads, opts.zest_spin_us);
  } else if (id == "zest-uring") {
    make_zest(*t, opts, scratch, opts.zest_threads, 0, /*uring=*/true);
  } else if (id == "pmfs") {
    make_pmfs(*t, opts, scratch);
  } else if (id == "pmfs-uring") {
    make_pmfs(*t, opts, scratch, /*uring=*/true);
  } else if (id == "direct") {
    make_direct(*t, opts, scratch);
  } else if (id == "mirrorfs") {
    make_mirrorfs(*t, opts, scratch, /*uring=*/false);
  } else if (id == "mirrorfs-uring") {
    make_mirrorfs(*t, opts, scratch, /*uring=*/true);
  } else if (id == "ext4") {
    make_ext4(*t, opts, scratch);
  } else {
    t->unavailable = "unknown target";
  }
  return t;
}

}  // namespace zest::bench
