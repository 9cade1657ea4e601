// fsck's only way to read (and, repairing, write) the pool; see View.
// Private to pmfs/fsck.cc and pmfs/fsck/.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "pmem/pool.h"
#include "pmfs/layout.h"

namespace zest::pmfs::fsck_internal {

// The bytes fsck reads: the pool or image, plus a private copy-on-write
// overlay of whole blocks (read-only journal replay), plus, when repairing,
// the PoolMap that every repair is written and persisted through.
class View {
 public:
  View(const std::byte* base, uint64_t size, pmem::PoolMap* pool)
      : base_(base), size_(size), pool_(pool) {}

  uint64_t size() const { return size_; }
  bool fits(uint64_t off, uint64_t len) const {
    return off <= size_ && len <= size_ - off;
  }
  bool writable() const { return pool_ != nullptr && !pool_->read_only(); }

  // Copies [off, off + len) out; bytes outside the pool read as zero (callers
  // check bounds first; this is the last line of defence).
  void read(uint64_t off, void* dst, size_t len) const {
    auto* out = static_cast<std::byte*>(dst);
    if (!fits(off, len)) {
      std::memset(out, 0, len);
      if (off >= size_) return;
      len = size_ - off;
    }
    if (overlay_.empty()) {
      std::memcpy(out, base_ + off, len);
      return;
    }
    while (len > 0) {
      uint64_t block = off / kBlockSize;
      uint64_t in = off % kBlockSize;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, kBlockSize - in));
      auto it = overlay_.find(block);
      const std::byte* src =
          it != overlay_.end() ? it->second->data() + in : base_ + off;
      std::memcpy(out, src, n);
      out += n;
      off += n;
      len -= n;
    }
  }
  template <class T>
  T get(uint64_t off) const {
    T v;
    read(off, &v, sizeof(v));
    return v;
  }

  // Stores into the private overlay only (the pool is never touched).
  void write_private(uint64_t off, const void* src, size_t len) {
    if (!fits(off, len)) return;
    auto* in = static_cast<const std::byte*>(src);
    while (len > 0) {
      uint64_t block = off / kBlockSize;
      uint64_t at = off % kBlockSize;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, kBlockSize - at));
      auto& copy = overlay_[block];
      if (!copy) {
        copy = std::make_unique<std::array<std::byte, kBlockSize>>();
        uint64_t start = block * kBlockSize;
        size_t have =
            static_cast<size_t>(std::min<uint64_t>(kBlockSize, size_ - start));
        std::memcpy(copy->data(), base_ + start, have);
      }
      std::memcpy(copy->data() + at, in, n);
      in += n;
      off += n;
      len -= n;
    }
  }

  // Stores into the pool, persistently. Only called when writable().
  void write_pool(uint64_t off, const void* src, size_t len) {
    if (!writable() || !fits(off, len)) return;
    pool_->write(off, src, len);
    pool_->persist(off, len);
  }

 private:
  const std::byte* base_;
  uint64_t size_;
  pmem::PoolMap* pool_;
  std::unordered_map<uint64_t,
                     std::unique_ptr<std::array<std::byte, kBlockSize>>>
      overlay_;
};

}  // namespace zest::pmfs::fsck_internal
