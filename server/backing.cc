#include "server/backing.h"

#include <sys/ioctl.h>

#include <cstring>

#include "abi/fuse_abi.h"
#include "base/log.h"

namespace zest::server {

Result<int32_t> DevBackingControl::open(int fd) {
  abi::fuse_backing_map map{};
  map.fd = fd;
  map.flags = 0;
  int id = ::ioctl(fd_, abi::FUSE_DEV_IOC_BACKING_OPEN, &map);
  if (id < 0) return last_errno();
  // Id 0 is never handed out; treat it as a failure rather than answer
  // an open with it.
  if (id == 0) return Errno(EIO);
  return static_cast<int32_t>(id);
}

void DevBackingControl::close(int32_t id) {
  uint32_t v = static_cast<uint32_t>(id);
  if (::ioctl(fd_, abi::FUSE_DEV_IOC_BACKING_CLOSE, &v) != 0 && errno != ENODEV &&
      errno != ENOTCONN)
    log_warn("closing backing id {} failed: {}", id, std::strerror(errno));
}

Result<int32_t> PassthroughTable::open(uint64_t ino, uint64_t fh, int fd) {
  std::lock_guard lock(mu_);
  if (!ctl_) return Errno(EOPNOTSUPP);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) {
    if (fd < 0) return Errno(EBADF);
    auto id = ctl_->open(fd);
    if (!id) return id.error();
    it = inodes_.emplace(ino, Inode{BackingId(ctl_, *id), 0}).first;
  }
  ++it->second.opens;
  ++opens_[{ino, fh}];
  return it->second.id.id();
}

void PassthroughTable::release(uint64_t ino, uint64_t fh) {
  BackingId closing;  // closed after the lock is dropped
  {
    std::lock_guard lock(mu_);
    auto o = opens_.find({ino, fh});
    if (o == opens_.end()) return;
    if (--o->second == 0) opens_.erase(o);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return;
    if (--it->second.opens == 0) {
      closing = std::move(it->second.id);
      inodes_.erase(it);
    }
  }
}

size_t PassthroughTable::inodes() const {
  std::lock_guard lock(mu_);
  return inodes_.size();
}

int32_t PassthroughTable::id_of(uint64_t ino) const {
  std::lock_guard lock(mu_);
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? 0 : it->second.id.id();
}

void PassthroughTable::clear() {
  std::unordered_map<uint64_t, Inode> gone;
  {
    std::lock_guard lock(mu_);
    gone.swap(inodes_);
    opens_.clear();
  }
}

}  // namespace zest::server
