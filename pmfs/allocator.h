// Free space and free inodes, in DRAM only (docs/format.md, "Free space"):
// rebuilt at every mount from what the metadata references.
//
// BlockAllocator: the data region is split into one range per CPU; each
// range has its own bitmap (1 = free), lowest-free hint and mutex (first
// fit: freed blocks are reused first), so threads on
// different CPUs allocate without contention. A request starts in the range
// of the calling CPU (or the one holding `goal`, to extend a file
// contiguously) and steals from the others when that range runs dry.
// Invariant: free_blocks() == the number of set bits over all ranges.
// Thread-safe. alloc/free allocate no memory.
//
// InodeAllocator: the free inode slots as a stack. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "zest/result.h"
#include "pmfs/journal.h"

namespace zest::pmfs {

class BlockAllocator {
 public:
  // Data blocks [first, end); `used` is a bitmap over all pool blocks
  // (bit b set = block b in use).
  void init(uint64_t first, uint64_t end, const std::vector<uint64_t>& used, unsigned ranges);

  // Allocates `n` blocks as at most `max_runs` runs, appended to *out.
  // Starts at `goal` when it is free (0: no goal). ENOSPC (nothing taken)
  // when there are not enough free blocks or runs.
  Status alloc(uint64_t n, uint64_t goal, size_t max_runs, std::vector<BlockRun>* out);
  // `n` contiguous blocks; ENOSPC when no free run is long enough.
  Result<uint64_t> alloc_contiguous(uint64_t n);
  // Gives back [start, start + n) (may span ranges).
  void free(uint64_t start, uint64_t n);
  void free(const std::vector<BlockRun>& runs) {
    for (const BlockRun& r : runs) free(r.start, r.count);
  }

  uint64_t free_blocks() const { return free_.load(std::memory_order_relaxed); }
  uint64_t total_blocks() const { return end_ - first_; }

 private:
  struct Range {
    std::mutex mu;
    uint64_t lo = 0, hi = 0;   // blocks [lo, hi)
    uint64_t cursor = 0;       // no free block lies below it
    uint64_t nfree = 0;
    std::vector<uint64_t> bits;  // bit (b - lo) set = free
    bool test(uint64_t b) const { return bits[(b - lo) >> 6] >> ((b - lo) & 63) & 1; }
    void set(uint64_t b) { bits[(b - lo) >> 6] |= uint64_t{1} << ((b - lo) & 63); }
    void clear(uint64_t b) { bits[(b - lo) >> 6] &= ~(uint64_t{1} << ((b - lo) & 63)); }
    // First free block at or after `from` (< hi), or hi.
    uint64_t next_free(uint64_t from) const;
    // Takes up to `want` free blocks starting exactly at `b` (which is free).
    uint64_t take_run(uint64_t b, uint64_t want);
  };
  size_t range_of(uint64_t block) const;
  size_t my_range() const;
  // Takes runs from `r` until `*need` is 0 or runs run out.
  // Runs of this call start at out[base]; at most max_runs entries in out.
  void take(Range& r, uint64_t goal, uint64_t* need, size_t base, size_t max_runs,
            std::vector<BlockRun>* out);

  uint64_t first_ = 0, end_ = 0, per_range_ = 1;
  std::vector<std::unique_ptr<Range>> ranges_;
  std::atomic<uint64_t> free_{0};
};

class InodeAllocator {
 public:
  // `free_slots`: inode numbers that are free, any order.
  void init(std::vector<uint64_t> free_inos, uint64_t count);
  // 0 when none is left.
  uint64_t take();
  void give_back(uint64_t ino);
  uint64_t free_count() const {
    std::lock_guard lock(mu_);
    return free_.size();
  }
  uint64_t count() const { return count_; }

 private:
  mutable std::mutex mu_;
  std::vector<uint64_t> free_;  // a stack; lowest numbers on top
  uint64_t count_ = 0;
};

}  // namespace zest::pmfs
