#include "transport/dev_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <utility>

#include "abi/fuse_abi.h"

namespace zest::transport {

namespace {
const size_t kPage = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}  // namespace

// ---------------------------------------------------------------------------
// SplicePipe

Result<SplicePipe> SplicePipe::create(size_t max_data) {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return last_errno();
  SplicePipe p;
  p.r_.reset(fds[0]);
  p.w_.reset(fds[1]);
  p.max_data_ = max_data;
  // max_data at any alignment touches max_data/page + 1 pages; one more
  // buffer for the header. The kernel rounds up to a power of two pages;
  // above pipe-max-size it wants CAP_SYS_RESOURCE, so settle for less.
  size_t want = (max_data / kPage + 2) * kPage;
  size_t pow2 = kPage;
  while (pow2 < want) pow2 *= 2;
  for (size_t size = pow2; size >= 16 * kPage; size /= 2)
    if (::fcntl(p.w_.get(), F_SETPIPE_SZ, static_cast<int>(size)) >= 0) break;
  int got = ::fcntl(p.w_.get(), F_GETPIPE_SZ);
  if (got < 0) return last_errno();
  p.buffers_ = static_cast<size_t>(got) / kPage;
  return p;
}

bool SplicePipe::fits(size_t head, uint64_t off, size_t len) const {
  size_t pages = len ? (off % kPage + len + kPage - 1) / kPage : 0;
  size_t head_bufs = (head + kPage - 1) / kPage;
  return held_ == 0 && pages + head_bufs <= buffers_;
}

Result<void> SplicePipe::put(const void* p, size_t n) {
  for (;;) {
    ssize_t r = ::write(w_.get(), p, n);
    if (r == static_cast<ssize_t>(n)) break;
    if (r < 0 && errno == EINTR) continue;
    // The pipe is empty when a reply starts: a short write means it was not.
    if (r > 0) held_ += static_cast<size_t>(r);
    return r < 0 ? last_errno() : Errno(EAGAIN);
  }
  held_ += n;
  return {};
}

Result<size_t> SplicePipe::fill(int fd, uint64_t off, size_t len) {
  loff_t pos = static_cast<loff_t>(off);
  size_t got = 0;
  while (got < len) {
    ssize_t n =
        ::splice(fd, &pos, w_.get(), nullptr, len - got, SPLICE_F_NONBLOCK);
    if (n > 0) {
      got += static_cast<size_t>(n);
      held_ += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) break;  // end of file
    if (errno == EINTR) continue;
    // EAGAIN: the pipe is full (the range needed more buffers than fits()
    // counted); EINVAL: the file cannot be spliced. A short splice is never
    // taken for the end of the file: only a splice returning 0 is.
    return last_errno();
  }
  return got;
}

Result<void> SplicePipe::take(void* p, size_t n) {
  auto* b = static_cast<std::byte*>(p);
  while (n > 0) {
    ssize_t r = ::read(r_.get(), b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? last_errno() : Errno(EIO);
    b += r;
    n -= static_cast<size_t>(r);
    held_ -= std::min(held_, static_cast<size_t>(r));
  }
  return {};
}

Result<void> SplicePipe::clear() {
  int left = 0;
  if (::ioctl(r_.get(), FIONREAD, &left) == 0 && left == 0) {
    held_ = 0;
    return {};
  }
  // Something is left (a reply the kernel refused before taking it):
  // a fresh pipe is simpler and surer than reading the rest out. Rare.
  auto fresh = create(max_data_);
  if (!fresh) {
    buffers_ = 0;  // unusable from now on: fits() says no to everything
    return fresh.error();
  }
  *this = std::move(*fresh);
  return {};
}

// ---------------------------------------------------------------------------
// DevChannel

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

Result<void> DevChannel::send(SplicePipe& pipe) const {
  const size_t n = pipe.held_;
  ssize_t r = ::splice(pipe.r_.get(), nullptr, fd_, nullptr, n, 0);
  if (r == static_cast<ssize_t>(n)) {
    pipe.held_ = 0;
    return {};
  }
  // The device never takes part of a reply; a retry after EINTR could
  // send a reply the kernel already consumed, so errors are final.
  Errno e = r < 0 ? last_errno() : Errno(EIO);
  (void)pipe.clear();
  return e;
}

}  // namespace zest::transport
