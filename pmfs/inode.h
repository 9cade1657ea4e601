// Inode: the DRAM side of one pmfs inode: its committed DiskInode image and
// the indexes built at mount (directory entries, extents, xattrs).
//
// Locking: `mu` guards every mutable field (shared to read, exclusive to
// change), except `ino` and `type`, which never change, and `parent`
// (directories), atomic: written under the exclusive lock and the rename
// mutex, read under either.
//
// `d` is always the committed image: an operation builds a copy, puts it in
// its transaction and assigns it back only after the commit, so a failed
// operation leaves no trace.
//
// Lifetime: an inode is in the InodeTable until nlink == 0, open_count == 0
// and the kernel holds no reference; then one transaction frees its slot, it
// is marked `freed`, its blocks go back to the allocator and it leaves the
// table. Holders of a shared_ptr check `freed` after locking.
#pragma once

#include <sys/stat.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "pmfs/dir_index.h"
#include "pmfs/extent_map.h"
#include "pmfs/layout.h"
#include "pmfs/xattr_index.h"

namespace zest::pmfs {

struct Inode {
  Inode(uint64_t ino_, uint32_t type_) : ino(ino_), type(type_) {}
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  bool is_dir() const { return type == S_IFDIR; }
  bool is_reg() const { return type == S_IFREG; }
  bool is_symlink() const { return type == S_IFLNK; }

  const uint64_t ino;
  const uint32_t type;  // S_IFMT bits

  mutable std::shared_mutex mu;
  DiskInode d{};                   // committed image
  std::atomic<uint64_t> parent{0};  // directories: mirror of d.parent
  uint32_t open_count = 0;
  bool linkable = false;  // O_TMPFILE without O_EXCL: link may name it
  bool freed = false;
  // lazytime: d's atime is newer than the pool's (flush_lazy_atime).
  bool atime_dirty = false;
  // Layout generation (zest/fs/layout.h), DRAM only: 1 when the inode is loaded
  // or created, bumped by anything that may move or free the file's blocks
  // (truncate, punch, zero range, copy-on-write, freeing the inode), so a
  // commit of extents mapped before that is refused.
  uint64_t layout_gen = 1;

  std::unique_ptr<DirIndex> dir;   // S_IFDIR
  std::unique_ptr<ExtentMap> ext;  // S_IFREG, long symlinks
  std::string target;              // S_IFLNK
  XattrIndex xattrs;  // extended attributes (any type)
};

using InodePtr = std::shared_ptr<Inode>;

// Inode number -> Inode, sharded so lookups on different inodes do not
// contend. Shard locks are leaves of the lock order.
class InodeTable {
 public:
  InodePtr get(uint64_t ino) const {
    const Shard& s = shard(ino);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(ino);
    return it == s.map.end() ? nullptr : it->second;
  }
  void insert(InodePtr i) {
    Shard& s = shard(i->ino);
    std::lock_guard lock(s.mu);
    s.map[i->ino] = std::move(i);
  }
  void erase(uint64_t ino) {
    Shard& s = shard(ino);
    std::lock_guard lock(s.mu);
    s.map.erase(ino);
  }
  template <class F>
  void for_each(F&& f) const {
    for (const Shard& s : shards_) {
      std::lock_guard lock(s.mu);
      for (const auto& [ino, i] : s.map) f(i);
    }
  }
  void clear() {
    for (Shard& s : shards_) {
      std::lock_guard lock(s.mu);
      s.map.clear();
    }
  }

 private:
  static constexpr size_t kShards = 64;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, InodePtr> map;
  };
  Shard& shard(uint64_t ino) { return shards_[ino % kShards]; }
  const Shard& shard(uint64_t ino) const { return shards_[ino % kShards]; }
  std::array<Shard, kShards> shards_;
};

// Exclusive locks on up to four inodes, in increasing inode number (nullptrs
// and repeats skipped), released on destruction.
class InodeLocks {
 public:
  InodeLocks(Inode* a, Inode* b, Inode* c = nullptr, Inode* d = nullptr);
  ~InodeLocks();
  InodeLocks(const InodeLocks&) = delete;
  InodeLocks& operator=(const InodeLocks&) = delete;

 private:
  std::array<Inode*, 4> held_{};
  size_t n_ = 0;
};

}  // namespace zest::pmfs
