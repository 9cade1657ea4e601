// Real-mount tests: each TEST mounts memfs with `zest mount -f` and drives it
// with ordinary system calls, one feature per TEST. Point them at another
// server's directory with ZEST_TEST_SUBJECT=/dir.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "tests/mount/zest_mount.h"

// The file system under test; the build makes one binary per file system.
#ifndef ZEST_TEST_FS
#define ZEST_TEST_FS "memfs"
#endif

namespace zest::testing {
namespace {

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 16);
  }
  return s;
}

std::string ReadAt(int fd, size_t n, off_t off) {
  std::string s(n, '\0');
  ssize_t r = ::pread(fd, s.data(), n, off);
  s.resize(r < 0 ? 0 : r);
  return s;
}

bool WriteAll(int fd, const std::string& d, off_t off) {
  size_t done = 0;
  while (done < d.size()) {
    ssize_t r = ::pwrite(fd, d.data() + done, d.size() - done, off + done);
    if (r <= 0) return false;
    done += r;
  }
  return true;
}

struct stat Lstat(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p << ": " << std::strerror(errno);
  return st;
}

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  return names;
}

// Runs FN in a forked child as uid/gid 1000 (fsuid too); returns its exit
// code. FN returns an errno-like int.
template <class F>
int AsUser(uid_t uid, F fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 ||
        ::setuid(uid) != 0)
      ::_exit(200);
    ::setfsuid(uid);
    ::_exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = FuseUnavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    std::string err;
    subject_ = StartSubject(ZEST_TEST_FS, {}, &err);
    ASSERT_TRUE(subject_) << "cannot start subject: " << err;
    root_ = subject_->path();
    ::umask(022);
  }
  std::string P(const std::string& rel) const { return root_ + "/" + rel; }
  UniqueFd Open(const std::string& rel, int flags, mode_t mode = 0644) {
    return UniqueFd(::open(P(rel).c_str(), flags | O_CLOEXEC, mode));
  }

  std::unique_ptr<SubjectMount> subject_;
  std::string root_;
};

TEST_F(MountTest, MountIsFuseAndUnmountsCleanly) {
  struct statfs sfs {};
  ASSERT_EQ(::statfs(root_.c_str(), &sfs), 0);
  EXPECT_EQ(static_cast<unsigned long>(sfs.f_type), FUSE_SUPER_MAGIC);
  auto* zm = dynamic_cast<ZestMount*>(subject_.get());
  if (!zm) GTEST_SKIP() << "not a zest mount";
  EXPECT_EQ(MountTypeAt(root_), "fuse.zest");
  std::string report;
  EXPECT_TRUE(zm->Unmount(&report)) << report << "\nstderr:\n"
                                    << zm->ServerStderr();
  EXPECT_EQ(MountTypeAt(root_), "");
}

TEST_F(MountTest, CreateWriteReadBack) {
  UniqueFd fd = Open("f", O_CREAT | O_RDWR | O_EXCL, 0640);
  ASSERT_TRUE(fd) << std::strerror(errno);
  std::string big = Pattern((1 << 20) + 12345, 1);
  ASSERT_EQ(::write(fd.get(), big.data(), big.size()), (ssize_t)big.size());
  struct stat st = Lstat(P("f"));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_size, (off_t)big.size());
  EXPECT_EQ(ReadAt(fd.get(), big.size() + 100, 0), big);
  // pwrite/pread at odd offsets.
  std::string small = Pattern(777, 2);
  ASSERT_EQ(::pwrite(fd.get(), small.data(), small.size(), 4095), 777);
  big.replace(4095, 777, small);
  EXPECT_EQ(ReadAt(fd.get(), 1000, 4000), big.substr(4000, 1000));
  EXPECT_EQ(ReadAt(fd.get(), 10, big.size() - 3), big.substr(big.size() - 3));
  EXPECT_EQ(ReadAt(fd.get(), 10, big.size() + 10), "");
  // A second open sees the same data; a fresh open after close too.
  fd.reset();
  UniqueFd again = Open("f", O_RDONLY);
  ASSERT_TRUE(again);
  EXPECT_EQ(ReadAt(again.get(), big.size(), 0), big);
  // Large write at an offset in one call (4 MiB, crossing max_write).
  std::string huge = Pattern(4 << 20, 3);
  UniqueFd w = Open("f", O_WRONLY);
  ASSERT_TRUE(WriteAll(w.get(), huge, 1 << 20));
  EXPECT_EQ(ReadAt(again.get(), huge.size(), 1 << 20), huge);
}

TEST_F(MountTest, DirectIoAligned) {
  UniqueFd fd = Open("d", O_CREAT | O_RDWR | O_DIRECT);
  ASSERT_TRUE(fd) << "open O_DIRECT: " << std::strerror(errno);
  void* buf = nullptr;
  ASSERT_EQ(::posix_memalign(&buf, 4096, 65536), 0);
  std::string data = Pattern(65536, 4);
  std::memcpy(buf, data.data(), data.size());
  EXPECT_EQ(::pwrite(fd.get(), buf, 65536, 8192), 65536);
  std::memset(buf, 0, 65536);
  EXPECT_EQ(::pread(fd.get(), buf, 65536, 8192), 65536);
  EXPECT_EQ(std::memcmp(buf, data.data(), 65536), 0);
  EXPECT_EQ(::pread(fd.get(), buf, 4096, 0), 4096);
  EXPECT_EQ(std::string(static_cast<char*>(buf), 4096),
            std::string(4096, '\0'));
  std::free(buf);
  EXPECT_EQ(Lstat(P("d")).st_size, 8192 + 65536);
}

TEST_F(MountTest, SparseFileSeekDataHole) {
  UniqueFd fd = Open("s", O_CREAT | O_RDWR);
  ASSERT_TRUE(fd);
  const off_t far = 8 << 20;
  std::string a = Pattern(4096, 5), b = Pattern(4096, 6);
  ASSERT_TRUE(WriteAll(fd.get(), a, 0));
  ASSERT_TRUE(WriteAll(fd.get(), b, far));
  struct stat st = Lstat(P("s"));
  EXPECT_EQ(st.st_size, far + 4096);
  // Only the written ranges are allocated (tmpfs counts 4 KiB pages: 16).
  EXPECT_LT(st.st_blocks * 512, 1 << 20) << "st_blocks=" << st.st_blocks;
  EXPECT_GE(st.st_blocks * 512, 8192) << "st_blocks=" << st.st_blocks;
  EXPECT_EQ(ReadAt(fd.get(), 4096, 65536), std::string(4096, '\0'));
  EXPECT_EQ(ReadAt(fd.get(), 4096, far), b);
  EXPECT_EQ(::lseek(fd.get(), 0, SEEK_DATA), 0);
  off_t hole = ::lseek(fd.get(), 0, SEEK_HOLE);
  EXPECT_GE(hole, 4096);
  EXPECT_LT(hole, far) << "SEEK_HOLE found no hole (server without lseek?)";
  off_t data = ::lseek(fd.get(), 65536, SEEK_DATA);
  EXPECT_GT(data, 65536) << "SEEK_DATA found no hole";
  EXPECT_LE(data, far);
  EXPECT_EQ(::lseek(fd.get(), far + 100, SEEK_HOLE), far + 4096);
  errno = 0;
  EXPECT_EQ(::lseek(fd.get(), far + 4096, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
}

TEST_F(MountTest, TruncateAndFtruncate) {
  UniqueFd fd = Open("t", O_CREAT | O_RDWR);
  ASSERT_TRUE(fd);
  std::string d = Pattern(10000, 7);
  ASSERT_TRUE(WriteAll(fd.get(), d, 0));
  ASSERT_EQ(::truncate(P("t").c_str(), 3000), 0);
  EXPECT_EQ(Lstat(P("t")).st_size, 3000);
  ASSERT_EQ(::ftruncate(fd.get(), 9000), 0);
  EXPECT_EQ(Lstat(P("t")).st_size, 9000);
  EXPECT_EQ(ReadAt(fd.get(), 10000, 0),
            d.substr(0, 3000) + std::string(6000, '\0'));
  ASSERT_EQ(::ftruncate(fd.get(), 0), 0);
  EXPECT_EQ(ReadAt(fd.get(), 10, 0), "");
  EXPECT_EQ(Lstat(P("t")).st_blocks, 0);
  // O_TRUNC on open.
  ASSERT_TRUE(WriteAll(fd.get(), d, 0));
  UniqueFd t2 = Open("t", O_WRONLY | O_TRUNC);
  ASSERT_TRUE(t2);
  EXPECT_EQ(Lstat(P("t")).st_size, 0);
  errno = 0;
  EXPECT_EQ(::truncate(P("nope").c_str(), 0), -1);
  EXPECT_EQ(errno, ENOENT);
  ASSERT_EQ(::mkdir(P("dir").c_str(), 0755), 0);
  errno = 0;
  EXPECT_EQ(::truncate(P("dir").c_str(), 0), -1);
  EXPECT_EQ(errno, EISDIR);
}

TEST_F(MountTest, MkdirRmdirReaddir) {
  ASSERT_EQ(::mkdir(P("d").c_str(), 0750), 0);
  struct stat root_before = Lstat(root_);
  struct stat st = Lstat(P("d"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(::mkdir(P("d/sub").c_str(), 0755), 0);
  EXPECT_EQ(Lstat(P("d")).st_nlink, 3u);
  errno = 0;
  EXPECT_EQ(::mkdir(P("d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EEXIST);
  errno = 0;
  EXPECT_EQ(::rmdir(P("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(::rmdir(P("d/sub").c_str()), 0);
  EXPECT_EQ(Lstat(P("d")).st_nlink, 2u);
  ASSERT_EQ(::rmdir(P("d").c_str()), 0);
  EXPECT_EQ(Lstat(root_).st_nlink, root_before.st_nlink - 1);

  // A large directory: every name listed exactly once.
  ASSERT_EQ(::mkdir(P("big").c_str(), 0755), 0);
  const int n = 5000;
  for (int i = 0; i < n; ++i) {
    std::string name =
        P("big/entry-" + std::to_string(i) + std::string(i % 40, 'x'));
    UniqueFd f(::open(name.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    ASSERT_TRUE(f) << name << ": " << std::strerror(errno);
  }
  std::vector<std::string> names = List(P("big"));
  EXPECT_EQ(names.size(), (size_t)n);
  std::map<std::string, int> seen;
  for (auto& nm : names) seen[nm]++;
  EXPECT_EQ(seen.size(), (size_t)n);
  for (int i = 0; i < n; ++i) {
    std::string name = "entry-" + std::to_string(i) + std::string(i % 40, 'x');
    ASSERT_EQ(seen[name], 1) << name;
  }
  // d_type is reported.
  DIR* d = ::opendir(root_.c_str());
  ASSERT_TRUE(d);
  bool found = false;
  while (dirent* e = ::readdir(d))
    if (std::string(e->d_name) == "big") found = e->d_type == DT_DIR;
  ::closedir(d);
  EXPECT_TRUE(found);
}

int Renameat2(const std::string& a, const std::string& b, unsigned flags) {
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, a.c_str(),
                                    AT_FDCWD, b.c_str(), flags));
}

TEST_F(MountTest, RenameVariants) {
  auto make = [&](const std::string& rel, const std::string& content) {
    UniqueFd f = Open(rel, O_CREAT | O_WRONLY | O_TRUNC);
    ASSERT_TRUE(f);
    ASSERT_TRUE(WriteAll(f.get(), content, 0));
  };
  auto content = [&](const std::string& rel) {
    UniqueFd f = Open(rel, O_RDONLY);
    return f ? ReadAt(f.get(), 100, 0)
             : std::string("<") + std::strerror(errno) + ">";
  };
  make("a", "A");
  make("b", "B");
  ASSERT_EQ(::mkdir(P("d1").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(P("d2").c_str(), 0755), 0);
  ino_t ia = Lstat(P("a")).st_ino;
  ASSERT_EQ(::rename(P("a").c_str(), P("d1/a2").c_str()), 0);
  EXPECT_EQ(Lstat(P("d1/a2")).st_ino, ia);
  EXPECT_EQ(content("d1/a2"), "A");
  EXPECT_NE(::access(P("a").c_str(), F_OK), 0);
  // Overwrite.
  ASSERT_EQ(::rename(P("b").c_str(), P("d1/a2").c_str()), 0);
  EXPECT_EQ(content("d1/a2"), "B");
  // NOREPLACE.
  make("c", "C");
  errno = 0;
  EXPECT_EQ(Renameat2(P("c"), P("d1/a2"), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(Renameat2(P("c"), P("d2/c"), RENAME_NOREPLACE), 0);
  // EXCHANGE, file <-> directory, across directories.
  ASSERT_EQ(::mkdir(P("d1/sub").c_str(), 0700), 0);
  ASSERT_EQ(Renameat2(P("d2/c"), P("d1/sub"), RENAME_EXCHANGE), 0)
      << std::strerror(errno);
  EXPECT_TRUE(S_ISDIR(Lstat(P("d2/c")).st_mode));
  EXPECT_EQ(content("d1/sub"), "C");
  EXPECT_EQ(Lstat(P("d1")).st_nlink, 2u);
  EXPECT_EQ(Lstat(P("d2")).st_nlink, 3u);
  errno = 0;
  EXPECT_EQ(Renameat2(P("d2/c"), P("d2/nonexistent"), RENAME_EXCHANGE), -1);
  EXPECT_EQ(errno, ENOENT);
  // Directory moves: into its own subdirectory is EINVAL; over a non-empty
  // directory ENOTEMPTY; a directory over a file ENOTDIR.
  errno = 0;
  EXPECT_EQ(::rename(P("d2").c_str(), P("d2/c/x").c_str()), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_EQ(::mkdir(P("d3").c_str(), 0755), 0);
  errno = 0;
  EXPECT_EQ(::rename(P("d3").c_str(), P("d2").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  errno = 0;
  EXPECT_EQ(::rename(P("d3").c_str(), P("d1/sub").c_str()), -1);
  EXPECT_EQ(errno, ENOTDIR);
  ASSERT_EQ(::rename(P("d3").c_str(), P("d2/c/d3").c_str()), 0);
  EXPECT_EQ(Lstat(P("d2/c")).st_nlink, 3u);
}

TEST_F(MountTest, LinkUnlinkNlink) {
  UniqueFd f = Open("x", O_CREAT | O_RDWR);
  ASSERT_TRUE(f);
  ASSERT_TRUE(WriteAll(f.get(), "hello", 0));
  ASSERT_EQ(::link(P("x").c_str(), P("y").c_str()), 0);
  struct stat sx = Lstat(P("x")), sy = Lstat(P("y"));
  EXPECT_EQ(sx.st_ino, sy.st_ino);
  EXPECT_EQ(sx.st_nlink, 2u);
  errno = 0;
  EXPECT_EQ(::link(P("x").c_str(), P("y").c_str()), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  errno = 0;
  EXPECT_EQ(::link(P("d").c_str(), P("d2").c_str()), -1);
  EXPECT_EQ(errno, EPERM);
  ASSERT_EQ(::unlink(P("x").c_str()), 0);
  EXPECT_EQ(Lstat(P("y")).st_nlink, 1u);
  ASSERT_EQ(::unlink(P("y").c_str()), 0);
  // Open but unlinked: still readable and writable.
  struct stat st {};
  ASSERT_EQ(::fstat(f.get(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_TRUE(WriteAll(f.get(), " world", 5));
  EXPECT_EQ(ReadAt(f.get(), 100, 0), "hello world");
  errno = 0;
  EXPECT_EQ(::unlink(P("d").c_str()), -1);
  EXPECT_EQ(errno, EISDIR);
  EXPECT_EQ(List(root_), std::vector<std::string>{"d"});
}

TEST_F(MountTest, SymlinkReadlink) {
  ASSERT_EQ(::symlink("target/file", P("l").c_str()), 0);
  struct stat st = Lstat(P("l"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 11);
  char buf[64] = {};
  EXPECT_EQ(::readlink(P("l").c_str(), buf, sizeof buf), 11);
  EXPECT_EQ(std::string(buf), "target/file");
  errno = 0;
  EXPECT_EQ(::stat(P("l").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  UniqueFd f = Open("real", O_CREAT | O_WRONLY);
  ASSERT_TRUE(WriteAll(f.get(), "data", 0));
  ASSERT_EQ(::symlink("real", P("l2").c_str()), 0);
  UniqueFd r = Open("l2", O_RDONLY);
  ASSERT_TRUE(r);
  EXPECT_EQ(ReadAt(r.get(), 10, 0), "data");
  ASSERT_EQ(::symlink("loop2", P("loop1").c_str()), 0);
  ASSERT_EQ(::symlink("loop1", P("loop2").c_str()), 0);
  errno = 0;
  EXPECT_FALSE(Open("loop1", O_RDONLY));
  EXPECT_EQ(errno, ELOOP);
  errno = 0;
  EXPECT_FALSE(Open("l2", O_RDONLY | O_NOFOLLOW));
  EXPECT_EQ(errno, ELOOP);
  std::string longt(4000, 'z');
  ASSERT_EQ(::symlink(longt.c_str(), P("long").c_str()), 0);
  std::string lb(5000, '\0');
  EXPECT_EQ(::readlink(P("long").c_str(), lb.data(), lb.size()), 4000);
  errno = 0;
  EXPECT_EQ(::readlink(P("real").c_str(), buf, sizeof buf), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(MountTest, MknodTypes) {
  ASSERT_EQ(::mknod(P("fifo").c_str(), S_IFIFO | 0644, 0), 0);
  ASSERT_EQ(::mknod(P("chr").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  ASSERT_EQ(::mknod(P("blk").c_str(), S_IFBLK | 0600, makedev(7, 42)), 0);
  ASSERT_EQ(::mknod(P("sock").c_str(), S_IFSOCK | 0755, 0), 0);
  struct stat st = Lstat(P("fifo"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  st = Lstat(P("chr"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  st = Lstat(P("blk"));
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(7, 42));
  EXPECT_TRUE(S_ISSOCK(Lstat(P("sock")).st_mode));
  // The FIFO works as a pipe (the kernel serves it, the fs only stores it).
  UniqueFd rd = Open("fifo", O_RDONLY | O_NONBLOCK);
  ASSERT_TRUE(rd);
  UniqueFd wr = Open("fifo", O_WRONLY | O_NONBLOCK);
  ASSERT_TRUE(wr);
  EXPECT_EQ(::write(wr.get(), "ab", 2), 2);
  char b[4];
  EXPECT_EQ(::read(rd.get(), b, 4), 2);
}

TEST_F(MountTest, ChmodChownUtimensNanoseconds) {
  UniqueFd f = Open("f", O_CREAT | O_RDWR, 0600);
  ASSERT_TRUE(f);
  ASSERT_EQ(::chmod(P("f").c_str(), 04751), 0);
  EXPECT_EQ(Lstat(P("f")).st_mode & 07777, 04751u);
  ASSERT_EQ(::fchmod(f.get(), 0640), 0);
  EXPECT_EQ(Lstat(P("f")).st_mode & 07777, 0640u);
  ASSERT_EQ(::chown(P("f").c_str(), 1234, 5678), 0);
  struct stat st = Lstat(P("f"));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  ASSERT_EQ(::fchown(f.get(), -1, 42), 0);
  st = Lstat(P("f"));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 42u);
  // chown clears set-user-ID (and set-group-ID with group execute).
  ASSERT_EQ(::chmod(P("f").c_str(), 06775), 0);
  ASSERT_EQ(::chown(P("f").c_str(), 1, 1), 0);
  EXPECT_EQ(Lstat(P("f")).st_mode & 07777, 0775u);

  timespec ts[2] = {{1234567890, 123456789}, {987654321, 999999999}};
  ASSERT_EQ(::utimensat(AT_FDCWD, P("f").c_str(), ts, 0), 0);
  st = Lstat(P("f"));
  EXPECT_EQ(st.st_atim.tv_sec, 1234567890);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_mtim.tv_sec, 987654321);
  EXPECT_EQ(st.st_mtim.tv_nsec, 999999999);
  timespec before_ctime = st.st_ctim;
  timespec omit_now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  ASSERT_EQ(::futimens(f.get(), omit_now), 0);
  st = Lstat(P("f"));
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_GE(st.st_mtim.tv_sec, now.tv_sec - 1);
  EXPECT_TRUE(st.st_ctim.tv_sec != before_ctime.tv_sec ||
              st.st_ctim.tv_nsec != before_ctime.tv_nsec);
  // On a symlink itself.
  ASSERT_EQ(::symlink("f", P("l").c_str()), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, P("l").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(Lstat(P("l")).st_mtim.tv_nsec, 999999999);
  ASSERT_EQ(::lchown(P("l").c_str(), 77, 88), 0);
  EXPECT_EQ(Lstat(P("l")).st_uid, 77u);
  EXPECT_EQ(Lstat(P("f")).st_uid, 1u);
}

TEST_F(MountTest, SetgidDirectoryInheritance) {
  ASSERT_EQ(::mkdir(P("g").c_str(), 0775), 0);
  ASSERT_EQ(::chown(P("g").c_str(), 0, 4321), 0);
  ASSERT_EQ(::chmod(P("g").c_str(), 02775), 0);
  UniqueFd f = Open("g/file", O_CREAT | O_WRONLY, 0644);
  ASSERT_TRUE(f);
  struct stat st = Lstat(P("g/file"));
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_EQ(st.st_mode & 02000, 0u);
  ASSERT_EQ(::mkdir(P("g/sub").c_str(), 0755), 0);
  st = Lstat(P("g/sub"));
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_EQ(st.st_mode & 07777, 02755u) << std::oct << st.st_mode;
  ASSERT_EQ(::symlink("x", P("g/link").c_str()), 0);
  EXPECT_EQ(Lstat(P("g/link")).st_gid, 4321u);
  ASSERT_EQ(::mknod(P("g/fifo").c_str(), S_IFIFO | 0600, 0), 0);
  EXPECT_EQ(Lstat(P("g/fifo")).st_gid, 4321u);
}

TEST_F(MountTest, StickyDirectoryRestrictsDeletion) {
  // Needs allow_other + default_permissions on the mount: a non-root user
  // must get in, and the kernel checks the sticky bit.
  ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(P("tmp").c_str(), 01777), 0);
  ASSERT_EQ(::chmod(P("tmp").c_str(), 01777), 0);
  for (const char* n : {"theirs", "mine"}) {
    UniqueFd f = Open(std::string("tmp/") + n, O_CREAT | O_WRONLY, 0666);
    ASSERT_TRUE(f);
  }
  ASSERT_EQ(::chown(P("tmp/theirs").c_str(), 1001, 1001), 0);
  ASSERT_EQ(::chown(P("tmp/mine").c_str(), 1000, 1000), 0);
  std::string theirs = P("tmp/theirs"), mine = P("tmp/mine"),
              moved = P("tmp/moved");
  int rc =
      AsUser(1000, [&] { return ::unlink(theirs.c_str()) == 0 ? 0 : errno; });
  EXPECT_EQ(rc, EPERM) << "unlink of another user's file in a sticky dir";
  rc = AsUser(1000, [&] {
    return ::rename(theirs.c_str(), moved.c_str()) == 0 ? 0 : errno;
  });
  EXPECT_EQ(rc, EPERM) << "rename of another user's file in a sticky dir";
  rc = AsUser(1000, [&] { return ::unlink(mine.c_str()) == 0 ? 0 : errno; });
  EXPECT_EQ(rc, 0) << "unlink of one's own file: " << std::strerror(rc);
  EXPECT_EQ(::access(theirs.c_str(), F_OK), 0);
  // Without the sticky bit the same unlink is allowed.
  ASSERT_EQ(::chmod(P("tmp").c_str(), 0777), 0);
  rc = AsUser(1000, [&] { return ::unlink(theirs.c_str()) == 0 ? 0 : errno; });
  EXPECT_EQ(rc, 0) << std::strerror(rc);
  // Permission bits are enforced for other users (default_permissions).
  UniqueFd f = Open("private", O_CREAT | O_WRONLY, 0600);
  ASSERT_TRUE(f);
  std::string priv = P("private");
  rc = AsUser(1000, [&] {
    int fd = ::open(priv.c_str(), O_RDONLY);
    return fd >= 0 ? 0 : errno;
  });
  EXPECT_EQ(rc, EACCES);
}

TEST_F(MountTest, Xattrs) {
  UniqueFd f = Open("x", O_CREAT | O_RDWR);
  ASSERT_TRUE(f);
  std::string p = P("x");
  ASSERT_EQ(::setxattr(p.c_str(), "user.one", "value1", 6, 0), 0)
      << std::strerror(errno);
  ASSERT_EQ(::setxattr(p.c_str(), "user.two", "", 0, 0), 0);
  ASSERT_EQ(::fsetxattr(f.get(), "trusted.t", "tt", 2, XATTR_CREATE), 0);
  char buf[256];
  EXPECT_EQ(::getxattr(p.c_str(), "user.one", nullptr, 0), 6);
  EXPECT_EQ(::getxattr(p.c_str(), "user.one", buf, sizeof buf), 6);
  EXPECT_EQ(std::string(buf, 6), "value1");
  EXPECT_EQ(::getxattr(p.c_str(), "user.two", buf, sizeof buf), 0);
  errno = 0;
  EXPECT_EQ(::getxattr(p.c_str(), "user.one", buf, 3), -1);
  EXPECT_EQ(errno, ERANGE);
  errno = 0;
  EXPECT_EQ(::getxattr(p.c_str(), "user.none", buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENODATA);
  errno = 0;
  EXPECT_EQ(::setxattr(p.c_str(), "user.one", "v", 1, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  errno = 0;
  EXPECT_EQ(::setxattr(p.c_str(), "user.none", "v", 1, XATTR_REPLACE), -1);
  EXPECT_EQ(errno, ENODATA);
  ASSERT_EQ(
      ::setxattr(p.c_str(), "user.one", "longer value", 12, XATTR_REPLACE), 0);
  EXPECT_EQ(::fgetxattr(f.get(), "user.one", buf, sizeof buf), 12);
  ssize_t n = ::listxattr(p.c_str(), nullptr, 0);
  EXPECT_EQ(n, (ssize_t)(sizeof("user.one") + sizeof("user.two") +
                         sizeof("trusted.t")));
  errno = 0;
  EXPECT_EQ(::listxattr(p.c_str(), buf, 5), -1);
  EXPECT_EQ(errno, ERANGE);
  n = ::listxattr(p.c_str(), buf, sizeof buf);
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += std::strlen(buf + i) + 1)
    names.insert(buf + i);
  EXPECT_EQ(names,
            (std::set<std::string>{"user.one", "user.two", "trusted.t"}));
  ASSERT_EQ(::removexattr(p.c_str(), "user.one"), 0);
  errno = 0;
  EXPECT_EQ(::removexattr(p.c_str(), "user.one"), -1);
  EXPECT_EQ(errno, ENODATA);
  // A large value (64 KiB is the VFS limit).
  std::string big = Pattern(65536, 8);
  ASSERT_EQ(::setxattr(p.c_str(), "user.big", big.data(), big.size(), 0), 0)
      << std::strerror(errno);
  std::string back(65536, '\0');
  EXPECT_EQ(::getxattr(p.c_str(), "user.big", back.data(), back.size()), 65536);
  EXPECT_EQ(back, big);
  // Directories carry xattrs; user.* on a symlink is refused by the VFS.
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  EXPECT_EQ(::setxattr(P("d").c_str(), "user.d", "1", 1, 0), 0);
  ASSERT_EQ(::symlink("x", P("l").c_str()), 0);
  errno = 0;
  EXPECT_EQ(::lsetxattr(P("l").c_str(), "user.l", "1", 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
}

// Thousands of small attributes on one file, as conformance suites set
// them (memfs keeps them in a map, pmfs packs them into slot blocks). A
// list longer than the kernel's XATTR_LIST_MAX (64 KiB) cannot be read
// whole: listxattr answers E2BIG even with a larger buffer, which is what
// getfattr -d reports on tmpfs or xfs too; it lists again once it fits.
TEST_F(MountTest, ManyXattrs) {
  UniqueFd f = Open("many", O_CREAT | O_RDWR);
  ASSERT_TRUE(f);
  const std::string p = P("many");
  constexpr int kN = 5000;
  auto name = [](int k) {
    char b[32];
    std::snprintf(b, sizeof b, "user.attr%05d", k);
    return std::string(b);
  };
  auto value = [](int k) {
    char b[16];
    std::snprintf(b, sizeof b, "v%07d", k);
    return std::string(b, 8);
  };
  for (int k = 1; k <= kN; ++k) {
    ASSERT_EQ(::setxattr(p.c_str(), name(k).c_str(), value(k).data(), 8,
                         XATTR_CREATE),
              0)
        << k << ": " << std::strerror(errno);
  }
  char v[16];
  for (int k : {1, 2, 777, 2500, kN}) {
    ASSERT_EQ(::getxattr(p.c_str(), name(k).c_str(), v, sizeof v), 8) << k;
    EXPECT_EQ(std::string(v, 8), value(k));
  }
  EXPECT_EQ(::fgetxattr(f.get(), name(4999).c_str(), v, sizeof v), 8);
  // 5,000 names of 15 bytes: 75,000 bytes of list. The size query says at
  // least 64 KiB (FUSE caps it there, tmpfs tells the whole).
  EXPECT_GE(::listxattr(p.c_str(), nullptr, 0), 65536);
  std::vector<char> buf(1 << 20);
  errno = 0;
  EXPECT_EQ(::listxattr(p.c_str(), buf.data(), 65536), -1);
  EXPECT_EQ(errno, E2BIG);
  errno = 0;
  EXPECT_EQ(::listxattr(p.c_str(), buf.data(), buf.size()), -1);
  EXPECT_EQ(errno, E2BIG);
  // A replace and a new one among them, then 1,000 removed: 60,000 bytes.
  ASSERT_EQ(
      ::setxattr(p.c_str(), name(3000).c_str(), "replaced", 8, XATTR_REPLACE),
      0);
  for (int k = 1; k <= 1000; ++k) {
    ASSERT_EQ(::removexattr(p.c_str(), name(k).c_str()), 0)
        << k << ": " << std::strerror(errno);
  }
  const ssize_t want = 4000 * ssize_t(name(1).size() + 1);
  EXPECT_EQ(::listxattr(p.c_str(), nullptr, 0), want);
  const ssize_t n = ::listxattr(p.c_str(), buf.data(), buf.size());
  ASSERT_EQ(n, want) << std::strerror(errno);
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += std::strlen(buf.data() + i) + 1)
    names.insert(buf.data() + i);
  EXPECT_EQ(names.size(), 4000u);
  EXPECT_TRUE(names.count(name(1001)) && names.count(name(kN)));
  EXPECT_FALSE(names.count(name(1)));
  ASSERT_EQ(::getxattr(p.c_str(), name(3000).c_str(), v, sizeof v), 8);
  EXPECT_EQ(std::string(v, 8), "replaced");
  errno = 0;
  EXPECT_EQ(::getxattr(p.c_str(), name(500).c_str(), v, sizeof v), -1);
  EXPECT_EQ(errno, ENODATA);
}

TEST_F(MountTest, FallocateModes) {
  UniqueFd f = Open("fa", O_CREAT | O_RDWR);
  ASSERT_TRUE(f);
  std::string d = Pattern(65536, 9);
  // Default mode extends the size and reads as zeros.
  ASSERT_EQ(::fallocate(f.get(), 0, 0, 16384), 0) << std::strerror(errno);
  struct stat st = Lstat(P("fa"));
  EXPECT_EQ(st.st_size, 16384);
  EXPECT_GE(st.st_blocks, 32);
  EXPECT_EQ(ReadAt(f.get(), 16384, 0), std::string(16384, '\0'));
  // KEEP_SIZE allocates beyond EOF without changing the size.
  ASSERT_EQ(::fallocate(f.get(), FALLOC_FL_KEEP_SIZE, 16384, 65536), 0);
  st = Lstat(P("fa"));
  EXPECT_EQ(st.st_size, 16384);
  EXPECT_GE(st.st_blocks, (16384 + 65536) / 512);
  // PUNCH_HOLE zeroes a range, keeps the size.
  ASSERT_TRUE(WriteAll(f.get(), d, 0));
  ASSERT_EQ(::fallocate(f.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        4096, 8192),
            0);
  std::string expect = d;
  std::fill(expect.begin() + 4096, expect.begin() + 12288, '\0');
  EXPECT_EQ(ReadAt(f.get(), 65536, 0), expect);
  EXPECT_EQ(Lstat(P("fa")).st_size, 65536);
  // Unaligned punch zeroes exactly the range.
  ASSERT_EQ(::fallocate(f.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        20001, 333),
            0);
  std::fill(expect.begin() + 20001, expect.begin() + 20334, '\0');
  EXPECT_EQ(ReadAt(f.get(), 65536, 0), expect);
  // ZERO_RANGE zeroes and (without KEEP_SIZE) extends.
  ASSERT_EQ(::fallocate(f.get(), FALLOC_FL_ZERO_RANGE, 30000, 1000), 0)
      << std::strerror(errno);
  std::fill(expect.begin() + 30000, expect.begin() + 31000, '\0');
  EXPECT_EQ(ReadAt(f.get(), 65536, 0), expect);
  ASSERT_EQ(::fallocate(f.get(), FALLOC_FL_ZERO_RANGE, 100000, 5000), 0);
  EXPECT_EQ(Lstat(P("fa")).st_size, 105000);
  EXPECT_EQ(ReadAt(f.get(), 30000, 75000), std::string(30000, '\0'));
  errno = 0;
  EXPECT_EQ(::fallocate(f.get(), FALLOC_FL_PUNCH_HOLE, 0, 10),
            -1);  // needs KEEP_SIZE
  EXPECT_EQ(errno, EOPNOTSUPP);
}

TEST_F(MountTest, CopyFileRange) {
  UniqueFd a = Open("a", O_CREAT | O_RDWR), b = Open("b", O_CREAT | O_RDWR);
  ASSERT_TRUE(a && b);
  std::string d = Pattern(300000, 10);
  ASSERT_TRUE(WriteAll(a.get(), d, 0));
  loff_t in = 1000, out = 5000;
  size_t want = 200000, done = 0;
  while (done < want) {
    ssize_t n = ::copy_file_range(a.get(), &in, b.get(), &out, want - done, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    done += n;
  }
  EXPECT_EQ(in, 201000);
  EXPECT_EQ(out, 205000);
  EXPECT_EQ(Lstat(P("b")).st_size, 205000);
  EXPECT_EQ(ReadAt(b.get(), 5000, 0), std::string(5000, '\0'));
  EXPECT_EQ(ReadAt(b.get(), 200000, 5000), d.substr(1000, 200000));
}

TEST_F(MountTest, TmpfileAndLinkat) {
  int raw = ::open(root_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);
  if (raw < 0 && errno == EOPNOTSUPP)
    GTEST_SKIP() << "O_TMPFILE not supported (EOPNOTSUPP)";
  UniqueFd f(raw);
  ASSERT_TRUE(f) << "O_TMPFILE: " << std::strerror(errno);
  ASSERT_TRUE(WriteAll(f.get(), "anonymous", 0));
  struct stat st {};
  ASSERT_EQ(::fstat(f.get(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_TRUE(List(root_).empty());
  std::string proc = "/proc/self/fd/" + std::to_string(f.get());
  ASSERT_EQ(::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, P("named").c_str(),
                     AT_SYMLINK_FOLLOW),
            0)
      << std::strerror(errno);
  st = Lstat(P("named"));
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  UniqueFd r = Open("named", O_RDONLY);
  EXPECT_EQ(ReadAt(r.get(), 100, 0), "anonymous");
}

TEST_F(MountTest, SyncCallsAndStatfs) {
  UniqueFd f = Open("s", O_CREAT | O_RDWR);
  ASSERT_TRUE(f);
  ASSERT_TRUE(WriteAll(f.get(), "x", 0));
  EXPECT_EQ(::fsync(f.get()), 0) << std::strerror(errno);
  EXPECT_EQ(::fdatasync(f.get()), 0) << std::strerror(errno);
  EXPECT_EQ(::syncfs(f.get()), 0) << std::strerror(errno);
  UniqueFd d(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_EQ(::fsync(d.get()), 0) << std::strerror(errno);
  struct statfs sfs {};
  ASSERT_EQ(::fstatfs(f.get(), &sfs), 0);
  EXPECT_EQ(static_cast<unsigned long>(sfs.f_type), FUSE_SUPER_MAGIC);
  EXPECT_GT(sfs.f_bsize, 0);
  EXPECT_GE(sfs.f_namelen, 255);
  EXPECT_LE(sfs.f_bfree, sfs.f_blocks);
  EXPECT_LE(sfs.f_bavail, sfs.f_bfree);
}

TEST_F(MountTest, ErrorPaths) {
  UniqueFd f = Open("file", O_CREAT | O_WRONLY | O_EXCL);
  ASSERT_TRUE(f);
  ASSERT_EQ(::mkdir(P("dir").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(P("full").c_str(), 0755), 0);
  ASSERT_TRUE(Open("full/x", O_CREAT | O_WRONLY));
  struct {
    const char* what;
    int rc;
    int err;
  } cases[] = {
      {"O_EXCL on existing",
       Open("file", O_CREAT | O_EXCL | O_WRONLY) ? 0 : errno, EEXIST},
      {"open missing", Open("missing", O_RDONLY) ? 0 : errno, ENOENT},
      {"open file/x", Open("file/x", O_RDONLY) ? 0 : errno, ENOTDIR},
      {"create under file", Open("file/x", O_CREAT | O_WRONLY) ? 0 : errno,
       ENOTDIR},
      {"open dir for write", Open("dir", O_WRONLY) ? 0 : errno, EISDIR},
      {"O_DIRECTORY on file", Open("file", O_RDONLY | O_DIRECTORY) ? 0 : errno,
       ENOTDIR},
      {"rmdir non-empty", ::rmdir(P("full").c_str()) == 0 ? 0 : errno,
       ENOTEMPTY},
      {"rmdir file", ::rmdir(P("file").c_str()) == 0 ? 0 : errno, ENOTDIR},
      {"rmdir missing", ::rmdir(P("missing").c_str()) == 0 ? 0 : errno, ENOENT},
      {"unlink missing", ::unlink(P("missing").c_str()) == 0 ? 0 : errno,
       ENOENT},
      {"mkdir in missing",
       ::mkdir(P("missing/d").c_str(), 0755) == 0 ? 0 : errno, ENOENT},
      {"rename missing",
       ::rename(P("missing").c_str(), P("y").c_str()) == 0 ? 0 : errno, ENOENT},
      {"rename file over dir",
       ::rename(P("file").c_str(), P("dir").c_str()) == 0 ? 0 : errno, EISDIR},
      {"long name", Open(std::string(256, 'n'), O_CREAT | O_WRONLY) ? 0 : errno,
       ENAMETOOLONG},
  };
  for (auto& c : cases)
    EXPECT_EQ(c.rc, c.err) << c.what << ": got " << std::strerror(c.rc);
  EXPECT_TRUE(Open(std::string(255, 'n'), O_CREAT | O_WRONLY))
      << std::strerror(errno);
}

TEST_F(MountTest, MmapFollowsIoMode) {
  UniqueFd f = Open("m", O_CREAT | O_RDWR);
  ASSERT_TRUE(f);
  std::string d = Pattern(8192, 11);
  ASSERT_TRUE(WriteAll(f.get(), d, 0));
  // A private mapping always works (even for direct I/O files).
  void* p = ::mmap(nullptr, 8192, PROT_READ, MAP_PRIVATE, f.get(), 0);
  ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
  EXPECT_EQ(std::memcmp(p, d.data(), 8192), 0);
  ::munmap(p, 8192);
  // A shared mapping of a direct-I/O file works only when the server
  // negotiated FUSE_DIRECT_IO_ALLOW_MMAP; otherwise the kernel says ENODEV.
  p = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, f.get(), 0);
  if (p == MAP_FAILED) {
    EXPECT_EQ(errno, ENODEV) << "shared mmap: " << std::strerror(errno);
    return;
  }
  std::memcpy(static_cast<char*>(p) + 100, "MAPPED", 6);
  ASSERT_EQ(::msync(p, 8192, MS_SYNC), 0);
  ::munmap(p, 8192);
  d.replace(100, 6, "MAPPED");
  UniqueFd r = Open("m", O_RDONLY);
  EXPECT_EQ(ReadAt(r.get(), 8192, 0), d);
}

}  // namespace
}  // namespace zest::testing
