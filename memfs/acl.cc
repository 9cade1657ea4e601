// POSIX ACLs on memfs inodes (see memfs/acl.h).
#include "memfs/acl.h"

#include <string>
#include <vector>

#include "zest/fs/xattr_rules.h"

namespace zest::memfs {
namespace {

std::string_view xattr_name(fs::AclType type) {
  return type == fs::AclType::Access ? fs::kAclAccessXattr
                                     : fs::kAclDefaultXattr;
}

// Stores `value` under `name`, or removes the xattr when it is empty.
void store(Inode& i, std::string_view name, std::vector<std::byte> value) {
  auto it = i.xattrs.find(name);
  if (value.empty()) {
    if (it != i.xattrs.end()) i.xattrs.erase(it);
  } else if (it != i.xattrs.end()) {
    it->second = std::move(value);
  } else {
    i.xattrs.emplace(std::string(name), std::move(value));
  }
}

}  // namespace

int set_acl(const fs::Context& ctx, Inode& i, fs::AclType type,
            std::span<const std::byte> value, uint32_t ext_flags) {
  if (int err = fs::acl_permission(ctx, i.uid, true)) return err;
  Result<fs::AclChange> c = fs::acl_set(
      type, value, i.mode, (ext_flags & fs::kXattrAclKillSgid) != 0);
  if (!c) return c.error().value;
  i.mode = c->mode;
  store(i, xattr_name(type), std::move(c->value));
  i.touch(fs::TimeOp::Xattr);
  return 0;
}

int remove_acl(const fs::Context& ctx, Inode& i, fs::AclType type) {
  if (int err = fs::acl_permission(ctx, i.uid, true)) return err;
  store(i, xattr_name(type), {});
  i.touch(fs::TimeOp::Xattr);
  return 0;
}

void chmod_acl(Inode& i) {
  auto it = i.xattrs.find(fs::kAclAccessXattr);
  if (it == i.xattrs.end()) return;
  // A stored ACL is valid (set_acl, inherit_acls), so this cannot fail.
  if (Result<std::vector<std::byte>> v = fs::acl_chmod(it->second, i.mode))
    it->second = std::move(*v);
}

void inherit_acls(const fs::Context& ctx, const Inode& parent, Inode& i) {
  std::span<const std::byte> def;
  if (auto it = parent.xattrs.find(fs::kAclDefaultXattr);
      it != parent.xattrs.end()) {
    def = it->second;
  }
  Result<fs::AclInherit> a = fs::acl_inherit(def, i.mode, ctx.umask);
  if (!a) {  // cannot happen: a stored default ACL is valid
    i.mode &= ~(ctx.umask & 0777);
    return;
  }
  i.mode = a->mode;
  store(i, fs::kAclAccessXattr, std::move(a->access));
  store(i, fs::kAclDefaultXattr, std::move(a->default_acl));
}

}  // namespace zest::memfs
