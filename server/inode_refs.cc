#include "server/inode_refs.h"

namespace zest::server {

void InodeRefs::add(uint64_t ino, uint64_t n) {
  Shard& s = shard(ino);
  std::lock_guard lock(s.mu);
  s.counts[ino] += n;
}

bool InodeRefs::drop(uint64_t ino, uint64_t n) {
  Shard& s = shard(ino);
  std::lock_guard lock(s.mu);
  auto it = s.counts.find(ino);
  if (it == s.counts.end()) return true;
  if (it->second > n) {
    it->second -= n;
    return false;
  }
  s.counts.erase(it);
  return true;
}

uint64_t InodeRefs::count(uint64_t ino) const {
  const Shard& s = shard(ino);
  std::lock_guard lock(s.mu);
  auto it = s.counts.find(ino);
  return it == s.counts.end() ? 0 : it->second;
}

std::vector<uint64_t> InodeRefs::clear() {
  std::vector<uint64_t> out;
  for (auto& s : shards_) {
    std::lock_guard lock(s.mu);
    for (auto& [ino, n] : s.counts) out.push_back(ino);
    s.counts.clear();
  }
  return out;
}

}  // namespace zest::server
