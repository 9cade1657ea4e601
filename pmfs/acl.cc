// PmFsImpl POSIX ACLs: stored as the xattrs system.posix_acl_access and
// system.posix_acl_default (docs/format.md, "Extended attributes"; no format
// of their own), always in the kernel's form and valid, and kept consistent
// with the mode as on tmpfs (zest/fs/posix_acl.h). Every change of an ACL commits
// with the mode it implies in one transaction: setting an access ACL, chmod,
// and creating an inode that inherits its directory's default ACL.
#include <optional>
#include <utility>
#include <vector>

#include "zest/fs/xattr_rules.h"
#include "pmfs/pm_fs.h"

namespace zest::pmfs {
namespace {

std::string_view xattr_name(fs::AclType type) {
  return type == fs::AclType::Access ? fs::kAclAccessXattr
                                     : fs::kAclDefaultXattr;
}

}  // namespace

int PmFsImpl::set_acl(const fs::Context& ctx, Inode& i, fs::AclType type,
                      std::span<const std::byte> value, uint32_t ext_flags) {
  if (int err = fs::acl_permission(ctx, i.d.uid, true)) return err;
  Result<fs::AclChange> a = fs::acl_set(
      type, value, i.d.mode, (ext_flags & fs::kXattrAclKillSgid) != 0);
  if (!a) return a.error().value;
  const std::string_view name = xattr_name(type);
  Transaction& tx = Transaction::local();
  DiskInode nd = i.d;
  nd.mode = a->mode;
  std::optional<XattrChange> c;
  if (!a->value.empty()) {
    Result<XattrChange> s = stage_xattr_set(i, nd, name, a->value, tx);
    if (!s) return s.error().value;
    c = *s;
  } else if (i.xattrs.find(name) != i.xattrs.end()) {
    c = stage_xattr_remove(i, nd, name, tx);  // now equivalent to the mode
  }
  stamp(nd, fs::times_for(fs::TimeOp::Xattr).inode, now_ts());
  put_inode(tx, i.ino, nd);
  if (Status s = commit(tx); !s) {
    if (c) undo_xattr(i, *c);
    return s.error().value;
  }
  if (c) apply_xattr(i, *c);
  i.d = nd;
  return 0;
}

int PmFsImpl::remove_acl(const fs::Context& ctx, Inode& i, fs::AclType type) {
  if (int err = fs::acl_permission(ctx, i.d.uid, true)) return err;
  const std::string_view name = xattr_name(type);
  Transaction& tx = Transaction::local();
  DiskInode nd = i.d;
  std::optional<XattrChange> c;
  // Removing an ACL the inode does not have succeeds, as on tmpfs.
  if (i.xattrs.find(name) != i.xattrs.end())
    c = stage_xattr_remove(i, nd, name, tx);
  stamp(nd, fs::times_for(fs::TimeOp::Xattr).inode, now_ts());
  put_inode(tx, i.ino, nd);
  if (Status s = commit(tx); !s) return s.error().value;
  if (c) apply_xattr(i, *c);
  i.d = nd;
  return 0;
}

Result<std::optional<PmFsImpl::XattrChange>> PmFsImpl::stage_chmod_acl(
    Inode& i, const DiskInode& nd, Transaction& tx) {
  std::span<const std::byte> old = xattr_value(i, fs::kAclAccessXattr);
  if (old.empty()) return std::optional<XattrChange>();
  // EIO only if the pool holds an invalid ACL, which no operation writes.
  Result<std::vector<std::byte>> v = fs::acl_chmod(old, nd.mode);
  if (!v) return v.error();
  // The record is written while staging; only the name must live on.
  DiskInode same = nd;  // the access ACL exists, so the table does too
  Result<XattrChange> c = stage_xattr_set(i, same, fs::kAclAccessXattr, *v, tx);
  if (!c) return c.error();
  return std::optional<XattrChange>(*c);
}

Status PmFsImpl::commit_chmod_acl(Inode& i, const DiskInode& nd) {
  Transaction& tx = Transaction::local();
  Result<std::optional<XattrChange>> c = stage_chmod_acl(i, nd, tx);
  if (!c) return c.error();
  if (!*c) return {};
  DiskInode md = i.d;
  md.mode = nd.mode;
  md.ctime_sec = nd.ctime_sec;
  md.ctime_nsec = nd.ctime_nsec;
  put_inode(tx, i.ino, md);
  if (Status s = commit(tx); !s) {
    undo_xattr(i, **c);
    return s;
  }
  apply_xattr(i, **c);
  i.d = md;
  return {};
}

int PmFsImpl::stage_inherited_acls(const fs::Context& ctx,
                                   std::span<const std::byte> parent_default,
                                   Inode& i, DiskInode& d, Transaction& tx,
                                   NewAcls* acls) {
  acls->n = 0;
  // EIO only if the parent's default ACL in the pool is invalid.
  Result<fs::AclInherit> a = fs::acl_inherit(parent_default, d.mode, ctx.umask);
  if (!a) return a.error().value;
  d.mode = a->mode;
  const std::pair<std::string_view, const std::vector<std::byte>*> wanted[] = {
      {fs::kAclAccessXattr, &a->access},
      {fs::kAclDefaultXattr, &a->default_acl}};
  for (const auto& [name, value] : wanted) {
    if (value->empty()) continue;
    Result<XattrChange> c = stage_xattr_set(i, d, name, *value, tx);
    if (!c) {
      for (size_t k = acls->n; k-- > 0;) undo_xattr(i, acls->changes[k]);
      acls->n = 0;
      d.xattr_block = 0;
      return c.error().value;
    }
    acls->changes[acls->n++] = *c;
  }
  return 0;
}

}  // namespace zest::pmfs
