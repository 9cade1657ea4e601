// InodeTable: inode number -> Inode, sharded so that the read/write/getattr
// path never meets a single global lock.
//
// Inode numbers come from a 64-bit counter and are never reused within one
// MemFs, so (ino, generation) is unique; the generation differs between
// MemFs instances (it is taken from the clock at mount), so handles from an
// earlier mount never match.
//
// Lock order: a shard lock is a leaf; it may be taken while holding inode
// locks, and nothing is locked while holding it.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include "zest/fs/types.h"
#include "memfs/inode.h"

namespace zest::memfs {

class InodeTable {
 public:
  static constexpr size_t kShards = 64;

  explicit InodeTable(fs::Ino first_free) : next_ino_(first_free) {}

  fs::Ino allocate_ino() { return next_ino_.fetch_add(1, std::memory_order_relaxed); }

  std::shared_ptr<Inode> get(fs::Ino ino) const;
  void insert(std::shared_ptr<Inode> inode);
  void erase(fs::Ino ino);
  // Drops every inode (shutdown).
  void clear();

 private:
  struct alignas(64) Shard {
    mutable std::shared_mutex mu;
    std::unordered_map<fs::Ino, std::shared_ptr<Inode>> map;
  };
  Shard& shard(fs::Ino ino) { return shards_[ino % kShards]; }
  const Shard& shard(fs::Ino ino) const { return shards_[ino % kShards]; }

  std::array<Shard, kShards> shards_;
  std::atomic<fs::Ino> next_ino_;
};

}  // namespace zest::memfs
