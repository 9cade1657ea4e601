// The pmfs on-media format, version 1: every structure as it lies in the
// pool. docs/format.md describes the same in prose; the two must agree.
//
// All integers are little-endian (x86-64 and arm64 native), all structures
// are naturally aligned at their offsets, and every structure carries a
// CRC32C (Castagnoli, as computed by crc32c() below) over its bytes with the
// checksum field itself taken as zero.
//
// Units: a "block" is 4096 bytes; block numbers are pool offsets / 4096.
// Block 0 is never a valid data/metadata pointer (it holds the primary
// superblock), so 0 means "none" in every pointer field.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zest::pmfs {

inline constexpr uint64_t kBlockSize = 4096;
inline constexpr uint64_t kMagic = 0x3153464d50545a5aull;  // "ZZTPMFS1"
inline constexpr uint32_t kVersion = 1;

// CRC32C of `len` bytes, continuing from `seed` (0 to start).
uint32_t crc32c(const void* data, size_t len, uint32_t seed = 0);

// --- superblock: block 0 (primary) and block 1 (secondary copy) ----------
// Written once by mkfs and never changed afterwards (everything that
// changes lives in journaled structures), so the two copies are identical;
// mount uses the first valid one and rewrites a damaged one.
struct Superblock {
  uint64_t magic;            // kMagic
  uint32_t version;          // kVersion
  uint32_t block_size;       // kBlockSize
  uint8_t uuid[16];          // random at mkfs
  uint64_t pool_size;        // bytes, a multiple of kBlockSize
  uint64_t total_blocks;     // pool_size / kBlockSize
  uint64_t features_compat;     // unknown bits: ignored
  uint64_t features_ro_compat;  // unknown bits: mount read-only only
  uint64_t features_incompat;   // unknown bits: refuse to mount
  uint64_t journal_start;    // first block of the journal
  uint64_t journal_blocks;   // length of the journal in blocks
  uint64_t itable_start;     // first block of the inode table
  uint64_t itable_blocks;    // length of the inode table in blocks
  uint64_t inode_count;      // itable_blocks * kInodesPerBlock
  uint64_t data_start;       // first data block; data runs to total_blocks
  uint64_t mkfs_time_ns;     // CLOCK_REALTIME at mkfs
  uint8_t label[32];         // NUL-padded, may be empty
  uint32_t csum;             // crc32c of this struct with csum = 0
  uint32_t reserved;
};
static_assert(sizeof(Superblock) == 168);

// --- journal: blocks [journal_start, journal_start + journal_blocks) -----
// A physical redo journal holding at most one transaction: its first 64
// bytes are the JournalHeader, records follow from byte 64 on.
//
// Commit protocol (pmfs/journal.cc):
//  0. fence: data and new blocks written by the operation are persistent,
//     and so is the previous transaction's step 2.
//  1. write the records and the header tail (commit = seq, seq, bytes,
//     csum); flush; fence.            <- the operation is durable
//  2. apply every record to its destination (non-temporal); fenced by the
//     next commit's step 0 (or at unmount).
// Recovery replays the records when commit == seq and csum matches; a
// mismatch is a transaction torn while being written (never committed, so
// its operation never returned) and is ignored. Replay is idempotent, and
// no later change is applied before the next transaction overwrites the
// journal, so replaying the last committed transaction again is correct.
struct JournalHeader {
  uint64_t magic;   // kJournalMagic
  uint64_t commit;  // == seq once the transaction is committed
  uint64_t seq;     // transaction number, increasing from 1
  uint64_t bytes;   // bytes of records after the header
  uint32_t csum;    // crc32c over (seq, bytes) and the record bytes
  uint32_t reserved;
  uint64_t reserved2[3];
};
static_assert(sizeof(JournalHeader) == 64);
inline constexpr uint64_t kJournalMagic = 0x4c4e524a53464d50ull;  // "PMFSJRNL"

// One record: `len` bytes to copy to pool offset `dest`, then the bytes,
// padded to a multiple of 8.
struct JournalRecord {
  uint64_t dest;
  uint32_t len;
  uint32_t reserved;
};
static_assert(sizeof(JournalRecord) == 16);

// --- inode table: blocks [itable_start, itable_start + itable_blocks) ----
// Inode number n lives in slot n - 1 (the root is inode 1, slot 0).
inline constexpr uint64_t kInodeSize = 256;
inline constexpr uint64_t kInodesPerBlock = kBlockSize / kInodeSize;
inline constexpr uint64_t kRootIno = 1;
inline constexpr uint32_t kInodeInUse = 1u << 0;
// Regular files: a truncate set `size` and is still removing the extents
// past it in further transactions; mount finishes it (an interrupted one
// would otherwise leave old data that growing the file again would show).
inline constexpr uint32_t kInodeTrimPending = 1u << 1;
inline constexpr size_t kInlineSymlinkMax = 127;  // longer targets use a block

struct DiskInode {
  uint32_t csum;   // crc32c of the 256 bytes with csum = 0
  uint32_t flags;  // kInodeInUse; a free slot is all zero but `generation`
  uint32_t mode;   // type and permission bits, as st_mode
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint32_t rdev;
  uint32_t reserved0;
  uint64_t generation;  // bumped each time the slot is reused
  uint64_t size;        // bytes (regular files, symlinks)
  uint64_t blocks;      // data blocks the file owns (st_blocks = blocks * 8)
  int64_t atime_sec;
  int64_t mtime_sec;
  int64_t ctime_sec;
  uint32_t atime_nsec;
  uint32_t mtime_nsec;
  uint32_t ctime_nsec;
  uint32_t reserved1;
  uint64_t extent_head;  // regular files, long symlinks: first ExtentBlock
  uint64_t dir_head;     // directories: first DirBlock
  uint64_t xattr_block;  // XattrTable block, 0 = no xattrs
  uint64_t parent;       // directories: inode number of ".."
  char inline_data[128];  // symlinks of up to kInlineSymlinkMax bytes
};
static_assert(sizeof(DiskInode) == kInodeSize);

// --- extent blocks: a chain per file -------------------------------------
// Each maps file blocks to pool blocks. Entries are unordered; a valid
// entry never overlaps another of the same file.
inline constexpr uint32_t kExtentBlockMagic = 0x54584550;  // "PEXT"
inline constexpr uint32_t kExtentValid = 1u << 0;
inline constexpr uint32_t kExtentUnwritten = 1u << 1;  // allocated, reads as zeros

struct ExtentBlockHeader {
  uint32_t csum;   // crc32c of this header with csum = 0
  uint32_t magic;  // kExtentBlockMagic
  uint64_t ino;    // owner
  uint64_t next;   // next block of the chain, 0 = last
  uint64_t reserved;
};
static_assert(sizeof(ExtentBlockHeader) == 32);

struct DiskExtent {
  uint64_t file_block;  // first file block mapped
  uint64_t pool_block;  // where it lives
  uint32_t count;       // blocks
  uint32_t flags;       // kExtentValid | kExtentUnwritten; 0 = free slot
  uint32_t csum;        // crc32c of the 32 bytes with csum = 0 (free: 0)
  uint32_t reserved;
};
static_assert(sizeof(DiskExtent) == 32);
inline constexpr size_t kExtentsPerBlock =
    (kBlockSize - sizeof(ExtentBlockHeader)) / sizeof(DiskExtent);  // 127

// --- directory blocks: a chain per directory -----------------------------
// After the header, 63 slots of 64 bytes. An entry occupies `nslots`
// consecutive slots of one block (16-byte DirentHeader + name). A slot whose
// entry header has nslots == 0 is free. "." and ".." are not stored.
// readdir cookie of an entry: 2 + chain_index * kDirSlots + slot.
inline constexpr uint32_t kDirBlockMagic = 0x52494450;  // "PDIR"
inline constexpr size_t kDirSlotSize = 64;
inline constexpr size_t kDirSlots = (kBlockSize / kDirSlotSize) - 1;  // 63

struct DirBlockHeader {
  uint32_t csum;   // crc32c of this header with csum = 0
  uint32_t magic;  // kDirBlockMagic
  uint64_t ino;    // owning directory
  uint64_t next;   // next block of the chain, 0 = last
  uint64_t reserved[5];
};
static_assert(sizeof(DirBlockHeader) == kDirSlotSize);

struct DirentHeader {
  uint32_t csum;     // crc32c of header + name (namelen bytes), csum = 0
  uint8_t nslots;    // slots used, 0 = free
  uint8_t type;      // DT_* of the target
  uint16_t namelen;  // 1..255
  uint64_t ino;
  // char name[namelen] follows (not NUL-terminated)
};
static_assert(sizeof(DirentHeader) == 16);
constexpr size_t dirent_slots(size_t namelen) {
  return (sizeof(DirentHeader) + namelen + kDirSlotSize - 1) / kDirSlotSize;
}

// --- extended attributes --------------------------------------------------
// inode.xattr_block points to the first block of the inode's xattr chain;
// each chain block's header names the next one (0 = the last). A chain
// block is one of:
//  - an XattrTable: 254 entries, each pointing to a record. Before
//    kIncompatXattrSlots this was the only kind, and a chain was exactly one
//    table (its `next` was a reserved field, always zero), so such pools
//    need no conversion. pmfs still reads, replaces and removes table
//    entries but never creates a table.
//  - an XattrSlotBlock (kIncompatXattrSlots): after a 64-byte header, 63
//    slots of 64 bytes packing entries as directory blocks pack dirents. An
//    entry takes xattr_slots(len) consecutive slots of one block: an
//    XattrSlotHeader, then either the name and the value (a small attribute,
//    len = 16 + name + value <= kXattrInlineMax), or, with kXattrSlotRecord,
//    an XattrRecordRef to a record (one slot).
// A record: `nblocks` contiguous blocks holding XattrRecordHeader, the name
// and the value, exactly as many blocks as that takes. Every change
// (create, replace, remove) is one transaction; a new record is written
// (copy-on-write) before the transaction that points to it.
inline constexpr uint32_t kXattrTableMagic = 0x52545850;      // "PXTR"
inline constexpr uint32_t kXattrSlotBlockMagic = 0x42535850;  // "PXSB"
inline constexpr size_t kXattrMaxValue = 65536;

// features_incompat: the pool may hold xattr slot blocks and chains of more
// than one block. Set by mkfs, and in older pools by the first setxattr
// (both superblock copies, before anything uses the new structures).
inline constexpr uint64_t kIncompatXattrSlots = 1ull << 0;
inline constexpr uint64_t kIncompatKnown = kIncompatXattrSlots;

struct XattrTableHeader {
  uint32_t csum;   // crc32c of this header with csum = 0
  uint32_t magic;  // kXattrTableMagic
  uint64_t ino;
  uint64_t next;   // next chain block, 0 = last (always 0 without kIncompatXattrSlots)
  uint64_t reserved;
};
static_assert(sizeof(XattrTableHeader) == 32);

struct XattrEntry {
  uint64_t block;    // first block of the record, 0 = free entry
  uint32_t nblocks;
  uint32_t csum;     // crc32c of the 16 bytes with csum = 0
};
static_assert(sizeof(XattrEntry) == 16);
inline constexpr size_t kXattrsPerTable =
    (kBlockSize - sizeof(XattrTableHeader)) / sizeof(XattrEntry);  // 254

struct XattrRecordHeader {
  uint32_t csum;      // crc32c of header + name + value, csum = 0
  uint16_t namelen;   // 1..255
  uint16_t reserved;
  uint32_t valuelen;  // 0..kXattrMaxValue
  uint32_t reserved2;
  // char name[namelen]; uint8_t value[valuelen];
};
static_assert(sizeof(XattrRecordHeader) == 16);

inline constexpr size_t kXattrSlotSize = 64;
inline constexpr size_t kXattrSlots = kBlockSize / kXattrSlotSize - 1;  // 63
// The largest entry that holds its value (header + name + value): 8 slots.
inline constexpr size_t kXattrInlineMax = 512;
inline constexpr uint8_t kXattrSlotRecord = 1u << 0;  // the value is in a record

struct XattrSlotBlockHeader {
  uint32_t csum;   // crc32c of this header with csum = 0
  uint32_t magic;  // kXattrSlotBlockMagic
  uint64_t ino;    // owner
  uint64_t next;   // next chain block, 0 = last
  uint64_t reserved[5];
};
static_assert(sizeof(XattrSlotBlockHeader) == kXattrSlotSize);

struct XattrSlotHeader {
  uint32_t csum;      // crc32c of the entry's bytes (this header, then the
                      // name and value, or the XattrRecordRef), csum = 0
  uint8_t nslots;     // slots the entry takes, 0 = free slot
  uint8_t flags;      // kXattrSlotRecord
  uint16_t namelen;   // 1..255 (with kXattrSlotRecord: the record's)
  uint32_t valuelen;  // 0..kXattrMaxValue (with kXattrSlotRecord: the record's)
  uint32_t reserved;
  // char name[namelen]; uint8_t value[valuelen];  or  XattrRecordRef
};
static_assert(sizeof(XattrSlotHeader) == 16);

struct XattrRecordRef {
  uint64_t block;  // first block of the record
  uint32_t nblocks;
  uint32_t reserved;
};
static_assert(sizeof(XattrRecordRef) == 16);

constexpr size_t xattr_slots(size_t entry_len) {
  return (entry_len + kXattrSlotSize - 1) / kXattrSlotSize;
}
// Bytes of the entry an attribute takes in a slot block: whole when it fits
// in kXattrInlineMax, else a reference to a record.
constexpr size_t xattr_entry_len(size_t namelen, size_t valuelen) {
  const size_t whole = sizeof(XattrSlotHeader) + namelen + valuelen;
  return whole <= kXattrInlineMax ? whole : sizeof(XattrSlotHeader) + sizeof(XattrRecordRef);
}
// Blocks of the record holding an attribute.
constexpr uint64_t xattr_record_blocks(size_t namelen, size_t valuelen) {
  return (sizeof(XattrRecordHeader) + namelen + valuelen + kBlockSize - 1) / kBlockSize;
}
inline constexpr uint32_t kXattrMaxRecordBlocks =
    static_cast<uint32_t>(xattr_record_blocks(255, kXattrMaxValue));  // 17

// Per-inode limits setxattr enforces (ENOSPC past them, as ext4 and xfs
// answer when an inode's attributes are full); not rules of the format,
// which mount and fsck accept beyond them. The bytes count each name and
// value; at most 65,536 attributes keep the DRAM index (and a listxattr of
// up to 16 MiB) bounded.
inline constexpr size_t kXattrMaxCount = 65536;
inline constexpr uint64_t kXattrMaxBytes = 32ull << 20;

}  // namespace zest::pmfs
