// PmFsImpl attribute operations: setattr, readlink, extended attributes.
//
// xattrs (docs/format.md, "Extended attributes"): stored by the inode's
// XattrIndex (pmfs/xattr_index.h): small ones packed in slot blocks, large
// values in records of whole blocks, each change one transaction.
// getxattr answers with a span straight into the pool.
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "base/log.h"
#include "zest/fs/xattr_rules.h"
#include "pmfs/format.h"
#include "pmfs/pm_fs.h"

namespace zest::pmfs {
namespace {

using fs::XattrNs;
using fs::xattr_namespace;

int xattr_permission(const fs::Context& ctx, const Inode& i, XattrNs ns, bool write) {
  return fs::xattr_permission(ctx, i.type, ns, write);
}

void set_ts(int64_t* sec, uint32_t* nsec, const timespec& t) {
  *sec = t.tv_sec;
  *nsec = static_cast<uint32_t>(t.tv_nsec);
}

}  // namespace

void PmFsImpl::note_access(Inode& i, uint64_t fh) {
  if ((fh & fs::kFhNoAtime) || !writable()) return;
  const timespec t = now_ts();
  auto needed = [&] {
    const DiskInode& d = i.d;
    return !i.freed && fs::atime_needs_update(opts_.atime, i.is_dir(),
                                              {d.atime_sec, d.atime_nsec},
                                              {d.mtime_sec, d.mtime_nsec},
                                              {d.ctime_sec, d.ctime_nsec}, t);
  };
  {
    std::shared_lock lock(i.mu);
    if (!needed()) return;  // relatime: the common case, no lock taken
  }
  std::unique_lock lock(i.mu);
  if (!needed()) return;
  if (opts_.atime.lazy) {
    set_ts(&i.d.atime_sec, &i.d.atime_nsec, t);
    i.atime_dirty = true;
    return;
  }
  DiskInode nd = i.d;
  set_ts(&nd.atime_sec, &nd.atime_nsec, t);
  Transaction& tx = Transaction::local();
  put_inode(tx, i.ino, nd);
  // A failed update (EIO after a shutdown) leaves atime as it was; the
  // read itself still succeeds, as on a read-only mount.
  if (commit(tx)) i.d = nd;
}

void PmFsImpl::flush_lazy_atime(Inode& i) {
  if (!i.atime_dirty || i.freed || !writable()) return;
  DiskInode nd = i.d;
  Transaction& tx = Transaction::local();
  put_inode(tx, i.ino, nd);
  if (commit(tx)) {
    i.d = nd;
    i.atime_dirty = false;
  }
}

void PmFsImpl::setattr(const fs::Context&, fs::Ino ino, const fs::SetAttr& s, fs::AttrReply r) {
  using A = fs::SetAttr;
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!writable()) return r.error(EROFS);
  std::unique_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  DiskInode nd = i->d;
  // Times and set-id bits as memfs and tmpfs (zest/fs/posix_rules.h:
  // truncate_stamps, setattr_kills_suid, setattr_times).
  bool truncated = false;
  if (s.valid & A::kSize) {
    if (!i->is_reg()) return r.error(i->is_dir() ? EISDIR : EINVAL);
    if (s.size > kMaxFileSize) return r.error(EFBIG);
    const bool resized = s.size != i->d.size;
    const bool had_blocks = i->d.blocks != 0;
    truncated = fs::truncate_stamps(s, resized, had_blocks);
  }
  if (s.valid & A::kMode) nd.mode = i->type | (s.mode & 07777);
  if (s.valid & A::kUid) nd.uid = s.uid;
  if (s.valid & A::kGid) nd.gid = s.gid;
  bool killed = false;
  if (fs::setattr_kills_suid(s, nd.mode)) {
    const uint32_t m = fs::kill_suid_sgid(nd.mode);
    killed = m != nd.mode;
    nd.mode = m;
  }
  const fs::SetAttrTimes times = fs::setattr_times(s, truncated, killed, now_ts());
  if (times.atime) set_ts(&nd.atime_sec, &nd.atime_nsec, *times.atime);
  if (times.mtime) set_ts(&nd.mtime_sec, &nd.mtime_nsec, *times.mtime);
  if (times.ctime) set_ts(&nd.ctime_sec, &nd.ctime_nsec, *times.ctime);
  // chmod rewrites the access ACL, if any, in the same transaction (acl.cc).
  if (s.valid & A::kSize) {
    // The kernel never sends a mode with a size (FUSE_HANDLE_KILLPRIV_V2);
    // should it, the ACL and the mode are committed first.
    if (s.valid & A::kMode) {
      if (Status st = commit_chmod_acl(*i, nd); !st) return r.error(st.error().value);
    }
    if (Status st = truncate_locked(*i, s.size, nd); !st) return r.error(st.error().value);
  } else {
    Transaction& tx = Transaction::local();
    std::optional<XattrChange> acl;
    if (s.valid & A::kMode) {
      Result<std::optional<XattrChange>> a = stage_chmod_acl(*i, nd, tx);
      if (!a) return r.error(a.error().value);
      acl = *a;
    }
    put_inode(tx, i->ino, nd);
    if (Status st = commit(tx); !st) {
      if (acl) undo_xattr(*i, *acl);
      return r.error(st.error().value);
    }
    if (acl) apply_xattr(*i, *acl);
    i->d = nd;
  }
  r.ok(attr_of(*i), opts_.attr_timeout);
}

void PmFsImpl::readlink(const fs::Context&, fs::Ino ino, fs::DataReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_symlink()) return r.error(EINVAL);
  std::shared_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  r.ok(std::string_view(i->target));
}

// --- extended attributes -------------------------------------------------------

Status PmFsImpl::enable_xattr_slots() {
  if (xattr_slots_.load(std::memory_order_acquire)) return {};
  std::lock_guard lock(features_mu_);
  if (xattr_slots_.load(std::memory_order_relaxed)) return {};
  if (!writable()) return Errno(EROFS);
  if (journal_->halted()) return Errno(EIO);
  Superblock sb = sb_;
  sb.features_incompat |= kIncompatXattrSlots;
  seal(&sb);
  write_superblocks(pool_, sb);
  log_info("pmfs: xattr slot blocks in use: the pool now needs zest with kIncompatXattrSlots");
  xattr_slots_.store(true, std::memory_order_release);
  return {};
}

Result<PmFsImpl::XattrChange> PmFsImpl::stage_xattr_set(Inode& i, DiskInode& nd,
                                                        std::string_view name,
                                                        std::span<const std::byte> value,
                                                        Transaction& tx) {
  if (Status s = enable_xattr_slots(); !s) return s.error();
  XattrChange c;
  c.name = name;
  c.replace = i.xattrs.find(name) != i.xattrs.end();
  if (Status s = i.xattrs.stage_set({&pool_, &balloc_, i.ino}, nd, name, value, tx); !s) {
    return s.error();
  }
  return c;
}

PmFsImpl::XattrChange PmFsImpl::stage_xattr_remove(Inode& i, DiskInode& nd,
                                                   std::string_view name, Transaction& tx) {
  XattrChange c;
  c.name = name;
  c.remove = true;
  c.removal = i.xattrs.stage_remove({&pool_, &balloc_, i.ino}, nd, name, tx);
  return c;
}

void PmFsImpl::undo_xattr(Inode& i, const XattrChange& c) {
  if (!c.remove) i.xattrs.rollback(balloc_);
}

void PmFsImpl::apply_xattr(Inode& i, const XattrChange& c) {
  if (c.remove) {
    i.xattrs.apply_remove(c.name, c.removal);
  } else {
    i.xattrs.finish();
  }
}

std::span<const std::byte> PmFsImpl::xattr_value(const Inode& i, std::string_view name) const {
  auto it = i.xattrs.find(name);
  if (it == i.xattrs.end()) return {};
  return pool_.bytes(XattrIndex::value_offset(it), it->second.valuelen);
}

void PmFsImpl::setxattr(const fs::Context& ctx, fs::Ino ino, std::string_view name,
                        std::span<const std::byte> value, uint32_t flags, uint32_t ext_flags,
                        fs::StatusReply r) {
  if (flags & ~uint32_t{XATTR_CREATE | XATTR_REPLACE}) return r.error(EINVAL);
  Result<XattrNs> ns = xattr_namespace(name);
  if (!ns) return r.error(ns.error().value);
  if (value.size() > kXattrMaxValue) return r.error(E2BIG);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (int err = xattr_permission(ctx, *i, *ns, true)) return r.error(err);
  if (!writable()) return r.error(EROFS);
  std::unique_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  if (std::optional<fs::AclType> acl = fs::acl_type(name)) {
    if (int err = set_acl(ctx, *i, *acl, value, ext_flags)) return r.error(err);
    return r.ok();
  }
  auto it = i->xattrs.find(name);
  if (it != i->xattrs.end() && (flags & XATTR_CREATE)) return r.error(EEXIST);
  if (it == i->xattrs.end() && (flags & XATTR_REPLACE)) return r.error(ENODATA);

  Transaction& tx = Transaction::local();
  DiskInode nd = i->d;
  Result<XattrChange> c = stage_xattr_set(*i, nd, name, value, tx);
  if (!c) return r.error(c.error().value);
  stamp(nd, fs::times_for(fs::TimeOp::Xattr).inode, now_ts());
  put_inode(tx, i->ino, nd);
  if (Status s = commit(tx); !s) {
    undo_xattr(*i, *c);
    return r.error(s.error().value);
  }
  apply_xattr(*i, *c);
  i->d = nd;
  r.ok();
}

void PmFsImpl::getxattr(const fs::Context& ctx, fs::Ino ino, std::string_view name,
                        uint32_t size, fs::XattrReply r) {
  Result<XattrNs> ns = xattr_namespace(name);
  if (!ns) return r.error(ns.error().value);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (int err = xattr_permission(ctx, *i, *ns, false)) return r.error(err);
  std::shared_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  auto it = i->xattrs.find(name);
  if (it == i->xattrs.end()) return r.error(ENODATA);
  const XattrLoc& x = it->second;
  if (size == 0) return r.ok_size(x.valuelen);
  if (size < x.valuelen) return r.error(ERANGE);
  // Straight from the pool: the entry cannot be freed while we hold the lock.
  r.ok(pool_.bytes(XattrIndex::value_offset(it), x.valuelen));
}

void PmFsImpl::listxattr(const fs::Context& ctx, fs::Ino ino, uint32_t size, fs::XattrReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::shared_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  fs::reply_xattr_list(i->xattrs, ctx, size, r);
}

void PmFsImpl::removexattr(const fs::Context& ctx, fs::Ino ino, std::string_view name,
                           fs::StatusReply r) {
  Result<XattrNs> ns = xattr_namespace(name);
  if (!ns) return r.error(ns.error().value);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (int err = xattr_permission(ctx, *i, *ns, true)) return r.error(err);
  if (!writable()) return r.error(EROFS);
  std::unique_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  if (std::optional<fs::AclType> acl = fs::acl_type(name)) {
    if (int err = remove_acl(ctx, *i, *acl)) return r.error(err);
    return r.ok();
  }
  if (i->xattrs.find(name) == i->xattrs.end()) return r.error(ENODATA);
  Transaction& tx = Transaction::local();
  DiskInode nd = i->d;
  const XattrChange c = stage_xattr_remove(*i, nd, name, tx);
  stamp(nd, fs::times_for(fs::TimeOp::Xattr).inode, now_ts());
  put_inode(tx, i->ino, nd);
  if (Status s = commit(tx); !s) return r.error(s.error().value);
  apply_xattr(*i, c);
  i->d = nd;
  r.ok();
}

}  // namespace zest::pmfs
