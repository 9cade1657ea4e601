#include "pmfs/format.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace zest::pmfs {

namespace {

template <class T>
uint32_t checksum_with_zero_csum(const T& v) {
  T copy = v;
  copy.csum = 0;
  return crc32c(&copy, sizeof(copy));
}

timespec now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

}  // namespace

void seal(Superblock* sb) { sb->csum = checksum_with_zero_csum(*sb); }
void seal(DiskInode* inode) { inode->csum = checksum_with_zero_csum(*inode); }
bool checksum_ok(const Superblock& sb) { return sb.csum == checksum_with_zero_csum(sb); }
bool checksum_ok(const DiskInode& inode) {
  return inode.csum == checksum_with_zero_csum(inode);
}

Result<Superblock> plan(uint64_t pool_size, const MkfsOptions& opts, std::string* why) {
  if (pool_size % kBlockSize != 0) {
    *why = fmt::format("pool size {} is not a multiple of {}", pool_size, kBlockSize);
    return Errno(EINVAL);
  }
  if (pool_size < kMinPoolSize) {
    *why = fmt::format("pool size {} is below the minimum of {}", pool_size, kMinPoolSize);
    return Errno(EINVAL);
  }
  if (opts.journal_blocks < 4 || opts.bytes_per_inode < kBlockSize) {
    *why = "journal must have at least 4 blocks and bytes_per_inode >= 4096";
    return Errno(EINVAL);
  }
  Superblock sb{};
  sb.magic = kMagic;
  sb.version = kVersion;
  sb.block_size = kBlockSize;
  sb.pool_size = pool_size;
  sb.total_blocks = pool_size / kBlockSize;
  sb.journal_start = 2;
  sb.journal_blocks = opts.journal_blocks;
  sb.itable_start = sb.journal_start + sb.journal_blocks;
  uint64_t inodes = std::max<uint64_t>(1024, pool_size / opts.bytes_per_inode);
  sb.itable_blocks = (inodes + kInodesPerBlock - 1) / kInodesPerBlock;
  sb.inode_count = sb.itable_blocks * kInodesPerBlock;
  sb.data_start = sb.itable_start + sb.itable_blocks;
  if (sb.data_start + 16 > sb.total_blocks) {
    *why = fmt::format("pool of {} bytes leaves no room for data after the "
                       "journal and inode table", pool_size);
    return Errno(EINVAL);
  }
  timespec t = now();
  sb.features_incompat = kIncompatXattrSlots;
  sb.mkfs_time_ns = uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
  if (getrandom(sb.uuid, sizeof(sb.uuid), 0) != sizeof(sb.uuid)) {
    *why = "getrandom failed";
    return Errno(EIO);
  }
  sb.uuid[6] = (sb.uuid[6] & 0x0f) | 0x40;  // RFC 4122 version 4
  sb.uuid[8] = (sb.uuid[8] & 0x3f) | 0x80;
  std::memcpy(sb.label, opts.label.data(), std::min(opts.label.size(), sizeof(sb.label) - 1));
  seal(&sb);
  return sb;
}

bool superblock_valid(const Superblock& sb, uint64_t pool_size, std::string* why) {
  if (sb.magic != kMagic) {
    *why = "not a pmfs pool (bad magic)";
    return false;
  }
  if (sb.version != kVersion) {
    *why = fmt::format("format version {} is not supported (this zest reads {})",
                       sb.version, kVersion);
    return false;
  }
  if (!checksum_ok(sb)) {
    *why = "superblock checksum mismatch";
    return false;
  }
  if (sb.block_size != kBlockSize) {
    *why = fmt::format("block size {} is not supported", sb.block_size);
    return false;
  }
  if (sb.pool_size != pool_size || sb.pool_size % kBlockSize != 0 ||
      sb.total_blocks != sb.pool_size / kBlockSize) {
    *why = fmt::format("superblock says the pool is {} bytes but it is {} "
                       "(truncated or grown pool file?)", sb.pool_size, pool_size);
    return false;
  }
  // Every field below total_blocks first, so none of the sums can wrap.
  const uint64_t t = sb.total_blocks;
  bool bounded = sb.journal_start < t && sb.journal_blocks < t && sb.itable_start < t &&
                 sb.itable_blocks < t && sb.data_start < t &&
                 sb.inode_count <= t * kInodesPerBlock;
  bool geometry = bounded && sb.journal_start >= 2 && sb.journal_blocks >= 4 &&
                  sb.itable_start == sb.journal_start + sb.journal_blocks &&
                  sb.itable_blocks >= 1 &&
                  sb.inode_count == sb.itable_blocks * kInodesPerBlock &&
                  sb.data_start == sb.itable_start + sb.itable_blocks &&
                  sb.data_start < sb.total_blocks &&
                  sb.journal_blocks < sb.total_blocks && sb.itable_blocks < sb.total_blocks;
  if (!geometry) {
    *why = "superblock geometry is inconsistent";
    return false;
  }
  if (sb.features_incompat & ~kIncompatKnown) {
    *why = fmt::format("unknown incompatible features {:#x}",
                       sb.features_incompat & ~kIncompatKnown);
    return false;
  }
  return true;
}

void write_superblocks(pmem::PoolMap& pool, const Superblock& sb) {
  for (uint64_t off : {uint64_t{0}, kBlockSize}) {
    pool.write_nt(off, &sb, sizeof(sb));
    pool.drain();
  }
}

Result<void> format(pmem::PoolMap& pool, const MkfsOptions& opts, std::string* why) {
  auto sb = plan(pool.size(), opts, why);
  if (!sb) return sb.error();

  // Journal header: empty (commit 0, seq 0). Records need no clearing: the
  // checksum in the header decides what is valid.
  JournalHeader jh{};
  jh.magic = kJournalMagic;
  pool.zero(journal_offset(*sb), kBlockSize);
  pool.write_nt(journal_offset(*sb), &jh, sizeof(jh));

  // Inode table: all slots free (zero). A sparse new file already is; a
  // reused device may not be.
  pool.zero(sb->itable_start * kBlockSize, sb->itable_blocks * kBlockSize);

  DiskInode root{};
  root.flags = kInodeInUse;
  root.mode = S_IFDIR | (opts.root_mode & 07777);
  root.nlink = 2;
  root.uid = opts.root_uid;
  root.gid = opts.root_gid;
  root.generation = 1;
  root.parent = kRootIno;
  timespec t = now();
  root.atime_sec = root.mtime_sec = root.ctime_sec = t.tv_sec;
  root.atime_nsec = root.mtime_nsec = root.ctime_nsec = static_cast<uint32_t>(t.tv_nsec);
  seal(&root);
  pool.write_nt(inode_offset(*sb, kRootIno), &root, sizeof(root));
  pool.drain();

  // Superblocks last: a pool without a valid superblock is not a pmfs, so
  // an interrupted mkfs leaves nothing that mounts.
  pool.zero(kBlockSize, kBlockSize);
  pool.write_nt(kBlockSize, &*sb, sizeof(*sb));
  pool.drain();
  pool.zero(0, kBlockSize);
  pool.write_nt(0, &*sb, sizeof(*sb));
  pool.drain();
  return {};
}

Result<void> mkfs(const std::string& path, uint64_t size, const MkfsOptions& opts,
                  std::string* why) {
  std::string plan_why;
  if (auto p = plan(size, opts, &plan_why); !p) {
    *why = plan_why;
    return p.error();
  }
  auto pool = pmem::PoolMap::create(path, size, why);
  if (!pool) return pool.error();
  auto r = format(*pool, opts, why);
  if (!r) {
    ::unlink(path.c_str());
    return r.error();
  }
  return {};
}

}  // namespace zest::pmfs
