#include "memfs/directory.h"

#include <utility>

namespace zest::memfs {

const std::shared_ptr<Inode>* Directory::find(std::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  return &by_cookie_.find(it->second)->second.inode;
}

bool Directory::insert(std::string_view name, std::shared_ptr<Inode> inode) {
  if (by_name_.count(name)) return false;
  const uint64_t cookie = next_cookie_++;
  auto [it, inserted] =
      by_cookie_.emplace(cookie, Slot{std::string(name), std::move(inode)});
  (void)inserted;
  by_name_.emplace(std::string_view(it->second.name), cookie);
  return true;
}

std::shared_ptr<Inode> Directory::replace(std::string_view name,
                                          std::shared_ptr<Inode> inode) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  return std::exchange(by_cookie_.find(it->second)->second.inode, std::move(inode));
}

std::shared_ptr<Inode> Directory::erase(std::string_view name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  auto slot = by_cookie_.find(it->second);
  std::shared_ptr<Inode> old = std::move(slot->second.inode);
  by_name_.erase(it);  // before the string its key points into goes
  by_cookie_.erase(slot);
  return old;
}

}  // namespace zest::memfs
