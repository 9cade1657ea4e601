// MemFs attribute operations: setattr, readlink, access, statfs, xattrs.
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "zest/fs/xattr_rules.h"
#include "memfs/acl.h"
#include "memfs/mem_fs.h"

namespace zest::memfs {
namespace {

using fs::XattrNs;
using fs::xattr_namespace;
using fs::kXattrSizeMax;

int xattr_permission(const fs::Context& ctx, const Inode& i, XattrNs ns, bool write) {
  return fs::xattr_permission(ctx, i.mode, ns, write);
}

}  // namespace

void MemFs::setattr(const fs::Context&, fs::Ino ino, const fs::SetAttr& s,
                    fs::AttrReply r) {
  using A = fs::SetAttr;
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::unique_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  const timespec t = now();
  // ctime moves on every setattr (chown(f, -1, -1) arrives with no fields
  // and still marks it), except truncate(2) to the size the file already
  // has when the file holds no pages, which changes nothing on tmpfs
  // (shmem_setattr; with pages, shmem_truncate_range stamps the times). ftruncate(2) and
  // O_TRUNC come with a file handle and always mark mtime and ctime, as the
  // VFS passes ATTR_MTIME|ATTR_CTIME for them.
  bool changed = (s.valid & ~(A::kSize | A::kKillSuidGid)) != 0 ||
                 !(s.valid & A::kSize);
  if (s.valid & A::kSize) {
    if (!i->is_reg()) return r.error(i->is_dir() ? EISDIR : EINVAL);
    if (s.size > kMaxFileSize) return r.error(EFBIG);
    const bool resized = s.size != i->file->size();
    // tmpfs truncates the page range whenever the file holds pages, and
    // shmem_truncate_range stamps mtime and ctime even at the same size.
    const bool had_pages = i->file->allocated_pages() != 0;
    Status st = i->file->truncate(s.size);
    if (!st) return r.error(st.error().value);
    if (resized || had_pages || s.has_fh) {
      i->mtime = t;
      changed = true;
    }
  }
  if (s.valid & A::kMode) {
    i->mode = i->type | (s.mode & 07777);
    chmod_acl(*i);
  }
  if (s.valid & A::kUid) i->uid = s.uid;
  if (s.valid & A::kGid) i->gid = s.gid;
  // chown of a non-directory drops set-id bits (chown_common), as does a
  // truncation the kernel marks so.
  // chown(2) of a non-directory drops set-id bits, also chown(f, -1, -1).
  // With FUSE_HANDLE_KILLPRIV_V2 the kernel sends that one, and the
  // privilege drop before a write by a caller without CAP_FSETID, as a
  // SETATTR that changes nothing (valid 0), leaving the bits to us.
  const bool chown_like = (s.valid & (A::kUid | A::kGid)) || s.valid == 0;
  if ((chown_like && !i->is_dir()) || (s.valid & A::kKillSuidGid)) {
    if (i->kill_suid_sgid()) changed = true;
  }
  if (s.valid & A::kAtime) i->atime = s.atime;
  if (s.valid & A::kAtimeNow) i->atime = t;
  if (s.valid & A::kMtime) i->mtime = s.mtime;
  if (s.valid & A::kMtimeNow) i->mtime = t;
  if (s.valid & A::kCtime) {
    i->ctime = s.ctime;
  } else if (changed) {
    i->ctime = t;
  }
  r.ok(i->attr(), opts_.attr_timeout);
}

void MemFs::readlink(const fs::Context&, fs::Ino ino, fs::DataReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_symlink()) return r.error(EINVAL);
  std::shared_lock lock(i->mu);
  r.ok(std::string_view(i->target));
}

void MemFs::access(const fs::Context& ctx, fs::Ino ino, uint32_t mask,
                   fs::StatusReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::shared_lock lock(i->mu);
  mask &= R_OK | W_OK | X_OK;
  if (mask == 0) return r.ok();  // F_OK: it exists
  if (ctx.uid == 0) {
    // Root may read and write anything; execute needs some x bit on a
    // non-directory (generic_permission with CAP_DAC_OVERRIDE).
    if ((mask & X_OK) && !i->is_dir() && !(i->mode & 0111)) return r.error(EACCES);
    return r.ok();
  }
  uint32_t bits;
  if (ctx.uid == i->uid) {
    bits = (i->mode >> 6) & 7;
  } else if (ctx.gid == i->gid) {
    bits = (i->mode >> 3) & 7;
  } else {
    bits = i->mode & 7;
  }
  if ((bits & mask) != mask) return r.error(EACCES);
  r.ok();
}

void MemFs::statfs(const fs::Context&, fs::Ino, fs::StatfsReply r) {
  fs::StatFs s;
  s.bsize = s.frsize = kPageSize;
  s.blocks = budget_.max_pages();
  s.bfree = s.bavail = s.blocks - std::min(s.blocks, budget_.used_pages());
  s.files = budget_.max_inodes();
  s.ffree = s.files - std::min(s.files, budget_.used_inodes());
  s.namelen = 255;
  r.ok(s);
}

// --- extended attributes ------------------------------------------------------

void MemFs::setxattr(const fs::Context& ctx, fs::Ino ino, std::string_view name,
                     std::span<const std::byte> value, uint32_t flags,
                     uint32_t ext_flags, fs::StatusReply r) {
  if (flags & ~uint32_t{XATTR_CREATE | XATTR_REPLACE}) return r.error(EINVAL);
  Result<XattrNs> ns = xattr_namespace(name);
  if (!ns) return r.error(ns.error().value);
  if (value.size() > kXattrSizeMax) return r.error(E2BIG);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (int err = xattr_permission(ctx, *i, *ns, true)) return r.error(err);
  std::unique_lock lock(i->mu);
  if (std::optional<fs::AclType> acl = fs::acl_type(name)) {
    if (int err = set_acl(ctx, *i, *acl, value, ext_flags)) return r.error(err);
    return r.ok();
  }
  auto it = i->xattrs.find(name);
  if (it != i->xattrs.end() && (flags & XATTR_CREATE)) return r.error(EEXIST);
  if (it == i->xattrs.end() && (flags & XATTR_REPLACE)) return r.error(ENODATA);
  if (it == i->xattrs.end()) {
    i->xattrs.emplace(std::string(name), std::vector<std::byte>(value.begin(), value.end()));
  } else {
    it->second.assign(value.begin(), value.end());
  }
  i->touch_ctime();
  r.ok();
}

void MemFs::getxattr(const fs::Context& ctx, fs::Ino ino, std::string_view name,
                     uint32_t size, fs::XattrReply r) {
  Result<XattrNs> ns = xattr_namespace(name);
  if (!ns) return r.error(ns.error().value);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (int err = xattr_permission(ctx, *i, *ns, false)) return r.error(err);
  std::shared_lock lock(i->mu);
  auto it = i->xattrs.find(name);
  if (it == i->xattrs.end()) return r.error(ENODATA);
  if (size == 0) return r.ok_size(it->second.size());
  if (size < it->second.size()) return r.error(ERANGE);
  r.ok(std::span<const std::byte>(it->second));
}

void MemFs::listxattr(const fs::Context& ctx, fs::Ino ino, uint32_t size,
                      fs::XattrReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::shared_lock lock(i->mu);
  fs::reply_xattr_list(i->xattrs, ctx, size, r);
}

void MemFs::removexattr(const fs::Context& ctx, fs::Ino ino, std::string_view name,
                        fs::StatusReply r) {
  Result<XattrNs> ns = xattr_namespace(name);
  if (!ns) return r.error(ns.error().value);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (int err = xattr_permission(ctx, *i, *ns, true)) return r.error(err);
  std::unique_lock lock(i->mu);
  if (std::optional<fs::AclType> acl = fs::acl_type(name)) {
    if (int err = remove_acl(ctx, *i, *acl)) return r.error(err);
    return r.ok();
  }
  auto it = i->xattrs.find(name);
  if (it == i->xattrs.end()) return r.error(ENODATA);
  i->xattrs.erase(it);
  i->touch_ctime();
  r.ok();
}

}  // namespace zest::memfs
