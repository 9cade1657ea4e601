// Passthrough through a real mount: mirrorfs answers every open with
// IoMode::Passthrough, so after the open the kernel reads and writes the
// backing file itself and no READ or WRITE reaches the server. The server
// runs with -d, and its request log is the evidence.
#include <fcntl.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<open failed: " + std::string(std::strerror(errno)) + ">";
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
  ::close(fd);
  return out;
}

size_t CountRequests(const std::string& log, unsigned opcode) {
  std::string needle = " opcode=" + std::to_string(opcode) + " ";
  size_t n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

class PassthroughMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = FuseUnavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (std::getenv("ZEST_TEST_SUBJECT")) GTEST_SKIP() << "needs a zest mirrorfs mount";
    std::string err;
    // The fixture makes the backing directory (source()).
    mount_ = ZestMount::Start("mirrorfs", {"-d"}, &err);
    ASSERT_TRUE(mount_) << err;
    backing_ = mount_->source();
  }
  void TearDown() override { mount_.reset(); }
  // Skips when the kernel or our privileges gave no passthrough.
  bool PassthroughRefused() {
    std::string log = mount_->ServerStderr();
    return log.find("serving such opens with direct I/O") != std::string::npos;
  }

  std::string backing_;
  std::unique_ptr<ZestMount> mount_;
};

TEST_F(PassthroughMountTest, DataGoesStraightToTheBackingFile) {
  std::string path = mount_->path() + "/f";
  std::string data(300000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 23);
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  char mid[10];
  ASSERT_EQ(::pread(fd, mid, sizeof mid, 123456), 10);
  EXPECT_EQ(std::string(mid, 10), data.substr(123456, 10));
  ::close(fd);
  if (PassthroughRefused()) GTEST_SKIP() << "kernel refused passthrough: " << mount_->ServerStderr().substr(0, 400);

  EXPECT_EQ(ReadAll(backing_ + "/f"), data);
  EXPECT_EQ(ReadAll(path), data);
  // And a change to the backing file shows through the mount at once.
  int b = ::open((backing_ + "/f").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(b, 0);
  ASSERT_EQ(::pwrite(b, "ZZZZ", 4, 10), 4);
  ::close(b);
  EXPECT_EQ(ReadAll(path).substr(10, 4), "ZZZZ");

  std::string log = mount_->ServerStderr();
  EXPECT_EQ(CountRequests(log, 15), 0u) << "READ reached the server";
  EXPECT_EQ(CountRequests(log, 16), 0u) << "WRITE reached the server";
}

TEST_F(PassthroughMountTest, ManyOpensOfOneInodeAndReopenAfterRelease) {
  std::string path = mount_->path() + "/g";
  {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "hello", 5), 5);
    ::close(fd);
  }
  // Several opens at once share the inode's backing id; all close; the
  // next open registers anew.
  for (int round = 0; round < 3; ++round) {
    std::vector<int> fds;
    for (int i = 0; i < 4; ++i) {
      int fd = ::open(path.c_str(), (i % 2 ? O_RDWR : O_RDONLY) | O_CLOEXEC);
      ASSERT_GE(fd, 0) << std::strerror(errno);
      fds.push_back(fd);
    }
    for (int fd : fds) {
      char buf[5];
      ASSERT_EQ(::pread(fd, buf, 5, 0), 5);
      EXPECT_EQ(std::string(buf, 5), "hello");
    }
    for (int fd : fds) ::close(fd);
  }
  if (PassthroughRefused()) GTEST_SKIP() << "kernel refused passthrough";
  EXPECT_EQ(CountRequests(mount_->ServerStderr(), 15), 0u);
  std::string report;
  EXPECT_TRUE(mount_->Unmount(&report)) << report;
  EXPECT_EQ(mount_->ServerStderr().find("closing backing id"), std::string::npos)
      << mount_->ServerStderr();
}

// FUSE clears SB_NOSEC, so the kernel asks the server for
// security.capability before every passthrough write (file_remove_privs);
// -o noxattr answers ENOSYS once and the kernel stops asking.
TEST(PassthroughNoXattr, WritesNeedNoRequestAtAll) {
  std::string reason = FuseUnavailableReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  if (std::getenv("ZEST_TEST_SUBJECT")) GTEST_SKIP() << "needs a zest mirrorfs mount";
  std::string err;
  auto m = ZestMount::Start("mirrorfs", {"-d", "-o", "noxattr"}, &err);
  ASSERT_TRUE(m) << err;
  const std::string path = m->path() + "/w";
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  for (int k = 0; k < 50; ++k) ASSERT_EQ(::pwrite(fd, "abcd", 4, k * 4), 4);
  char v[8];
  EXPECT_EQ(::fgetxattr(fd, "user.x", v, sizeof v), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(::fsetxattr(fd, "user.x", "1", 1, 0), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  ::close(fd);
  const std::string log = m->ServerStderr();
  if (log.find("serving such opens with direct I/O") != std::string::npos)
    GTEST_SKIP() << "kernel refused passthrough";
  EXPECT_EQ(ReadAll(m->source() + "/w").size(), 200u);
  EXPECT_EQ(CountRequests(log, 16), 0u) << "WRITE reached the server";
  // At most the one GETXATTR answered ENOSYS, then none.
  EXPECT_LE(CountRequests(log, 22), 1u) << "GETXATTR kept reaching the server";
}

}  // namespace
}  // namespace zest::testing
