#include "pmfs/allocator.h"

#include <sched.h>

#include <algorithm>

namespace zest::pmfs {

uint64_t BlockAllocator::Range::next_free(uint64_t from) const {
  if (from >= hi) return hi;
  uint64_t i = from - lo;
  size_t w = i >> 6;
  uint64_t word = bits[w] & (~uint64_t{0} << (i & 63));
  for (;;) {
    if (word) {
      uint64_t b = lo + (uint64_t(w) << 6) + __builtin_ctzll(word);
      return std::min(b, hi);
    }
    if (++w >= bits.size()) return hi;
    word = bits[w];
  }
}

uint64_t BlockAllocator::Range::take_run(uint64_t b, uint64_t want) {
  uint64_t n = 0;
  while (n < want && b + n < hi && test(b + n)) {
    clear(b + n);
    ++n;
  }
  nfree -= n;
  return n;
}

void BlockAllocator::init(uint64_t first, uint64_t end, const std::vector<uint64_t>& used,
                          unsigned nranges) {
  first_ = first;
  end_ = end;
  const uint64_t total = end - first;
  nranges = std::max<unsigned>(1, std::min<uint64_t>(nranges, std::max<uint64_t>(1, total / 1024)));
  per_range_ = (total + nranges - 1) / nranges;
  ranges_.clear();
  uint64_t nfree = 0;
  for (uint64_t lo = first; lo < end; lo += per_range_) {
    auto r = std::make_unique<Range>();
    r->lo = lo;
    r->hi = std::min(end, lo + per_range_);
    r->cursor = lo;
    r->bits.assign((r->hi - lo + 63) / 64, 0);
    for (uint64_t b = lo; b < r->hi; ++b) {
      const bool in_use = (b >> 6) < used.size() && (used[b >> 6] >> (b & 63) & 1);
      if (!in_use) {
        r->set(b);
        ++r->nfree;
      }
    }
    nfree += r->nfree;
    ranges_.push_back(std::move(r));
  }
  free_.store(nfree);
}

size_t BlockAllocator::range_of(uint64_t block) const {
  return std::min<size_t>((block - first_) / per_range_, ranges_.size() - 1);
}

size_t BlockAllocator::my_range() const {
  const int cpu = sched_getcpu();
  return cpu < 0 ? 0 : size_t(cpu) % ranges_.size();
}

void BlockAllocator::take(Range& r, uint64_t goal, uint64_t* need, size_t base,
                          size_t max_runs, std::vector<BlockRun>* out) {
  std::lock_guard lock(r.mu);
  auto push = [&](uint64_t b, uint64_t n) {
    // Runs that continue the previous one of this call merge.
    if (out->size() > base && out->back().start + out->back().count == b) {
      out->back().count += n;
    } else {
      out->push_back({b, n});
    }
    *need -= n;
  };
  if (goal >= r.lo && goal < r.hi && r.test(goal)) push(goal, r.take_run(goal, *need));
  // First fit from the lowest free block: recently freed blocks (copy-on-
  // write leaves them behind) are reused first, which keeps the pool compact
  // and its pages warm.
  while (*need > 0 && r.nfree > 0) {
    const uint64_t b = r.next_free(r.cursor);
    if (b >= r.hi) return;
    r.cursor = b;  // nothing below b is free
    if (out->size() >= max_runs && !(out->size() > base &&
                                     out->back().start + out->back().count == b)) {
      return;
    }
    push(b, r.take_run(b, *need));
  }
}

Status BlockAllocator::alloc(uint64_t n, uint64_t goal, size_t max_runs,
                             std::vector<BlockRun>* out) {
  if (n == 0) return {};
  uint64_t cur = free_.load(std::memory_order_relaxed);
  do {
    if (cur < n) return Errno(ENOSPC);
  } while (!free_.compare_exchange_weak(cur, cur - n, std::memory_order_relaxed));
  const size_t first_run = out->size();
  uint64_t need = n;
  const bool has_goal = goal >= first_ && goal < end_;
  const size_t start = has_goal ? range_of(goal) : my_range();
  for (size_t k = 0; k < ranges_.size() && need > 0; ++k) {
    Range& r = *ranges_[(start + k) % ranges_.size()];
    take(r, k == 0 && has_goal ? goal : 0, &need, first_run, first_run + max_runs, out);
    if (out->size() - first_run >= max_runs && need > 0) break;
  }
  if (need > 0) {  // too fragmented for max_runs: give everything back
    std::vector<BlockRun> taken(out->begin() + first_run, out->end());
    out->resize(first_run);
    for (const BlockRun& run : taken) free(run.start, run.count);
    free_.fetch_add(need, std::memory_order_relaxed);
    return Errno(ENOSPC);
  }
  return {};
}

Result<uint64_t> BlockAllocator::alloc_contiguous(uint64_t n) {
  if (n == 0) return Errno(EINVAL);
  uint64_t cur = free_.load(std::memory_order_relaxed);
  do {
    if (cur < n) return Errno(ENOSPC);
  } while (!free_.compare_exchange_weak(cur, cur - n, std::memory_order_relaxed));
  const size_t start = my_range();
  for (size_t k = 0; k < ranges_.size(); ++k) {
    Range& r = *ranges_[(start + k) % ranges_.size()];
    std::lock_guard lock(r.mu);
    if (r.nfree < n) continue;
    uint64_t b = r.next_free(r.cursor);
    while (b < r.hi) {
      uint64_t len = 0;
      while (len < n && b + len < r.hi && r.test(b + len)) ++len;
      if (len == n) {
        r.take_run(b, n);
        return b;
      }
      b = r.next_free(b + len);
    }
  }
  free_.fetch_add(n, std::memory_order_relaxed);
  return Errno(ENOSPC);
}

void BlockAllocator::free(uint64_t start, uint64_t n) {
  while (n > 0) {
    Range& r = *ranges_[range_of(start)];
    const uint64_t k = std::min(n, r.hi - start);
    {
      std::lock_guard lock(r.mu);
      for (uint64_t b = start; b < start + k; ++b) r.set(b);
      r.nfree += k;
      r.cursor = std::min(r.cursor, start);
    }
    free_.fetch_add(k, std::memory_order_relaxed);
    start += k;
    n -= k;
  }
}

void InodeAllocator::init(std::vector<uint64_t> free_inos, uint64_t count) {
  std::sort(free_inos.begin(), free_inos.end(), std::greater<>());
  std::lock_guard lock(mu_);
  free_ = std::move(free_inos);
  count_ = count;
}

uint64_t InodeAllocator::take() {
  std::lock_guard lock(mu_);
  if (free_.empty()) return 0;
  uint64_t ino = free_.back();
  free_.pop_back();
  return ino;
}

void InodeAllocator::give_back(uint64_t ino) {
  std::lock_guard lock(mu_);
  free_.push_back(ino);
}

}  // namespace zest::pmfs
