// memfs regular files through the plugin API: data, sparse accounting,
// fallocate, SEEK_DATA/SEEK_HOLE, copy_file_range, truncation, lifecycle.
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include "tests/memfs/fake_sink.h"

namespace zest::memfs::test {
namespace {

constexpr uint64_t P = 4096;

class FileTest : public ::testing::Test, public MemFsHarness {
 protected:
  fs::Ino make(std::string_view name = "f") {
    auto e = create(fs::kRootIno, name);
    EXPECT_TRUE(e);
    return e ? e->ino : 0;
  }
  uint64_t blocks(fs::Ino ino) { return getattr(ino)->blocks; }
  uint64_t size(fs::Ino ino) { return getattr(ino)->size; }
};

TEST_F(FileTest, WriteReadRoundTrip) {
  fs::Ino f = make();
  ASSERT_EQ(*write(f, 0, "hello world"), 11u);
  EXPECT_EQ(*read(f, 0, 100), "hello world");
  EXPECT_EQ(*read(f, 6, 5), "world");
  EXPECT_EQ(*read(f, 11, 5), "");  // at EOF
  EXPECT_EQ(*read(f, 1000, 5), "");
  EXPECT_EQ(size(f), 11u);
  EXPECT_EQ(blocks(f), 8u);
}

TEST_F(FileTest, SparseBlocksMatchTmpfs) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 3 * P + 5, "x"));
  EXPECT_EQ(size(f), 3 * P + 6);
  EXPECT_EQ(blocks(f), 8u);  // one page
  ASSERT_TRUE(write(f, 0, std::string(P + 1, '\0')));  // zeros allocate too
  EXPECT_EQ(blocks(f), 24u);
  EXPECT_EQ(*read(f, P + 1, 10), std::string(10, '\0'));  // hole reads zeros
  ASSERT_TRUE(write(f, uint64_t{1} << 40, "y"));  // far away: one more page
  EXPECT_EQ(blocks(f), 32u);
  EXPECT_EQ(statfs().blocks - statfs().bfree, 4u);
}

TEST_F(FileTest, ReadRepliesPointAtPages) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(4 * P, 'a')));
  auto c = run([&](Call* c) { fs().read(ctx, f, 0, 0, 4 * P, reply<fs::DataReply>(c)); });
  EXPECT_EQ(c->iov_count, 4u);
  EXPECT_EQ(c->data, std::string(4 * P, 'a'));
}

TEST_F(FileTest, EfbigPastMaxFileSize) {
  fs::Ino f = make();
  EXPECT_EQ(err_of(write(f, INT64_MAX, "x")), EFBIG);
  fs::SetAttr s;
  s.valid = fs::SetAttr::kSize;
  s.size = uint64_t{INT64_MAX} + 1;
  EXPECT_EQ(err_of(setattr(f, s)), EFBIG);
  s.size = INT64_MAX;  // tmpfs accepts exactly MAX_LFS_FILESIZE
  EXPECT_TRUE(setattr(f, s));
  EXPECT_EQ(fallocate(f, 0, INT64_MAX - 10, 20), EFBIG);
}

TEST_F(FileTest, TruncateFreesPagesAndUpdatesTimes) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(3 * P, 'b')));
  auto before = *getattr(f);
  usleep(2000);
  fs::SetAttr s;
  s.valid = fs::SetAttr::kSize;
  s.size = P + 1;
  auto a = setattr(f, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size, P + 1);
  EXPECT_EQ(a->blocks, 16u);
  EXPECT_GT(a->mtime.tv_sec * 1000000000 + a->mtime.tv_nsec,
            before.mtime.tv_sec * 1000000000 + before.mtime.tv_nsec);
  EXPECT_EQ(a->mtime.tv_nsec, a->ctime.tv_nsec);
  // tmpfs drops pages fallocated past EOF even when the size stays.
  ASSERT_EQ(fallocate(f, FALLOC_FL_KEEP_SIZE, 0, 10 * P), 0);
  EXPECT_EQ(blocks(f), 80u);
  EXPECT_EQ(size(f), P + 1);
  EXPECT_TRUE(setattr(f, s));
  EXPECT_EQ(blocks(f), 16u);
}

// st_blocks through sequences of fallocate past EOF, writes, truncation and
// hole punching, as measured on tmpfs (Linux 6.18, /dev/shm).
TEST_F(FileTest, BlocksAroundEofMatchTmpfs) {
  auto truncate = [&](fs::Ino f, uint64_t len) {
    fs::SetAttr s;
    s.valid = fs::SetAttr::kSize;
    s.size = len;
    return setattr(f, s);
  };
  // Pages fallocated past EOF survive a growing or same-size truncation
  // (tmpfs truncates the page cache only when the size shrinks or stays).
  fs::Ino a = make("a");
  ASSERT_TRUE(write(a, 0, std::string(10000, 'x')));
  ASSERT_EQ(fallocate(a, FALLOC_FL_KEEP_SIZE, 20000, 10000), 0);
  EXPECT_EQ(blocks(a), 56u);
  ASSERT_TRUE(truncate(a, 30000));
  EXPECT_EQ(blocks(a), 56u);  // the size now covers them: nothing past EOF
  ASSERT_TRUE(truncate(a, 30000));
  EXPECT_EQ(blocks(a), 56u);
  ASSERT_TRUE(truncate(a, 5000));
  EXPECT_EQ(blocks(a), 16u);

  // Writing into a page fallocated past EOF allocates nothing new.
  fs::Ino b = make("b");
  ASSERT_TRUE(write(b, 0, std::string(5000, 'x')));
  ASSERT_EQ(fallocate(b, FALLOC_FL_KEEP_SIZE, 6000, 20000), 0);
  ASSERT_TRUE(write(b, 12000, std::string(100, 'y')));
  EXPECT_EQ(size(b), 12100u);
  EXPECT_EQ(blocks(b), 56u);
  ASSERT_TRUE(truncate(b, 20000));
  EXPECT_EQ(blocks(b), 56u);

  // Punching frees only whole pages, also the one EOF falls in when the
  // hole covers all of it.
  fs::Ino c = make("c");
  ASSERT_TRUE(write(c, 0, std::string(56605, 'x')));
  EXPECT_EQ(blocks(c), 112u);
  ASSERT_EQ(fallocate(c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4000, 9000), 0);
  EXPECT_EQ(blocks(c), 96u);
  ASSERT_EQ(fallocate(c, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 50000, 20000), 0);
  EXPECT_EQ(blocks(c), 88u);
  EXPECT_EQ(size(c), 56605u);

  // A KEEP_SIZE fallocate across EOF, then growing to a page boundary and
  // shrinking back.
  fs::Ino d = make("d");
  const uint64_t m = uint64_t{1} << 20;
  ASSERT_TRUE(write(d, m, std::string(100, 'x')));
  ASSERT_EQ(fallocate(d, FALLOC_FL_KEEP_SIZE, m + 50, 9000), 0);
  EXPECT_EQ(blocks(d), 24u);
  ASSERT_TRUE(truncate(d, m + P));
  EXPECT_EQ(blocks(d), 24u);
  ASSERT_TRUE(truncate(d, m + 100));
  EXPECT_EQ(blocks(d), 8u);

  // Punching a page that only fallocate filled.
  fs::Ino e = make("e");
  ASSERT_TRUE(write(e, 0, std::string(3000, 'x')));
  ASSERT_EQ(fallocate(e, 0, 2000, 3000), 0);
  EXPECT_EQ(size(e), 5000u);
  EXPECT_EQ(blocks(e), 16u);
  ASSERT_EQ(fallocate(e, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, P, P), 0);
  EXPECT_EQ(blocks(e), 8u);
}

TEST_F(FileTest, TruncateErrorsOnNonRegular) {
  auto d = mkdir(fs::kRootIno, "d");
  fs::SetAttr s;
  s.valid = fs::SetAttr::kSize;
  EXPECT_EQ(err_of(setattr(d->ino, s)), EISDIR);
  auto l = symlink("t", fs::kRootIno, "l");
  EXPECT_EQ(err_of(setattr(l->ino, s)), EINVAL);
}

TEST_F(FileTest, OpenTruncAndIoMode) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, "data"));
  auto c = run([&](Call* c) { fs().open(ctx, f, O_RDWR | O_TRUNC, reply<fs::OpenReply>(c)); });
  ASSERT_EQ(c->kind, Call::kOpen);
  EXPECT_EQ(c->open.mode, fs::IoMode::Direct);
  EXPECT_FALSE(c->open.keep_cache);
  EXPECT_EQ(size(f), 0u);
  EXPECT_EQ(blocks(f), 0u);
  release(f);

  MemFsHarness cached(Options{.writeback_cache = true, .io_mode = fs::IoMode::Cached});
  EXPECT_TRUE(cached.fs().capabilities().writeback_cache);
  auto cr = cached.run([&](Call* c) {
    cached.fs().create(ctx, fs::kRootIno, "g", 0644, O_RDWR, cached.reply<fs::CreateReply>(c));
  });
  ASSERT_EQ(cr->kind, Call::kCreate);
  EXPECT_EQ(cr->open.mode, fs::IoMode::Cached);
  EXPECT_TRUE(cr->open.keep_cache);
}

TEST_F(FileTest, CreateExistingWithoutExclOpensIt) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, "abc"));
  auto e = create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->ino, f);
  EXPECT_EQ(size(f), 0u);
  EXPECT_EQ(err_of(create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT | O_EXCL)), EEXIST);
}

TEST_F(FileTest, FallocateModes) {
  fs::Ino f = make();
  ASSERT_EQ(fallocate(f, 0, 0, 2 * P), 0);
  EXPECT_EQ(size(f), 2 * P);
  EXPECT_EQ(blocks(f), 16u);
  EXPECT_EQ(*read(f, 0, 2 * P), std::string(2 * P, '\0'));
  // Fallocated pages are holes to SEEK_DATA, as tmpfs's !uptodate pages.
  EXPECT_EQ(err_of(lseek(f, 0, SEEK_DATA)), ENXIO);
  EXPECT_EQ(*lseek(f, 0, SEEK_HOLE), 0u);

  ASSERT_EQ(fallocate(f, FALLOC_FL_KEEP_SIZE, P, 3 * P), 0);
  EXPECT_EQ(size(f), 2 * P);
  EXPECT_EQ(blocks(f), 32u);
  // tmpfs: fallocating an already fallocated page makes it data.
  EXPECT_EQ(*lseek(f, 0, SEEK_DATA), P);
  EXPECT_EQ(*lseek(f, P, SEEK_HOLE), 2 * P);  // the hole at EOF
  EXPECT_EQ(*lseek(f, 0, SEEK_HOLE), 0u);

  EXPECT_EQ(fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, P), EOPNOTSUPP);
  EXPECT_EQ(fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, P),
            EOPNOTSUPP);
  EXPECT_EQ(fallocate(f, FALLOC_FL_COLLAPSE_RANGE, 0, P), EOPNOTSUPP);
  EXPECT_EQ(fallocate(f, 0, 0, 0), EINVAL);
  auto d = mkdir(fs::kRootIno, "d");
  EXPECT_EQ(fallocate(d->ino, 0, 0, P), EISDIR);
  auto fifo = mknod(fs::kRootIno, "p", S_IFIFO | 0644);
  EXPECT_EQ(fallocate(fifo->ino, 0, 0, P), ENODEV);
}

TEST_F(FileTest, PunchHoleContents) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(4 * P, 'a')));
  usleep(2000);
  auto before = *getattr(f);
  ASSERT_EQ(fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, P / 2, 2 * P), 0);
  auto after = *getattr(f);
  EXPECT_EQ(after.size, 4 * P);
  EXPECT_EQ(after.blocks, 24u);  // only page 1 was fully inside
  EXPECT_NE(after.mtime.tv_nsec, before.mtime.tv_nsec);
  std::string want = std::string(P / 2, 'a') + std::string(2 * P, '\0') + std::string(P + P / 2, 'a');
  EXPECT_EQ(*read(f, 0, 4 * P), want);
  EXPECT_EQ(*lseek(f, 0, SEEK_HOLE), P);
  EXPECT_EQ(*lseek(f, P, SEEK_DATA), 2 * P);
  // Within one page.
  ASSERT_EQ(fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * P + 1, 2), 0);
  EXPECT_EQ(*read(f, 3 * P, 4), std::string("a\0\0a", 4));
}

TEST_F(FileTest, ZeroRangeContents) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(3 * P, 'c')));
  ASSERT_EQ(fallocate(f, FALLOC_FL_ZERO_RANGE, 100, P + 200), 0);
  std::string want = std::string(100, 'c') + std::string(P + 200, '\0') +
                     std::string(3 * P - 100 - (P + 200), 'c');
  EXPECT_EQ(*read(f, 0, 3 * P), want);
  EXPECT_EQ(blocks(f), 24u);  // zeroing keeps the pages
  EXPECT_EQ(size(f), 3 * P);
  // Extends past EOF, allocating, unless KEEP_SIZE.
  ASSERT_EQ(fallocate(f, FALLOC_FL_ZERO_RANGE, 3 * P, 2 * P), 0);
  EXPECT_EQ(size(f), 5 * P);
  EXPECT_EQ(blocks(f), 40u);
  ASSERT_EQ(fallocate(f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 5 * P, P), 0);
  EXPECT_EQ(size(f), 5 * P);
  EXPECT_EQ(blocks(f), 48u);
  EXPECT_EQ(*read(f, 0, 5 * P), want + std::string(2 * P, '\0'));
}

TEST_F(FileTest, SeekDataHole) {
  fs::Ino f = make();
  EXPECT_EQ(err_of(lseek(f, 0, SEEK_DATA)), ENXIO);  // empty file
  EXPECT_EQ(err_of(lseek(f, 0, SEEK_HOLE)), ENXIO);
  ASSERT_TRUE(write(f, 2 * P + 10, "x"));  // pages: hole, hole, data
  EXPECT_EQ(*lseek(f, 0, SEEK_DATA), 2 * P);
  EXPECT_EQ(*lseek(f, 2 * P + 5, SEEK_DATA), 2 * P + 5);
  EXPECT_EQ(*lseek(f, 0, SEEK_HOLE), 0u);
  EXPECT_EQ(*lseek(f, 2 * P, SEEK_HOLE), 2 * P + 11);  // the hole at EOF
  EXPECT_EQ(err_of(lseek(f, 2 * P + 11, SEEK_DATA)), ENXIO);
  fs::SetAttr s;
  s.valid = fs::SetAttr::kSize;
  s.size = 10 * P;
  ASSERT_TRUE(setattr(f, s));
  EXPECT_EQ(*lseek(f, 2 * P, SEEK_HOLE), 3 * P);
  EXPECT_EQ(err_of(lseek(f, 3 * P, SEEK_DATA)), ENXIO);
  EXPECT_EQ(err_of(lseek(f, 0, SEEK_SET)), EINVAL);
}

TEST_F(FileTest, CopyFileRange) {
  fs::Ino a = make("a");
  fs::Ino b = make("b");
  ASSERT_TRUE(write(a, 0, "0123456789"));
  EXPECT_EQ(*copy(a, 2, b, 5, 100), 8u);  // clipped at the source's EOF
  EXPECT_EQ(*read(b, 0, 100), std::string(5, '\0') + "23456789");
  EXPECT_EQ(blocks(b), 8u);
  EXPECT_EQ(*copy(a, 20, b, 0, 5), 0u);  // past EOF
  // Same file, ranges apart.
  EXPECT_EQ(*copy(a, 0, a, 10, 10), 10u);
  EXPECT_EQ(*read(a, 0, 100), "01234567890123456789");
  // Same file, overlapping: the kernel says EINVAL.
  EXPECT_EQ(err_of(copy(a, 0, a, 5, 10)), EINVAL);
  EXPECT_EQ(*copy(a, 19, a, 20, 10), 1u);  // shortened to EOF: no overlap
  EXPECT_EQ(*read(a, 0, 100), "012345678901234567899");
  EXPECT_EQ(err_of(copy(a, 0, b, 0, 5, 1)), EINVAL);
  auto d = mkdir(fs::kRootIno, "d");
  EXPECT_EQ(err_of(copy(d->ino, 0, b, 0, 5)), EISDIR);
  // Holes in the source are copied as zeros, which allocates (splice does).
  fs::Ino c = make("c");
  ASSERT_TRUE(write(c, 3 * P, "z"));
  EXPECT_EQ(*copy(c, 0, b, 0, 3 * P + 1), 3 * P + 1);
  EXPECT_EQ(blocks(b), 32u);
  EXPECT_EQ(*read(b, 3 * P, 1), "z");
}

TEST_F(FileTest, WriteKillsSetIdBits) {
  fs::Ino f = make();
  fs::SetAttr s;
  s.valid = fs::SetAttr::kMode;
  s.mode = 06755;
  ASSERT_TRUE(setattr(f, s));
  ASSERT_TRUE(write(f, 0, "x"));  // no kill flag: the caller had CAP_FSETID
  EXPECT_EQ(getattr(f)->mode & 07777, 06755u);
  ASSERT_TRUE(write(f, 0, "x", 1));
  EXPECT_EQ(getattr(f)->mode & 07777, 0755u);
  s.mode = 02745;  // setgid without group exec: a locking mark, kept
  ASSERT_TRUE(setattr(f, s));
  ASSERT_TRUE(write(f, 0, "x", 1));
  EXPECT_EQ(getattr(f)->mode & 07777, 02745u);
}

TEST_F(FileTest, TmpfileThenLink) {
  auto c = run([&](Call* c) { fs().tmpfile(ctx, fs::kRootIno, 0600, O_RDWR, reply<fs::CreateReply>(c)); });
  ASSERT_EQ(c->kind, Call::kCreate);
  fs::Ino t = c->entry.ino;
  EXPECT_EQ(c->entry.attr.nlink, 0u);
  EXPECT_TRUE(list(fs::kRootIno).size() == 2);  // nameless
  ASSERT_TRUE(write(t, 0, "tmp"));
  auto e = link(t, fs::kRootIno, "named");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->attr.nlink, 1u);
  release(t);
  EXPECT_EQ(*read(lookup(fs::kRootIno, "named")->ino, 0, 10), "tmp");

  // O_EXCL: never linkable.
  auto x = run([&](Call* c) { fs().tmpfile(ctx, fs::kRootIno, 0600, O_RDWR | O_EXCL, reply<fs::CreateReply>(c)); });
  EXPECT_EQ(err_of(link(x->entry.ino, fs::kRootIno, "x")), ENOENT);
  // An ordinary unlinked file cannot come back either.
  auto f = create(fs::kRootIno, "gone", 0644, O_RDWR, true);
  ASSERT_EQ(unlink(fs::kRootIno, "gone"), 0);
  EXPECT_EQ(err_of(link(f->ino, fs::kRootIno, "back")), ENOENT);
}

TEST_F(FileTest, InodeFreedOnlyWhenUnlinkedClosedAndForgotten) {
  auto e = create(fs::kRootIno, "f", 0644, O_RDWR, /*keep_open=*/true);
  fs::Ino f = e->ino;
  ASSERT_TRUE(write(f, 0, std::string(8 * P, 'q')));
  uint64_t used = statfs().blocks - statfs().bfree;
  uint64_t files = statfs().files - statfs().ffree;
  EXPECT_EQ(used, 8u);
  ASSERT_EQ(unlink(fs::kRootIno, "f"), 0);
  EXPECT_EQ(getattr(f)->nlink, 0u);
  EXPECT_EQ(*read(f, 0, 1), "q");  // still open: still there
  forget(f);
  EXPECT_TRUE(getattr(f));  // still open
  EXPECT_EQ(statfs().blocks - statfs().bfree, 8u);
  release(f);
  EXPECT_EQ(err_of(getattr(f)), ENOENT);  // gone
  EXPECT_EQ(statfs().blocks - statfs().bfree, 0u);
  EXPECT_EQ(statfs().files - statfs().ffree, files - 1);

  // Closed and unlinked, but the kernel still knows it: kept until forget.
  auto g = create(fs::kRootIno, "g");
  ASSERT_EQ(unlink(fs::kRootIno, "g"), 0);
  EXPECT_TRUE(getattr(g->ino));
  forget(g->ino);
  EXPECT_EQ(err_of(getattr(g->ino)), ENOENT);
  // Numbers are not reused: the next inode is new.
  auto h = create(fs::kRootIno, "h");
  EXPECT_NE(h->ino, g->ino);
  EXPECT_EQ(h->generation, g->generation);
}

TEST_F(FileTest, StatfsAndEnospc) {
  MemFsHarness small(Options{.capacity_bytes = 4 * P, .max_inodes = 3});
  auto s = small.statfs();
  EXPECT_EQ(s.blocks, 4u);
  EXPECT_EQ(s.bfree, 4u);
  EXPECT_EQ(s.files, 3u);
  EXPECT_EQ(s.ffree, 2u);  // the root
  EXPECT_EQ(s.namelen, 255u);
  auto f = small.create(fs::kRootIno, "f");
  ASSERT_TRUE(f);
  EXPECT_EQ(*small.write(f->ino, 0, std::string(6 * P, 'x')), 4 * P);  // short
  EXPECT_EQ(small.statfs().bfree, 0u);
  EXPECT_EQ(err_of(small.write(f->ino, 8 * P, "x")), ENOSPC);
  EXPECT_EQ(small.fallocate(f->ino, 0, 10 * P, P), ENOSPC);
  EXPECT_TRUE(small.create(fs::kRootIno, "g"));
  EXPECT_EQ(err_of(small.create(fs::kRootIno, "h")), ENOSPC);  // out of inodes
}

}  // namespace
}  // namespace zest::memfs::test
