// Creating a pmfs (mkfs) and validating a superblock: shared by the file
// system, fsck and the tools, so there is one reading of the geometry.
#pragma once

#include <cstdint>
#include <string>

#include "zest/result.h"
#include "pmem/pool.h"
#include "pmfs/layout.h"

namespace zest::pmfs {

struct MkfsOptions {
  uint64_t journal_blocks = 256;  // 1 MiB
  uint64_t bytes_per_inode = 16384;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  uint32_t root_mode = 0755;
  std::string label;
};

// The smallest pool mkfs accepts.
inline constexpr uint64_t kMinPoolSize = 1u << 20;

// Computes the geometry for a pool of `pool_size` bytes. EINVAL (with *why)
// when it is too small or not a multiple of the block size.
Result<Superblock> plan(uint64_t pool_size, const MkfsOptions& opts, std::string* why);

// Writes a fresh file system into an open, writable pool: both
// superblocks, an empty journal, an empty inode table head and the root
// directory. Everything is persisted before it returns.
Result<void> format(pmem::PoolMap& pool, const MkfsOptions& opts, std::string* why);

// Creates the pool file at `path` (sparse, refusing an existing file) and
// formats it.
Result<void> mkfs(const std::string& path, uint64_t size, const MkfsOptions& opts,
                  std::string* why);

// Checks one superblock copy: magic, version, checksum, block size, and a
// consistent geometry that fits `pool_size`. *why names the first problem.
bool superblock_valid(const Superblock& sb, uint64_t pool_size, std::string* why);

// Writes `sb` (sealed) over both superblock copies of a valid pool, the
// primary first, each persisted before the next: a crash between them
// leaves one copy of each version, and mount takes the primary when it is
// valid and rewrites the other. Used to set a feature bit before the first
// structure that needs it is written (docs/format.md, "Superblock").
void write_superblocks(pmem::PoolMap& pool, const Superblock& sb);

// Offsets of the structures, from a valid superblock.
inline uint64_t inode_offset(const Superblock& sb, uint64_t ino) {
  return sb.itable_start * kBlockSize + (ino - 1) * kInodeSize;
}
inline uint64_t journal_offset(const Superblock& sb) {
  return sb.journal_start * kBlockSize;
}

// Fills in the checksums.
void seal(Superblock* sb);
void seal(DiskInode* inode);
bool checksum_ok(const Superblock& sb);
bool checksum_ok(const DiskInode& inode);

}  // namespace zest::pmfs
