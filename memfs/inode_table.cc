#include "memfs/inode_table.h"

#include <mutex>
#include <vector>

namespace zest::memfs {

std::shared_ptr<Inode> InodeTable::get(fs::Ino ino) const {
  const Shard& s = shard(ino);
  std::shared_lock lock(s.mu);
  auto it = s.map.find(ino);
  return it == s.map.end() ? nullptr : it->second;
}

void InodeTable::insert(std::shared_ptr<Inode> inode) {
  Shard& s = shard(inode->ino);
  std::unique_lock lock(s.mu);
  s.map.emplace(inode->ino, std::move(inode));
}

void InodeTable::erase(fs::Ino ino) {
  std::shared_ptr<Inode> doomed;  // destroyed outside the shard lock
  Shard& s = shard(ino);
  std::unique_lock lock(s.mu);
  auto it = s.map.find(ino);
  if (it == s.map.end()) return;
  doomed = std::move(it->second);
  s.map.erase(it);
  lock.unlock();
}

void InodeTable::clear() {
  std::vector<std::unordered_map<fs::Ino, std::shared_ptr<Inode>>> doomed(kShards);
  for (size_t i = 0; i < kShards; ++i) {
    std::unique_lock lock(shards_[i].mu);
    doomed[i].swap(shards_[i].map);
  }
  // Empty every directory first, so that dropping the table does not free a
  // deep tree by recursion (directories hold their children).
  for (auto& m : doomed) {
    for (auto& [ino, inode] : m) {
      std::unique_lock lock(inode->mu);
      if (inode->dir) inode->dir->clear();
    }
  }
}

}  // namespace zest::memfs
