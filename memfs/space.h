// SpaceBudget: the file system's capacity in pages and inodes, charged as
// pages and inodes are created and released as they are freed, so statfs
// can report what is used (tmpfs's size= and nr_inodes= limits).
//
// Lock-free (atomics): charged from many inodes' locks at once. A charge
// never takes the count above the limit.
#pragma once

#include <atomic>
#include <cstdint>

namespace zest::memfs {

class SpaceBudget {
 public:
  SpaceBudget(uint64_t max_pages, uint64_t max_inodes)
      : max_pages_(max_pages), max_inodes_(max_inodes) {}

  bool charge_pages(uint64_t n) { return charge(pages_, max_pages_, n); }
  void release_pages(uint64_t n) { pages_.fetch_sub(n, std::memory_order_relaxed); }
  bool charge_inode() { return charge(inodes_, max_inodes_, 1); }
  void release_inode() { inodes_.fetch_sub(1, std::memory_order_relaxed); }

  uint64_t max_pages() const { return max_pages_; }
  uint64_t max_inodes() const { return max_inodes_; }
  uint64_t used_pages() const { return pages_.load(std::memory_order_relaxed); }
  uint64_t used_inodes() const { return inodes_.load(std::memory_order_relaxed); }

 private:
  static bool charge(std::atomic<uint64_t>& used, uint64_t max, uint64_t n) {
    uint64_t cur = used.load(std::memory_order_relaxed);
    do {
      if (n > max || cur > max - n) return false;
    } while (!used.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    return true;
  }

  const uint64_t max_pages_;
  const uint64_t max_inodes_;
  std::atomic<uint64_t> pages_{0};
  std::atomic<uint64_t> inodes_{0};
};

}  // namespace zest::memfs
