// mirrorfs names, attributes, xattrs, directories and inode lifetime,
// checked against the backing directory itself.
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "tests/mirrorfs/harness.h"

namespace zest::mirrorfs::test {
namespace {

struct stat Lstat(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p << ": " << std::strerror(errno);
  return st;
}

TEST(MirrorNames, CreateLookupAndAttributesMatchTheBackingFile) {
  MirrorHarness h;
  auto e = h.create(fs::kRootIno, "f", 0640);
  ASSERT_TRUE(e);
  EXPECT_NE(e->ino, fs::kRootIno);
  struct stat st = Lstat(h.B("f"));
  EXPECT_EQ(e->attr.mode, st.st_mode);
  EXPECT_EQ(e->attr.mode & 07777, 0640u);
  EXPECT_EQ(e->attr.nlink, 1u);
  EXPECT_EQ(e->attr.mtime.tv_nsec, st.st_mtim.tv_nsec);
  auto again = h.lookup(fs::kRootIno, "f");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ino, e->ino);  // same object, same inode
  EXPECT_EQ(h.sink().refs(e->ino), 2u);
  EXPECT_EQ(err_of(h.lookup(fs::kRootIno, "missing")), ENOENT);
  EXPECT_EQ(err_of(h.lookup(fs::kRootIno, std::string(300, 'x'))), ENAMETOOLONG);
}

TEST(MirrorNames, HardLinksAreOneInode) {
  MirrorHarness h;
  auto f = h.create(fs::kRootIno, "a");
  ASSERT_TRUE(f);
  auto d = h.mkdir(fs::kRootIno, "d");
  ASSERT_TRUE(d);
  auto l = h.link(f->ino, d->ino, "b");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->ino, f->ino);
  EXPECT_EQ(l->attr.nlink, 2u);
  EXPECT_EQ(Lstat(h.B("d/b")).st_ino, Lstat(h.B("a")).st_ino);
  // A link made behind our back is found as the same inode too.
  ASSERT_EQ(::link(h.B("a").c_str(), h.B("c").c_str()), 0);
  auto c = h.lookup(fs::kRootIno, "c");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ino, f->ino);
  EXPECT_EQ(err_of(h.link(f->ino, d->ino, "b")), EEXIST);
}

TEST(MirrorNames, DotDotOfTheRootStaysInside) {
  MirrorHarness h;
  auto up = h.lookup(fs::kRootIno, "..");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->ino, fs::kRootIno);
  auto d = h.mkdir(fs::kRootIno, "d");
  ASSERT_TRUE(d);
  auto back = h.lookup(d->ino, "..");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->ino, fs::kRootIno);
}

TEST(MirrorNames, MknodSymlinkMkdirRmdirUnlink) {
  MirrorHarness h;
  auto fifo = h.mknod(fs::kRootIno, "p", S_IFIFO | 0640);
  ASSERT_TRUE(fifo);
  EXPECT_TRUE(S_ISFIFO(Lstat(h.B("p")).st_mode));
  auto dev = h.mknod(fs::kRootIno, "c", S_IFCHR | 0600, makedev(1, 3));
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->attr.rdev, static_cast<uint32_t>(makedev(1, 3)));
  auto s = h.symlink("some/target", fs::kRootIno, "s");
  ASSERT_TRUE(s);
  EXPECT_TRUE(S_ISLNK(s->attr.mode));
  EXPECT_EQ(s->attr.size, 11u);
  auto t = h.readlink(s->ino);
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, "some/target");
  auto d = h.mkdir(fs::kRootIno, "d", 0700);
  ASSERT_TRUE(d);
  ASSERT_TRUE(h.create(d->ino, "x"));
  EXPECT_EQ(h.rmdir(fs::kRootIno, "d"), ENOTEMPTY);
  EXPECT_EQ(h.rmdir(fs::kRootIno, "p"), ENOTDIR);
  EXPECT_EQ(h.unlink(fs::kRootIno, "d"), EISDIR);
  EXPECT_EQ(h.unlink(d->ino, "x"), 0);
  EXPECT_EQ(h.rmdir(fs::kRootIno, "d"), 0);
  EXPECT_EQ(h.mkdir(fs::kRootIno, "p").error().value, EEXIST);
}

TEST(MirrorNames, RenameFlagsPassThrough) {
  MirrorHarness h;
  ASSERT_TRUE(h.create(fs::kRootIno, "a"));
  ASSERT_TRUE(h.mkdir(fs::kRootIno, "b"));
  EXPECT_EQ(h.rename(fs::kRootIno, "a", fs::kRootIno, "b", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(h.rename(fs::kRootIno, "a", fs::kRootIno, "b", 0), EISDIR);
  EXPECT_EQ(h.rename(fs::kRootIno, "a", fs::kRootIno, "b", RENAME_EXCHANGE), 0);
  EXPECT_TRUE(S_ISDIR(Lstat(h.B("a")).st_mode));
  EXPECT_TRUE(S_ISREG(Lstat(h.B("b")).st_mode));
  EXPECT_EQ(h.rename(fs::kRootIno, "b", fs::kRootIno, "c", RENAME_WHITEOUT), EINVAL);
  EXPECT_EQ(h.rename(fs::kRootIno, "b", fs::kRootIno, "c", 0), 0);
  EXPECT_EQ(h.rename(fs::kRootIno, "missing", fs::kRootIno, "c", 0), ENOENT);
}

TEST(MirrorAttrs, SetattrModeOwnerSizeTimes) {
  MirrorHarness h;
  auto f = h.create(fs::kRootIno, "f", 04755);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->attr.mode & 07777, 04755u);
  fs::SetAttr s;
  s.valid = fs::SetAttr::kSize;
  s.size = 10000;
  auto a = h.setattr(f->ino, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size, 10000u);
  EXPECT_EQ(Lstat(h.B("f")).st_size, 10000);
  // chown drops S_ISUID, as the backing file system does it.
  s.valid = fs::SetAttr::kUid | fs::SetAttr::kGid;
  s.uid = 1000;
  s.gid = 1001;
  a = h.setattr(f->ino, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->uid, 1000u);
  EXPECT_EQ(a->gid, 1001u);
  EXPECT_EQ(a->mode & 07777, 0755u);
  s.valid = fs::SetAttr::kMode;
  s.mode = 06775;
  a = h.setattr(f->ino, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode & 07777, 06775u);
  s.valid = fs::SetAttr::kKillSuidGid;
  a = h.setattr(f->ino, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode & 07777, 0775u);
  s.valid = fs::SetAttr::kAtime | fs::SetAttr::kMtime;
  s.atime = {1000, 5};
  s.mtime = {2000, 123456789};
  a = h.setattr(f->ino, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->atime.tv_sec, 1000);
  EXPECT_EQ(a->atime.tv_nsec, 5);
  EXPECT_EQ(a->mtime.tv_sec, 2000);
  EXPECT_EQ(a->mtime.tv_nsec, 123456789);
  // Times of a symlink itself.
  auto l = h.symlink("f", fs::kRootIno, "l");
  ASSERT_TRUE(l);
  a = h.setattr(l->ino, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(Lstat(h.B("l")).st_mtim.tv_sec, 2000);
  EXPECT_EQ(Lstat(h.B("f")).st_mtim.tv_sec, 2000);
}

TEST(MirrorAttrs, CreatesBelongToTheCaller) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  MirrorHarness h;
  auto d = h.mkdir(fs::kRootIno, "shared", 02777);
  ASSERT_TRUE(d);
  fs::SetAttr s;
  s.valid = fs::SetAttr::kGid;
  s.gid = 500;
  ASSERT_TRUE(h.setattr(d->ino, s));
  s.valid = fs::SetAttr::kMode;  // mkdir(2) ignores S_ISGID in its mode
  s.mode = 02777;
  ASSERT_TRUE(h.setattr(d->ino, s));
  h.ctx = {1000, 1000, 1};
  // Set-uid survives creation (a chown afterwards would drop it).
  auto f = h.create(fs::kRootIno, "mine", 04755);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->attr.uid, 1000u);
  EXPECT_EQ(f->attr.gid, 1000u);
  EXPECT_EQ(f->attr.mode & 07777, 04755u);
  // setgid directory: the group is inherited, subdirectories stay setgid.
  auto g = h.mkdir(d->ino, "sub", 0755);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->attr.uid, 1000u);
  EXPECT_EQ(g->attr.gid, 500u);
  EXPECT_TRUE(g->attr.mode & S_ISGID);
  auto sl = h.symlink("x", d->ino, "sl");
  ASSERT_TRUE(sl);
  EXPECT_EQ(sl->attr.uid, 1000u);
  // The permission checks are the kernel's: a 0500 directory of someone
  // else does not stop us here.
  h.ctx = {0, 0, 1};
  auto closed = h.mkdir(fs::kRootIno, "closed", 0500);
  ASSERT_TRUE(closed);
  h.ctx = {1000, 1000, 1};
  EXPECT_TRUE(h.create(closed->ino, "x"));
  // And the thread is root again afterwards.
  EXPECT_EQ(::setfsuid(-1), 0);
  h.ctx = {0, 0, 1};
  auto root_file = h.create(fs::kRootIno, "root");
  ASSERT_TRUE(root_file);
  EXPECT_EQ(root_file->attr.uid, 0u);
}

TEST(MirrorAttrs, XattrsOnFilesAndSymlinks) {
  MirrorHarness h;
  auto f = h.create(fs::kRootIno, "f");
  ASSERT_TRUE(f);
  auto l = h.symlink("f", fs::kRootIno, "l");
  ASSERT_TRUE(l);
  EXPECT_EQ(h.setxattr(f->ino, "user.a", "value"), 0);
  EXPECT_EQ(h.setxattr(f->ino, "user.a", "v", XATTR_CREATE), EEXIST);
  EXPECT_EQ(h.setxattr(f->ino, "user.b", "v", XATTR_REPLACE), ENODATA);
  auto g = h.getxattr(f->ino, "user.a", 0);
  EXPECT_EQ(g->kind, Call::kXattrSize);
  EXPECT_EQ(g->xattr_size, 5u);
  g = h.getxattr(f->ino, "user.a", 64);
  EXPECT_EQ(g->data, "value");
  g = h.getxattr(f->ino, "user.a", 2);
  EXPECT_EQ(g->err, ERANGE);
  // On the symlink itself, not its target.
  EXPECT_EQ(h.setxattr(l->ino, "user.a", "v"), EPERM);
  EXPECT_EQ(h.setxattr(l->ino, "trusted.t", "sym"), 0);
  char buf[16];
  EXPECT_EQ(::lgetxattr(h.B("l").c_str(), "trusted.t", buf, sizeof buf), 3);
  EXPECT_EQ(::getxattr(h.B("f").c_str(), "trusted.t", buf, sizeof buf), -1);
  ASSERT_EQ(h.setxattr(f->ino, "trusted.t", "x"), 0);
  auto list = h.listxattr(f->ino, 256);
  EXPECT_NE(list->data.find("user.a"), std::string::npos);
  EXPECT_NE(list->data.find("trusted.t"), std::string::npos);
  h.ctx = {1000, 1000, 1};
  list = h.listxattr(f->ino, 0);
  EXPECT_EQ(list->xattr_size, sizeof("user.a"));
  list = h.listxattr(f->ino, 256);
  EXPECT_EQ(list->data, std::string("user.a", sizeof("user.a")));
  h.ctx = {0, 0, 1};
  auto rm = h.run<fs::StatusReply>([&](auto r) { h.fs().removexattr(h.ctx, f->ino, "user.a", std::move(r)); });
  EXPECT_EQ(rm->kind, Call::kNone);
  EXPECT_EQ(h.getxattr(f->ino, "user.a", 0)->err, ENODATA);
}

TEST(MirrorDirs, ReaddirIsCompleteAcrossSmallBuffersAndChanges) {
  MirrorHarness h;
  auto d = h.mkdir(fs::kRootIno, "d");
  ASSERT_TRUE(d);
  std::vector<std::string> want;
  for (int i = 0; i < 200; ++i) {
    std::string n = "entry-" + std::to_string(i);
    ASSERT_EQ(::close(::open(h.B("d/" + n).c_str(), O_CREAT | O_WRONLY, 0644)), 0);
    want.push_back(n);
  }
  auto got = h.list(d->ino, false, 512);
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  // Unlinking entries in the middle of a listing: each survivor once.
  uint64_t fh = h.opendir(d->ino);
  auto first = h.readdir(d->ino, fh, 0, false, 1024);
  ASSERT_FALSE(first->dir.empty());
  std::vector<std::string> seen;
  for (auto& e : first->dir) seen.push_back(e.name);
  for (int i = 0; i < 200; i += 3) ::unlink(h.B("d/entry-" + std::to_string(i)).c_str());
  uint64_t off = first->dir.back().next_off;
  for (;;) {
    auto c = h.readdir(d->ino, fh, off, false, 1024);
    if (c->dir.empty()) break;
    for (auto& e : c->dir) seen.push_back(e.name);
    off = c->dir.back().next_off;
  }
  h.releasedir(d->ino, fh);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end()) << "duplicate";
  for (int i = 1; i < 200; i += 3)
    EXPECT_TRUE(std::binary_search(seen.begin(), seen.end(), "entry-" + std::to_string(i)));
}

TEST(MirrorDirs, ReaddirPlusHandsOutReferencesOnlyForSentEntries) {
  MirrorHarness h;
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(::mkdir(h.B("sub" + std::to_string(i)).c_str(), 0755), 0);
  size_t before = h.mirror().inode_count();
  uint64_t fh = h.opendir(fs::kRootIno);
  auto c = h.readdir(fs::kRootIno, fh, 0, true, 1024);
  h.releasedir(fs::kRootIno, fh);
  size_t sent = 0;
  for (auto& e : c->dir) {
    if (e.name == "." || e.name == "..") {
      EXPECT_FALSE(e.plus);
      continue;
    }
    ASSERT_TRUE(e.plus);
    EXPECT_EQ(h.sink().refs(e.entry.ino), 1u);
    EXPECT_TRUE(S_ISDIR(e.entry.attr.mode));
    EXPECT_EQ(e.type, static_cast<uint32_t>(DT_DIR));
    ++sent;
  }
  EXPECT_GT(sent, 0u);
  EXPECT_LT(sent, 50u);
  // The one that did not fit was dropped again.
  EXPECT_EQ(h.mirror().inode_count(), before + sent);
}

TEST(MirrorLifetime, ForgetClosesTheInodeUnlessReferencedAgain) {
  MirrorHarness h;
  int fds0 = open_fd_count();
  auto f = h.create(fs::kRootIno, "f");
  ASSERT_TRUE(f);
  EXPECT_EQ(open_fd_count(), fds0 + 1);  // its O_PATH fd
  size_t n = h.mirror().inode_count();
  h.forget(f->ino);
  EXPECT_EQ(h.mirror().inode_count(), n - 1);
  EXPECT_EQ(open_fd_count(), fds0);
  // Found again: the same number (remembered with the backing file handle,
  // for file handles the kernel may still hold: README.md, "File handles").
  auto again = h.lookup(fs::kRootIno, "f");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ino, f->ino);
  // A forget while the kernel still holds a reference keeps it.
  fs::Ino ino = again->ino;
  h.fs().forget(ino);
  EXPECT_TRUE(h.lookup(fs::kRootIno, "f"));
  EXPECT_EQ(h.lookup(fs::kRootIno, "f")->ino, ino);
  h.fs().forget(fs::kRootIno);  // the root is never dropped
  EXPECT_TRUE(h.getattr(fs::kRootIno));
}

TEST(MirrorLifetime, LookupsRacingForgetsAlwaysAnswerALiveInode) {
  MirrorHarness h;
  ASSERT_TRUE(h.create(fs::kRootIno, "f"));
  std::atomic<bool> stop{false};
  std::thread forgetter([&] {
    while (!stop) {
      for (fs::Ino i = 2; i < 200; ++i) {
        if (h.sink().refs(i) == 0) h.fs().forget(i);
      }
    }
  });
  for (int k = 0; k < 2000; ++k) {
    auto e = h.lookup(fs::kRootIno, "f");
    ASSERT_TRUE(e);
    ASSERT_TRUE(h.getattr(e->ino)) << "handed out an inode that was dropped";
    h.sink().drop_refs(e->ino);
  }
  stop = true;
  forgetter.join();
}

TEST(MirrorStatfs, ReportsTheBackingFileSystem) {
  MirrorHarness h;
  auto c = h.run<fs::StatfsReply>([&](auto r) { h.fs().statfs(h.ctx, fs::kRootIno, std::move(r)); });
  ASSERT_EQ(c->kind, Call::kStatfs);
  struct statfs s;
  ASSERT_EQ(::statfs(h.B("").c_str(), &s), 0);
  EXPECT_EQ(c->statfs.blocks, s.f_blocks);
  EXPECT_EQ(c->statfs.namelen, 255u);
}

}  // namespace
}  // namespace zest::mirrorfs::test
