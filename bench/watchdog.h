// StallWatchdog: keeps a hung FUSE server from hanging the driver. A call
// into a FUSE mount waits for the server's answer, and a signal does not
// end that wait unless the server answers the INTERRUPT. While a FUSE
// target is watched, a thread checks that the measuring thread makes
// progress (g_progress); if it does not for `limit` (or for 2 s after ^C),
// it aborts the connection through /sys/fs/fuse/connections/DEV/abort, so
// the stuck call fails with ENOTCONN, the row says why, and the guards can
// unmount and reap the server as usual.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace zest::bench {

class StallWatchdog {
 public:
  explicit StallWatchdog(std::chrono::milliseconds limit);
  ~StallWatchdog();
  StallWatchdog(const StallWatchdog&) = delete;
  StallWatchdog& operator=(const StallWatchdog&) = delete;

  // Starts or stops watching the FUSE mount on `mountpoint`.
  void watch(const std::string& mountpoint);
  void unwatch();

 private:
  void loop();
  void abort_connection(const std::string& mountpoint, const std::string& why);

  std::chrono::milliseconds limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string mountpoint_;  // empty: not watching
  bool quit_ = false;
  std::thread thread_;
};

// Watches for the lifetime of a scope.
class WatchScope {
 public:
  WatchScope(StallWatchdog& w, const std::string& mountpoint) : w_(w) {
    w_.watch(mountpoint);
  }
  ~WatchScope() { w_.unwatch(); }
  WatchScope(const WatchScope&) = delete;
  WatchScope& operator=(const WatchScope&) = delete;

 private:
  StallWatchdog& w_;
};

}  // namespace zest::bench
