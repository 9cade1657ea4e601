// ReaderGate: how many workers wait in read(2) on /dev/fuse.
//
// All cloned /dev/fuse fds share one request queue, and the kernel wakes
// its readers in FIFO order. With every worker blocked in read(), requests
// at queue depth 1 alternate between workers and so between CPUs; on the
// machines we measure, a cross-CPU wake-up costs more than the whole request
// (see docs/benchmarks.md). So only as many workers read as there is work:
// one reader when idle; a worker that takes a request and sees more queued
// with nobody left reading wakes a parked worker; a worker that finishes
// while another is reading and nothing is queued parks itself. Parked
// workers are woken most-recent-first (their caches are warmest).
//
// Liveness: a worker parks only when another is reading, and a reader that
// sees a backlog with no other reader wakes someone, so a queued request is
// never left without a reader for longer than one request's service time.
#pragma once

#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace zest::server {

class ReaderGate {
 public:
  // Around each blocking read.
  void enter_read() { readers_.fetch_add(1, std::memory_order_acq_rel); }
  void leave_read() { readers_.fetch_sub(1, std::memory_order_acq_rel); }

  // After a request was read from `fd`: if no one else reads and more
  // requests wait, bring a parked worker in.
  void after_receive(int fd) {
    if (readers_.load(std::memory_order_acquire) == 0 && pending(fd)) wake_one();
  }

  // After a request was answered: park if another worker reads and nothing
  // is queued. Returns false when the session is stopping.
  bool before_next_read(int fd) {
    if (readers_.load(std::memory_order_acquire) == 0 || pending(fd))
      return !stopping();
    return park();
  }

  // Parks until woken; false when stopping.
  bool park() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return permits_ > 0 || stopping_; });
    if (stopping_) return false;
    --permits_;
    return true;
  }

  void wake_one() {
    {
      std::lock_guard lock(mu_);
      ++permits_;
    }
    cv_.notify_one();
  }

  // The connection is gone: every parked worker goes back to read() and
  // sees ENODEV (or just exits).
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }
  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

 private:
  static bool pending(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
  }

  std::atomic<int> readers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  int permits_ = 0;
  bool stopping_ = false;
};

}  // namespace zest::server
