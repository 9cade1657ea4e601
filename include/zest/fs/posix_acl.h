// POSIX ACLs as file systems that store them as xattrs see them: the
// kernel's binary form of system.posix_acl_access / system.posix_acl_default,
// and the rules that tie an ACL to the inode's mode (the kernel's
// fs/posix_acl.c, which tmpfs and ext4 follow). Pure functions, no I/O; memfs
// and pmfs share them so that both answer as tmpfs does.
//
// The xattr value (little-endian): a 4-byte header holding the version (2),
// then 8-byte entries {u16 tag, u16 perm, u32 id}. A valid ACL has exactly one
// USER_OBJ, GROUP_OBJ and OTHER entry, a MASK iff it has named USER or GROUP
// entries, and its entries in tag order: USER_OBJ, USER..., GROUP_OBJ,
// GROUP..., MASK, OTHER (posix_acl_valid()). Like the kernel, named entries
// need not be sorted by id (tmpfs keeps them as given); `id` is meaningful for
// named entries only and is written as kAclUndefinedId for the others.
//
// Who applies what (Linux 6.18, FUSE_POSIX_ACL): the kernel checks
// permissions against the ACLs it reads back with GETXATTR, and validates a
// new ACL before it sends SETXATTR; the file system keeps the mode and the
// ACL consistent (acl_set, acl_chmod) and gives new inodes their inherited
// ACLs (acl_inherit).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "zest/result.h"

namespace zest::fs {

inline constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";
inline constexpr std::string_view kAclDefaultXattr = "system.posix_acl_default";
inline constexpr uint32_t kAclXattrVersion = 2;
inline constexpr uint32_t kAclUndefinedId = 0xffffffff;

enum class AclType { Access, Default };

// The ACL an xattr name stands for, or nullopt for any other name.
std::optional<AclType> acl_type(std::string_view xattr_name);

struct AclEntry {
  enum Tag : uint16_t {
    kUserObj = 0x01,
    kUser = 0x02,
    kGroupObj = 0x04,
    kGroup = 0x08,
    kMask = 0x10,
    kOther = 0x20,
  };
  uint16_t tag = 0;
  uint16_t perm = 0;  // 4 read, 2 write, 1 execute
  uint32_t id = kAclUndefinedId;
  friend bool operator==(const AclEntry&, const AclEntry&) = default;
};

// One ACL. Empty means "no ACL" (how the kernel reads an empty value or a
// header without entries); any other PosixAcl made by parse() or from_mode()
// is valid.
class PosixAcl {
 public:
  PosixAcl() = default;
  // Parses and validates an xattr value. EINVAL for a malformed or invalid
  // ACL, EOPNOTSUPP for another version (as posix_acl_from_xattr).
  static Result<PosixAcl> parse(std::span<const std::byte> value);
  // The three entries that say what `mode`'s permission bits say.
  static PosixAcl from_mode(uint32_t mode);

  bool empty() const { return entries_.empty(); }
  const std::vector<AclEntry>& entries() const { return entries_; }
  // The xattr value (ids of unnamed entries as kAclUndefinedId).
  std::vector<std::byte> serialize() const;

  // The permission bits (0777) the ACL stands for: owner, mask (group when
  // there is no mask), other. The mode an inode with this access ACL has.
  uint32_t mode_bits() const;
  // True when the mode bits say all the ACL says (no named entries, no
  // mask): then no xattr is needed (posix_acl_equiv_mode).
  bool equiv_mode() const;
  // chmod: owner, mask (or group) and other entries take `mode`'s bits
  // (posix_acl_chmod).
  void chmod(uint32_t mode);
  // Creating an inode: the ACL's owner, mask (or group) and other entries
  // are limited to the bits of *mode, and *mode's permission bits to the
  // ACL's (posix_acl_create_masq). Returns equiv_mode() of the result.
  bool create_masq(uint32_t* mode);

 private:
  explicit PosixAcl(std::vector<AclEntry> e) : entries_(std::move(e)) {}
  std::vector<AclEntry> entries_;
};

// Setting an ACL xattr on an inode whose mode is `mode` (the kernel's
// set_posix_acl() with posix_acl_update_mode() for access ACLs).
struct AclChange {
  uint32_t mode = 0;             // the inode's mode afterwards
  std::vector<std::byte> value;  // the xattr to keep; empty: none (remove it)
};
// `value` is what SETXATTR carries; an empty one (or a header alone) removes
// the ACL. An access ACL equivalent to a mode becomes that mode and no
// xattr; `kill_sgid` (FUSE_SETXATTR_ACL_KILL_SGID: the caller is neither in
// the file's group nor privileged) clears S_ISGID when an access ACL is set.
// Errors: EOPNOTSUPP on symlinks, EACCES for a default ACL on anything but a
// directory, and parse()'s.
Result<AclChange> acl_set(AclType type, std::span<const std::byte> value,
                          uint32_t mode, bool kill_sgid);

// chmod of an inode holding the access ACL `access` (a value acl_set kept):
// the ACL to store with the new mode. EIO if `access` is not a valid ACL.
Result<std::vector<std::byte>> acl_chmod(std::span<const std::byte> access,
                                         uint32_t mode);

// A new inode's mode and ACLs (posix_acl_create()).
struct AclInherit {
  uint32_t mode = 0;                   // type and permission bits
  std::vector<std::byte> access;       // empty: no access ACL
  std::vector<std::byte> default_acl;  // empty: no default ACL
};
// `mode`: the type and bits asked for (FUSE_DONT_MASK: the umask not yet
// applied); `parent_default`: the directory's default ACL, empty if none.
// Without one, the umask applies and nothing is inherited. With one, the
// umask is ignored: the new inode's access ACL is the default ACL masked by
// the mode's bits (dropped when then equivalent to the mode), its mode bits
// are limited by the ACL, and a directory also takes the default ACL as its
// own. Symlinks get neither ACLs nor the umask. EIO if `parent_default` is
// not a valid ACL.
Result<AclInherit> acl_inherit(std::span<const std::byte> parent_default,
                               uint32_t mode, uint32_t umask);

}  // namespace zest::fs
