// Targets: the file systems measured side by side, each mounted fresh for
// the run and torn down by its guards (in reverse order of creation: the
// FUSE mount before the tmpfs behind it, and everything before the scratch
// directory).
//
//   tmpfs    a private tmpfs (mount(2)); a directory in /dev/shm if the
//            driver may not mount
//   libfuse  libfuse 3's example passthrough_ll, compiled now from the
//            installed example source, over a private tmpfs, -o cache=never
//   zest     `zest mount -f --fs memfs` over /dev/fuse
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
  std::string libfuse_source;  // passthrough_ll.c
  std::string cc = "cc";
  std::string libfuse_opts;  // extra -o options
  std::string zest_binary;
  int zest_threads = 0;  // 0: zest's default
  std::string zest_opts;
  std::chrono::milliseconds mount_timeout{10000};
};

class Target {
 public:
  std::string id;           // "tmpfs", "libfuse", "zest"
  std::string description;  // what exactly was mounted, for the report
  std::string root;         // where the workload runs; empty if unavailable
  std::string unavailable;  // why not, when root is empty

  // Guards, destroyed bottom-up: server mount, then backing store.
  std::optional<ScratchDir> shm_dir;
  std::optional<TmpfsMount> tmpfs;
  std::optional<FuseMount> fuse;
};

// Makes a target. Never fails: a target that cannot be set up comes back
// with `unavailable` saying why, and the run goes on without it.
std::unique_ptr<Target> make_target(const std::string& id,
                                    const TargetOptions& opts,
                                    ScratchDir& scratch);

// True for the ids make_target knows.
bool known_target(const std::string& id);

}  // namespace zest::bench
