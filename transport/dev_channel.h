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
#include "zest/result.h"

namespace zest::transport {

// SplicePipe: a pipe through which one worker sends replies whose data lies
// in a file: the data is spliced from the file into the pipe and from the
// pipe into /dev/fuse, so it never passes through user space (the kernel
// copies it once, from the file's pages into the caller's). Made once per
// worker and reused; holds at most one reply at a time.
//
// The kernel takes a reply from a pipe only whole, in one splice
// (fuse_dev_splice_write refuses a pipe holding less than the length asked
// for), so the pipe must hold the largest reply: F_SETPIPE_SZ asks for
// enough pipe buffers for 1 MiB of data at any alignment plus the header
// (2 MiB, a power of two of pages); without CAP_SYS_RESOURCE the system
// limit (/proc/sys/fs/pipe-max-size, 1 MiB by default) may give fewer, and
// fits() then says which replies do not fit.
//
// Both ends are non-blocking: nothing here ever waits for the pipe. Not
// thread-safe: one sender at a time.
class SplicePipe {
 public:
  // A pipe for replies of up to `max_data` bytes of file data (fewer where
  // the system allows less; see fits()).
  static Result<SplicePipe> create(size_t max_data = size_t{1} << 20);

  // Whether `head` bytes plus `len` bytes of a file at `off` fit the pipe:
  // every page of the file the range touches takes one pipe buffer, and
  // so does the head.
  bool fits(size_t head, uint64_t off, size_t len) const;
  // Bytes in the pipe now.
  size_t held() const { return held_; }

  // Copies `n` bytes into the pipe (write(2); for the small header).
  Result<void> put(const void* p, size_t n);
  // Moves `len` bytes of `fd` at `off` into the pipe without copying.
  // Returns how many: fewer only at the end of the file (a splice that
  // returned 0). An error (EAGAIN: the pipe filled up first) leaves what
  // was moved in the pipe; clear() it.
  Result<size_t> fill(int fd, uint64_t off, size_t len);
  // Reads `n` bytes out of the pipe into `p` (the fallback for a reply
  // that must be rebuilt).
  Result<void> take(void* p, size_t n);
  // Empties the pipe, so the next reply starts clean: a pipe that cannot
  // be emptied is replaced by a new one.
  Result<void> clear();

  int read_fd() const { return r_.get(); }

 private:
  friend class DevChannel;
  UniqueFd r_, w_;
  size_t buffers_ = 0;  // pipe buffers (pages) it holds
  size_t max_data_ = 0;
  size_t held_ = 0;
};

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
  // Sends everything `pipe` holds as one reply, in one splice (the kernel
  // takes a reply from a pipe only whole). The pipe is empty afterwards,
  // whether or not the kernel took the reply (same errors as send()).
  Result<void> send(SplicePipe& pipe) const;

 private:
  UniqueFd owned_;
  int fd_ = -1;
};

}  // namespace zest::transport
