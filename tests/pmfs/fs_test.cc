// pmfs through the plugin API: the POSIX behaviour memfs established
// (tmpfs's rules), on a pool, and a clean fsck after each test.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>

#include "tests/pmfs/harness.h"

namespace zest::pmfs::test {
namespace {

constexpr uint64_t P = 4096;

class FsTest : public ::testing::Test, public PmFsHarness {
 protected:
  void TearDown() override {
    close();
    auto errors = fsck_errors();
    EXPECT_TRUE(errors.empty()) << "fsck: " << (errors.empty() ? "" : errors[0]);
  }
  fs::Ino make(std::string_view name = "f", fs::Ino parent = fs::kRootIno) {
    auto e = create(parent, name);
    EXPECT_TRUE(e) << name;
    return e ? e->ino : 0;
  }
  uint64_t blocks(fs::Ino ino) { return getattr(ino)->blocks; }
  uint64_t size(fs::Ino ino) { return getattr(ino)->size; }
};

TEST_F(FsTest, RootAndStatfs) {
  auto a = getattr(fs::kRootIno);
  ASSERT_TRUE(a);
  EXPECT_TRUE(S_ISDIR(a->mode));
  EXPECT_EQ(a->mode & 07777, 01777u);
  EXPECT_EQ(a->nlink, 2u);
  auto s = statfs();
  EXPECT_GT(s.blocks, 0u);
  EXPECT_EQ(s.bfree, s.blocks);
  EXPECT_EQ(s.files, s.ffree + 1);
  EXPECT_EQ(pm().usage().free_blocks, s.bfree);
  EXPECT_FALSE(pm().durability().empty());
}

TEST_F(FsTest, WriteReadRoundTrip) {
  fs::Ino f = make();
  const uint64_t free0 = statfs().bfree;
  ASSERT_EQ(*write(f, 0, "hello world"), 11u);
  EXPECT_EQ(*read(f, 0, 100), "hello world");
  EXPECT_EQ(*read(f, 6, 5), "world");
  EXPECT_EQ(*read(f, 11, 5), "");
  EXPECT_EQ(size(f), 11u);
  EXPECT_EQ(blocks(f), 8u);
  // Overwrite in the middle (copy-on-write) keeps the rest.
  ASSERT_TRUE(write(f, 2, "XY"));
  EXPECT_EQ(*read(f, 0, 100), "heXYo world");
  EXPECT_EQ(blocks(f), 8u);
  // One data block and the file's first extent block; the old data block
  // came back.
  EXPECT_EQ(free0 - statfs().bfree, 2u);
}

TEST_F(FsTest, SparseBlocksAndHoles) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 3 * P + 5, "x"));
  EXPECT_EQ(size(f), 3 * P + 6);
  EXPECT_EQ(blocks(f), 8u);
  ASSERT_TRUE(write(f, 0, std::string(P + 1, '\0')));
  EXPECT_EQ(blocks(f), 24u);
  EXPECT_EQ(*read(f, P + 1, 10), std::string(10, '\0'));
  ASSERT_TRUE(write(f, uint64_t{1} << 40, "y"));
  EXPECT_EQ(blocks(f), 32u);
  EXPECT_EQ(*read(f, (uint64_t{1} << 40) - 2, 3), std::string("\0\0y", 3));
}

TEST_F(FsTest, LargeWritesAreContiguousAndZeroCopy) {
  fs::Ino f = make();
  std::string big(1 << 20, 'a');
  for (size_t k = 0; k < big.size(); ++k) big[k] = static_cast<char>('a' + k % 26);
  ASSERT_EQ(*write(f, 0, big), big.size());
  ASSERT_EQ(*write(f, big.size(), big), big.size());  // appends merge
  auto c = run([&](Call* c) { fs().read(ctx, f, 0, 0, 2 << 20, reply<fs::DataReply>(c)); });
  EXPECT_EQ(c->data, big + big);
  EXPECT_LE(c->iov_count, 2u);  // pool-contiguous blocks in one iovec
  // Unaligned overwrite across blocks.
  ASSERT_TRUE(write(f, 5000, std::string(10000, 'Z')));
  std::string want = big + big;
  want.replace(5000, 10000, std::string(10000, 'Z'));
  EXPECT_EQ(*read(f, 0, 2 << 20), want);
  EXPECT_EQ(blocks(f), 512u * 8);
}

TEST_F(FsTest, EfbigPastMaxFileSize) {
  fs::Ino f = make();
  EXPECT_EQ(err_of(write(f, INT64_MAX, "x")), EFBIG);
  EXPECT_EQ(err_of(truncate(f, uint64_t{INT64_MAX} + 1)), EFBIG);
  EXPECT_TRUE(truncate(f, INT64_MAX));
  EXPECT_EQ(fallocate(f, 0, INT64_MAX - 10, 20), EFBIG);
}

TEST_F(FsTest, TruncateFreesBlocksAndZeroesTail) {
  fs::Ino f = make();
  const uint64_t free0 = statfs().bfree;
  ASSERT_TRUE(write(f, 0, std::string(3 * P, 'b')));
  auto a = truncate(f, P + 1);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size, P + 1);
  EXPECT_EQ(a->blocks, 16u);
  ASSERT_TRUE(truncate(f, 3 * P));
  EXPECT_EQ(*read(f, P, 10), "b" + std::string(9, '\0'));
  ASSERT_EQ(fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 10 * P), 0);
  EXPECT_EQ(blocks(f), 80u);
  ASSERT_TRUE(truncate(f, 3 * P));  // same size: drops what lies past EOF
  EXPECT_EQ(blocks(f), 24u);
  ASSERT_TRUE(truncate(f, 0));
  EXPECT_EQ(blocks(f), 0u);
  EXPECT_EQ(statfs().bfree, free0);  // truncation to 0 drops the extent chain too
}

TEST_F(FsTest, BlocksAroundEofMatchTmpfs) {
  fs::Ino a = make("a");
  ASSERT_TRUE(write(a, 0, std::string(10000, 'x')));
  ASSERT_EQ(fallocate(a, FALLOC_FL_KEEP_SIZE, 20000, 10000), 0);
  EXPECT_EQ(blocks(a), 56u);
  ASSERT_TRUE(truncate(a, 30000));
  EXPECT_EQ(blocks(a), 56u);
  ASSERT_TRUE(truncate(a, 5000));
  EXPECT_EQ(blocks(a), 16u);

  fs::Ino b = make("b");
  ASSERT_TRUE(write(b, 0, std::string(5000, 'x')));
  ASSERT_EQ(fallocate(b, FALLOC_FL_KEEP_SIZE, 6000, 20000), 0);
  const uint64_t used = statfs().blocks - statfs().bfree;
  ASSERT_TRUE(write(b, 12000, std::string(100, 'y')));
  EXPECT_EQ(statfs().blocks - statfs().bfree, used);  // written in place
  EXPECT_EQ(size(b), 12100u);
  EXPECT_EQ(blocks(b), 56u);
  EXPECT_EQ(*read(b, 11990, 20), std::string(10, '\0') + std::string(10, 'y'));

  fs::Ino c = make("c");
  ASSERT_TRUE(write(c, 0, std::string(56605, 'x')));
  EXPECT_EQ(blocks(c), 112u);
  ASSERT_EQ(fallocate(c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4000, 9000), 0);
  EXPECT_EQ(blocks(c), 96u);
  EXPECT_EQ(*read(c, 3990, 20), std::string(10, 'x') + std::string(10, '\0'));
  EXPECT_EQ(*read(c, 12990, 20), std::string(10, '\0') + std::string(10, 'x'));
  ASSERT_EQ(fallocate(c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 50000, 20000), 0);
  EXPECT_EQ(blocks(c), 88u);
  EXPECT_EQ(size(c), 56605u);

  fs::Ino e = make("e");
  ASSERT_TRUE(write(e, 0, std::string(3000, 'x')));
  ASSERT_EQ(fallocate(e, 0, 2000, 3000), 0);
  EXPECT_EQ(size(e), 5000u);
  EXPECT_EQ(blocks(e), 16u);
  ASSERT_EQ(fallocate(e, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, P, P), 0);
  EXPECT_EQ(blocks(e), 8u);
}

TEST_F(FsTest, SeekDataHoleAndZeroRange) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 2 * P, std::string(P, 'd')));
  ASSERT_EQ(fallocate(f, FALLOC_FL_KEEP_SIZE, 4 * P, 2 * P), 0);
  ASSERT_TRUE(truncate(f, 8 * P));
  EXPECT_EQ(*lseek(f, 0, SEEK_DATA), 2 * P);
  EXPECT_EQ(*lseek(f, 2 * P + 7, SEEK_DATA), 2 * P + 7);
  EXPECT_EQ(*lseek(f, 0, SEEK_HOLE), 0u);
  EXPECT_EQ(*lseek(f, 2 * P, SEEK_HOLE), 3 * P);
  EXPECT_EQ(err_of(lseek(f, 3 * P, SEEK_DATA)), ENXIO);  // unwritten is a hole
  EXPECT_EQ(err_of(lseek(f, 8 * P, SEEK_DATA)), ENXIO);
  EXPECT_EQ(*lseek(f, 7 * P, SEEK_HOLE), 7 * P);
  // ZERO_RANGE: whole blocks become unwritten, edges are zeroed.
  ASSERT_TRUE(write(f, 0, std::string(3 * P, 'x')));
  ASSERT_EQ(fallocate(f, FALLOC_FL_ZERO_RANGE, 100, 2 * P), 0);
  EXPECT_EQ(*read(f, 0, 3 * P), std::string(100, 'x') + std::string(2 * P, '\0') +
                                    std::string(P - 100, 'x'));
  EXPECT_EQ(*lseek(f, 0, SEEK_HOLE), P);
  EXPECT_EQ(fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, P), EOPNOTSUPP);
  EXPECT_EQ(fallocate(f, 0x100, 0, P), EOPNOTSUPP);
  EXPECT_EQ(fallocate(f, 0, 0, 0), EINVAL);
}

TEST_F(FsTest, CopyFileRange) {
  fs::Ino a = make("a");
  fs::Ino b = make("b");
  ASSERT_TRUE(write(a, 0, "0123456789"));
  ASSERT_TRUE(write(a, 2 * P, "tail"));
  EXPECT_EQ(*copy(a, 2, b, 1, 100000), 2 * P + 2);
  EXPECT_EQ(*read(b, 0, 12), std::string("\0" "23456789", 9) + std::string(3, '\0'));
  EXPECT_EQ(*read(b, 2 * P - 1, 10), "tail");
  EXPECT_EQ(err_of(copy(a, 0, a, 5, 10)), EINVAL);  // overlapping in one file
  EXPECT_EQ(*copy(a, 0, a, 3 * P, 4), 4u);
  EXPECT_EQ(*read(a, 3 * P, 4), "0123");
}

TEST_F(FsTest, NamesAndReaddir) {
  auto d = mkdir(fs::kRootIno, "d");
  ASSERT_TRUE(d);
  EXPECT_EQ(getattr(fs::kRootIno)->nlink, 3u);
  make("x", d->ino);
  make("y", d->ino);
  ASSERT_TRUE(mkdir(d->ino, "sub"));
  EXPECT_EQ(list(d->ino), (std::vector<std::string>{".", "..", "x", "y", "sub"}));
  EXPECT_EQ(getattr(d->ino)->size, 40u + 3 * 20);
  EXPECT_EQ(err_of(mkdir(d->ino, "x")), EEXIST);
  EXPECT_EQ(err_of(lookup(d->ino, "nope")), ENOENT);
  EXPECT_EQ(lookup(d->ino, "..")->ino, fs::kRootIno);
  EXPECT_EQ(rmdir(fs::kRootIno, "d"), ENOTEMPTY);
  EXPECT_EQ(unlink(d->ino, "sub"), EISDIR);
  EXPECT_EQ(rmdir(d->ino, "x"), ENOTDIR);
  EXPECT_EQ(unlink(d->ino, "x"), 0);
  EXPECT_EQ(rmdir(d->ino, "sub"), 0);
  EXPECT_EQ(list(d->ino), (std::vector<std::string>{".", "..", "y"}));
  // Cookies stay valid while entries come and go; a freed slot is reused.
  make("z", d->ino);
  auto plus = readdir(d->ino, 0, true);
  ASSERT_EQ(plus->dir.size(), 4u);
  EXPECT_TRUE(plus->dir[2].has_entry);
  EXPECT_EQ(list(d->ino, false, 64).size(), 4u);  // one entry per call
  // Long names take several slots.
  std::string long_name(255, 'n');
  ASSERT_TRUE(create(d->ino, long_name));
  EXPECT_TRUE(lookup(d->ino, long_name));
  EXPECT_EQ(err_of(create(d->ino, std::string(256, 'n'))), ENAMETOOLONG);
}

TEST_F(FsTest, ManyEntriesSpanBlocks) {
  auto d = mkdir(fs::kRootIno, "d");
  for (int k = 0; k < 300; ++k) ASSERT_TRUE(create(d->ino, "file-" + std::to_string(k)));
  for (int k = 0; k < 300; k += 2) ASSERT_EQ(unlink(d->ino, "file-" + std::to_string(k)), 0);
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(mknod(d->ino, "fifo-" + std::to_string(k), S_IFIFO | 0600));
  auto names = list(d->ino);
  EXPECT_EQ(names.size(), 2u + 150 + 100);
}

TEST_F(FsTest, Symlinks) {
  auto s = symlink("short/target", fs::kRootIno, "s");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->attr.blocks, 0u);
  EXPECT_EQ(*readlink(s->ino), "short/target");
  std::string longt(3000, 't');
  auto l = symlink(longt, fs::kRootIno, "l");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->attr.blocks, 8u);
  EXPECT_EQ(l->attr.size, 3000u);
  EXPECT_EQ(*readlink(l->ino), longt);
  EXPECT_EQ(err_of(symlink(std::string(4096, 'x'), fs::kRootIno, "toolong")), ENAMETOOLONG);
  const uint64_t free1 = statfs().bfree;
  EXPECT_EQ(unlink(fs::kRootIno, "l"), 0);
  forget(l->ino);
  EXPECT_EQ(statfs().bfree, free1 + 2);  // target block and extent block
}

TEST_F(FsTest, HardLinksAndLifetime) {
  fs::Ino f = make("f");
  ASSERT_TRUE(write(f, 0, "data"));
  auto l = link(f, fs::kRootIno, "g");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->attr.nlink, 2u);
  auto d = mkdir(fs::kRootIno, "d");
  EXPECT_EQ(err_of(link(d->ino, fs::kRootIno, "dd")), EPERM);
  EXPECT_EQ(unlink(fs::kRootIno, "f"), 0);
  EXPECT_EQ(getattr(f)->nlink, 1u);
  ASSERT_EQ(open(f), 0);
  EXPECT_EQ(unlink(fs::kRootIno, "g"), 0);
  // Open and referenced: still readable.
  EXPECT_EQ(*read(f, 0, 10), "data");
  const uint64_t free1 = statfs().bfree;
  EXPECT_EQ(release(f), 0);
  EXPECT_TRUE(getattr(f));  // the kernel still holds it
  forget(f);
  EXPECT_EQ(err_of(getattr(f)), ENOENT);
  EXPECT_EQ(statfs().bfree, free1 + 2);
}

TEST_F(FsTest, Rename) {
  auto a = mkdir(fs::kRootIno, "a");
  auto b = mkdir(fs::kRootIno, "b");
  fs::Ino f = make("f", a->ino);
  fs::Ino g = make("g", b->ino);
  ASSERT_TRUE(write(g, 0, "gee"));
  EXPECT_EQ(rename(a->ino, "f", b->ino, "g", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(rename(a->ino, "f", b->ino, "g"), 0);  // replaces g
  EXPECT_EQ(lookup(b->ino, "g")->ino, f);
  EXPECT_EQ(err_of(lookup(a->ino, "f")), ENOENT);
  forget(g);
  EXPECT_EQ(err_of(getattr(g)), ENOENT);
  // Directories move and fix "..", nlink.
  auto sub = mkdir(a->ino, "sub");
  EXPECT_EQ(getattr(a->ino)->nlink, 3u);
  EXPECT_EQ(rename(a->ino, "sub", b->ino, "sub2"), 0);
  EXPECT_EQ(getattr(a->ino)->nlink, 2u);
  EXPECT_EQ(getattr(b->ino)->nlink, 3u);
  EXPECT_EQ(lookup(sub->ino, "..")->ino, b->ino);
  EXPECT_EQ(rename(fs::kRootIno, "b", sub->ino, "loop"), EINVAL);
  // Exchange, across directories, a file with a directory.
  fs::Ino h = make("h", a->ino);
  EXPECT_EQ(rename(a->ino, "h", b->ino, "sub2", RENAME_EXCHANGE), 0);
  EXPECT_EQ(lookup(a->ino, "h")->ino, sub->ino);
  EXPECT_EQ(lookup(b->ino, "sub2")->ino, h);
  EXPECT_EQ(lookup(sub->ino, "..")->ino, a->ino);
  EXPECT_EQ(getattr(a->ino)->nlink, 3u);
  EXPECT_EQ(getattr(b->ino)->nlink, 2u);
  EXPECT_EQ(rename(a->ino, "h", b->ino, "nothere", RENAME_EXCHANGE), ENOENT);
  EXPECT_EQ(rename(a->ino, "h", a->ino, "h2"), 0);  // same directory
  EXPECT_EQ(list(a->ino), (std::vector<std::string>{".", "..", "h2"}));
  EXPECT_EQ(rename(a->ino, "h2", a->ino, "h2", RENAME_WHITEOUT), EINVAL);
}

TEST_F(FsTest, Xattrs) {
  fs::Ino f = make();
  EXPECT_EQ(setxattr(f, "user.a", "1"), 0);
  EXPECT_EQ(setxattr(f, "user.b", "22"), 0);
  EXPECT_EQ(setxattr(f, "user.a", "x", XATTR_CREATE), EEXIST);
  EXPECT_EQ(setxattr(f, "user.c", "x", XATTR_REPLACE), ENODATA);
  EXPECT_EQ(setxattr(f, "user.a", "111", XATTR_REPLACE), 0);
  EXPECT_EQ(*getxattr(f, "user.a"), "111");
  EXPECT_EQ(*getxattr(f, "user.b", 0), "2");  // size only
  EXPECT_EQ(err_of(getxattr(f, "user.b", 1)), ERANGE);
  EXPECT_EQ(*listxattr(f), std::string("user.b\0user.a\0", 14));
  EXPECT_EQ(setxattr(f, "system.posix_acl_access", "x"), EINVAL);  // not an ACL
  EXPECT_EQ(setxattr(f, "system.other", "x"), EOPNOTSUPP);
  EXPECT_EQ(removexattr(f, "user.b"), 0);
  EXPECT_EQ(removexattr(f, "user.b"), ENODATA);
  auto s = symlink("t", fs::kRootIno, "s");
  EXPECT_EQ(setxattr(s->ino, "user.x", "1"), EPERM);
  EXPECT_EQ(setxattr(s->ino, "trusted.x", "1"), 0);
  ctx.uid = 1000;
  EXPECT_EQ(err_of(getxattr(s->ino, "trusted.x")), ENODATA);
  ctx.uid = 0;
  EXPECT_EQ(setxattr(f, "user.empty", ""), 0);
  EXPECT_EQ(*getxattr(f, "user.empty"), "");
}

TEST_F(FsTest, SetattrAndSetgid) {
  fs::Ino f = make();
  fs::SetAttr s;
  s.valid = fs::SetAttr::kMode;
  s.mode = 06755;
  auto a = setattr(f, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->mode, S_IFREG | 06755u);
  s.valid = fs::SetAttr::kUid | fs::SetAttr::kGid;
  s.uid = 5;
  s.gid = 6;
  a = setattr(f, s);
  EXPECT_EQ(a->uid, 5u);
  EXPECT_EQ(a->mode, S_IFREG | 0755u);  // chown drops set-id bits
  s.valid = fs::SetAttr::kAtime | fs::SetAttr::kMtime;
  s.atime = {1000, 5};
  s.mtime = {2000, 7};
  a = setattr(f, s);
  EXPECT_EQ(a->atime.tv_sec, 1000);
  EXPECT_EQ(a->mtime.tv_nsec, 7);
  // A setgid directory passes its group (and the bit, to directories).
  auto d = mkdir(fs::kRootIno, "sg", 02775);
  s.valid = fs::SetAttr::kMode | fs::SetAttr::kGid;
  s.mode = 02775;
  s.gid = 77;
  ASSERT_TRUE(setattr(d->ino, s));
  ctx.uid = 1000;
  ctx.gid = 1000;
  auto c = create(d->ino, "c");
  EXPECT_EQ(c->attr.gid, 77u);
  auto cd = mkdir(d->ino, "cd");
  EXPECT_EQ(cd->attr.gid, 77u);
  EXPECT_TRUE(cd->attr.mode & S_ISGID);
  // Writes with the kill flag drop set-id bits.
  ctx.uid = 0;
  s.valid = fs::SetAttr::kMode;
  s.mode = 04755;
  ASSERT_TRUE(setattr(f, s));
  ASSERT_TRUE(write(f, 0, "x", 1));
  EXPECT_EQ(getattr(f)->mode, S_IFREG | 0755u);
}

TEST_F(FsTest, MknodAndTmpfile) {
  auto c = mknod(fs::kRootIno, "chr", S_IFCHR | 0600, 0x0501);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->attr.rdev, 0x0501u);
  EXPECT_EQ(err_of(mknod(fs::kRootIno, "dir", S_IFDIR | 0600)), EPERM);
  EXPECT_TRUE(mknod(fs::kRootIno, "sock", S_IFSOCK | 0600));
  auto t = tmpfile(fs::kRootIno);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->attr.nlink, 0u);
  ASSERT_TRUE(write(t->ino, 0, "tmp"));
  auto l = link(t->ino, fs::kRootIno, "named");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->attr.nlink, 1u);
  release(t->ino);
  EXPECT_EQ(*read(lookup(fs::kRootIno, "named")->ino, 0, 10), "tmp");
  auto t2 = tmpfile(fs::kRootIno, 0600, O_RDWR | O_EXCL);
  EXPECT_EQ(err_of(link(t2->ino, fs::kRootIno, "never")), ENOENT);
  release(t2->ino);
  forget(t2->ino);
}

TEST_F(FsTest, OpenTruncAndIoMode) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, "data"));
  auto c = run([&](Call* c) { fs().open(ctx, f, O_RDWR | O_TRUNC, reply<fs::OpenReply>(c)); });
  ASSERT_EQ(c->kind, Call::kOpen);
  EXPECT_EQ(c->open.mode, fs::IoMode::Direct);
  EXPECT_EQ(size(f), 0u);
  release(f);
  auto e = create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT | O_TRUNC);
  EXPECT_EQ(e->ino, f);
  EXPECT_EQ(err_of(create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT | O_EXCL)), EEXIST);
}

TEST_F(FsTest, EnospcIsCleanAndSpaceComesBack) {
  // Fill the pool; every failing write leaves the file as it was.
  fs::Ino f = make("big");
  const uint64_t free0 = statfs().bfree;
  std::string chunk(1 << 20, 'q');
  uint64_t off = 0;
  int err = 0;
  for (;;) {
    auto w = write(f, off, chunk);
    if (!w) {
      err = w.error().value;
      break;
    }
    off += *w;
  }
  EXPECT_EQ(err, ENOSPC);
  EXPECT_EQ(size(f), off);
  EXPECT_LT(statfs().bfree, 256u);
  EXPECT_EQ(*read(f, off - 4, 8), "qqqq");
  // No room for a copy-on-write of a full file either: a 64 KiB overwrite
  // (copy-on-write) is refused cleanly; a 4 KiB one goes through the
  // journal and needs no new block, so it still succeeds.
  while (statfs().bfree > 0) {
    if (!write(f, off, std::string(P, 'r'))) break;
    off += P;
  }
  EXPECT_EQ(err_of(write(f, 0, std::string(16 * P, 'z'))), ENOSPC);
  EXPECT_EQ(*read(f, 0, 4), "qqqq");
  EXPECT_EQ(*read(f, 15 * P, 4), "qqqq");
  EXPECT_EQ(statfs().bfree, 0u);
  ASSERT_TRUE(write(f, 2, std::string(P, 'y')));
  EXPECT_EQ(*read(f, 0, 4), "qqyy");
  EXPECT_EQ(*read(f, P, 4), "yyqq");
  EXPECT_EQ(statfs().bfree, 0u);
  EXPECT_EQ(fallocate(f, 0, off, 10 * P), ENOSPC);
  EXPECT_EQ(size(f), off);
  // Unlink returns everything.
  ASSERT_EQ(unlink(fs::kRootIno, "big"), 0);
  forget(f);
  EXPECT_EQ(statfs().bfree, free0);
  ASSERT_TRUE(remount());
  EXPECT_EQ(statfs().bfree, free0);
  fs::Ino g = make("again");
  EXPECT_TRUE(write(g, 0, chunk));
}

}  // namespace
}  // namespace zest::pmfs::test

namespace zest::pmfs::test {
namespace {

// The cost model of docs/format.md. A 4 KiB overwrite goes through the
// journal: the block is stored twice (journal, in place) with the inode, and
// fenced twice (the previous apply and the commit). A 64 KiB overwrite is
// copy-on-write: the data once, plus a transaction of a few hundred bytes
// (journal and in place). A regression shows as more bytes or fences.
TEST(WriteCost, JournaledSmallOverwriteAndCopyOnWrite) {
  PmFsHarness h;
  auto f = h.create(fs::kRootIno, "f");
  ASSERT_TRUE(h.write(f->ino, 0, std::string(1 << 20, 'a')));
  auto measure = [&](size_t size, const char* what, double* bytes, double* fences) {
    const std::string chunk(size, 'b');
    const uint64_t slots = (1u << 20) / size;
    const pmem::PoolStats s0 = h.pm().pool().stats();
    constexpr int kOps = 1000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < kOps; ++k) {
      ASSERT_TRUE(h.write(f->ino, uint64_t(k * 37 % slots) * size, chunk));
    }
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
        kOps;
    const pmem::PoolStats s1 = h.pm().pool().stats();
    *bytes = double(s1.bytes_written - s0.bytes_written) / kOps;
    *fences = double(s1.fences - s0.fences) / kOps;
    std::printf("%s: %.2f us, %.0f bytes stored, %.1f fences per op\n", what, us, *bytes, *fences);
  };
  double bytes = 0, fences = 0;
  measure(4096, "4 KiB overwrite (journaled)", &bytes, &fences);
  EXPECT_LT(bytes, 2 * 4096 + 1024);
  EXPECT_LE(fences, 2.0);
  EXPECT_EQ(*h.read(f->ino, 37 * 4096, 4), "bbbb");
  measure(64 * 1024, "64 KiB overwrite (copy-on-write)", &bytes, &fences);
  EXPECT_LT(bytes, 64 * 1024 + 2 * 1024);
  EXPECT_LE(fences, 2.0);
  EXPECT_EQ(*h.read(f->ino, 5 * 64 * 1024, 4), "bbbb");
}

}  // namespace
}  // namespace zest::pmfs::test
