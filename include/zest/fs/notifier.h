// Notifier: messages a file system sends to the kernel on its own, when
// something changed behind the kernel's back (another client of a shared
// back end, a file written through another path) or when a poll waiter
// should wake up. The server implements it (FUSE_NOTIFY_*); the file system
// gets it through FileSystem::set_notifier before init().
//
// Every call may come from any thread once the connection is up, and
// returns at once (the kernel handles the message while the write to the
// connection lasts). Errors:
//  - ENOTCONN: before INIT or after the mount went away;
//  - ENOENT: the kernel does not know that inode (or name): nothing of it
//    is cached, which is what an invalidation wanted, so callers that only
//    invalidate treat it as success;
//  - others as the kernel answers (ENOTDIR, ENAMETOOLONG, EINVAL).
//
// Deadlock rule (as libfuse's): inval_entry and delete_entry take the
// kernel's lock of the parent directory, inval_inode and store the file's
// page locks. Do not send them from inside an operation the kernel issued
// while holding those (a lookup, create, unlink, ... in the same directory,
// or a read/write of the same file) and wait for them there; send them
// from another thread, or after replying.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "zest/fs/types.h"
#include "zest/result.h"

namespace zest::fs {

class Notifier {
 public:
  // The kernel's answer to retrieve(): the cached bytes from the offset
  // asked for (fewer, down to none, where the cache has a hole or the file
  // ends), valid during the call; or an error (ENOTCONN: the connection
  // ended first). Runs on a server thread.
  using RetrieveDone = std::function<void(Result<std::span<const std::byte>>)>;

  // Drops the kernel's cached attributes of `ino` and, for off >= 0, its
  // cached pages from `off` for `len` bytes (len <= 0: to the end). Also
  // drops a cached symlink target (Capabilities::cache_symlinks).
  virtual Result<void> inval_inode(Ino ino, int64_t off, int64_t len) = 0;
  // Forgets the kernel's cached name `name` in directory `parent` (and the
  // parent's attributes), so the next path walk looks it up again.
  virtual Result<void> inval_entry(Ino parent, std::string_view name) = 0;
  // The name `name` in `parent`, which led to `child`, was removed: as
  // inval_entry, and if the dentry points at `child` the kernel also
  // unhashes it as unlink(2) would (open files stay usable). ENOTEMPTY
  // when `child` is a directory that still has names in the kernel's cache.
  virtual Result<void> delete_entry(Ino parent, Ino child, std::string_view name) = 0;
  // Writes `data` into the kernel's page cache of `ino` at `offset` and
  // extends the cached size to cover it, as if it had been read from the
  // file system: later cached reads see it without a READ.
  virtual Result<void> store(Ino ino, uint64_t offset, std::span<const std::byte> data) = 0;
  // Asks the kernel for up to `size` bytes of its page cache of `ino` at
  // `offset`; `done` gets them later (the kernel answers with a request,
  // FUSE_NOTIFY_REPLY). When this returns an error, `done` is never called.
  virtual Result<void> retrieve(Ino ino, uint64_t offset, uint32_t size,
                                RetrieveDone done) = 0;
  // Wakes the poll(2)/select(2)/epoll waiters that came with poll handle
  // `kh` (FileSystem::poll with kPollScheduleNotify); the kernel then asks
  // poll() again.
  virtual Result<void> poll_wakeup(uint64_t kh) = 0;

 protected:
  ~Notifier() = default;
};

}  // namespace zest::fs
