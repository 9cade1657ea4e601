// Targets: the file systems measured side by side, each mounted fresh for
// the run and torn down by its guards (in reverse order of creation: the
// FUSE mount before the tmpfs behind it, and everything before the scratch
// directory).
//
//   tmpfs      a private tmpfs (mount(2)); a directory in /dev/shm if the
//              driver may not mount
//   libfuse    libfuse 3's example passthrough_ll, compiled now from the
//              installed example source, over a private tmpfs,
//              -o cache=never,xattr
//   libfuse-hp libfuse 3's example passthrough_hp (C++), the same way, if
//              the installed examples have its source; Debian's do not, and
//              then it is n/a (nothing is downloaded or substituted)
//   zest       `zest mount -f --fs memfs` over /dev/fuse (zest's defaults)
//   zest-1t    the same with --threads 1
//   zest-spin  the same with --spin-us 50
//   pmfs       `zest mount -f --fs pmfs POOL` on a pool made by `zest mkfs
//              --size 1G POOL` on a private tmpfs (memory, like pmem)
//   zest-uring, pmfs-uring, mirrorfs-uring: the same with --transport=uring
//   direct     pmfs-uring's mount (a pool of its own), but the workload
//              calls libzest-direct attached to it: reads and writes from
//              the mapped pool, the rest through the mount in the library
//   mirrorfs   `zest mount -f --fs mirrorfs SRC` over a private tmpfs SRC,
//              passthrough (its default): the kernel reads and writes the
//              backing files itself
//   ext4       ext4 (mkfs.ext4) on a loop device over a 512 MiB sparse
//              image in the scratch directory, i.e. on the real disk
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/mounts.h"
#include "bench/outcome.h"

namespace zest::bench {

struct TargetOptions {
  std::string libfuse_source;     // passthrough_ll.c
  std::string libfuse_hp_source;  // passthrough_hp.cc
  std::string cc = "cc";
  std::string cxx = "c++";
  std::string libfuse_opts;   // extra -o options
  std::string mirrorfs_opts;  // -o for the mirrorfs targets
  std::string zest_binary;
  int zest_threads = 0;  // 0: zest's default
  std::string zest_opts;
  unsigned zest_spin_us = 50;  // for zest-spin
  std::string pmfs_pool_size = "1G";
  uint64_t ext4_image_mib = 512;
  std::chrono::milliseconds mount_timeout{10000};
};

class Target {
 public:
  std::string id;           // "tmpfs", "libfuse", "zest", ...
  std::string description;  // what exactly was mounted, for the report
  std::string root;         // where the workload runs; empty if unavailable
  std::string unavailable;  // why not, when root is empty
  // Every completed write or create is durable without fsync (pmfs): the
  // persistence suite also measures the calls without fsync on it.
  bool durable_on_return = false;
  // The workload calls libzest-direct attached to root instead of making
  // system calls (bench/file_api.h).
  bool libzest_direct = false;

  // Guards, destroyed bottom-up: server mount, then the ext4 mount, the
  // loop device under it, and the backing store.
  std::optional<ScratchDir> shm_dir;
  std::optional<KernelMount> tmpfs;
  std::optional<LoopDevice> loop;
  std::optional<KernelMount> block;
  std::optional<FuseMount> fuse;
};

// Makes a target. Never fails: a target that cannot be set up comes back
// with `unavailable` saying why, and the run goes on without it.
std::unique_ptr<Target> make_target(const std::string& id,
                                    const TargetOptions& opts,
                                    ScratchDir& scratch);

// True for the ids make_target knows; known_targets() lists them, and
// targets_help() says in a line each what they mount.
bool known_target(const std::string& id);
const char* known_targets();
std::string targets_help();

}  // namespace zest::bench
