#include "transport/dev_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>
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

namespace {
uint64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}
}  // namespace

Result<void> DevChannel::set_nonblocking() const {
  int fl = ::fcntl(fd_, F_GETFL);
  if (fl < 0 || ::fcntl(fd_, F_SETFL, fl | O_NONBLOCK) < 0) return last_errno();
  return {};
}

Result<size_t> DevChannel::receive(std::span<std::byte> buf, uint64_t spin_ns) const {
  uint64_t deadline = spin_ns ? now_ns() + spin_ns : 0;
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    // ENOENT: the request we were about to read was interrupted; EINTR:
    // a signal. Both: just read the next one.
    if (errno == EINTR || errno == ENOENT) continue;
    if (errno != EAGAIN) return last_errno();
    if (deadline && now_ns() < deadline) {
      __builtin_ia32_pause();
      continue;
    }
    // Nothing within the spin window (or not spinning on a non-blocking
    // fd): sleep until the kernel has a request or the connection ends.
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) return last_errno();
    if (p.revents & (POLLERR | POLLHUP)) return Errno(ENODEV);
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
