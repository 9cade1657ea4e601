// MirrorFs: regular files.
//
// The data fd. Passthrough opens all share one fd per inode (the kernel
// refuses a second, different backing file for an inode that has a
// passthrough open: EBUSY, seen as EIO by open(2)). It is opened O_RDWR
// when the backing file allows it, else with the open's access mode, and
// closed when the last open using it is released.
//
// What the kernel does with it: FUSE_DEV_IOC_BACKING_OPEN takes any fd of
// a regular file (even O_PATH) and records its path and the server's
// credentials; each passthrough open then opens its own backing file on
// that path with the *caller's* open flags (fuse_passthrough_open ->
// backing_file_open(..., file->f_flags, ...)). So O_APPEND, O_DIRECT,
// O_SYNC and O_NOATIME of the caller reach the backing file without the
// shared fd having them, and the shared fd must not have them either: when
// the server falls back to direct mode we serve read/write with
// pread/pwrite at the offsets the kernel computed (it already turned
// O_APPEND into an offset at its EOF; an O_APPEND fd would make Linux's
// pwrite ignore the offset), from buffers that are not aligned for
// O_DIRECT. O_SYNC/O_DSYNC become an fdatasync after each served write.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "mirrorfs/caller_creds.h"
#include "mirrorfs/mirror_fs.h"

namespace zest::mirrorfs {
namespace {

bool wants_write(int access) { return access != O_RDONLY; }

// Whether an fd opened with `have` serves an open with `want`.
bool covers(int have, int want) {
  return have == O_RDWR || have == want;
}

// Opens the object `i` names for data, with access mode `access`. Only the
// flags that change how the backing file system treats I/O on this fd are
// kept (see the top of the file); O_NOFOLLOW would refuse the /proc link.
UniqueFd open_data(const MirrorInode& i, int access, uint32_t flags) {
  int f = access | O_CLOEXEC | (static_cast<int>(flags) & O_NOATIME);
  return UniqueFd(::open(i.proc().c_str(), f));
}

}  // namespace

Result<int> MirrorFs::share_data_fd(MirrorInode& i, int access) {
  if (!i.data_fd) {
    UniqueFd fd = open_data(i, O_RDWR, 0);
    int have = O_RDWR;
    if (!fd && (errno == EACCES || errno == EPERM || errno == EROFS ||
                errno == ETXTBSY) && access != O_RDWR) {
      fd = open_data(i, access, 0);
      have = access;
    }
    if (!fd) return last_errno();
    i.data_fd = std::move(fd);
    i.data_access = have;
  }
  ++i.data_users;
  return i.data_fd.get();
}

void MirrorFs::unshare_data_fd(MirrorInode& i) {
  if (--i.data_users == 0) {
    i.data_fd.reset();
    i.data_access = -1;
  }
}

Result<std::unique_ptr<OpenFile>> MirrorFs::open_file(const InodePtr& i,
                                                      uint32_t flags) {
  auto f = std::make_unique<OpenFile>();
  f->inode = i;
  const int access = static_cast<int>(flags) & O_ACCMODE;
  f->sync = flags & (O_SYNC | O_DSYNC);
  if (opts_.io_mode == fs::IoMode::Passthrough) {
    std::lock_guard lock(i->mu);
    auto fd = share_data_fd(*i, access);
    if (!fd) return fd.error();
    f->shared = true;
    f->fd = *fd;
    f->writable = wants_write(i->data_access);
    if (!covers(i->data_access, access)) {
      // The shared fd was opened when less was allowed (a read-only open
      // of a file then not writable): this open serves its own data.
      f->own = open_data(*i, access, flags);
      if (!f->own) {
        Errno e = last_errno();
        unshare_data_fd(*i);
        return e;
      }
      f->fd = f->own.get();
      f->writable = wants_write(access);
    }
  } else {
    f->own = open_data(*i, access, flags);
    if (!f->own) return last_errno();
    f->fd = f->own.get();
    f->writable = wants_write(access);
  }
  return f;
}

fs::OpenInfo MirrorFs::open_info(const OpenFile& f) const {
  fs::OpenInfo o;
  o.fh = reinterpret_cast<uintptr_t>(&f);
  o.mode = opts_.io_mode;
  if (o.mode == fs::IoMode::Cached) o.keep_cache = true;
  if (o.mode == fs::IoMode::Passthrough) o.backing_fd = f.inode->data_fd.get();
  return o;
}

void MirrorFs::open(const fs::Context&, fs::Ino ino, uint32_t flags,
                    fs::OpenReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (i->is_dir()) return r.error(EISDIR);
  auto f = open_file(i, flags);
  if (!f) return r.error(f.error().value);
  if (flags & O_TRUNC) {
    // FUSE_ATOMIC_O_TRUNC: the truncation is ours to do.
    int rc = (*f)->writable ? ::ftruncate((*f)->fd, 0)
                            : ::truncate(i->proc().c_str(), 0);
    if (rc != 0) {
      int e = errno;
      if ((*f)->shared) {
        std::lock_guard lock(i->mu);
        unshare_data_fd(*i);
      }
      return r.error(e);
    }
  }
  OpenFile* of = f->release();
  fs::OpenInfo info;
  {
    // Under the lock: a release of another open cannot close the shared
    // fd between our taking it and the server registering it.
    std::lock_guard lock(i->mu);
    info = open_info(*of);
  }
  r.ok(info);
}

void MirrorFs::finish_create(UniqueFd fd, uint32_t flags, fs::CreateReply& r) {
  // Name the new object by itself, not by its name (a rename may race).
  UniqueFd path(::open(ProcPath(fd.get()).c_str(), O_PATH | O_CLOEXEC));
  if (!path) return r.error(errno);
  std::unique_lock<std::mutex> lock;
  fs::Entry e;
  auto i = acquire(std::move(path), &lock, &e);
  if (!i) return r.error(i.error().value);
  MirrorInode& in = **i;
  auto f = std::make_unique<OpenFile>();
  f->inode = *i;
  f->sync = flags & (O_SYNC | O_DSYNC);
  if (opts_.io_mode == fs::IoMode::Passthrough) {
    if (!in.data_fd) {  // the usual case: a new file; its fd becomes shared
      in.data_fd = std::move(fd);
      in.data_access = O_RDWR;
    }
    ++in.data_users;
    f->shared = true;
    f->fd = in.data_fd.get();
    f->writable = wants_write(in.data_access);
  } else {
    f->own = std::move(fd);
    f->fd = f->own.get();
    f->writable = true;
  }
  fs::OpenInfo info = open_info(*f);
  f.release();
  r.ok(e, info);  // under the inode lock: see acquire()
}

void MirrorFs::create(const fs::Context& ctx, fs::Ino parent,
                      std::string_view name, uint32_t mode, uint32_t flags,
                      fs::CreateReply r) {
  InodePtr dir = get(parent);
  if (!dir) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ENAMETOOLONG);
  // O_RDWR whatever the caller asked (the kernel enforces its access mode
  // on its own file); O_EXCL/O_TRUNC as asked; never through a symlink a
  // change behind our back may have put there.
  int oflags = O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC |
               (static_cast<int>(flags) & (O_EXCL | O_TRUNC));
  UniqueFd fd;
  {
    CallerCreds creds(ctx, as_caller_);
    if (!creds.ok()) return r.error(EPERM);
    fd.reset(::openat(dir->path_fd.get(), n.c_str(), oflags, mode));
  }
  if (!fd) return r.error(errno);
  finish_create(std::move(fd), flags, r);
}

void MirrorFs::tmpfile(const fs::Context& ctx, fs::Ino parent, uint32_t mode,
                       uint32_t flags, fs::CreateReply r) {
  InodePtr dir = get(parent);
  if (!dir) return r.error(ENOENT);
  // Never O_EXCL here: the kernel decides whether the caller may link the
  // file (I_LINKABLE on its own inode); our copy must stay linkable.
  UniqueFd fd;
  {
    CallerCreds creds(ctx, as_caller_);
    if (!creds.ok()) return r.error(EPERM);
    fd.reset(::openat(dir->path_fd.get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC,
                      mode));
  }
  if (!fd) return r.error(errno);
  finish_create(std::move(fd), flags, r);
}

void MirrorFs::read(const fs::Context&, fs::Ino, uint64_t fh, uint64_t offset,
                    uint32_t size, fs::DataReply r) {
  // The server reads the backing file into the request's buffer, or, when
  // splicing, moves its pages to the kernel without copying them here.
  r.ok_fd(open_file_of(fh)->fd, offset, size);
}

void MirrorFs::write(const fs::Context&, fs::Ino, uint64_t fh, uint64_t offset,
                     std::span<const std::byte> data, uint32_t flags,
                     fs::WriteReply r) {
  OpenFile* f = open_file_of(fh);
  if (flags & 1u) {  // FUSE_WRITE_KILL_SUIDGID: the writer is unprivileged
    struct stat st;
    if (::fstat(f->fd, &st) == 0 &&
        ((st.st_mode & S_ISUID) ||
         (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))) {
      mode_t m = st.st_mode & 07777 & ~mode_t(S_ISUID);
      if (m & S_IXGRP) m &= ~mode_t(S_ISGID);
      ::fchmod(f->fd, m);
    }
  }
  ssize_t n = ::pwrite(f->fd, data.data(), data.size(), static_cast<off_t>(offset));
  if (n < 0) return r.error(errno);
  if (f->sync && ::fdatasync(f->fd) != 0) return r.error(errno);
  r.ok(static_cast<size_t>(n));
}

void MirrorFs::release(const fs::Context&, fs::Ino, uint64_t fh, uint32_t,
                       fs::StatusReply r) {
  std::unique_ptr<OpenFile> f(open_file_of(fh));
  if (f->shared) {
    std::lock_guard lock(f->inode->mu);
    unshare_data_fd(*f->inode);
  }
  r.ok();
}

void MirrorFs::fsync(const fs::Context&, fs::Ino, uint64_t fh, bool datasync,
                     fs::StatusReply r) {
  OpenFile* f = open_file_of(fh);
  int rc = datasync ? ::fdatasync(f->fd) : ::fsync(f->fd);
  if (rc != 0) return r.error(errno);
  r.ok();
}

void MirrorFs::fallocate(const fs::Context&, fs::Ino, uint64_t fh,
                         uint32_t mode, uint64_t offset, uint64_t length,
                         fs::StatusReply r) {
  OpenFile* f = open_file_of(fh);
  const off_t off = static_cast<off_t>(offset), len = static_cast<off_t>(length);
  if (::fallocate(f->fd, static_cast<int>(mode), off, len) == 0) return r.ok();
  if (errno != EOPNOTSUPP || (mode & ~uint32_t(FALLOC_FL_ZERO_RANGE |
                                               FALLOC_FL_KEEP_SIZE)) ||
      !(mode & FALLOC_FL_ZERO_RANGE))
    return r.error(errno);
  // ZERO_RANGE where the backing file system has none (tmpfs): punch the
  // range out, then allocate it again (and extend, unless KEEP_SIZE). Not
  // atomic: a concurrent reader may see the hole before the allocation,
  // which reads as zeros all the same.
  if (::fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) != 0 ||
      ::fallocate(f->fd, static_cast<int>(mode & FALLOC_FL_KEEP_SIZE), off, len) != 0)
    return r.error(errno);
  r.ok();
}

void MirrorFs::lseek(const fs::Context&, fs::Ino, uint64_t fh, uint64_t offset,
                     int whence, fs::LseekReply r) {
  // The fd's own position is never used for I/O (pread/pwrite only), so
  // moving it here, even on the shared fd, disturbs nothing.
  OpenFile* f = open_file_of(fh);
  off_t o = ::lseek(f->fd, static_cast<off_t>(offset), whence);
  if (o < 0) return r.error(errno);
  r.ok(static_cast<uint64_t>(o));
}

void MirrorFs::copy_file_range(const fs::Context&, fs::Ino, uint64_t fh_in,
                               uint64_t off_in, fs::Ino, uint64_t fh_out,
                               uint64_t off_out, uint64_t len, uint32_t flags,
                               fs::WriteReply r) {
  OpenFile* in = open_file_of(fh_in);
  OpenFile* out = open_file_of(fh_out);
  loff_t a = static_cast<loff_t>(off_in), b = static_cast<loff_t>(off_out);
  ssize_t n = ::copy_file_range(in->fd, &a, out->fd, &b, len, flags);
  if (n < 0) return r.error(errno);
  r.ok(static_cast<size_t>(n));
}

}  // namespace zest::mirrorfs
