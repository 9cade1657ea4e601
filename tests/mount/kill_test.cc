// Killing the server in the middle of a request must not hang anyone: the
// caller gets an error, the mount then reports ENOTCONN, and it can be
// unmounted. memfs answers after a delay here (-o delay_us), so a read is
// surely in flight when the server dies.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "base/fd.h"
#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

TEST(KillTest, ServerKilledMidRequestLeavesNoHang) {
  if (std::string why = FuseUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  std::string err;
  // Replies wait 1 s: long enough that the read below is still in flight
  // when the server dies even on a loaded 2-CPU machine (300 ms was not:
  // the sleep before the kill can stretch past it).
  auto m = ZestMount::Start("memfs", {"-o", "delay_us=1000000"}, &err);
  ASSERT_TRUE(m) << err;
  const std::string file = m->path() + "/f";
  {
    UniqueFd fd(::open(file.c_str(), O_CREAT | O_RDWR, 0644));
    ASSERT_TRUE(fd) << strerror(errno);
    ASSERT_EQ(::pwrite(fd.get(), "data", 4, 0), 4);
  }
  UniqueFd fd(::open(file.c_str(), O_RDONLY));
  ASSERT_TRUE(fd) << strerror(errno);

  // The read waits 1 s for its (delayed) reply; kill the server first.
  auto reader = std::async(std::launch::async, [&] {
    char buf[16];
    ssize_t n = ::pread(fd.get(), buf, sizeof(buf), 0);
    return n < 0 ? -errno : static_cast<int>(n);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(::kill(m->pid(), SIGKILL), 0);
  ASSERT_EQ(reader.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the read is still blocked 10 s after the server died";
  int r = reader.get();
  EXPECT_TRUE(r == -ECONNABORTED || r == -ENOTCONN) << "read returned " << r;

  // Anything that must reach the server now fails (cached attributes of
  // the root may still answer a plain stat for a second).
  struct statfs sfs;
  EXPECT_EQ(::statfs(m->path().c_str(), &sfs), -1);
  EXPECT_EQ(errno, ENOTCONN);
  EXPECT_EQ(::open((m->path() + "/new").c_str(), O_CREAT | O_WRONLY, 0644), -1);
  EXPECT_EQ(errno, ENOTCONN);
  fd.reset();

  // It unmounts (the fixture detaches the dead mount and reaps the server).
  std::string report;
  m->Unmount(&report);
  EXPECT_EQ(MountTypeAt(m->path()), "") << report;
}

}  // namespace
}  // namespace zest::testing
