// Replies of the plugin API.
//
// Every operation gets exactly one reply object and must complete it exactly
// once: with ok(...) or error(errno). The object may be moved to another
// thread and completed there later (the "would block" mode of ZUFS): the
// request stays in flight until then. A reply destroyed without being
// completed answers EIO, so a forgotten reply never hangs the caller.
//
// Arguments passed to an operation (names, write data) are only valid during
// the call; a file system that answers later must copy what it still needs.
//
// The ReplySink is the server's side; tests implement it to drive a file
// system without a kernel.
#pragma once

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "zest/fs/types.h"

namespace zest::fs {

// Opaque per-request token handed back to the sink.
using RequestToken = void*;

// Called when a request that waits (a parked reply) is interrupted: `ctx`
// and `cookie` are what Reply::on_interrupt was given.
using InterruptFn = void (*)(void* ctx, uint64_t cookie);

class ReplySink {
 public:
  virtual ~ReplySink() = default;
  // err is a positive errno; 0 means success without payload.
  virtual void reply_error(RequestToken, int err) = 0;
  virtual void reply_entry(RequestToken, const Entry&) = 0;
  virtual void reply_create(RequestToken, const Entry&, const OpenInfo&) = 0;
  virtual void reply_attr(RequestToken, const Attr&, double timeout) = 0;
  virtual void reply_open(RequestToken, const OpenInfo&) = 0;
  virtual void reply_write(RequestToken, size_t written) = 0;
  virtual void reply_data(RequestToken, std::span<const iovec> data) = 0;
  // Data that lies in a file: `len` bytes of `fd` at `off`, fewer at its
  // end. A server that can splices them to the kernel without copying
  // them through user space; this default reads them into reply_buffer()
  // and answers with reply_data() (or the read's errno), so a sink needs
  // nothing more. `fd` is only used before this returns.
  virtual void reply_data_fd(RequestToken t, int fd, uint64_t off, size_t len) {
    std::span<std::byte> buf = reply_buffer(t, len);
    len = std::min(len, buf.size());
    ssize_t n;
    do {
      n = ::pread(fd, buf.data(), len, static_cast<off_t>(off));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return reply_error(t, errno);
    iovec v{buf.data(), static_cast<size_t>(n)};
    reply_data(t, std::span<const iovec>(&v, 1));
  }
  virtual void reply_xattr_size(RequestToken, size_t size) = 0;
  virtual void reply_statfs(RequestToken, const StatFs&) = 0;
  virtual void reply_lseek(RequestToken, uint64_t offset) = 0;
  // Scratch space owned by the request, valid until the reply is sent.
  virtual std::span<std::byte> reply_buffer(RequestToken, size_t size) = 0;
  // Directory listing: entries are appended to the request's buffer.
  // Returns false (and adds nothing) when the entry does not fit.
  virtual bool dir_add(RequestToken, std::string_view name, Ino ino,
                       uint32_t type, uint64_t next_off, const Entry* plus) = 0;
  virtual void reply_dir(RequestToken) = 0;
  virtual bool interrupted(RequestToken) const = 0;
  // Answers added after the first sinks were written; a sink that never
  // serves these operations need not implement them.
  virtual void reply_lock(RequestToken t, const Lock&) { reply_error(t, ENOSYS); }
  virtual void reply_poll(RequestToken t, uint32_t /*revents*/) { reply_error(t, ENOSYS); }
  virtual void reply_bmap(RequestToken t, uint64_t /*block*/) { reply_error(t, ENOSYS); }
  virtual void reply_statx(RequestToken t, const StatxAttr&, double /*timeout*/) {
    reply_error(t, ENOSYS);
  }
  // Arms `fn(ctx, cookie)` for when the request is interrupted; false when
  // it was interrupted already (nothing armed). A sink without interrupts
  // never calls it.
  virtual bool on_interrupt(RequestToken, InterruptFn, void*, uint64_t) { return true; }
};

class Reply {
 public:
  Reply(ReplySink* sink, RequestToken token) : sink_(sink), token_(token) {}
  Reply(Reply&& o) noexcept
      : sink_(std::exchange(o.sink_, nullptr)), token_(o.token_) {}
  Reply& operator=(Reply&& o) noexcept {
    if (this != &o) {
      abandon();
      sink_ = std::exchange(o.sink_, nullptr);
      token_ = o.token_;
    }
    return *this;
  }
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply() { abandon(); }

  // Completes the request with a positive errno (0 is success, no payload).
  void error(int err) { take()->reply_error(token_, err); }
  // True once the caller was interrupted (a signal); the file system may then
  // answer EINTR early. Synchronous answers can ignore it.
  bool interrupted() const { return sink_ && sink_->interrupted(token_); }
  bool pending() const { return sink_ != nullptr; }
  // For a reply kept to answer later (a blocking lock): asks to be told
  // when the caller is interrupted (a signal). `fn(ctx, cookie)` then runs
  // once, on a server thread, without any lock of the server held; it may
  // run after the reply was completed elsewhere, so `fn` must find its
  // request by `cookie` and do nothing when it is gone (answering EINTR
  // otherwise). Returns false, arming nothing, when the caller was
  // interrupted already: answer EINTR now. At most one per reply.
  bool on_interrupt(InterruptFn fn, void* ctx, uint64_t cookie) {
    return !sink_ || sink_->on_interrupt(token_, fn, ctx, cookie);
  }

 protected:
  // Hands out the sink for the one completing call and marks the reply done.
  ReplySink* take() { return std::exchange(sink_, nullptr); }
  ReplySink* sink() const { return sink_; }
  RequestToken token() const { return token_; }

 private:
  void abandon() {
    if (sink_) take()->reply_error(token_, EIO);
  }
  ReplySink* sink_;
  RequestToken token_;
};

// Operations that return only success or failure.
class StatusReply : public Reply {
 public:
  using Reply::Reply;
  void ok() { take()->reply_error(token(), 0); }
};

class EntryReply : public Reply {
 public:
  using Reply::Reply;
  void ok(const Entry& e) { take()->reply_entry(token(), e); }
};

class CreateReply : public Reply {
 public:
  using Reply::Reply;
  void ok(const Entry& e, const OpenInfo& o) {
    take()->reply_create(token(), e, o);
  }
};

class AttrReply : public Reply {
 public:
  using Reply::Reply;
  void ok(const Attr& a, double timeout = 1.0) {
    take()->reply_attr(token(), a, timeout);
  }
};

class OpenReply : public Reply {
 public:
  using Reply::Reply;
  void ok(const OpenInfo& o) { take()->reply_open(token(), o); }
};

// write and copy_file_range: the number of bytes written.
class WriteReply : public Reply {
 public:
  using Reply::Reply;
  void ok(size_t written) { take()->reply_write(token(), written); }
};

// read, readlink: bytes. The bytes are copied out before ok() returns, so
// they may point into the file system's own memory (no extra copy).
class DataReply : public Reply {
 public:
  using Reply::Reply;
  void ok(std::span<const std::byte> data) {
    iovec v{const_cast<std::byte*>(data.data()), data.size()};
    take()->reply_data(token(), std::span<const iovec>(&v, 1));
  }
  void ok(std::string_view s) {
    ok(std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()),
                                  s.size()));
  }
  void ok(std::span<const iovec> iov) { take()->reply_data(token(), iov); }
  // Answers with `len` bytes of file `fd` at `off` (fewer at its end, as
  // pread(2) would), or with the errno reading them fails with. Over
  // /dev/fuse, when the file system asked for it (Capabilities::
  // splice_write), the data is spliced from the file to the kernel without
  // passing through user space; otherwise it is read into the request's
  // buffer. `fd` need only stay open until ok_fd() returns.
  void ok_fd(int fd, uint64_t off, size_t len) {
    take()->reply_data_fd(token(), fd, off, len);
  }
  // A request-owned buffer to fill before ok(); valid until the reply is sent.
  std::span<std::byte> buffer(size_t size) {
    return sink()->reply_buffer(token(), size);
  }
};

// getxattr/listxattr: when the caller asked with size 0 it wants only the
// size (ok_size); otherwise the value, or ERANGE if it does not fit.
class XattrReply : public DataReply {
 public:
  using DataReply::DataReply;
  void ok_size(size_t size) { take()->reply_xattr_size(token(), size); }
};

class StatfsReply : public Reply {
 public:
  using Reply::Reply;
  void ok(const StatFs& s) { take()->reply_statfs(token(), s); }
};

class LseekReply : public Reply {
 public:
  using Reply::Reply;
  void ok(uint64_t offset) { take()->reply_lseek(token(), offset); }
};

// getlk: the first lock that conflicts with the one asked about, or that
// lock with type F_UNLCK when none does.
class LockReply : public Reply {
 public:
  using Reply::Reply;
  void ok(const Lock& l) { take()->reply_lock(token(), l); }
};

// poll: the events (POLLIN, POLLOUT, ...) the file is ready for now.
class PollReply : public Reply {
 public:
  using Reply::Reply;
  void ok(uint32_t revents) { take()->reply_poll(token(), revents); }
};

// bmap: the device block holding the file's block.
class BmapReply : public Reply {
 public:
  using Reply::Reply;
  void ok(uint64_t block) { take()->reply_bmap(token(), block); }
};

// statx: attributes plus birth time; `timeout` as for AttrReply (it
// applies when `mask` holds all of STATX_BASIC_STATS).
class StatxReply : public Reply {
 public:
  using Reply::Reply;
  void ok(const StatxAttr& a, double timeout = 1.0) {
    take()->reply_statx(token(), a, timeout);
  }
};

// readdir/readdirplus. Add entries with add() until it returns false, then
// ok(). `next_off` is the offset the next readdir call should start from.
// In plus mode every entry other than "." and ".." carries an Entry, and the
// kernel then holds a reference on it exactly as after lookup.
class DirReply : public Reply {
 public:
  DirReply(ReplySink* sink, RequestToken token, bool plus)
      : Reply(sink, token), plus_(plus) {}
  bool plus() const { return plus_; }
  bool add(std::string_view name, Ino ino, uint32_t dtype, uint64_t next_off,
           const Entry* entry = nullptr) {
    return sink()->dir_add(token(), name, ino, dtype, next_off, entry);
  }
  void ok() { take()->reply_dir(token()); }

 private:
  bool plus_;
};

}  // namespace zest::fs
