// POSIX ACLs on memfs inodes. They live in Inode::xattrs under the names
// system.posix_acl_access and system.posix_acl_default, always in the
// kernel's form and valid (zest/fs/posix_acl.h checks them on the way in), and
// stay consistent with the mode as on tmpfs: an access ACL's owner, mask (or
// group) and other entries are the mode's permission bits, and an access ACL
// that says no more than the mode is not kept.
#pragma once

#include <cstdint>
#include <span>

#include "zest/fs/posix_acl.h"
#include "zest/fs/types.h"
#include "memfs/inode.h"

namespace zest::memfs {

// setxattr of an ACL name: validates, updates the mode with an access ACL
// and keeps or drops the xattr (fs::acl_set). XATTR_CREATE/REPLACE do not
// apply (the kernel never passes them for ACLs). 0 or an errno. Caller holds
// i.mu exclusively.
int set_acl(const fs::Context& ctx, Inode& i, fs::AclType type,
            std::span<const std::byte> value, uint32_t ext_flags);

// removexattr of an ACL name; removing one the inode does not have succeeds,
// as on tmpfs. Caller holds i.mu exclusively.
int remove_acl(const fs::Context& ctx, Inode& i, fs::AclType type);

// After a chmod: the access ACL, if any, takes the new permission bits.
// Caller holds i.mu exclusively.
void chmod_acl(Inode& i);

// A new inode `i` in `parent`: the umask (ctx.umask) or the parent's default
// ACL applied to i.mode, and the ACLs it inherits. Caller holds parent.mu;
// `i` is not visible to anyone else yet.
void inherit_acls(const fs::Context& ctx, const Inode& parent, Inode& i);

}  // namespace zest::memfs
