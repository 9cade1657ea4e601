#include "memfs/file_data.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace zest::memfs {
namespace {

// Holes in read replies point here. Zero-initialized and never written, so
// it stays in .bss and costs no memory however often it is mapped.
alignas(kPageSize) std::byte g_zeros[1 << 20];

uint64_t page_index(uint64_t pos) { return pos >> kPageShift; }
uint64_t page_round_up(uint64_t pos) {
  return (pos >> kPageShift) + ((pos & (kPageSize - 1)) != 0);
}

}  // namespace

void IovecList::push(const void* base, size_t len) {
  bytes_ += len;
  iovec* last = nullptr;
  if (!heap_.empty()) {
    last = &heap_.back();
  } else if (n_ > 0) {
    last = &inline_[n_ - 1];
  }
  // Runs of holes merge into one iovec over the shared zero area.
  if (last && base == g_zeros && last->iov_base == g_zeros &&
      last->iov_len + len <= sizeof(g_zeros)) {
    last->iov_len += len;
    return;
  }
  iovec v{const_cast<void*>(base), len};
  if (heap_.empty() && n_ < kInline) {
    inline_[n_++] = v;
    return;
  }
  if (heap_.empty()) heap_.assign(inline_.begin(), inline_.begin() + n_);
  heap_.push_back(v);
}

uintptr_t FileData::new_page(int* err, bool zero) {
  if (!budget_->charge_pages(1)) {
    *err = ENOSPC;
    return 0;
  }
  void* p = std::aligned_alloc(kPageSize, kPageSize);
  if (!p) {
    budget_->release_pages(1);
    *err = ENOMEM;
    return 0;
  }
  if (zero) std::memset(p, 0, kPageSize);
  return reinterpret_cast<uintptr_t>(p);
}

void FileData::free_page(uintptr_t v) {
  std::free(page_of(v));
  budget_->release_pages(1);
  --pages_;
}

void FileData::read(uint64_t offset, size_t len, IovecList& out) const {
  if (offset >= size_) return;
  const uint64_t end = offset + std::min<uint64_t>(len, size_ - offset);
  for (uint64_t pos = offset; pos < end;) {
    const size_t in_page = pos & (kPageSize - 1);
    const size_t n = std::min<uint64_t>(kPageSize - in_page, end - pos);
    const uintptr_t v = tree_.get(page_index(pos));
    if (v && is_data(v)) {
      out.push(page_of(v) + in_page, n);
    } else {
      out.push(g_zeros, n);
    }
    pos += n;
  }
}

Status FileData::write_chunk(uint64_t pos, const std::byte* src, size_t n) {
  const uint64_t idx = page_index(pos);
  uintptr_t v = tree_.get(idx);
  if (!v) {
    int err = 0;
    v = new_page(&err, /*zero=*/n != kPageSize);
    if (!v) return Errno(err);
    if (!tree_.set(idx, v)) {
      std::free(page_of(v));
      budget_->release_pages(1);
      return Errno(ENOMEM);
    }
    ++pages_;
  } else if (v & kUnwritten) {
    v &= ~kFlags;
    (void)tree_.set(idx, v);  // present: no allocation, cannot fail
  }
  std::memcpy(page_of(v) + (pos & (kPageSize - 1)), src, n);
  return {};
}

Result<size_t> FileData::write(uint64_t offset, std::span<const std::byte> data) {
  if (data.empty()) return size_t{0};
  if (offset >= kMaxFileSize) return Errno(EFBIG);
  const uint64_t len = std::min<uint64_t>(data.size(), kMaxFileSize - offset);
  uint64_t done = 0;
  while (done < len) {
    const uint64_t pos = offset + done;
    const size_t n =
        std::min<uint64_t>(kPageSize - (pos & (kPageSize - 1)), len - done);
    Status s = write_chunk(pos, data.data() + done, n);
    if (!s) {
      if (done == 0) return s.error();
      break;
    }
    done += n;
  }
  size_ = std::max(size_, offset + done);
  return static_cast<size_t>(done);
}

Status FileData::truncate(uint64_t new_size) {
  if (new_size > kMaxFileSize) return Errno(EFBIG);
  if (new_size < size_) {
    const size_t in_page = new_size & (kPageSize - 1);
    if (in_page) zero_in_page(new_size, kPageSize - in_page);
  }
  if (new_size <= size_) {
    tree_.erase_range(page_round_up(new_size), PageTree::kEnd,
                      [this](uint64_t, uintptr_t v) { free_page(v); });
  }
  size_ = new_size;
  return {};
}

void FileData::zero_in_page(uint64_t pos, size_t n) {
  const uintptr_t v = tree_.get(page_index(pos));
  if (v && is_data(v)) std::memset(page_of(v) + (pos & (kPageSize - 1)), 0, n);
}

Status FileData::allocate_pages(uint64_t first, uint64_t last) {
  // Mark what we add as fresh, so a failure can take back exactly that.
  int err = 0;
  uint64_t i = first;
  for (; i < last; ++i) {
    if (uintptr_t v = tree_.get(i)) {
      // tmpfs (shmem_get_folio, SGP_FALLOC) initializes a page fallocated
      // by an earlier call and marks it uptodate: it becomes data.
      if (v & kUnwritten) (void)tree_.set(i, v & ~kUnwritten);
      continue;
    }
    uintptr_t v = new_page(&err);
    if (!v) break;
    if (!tree_.set(i, v | kUnwritten | kFresh)) {
      std::free(page_of(v));
      budget_->release_pages(1);
      err = ENOMEM;
      break;
    }
    ++pages_;
  }
  if (err) {
    for (uint64_t j = first; j < i; ++j) {
      if (tree_.get(j) & kFresh) {
        tree_.erase_range(j, j + 1, [this](uint64_t, uintptr_t v) { free_page(v); });
      }
    }
    return Errno(err);
  }
  tree_.for_each(first, last, [](uint64_t, uintptr_t& v) { v &= ~kFresh; });
  return {};
}

Status FileData::allocate(uint64_t offset, uint64_t len, bool keep_size) {
  Status s = allocate_pages(page_index(offset), page_round_up(offset + len));
  if (!s) return s;
  if (!keep_size) size_ = std::max(size_, offset + len);
  return {};
}

void FileData::punch_hole(uint64_t offset, uint64_t len) {
  const uint64_t end = offset + len;
  const uint64_t first_full = page_round_up(offset);
  const uint64_t last_full = page_index(end);
  if (first_full > last_full) {  // within one page
    zero_in_page(offset, len);
    return;
  }
  if (offset & (kPageSize - 1)) {
    zero_in_page(offset, kPageSize - (offset & (kPageSize - 1)));
  }
  if (end & (kPageSize - 1)) zero_in_page(end & ~(kPageSize - 1), end & (kPageSize - 1));
  tree_.erase_range(first_full, last_full,
                    [this](uint64_t, uintptr_t v) { free_page(v); });
}

Status FileData::zero_range(uint64_t offset, uint64_t len, bool keep_size) {
  const uint64_t end = offset + len;
  Status s = allocate_pages(page_index(offset), page_round_up(end));
  if (!s) return s;
  const uint64_t first_full = page_round_up(offset);
  const uint64_t last_full = page_index(end);
  if (first_full > last_full) {
    zero_in_page(offset, len);
  } else {
    if (offset & (kPageSize - 1)) {
      zero_in_page(offset, kPageSize - (offset & (kPageSize - 1)));
    }
    if (end & (kPageSize - 1)) zero_in_page(end & ~(kPageSize - 1), end & (kPageSize - 1));
    // Whole pages stay allocated but become unwritten (zeros), like ext4's
    // unwritten extents.
    tree_.for_each(first_full, last_full, [](uint64_t, uintptr_t& v) {
      if (!(v & kUnwritten)) {
        std::memset(page_of(v), 0, kPageSize);
        v |= kUnwritten;
      }
    });
  }
  if (!keep_size) size_ = std::max(size_, end);
  return {};
}

Result<uint64_t> FileData::seek(uint64_t offset, bool data) const {
  if (offset >= size_) return Errno(ENXIO);
  const uint64_t end_page = page_round_up(size_);
  const uint64_t idx =
      tree_.find(page_index(offset), end_page, data, &FileData::is_data);
  if (idx == end_page) {
    if (data) return Errno(ENXIO);
    return size_;  // the implicit hole at the end of the file
  }
  const uint64_t pos = std::max(offset, idx << kPageShift);
  if (data) return pos >= size_ ? Result<uint64_t>(Errno(ENXIO)) : pos;
  return std::min(pos, size_);
}

Result<size_t> FileData::copy_from(const FileData& src, uint64_t off_in,
                                   uint64_t off_out, uint64_t len) {
  if (off_in >= src.size_ || len == 0) return size_t{0};
  len = std::min(len, src.size_ - off_in);
  if (off_out >= kMaxFileSize) return Errno(EFBIG);
  len = std::min(len, kMaxFileSize - off_out);
  uint64_t done = 0;
  while (done < len) {
    const uint64_t in = off_in + done, out = off_out + done;
    const size_t n = std::min<uint64_t>(
        {kPageSize - (in & (kPageSize - 1)), kPageSize - (out & (kPageSize - 1)),
         len - done});
    // Looked up per chunk: writing may grow the tree, never moves pages.
    const uintptr_t v = src.tree_.get(page_index(in));
    const std::byte* from = (v && is_data(v))
                                ? page_of(v) + (in & (kPageSize - 1))
                                : g_zeros;
    Status s = write_chunk(out, from, n);
    if (!s) {
      if (done == 0) return s.error();
      break;
    }
    done += n;
  }
  size_ = std::max(size_, off_out + done);
  return static_cast<size_t>(done);
}

void FileData::clear() {
  tree_.erase_range(0, PageTree::kEnd,
                    [this](uint64_t, uintptr_t v) { free_page(v); });
  size_ = 0;
}

}  // namespace zest::memfs
