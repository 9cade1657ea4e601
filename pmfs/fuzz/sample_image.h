// Small pmfs images built in memory, structure by structure, for fsck's
// tests, the fsck fuzzer and its seed corpus (and later the mount fuzzer).
//
// ImageBuilder starts from a real mkfs (format.h) and then writes inodes,
// extent chains, directory chains, xattrs and journal transactions by hand,
// sealing every checksum, exactly as docs/format.md describes them. It does
// not use the file system's code on purpose: fsck is checked against the
// format document, not against one implementation of it.
//
// --- The fuzz input format (shared by every pmfs fuzz target) --------------
// A fuzz input is a list of patches laid over the standard image
// (standard_image(): 1 MiB, a few directories, files, a symlink, a hard
// link, xattrs and an applied committed journal transaction):
//
//   byte 0          flags; bit 0: after patching, re-seal every checksum
//                   that can be found (reseal()), so the input reaches the
//                   checks behind the checksums; other bits reserved
//   then, repeated until the input ends (at most kMaxPatches):
//     u32 LE        offset into the image, taken modulo the image size
//     u8            length n of the patch (0 is a no-op)
//     n bytes       the bytes to write at offset (cut at the end of the input
//                   and at the end of the image)
//
// An empty input is the unmodified image. The format is deliberately dumb so
// that a corpus stays valid when the checker or the file system changes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "zest/result.h"
#include "pmfs/format.h"
#include "pmfs/layout.h"

namespace zest::pmfs::sample {

inline constexpr size_t kMaxPatches = 256;
inline constexpr uint8_t kPatchReseal = 1u << 0;

class ImageBuilder {
 public:
  // mkfs (through a temporary file) of `size` bytes, read into memory.
  static Result<ImageBuilder> create(uint64_t size, const MkfsOptions& options,
                                     std::string* why);

  std::vector<std::byte>& image() { return image_; }
  const std::vector<std::byte>& image() const { return image_; }
  const Superblock& sb() const { return sb_; }
  // Writes the image as a pool file (refusing an existing file).
  Result<void> save(const std::string& path, std::string* why) const;

  // --- a tree, as the file system would leave it --------------------------
  uint64_t mkdir(uint64_t parent, std::string_view name, uint32_t mode = 0755);
  // A regular file of `nblocks` data blocks (filled with a pattern) mapped by
  // `nextents` extents (nblocks must be a multiple of nextents).
  uint64_t create_file(uint64_t parent, std::string_view name, uint32_t nblocks,
                       uint32_t nextents = 1);
  uint64_t symlink(uint64_t parent, std::string_view name,
                   std::string_view target);
  uint64_t mkfifo(uint64_t parent, std::string_view name);
  // A hard link: a new entry and nlink + 1.
  void link(uint64_t parent, std::string_view name, uint64_t ino);
  // An attribute in an XattrTable (the format before kIncompatXattrSlots;
  // the inode's chain must be empty or that one table).
  void set_xattr(uint64_t ino, std::string_view name, std::string_view value);
  // An attribute in a slot block at the tail of the inode's xattr chain (a
  // new one when the tail is a table or has no room): whole in its entry up
  // to kXattrInlineMax, else in a record the entry refers to. Returns the
  // pool offset of the entry.
  uint64_t add_xattr_slot(uint64_t ino, std::string_view name,
                          std::string_view value);

  // --- the pieces ----------------------------------------------------------
  uint64_t alloc(uint64_t nblocks);  // bump allocator over the data region
  // A new in-use inode with nlink 0 and no content.
  uint64_t new_inode(uint32_t mode);
  DiskInode inode(uint64_t ino) const;
  void put_inode(uint64_t ino, DiskInode d);  // seals
  // Appends an extent to the inode's chain (a new chain block when the last
  // is full) and adds `count` to its blocks.
  uint64_t add_extent(uint64_t ino, uint64_t file_block, uint64_t pool_block,
                      uint32_t count, uint32_t flags = kExtentValid);
  // Adds an entry to a directory (a new block when none has room); returns
  // the pool offset of its DirentHeader. Does not touch link counts.
  uint64_t add_dirent(uint64_t dir, std::string_view name, uint64_t ino,
                      uint8_t type);

  // Where things are, for tests that corrupt them (0 when not found).
  uint64_t dirent_offset(uint64_t dir, std::string_view name) const;
  uint64_t extent_offset(
      uint64_t ino, size_t index) const;  // index-th used slot, chain order
  uint64_t xattr_entry_offset(uint64_t ino, size_t index) const;
  // The slot entry (XattrSlotHeader) named `name` in the inode's chain.
  uint64_t xattr_slot_offset(uint64_t ino, std::string_view name) const;
  // The inode's xattr chain blocks, in chain order.
  std::vector<uint64_t> xattr_chain(uint64_t ino) const;
  uint64_t inode_off(uint64_t ino) const { return inode_offset(sb_, ino); }
  // Blocks holding metadata (superblocks, journal header, used inode-table
  // blocks, chain blocks, xattr tables and records): where mutations matter.
  std::vector<std::pair<uint64_t, uint64_t>> metadata_ranges() const;

  // Writes a committed journal transaction of `records` (pool offset,
  // bytes); with `apply`, also copies them to their destinations (step 3).
  void journal_commit(
      const std::vector<std::pair<uint64_t, std::vector<std::byte>>>& records,
      bool apply);

  void write(uint64_t off, const void* src, size_t len);
  void read(uint64_t off, void* dst, size_t len) const;
  template <class T>
  T get(uint64_t off) const {
    T v;
    read(off, &v, sizeof(v));
    return v;
  }

 private:
  ImageBuilder() = default;
  uint64_t tail(uint64_t head) const;  // last block of a chain

  std::vector<std::byte> image_;
  Superblock sb_{};
  uint64_t next_block_ = 0;
  uint64_t next_ino_ = 2;
  uint64_t journal_seq_ = 0;
  std::vector<uint64_t> metadata_blocks_;
};

// Checksum helpers, written from the format document.
uint32_t dirent_csum(const DirentHeader& h, std::string_view name);
void seal_extent(DiskExtent* e);
void seal_xattr_entry(XattrEntry* e);
// Seals the slot entry of `len` bytes (header included) at `entry`.
void seal_xattr_slot(std::byte* entry, size_t len);

// The image the fuzzers patch: 1 MiB, built once per process.
const ImageBuilder& standard_image();

// Applies a fuzz input (format above) to `image`.
void apply_patches(std::span<std::byte> image, std::span<const uint8_t> input);

// Recomputes every checksum it can locate: both superblocks (if their magic
// is right), in-use inode slots, chain blocks found by magic and their
// entries, xattr records reachable from tables, the journal header. Never
// reads out of bounds, whatever the image holds.
void reseal(std::span<std::byte> image);

}  // namespace zest::pmfs::sample
