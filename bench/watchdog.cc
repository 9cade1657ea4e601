#include "bench/watchdog.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>

#include "base/fd.h"
#include "bench/mounts.h"

namespace zest::bench {

StallWatchdog::StallWatchdog(std::chrono::milliseconds limit)
    : limit_(limit), thread_([this] { loop(); }) {}

StallWatchdog::~StallWatchdog() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void StallWatchdog::watch(const std::string& mountpoint) {
  std::lock_guard lock(mu_);
  mountpoint_ = mountpoint;
  g_progress.fetch_add(1, std::memory_order_relaxed);
}

void StallWatchdog::unwatch() {
  std::lock_guard lock(mu_);
  mountpoint_.clear();
}

void StallWatchdog::loop() {
  using Clock = std::chrono::steady_clock;
  uint64_t last = g_progress.load(std::memory_order_relaxed);
  Clock::time_point since = Clock::now();
  Clock::time_point interrupted_at{};
  std::unique_lock lock(mu_);
  while (!quit_) {
    cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (quit_) break;
    uint64_t now_progress = g_progress.load(std::memory_order_relaxed);
    Clock::time_point now = Clock::now();
    if (now_progress != last || mountpoint_.empty()) {
      last = now_progress;
      since = now;
      continue;
    }
    if (g_interrupted && interrupted_at == Clock::time_point{}) {
      interrupted_at = now;
    }
    bool stalled = now - since >= limit_;
    bool stuck_after_interrupt =
        g_interrupted && now - interrupted_at >= std::chrono::seconds(2);
    if (stalled || stuck_after_interrupt) {
      abort_connection(
          mountpoint_,
          stalled ? fmt::format("no progress for {} ms", limit_.count())
                  : std::string("still blocked 2 s after the interrupt"));
      mountpoint_.clear();  // once per watch
    }
  }
}

void StallWatchdog::abort_connection(const std::string& mountpoint,
                                     const std::string& why) {
  auto dev = mount_device(mountpoint);
  if (!dev) return;
  unsigned major = 0, minor = 0;
  if (std::sscanf(dev->c_str(), "%u:%u", &major, &minor) != 2) return;
  std::string path = fmt::format("/sys/fs/fuse/connections/{}/abort",
                                 uint64_t(makedev(major, minor)));
  g_stalled = 1;
  fmt::print(stderr, "zest-bench: {}: {}; aborting the FUSE connection ({})\n",
             mountpoint, why, path);
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || write(fd.get(), "1", 1) != 1) {
    fmt::print(stderr, "zest-bench: {}: {}\n", path, std::strerror(errno));
  }
}

}  // namespace zest::bench
