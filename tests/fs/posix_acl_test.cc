// zest/fs/posix_acl.h: the xattr form of POSIX ACLs and the mode rules, checked
// against what the kernel's fs/posix_acl.c does (and tmpfs shows).
#include "zest/fs/posix_acl.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <initializer_list>
#include <vector>

namespace zest::fs {
namespace {

using E = AclEntry;
constexpr uint32_t U = kAclUndefinedId;

std::vector<std::byte> xattr(std::initializer_list<AclEntry> entries,
                             uint32_t version = kAclXattrVersion) {
  std::vector<std::byte> v(4 + 8 * entries.size());
  auto put = [&](size_t at, uint32_t x, size_t n) {
    for (size_t k = 0; k < n; ++k)
      v[at + k] = std::byte(static_cast<uint8_t>(x >> (8 * k)));
  };
  put(0, version, 4);
  size_t at = 4;
  for (const AclEntry& e : entries) {
    put(at, e.tag, 2);
    put(at + 2, e.perm, 2);
    put(at + 4, e.id, 4);
    at += 8;
  }
  return v;
}

std::vector<AclEntry> entries_of(std::span<const std::byte> v) {
  Result<PosixAcl> a = PosixAcl::parse(v);
  EXPECT_TRUE(a) << "not a valid ACL";
  return a ? a->entries() : std::vector<AclEntry>{};
}

int parse_error(const std::vector<std::byte>& v) {
  Result<PosixAcl> a = PosixAcl::parse(v);
  return a ? 0 : a.error().value;
}

// user::rwx user:1000:rwx group::r-x mask::rwx other::r-x
const std::vector<std::byte> kNamed = xattr({{E::kUserObj, 7, U},
                                             {E::kUser, 7, 1000},
                                             {E::kGroupObj, 5, U},
                                             {E::kMask, 7, U},
                                             {E::kOther, 5, U}});

TEST(PosixAclTest, NamesOfTheTwoAcls) {
  EXPECT_EQ(acl_type("system.posix_acl_access"), AclType::Access);
  EXPECT_EQ(acl_type("system.posix_acl_default"), AclType::Default);
  EXPECT_FALSE(acl_type("system.posix_acl"));
  EXPECT_FALSE(acl_type("user.posix_acl_access"));
}

TEST(PosixAclTest, ParsesAndSerializesBack) {
  Result<PosixAcl> a = PosixAcl::parse(kNamed);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->entries().size(), 5u);
  EXPECT_EQ(a->entries()[1], (AclEntry{E::kUser, 7, 1000}));
  EXPECT_EQ(a->serialize(), kNamed);
}

TEST(PosixAclTest, IdsOfUnnamedEntriesAreWrittenUndefined) {
  // The kernel ignores them on the way in and writes -1 (tmpfs shows that).
  auto v =
      xattr({{E::kUserObj, 7, 5}, {E::kGroupObj, 5, 6}, {E::kOther, 4, 7}});
  Result<PosixAcl> a = PosixAcl::parse(v);
  ASSERT_TRUE(a);
  EXPECT_EQ(
      a->serialize(),
      xattr({{E::kUserObj, 7, U}, {E::kGroupObj, 5, U}, {E::kOther, 4, U}}));
}

TEST(PosixAclTest, EmptyValueOrHeaderAloneIsNoAcl) {
  Result<PosixAcl> a = PosixAcl::parse({});
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->empty());
  Result<PosixAcl> b = PosixAcl::parse(xattr({}));
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->empty());
  EXPECT_TRUE(b->serialize().empty());
}

TEST(PosixAclTest, RejectsMalformedValues) {
  auto base =
      xattr({{E::kUserObj, 7, U}, {E::kGroupObj, 5, U}, {E::kOther, 5, U}});
  EXPECT_EQ(parse_error(std::vector<std::byte>(base.begin(), base.begin() + 3)),
            EINVAL);
  EXPECT_EQ(parse_error(std::vector<std::byte>(base.begin(), base.end() - 1)),
            EINVAL);
  EXPECT_EQ(
      parse_error(xattr(
          {{E::kUserObj, 7, U}, {E::kGroupObj, 5, U}, {E::kOther, 5, U}}, 1)),
      EOPNOTSUPP);
}

TEST(PosixAclTest, RejectsInvalidAcls) {
  // Each is one rule of posix_acl_valid() broken.
  const std::vector<std::vector<std::byte>> bad = {
      // a named user without a mask
      xattr({{E::kUserObj, 7, U},
             {E::kUser, 7, 1000},
             {E::kGroupObj, 5, U},
             {E::kOther, 5, U}}),
      // a named group without a mask
      xattr({{E::kUserObj, 7, U},
             {E::kGroupObj, 5, U},
             {E::kGroup, 5, 50},
             {E::kOther, 5, U}}),
      // no OTHER
      xattr({{E::kUserObj, 7, U}, {E::kGroupObj, 5, U}}),
      // no USER_OBJ
      xattr({{E::kGroupObj, 5, U}, {E::kOther, 5, U}}),
      // no GROUP_OBJ
      xattr({{E::kUserObj, 7, U}, {E::kOther, 5, U}}),
      // USER_OBJ twice
      xattr({{E::kUserObj, 7, U},
             {E::kUserObj, 7, U},
             {E::kGroupObj, 5, U},
             {E::kOther, 5, U}}),
      // out of tag order: a named user after GROUP_OBJ
      xattr({{E::kUserObj, 7, U},
             {E::kGroupObj, 5, U},
             {E::kUser, 7, 1000},
             {E::kMask, 7, U},
             {E::kOther, 5, U}}),
      // out of tag order: OTHER before MASK
      xattr({{E::kUserObj, 7, U},
             {E::kUser, 7, 1000},
             {E::kGroupObj, 5, U},
             {E::kOther, 5, U},
             {E::kMask, 7, U}}),
      // a permission bit beyond rwx
      xattr({{E::kUserObj, 8, U}, {E::kGroupObj, 5, U}, {E::kOther, 5, U}}),
      // an unknown tag
      xattr({{E::kUserObj, 7, U},
             {0x40, 7, U},
             {E::kGroupObj, 5, U},
             {E::kOther, 5, U}}),
      // a named user whose id is none (-1)
      xattr({{E::kUserObj, 7, U},
             {E::kUser, 7, U},
             {E::kGroupObj, 5, U},
             {E::kMask, 7, U},
             {E::kOther, 5, U}}),
  };
  for (size_t k = 0; k < bad.size(); ++k)
    EXPECT_EQ(parse_error(bad[k]), EINVAL) << k;
}

TEST(PosixAclTest, AcceptsWhatTheKernelAccepts) {
  // A mask without named entries, and named users out of id order or
  // repeated: posix_acl_valid() allows them, tmpfs keeps them as given.
  EXPECT_EQ(parse_error(xattr({{E::kUserObj, 7, U},
                               {E::kGroupObj, 5, U},
                               {E::kMask, 1, U},
                               {E::kOther, 4, U}})),
            0);
  auto unsorted = xattr({{E::kUserObj, 7, U},
                         {E::kUser, 7, 1001},
                         {E::kUser, 5, 1000},
                         {E::kGroupObj, 5, U},
                         {E::kMask, 7, U},
                         {E::kOther, 5, U}});
  EXPECT_EQ(PosixAcl::parse(unsorted)->serialize(), unsorted);
}

TEST(PosixAclTest, ModeBitsAndEquivalence) {
  PosixAcl m = PosixAcl::from_mode(0640);
  EXPECT_EQ(m.mode_bits(), 0640u);
  EXPECT_TRUE(m.equiv_mode());
  EXPECT_EQ(
      m.serialize(),
      xattr({{E::kUserObj, 6, U}, {E::kGroupObj, 4, U}, {E::kOther, 0, U}}));

  Result<PosixAcl> named = PosixAcl::parse(xattr({{E::kUserObj, 6, U},
                                                  {E::kUser, 7, 1000},
                                                  {E::kGroupObj, 4, U},
                                                  {E::kMask, 5, U},
                                                  {E::kOther, 0, U}}));
  ASSERT_TRUE(named);
  EXPECT_EQ(named->mode_bits(), 0650u);  // the group bits are the mask
  EXPECT_FALSE(named->equiv_mode());
  Result<PosixAcl> mask_only = PosixAcl::parse(xattr({{E::kUserObj, 7, U},
                                                      {E::kGroupObj, 5, U},
                                                      {E::kMask, 1, U},
                                                      {E::kOther, 4, U}}));
  ASSERT_TRUE(mask_only);
  EXPECT_EQ(mask_only->mode_bits(), 0714u);
  EXPECT_FALSE(mask_only->equiv_mode());
}

TEST(PosixAclTest, ChmodSetsOwnerMaskAndOther) {
  Result<PosixAcl> a = PosixAcl::parse(kNamed);
  ASSERT_TRUE(a);
  a->chmod(0640);
  // The named user and the owning group keep their entries; the mask takes
  // the group bits.
  EXPECT_EQ(a->entries(), (std::vector<AclEntry>{{E::kUserObj, 6, U},
                                                 {E::kUser, 7, 1000},
                                                 {E::kGroupObj, 5, U},
                                                 {E::kMask, 4, U},
                                                 {E::kOther, 0, U}}));
  PosixAcl b = PosixAcl::from_mode(0777);
  b.chmod(0751);
  EXPECT_EQ(b.mode_bits(), 0751u);  // no mask: the group entry
}

TEST(PosixAclTest, SetAccessAclUpdatesTheMode) {
  Result<AclChange> c =
      acl_set(AclType::Access, kNamed, S_IFREG | 02600, false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->mode, uint32_t{S_IFREG | 02775});  // set-id bits stay
  EXPECT_EQ(c->value, kNamed);
  // Not in the file's group: S_ISGID goes.
  c = acl_set(AclType::Access, kNamed, S_IFREG | 02600, true);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->mode, uint32_t{S_IFREG | 0775});
}

TEST(PosixAclTest, SetAccessAclEquivalentToAModeKeepsNoXattr) {
  auto v =
      xattr({{E::kUserObj, 7, U}, {E::kGroupObj, 5, U}, {E::kOther, 4, U}});
  Result<AclChange> c = acl_set(AclType::Access, v, S_IFDIR | 01700, false);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->mode, uint32_t{S_IFDIR | 01754});
  EXPECT_TRUE(c->value.empty());
}

TEST(PosixAclTest, DefaultAclOnlyOnDirectories) {
  Result<AclChange> d = acl_set(AclType::Default, kNamed, S_IFDIR | 0755, true);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->mode,
            uint32_t{S_IFDIR | 0755});  // a default ACL leaves the mode
  EXPECT_EQ(d->value, kNamed);
  EXPECT_EQ(
      acl_set(AclType::Default, kNamed, S_IFREG | 0644, false).error().value,
      EACCES);
  // Removing one from a file is allowed and does nothing (tmpfs).
  Result<AclChange> rm = acl_set(AclType::Default, {}, S_IFREG | 0644, false);
  ASSERT_TRUE(rm);
  EXPECT_TRUE(rm->value.empty());
  EXPECT_EQ(
      acl_set(AclType::Access, kNamed, S_IFLNK | 0777, false).error().value,
      EOPNOTSUPP);
  EXPECT_EQ(
      acl_set(AclType::Access, xattr({{E::kUserObj, 7, U}}), S_IFREG, false)
          .error()
          .value,
      EINVAL);
}

TEST(PosixAclTest, ChmodOfAStoredAcl) {
  Result<std::vector<std::byte>> v = acl_chmod(kNamed, S_IFREG | 0600);
  ASSERT_TRUE(v);
  EXPECT_EQ(entries_of(*v)[3], (AclEntry{E::kMask, 0, U}));
  EXPECT_EQ(acl_chmod({}, 0600).error().value, EIO);
}

TEST(PosixAclTest, InheritWithoutDefaultAclAppliesTheUmask) {
  Result<AclInherit> a = acl_inherit({}, S_IFREG | 0666, 022);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode, uint32_t{S_IFREG | 0644});
  EXPECT_TRUE(a->access.empty());
  EXPECT_TRUE(a->default_acl.empty());
  Result<AclInherit> d = acl_inherit({}, S_IFDIR | 01777, 077);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->mode, uint32_t{S_IFDIR | 01700});
}

TEST(PosixAclTest, InheritedFileAclIsTheDefaultMaskedByTheMode) {
  // open(O_CREAT, 0666) with umask 077 under the default ACL kNamed: the
  // umask is ignored (posix_acl_create_masq).
  Result<AclInherit> a = acl_inherit(kNamed, S_IFREG | 0666, 077);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode, uint32_t{S_IFREG | 0664});
  EXPECT_EQ(entries_of(a->access), (std::vector<AclEntry>{{E::kUserObj, 6, U},
                                                          {E::kUser, 7, 1000},
                                                          {E::kGroupObj, 5, U},
                                                          {E::kMask, 6, U},
                                                          {E::kOther, 4, U}}));
  EXPECT_TRUE(a->default_acl.empty());  // files have none
}

TEST(PosixAclTest, InheritedDirectoryAlsoKeepsTheDefaultAcl) {
  Result<AclInherit> a = acl_inherit(kNamed, S_IFDIR | 02777, 077);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode, uint32_t{S_IFDIR | 02775});
  EXPECT_EQ(a->access, kNamed);
  EXPECT_EQ(a->default_acl, kNamed);
}

TEST(PosixAclTest, InheritedAclEquivalentToTheModeIsDropped) {
  auto plain =
      xattr({{E::kUserObj, 7, U}, {E::kGroupObj, 0, U}, {E::kOther, 0, U}});
  Result<AclInherit> f = acl_inherit(plain, S_IFREG | 0644, 022);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->mode, uint32_t{S_IFREG | 0600});
  EXPECT_TRUE(f->access.empty());
  Result<AclInherit> d = acl_inherit(plain, S_IFDIR | 0755, 022);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->mode, uint32_t{S_IFDIR | 0700});
  EXPECT_TRUE(d->access.empty());
  EXPECT_EQ(d->default_acl, plain);
}

TEST(PosixAclTest, SymlinksInheritNothing) {
  Result<AclInherit> a = acl_inherit(kNamed, S_IFLNK | 0777, 077);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode, uint32_t{S_IFLNK | 0777});
  EXPECT_TRUE(a->access.empty());
  EXPECT_EQ(acl_inherit(xattr({{E::kUserObj, 7, U}}), S_IFREG | 0644, 0)
                .error()
                .value,
            EIO);
}

}  // namespace
}  // namespace zest::fs
