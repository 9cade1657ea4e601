// The kernel's rules for extended-attribute names, shared by file systems
// that store xattrs themselves (memfs, pmfs) so that each answers the same
// errnos as tmpfs.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>

#include "zest/result.h"
#include "zest/fs/posix_acl.h"
#include "zest/fs/reply.h"
#include "zest/fs/types.h"

namespace zest::fs {

inline constexpr size_t kXattrNameMax = 255;      // XATTR_NAME_MAX
inline constexpr size_t kXattrSizeMax = 1 << 16;  // XATTR_SIZE_MAX

// PosixAcl: system.posix_acl_access and system.posix_acl_default, which a
// file system stores through zest/fs/posix_acl.h (other system.* names are not
// supported).
enum class XattrNs { User, Trusted, Security, PosixAcl };

// The namespace of an xattr name, or the errno the kernel gives for it.
inline Result<XattrNs> xattr_namespace(std::string_view name) {
  if (name.empty() || name.size() > kXattrNameMax) return Errno(ERANGE);
  if (acl_type(name)) return XattrNs::PosixAcl;
  struct Prefix {
    std::string_view text;
    XattrNs ns;
  };
  for (Prefix p : {Prefix{"user.", XattrNs::User}, Prefix{"trusted.", XattrNs::Trusted},
                   Prefix{"security.", XattrNs::Security}}) {
    if (name.substr(0, p.text.size()) == p.text) {
      if (name.size() == p.text.size()) return Errno(EINVAL);
      return p.ns;
    }
  }
  return Errno(EOPNOTSUPP);  // other system.* names and anything else
}

// As the kernel's xattr_permission(): user.* only on regular files and
// directories; trusted.* only for CAP_SYS_ADMIN (root here); no ACLs on
// symlinks (who may change an ACL: acl_permission). 0 if allowed.
inline int xattr_permission(const Context& ctx, uint32_t mode, XattrNs ns, bool write) {
  if (ns == XattrNs::PosixAcl && S_ISLNK(mode)) return EOPNOTSUPP;  // as tmpfs
  if (ns == XattrNs::User && !S_ISREG(mode) && !S_ISDIR(mode)) return write ? EPERM : ENODATA;
  if (ns == XattrNs::Trusted && ctx.uid != 0) return write ? EPERM : ENODATA;
  return 0;
}

// As the kernel's vfs_set_acl()/vfs_remove_acl(): only the owner (or root)
// changes an inode's ACLs; anyone may read them (the kernel reads them to
// check permissions, as the caller). 0 if allowed.
inline int acl_permission(const Context& ctx, uint32_t owner, bool write) {
  if (write && ctx.uid != 0 && ctx.uid != owner) return EPERM;
  return 0;
}

// listxattr hides trusted.* names from callers without CAP_SYS_ADMIN.
inline bool xattr_is_trusted(std::string_view name) { return name.starts_with("trusted."); }

// Answers listxattr from a map keyed by name (values unused): the names,
// NUL-terminated, without trusted.* unless the caller is privileged, and
// the ACL names first, access before default (as tmpfs); size 0 asks for the
// length, a smaller buffer is ERANGE.
template <class Map>
void reply_xattr_list(const Map& xattrs, const Context& ctx, uint32_t size, XattrReply& r) {
  const bool show_trusted = ctx.uid == 0;
  size_t total = 0;
  for (const auto& [name, v] : xattrs) {
    if (show_trusted || !xattr_is_trusted(name)) total += name.size() + 1;
  }
  if (size == 0) return r.ok_size(total);
  if (size < total) return r.error(ERANGE);
  if (total == 0) return r.ok(std::span<const std::byte>());
  std::span<std::byte> buf = r.buffer(total);
  size_t pos = 0;
  auto put = [&](std::string_view name) {
    std::memcpy(buf.data() + pos, name.data(), name.size());
    pos += name.size();
    buf[pos++] = std::byte{0};
  };
  for (std::string_view acl : {kAclAccessXattr, kAclDefaultXattr}) {
    if (xattrs.find(acl) != xattrs.end()) put(acl);
  }
  for (const auto& [name, v] : xattrs) {
    if ((!show_trusted && xattr_is_trusted(name)) || acl_type(name)) continue;
    put(name);
  }
  r.ok(std::span<const std::byte>(buf.data(), total));
}

}  // namespace zest::fs
