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
  // Times and set-id bits as tmpfs (zest/fs/posix_rules.h: truncate_stamps,
  // setattr_kills_suid, setattr_times).
  bool truncated = false;
  if (s.valid & A::kSize) {
    if (!i->is_reg()) return r.error(i->is_dir() ? EISDIR : EINVAL);
    if (s.size > kMaxFileSize) return r.error(EFBIG);
    const bool resized = s.size != i->file->size();
    const bool had_pages = i->file->allocated_pages() != 0;
    Status st = i->file->truncate(s.size);
    if (!st) return r.error(st.error().value);
    truncated = fs::truncate_stamps(s, resized, had_pages);
  }
  if (s.valid & A::kMode) {
    i->mode = i->type | (s.mode & 07777);
    chmod_acl(*i);
  }
  if (s.valid & A::kUid) i->uid = s.uid;
  if (s.valid & A::kGid) i->gid = s.gid;
  const bool killed = fs::setattr_kills_suid(s, i->mode) && i->kill_suid_sgid();
  const fs::SetAttrTimes times = fs::setattr_times(s, truncated, killed, now());
  if (times.atime) i->atime = *times.atime;
  if (times.mtime) i->mtime = *times.mtime;
  if (times.ctime) i->ctime = *times.ctime;
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
  i->touch(fs::TimeOp::Xattr);
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
  i->touch(fs::TimeOp::Xattr);
  r.ok();
}

}  // namespace zest::memfs
