#include "mirrorfs/inode_table.h"

#include <fcntl.h>

#include <cstring>

#include <fmt/format.h>

namespace zest::mirrorfs {

namespace {

// A struct file_handle with room for BackingHandle::kMaxBytes.
struct HandleBuffer {
  alignas(file_handle) unsigned char raw[sizeof(file_handle) +
                                         BackingHandle::kMaxBytes];
  file_handle* get() { return reinterpret_cast<file_handle*>(raw); }
};

}  // namespace

ProcPath::ProcPath(int fd) {
  auto r = fmt::format_to_n(buf_, sizeof buf_ - 1, "/proc/self/fd/{}", fd);
  *r.out = '\0';
}

std::optional<BackingHandle> BackingHandle::of(int fd) {
  HandleBuffer b;
  b.get()->handle_bytes = kMaxBytes;
  int mount_id = 0;
  if (::name_to_handle_at(fd, "", b.get(), &mount_id, AT_EMPTY_PATH) != 0)
    return std::nullopt;  // EOVERFLOW (too long), EOPNOTSUPP (no handles)
  BackingHandle h;
  h.type = b.get()->handle_type;
  h.size = b.get()->handle_bytes;
  std::memcpy(h.bytes.data(), b.get()->f_handle, h.size);
  return h;
}

int BackingHandle::open(int mount_fd, int flags) const {
  HandleBuffer b;
  b.get()->handle_bytes = size;
  b.get()->handle_type = type;
  std::memcpy(b.get()->f_handle, bytes.data(), size);
  return ::open_by_handle_at(mount_fd, b.get(), flags);
}

InodeTable::InodeTable(const struct stat& st, UniqueFd root_fd,
                       size_t max_forgotten)
    : handle_dev_(st.st_dev), max_forgotten_(max_forgotten) {
  // The root is never forgotten, so nothing is remembered of it.
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

InodePtr InodeTable::make_live(fs::Ino ino, const struct stat& st,
                               UniqueFd* fd) {
  auto i = std::make_shared<MirrorInode>(ino, st, std::move(*fd));
  by_ino_.emplace(ino, i);
  by_backing_[Key{st.st_dev, st.st_ino}] = ino;
  return i;
}

void InodeTable::drop_record(std::unordered_map<fs::Ino, Record>::iterator it) {
  const RememberedObject& o = it->second.object;
  auto b = by_backing_.find(Key{o.dev, o.ino});
  if (b != by_backing_.end() && b->second == it->first) by_backing_.erase(b);
  if (it->second.lru != forgotten_.end()) forgotten_.erase(it->second.lru);
  records_.erase(it);
}

InodePtr InodeTable::find_or_insert(const struct stat& st, UniqueFd* fd) {
  const Key key{st.st_dev, st.st_ino};
  {
    std::lock_guard lock(mu_);
    auto it = by_backing_.find(key);
    if (it != by_backing_.end()) {
      auto live = by_ino_.find(it->second);
      if (live != by_ino_.end()) return live->second;
    }
  }
  // No live inode: the object's handle decides whether it is the one a
  // remembered number names (a system call, so outside the lock).
  std::optional<BackingHandle> h;
  if (st.st_dev == handle_dev_) h = BackingHandle::of(fd->get());
  std::lock_guard lock(mu_);
  auto it = by_backing_.find(key);
  if (it != by_backing_.end()) {
    const fs::Ino ino = it->second;
    auto live = by_ino_.find(ino);
    if (live != by_ino_.end()) return live->second;  // made live meanwhile
    auto r = records_.find(ino);
    if (r != records_.end() && h && r->second.object.handle == *h) {
      if (r->second.lru != forgotten_.end()) forgotten_.erase(r->second.lru);
      r->second.lru = forgotten_.end();
      return make_live(ino, st, fd);
    }
    // Another object now has that (dev, ino): the remembered one is gone.
    if (r != records_.end()) drop_record(r);
    else by_backing_.erase(it);
  }
  const fs::Ino ino = next_ino_++;
  if (h) records_.emplace(ino, Record{{st.st_dev, st.st_ino, *h}, forgotten_.end()});
  return make_live(ino, st, fd);
}

std::optional<RememberedObject> InodeTable::forgotten(fs::Ino ino) const {
  std::lock_guard lock(mu_);
  if (by_ino_.contains(ino)) return std::nullopt;
  auto r = records_.find(ino);
  if (r == records_.end()) return std::nullopt;
  return r->second.object;
}

InodePtr InodeTable::revive(fs::Ino ino, const struct stat& st, UniqueFd* fd) {
  std::lock_guard lock(mu_);
  auto live = by_ino_.find(ino);
  auto r = records_.find(ino);
  if (r == records_.end()) return nullptr;
  const RememberedObject& o = r->second.object;
  if (o.dev != st.st_dev || o.ino != st.st_ino) return nullptr;
  if (live != by_ino_.end()) return live->second;
  if (r->second.lru != forgotten_.end()) forgotten_.erase(r->second.lru);
  r->second.lru = forgotten_.end();
  return make_live(ino, st, fd);
}

void InodeTable::drop_forgotten(fs::Ino ino) {
  std::lock_guard lock(mu_);
  if (by_ino_.contains(ino)) return;
  auto r = records_.find(ino);
  if (r != records_.end()) drop_record(r);
}

void InodeTable::erase(const MirrorInode& i, bool gone) {
  std::lock_guard lock(mu_);
  by_ino_.erase(i.ino);
  auto r = records_.find(i.ino);
  if (r == records_.end() || gone) {
    if (r != records_.end()) return drop_record(r);
    auto it = by_backing_.find(Key{i.dev, i.backing_ino});
    if (it != by_backing_.end() && it->second == i.ino) by_backing_.erase(it);
    return;
  }
  if (r->second.lru == forgotten_.end())
    r->second.lru = forgotten_.insert(forgotten_.end(), i.ino);
  while (forgotten_.size() > max_forgotten_)
    drop_record(records_.find(forgotten_.front()));
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return by_ino_.size();
}

size_t InodeTable::remembered() const {
  std::lock_guard lock(mu_);
  return records_.size();
}

}  // namespace zest::mirrorfs
