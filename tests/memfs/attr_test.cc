// memfs attributes: setattr, set-id clearing, times, access, xattrs.
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/memfs/fake_sink.h"

namespace zest::memfs::test {
namespace {

constexpr fs::Ino R = fs::kRootIno;

class AttrTest : public ::testing::Test, public MemFsHarness {
 protected:
  uint32_t mode_after(fs::Ino ino, const fs::SetAttr& s) {
    auto a = setattr(ino, s);
    EXPECT_TRUE(a);
    return a ? a->mode & 07777 : 0;
  }
  fs::SetAttr chmod(uint32_t mode) {
    fs::SetAttr s;
    s.valid = fs::SetAttr::kMode;
    s.mode = mode;
    return s;
  }
};

TEST_F(AttrTest, ChmodChownAndSetIdClearing) {
  auto f = create(R, "f");
  EXPECT_EQ(mode_after(f->ino, chmod(06755)), 06755u);
  fs::SetAttr own;
  own.valid = fs::SetAttr::kUid | fs::SetAttr::kGid;
  own.uid = 0;
  own.gid = 0;
  // chown of a file drops setuid, and setgid when group-executable (tmpfs,
  // also for root).
  EXPECT_EQ(mode_after(f->ino, own), 0755u);
  EXPECT_EQ(mode_after(f->ino, chmod(06745)), 06745u);
  own.uid = 5;
  own.gid = 5;
  auto a = setattr(f->ino, own);
  EXPECT_EQ(a->mode & 07777, 02745u);
  EXPECT_EQ(a->uid, 5u);
  EXPECT_EQ(a->gid, 5u);
  fs::SetAttr kill;
  kill.valid = fs::SetAttr::kKillSuidGid;
  EXPECT_EQ(mode_after(f->ino, chmod(06775)), 06775u);
  EXPECT_EQ(mode_after(f->ino, kill), 0775u);
  // Directories keep them on chown.
  auto d = mkdir(R, "d");
  EXPECT_EQ(mode_after(d->ino, chmod(03755)), 03755u);
  EXPECT_EQ(mode_after(d->ino, own), 03755u);
  EXPECT_EQ(getattr(d->ino)->mode & S_IFMT, uint32_t{S_IFDIR});
}

TEST_F(AttrTest, Times) {
  auto f = create(R, "f");
  fs::SetAttr s;
  s.valid = fs::SetAttr::kAtime | fs::SetAttr::kMtime;
  s.atime = {1000, 5};
  s.mtime = {2000, 6};
  auto a = setattr(f->ino, s);
  EXPECT_EQ(a->atime.tv_sec, 1000);
  EXPECT_EQ(a->atime.tv_nsec, 5);
  EXPECT_EQ(a->mtime.tv_sec, 2000);
  EXPECT_EQ(a->mtime.tv_nsec, 6);
  EXPECT_GT(a->ctime.tv_sec, 2000);  // ctime is now
  // Writes move mtime and ctime; the next read moves atime (relatime, the
  // default: atime was not newer than mtime), the one after it does not.
  ASSERT_TRUE(write(f->ino, 0, "x"));
  auto w = *getattr(f->ino);
  EXPECT_EQ(w.atime.tv_sec, 1000);
  EXPECT_GT(w.mtime.tv_sec, 2000);
  EXPECT_EQ(w.mtime.tv_nsec, w.ctime.tv_nsec);
  ASSERT_TRUE(read(f->ino, 0, 1));
  auto b = *getattr(f->ino);
  EXPECT_GT(b.atime.tv_sec, 2000);
  ASSERT_TRUE(read(f->ino, 0, 1));
  EXPECT_EQ(getattr(f->ino)->atime.tv_nsec, b.atime.tv_nsec);
  s.valid = fs::SetAttr::kAtimeNow | fs::SetAttr::kCtime;
  s.ctime = {3000, 7};
  auto c = setattr(f->ino, s);
  EXPECT_GT(c->atime.tv_sec, 2000);
  EXPECT_EQ(c->ctime.tv_sec, 3000);
  // Extended attribute changes move ctime.
  usleep(2000);
  ASSERT_EQ(setxattr(f->ino, "user.a", "v"), 0);
  EXPECT_GT(getattr(f->ino)->ctime.tv_sec, 3000);
}

TEST_F(AttrTest, Access) {
  auto f = create(R, "f", 0640);
  EXPECT_EQ(access(f->ino, F_OK), 0);
  EXPECT_EQ(access(f->ino, R_OK | W_OK), 0);  // root
  EXPECT_EQ(access(f->ino, X_OK), EACCES);    // root needs an x bit
  fs::SetAttr s;
  s.valid = fs::SetAttr::kUid | fs::SetAttr::kGid;
  s.uid = 1000;
  s.gid = 100;
  ASSERT_TRUE(setattr(f->ino, s));
  ctx = fs::Context{1000, 1, 1};
  EXPECT_EQ(access(f->ino, R_OK | W_OK), 0);  // owner rw-
  EXPECT_EQ(access(f->ino, X_OK), EACCES);
  ctx = fs::Context{2000, 100, 1};
  EXPECT_EQ(access(f->ino, R_OK), 0);  // group r--
  EXPECT_EQ(access(f->ino, W_OK), EACCES);
  ctx = fs::Context{2000, 200, 1};
  EXPECT_EQ(access(f->ino, R_OK), EACCES);  // other ---
  EXPECT_EQ(access(f->ino, F_OK), 0);
  EXPECT_EQ(access(R, W_OK | X_OK), 0);  // 1777
}

TEST_F(AttrTest, XattrFlagsAndErrors) {
  auto f = create(R, "f");
  fs::Ino i = f->ino;
  EXPECT_EQ(setxattr(i, "user.a", "v", XATTR_REPLACE), ENODATA);
  EXPECT_EQ(setxattr(i, "user.a", "one", XATTR_CREATE), 0);
  EXPECT_EQ(setxattr(i, "user.a", "two", XATTR_CREATE), EEXIST);
  EXPECT_EQ(setxattr(i, "user.a", "three", XATTR_REPLACE), 0);
  auto g = getxattr(i, "user.a", 0);
  EXPECT_EQ(g->kind, Call::kXattrSize);
  EXPECT_EQ(g->xattr_size, 5u);
  EXPECT_EQ(getxattr(i, "user.a", 4)->err, ERANGE);
  EXPECT_EQ(getxattr(i, "user.a", 100)->data, "three");
  EXPECT_EQ(getxattr(i, "user.none", 100)->err, ENODATA);
  EXPECT_EQ(setxattr(i, "user.empty", ""), 0);
  EXPECT_EQ(getxattr(i, "user.empty", 10)->kind, Call::kData);
  EXPECT_EQ(getxattr(i, "user.empty", 10)->data, "");
  EXPECT_EQ(removexattr(i, "user.none"), ENODATA);
  EXPECT_EQ(removexattr(i, "user.empty"), 0);
  EXPECT_EQ(setxattr(i, "user.", "v"), EINVAL);
  EXPECT_EQ(setxattr(i, "foo.x", "v"), EOPNOTSUPP);
  EXPECT_EQ(setxattr(i, "system.posix_acl_access", "v"), EINVAL);  // not an ACL
  EXPECT_EQ(setxattr(i, "system.other", "v"), EOPNOTSUPP);
  EXPECT_EQ(setxattr(i, "user." + std::string(251, 'n'), "v"), ERANGE);
  EXPECT_EQ(setxattr(i, "user.big", std::string(65537, 'v')), E2BIG);
  EXPECT_EQ(setxattr(i, "user.a", "v", 4), EINVAL);
}

TEST_F(AttrTest, XattrListOrderAndNamespaces) {
  auto f = create(R, "f");
  fs::Ino i = f->ino;
  for (const char* n : {"user.z", "user.a", "user.m", "security.b", "trusted.c", "user.b"}) {
    ASSERT_EQ(setxattr(i, n, "v"), 0) << n;
  }
  std::string want("user.z\0user.m\0user.b\0user.a\0trusted.c\0security.b\0", 49);
  auto size = listxattr(i, 0);
  EXPECT_EQ(size->xattr_size, want.size());
  EXPECT_EQ(listxattr(i, 10)->err, ERANGE);
  EXPECT_EQ(listxattr(i, 100)->data, want);  // tmpfs's order: names descending
  ctx = fs::Context{1000, 1000, 1};
  std::string user_view("user.z\0user.m\0user.b\0user.a\0security.b\0", 39);
  EXPECT_EQ(listxattr(i, 100)->data, user_view);
  EXPECT_EQ(getxattr(i, "trusted.c", 10)->err, ENODATA);
  EXPECT_EQ(setxattr(i, "trusted.d", "v"), EPERM);
  // user.* only on files and directories.
  ctx = fs::Context{0, 0, 1};
  auto l = symlink("t", R, "l");
  EXPECT_EQ(setxattr(l->ino, "user.a", "v"), EPERM);
  EXPECT_EQ(getxattr(l->ino, "user.a", 10)->err, ENODATA);
  EXPECT_EQ(setxattr(l->ino, "trusted.a", "v"), 0);
  auto p = mknod(R, "p", S_IFIFO | 0644);
  EXPECT_EQ(setxattr(p->ino, "user.a", "v"), EPERM);
  auto d = mkdir(R, "d");
  EXPECT_EQ(setxattr(d->ino, "user.a", "v"), 0);
  auto empty = listxattr(p->ino, 10);
  EXPECT_EQ(empty->kind, Call::kData);
  EXPECT_EQ(empty->data, "");
}

}  // namespace
}  // namespace zest::memfs::test
