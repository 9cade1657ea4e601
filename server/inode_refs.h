// InodeRefs: how many references the kernel holds on each inode.
//
// Every entry the server sends (lookup, create, mkdir, mknod, symlink, link,
// tmpfile, each readdirplus entry other than "." and "..") adds one; FORGET
// and BATCH_FORGET take them back. When the count of an inode reaches zero
// the file system is told (FileSystem::forget) and may free it.
//
// Sharded by inode number so that workers on different inodes do not
// contend. A new inode's first reference inserts a map node (an allocation
// per newly seen inode, not per request).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "zest/fs/filesystem.h"

namespace zest::server {

class InodeRefs final : public fs::KernelRefs {
 public:
  bool referenced(uint64_t ino) const override { return count(ino) != 0; }
  void add(uint64_t ino, uint64_t n = 1);
  // Drops n references; returns true when none remain (and forgets ino).
  // Dropping more than are held clamps at zero and returns true.
  bool drop(uint64_t ino, uint64_t n);
  uint64_t count(uint64_t ino) const;
  // Removes every entry and returns the inodes that still had references.
  std::vector<uint64_t> clear();

 private:
  static constexpr size_t kShards = 64;
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, uint64_t> counts;
  };
  Shard& shard(uint64_t ino) { return shards_[(ino * 0x9E3779B97F4A7C15ull) >> 58]; }
  const Shard& shard(uint64_t ino) const {
    return shards_[(ino * 0x9E3779B97F4A7C15ull) >> 58];
  }
  std::array<Shard, kShards> shards_;
};

}  // namespace zest::server
