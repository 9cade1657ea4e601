// POSIX ACLs: the xattr form and the mode rules (see zest/fs/posix_acl.h).
#include "zest/fs/posix_acl.h"

#include <sys/stat.h>

#include <cerrno>

namespace zest::fs {
namespace {

constexpr size_t kHeaderSize = 4;
constexpr size_t kEntrySize = 8;
constexpr uint16_t kPermBits = 07;

uint32_t load_le(const std::byte* p, size_t n) {
  uint32_t v = 0;
  for (size_t k = 0; k < n; ++k)
    v |= uint32_t(std::to_integer<uint8_t>(p[k])) << (8 * k);
  return v;
}

void store_le(std::byte* p, uint32_t v, size_t n) {
  for (size_t k = 0; k < n; ++k)
    p[k] = std::byte(static_cast<uint8_t>(v >> (8 * k)));
}

bool is_named(uint16_t tag) {
  return tag == AclEntry::kUser || tag == AclEntry::kGroup;
}

// posix_acl_valid(): the tag order of the header comment, one of each
// unnamed entry, a mask iff there are named entries, rwx perms only, and
// named ids that are ids (-1 is none).
bool valid(const std::vector<AclEntry>& entries) {
  enum State { kWantUserObj, kInUsers, kInGroups, kWantOther, kDone };
  State state = kWantUserObj;
  bool needs_mask = false;
  for (const AclEntry& e : entries) {
    if (e.perm & ~kPermBits) return false;
    switch (e.tag) {
      case AclEntry::kUserObj:
        if (state != kWantUserObj) return false;
        state = kInUsers;
        break;
      case AclEntry::kUser:
        if (state != kInUsers || e.id == kAclUndefinedId) return false;
        needs_mask = true;
        break;
      case AclEntry::kGroupObj:
        if (state != kInUsers) return false;
        state = kInGroups;
        break;
      case AclEntry::kGroup:
        if (state != kInGroups || e.id == kAclUndefinedId) return false;
        needs_mask = true;
        break;
      case AclEntry::kMask:
        if (state != kInGroups) return false;
        state = kWantOther;
        break;
      case AclEntry::kOther:
        if (state == kWantOther || (state == kInGroups && !needs_mask)) {
          state = kDone;
          break;
        }
        return false;
      default:
        return false;
    }
  }
  return state == kDone;
}

}  // namespace

std::optional<AclType> acl_type(std::string_view xattr_name) {
  if (xattr_name == kAclAccessXattr) return AclType::Access;
  if (xattr_name == kAclDefaultXattr) return AclType::Default;
  return std::nullopt;
}

Result<PosixAcl> PosixAcl::parse(std::span<const std::byte> value) {
  if (value.empty()) return PosixAcl();
  if (value.size() < kHeaderSize) return Errno(EINVAL);
  if (load_le(value.data(), 4) != kAclXattrVersion) return Errno(EOPNOTSUPP);
  if ((value.size() - kHeaderSize) % kEntrySize != 0) return Errno(EINVAL);
  const size_t count = (value.size() - kHeaderSize) / kEntrySize;
  std::vector<AclEntry> entries;
  entries.reserve(count);
  for (size_t k = 0; k < count; ++k) {
    const std::byte* p = value.data() + kHeaderSize + k * kEntrySize;
    AclEntry e;
    e.tag = static_cast<uint16_t>(load_le(p, 2));
    e.perm = static_cast<uint16_t>(load_le(p + 2, 2));
    // The kernel ignores the id of unnamed entries and writes -1 back.
    e.id = is_named(e.tag) ? load_le(p + 4, 4) : kAclUndefinedId;
    entries.push_back(e);
  }
  if (!entries.empty() && !valid(entries)) return Errno(EINVAL);
  return PosixAcl(std::move(entries));
}

PosixAcl PosixAcl::from_mode(uint32_t mode) {
  return PosixAcl({
      {AclEntry::kUserObj, static_cast<uint16_t>((mode >> 6) & kPermBits),
       kAclUndefinedId},
      {AclEntry::kGroupObj, static_cast<uint16_t>((mode >> 3) & kPermBits),
       kAclUndefinedId},
      {AclEntry::kOther, static_cast<uint16_t>(mode & kPermBits),
       kAclUndefinedId},
  });
}

std::vector<std::byte> PosixAcl::serialize() const {
  if (entries_.empty()) return {};
  std::vector<std::byte> out(kHeaderSize + entries_.size() * kEntrySize);
  store_le(out.data(), kAclXattrVersion, 4);
  std::byte* p = out.data() + kHeaderSize;
  for (const AclEntry& e : entries_) {
    store_le(p, e.tag, 2);
    store_le(p + 2, e.perm, 2);
    store_le(p + 4, is_named(e.tag) ? e.id : kAclUndefinedId, 4);
    p += kEntrySize;
  }
  return out;
}

uint32_t PosixAcl::mode_bits() const {
  uint32_t owner = 0, group = 0, other = 0;
  const AclEntry* mask = nullptr;
  for (const AclEntry& e : entries_) {
    if (e.tag == AclEntry::kUserObj) owner = e.perm;
    if (e.tag == AclEntry::kGroupObj) group = e.perm;
    if (e.tag == AclEntry::kMask) mask = &e;
    if (e.tag == AclEntry::kOther) other = e.perm;
  }
  // With a mask, the group class bits of the mode are the mask.
  if (mask) group = mask->perm;
  return ((owner & kPermBits) << 6) | ((group & kPermBits) << 3) |
         (other & kPermBits);
}

bool PosixAcl::equiv_mode() const {
  for (const AclEntry& e : entries_) {
    if (e.tag != AclEntry::kUserObj && e.tag != AclEntry::kGroupObj &&
        e.tag != AclEntry::kOther)
      return false;
  }
  return true;
}

void PosixAcl::chmod(uint32_t mode) {
  AclEntry* group = nullptr;
  AclEntry* mask = nullptr;
  for (AclEntry& e : entries_) {
    switch (e.tag) {
      case AclEntry::kUserObj:
        e.perm = static_cast<uint16_t>((mode >> 6) & kPermBits);
        break;
      case AclEntry::kGroupObj:
        group = &e;
        break;
      case AclEntry::kMask:
        mask = &e;
        break;
      case AclEntry::kOther:
        e.perm = static_cast<uint16_t>(mode & kPermBits);
        break;
      default:
        break;
    }
  }
  AclEntry* g = mask ? mask : group;
  if (g) g->perm = static_cast<uint16_t>((mode >> 3) & kPermBits);
}

bool PosixAcl::create_masq(uint32_t* mode_p) {
  uint32_t mode = *mode_p;
  AclEntry* group = nullptr;
  AclEntry* mask = nullptr;
  for (AclEntry& e : entries_) {
    switch (e.tag) {
      case AclEntry::kUserObj:
        e.perm &= (mode >> 6) & kPermBits;
        mode &= (uint32_t(e.perm) << 6) | ~uint32_t{S_IRWXU};
        break;
      case AclEntry::kGroupObj:
        group = &e;
        break;
      case AclEntry::kMask:
        mask = &e;
        break;
      case AclEntry::kOther:
        e.perm &= mode & kPermBits;
        mode &= e.perm | ~uint32_t{S_IRWXO};
        break;
      default:
        break;
    }
  }
  // The group class bits of the mode stand for the mask when there is one.
  if (AclEntry* g = mask ? mask : group) {
    g->perm &= (mode >> 3) & kPermBits;
    mode &= (uint32_t(g->perm) << 3) | ~uint32_t{S_IRWXG};
  }
  *mode_p = (*mode_p & ~uint32_t{0777}) | (mode & 0777);
  return equiv_mode();
}

Result<AclChange> acl_set(AclType type, std::span<const std::byte> value,
                          uint32_t mode, bool kill_sgid) {
  if (S_ISLNK(mode)) return Errno(EOPNOTSUPP);  // no ACLs on symlinks (tmpfs)
  Result<PosixAcl> acl = PosixAcl::parse(value);
  if (!acl) return acl.error();
  AclChange c;
  c.mode = mode;
  if (type == AclType::Default) {
    if (!S_ISDIR(mode)) {
      if (!acl->empty()) return Errno(EACCES);
      return c;  // removing a default ACL a file cannot have: nothing to do
    }
    c.value = acl->serialize();
    return c;
  }
  if (!acl->empty()) {
    c.mode = (mode & ~uint32_t{0777}) | acl->mode_bits();
    if (!acl->equiv_mode()) c.value = acl->serialize();
  }
  if (kill_sgid) c.mode &= ~uint32_t{S_ISGID};
  return c;
}

Result<std::vector<std::byte>> acl_chmod(std::span<const std::byte> access,
                                         uint32_t mode) {
  Result<PosixAcl> acl = PosixAcl::parse(access);
  if (!acl || acl->empty()) return Errno(EIO);
  acl->chmod(mode);
  return acl->serialize();
}

Result<AclInherit> acl_inherit(std::span<const std::byte> parent_default,
                               uint32_t mode, uint32_t umask) {
  AclInherit out;
  out.mode = mode;
  if (S_ISLNK(mode)) return out;
  Result<PosixAcl> def = PosixAcl::parse(parent_default);
  if (!def) return Errno(EIO);
  if (def->empty()) {
    out.mode &= ~(umask & 0777);
    return out;
  }
  if (S_ISDIR(mode)) out.default_acl = def->serialize();
  PosixAcl access = *def;
  if (!access.create_masq(&out.mode)) out.access = access.serialize();
  return out;
}

}  // namespace zest::fs
