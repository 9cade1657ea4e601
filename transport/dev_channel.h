// DevChannel: one /dev/fuse descriptor for one worker thread.
//
// The first channel is the fd the mount was made with; each further worker
// gets its own fd cloned onto the same connection (FUSE_DEV_IOC_CLONE), so
// workers never contend on one file and the kernel can hand requests to
// whichever worker is idle. A reply must be written to the channel that
// read its request: the kernel keeps in-flight requests per fd.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/fd.h"
#include "base/result.h"

namespace zest::transport {

class DevChannel {
 public:
  // Wraps an fd we do not own (the mount's).
  static DevChannel borrow(int fd);
  // Opens /dev/fuse and attaches it to the connection of `session_fd`.
  static Result<DevChannel> clone_from(int session_fd);

  int fd() const { return fd_; }

  // Reads one request into buf. ENODEV means the file system was unmounted
  // (the connection is gone); EINTR/EAGAIN/ENOENT are retried inside.
  // With spin_ns > 0 the channel first polls without sleeping for that long
  // (non-blocking reads), then sleeps in poll(2): a request that arrives
  // within the window is taken without a wake-up (see docs/benchmarks.md).
  Result<size_t> receive(std::span<std::byte> buf, uint64_t spin_ns = 0) const;
  // Makes reads non-blocking (needed for spinning).
  Result<void> set_nonblocking() const;
  // Writes one reply or notification (header first). Errors: ENOENT when
  // the request was interrupted and already answered by the kernel.
  Result<void> send(const iovec* iov, int count) const;

 private:
  UniqueFd owned_;
  int fd_ = -1;
};

}  // namespace zest::transport
