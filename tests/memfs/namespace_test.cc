// memfs names: directories, lookup, links, mknod, symlinks, rename, readdir.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "tests/memfs/fake_sink.h"

namespace zest::memfs::test {
namespace {

constexpr fs::Ino R = fs::kRootIno;

class NamespaceTest : public ::testing::Test, public MemFsHarness {
 protected:
  uint32_t nlink(fs::Ino ino) { return getattr(ino)->nlink; }
  int64_t mtime_ns(fs::Ino ino) {
    auto a = *getattr(ino);
    return a.mtime.tv_sec * 1000000000LL + a.mtime.tv_nsec;
  }
  int64_t ctime_ns(fs::Ino ino) {
    auto a = *getattr(ino);
    return a.ctime.tv_sec * 1000000000LL + a.ctime.tv_nsec;
  }
};

TEST_F(NamespaceTest, RootLooksLikeFreshTmpfs) {
  auto a = getattr(R);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode, S_IFDIR | 01777u);
  EXPECT_EQ(a->nlink, 2u);
  EXPECT_EQ(a->size, 40u);
  EXPECT_EQ(a->blocks, 0u);
}

TEST_F(NamespaceTest, MkdirLinkCountsAndSizes) {
  auto d = mkdir(R, "d", 0755);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->attr.mode, S_IFDIR | 0755u);
  EXPECT_EQ(d->attr.nlink, 2u);
  EXPECT_EQ(nlink(R), 3u);
  ASSERT_TRUE(mkdir(d->ino, "e"));
  ASSERT_TRUE(create(d->ino, "f"));
  EXPECT_EQ(nlink(d->ino), 3u);  // files do not count
  EXPECT_EQ(getattr(d->ino)->size, 80u);  // 40 + 20 per entry, as tmpfs
  EXPECT_EQ(err_of(mkdir(R, "d")), EEXIST);
  EXPECT_EQ(err_of(mkdir(R, std::string(256, 'n'))), ENAMETOOLONG);
  EXPECT_TRUE(mkdir(R, std::string(255, 'n')));
  EXPECT_EQ(err_of(mkdir(d->ino + 100, "x")), ENOENT);
  auto f = lookup(d->ino, "f");
  EXPECT_EQ(err_of(mkdir(f->ino, "x")), ENOTDIR);
  // mkdir never takes set-id bits from the caller.
  EXPECT_EQ(mkdir(R, "s", 07777)->attr.mode, S_IFDIR | 01777u);
}

TEST_F(NamespaceTest, LookupDotAndDotDot) {
  auto d = mkdir(R, "d");
  auto e = mkdir(d->ino, "e");
  EXPECT_EQ(lookup(e->ino, ".")->ino, e->ino);
  EXPECT_EQ(lookup(e->ino, "..")->ino, d->ino);
  EXPECT_EQ(lookup(R, "..")->ino, R);
  EXPECT_EQ(err_of(lookup(R, "nope")), ENOENT);
  auto f = create(R, "f");
  EXPECT_EQ(err_of(lookup(f->ino, "x")), ENOTDIR);
  EXPECT_EQ(err_of(lookup(R, std::string(256, 'x'))), ENAMETOOLONG);
}

TEST_F(NamespaceTest, MknodTypes) {
  auto c = mknod(R, "null", S_IFCHR | 0666, makedev(1, 3));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->attr.mode, S_IFCHR | 0666u);
  EXPECT_EQ(c->attr.rdev, makedev(1, 3));
  EXPECT_EQ(mknod(R, "blk", S_IFBLK | 0600, makedev(8, 1))->attr.rdev, makedev(8, 1));
  EXPECT_EQ(mknod(R, "fifo", S_IFIFO | 0644, 123)->attr.rdev, 0u);
  EXPECT_EQ(mknod(R, "sock", S_IFSOCK | 0644)->attr.mode, S_IFSOCK | 0644u);
  EXPECT_EQ(mknod(R, "plain", 0644)->attr.mode, S_IFREG | 0644u);
  EXPECT_EQ(err_of(mknod(R, "dir", S_IFDIR | 0755)), EPERM);
  EXPECT_EQ(err_of(mknod(R, "bad", 0170000 | 0644)), EINVAL);
}

TEST_F(NamespaceTest, Symlinks) {
  auto s = symlink("short", R, "s");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->attr.mode, S_IFLNK | 0777u);
  EXPECT_EQ(s->attr.size, 5u);
  EXPECT_EQ(s->attr.blocks, 0u);
  auto c = run([&](Call* c) { fs().readlink(ctx, s->ino, reply<fs::DataReply>(c)); });
  EXPECT_EQ(c->data, "short");
  // tmpfs: targets of 128 bytes or more take a page.
  EXPECT_EQ(symlink(std::string(127, 'a'), R, "s127")->attr.blocks, 0u);
  EXPECT_EQ(symlink(std::string(128, 'a'), R, "s128")->attr.blocks, 8u);
  EXPECT_EQ(statfs().blocks - statfs().bfree, 1u);
  EXPECT_EQ(err_of(symlink(std::string(4096, 'a'), R, "long")), ENAMETOOLONG);
  EXPECT_EQ(err_of(symlink("", R, "empty")), ENOENT);
  auto f = create(R, "f");
  c = run([&](Call* c) { fs().readlink(ctx, f->ino, reply<fs::DataReply>(c)); });
  EXPECT_EQ(c->err, EINVAL);
}

TEST_F(NamespaceTest, HardLinks) {
  auto f = create(R, "f");
  auto d = mkdir(R, "d");
  usleep(2000);
  int64_t c0 = ctime_ns(f->ino), m0 = mtime_ns(d->ino);
  auto l = link(f->ino, d->ino, "g");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->ino, f->ino);
  EXPECT_EQ(l->attr.nlink, 2u);
  EXPECT_GT(ctime_ns(f->ino), c0);
  EXPECT_GT(mtime_ns(d->ino), m0);
  EXPECT_EQ(err_of(link(f->ino, d->ino, "g")), EEXIST);
  EXPECT_EQ(err_of(link(d->ino, R, "dl")), EPERM);
  EXPECT_EQ(err_of(link(f->ino, f->ino, "x")), ENOTDIR);
  ASSERT_EQ(unlink(R, "f"), 0);
  EXPECT_EQ(nlink(f->ino), 1u);
  EXPECT_EQ(lookup(d->ino, "g")->ino, f->ino);
}

TEST_F(NamespaceTest, UnlinkRmdirErrors) {
  auto d = mkdir(R, "d");
  auto f = create(d->ino, "f");
  EXPECT_EQ(rmdir(R, "d"), ENOTEMPTY);
  EXPECT_EQ(unlink(R, "d"), EISDIR);
  EXPECT_EQ(rmdir(d->ino, "f"), ENOTDIR);
  EXPECT_EQ(unlink(R, "nope"), ENOENT);
  EXPECT_EQ(rmdir(R, "."), EINVAL);
  EXPECT_EQ(rmdir(R, ".."), ENOTEMPTY);
  EXPECT_EQ(unlink(f->ino, "x"), ENOTDIR);
  usleep(2000);
  int64_t m0 = mtime_ns(d->ino);
  ASSERT_EQ(unlink(d->ino, "f"), 0);
  EXPECT_GT(mtime_ns(d->ino), m0);
  EXPECT_EQ(ctime_ns(d->ino), mtime_ns(d->ino));
  ASSERT_EQ(rmdir(R, "d"), 0);
  EXPECT_EQ(nlink(R), 2u);
  EXPECT_EQ(getattr(d->ino)->nlink, 0u);  // the kernel still holds it
  // Creating in a removed directory fails.
  EXPECT_EQ(err_of(create(d->ino, "x")), ENOENT);
  forget(d->ino);
  EXPECT_EQ(err_of(getattr(d->ino)), ENOENT);
}

TEST_F(NamespaceTest, RenameBasics) {
  auto a = mkdir(R, "a");
  auto b = mkdir(R, "b");
  auto f = create(a->ino, "f");
  ASSERT_TRUE(write(f->ino, 0, "data"));
  usleep(2000);
  int64_t c0 = ctime_ns(f->ino);
  ASSERT_EQ(rename(a->ino, "f", b->ino, "g"), 0);
  EXPECT_EQ(err_of(lookup(a->ino, "f")), ENOENT);
  EXPECT_EQ(lookup(b->ino, "g")->ino, f->ino);
  EXPECT_GT(ctime_ns(f->ino), c0);
  EXPECT_EQ(getattr(a->ino)->size, 40u);
  EXPECT_EQ(getattr(b->ino)->size, 60u);
  EXPECT_EQ(rename(a->ino, "nope", b->ino, "x"), ENOENT);
  EXPECT_EQ(rename(R, ".", b->ino, "x"), EBUSY);
  EXPECT_EQ(rename(R, "a", R, "a", 1u << 2 /* RENAME_WHITEOUT */), EINVAL);
  EXPECT_EQ(rename(R, "a", R, "b", RENAME_NOREPLACE | RENAME_EXCHANGE), EINVAL);
}

TEST_F(NamespaceTest, RenameOverExisting) {
  auto f = create(R, "f");
  auto g = create(R, "g");
  auto d = mkdir(R, "d");
  auto e = mkdir(R, "e");
  auto full = mkdir(R, "full");
  ASSERT_TRUE(create(full->ino, "x"));

  EXPECT_EQ(rename(R, "f", R, "g", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(rename(R, "f", R, "d"), EISDIR);
  EXPECT_EQ(rename(R, "d", R, "f"), ENOTDIR);
  EXPECT_EQ(rename(R, "d", R, "full"), ENOTEMPTY);

  ASSERT_EQ(rename(R, "f", R, "g"), 0);  // replaces g
  EXPECT_EQ(lookup(R, "g")->ino, f->ino);
  EXPECT_EQ(getattr(g->ino)->nlink, 0u);
  forget(g->ino);
  EXPECT_EQ(err_of(getattr(g->ino)), ENOENT);  // freed

  uint32_t root_links = nlink(R);
  ASSERT_EQ(rename(R, "d", R, "e"), 0);  // dir over empty dir
  EXPECT_EQ(lookup(R, "e")->ino, d->ino);
  EXPECT_EQ(nlink(R), root_links - 1);
  EXPECT_EQ(getattr(e->ino)->nlink, 0u);
}

TEST_F(NamespaceTest, RenameSameInodeIsNoOp) {
  auto f = create(R, "f");
  ASSERT_TRUE(link(f->ino, R, "g"));
  ASSERT_EQ(rename(R, "f", R, "g"), 0);
  EXPECT_EQ(lookup(R, "f")->ino, f->ino);  // both names stay, as in Linux
  EXPECT_EQ(lookup(R, "g")->ino, f->ino);
  EXPECT_EQ(nlink(f->ino), 2u);
}

TEST_F(NamespaceTest, RenameDirectoryAcrossParents) {
  auto a = mkdir(R, "a");
  auto b = mkdir(R, "b");
  auto d = mkdir(a->ino, "d");
  auto sub = mkdir(d->ino, "sub");
  ASSERT_EQ(rename(a->ino, "d", b->ino, "d"), 0);
  EXPECT_EQ(nlink(a->ino), 2u);
  EXPECT_EQ(nlink(b->ino), 3u);
  EXPECT_EQ(lookup(d->ino, "..")->ino, b->ino);
  // Into its own subtree.
  EXPECT_EQ(rename(b->ino, "d", sub->ino, "x"), EINVAL);
  EXPECT_EQ(rename(b->ino, "d", d->ino, "x"), EINVAL);
  EXPECT_EQ(rename(R, "b", sub->ino, "x"), EINVAL);
}

TEST_F(NamespaceTest, RenameExchange) {
  auto a = mkdir(R, "a");
  auto b = mkdir(R, "b");
  auto f = create(a->ino, "f");
  auto d = mkdir(b->ino, "d");
  EXPECT_EQ(rename(a->ino, "f", b->ino, "none", RENAME_EXCHANGE), ENOENT);
  ASSERT_EQ(rename(a->ino, "f", b->ino, "d", RENAME_EXCHANGE), 0);
  EXPECT_EQ(lookup(a->ino, "f")->ino, d->ino);
  EXPECT_EQ(lookup(b->ino, "d")->ino, f->ino);
  EXPECT_EQ(nlink(a->ino), 3u);  // the directory moved to a
  EXPECT_EQ(nlink(b->ino), 2u);
  EXPECT_EQ(lookup(d->ino, "..")->ino, a->ino);
  // A directory may not be exchanged into its own subtree.
  auto inner = mkdir(d->ino, "inner");
  EXPECT_EQ(rename(a->ino, "f", d->ino, "inner", RENAME_EXCHANGE), EINVAL);
  EXPECT_EQ(rename(d->ino, "inner", a->ino, "f", RENAME_EXCHANGE), EINVAL);
  (void)inner;
  // Within one directory no link count changes.
  auto x = mkdir(R, "x");
  auto y = create(R, "y");
  uint32_t before = nlink(R);
  ASSERT_EQ(rename(R, "x", R, "y", RENAME_EXCHANGE), 0);
  EXPECT_EQ(nlink(R), before);
  EXPECT_EQ(lookup(R, "x")->ino, y->ino);
  EXPECT_EQ(lookup(R, "y")->ino, x->ino);
}

TEST_F(NamespaceTest, SetgidDirectoryInheritance) {
  auto d = mkdir(R, "d", 0775);
  fs::SetAttr s;
  s.valid = fs::SetAttr::kMode | fs::SetAttr::kGid;
  s.mode = 02775;
  s.gid = 500;
  ASSERT_TRUE(setattr(d->ino, s));
  ctx = fs::Context{1000, 1000, 1};
  auto f = create(d->ino, "f");
  EXPECT_EQ(f->attr.uid, 1000u);
  EXPECT_EQ(f->attr.gid, 500u);
  EXPECT_EQ(f->attr.mode & S_ISGID, 0u);
  auto sub = mkdir(d->ino, "sub", 0755);
  EXPECT_EQ(sub->attr.gid, 500u);
  EXPECT_EQ(sub->attr.mode, S_IFDIR | 02755u);  // inherits S_ISGID
  auto n = mknod(d->ino, "p", S_IFIFO | 0644);
  EXPECT_EQ(n->attr.gid, 500u);
  // Without setgid: the caller's group.
  auto plain = mkdir(R, "plain");
  EXPECT_EQ(create(plain->ino, "g")->attr.gid, 1000u);
}

TEST_F(NamespaceTest, ReaddirListsDotsAndEntries) {
  auto d = mkdir(R, "d");
  ASSERT_TRUE(create(d->ino, "f"));
  ASSERT_TRUE(mkdir(d->ino, "sub"));
  ASSERT_TRUE(symlink("t", d->ino, "l"));
  auto c = readdir(d->ino, 0);
  ASSERT_EQ(c->dir.size(), 5u);
  EXPECT_EQ(c->dir[0].name, ".");
  EXPECT_EQ(c->dir[0].ino, d->ino);
  EXPECT_EQ(c->dir[1].name, "..");
  EXPECT_EQ(c->dir[1].ino, R);
  EXPECT_EQ(c->dir[2].type, uint32_t{DT_REG});
  EXPECT_EQ(c->dir[3].type, uint32_t{DT_DIR});
  EXPECT_EQ(c->dir[4].type, uint32_t{DT_LNK});
  // Resuming from any next_off gives the rest.
  auto rest = readdir(d->ino, c->dir[2].next_off);
  ASSERT_EQ(rest->dir.size(), 2u);
  EXPECT_EQ(rest->dir[0].name, "sub");
  auto f = create(R, "file");
  EXPECT_EQ(readdir(f->ino, 0)->err, ENOTDIR);
}

TEST_F(NamespaceTest, ReaddirPlusCarriesEntries) {
  auto d = mkdir(R, "d");
  auto f = create(d->ino, "f");
  ASSERT_EQ(unlink(d->ino, "f"), 0);
  auto g = create(d->ino, "g");
  auto c = readdir(d->ino, 0, /*plus=*/true);
  ASSERT_EQ(c->dir.size(), 3u);
  EXPECT_FALSE(c->dir[0].has_entry);
  EXPECT_FALSE(c->dir[1].has_entry);
  EXPECT_TRUE(c->dir[2].has_entry);
  EXPECT_EQ(c->dir[2].entry.ino, g->ino);
  EXPECT_EQ(c->dir[2].entry.attr.mode, S_IFREG | 0644u);
  // Small buffers: every name exactly once across many calls.
  for (int k = 0; k < 50; ++k) ASSERT_TRUE(create(d->ino, "n" + std::to_string(k)));
  auto names = list(d->ino, true, 400);
  EXPECT_EQ(names.size(), 53u);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 53u);
  (void)f;
}

// Entries that stay are listed exactly once while others come and go
// between the calls of one listing.
TEST_F(NamespaceTest, ReaddirStableUnderInsertAndDelete) {
  auto d = mkdir(R, "d");
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(create(d->ino, "keep" + std::to_string(k)));
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(create(d->ino, "drop" + std::to_string(k)));
  for (bool plus : {false, true}) {
    std::vector<std::string> seen;
    uint64_t off = 0;
    int round = 0;
    for (;;) {
      auto c = readdir(d->ino, off, plus, 300);
      if (c->dir.empty()) break;
      for (auto& e : c->dir) seen.push_back(e.name);
      off = c->dir.back().next_off;
      // Churn: delete some drop* entries, add new ones (for a while, so the
      // listing ends).
      for (int k = 0; k < 5 && round < 30; ++k) {
        (void)unlink(d->ino, "drop" + std::to_string((round * 5 + k) % 100));
        auto e = create(d->ino, "new" + std::to_string(plus) + "_" + std::to_string(round * 5 + k));
        ASSERT_TRUE(e) << e.error().value << " round " << round;
      }
      ++round;
    }
    std::multiset<std::string> ms(seen.begin(), seen.end());
    for (int k = 0; k < 100; ++k) EXPECT_EQ(ms.count("keep" + std::to_string(k)), 1u);
    for (auto& n : ms) EXPECT_EQ(ms.count(n), 1u) << n;
  }
}

}  // namespace
}  // namespace zest::memfs::test
