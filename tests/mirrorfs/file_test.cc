// mirrorfs regular files: the shared passthrough fd, the I/O we serve when
// the server falls back to direct mode, and the other open modes.
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "tests/mirrorfs/harness.h"

namespace zest::mirrorfs::test {
namespace {

std::string ReadBacking(const std::string& p) {
  std::string out(1 << 20, '\0');
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<missing>";
  ssize_t n = ::pread(fd, out.data(), out.size(), 0);
  ::close(fd);
  out.resize(n < 0 ? 0 : n);
  return out;
}

// The file an fd is open on, as (dev, ino).
std::pair<dev_t, ino_t> Identity(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return {st.st_dev, st.st_ino};
}

TEST(MirrorFiles, PassthroughOpensShareOneBackingFdPerInode) {
  MirrorHarness h;
  fs::OpenInfo c;
  auto f = h.create(fs::kRootIno, "f", 0644, O_WRONLY | O_CREAT, &c);
  ASSERT_TRUE(f);
  EXPECT_EQ(c.mode, fs::IoMode::Passthrough);
  ASSERT_GE(c.backing_fd, 0);
  struct stat st;
  ASSERT_EQ(::stat(h.B("f").c_str(), &st), 0);
  EXPECT_EQ(Identity(c.backing_fd), std::make_pair(st.st_dev, st.st_ino));
  // The backing fd is neither O_APPEND nor O_DIRECT whatever the opens ask
  // (the kernel opens its own backing file with the caller's flags).
  auto o1 = h.open(f->ino, O_RDONLY | O_APPEND | O_DIRECT);
  ASSERT_TRUE(o1);
  auto o2 = h.open(f->ino, O_RDWR);
  ASSERT_TRUE(o2);
  EXPECT_EQ(o1->backing_fd, c.backing_fd);
  EXPECT_EQ(o2->backing_fd, c.backing_fd);
  int fl = ::fcntl(c.backing_fd, F_GETFL);
  EXPECT_EQ(fl & O_ACCMODE, O_RDWR);
  EXPECT_EQ(fl & (O_APPEND | O_DIRECT), 0);
  int fds = open_fd_count();
  EXPECT_EQ(h.release(f->ino, c.fh), 0);
  EXPECT_EQ(h.release(f->ino, o1->fh), 0);
  EXPECT_EQ(open_fd_count(), fds);  // still shared by o2
  EXPECT_EQ(::fcntl(o2->backing_fd, F_GETFD) >= 0, true);
  EXPECT_EQ(h.release(f->ino, o2->fh), 0);
  EXPECT_EQ(open_fd_count(), fds - 1);  // closed with the last open
  // A new open gets a new shared fd.
  auto o3 = h.open(f->ino, O_RDONLY);
  ASSERT_TRUE(o3);
  EXPECT_EQ(Identity(o3->backing_fd), std::make_pair(st.st_dev, st.st_ino));
  EXPECT_EQ(h.release(f->ino, o3->fh), 0);
}

TEST(MirrorFiles, FallbackReadWriteServeTheData) {
  MirrorHarness h;
  fs::OpenInfo c;
  auto f = h.create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT, &c);
  ASSERT_TRUE(f);
  ASSERT_EQ(*h.write(f->ino, c.fh, 0, "hello world"), 11u);
  ASSERT_EQ(*h.write(f->ino, c.fh, 6, "WORLD"), 5u);
  EXPECT_EQ(ReadBacking(h.B("f")), "hello WORLD");
  // An O_APPEND open writes where the kernel says (it computed EOF).
  auto a = h.open(f->ino, O_WRONLY | O_APPEND);
  ASSERT_TRUE(a);
  ASSERT_EQ(*h.write(f->ino, a->fh, 11, "!"), 1u);
  ASSERT_EQ(*h.write(f->ino, a->fh, 0, "H"), 1u);
  EXPECT_EQ(ReadBacking(h.B("f")), "Hello WORLD!");
  EXPECT_EQ(*h.read(f->ino, c.fh, 6, 100), "WORLD!");
  EXPECT_EQ(*h.read(f->ino, c.fh, 100, 10), "");
  EXPECT_EQ(h.release(f->ino, a->fh), 0);
  // O_TRUNC on open (atomic_o_trunc) truncates.
  auto t = h.open(f->ino, O_RDONLY | O_TRUNC);
  ASSERT_TRUE(t);
  EXPECT_EQ(ReadBacking(h.B("f")), "");
  EXPECT_EQ(h.release(f->ino, t->fh), 0);
  EXPECT_EQ(h.release(f->ino, c.fh), 0);
}

TEST(MirrorFiles, ReadOnlyBackingFileStillOpensForReading) {
  if (::geteuid() == 0) {
    // Root opens anything O_RDWR; an immutable file is the one it cannot.
    MirrorHarness h;
    auto f = h.create(fs::kRootIno, "ro");
    ASSERT_TRUE(f);
    int fd = ::open(h.B("ro").c_str(), O_RDONLY);
    int attr = FS_IMMUTABLE_FL;
    if (::ioctl(fd, FS_IOC_SETFLAGS, &attr) != 0) {
      ::close(fd);
      GTEST_SKIP() << "no chattr +i on the backing fs: " << std::strerror(errno);
    }
    auto o = h.open(f->ino, O_RDONLY);
    ASSERT_TRUE(o) << std::strerror(err_of(o));
    EXPECT_EQ(::fcntl(o->backing_fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    EXPECT_EQ(err_of(h.open(f->ino, O_RDWR)), EPERM);
    EXPECT_EQ(h.release(f->ino, o->fh), 0);
    attr = 0;
    ::ioctl(fd, FS_IOC_SETFLAGS, &attr);
    ::close(fd);
  }
}

TEST(MirrorFiles, DirectModeUsesAPrivateFdPerOpen) {
  MirrorHarness h(fs::IoMode::Direct);
  fs::OpenInfo c;
  auto f = h.create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT, &c);
  ASSERT_TRUE(f);
  EXPECT_EQ(c.mode, fs::IoMode::Direct);
  EXPECT_EQ(c.backing_fd, -1);
  auto r = h.open(f->ino, O_RDONLY);
  ASSERT_TRUE(r);
  ASSERT_EQ(*h.write(f->ino, c.fh, 0, "data"), 4u);
  EXPECT_EQ(*h.read(f->ino, r->fh, 0, 10), "data");
  EXPECT_EQ(err_of(h.write(f->ino, r->fh, 0, "x")), EBADF);  // read-only fd
  EXPECT_EQ(h.release(f->ino, r->fh), 0);
  EXPECT_EQ(h.release(f->ino, c.fh), 0);
}

TEST(MirrorFiles, CachedModeKeepsTheCache) {
  MirrorHarness h(fs::IoMode::Cached);
  fs::OpenInfo c;
  auto f = h.create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT, &c);
  ASSERT_TRUE(f);
  EXPECT_EQ(c.mode, fs::IoMode::Cached);
  EXPECT_TRUE(c.keep_cache);
  EXPECT_EQ(h.release(f->ino, c.fh), 0);
}

TEST(MirrorFiles, CreateExclusiveAndTruncateAsAsked) {
  MirrorHarness h;
  ASSERT_EQ(::close(::open(h.B("old").c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  ASSERT_EQ(::truncate(h.B("old").c_str(), 100), 0);
  EXPECT_EQ(err_of(h.create(fs::kRootIno, "old", 0644, O_CREAT | O_EXCL | O_RDWR)), EEXIST);
  auto e = h.create(fs::kRootIno, "old", 0644, O_CREAT | O_TRUNC | O_WRONLY);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->attr.size, 0u);
  EXPECT_EQ(e->attr.mode & 07777, 0600u);  // it existed: its mode stays
  ASSERT_EQ(::symlink("old", h.B("sym").c_str()), 0);
  EXPECT_EQ(err_of(h.create(fs::kRootIno, "sym", 0644, O_CREAT | O_RDWR)), ELOOP);
}

TEST(MirrorFiles, TmpfileThenLink) {
  MirrorHarness h;
  auto c = h.run<fs::CreateReply>([&](auto r) {
    h.fs().tmpfile(h.ctx, fs::kRootIno, 0640, O_RDWR, std::move(r));
  });
  ASSERT_EQ(c->kind, Call::kCreate) << std::strerror(c->err);
  EXPECT_EQ(c->entry.attr.nlink, 0u);
  EXPECT_EQ(c->entry.attr.mode & 07777, 0640u);
  ASSERT_EQ(*h.write(c->entry.ino, c->open.fh, 0, "anon"), 4u);
  auto l = h.link(c->entry.ino, fs::kRootIno, "named");
  ASSERT_TRUE(l) << std::strerror(err_of(l));
  EXPECT_EQ(l->ino, c->entry.ino);
  EXPECT_EQ(l->attr.nlink, 1u);
  EXPECT_EQ(ReadBacking(h.B("named")), "anon");
  EXPECT_EQ(h.release(c->entry.ino, c->open.fh), 0);
}

TEST(MirrorFiles, SeekFallocateCopyRange) {
  MirrorHarness h;
  fs::OpenInfo a, b;
  auto fa = h.create(fs::kRootIno, "a", 0644, O_RDWR | O_CREAT, &a);
  auto fb = h.create(fs::kRootIno, "b", 0644, O_RDWR | O_CREAT, &b);
  ASSERT_TRUE(fa && fb);
  ASSERT_EQ(*h.write(fa->ino, a.fh, 1 << 20, "tail"), 4u);
  EXPECT_EQ(*h.lseek(fa->ino, a.fh, 0, SEEK_DATA), uint64_t(1) << 20);
  EXPECT_EQ(*h.lseek(fa->ino, a.fh, 0, SEEK_HOLE), 0u);
  EXPECT_EQ(err_of(h.lseek(fa->ino, a.fh, (1 << 20) + 10, SEEK_DATA)), ENXIO);
  EXPECT_EQ(h.fallocate(fa->ino, a.fh, 0, 0, 8192), 0);
  EXPECT_GE(h.getattr(fa->ino)->blocks, 16u + 8u);
  EXPECT_EQ(h.fallocate(fa->ino, a.fh, FALLOC_FL_PUNCH_HOLE, 0, 10), EOPNOTSUPP);
  auto c = h.run<fs::WriteReply>([&](auto r) {
    h.fs().copy_file_range(h.ctx, fa->ino, a.fh, 1 << 20, fb->ino, b.fh, 3, 4, 0,
                           std::move(r));
  });
  ASSERT_EQ(c->kind, Call::kWrite);
  EXPECT_EQ(c->written, 4u);
  EXPECT_EQ(ReadBacking(h.B("b")), std::string(3, '\0') + "tail");
  auto s = h.run<fs::StatusReply>([&](auto r) { h.fs().fsync(h.ctx, fa->ino, a.fh, true, std::move(r)); });
  EXPECT_EQ(s->kind, Call::kNone);
  EXPECT_EQ(h.release(fa->ino, a.fh), 0);
  EXPECT_EQ(h.release(fb->ino, b.fh), 0);
}

// Reads are answered from the backing fd (ok_fd), and the server is asked
// to splice those of 32 KiB and more unless told otherwise.
TEST(MirrorFiles, SpliceIsAskedForUnlessTurnedOff) {
  Options o;
  o.source = "/";
  std::string why;
  auto on = make_mirrorfs(o, &why);
  ASSERT_TRUE(on) << why;
  EXPECT_TRUE((*on)->capabilities().splice_write);
  EXPECT_EQ((*on)->capabilities().splice_min, 32u * 1024);
  o.splice = false;
  auto off = make_mirrorfs(o, &why);
  ASSERT_TRUE(off) << why;
  EXPECT_FALSE((*off)->capabilities().splice_write);
}

TEST(MirrorFiles, DirectReadsOfEverySizeAreTheBackingBytes) {
  MirrorHarness h(fs::IoMode::Direct);
  fs::OpenInfo c;
  auto f = h.create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT, &c);
  ASSERT_TRUE(f);
  std::string data(300000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  ASSERT_EQ(*h.write(f->ino, c.fh, 0, data), data.size());
  EXPECT_EQ(*h.read(f->ino, c.fh, 0, 300000), data);
  EXPECT_EQ(*h.read(f->ino, c.fh, 4095, 70000), data.substr(4095, 70000));
  EXPECT_EQ(*h.read(f->ino, c.fh, 299990, 4096), data.substr(299990));
  EXPECT_EQ(*h.read(f->ino, c.fh, 300000, 4096), "");
  EXPECT_EQ(*h.read(f->ino, c.fh, 5, 0), "");
  EXPECT_EQ(h.release(f->ino, c.fh), 0);
}

}  // namespace
}  // namespace zest::mirrorfs::test
