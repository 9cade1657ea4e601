// ReaderLock: a reader-writer lock whose readers share no cache line, so
// that threads reading one file through the pool scale with the cores (a
// std::shared_mutex makes every reader write the same word, and the line
// bounces between cores on every 4 KiB read).
//
// Readers count themselves in one of kSlots padded counters (a slot per
// thread, assigned round-robin), then check the writer flag; a writer sets
// the flag and waits until every counter is zero. Writers are rare on the
// data path (a lease or map changing hands); readers never wait for each
// other. Meets the SharedMutex requirements used here (lock, unlock,
// lock_shared, unlock_shared), so std::shared_lock and std::unique_lock
// work with it. Not recursive for writers; a writer must not hold it shared.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

namespace zest::direct {

class ReaderLock {
 public:
  void lock_shared() {
    Slot& s = slots_[my_slot()];
    for (;;) {
      s.n.fetch_add(1, std::memory_order_seq_cst);
      if (!writer_.load(std::memory_order_seq_cst)) return;
      s.n.fetch_sub(1, std::memory_order_release);
      while (writer_.load(std::memory_order_acquire)) std::this_thread::yield();
    }
  }
  void unlock_shared() { slots_[my_slot()].n.fetch_sub(1, std::memory_order_release); }

  void lock() {
    wmu_.lock();
    writer_.store(1, std::memory_order_seq_cst);
    for (Slot& s : slots_)
      while (s.n.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  }
  void unlock() {
    writer_.store(0, std::memory_order_release);
    wmu_.unlock();
  }

 private:
  static constexpr unsigned kSlots = 16;
  struct alignas(64) Slot {
    std::atomic<uint32_t> n{0};
  };
  static unsigned my_slot() {
    static std::atomic<unsigned> next{0};
    thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return mine;
  }

  Slot slots_[kSlots];
  alignas(64) std::atomic<uint32_t> writer_{0};
  std::mutex wmu_;
};

}  // namespace zest::direct
