#include "transport/dev_channel.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "abi/fuse_abi.h"

namespace zest::transport {

DevChannel DevChannel::borrow(int fd) {
  DevChannel c;
  c.fd_ = fd;
  return c;
}

Result<DevChannel> DevChannel::clone_from(int session_fd) {
  DevChannel c;
  c.owned_.reset(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!c.owned_) return last_errno();
  uint32_t master = static_cast<uint32_t>(session_fd);
  if (::ioctl(c.owned_.get(), abi::FUSE_DEV_IOC_CLONE, &master) != 0)
    return last_errno();
  c.fd_ = c.owned_.get();
  return c;
}

Result<size_t> DevChannel::receive(std::span<std::byte> buf) const {
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    // ENOENT: the request we were about to read was interrupted; EINTR:
    // a signal. Both: just read the next one.
    if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
    return last_errno();
  }
}

Result<void> DevChannel::send(const iovec* iov, int count) const {
  for (;;) {
    ssize_t n = ::writev(fd_, iov, count);
    if (n >= 0) return {};
    if (errno == EINTR) continue;
    return last_errno();
  }
}

}  // namespace zest::transport
