// PmFsImpl attribute operations: setattr, readlink, extended attributes.
//
// xattrs (docs/format.md, "Extended attributes"): a value is a record of
// contiguous blocks written (non-temporally) before the transaction that
// points the table entry at it; the old record is freed after the commit.
// getxattr answers with a span straight into the pool.
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "fs/xattr_rules.h"
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

bool kill_suid(DiskInode& d) {
  uint32_t kill = d.mode & S_ISUID;
  if ((d.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) kill |= S_ISGID;
  d.mode &= ~kill;
  return kill != 0;
}

XattrEntry make_xattr_entry(uint64_t block, uint32_t nblocks) {
  XattrEntry e{};
  e.block = block;
  e.nblocks = nblocks;
  e.csum = crc32c(&e, sizeof(e));
  return e;
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
  const timespec t = now_ts();
  DiskInode nd = i->d;
  // As memfs/tmpfs: ctime moves on every setattr except truncate(2) to the
  // same size of a file holding no blocks; ftruncate/O_TRUNC (with a file
  // handle) always mark mtime and ctime.
  bool changed = (s.valid & ~(A::kSize | A::kKillSuidGid)) != 0 || !(s.valid & A::kSize);
  if (s.valid & A::kSize) {
    if (!i->is_reg()) return r.error(i->is_dir() ? EISDIR : EINVAL);
    if (s.size > kMaxFileSize) return r.error(EFBIG);
    const bool resized = s.size != i->d.size;
    const bool had_blocks = i->d.blocks != 0;
    if (resized || had_blocks || s.has_fh) {
      set_ts(&nd.mtime_sec, &nd.mtime_nsec, t);
      changed = true;
    }
  }
  if (s.valid & A::kMode) nd.mode = i->type | (s.mode & 07777);
  if (s.valid & A::kUid) nd.uid = s.uid;
  if (s.valid & A::kGid) nd.gid = s.gid;
  if (((s.valid & (A::kUid | A::kGid)) && !i->is_dir()) || (s.valid & A::kKillSuidGid)) {
    if (kill_suid(nd)) changed = true;
  }
  if (s.valid & A::kAtime) set_ts(&nd.atime_sec, &nd.atime_nsec, s.atime);
  if (s.valid & A::kAtimeNow) set_ts(&nd.atime_sec, &nd.atime_nsec, t);
  if (s.valid & A::kMtime) set_ts(&nd.mtime_sec, &nd.mtime_nsec, s.mtime);
  if (s.valid & A::kMtimeNow) set_ts(&nd.mtime_sec, &nd.mtime_nsec, t);
  if (s.valid & A::kCtime) {
    set_ts(&nd.ctime_sec, &nd.ctime_nsec, s.ctime);
  } else if (changed) {
    set_ts(&nd.ctime_sec, &nd.ctime_nsec, t);
  }
  if (s.valid & A::kSize) {
    if (Status st = truncate_locked(*i, s.size, nd); !st) return r.error(st.error().value);
  } else {
    Transaction& tx = Transaction::local();
    put_inode(tx, i->ino, nd);
    if (Status st = commit(tx); !st) return r.error(st.error().value);
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

void PmFsImpl::setxattr(const fs::Context& ctx, fs::Ino ino, std::string_view name,
                        std::span<const std::byte> value, uint32_t flags, fs::StatusReply r) {
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
  auto it = i->xattrs.find(name);
  if (it != i->xattrs.end() && (flags & XATTR_CREATE)) return r.error(EEXIST);
  if (it == i->xattrs.end() && (flags & XATTR_REPLACE)) return r.error(ENODATA);

  // Table entry: the same one when replacing, else the first free one.
  uint32_t entry = 0;
  if (it != i->xattrs.end()) {
    entry = it->second.entry;
  } else {
    uint32_t k = 0;
    for (; k < kXattrsPerTable; ++k) {
      if (!(i->xattr_used[k / 64] >> (k % 64) & 1)) break;
    }
    if (k == kXattrsPerTable) return r.error(ENOSPC);
    entry = k;
  }
  Transaction& tx = Transaction::local();
  DiskInode nd = i->d;
  uint64_t new_table = 0;
  if (!nd.xattr_block) {
    auto b = balloc_.alloc_contiguous(1);
    if (!b) return r.error(ENOSPC);
    XattrTableHeader h{};
    h.magic = kXattrTableMagic;
    h.ino = i->ino;
    h.csum = crc32c(&h, sizeof(h));
    pool_.zero(*b * kBlockSize, kBlockSize);
    pool_.write_nt(*b * kBlockSize, &h, sizeof(h));
    new_table = nd.xattr_block = *b;
  }
  // The record: header, name, value in new contiguous blocks.
  const uint64_t len = sizeof(XattrRecordHeader) + name.size() + value.size();
  const uint32_t nblocks = static_cast<uint32_t>((len + kBlockSize - 1) / kBlockSize);
  auto rec = balloc_.alloc_contiguous(nblocks);
  if (!rec) {
    if (new_table) balloc_.free(new_table, 1);
    return r.error(ENOSPC);
  }
  XattrRecordHeader rh{};
  rh.namelen = static_cast<uint16_t>(name.size());
  rh.valuelen = static_cast<uint32_t>(value.size());
  uint32_t crc = crc32c(&rh, sizeof(rh));
  crc = crc32c(name.data(), name.size(), crc);
  crc = crc32c(value.data(), value.size(), crc);
  rh.csum = crc;
  const uint64_t at = *rec * kBlockSize;
  pool_.write_nt(at, &rh, sizeof(rh));
  pool_.write_nt(at + sizeof(rh), name.data(), name.size());
  if (!value.empty()) pool_.write_nt(at + sizeof(rh) + name.size(), value.data(), value.size());
  const uint64_t tail = len & (kBlockSize - 1);
  if (tail) pool_.zero(at + len, kBlockSize - tail);

  tx.put(nd.xattr_block * kBlockSize + sizeof(XattrTableHeader) + entry * sizeof(XattrEntry),
         make_xattr_entry(*rec, nblocks));
  if (it != i->xattrs.end()) tx.free_after(it->second.block, it->second.nblocks);
  set_ts(&nd.ctime_sec, &nd.ctime_nsec, now_ts());
  put_inode(tx, i->ino, nd);
  if (Status s = commit(tx); !s) {
    balloc_.free(*rec, nblocks);
    if (new_table) balloc_.free(new_table, 1);
    return r.error(s.error().value);
  }
  const XattrLoc loc{entry, *rec, nblocks, static_cast<uint32_t>(value.size())};
  if (it != i->xattrs.end()) {
    it->second = loc;
  } else {
    i->xattrs.emplace(std::string(name), loc);
    i->xattr_used[entry / 64] |= uint64_t{1} << (entry % 64);
  }
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
  // Straight from the pool: the record cannot be freed while we hold the lock.
  r.ok(pool_.bytes(x.block * kBlockSize + sizeof(XattrRecordHeader) + it->first.size(),
                   x.valuelen));
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
  auto it = i->xattrs.find(name);
  if (it == i->xattrs.end()) return r.error(ENODATA);
  Transaction& tx = Transaction::local();
  DiskInode nd = i->d;
  const XattrEntry zero{};
  tx.put(nd.xattr_block * kBlockSize + sizeof(XattrTableHeader) +
             it->second.entry * sizeof(XattrEntry),
         zero);
  tx.free_after(it->second.block, it->second.nblocks);
  set_ts(&nd.ctime_sec, &nd.ctime_nsec, now_ts());
  put_inode(tx, i->ino, nd);
  if (Status s = commit(tx); !s) return r.error(s.error().value);
  i->xattr_used[it->second.entry / 64] &= ~(uint64_t{1} << (it->second.entry % 64));
  i->xattrs.erase(it);
  i->d = nd;
  r.ok();
}

}  // namespace zest::pmfs
