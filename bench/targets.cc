#include "bench/targets.h"

#include <unistd.h>

#include <utility>

namespace zest::bench {
namespace {

// A fresh tmpfs in the scratch directory, or a /dev/shm directory when the
// driver may not mount (not root).
Outcome<void> make_tmpfs(Target& t, ScratchDir& scratch,
                         const std::string& name, std::string* path,
                         std::string* what) {
  auto dir = scratch.make_dir(name);
  if (!dir) return dir.failure();
  auto m = TmpfsMount::mount(*dir);
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

void make_zest(Target& t, const TargetOptions& opts, ScratchDir& scratch) {
  if (opts.zest_binary.empty()) {
    t.unavailable =
        "no zest binary: tools/zest was not part of this build; pass --zest";
    return;
  }
  if (access(opts.zest_binary.c_str(), X_OK) != 0) {
    int err = errno;
    t.unavailable = fmt::format(
        "zest binary {}: {} (errno {}); build it (cmake --build BUILD "
        "--target zest) or pass --zest PATH",
        opts.zest_binary, std::strerror(err), err);
    return;
  }
  auto mnt = scratch.make_dir("zest");
  if (!mnt) {
    t.unavailable = mnt.error();
    return;
  }
  std::vector<std::string> argv = {opts.zest_binary, "mount", "-f", "--fs",
                                   "memfs"};
  if (opts.zest_threads > 0) {
    argv.push_back("--threads");
    argv.push_back(std::to_string(opts.zest_threads));
  }
  if (!opts.zest_opts.empty()) {
    argv.push_back("-o");
    argv.push_back(opts.zest_opts);
  }
  argv.push_back(*mnt);
  auto fuse = FuseMount::start(argv, *mnt, scratch.file("zest.log"),
                               opts.mount_timeout);
  if (!fuse) {
    t.unavailable = fuse.error();
    return;
  }
  t.fuse.emplace(std::move(fuse.value()));
  t.root = *mnt;
  std::string cmd;
  for (size_t i = 1; i + 1 < argv.size(); ++i) cmd += argv[i] + " ";
  t.description = "zest " + cmd + "(memfs over /dev/fuse)";
}

}  // namespace

bool known_target(const std::string& id) {
  return id == "tmpfs" || id == "libfuse" || id == "zest";
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
    make_zest(*t, opts, scratch);
  } else {
    t->unavailable = "unknown target";
  }
  return t;
}

}  // namespace zest::bench
