// FileData: the contents of one regular file, a sparse array of 4 KiB pages
// as tmpfs keeps them, so that st_blocks (allocated pages * 8) and
// SEEK_DATA/SEEK_HOLE answer exactly as tmpfs does.
//
// A page is either absent (a hole, reads as zeros), allocated but unwritten
// (by fallocate or ZERO_RANGE: counted in st_blocks, reads as zeros, a hole
// to SEEK_DATA, as tmpfs's !uptodate fallocated pages), or written (data).
// Writing zeros still allocates, as on tmpfs. As in tmpfs, a later fallocate
// over an unwritten page turns it into data (shmem initializes a folio that
// an earlier fallocate left !uptodate).
//
// Invariants:
// - every byte at or past size() in any page is zero, and unwritten pages
//   are all zeros; so growing the size never needs to clear anything;
// - allocated_pages() == the number of pages in the tree == what this file
//   has charged to the SpaceBudget;
// - size() <= kMaxFileSize (tmpfs's s_maxbytes, MAX_LFS_FILESIZE).
//
// Not thread-safe: the owning inode's lock protects it (shared for the const
// methods, exclusive for the others).
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "zest/result.h"
#include "memfs/page_tree.h"
#include "memfs/space.h"

namespace zest::memfs {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr unsigned kPageShift = 12;
inline constexpr uint64_t kMaxFileSize = INT64_MAX;

// An iovec array for one read reply. Reads up to 1 MiB fit the inline array,
// so the read path allocates nothing; larger ones spill to the heap.
class IovecList {
 public:
  static constexpr size_t kInline = 260;
  void push(const void* base, size_t len);
  std::span<const iovec> span() const {
    return heap_.empty() ? std::span<const iovec>(inline_.data(), n_)
                         : std::span<const iovec>(heap_);
  }
  size_t bytes() const { return bytes_; }

 private:
  std::array<iovec, kInline> inline_;
  size_t n_ = 0;
  std::vector<iovec> heap_;
  size_t bytes_ = 0;
};

class FileData {
 public:
  explicit FileData(SpaceBudget* budget) : budget_(budget) {}
  FileData(const FileData&) = delete;
  FileData& operator=(const FileData&) = delete;
  ~FileData() { clear(); }

  uint64_t size() const { return size_; }
  uint64_t allocated_pages() const { return pages_; }

  // Appends to `out` iovecs for [offset, offset+len) clipped at size():
  // pointers straight into the pages, holes pointing at a shared zero area.
  // Valid while the inode stays locked.
  void read(uint64_t offset, size_t len, IovecList& out) const;

  // Writes `data` at `offset`, extending the size. A partial write (space ran
  // out midway) returns the bytes written; nothing written: ENOSPC/EFBIG.
  Result<size_t> write(uint64_t offset, std::span<const std::byte> data);

  // Sets the size; pages past the new end are freed (also when the size does
  // not change: tmpfs drops pages fallocated past EOF on any truncate).
  Status truncate(uint64_t new_size);

  // fallocate(2) modes. Ranges are checked by the caller (EFBIG/EINVAL).
  Status allocate(uint64_t offset, uint64_t len, bool keep_size);
  void punch_hole(uint64_t offset, uint64_t len);
  Status zero_range(uint64_t offset, uint64_t len, bool keep_size);

  // SEEK_DATA / SEEK_HOLE at page granularity; ENXIO at or past the end.
  Result<uint64_t> seek(uint64_t offset, bool data) const;

  // Copies [off_in, off_in+len) of `src` (clipped at its size) to `off_out`
  // here. `src` may be this file when the ranges do not overlap. Holes in the
  // source are written as zeros (allocating), as the kernel's splice copy
  // does on tmpfs.
  Result<size_t> copy_from(const FileData& src, uint64_t off_in,
                           uint64_t off_out, uint64_t len);

  // Frees every page (the inode is gone); size becomes 0.
  void clear();

 private:
  // Low bits of a tree value: the page address is 4 KiB aligned.
  static constexpr uintptr_t kUnwritten = 1;  // allocated, reads as zeros
  static constexpr uintptr_t kFresh = 2;      // allocated by this fallocate
  static constexpr uintptr_t kFlags = kUnwritten | kFresh;
  static std::byte* page_of(uintptr_t v) {
    return reinterpret_cast<std::byte*>(v & ~kFlags);
  }
  static bool is_data(uintptr_t v) { return !(v & kUnwritten); }

  // Allocates one page, charged to the budget, zeroed unless the caller is
  // about to fill all of it. 0 on ENOSPC/ENOMEM.
  uintptr_t new_page(int* err, bool zero = true);
  void free_page(uintptr_t v);
  // Copies n bytes (within one page) to offset `pos`; allocates the page.
  Status write_chunk(uint64_t pos, const std::byte* src, size_t n);
  // Allocates every absent page of [first, last) as unwritten; all or none.
  Status allocate_pages(uint64_t first, uint64_t last);
  // Zeroes [pos, pos+n) within one page, if the page is present.
  void zero_in_page(uint64_t pos, size_t n);

  SpaceBudget* budget_;
  PageTree tree_;
  uint64_t size_ = 0;
  uint64_t pages_ = 0;
};

}  // namespace zest::memfs
