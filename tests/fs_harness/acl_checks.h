// POSIX ACL behaviour every file system with Capabilities::posix_acl shares
// (memfs, pmfs), as checks on a CallRunner: each function is the body of one
// test, called from tests/memfs/acl_test.cc and tests/pmfs/acl_test.cc. The
// expected values are what tmpfs does (tests/mount/acl_test.cc compares the
// two through the kernel).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>
#include <initializer_list>
#include <string>

#include "zest/fs/posix_acl.h"
#include "tests/fs_harness/call_runner.h"

namespace zest::fs_harness::acl {

using E = fs::AclEntry;
inline constexpr uint32_t U = fs::kAclUndefinedId;
inline constexpr std::string_view kAccess = fs::kAclAccessXattr;
inline constexpr std::string_view kDefault = fs::kAclDefaultXattr;

// The xattr form of `entries` (little-endian, as on x86 and arm64).
inline std::string value(std::initializer_list<fs::AclEntry> entries) {
  std::string v("\x02\0\0\0", 4);
  for (const fs::AclEntry& e : entries) {
    v.append(reinterpret_cast<const char*>(&e.tag), 2);
    v.append(reinterpret_cast<const char*>(&e.perm), 2);
    v.append(reinterpret_cast<const char*>(&e.id), 4);
  }
  return v;
}

// user::rw- user:1000:rwx group::r-- mask::rwx other::r--
inline const std::string kNamed = value({{E::kUserObj, 6, U},
                                         {E::kUser, 7, 1000},
                                         {E::kGroupObj, 4, U},
                                         {E::kMask, 7, U},
                                         {E::kOther, 4, U}});

// The value of an xattr, or its errno.
inline Result<std::string> get(CallRunner& h, fs::Ino ino,
                               std::string_view name) {
  auto c = h.getxattr(ino, name, 1 << 16);
  if (c->kind == Call::kData) return c->data;
  return Errno(c->err ? c->err : -1);
}
inline std::string list(CallRunner& h, fs::Ino ino) {
  auto c = h.listxattr(ino, 1 << 16);
  return c->kind == Call::kData ? c->data : "error " + std::to_string(c->err);
}
inline uint32_t mode(CallRunner& h, fs::Ino ino) {
  auto a = h.getattr(ino);
  EXPECT_TRUE(a);
  return a ? a->mode : 0;
}
inline fs::SetAttr chmod_to(uint32_t mode) {
  fs::SetAttr s;
  s.valid = fs::SetAttr::kMode;
  s.mode = mode;
  return s;
}

// Setting an access ACL sets the mode's bits from it (the mask for the
// group) and keeps the value; one that says no more than a mode becomes that
// mode and no xattr.
inline void AccessAclSetsTheMode(CallRunner& h) {
  auto f = h.create(fs::kRootIno, "f", 0600);
  ASSERT_TRUE(f);
  ASSERT_EQ(h.setxattr(f->ino, kAccess, kNamed), 0);
  EXPECT_EQ(mode(h, f->ino), uint32_t{S_IFREG | 0674});
  EXPECT_EQ(*get(h, f->ino, kAccess), kNamed);
  EXPECT_EQ(list(h, f->ino), std::string("system.posix_acl_access\0", 24));
  // Ids of unnamed entries come back as -1, as the kernel writes them.
  std::string odd = value({{E::kUserObj, 6, 7},
                           {E::kUser, 7, 1000},
                           {E::kGroupObj, 4, 7},
                           {E::kMask, 7, 7},
                           {E::kOther, 4, 7}});
  ASSERT_EQ(h.setxattr(f->ino, kAccess, odd), 0);
  EXPECT_EQ(*get(h, f->ino, kAccess), kNamed);

  ASSERT_EQ(h.setxattr(f->ino, kAccess,
                       value({{E::kUserObj, 7, U},
                              {E::kGroupObj, 5, U},
                              {E::kOther, 0, U}})),
            0);
  EXPECT_EQ(mode(h, f->ino), uint32_t{S_IFREG | 0750});
  EXPECT_EQ(err_of(get(h, f->ino, kAccess)), ENODATA);
  EXPECT_EQ(list(h, f->ino), "");
  // XATTR_CREATE / XATTR_REPLACE do not apply to ACLs (the kernel never
  // passes them on).
  EXPECT_EQ(h.setxattr(f->ino, kAccess, kNamed, XATTR_REPLACE), 0);
  EXPECT_EQ(h.setxattr(f->ino, kAccess, kNamed, XATTR_CREATE), 0);
  // An empty value removes it (the mode stays).
  EXPECT_EQ(h.setxattr(f->ino, kAccess, ""), 0);
  EXPECT_EQ(err_of(get(h, f->ino, kAccess)), ENODATA);
  EXPECT_EQ(mode(h, f->ino), uint32_t{S_IFREG | 0674});
}

// FUSE_SETXATTR_ACL_KILL_SGID: the caller is not in the file's group.
inline void KillSgidFlag(CallRunner& h) {
  auto f = h.create(fs::kRootIno, "f", 0644);
  ASSERT_TRUE(f);
  ASSERT_TRUE(h.setattr(f->ino, chmod_to(02755)));
  ASSERT_EQ(h.setxattr(f->ino, kAccess, kNamed), 0);
  EXPECT_EQ(mode(h, f->ino), uint32_t{S_IFREG | 02674});
  ASSERT_EQ(h.setxattr(f->ino, kAccess, kNamed, 0, fs::kXattrAclKillSgid), 0);
  EXPECT_EQ(mode(h, f->ino), uint32_t{S_IFREG | 0674});
  // Also when the ACL is equivalent to a mode.
  ASSERT_TRUE(h.setattr(f->ino, chmod_to(02755)));
  ASSERT_EQ(
      h.setxattr(
          f->ino, kAccess,
          value({{E::kUserObj, 7, U}, {E::kGroupObj, 5, U}, {E::kOther, 5, U}}),
          0, fs::kXattrAclKillSgid),
      0);
  EXPECT_EQ(mode(h, f->ino), uint32_t{S_IFREG | 0755});
}

// Which inodes take which ACL, who may set them, and what is refused.
inline void Rules(CallRunner& h) {
  auto f = h.create(fs::kRootIno, "f", 0644);
  auto d = h.mkdir(fs::kRootIno, "d", 0755);
  auto l = h.symlink("f", fs::kRootIno, "l");
  ASSERT_TRUE(f && d && l);
  EXPECT_EQ(h.setxattr(f->ino, kDefault, kNamed), EACCES);
  EXPECT_EQ(h.setxattr(d->ino, kDefault, kNamed), 0);
  EXPECT_EQ(*get(h, d->ino, kDefault), kNamed);
  EXPECT_EQ(mode(h, d->ino),
            uint32_t{S_IFDIR | 0755});  // a default ACL leaves the mode
  EXPECT_EQ(err_of(get(h, f->ino, kDefault)), ENODATA);
  // Removing what is not there succeeds (tmpfs).
  EXPECT_EQ(h.removexattr(f->ino, kDefault), 0);
  EXPECT_EQ(h.removexattr(f->ino, kAccess), 0);
  EXPECT_EQ(h.removexattr(d->ino, kDefault), 0);
  EXPECT_EQ(err_of(get(h, d->ino, kDefault)), ENODATA);
  // No ACLs on symlinks.
  EXPECT_EQ(h.setxattr(l->ino, kAccess, kNamed), EOPNOTSUPP);
  EXPECT_EQ(err_of(get(h, l->ino, kAccess)), EOPNOTSUPP);
  EXPECT_EQ(h.removexattr(l->ino, kAccess), EOPNOTSUPP);
  // Invalid values.
  EXPECT_EQ(h.setxattr(f->ino, kAccess,
                       value({{E::kUserObj, 7, U},
                              {E::kUser, 7, 1000},
                              {E::kGroupObj, 5, U},
                              {E::kOther, 5, U}})),
            EINVAL);  // a named entry without a mask
  EXPECT_EQ(h.setxattr(f->ino, kAccess, kNamed.substr(0, kNamed.size() - 1)),
            EINVAL);
  std::string v1 = kNamed;
  v1[0] = 1;
  EXPECT_EQ(h.setxattr(f->ino, kAccess, v1), EOPNOTSUPP);  // version 1
  EXPECT_EQ(h.setxattr(f->ino, "system.posix_acl", kNamed), EOPNOTSUPP);
  EXPECT_EQ(mode(h, f->ino), uint32_t{S_IFREG | 0644});
  // Only the owner (or root) changes an ACL; anyone reads it.
  ASSERT_EQ(h.setxattr(f->ino, kAccess, kNamed), 0);
  h.ctx.uid = 1000;
  EXPECT_EQ(h.setxattr(f->ino, kAccess, kNamed), EPERM);
  EXPECT_EQ(h.removexattr(f->ino, kAccess), EPERM);
  EXPECT_EQ(*get(h, f->ino, kAccess), kNamed);
  h.ctx.uid = 0;
  EXPECT_EQ(h.removexattr(f->ino, kAccess), 0);
  EXPECT_EQ(mode(h, f->ino),
            uint32_t{S_IFREG | 0674});  // removing leaves the mode
}

// chmod rewrites the access ACL: owner, mask (not the group entry), other.
inline void ChmodRewritesTheAcl(CallRunner& h) {
  auto f = h.create(fs::kRootIno, "f", 0644);
  ASSERT_TRUE(f);
  ASSERT_EQ(h.setxattr(f->ino, kAccess, kNamed), 0);
  auto a = h.setattr(f->ino, chmod_to(0750));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode, uint32_t{S_IFREG | 0750});
  EXPECT_EQ(*get(h, f->ino, kAccess), value({{E::kUserObj, 7, U},
                                             {E::kUser, 7, 1000},
                                             {E::kGroupObj, 4, U},
                                             {E::kMask, 5, U},
                                             {E::kOther, 0, U}}));
  // Without an ACL a chmod stores none.
  auto g = h.create(fs::kRootIno, "g", 0644);
  ASSERT_TRUE(g);
  ASSERT_TRUE(h.setattr(g->ino, chmod_to(0600)));
  EXPECT_EQ(err_of(get(h, g->ino, kAccess)), ENODATA);
}

// New inodes: the umask without a default ACL; with one, the umask is
// ignored and the ACL inherited (posix_acl_create).
inline void Inheritance(CallRunner& h) {
  auto d = h.mkdir(fs::kRootIno, "d", 0755);
  ASSERT_TRUE(d);
  ASSERT_EQ(h.setxattr(d->ino, kDefault, kNamed), 0);
  h.ctx.umask = 077;
  // kNamed masked by 0666: user::rw- user:1000:rwx group::r-- mask::rw-
  // other::r--
  const std::string file_acl = value({{E::kUserObj, 6, U},
                                      {E::kUser, 7, 1000},
                                      {E::kGroupObj, 4, U},
                                      {E::kMask, 6, U},
                                      {E::kOther, 4, U}});
  auto f = h.create(d->ino, "f", 0666);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->attr.mode, uint32_t{S_IFREG | 0664});
  EXPECT_EQ(*get(h, f->ino, kAccess), file_acl);
  EXPECT_EQ(err_of(get(h, f->ino, kDefault)), ENODATA);
  auto p = h.mknod(d->ino, "p", S_IFIFO | 0666);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->attr.mode, uint32_t{S_IFIFO | 0664});
  EXPECT_EQ(*get(h, p->ino, kAccess), file_acl);
  auto s = h.mkdir(d->ino, "s", 0777);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->attr.mode,
            uint32_t{S_IFDIR | 0674});  // kNamed's bits: rw- rwx r--
  EXPECT_EQ(*get(h, s->ino, kAccess), kNamed);
  EXPECT_EQ(*get(h, s->ino, kDefault), kNamed);
  EXPECT_EQ(
      list(h, s->ino),
      std::string("system.posix_acl_access\0system.posix_acl_default\0", 49));
  // And the subdirectory passes it on.
  auto ss = h.create(s->ino, "ff", 0600);
  ASSERT_TRUE(ss);
  EXPECT_EQ(ss->attr.mode, uint32_t{S_IFREG | 0600});
  auto t = h.tmpfile(d->ino, 0640);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->attr.mode, uint32_t{S_IFREG | 0640});
  EXPECT_EQ(*get(h, t->ino, kAccess), value({{E::kUserObj, 6, U},
                                             {E::kUser, 7, 1000},
                                             {E::kGroupObj, 4, U},
                                             {E::kMask, 4, U},
                                             {E::kOther, 0, U}}));
  // Symlinks: 0777, no ACL.
  auto l = h.symlink("f", d->ino, "l");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->attr.mode, uint32_t{S_IFLNK | 0777});
  EXPECT_EQ(list(h, l->ino), "");
  // A default ACL that is just a mode: no access ACL, the mode limited by it.
  auto e = h.mkdir(fs::kRootIno, "e", 0777);
  ASSERT_TRUE(e);
  ASSERT_EQ(h.setxattr(e->ino, kDefault,
                       value({{E::kUserObj, 7, U},
                              {E::kGroupObj, 0, U},
                              {E::kOther, 0, U}})),
            0);
  auto ef = h.create(e->ino, "f", 0666);
  ASSERT_TRUE(ef);
  EXPECT_EQ(ef->attr.mode, uint32_t{S_IFREG | 0600});
  EXPECT_EQ(list(h, ef->ino), "");
  // No default ACL: the umask.
  auto plain = h.create(fs::kRootIno, "plain", 0666);
  auto pdir = h.mkdir(fs::kRootIno, "pdir", 01777);
  auto ptmp = h.tmpfile(fs::kRootIno, 0666);
  ASSERT_TRUE(plain && pdir && ptmp);
  EXPECT_EQ(plain->attr.mode, uint32_t{S_IFREG | 0600});
  EXPECT_EQ(pdir->attr.mode, uint32_t{S_IFDIR | 01700});
  EXPECT_EQ(ptmp->attr.mode, uint32_t{S_IFREG | 0600});
  EXPECT_EQ(list(h, plain->ino), "");
  h.ctx.umask = 0;
}

// A setgid directory with a default ACL: new entries take its group, new
// directories its setgid bit, and both the ACLs.
inline void SetgidDirectory(CallRunner& h) {
  auto d = h.mkdir(fs::kRootIno, "d", 0755);
  ASSERT_TRUE(d);
  fs::SetAttr s = chmod_to(02775);
  s.valid |= fs::SetAttr::kGid;
  s.gid = 1234;
  ASSERT_TRUE(h.setattr(d->ino, s));
  ASSERT_EQ(h.setxattr(d->ino, kDefault, kNamed), 0);
  auto sub = h.mkdir(d->ino, "sub", 0777);
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->attr.mode, uint32_t{S_IFDIR | 02674});
  EXPECT_EQ(sub->attr.gid, 1234u);
  EXPECT_EQ(*get(h, sub->ino, kDefault), kNamed);
}

// listxattr: the ACL names first (access, default), then the rest, as tmpfs.
inline void ListsAclsFirst(CallRunner& h) {
  auto d = h.mkdir(fs::kRootIno, "d", 0755);
  ASSERT_TRUE(d);
  ASSERT_EQ(h.setxattr(d->ino, "user.a", "1"), 0);
  ASSERT_EQ(h.setxattr(d->ino, "security.s", "1"), 0);
  ASSERT_EQ(h.setxattr(d->ino, kDefault, kNamed), 0);
  ASSERT_EQ(h.setxattr(d->ino, kAccess, kNamed), 0);
  EXPECT_EQ(list(h, d->ino),
            std::string("system.posix_acl_access\0system.posix_acl_default\0"
                        "user.a\0security.s\0",
                        67));
}

}  // namespace zest::fs_harness::acl
