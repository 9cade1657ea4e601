// The preload shim's table: which kernel fds carry direct state, and the
// zest mounts of this process. Kernel fds stay the program's fds; the
// table only attaches a libzest-direct handle to some of them.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "direct/zest_direct.h"

namespace zest::preload {

// One zest mount (from /proc/self/mountinfo at start), attached lazily.
struct Mount {
  dev_t dev = 0;
  std::string path;
  std::atomic<zest_direct*> d{nullptr};
  std::atomic<bool> tried{false};  // attach attempted (it may have failed)
};

struct FdState {
  zest_direct* d = nullptr;
  int handle = -1;
  int flags = 0;  // as opened (O_APPEND, access mode), kept by F_SETFL
  ino_t ino = 0;
};

inline constexpr int kMaxFds = 65536;  // fds above go straight to libc

// Counters printed at exit with ZEST_PRELOAD_DEBUG=1.
struct Counters {
  std::atomic<uint64_t> direct{0};        // calls served by libzest-direct
  std::atomic<uint64_t> passthrough{0};   // calls on fds without direct state
  std::atomic<uint64_t> adopted{0};       // opens given direct state
  std::atomic<uint64_t> not_zest{0};      // opens outside a zest mount
  std::atomic<uint64_t> no_direct{0};     // opens on a mount without direct access
  std::atomic<uint64_t> append{0};        // O_APPEND writes (kernel path)
  std::atomic<uint64_t> unsupported{0};   // flags the shim does not serve (kernel path)
  std::atomic<uint64_t> errors{0};        // direct calls that failed (errno returned)
};

}  // namespace zest::preload
