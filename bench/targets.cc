#include "bench/targets.h"

#include <fcntl.h>
#include <unistd.h>

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
  std::string o = "cache=never,source=" + backing;
  if (!opts.libfuse_opts.empty()) o += "," + opts.libfuse_opts;
  std::vector<std::string> argv = {*bin, "-f", "-o", o, *mnt};
  auto fuse = FuseMount::start(argv, *mnt, scratch.file("libfuse.log"),
                               opts.mount_timeout);
  if (!fuse) {
    t.unavailable = fuse.error();
    return;
  }
  t.fuse.emplace(std::move(fuse.value()));
  t.root = *mnt;
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

// `zest mount -f --fs FS [extra...] [-o ...] [SOURCE] MNT`.
void start_zest(Target& t, const TargetOptions& opts, ScratchDir& scratch,
                const std::string& fs, const std::vector<std::string>& extra,
                const std::string& source, const std::string& what) {
  auto mnt = scratch.make_dir(t.id);
  if (!mnt) {
    t.unavailable = mnt.error();
    return;
  }
  std::vector<std::string> argv = {opts.zest_binary, "mount", "-f", "--fs", fs};
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (!source.empty()) argv.push_back(source);
  argv.push_back(*mnt);
  auto fuse = FuseMount::start(argv, *mnt, scratch.file(t.id + ".log"),
                               opts.mount_timeout);
  if (!fuse) {
    t.unavailable = fuse.error();
    return;
  }
  t.fuse.emplace(std::move(fuse.value()));
  t.root = *mnt;
  std::string cmd;
  for (size_t i = 1; i + 1 < argv.size(); ++i) {
    cmd += (argv[i] == source ? std::string("POOL") : argv[i]) + " ";
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
  if (uring) extra.push_back("--transport=uring");
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
  if (auto r = make_tmpfs(t, scratch, uring ? "pmfs-uring-pool" : "pmfs-pool", &pool_dir,
                          &what);
      !r) {
    t.unavailable = "pool store: " + r.error();
    return;
  }
  // On a private tmpfs the pool goes with the mount; in the /dev/shm
  // fallback that directory's guard removes it.
  std::string pool = t.shm_dir ? t.shm_dir->file("pool") : pool_dir + "/pool";
  std::string log = scratch.file("pmfs-mkfs.log");
  if (auto r = run_program(
          {opts.zest_binary, "mkfs", "--size", opts.pmfs_pool_size, pool}, log);
      !r) {
    t.unavailable =
        "zest mkfs --size " + opts.pmfs_pool_size + " failed: " + r.error();
    return;
  }
  std::vector<std::string> extra;
  if (uring) extra.push_back("--transport=uring");
  start_zest(t, opts, scratch, "pmfs", extra, pool,
             std::string(uring ? "pmfs over FUSE io_uring" : "pmfs over /dev/fuse") +
                 "; pool: " + opts.pmfs_pool_size + " file on " + what);
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

bool known_target(const std::string& id) {
  return id == "tmpfs" || id == "libfuse" || id == "zest" || id == "zest-1t" ||
         id == "zest-spin" || id == "zest-uring" || id == "pmfs" ||
         id == "pmfs-uring" || id == "ext4";
}

const char* known_targets() {
  return "tmpfs, libfuse, zest, zest-1t, zest-spin, zest-uring, pmfs, pmfs-uring, ext4";
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
  } else if (id == "ext4") {
    make_ext4(*t, opts, scratch);
  } else {
    t->unavailable = "unknown target";
  }
  return t;
}

}  // namespace zest::bench
