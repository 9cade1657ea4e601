// MemFs file operations: open, read, write, fallocate, lseek, copy.
#include <fcntl.h>
#include <linux/falloc.h>

#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "memfs/mem_fs.h"

namespace zest::memfs {
namespace {

int not_regular(const Inode& i) { return i.is_dir() ? EISDIR : EINVAL; }

// O_TRUNC: an unprivileged truncation drops set-id bits, as the kernel's
// do_truncate does.
void truncate_on_open(const fs::Context& ctx, Inode& i, uint32_t flags) {
  if (!(flags & O_TRUNC) || !i.is_reg()) return;
  (void)i.file->truncate(0);  // shrinking cannot fail
  i.touch(fs::TimeOp::Truncate);
  if (fs::open_trunc_kills_suid(ctx)) i.kill_suid_sgid();
}

}  // namespace

void MemFs::open(const fs::Context& ctx, fs::Ino ino, uint32_t flags,
                 fs::OpenReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (i->is_dir() && (flags & O_ACCMODE) != O_RDONLY) return r.error(EISDIR);
  std::unique_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  truncate_on_open(ctx, *i, flags);
  fs::OpenInfo o = open_info(flags, i.get());
  ++i->open_count;
  r.ok(o);
}

void MemFs::create(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                   uint32_t mode, uint32_t flags, fs::CreateReply r) {
  fs::Entry e;
  auto res = make_node(ctx, parent, name, S_IFREG | (mode & 07777), 0, {}, true, &e);
  if (res) return r.ok(e, open_info(flags));
  if (res.error().value == EEXIST && !(flags & O_EXCL)) {
    // Lost a race with another creator: open(2) without O_EXCL opens it.
    return open_existing(parent, name, flags, ctx, std::move(r));
  }
  r.error(res.error().value);
}

void MemFs::open_existing(fs::Ino parent, std::string_view name, uint32_t flags,
                          const fs::Context& ctx, fs::CreateReply r) {
  InodePtr p = get(parent);
  if (!p) return r.error(ENOENT);
  InodePtr c;
  {
    std::shared_lock lock(p->mu);
    if (const InodePtr* f = p->dir->find(name)) c = *f;
  }
  if (!c) return r.error(ENOENT);
  if (c->is_dir()) return r.error(EISDIR);
  std::unique_lock lock(c->mu);
  if (c->freed) return r.error(ENOENT);
  truncate_on_open(ctx, *c, flags);
  fs::OpenInfo o = open_info(flags, c.get());
  ++c->open_count;
  r.ok(entry_of(*c), o);
}

void MemFs::tmpfile(const fs::Context& ctx, fs::Ino parent, uint32_t mode,
                    uint32_t flags, fs::CreateReply r) {
  InodePtr p = get(parent);
  if (!p) return r.error(ENOENT);
  if (!p->is_dir()) return r.error(ENOTDIR);
  InodePtr i = new_inode(S_IFREG | (mode & 07777));
  if (!i) return r.error(ENOSPC);
  i->nlink = 0;
  i->open_count = 1;
  i->linkable = !(flags & O_EXCL);  // O_EXCL: may never get a name
  {
    std::shared_lock lock(p->mu);
    if (p->nlink == 0) return r.error(ENOENT);
    init_owner(ctx, *p, *i);
  }
  fs::Entry e = entry_of(*i);  // not visible yet: no lock needed
  table_.insert(i);
  r.ok(e, open_info(flags));
}

void MemFs::release(const fs::Context&, fs::Ino ino, uint64_t, uint32_t,
                    fs::StatusReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::unique_lock lock(i->mu);
  if (i->open_count > 0) --i->open_count;
  maybe_free(*i);
  r.ok();
}

void MemFs::fsync(const fs::Context&, fs::Ino, uint64_t, bool, fs::StatusReply r) {
  r.ok();  // memory is as durable as memfs gets
}

// --- read / write -----------------------------------------------------------

void MemFs::read(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
                 uint32_t size, fs::DataReply r) {
  if (!pool_) return do_read(ino, fh, offset, size, std::move(r));
  pool_->post([this, ino, fh, offset, size, r = std::move(r)]() mutable {
    if (r.interrupted()) return r.error(EINTR);
    do_read(ino, fh, offset, size, std::move(r));
  });
}

void MemFs::note_access(Inode& i, uint64_t fh) {
  if (fh & fs::kFhNoAtime) return;
  const timespec t = now();
  {
    std::shared_lock lock(i.mu);
    if (!fs::atime_needs_update(opts_.atime, i.is_dir(), i.atime, i.mtime, i.ctime, t))
      return;
  }
  std::unique_lock lock(i.mu);
  if (!i.freed && fs::atime_needs_update(opts_.atime, i.is_dir(), i.atime, i.mtime, i.ctime, t))
    i.atime = t;
}

void MemFs::do_read(fs::Ino ino, uint64_t fh, uint64_t offset, uint32_t size,
                    fs::DataReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_reg()) return r.error(not_regular(*i));
  // Before the reply: the kernel refetches atime after a read reply.
  note_access(*i, fh);
  IovecList iov;  // inline: no allocation for reads up to 1 MiB
  std::shared_lock lock(i->mu);
  i->file->read(offset, size, iov);
  // The sink copies the bytes out before ok() returns, so the pages only
  // need to stay put while the lock is held.
  r.ok(iov.span());
}

void MemFs::write(const fs::Context&, fs::Ino ino, uint64_t, uint64_t offset,
                  std::span<const std::byte> data, uint32_t flags,
                  fs::WriteReply r) {
  if (!pool_) return do_write(ino, offset, data, flags, std::move(r));
  // The data is only valid during this call: keep a copy for later.
  pool_->post([this, ino, offset, flags, copy = std::vector<std::byte>(data.begin(), data.end()),
               r = std::move(r)]() mutable {
    if (r.interrupted()) return r.error(EINTR);
    do_write(ino, offset, copy, flags, std::move(r));
  });
}

void MemFs::do_write(fs::Ino ino, uint64_t offset, std::span<const std::byte> data,
                     uint32_t flags, fs::WriteReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_reg()) return r.error(not_regular(*i));
  std::unique_lock lock(i->mu);
  Result<size_t> n = i->file->write(offset, data);
  if (!n) return r.error(n.error().value);
  if (*n > 0) {
    i->touch(fs::TimeOp::Write);
    if (fs::write_kills_suid(flags)) i->kill_suid_sgid();
  }
  r.ok(*n);
}

// --- fallocate / lseek / copy_file_range --------------------------------------

void MemFs::fallocate(const fs::Context&, fs::Ino ino, uint64_t, uint32_t mode,
                      uint64_t offset, uint64_t length, fs::StatusReply r) {
  constexpr uint32_t kKnown =
      FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~kKnown) return r.error(EOPNOTSUPP);
  const bool punch = mode & FALLOC_FL_PUNCH_HOLE;
  const bool zero = mode & FALLOC_FL_ZERO_RANGE;
  const bool keep = mode & FALLOC_FL_KEEP_SIZE;
  if (punch && (zero || !keep)) return r.error(EOPNOTSUPP);  // as vfs_fallocate
  if (length == 0) return r.error(EINVAL);
  if (offset > kMaxFileSize || length > kMaxFileSize - offset) return r.error(EFBIG);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_reg()) return r.error(i->is_dir() ? EISDIR : ENODEV);
  std::unique_lock lock(i->mu);
  if (punch) {
    i->file->punch_hole(offset, length);
  } else {
    Status s = zero ? i->file->zero_range(offset, length, keep)
                    : i->file->allocate(offset, length, keep);
    if (!s) return r.error(s.error().value);
  }
  i->touch(fs::TimeOp::Fallocate);  // tmpfs: every successful mode
  r.ok();
}

void MemFs::lseek(const fs::Context&, fs::Ino ino, uint64_t, uint64_t offset,
                  int whence, fs::LseekReply r) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return r.error(EINVAL);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_reg()) return r.error(not_regular(*i));
  std::shared_lock lock(i->mu);
  Result<uint64_t> pos = i->file->seek(offset, whence == SEEK_DATA);
  if (!pos) return r.error(pos.error().value);
  r.ok(*pos);
}

void MemFs::copy_file_range(const fs::Context&, fs::Ino ino_in, uint64_t,
                            uint64_t off_in, fs::Ino ino_out, uint64_t,
                            uint64_t off_out, uint64_t len, uint32_t flags,
                            fs::WriteReply r) {
  if (flags != 0) return r.error(EINVAL);
  InodePtr in = get(ino_in);
  InodePtr out = get(ino_out);
  if (!in || !out) return r.error(ENOENT);
  if (!in->is_reg()) return r.error(not_regular(*in));
  if (!out->is_reg()) return r.error(not_regular(*out));
  if (off_in > kMaxFileSize || off_out > kMaxFileSize) return r.error(EINVAL);
  len = std::min(len, kMaxFileSize - std::max(off_in, off_out));
  Result<size_t> n = size_t{0};
  if (in == out) {
    std::unique_lock lock(out->mu);
    // The kernel refuses overlapping ranges within one file, once the copy
    // is shortened to the source's EOF (generic_copy_file_checks).
    const uint64_t size = in->file->size();
    const uint64_t count = off_in >= size ? 0 : std::min(len, size - off_in);
    if (off_out + count > off_in && off_out < off_in + count) return r.error(EINVAL);
    n = out->file->copy_from(*in->file, off_in, off_out, len);
    if (n && *n > 0) out->touch(fs::TimeOp::Write);
  } else {
    // Two inodes: in increasing inode number (lock order step 2).
    std::shared_lock<std::shared_mutex> lin(in->mu, std::defer_lock);
    std::unique_lock<std::shared_mutex> lout(out->mu, std::defer_lock);
    if (in->ino < out->ino) {
      lin.lock();
      lout.lock();
    } else {
      lout.lock();
      lin.lock();
    }
    n = out->file->copy_from(*in->file, off_in, off_out, len);
    if (n && *n > 0) out->touch(fs::TimeOp::Write);
  }
  if (!n) return r.error(n.error().value);
  r.ok(*n);
}

}  // namespace zest::memfs
