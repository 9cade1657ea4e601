// File handles (name_to_handle_at / open_by_handle_at), the way NFS servers
// such as NFS-Ganesha reach files: a handle must still open its file after
// the kernel dropped every cached inode (the kernel then asks the file
// system for LOOKUP(ino, ".")), for files, directories and symlinks; a
// handle to a removed file is ESTALE, never another file; on pmfs a handle
// survives a remount (inode numbers and generations are on the pool). On
// mirrorfs (built as export_test_mirrorfs) the numbers are found again through
// the backing objects' own handles, and one object keeps one number.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "tests/mount/zest_mount.h"

#ifndef ZEST_TEST_FS
#define ZEST_TEST_FS "memfs"
#endif

namespace zest::testing {
namespace {

struct Handle {
  std::vector<unsigned char> bytes;
  file_handle* get() { return reinterpret_cast<file_handle*>(bytes.data()); }
};

Handle HandleOf(const std::string& path, int flags = 0) {
  Handle h;
  h.bytes.resize(sizeof(file_handle) + MAX_HANDLE_SZ);
  h.get()->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (::name_to_handle_at(AT_FDCWD, path.c_str(), h.get(), &mount_id, flags) != 0)
    h.bytes.clear();
  return h;
}

void DropCaches() {
  ::sync();
  UniqueFd fd(::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd) << std::strerror(errno);
  ASSERT_EQ(::write(fd.get(), "3", 1), 1);
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = FuseUnavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (::getenv("ZEST_TEST_SUBJECT")) GTEST_SKIP() << "needs zest's own mounts";
    std::string err;
    mount_ = ZestMount::Start(ZEST_TEST_FS, {}, &err);
    ASSERT_TRUE(mount_) << err;
    root_ = mount_->path();
    ASSERT_EQ(::mkdir((root_ + "/d").c_str(), 0755), 0);
    UniqueFd f(::open((root_ + "/d/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    ASSERT_TRUE(f);
    ASSERT_EQ(::write(f.get(), "content", 7), 7);
    ASSERT_EQ(::symlink("f", (root_ + "/d/l").c_str()), 0);
    ASSERT_EQ(::mkdir((root_ + "/d/e").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((root_ + "/d/e/g").c_str(), 0755), 0);
  }
  // Opens a handle through the mount; -errno on failure.
  int OpenHandle(Handle& h, int flags) {
    UniqueFd m(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    int fd = ::open_by_handle_at(m.get(), h.get(), flags | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
  }
  ino_t Ino(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st.st_ino;
  }

  std::unique_ptr<ZestMount> mount_;
  std::string root_;
};

TEST_F(ExportTest, HandlesOpenAfterTheKernelForgotTheInodes) {
  struct Case {
    const char* rel;
    int flags;
  };
  // A nested directory: the kernel reconnects it to the root through
  // LOOKUP(dir, "..") for each level.
  std::vector<Case> cases = {{"/d", O_RDONLY | O_DIRECTORY}, {"/d/f", O_RDONLY},
                             {"/d/l", O_PATH | O_NOFOLLOW}, {"", O_RDONLY | O_DIRECTORY},
                             {"/d/e/g", O_RDONLY | O_DIRECTORY}};
  std::vector<Handle> handles;
  std::vector<ino_t> inos;
  for (auto& c : cases) {
    handles.push_back(HandleOf(root_ + c.rel));
    ASSERT_FALSE(handles.back().bytes.empty()) << c.rel << ": " << std::strerror(errno);
    inos.push_back(Ino(root_ + c.rel));
  }
  DropCaches();
  for (size_t k = 0; k < cases.size(); ++k) {
    int fd = OpenHandle(handles[k], cases[k].flags);
    ASSERT_GE(fd, 0) << cases[k].rel << ": " << std::strerror(-fd);
    UniqueFd guard(fd);
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(st.st_ino, inos[k]) << cases[k].rel;
    if (std::string(cases[k].rel) == "/d/f") {
      char buf[16] = {};
      EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 7);
      EXPECT_STREQ(buf, "content");
    }
    if (std::string(cases[k].rel) == "/d/e/g") {
      struct stat up {};
      ASSERT_EQ(::fstatat(fd, "..", &up, 0), 0);
      EXPECT_EQ(up.st_ino, Ino(root_ + "/d/e"));
    }
  }
  // And by name the same numbers again: one object, one number.
  for (size_t k = 0; k < cases.size(); ++k) EXPECT_EQ(Ino(root_ + cases[k].rel), inos[k]) << cases[k].rel;
}

TEST_F(ExportTest, HardLinksShareOneHandle) {
  ASSERT_EQ(::link((root_ + "/d/f").c_str(), (root_ + "/d/h").c_str()), 0);
  Handle hf = HandleOf(root_ + "/d/f");
  ASSERT_FALSE(hf.bytes.empty());
  DropCaches();
  Handle hh = HandleOf(root_ + "/d/h");
  EXPECT_EQ(hf.bytes, hh.bytes);
  int fd = OpenHandle(hf, O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(-fd);
  UniqueFd guard(fd);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_ino, Ino(root_ + "/d/h"));
  EXPECT_EQ(st.st_nlink, 2u);
}

TEST_F(ExportTest, HandleOfARemovedFileIsStale) {
  Handle h = HandleOf(root_ + "/d/f");
  ASSERT_FALSE(h.bytes.empty());
  ASSERT_EQ(::unlink((root_ + "/d/f").c_str()), 0);
  // Make new files, which may reuse the inode's slot (pmfs): the handle
  // must still not open them.
  for (int i = 0; i < 20; ++i) {
    UniqueFd f(::open((root_ + "/d/new" + std::to_string(i)).c_str(),
                      O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    ASSERT_TRUE(f);
  }
  DropCaches();
  int fd = OpenHandle(h, O_RDONLY);
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(fd, -ESTALE);
}

// mirrorfs: objects removed or replaced in the backing directory, behind
// the mount's back, while the kernel had forgotten them.
TEST_F(ExportTest, MirrorfsHandleOfAnObjectRemovedBehindTheMountIsStale) {
  if (std::string(ZEST_TEST_FS) != "mirrorfs") GTEST_SKIP() << "needs a backing directory";
  const std::string backing = mount_->source();
  Handle hf = HandleOf(root_ + "/d/f"), hd = HandleOf(root_ + "/d/e/g");
  ASSERT_FALSE(hf.bytes.empty());
  ASSERT_FALSE(hd.bytes.empty());
  DropCaches();
  ASSERT_EQ(::unlink((backing + "/d/f").c_str()), 0);
  ASSERT_EQ(::rmdir((backing + "/d/e/g").c_str()), 0);
  // New objects in their places (tmpfs may give them the old inode
  // numbers): the handles must not open them.
  UniqueFd f(::open((backing + "/d/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  ASSERT_TRUE(f);
  ASSERT_EQ(::mkdir((backing + "/d/e/g").c_str(), 0755), 0);
  for (auto* h : {&hf, &hd}) {
    int fd = OpenHandle(*h, O_PATH);
    if (fd >= 0) ::close(fd);
    EXPECT_EQ(fd, -ESTALE);
  }
  // And the new objects are found by name.
  struct stat st {};
  EXPECT_EQ(::stat((root_ + "/d/f").c_str(), &st), 0);
  EXPECT_EQ(::stat((root_ + "/d/e/g").c_str(), &st), 0);
}

// mirrorfs: a file renamed in the backing directory keeps its handle.
TEST_F(ExportTest, MirrorfsHandleFollowsARenameBehindTheMount) {
  if (std::string(ZEST_TEST_FS) != "mirrorfs") GTEST_SKIP() << "needs a backing directory";
  const std::string backing = mount_->source();
  Handle hf = HandleOf(root_ + "/d/f");
  ASSERT_FALSE(hf.bytes.empty());
  ino_t ino = Ino(root_ + "/d/f");
  DropCaches();
  ASSERT_EQ(::rename((backing + "/d/f").c_str(), (backing + "/d/e/moved").c_str()), 0);
  int fd = OpenHandle(hf, O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(-fd);
  UniqueFd guard(fd);
  char buf[16] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 7);
  EXPECT_EQ(Ino(root_ + "/d/e/moved"), ino);
}

TEST_F(ExportTest, PmfsHandlesSurviveARemount) {
  if (std::string(ZEST_TEST_FS) == "memfs") GTEST_SKIP() << "memfs keeps nothing across mounts";
  if (std::string(ZEST_TEST_FS) == "mirrorfs")
    GTEST_SKIP() << "mirrorfs numbers its inodes anew at each mount (a counter), so "
                    "handles do not survive a remount";
  Handle hf = HandleOf(root_ + "/d/f"), hd = HandleOf(root_ + "/d");
  ASSERT_FALSE(hf.bytes.empty());
  std::string err;
  ASSERT_TRUE(mount_->Restart(&err)) << err;
  int fd = OpenHandle(hf, O_RDONLY);
  ASSERT_GE(fd, 0) << std::strerror(-fd);
  UniqueFd guard(fd);
  char buf[16] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof buf, 0), 7);
  int dfd = OpenHandle(hd, O_RDONLY | O_DIRECTORY);
  EXPECT_GE(dfd, 0) << std::strerror(-dfd);
  if (dfd >= 0) ::close(dfd);
}

}  // namespace
}  // namespace zest::testing
