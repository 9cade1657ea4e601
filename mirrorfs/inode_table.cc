#include "mirrorfs/inode_table.h"

#include <fmt/format.h>

namespace zest::mirrorfs {

ProcPath::ProcPath(int fd) {
  auto r = fmt::format_to_n(buf_, sizeof buf_ - 1, "/proc/self/fd/{}", fd);
  *r.out = '\0';
}

InodeTable::InodeTable(const struct stat& st, UniqueFd root_fd) {
  auto root = std::make_shared<MirrorInode>(fs::kRootIno, st, std::move(root_fd));
  by_backing_[Key{st.st_dev, st.st_ino}] = fs::kRootIno;
  by_ino_[fs::kRootIno] = std::move(root);
}

InodePtr InodeTable::get(fs::Ino ino) const {
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  return it == by_ino_.end() ? nullptr : it->second;
}

fs::Ino InodeTable::find_backing(dev_t dev, ino_t ino) const {
  std::lock_guard lock(mu_);
  auto it = by_backing_.find(Key{dev, ino});
  return it == by_backing_.end() ? 0 : it->second;
}

InodePtr InodeTable::find_or_insert(const struct stat& st, UniqueFd* fd) {
  std::lock_guard lock(mu_);
  Key key{st.st_dev, st.st_ino};
  auto it = by_backing_.find(key);
  if (it != by_backing_.end()) return by_ino_.at(it->second);
  fs::Ino ino = next_ino_++;
  auto i = std::make_shared<MirrorInode>(ino, st, std::move(*fd));
  by_backing_.emplace(key, ino);
  by_ino_.emplace(ino, i);
  return i;
}

void InodeTable::erase(const MirrorInode& i) {
  std::lock_guard lock(mu_);
  auto it = by_backing_.find(Key{i.dev, i.backing_ino});
  if (it != by_backing_.end() && it->second == i.ino) by_backing_.erase(it);
  by_ino_.erase(i.ino);
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return by_ino_.size();
}

}  // namespace zest::mirrorfs
