// zest-conformance (docs/conformance.md) run as a user would: against a
// zest mount of memfs and of pmfs (every check passes, exit 0), against a
// deliberately wrong file system (FAIL lines, exit 1), with bad arguments
// (exit 2), and interrupted (exit 130, nothing left behind).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "tests/conformance/broken_fs.h"
#include "tests/mount/zest_mount.h"

#ifndef ZEST_CONFORMANCE_BINARY
#define ZEST_CONFORMANCE_BINARY "zest-conformance"
#endif

namespace zest::testing {
namespace {

struct ToolRun {
  int status = -1;     // exit status, or 128 + signal
  std::string output;  // stdout and stderr together
};

// Starts zest-conformance with ARGS, its output into a temporary file.
pid_t Spawn(const std::vector<std::string>& args, int out_fd) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    std::vector<char*> argv;
    static std::string bin = ZEST_CONFORMANCE_BINARY;
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

ToolRun Collect(pid_t pid, int out_fd) {
  ToolRun r;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  off_t size = ::lseek(out_fd, 0, SEEK_END);
  r.output.resize(size);
  if (::pread(out_fd, r.output.data(), size, 0) != size)
    r.output = "<unreadable>";
  return r;
}

UniqueFd OutputFile() {
  return UniqueFd(::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
}

ToolRun RunTool(const std::vector<std::string>& args) {
  UniqueFd out = OutputFile();
  return Collect(Spawn(args, out.get()), out.get());
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
  }
  return names;
}

int CountLines(const std::string& out, const std::string& prefix) {
  int n = 0;
  size_t at = 0;
  while (at < out.size()) {
    size_t e = out.find('\n', at);
    if (e == std::string::npos) e = out.size();
    if (out.compare(at, prefix.size(), prefix) == 0) ++n;
    at = e + 1;
  }
  return n;
}

class ConformanceTest : public ::testing::TestWithParam<std::string> {};

// The whole kit, difftest included, passes on zest's own file systems;
// and it leaves the mount as it found it.
TEST_P(ConformanceTest, PassesOnZestMount) {
  std::string reason = FuseUnavailableReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  std::string err;
  auto mount = ZestMount::Start(GetParam(), {}, &err);
  ASSERT_TRUE(mount) << err;
  ToolRun r = RunTool({mount->path()});
  EXPECT_EQ(r.status, 0) << r.output << "\nserver stderr:\n"
                         << mount->ServerStderr();
  EXPECT_EQ(CountLines(r.output, "FAIL "), 0);
  EXPECT_GE(CountLines(r.output, "PASS "), 40) << r.output;
  EXPECT_NE(r.output.find("PASS difftest"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0 failed"), std::string::npos) << r.output;
  EXPECT_TRUE(ListDir(mount->path()).empty())
      << "scratch directory left behind";
  std::printf("%s", r.output.c_str());
}

INSTANTIATE_TEST_SUITE_P(Fs, ConformanceTest,
                         ::testing::Values("memfs", "pmfs"),
                         [](const auto& info) { return info.param; });

// A file system whose rename answers ok without renaming: the rename
// checks fail (and say what differed), the others pass, exit status 1.
TEST(ConformanceFailures, BrokenRenameIsReported) {
  std::string reason = FuseUnavailableReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  TmpfsDir dir;  // the mountpoint
  ASSERT_TRUE(dir.ok());
  std::string mp = dir.path() + "/mnt";
  ASSERT_EQ(::mkdir(mp.c_str(), 0755), 0);
  std::string err;
  pid_t server = StartBrokenRenameFs(mp, &err);
  ASSERT_GT(server, 0) << err;
  ToolRun r =
      RunTool({mp, "--filter",
               "^(file\\.create_read_write|rename\\.file|rename\\.noreplace)$",
               "--ops", "0"});
  StopBrokenRenameFs(server, mp);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("PASS file.create_read_write"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("FAIL rename.file: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FAIL rename.noreplace: "), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("(tmpfs), got "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3 checks: 1 passed, 2 failed, 0 skipped"),
            std::string::npos)
      << r.output;
  std::printf("%s", r.output.c_str());
}

// And the differential tester finds the same bug on its own.
TEST(ConformanceFailures, DifftestFindsBrokenRename) {
  std::string reason = FuseUnavailableReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  TmpfsDir dir;
  ASSERT_TRUE(dir.ok());
  std::string mp = dir.path() + "/mnt";
  ASSERT_EQ(::mkdir(mp.c_str(), 0755), 0);
  std::string err;
  pid_t server = StartBrokenRenameFs(mp, &err);
  ASSERT_GT(server, 0) << err;
  ToolRun r = RunTool({mp, "--filter", "^difftest$", "--ops", "3000"});
  StopBrokenRenameFs(server, mp);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("FAIL difftest: difftest divergence"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("rename"), std::string::npos) << r.output;
}

TEST(ConformanceUsage, BadArgumentsExit2) {
  ToolRun r = RunTool({});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("MOUNTPOINT missing"), std::string::npos) << r.output;
  r = RunTool({"/nonexistent/zest-conformance-test"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(
      r.output.find(
          "/nonexistent/zest-conformance-test: No such file or directory"),
      std::string::npos)
      << r.output;
  r = RunTool({"/proc/self/status"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("/proc/self/status: not a directory"),
            std::string::npos)
      << r.output;
  r = RunTool({"/tmp", "--ops", "many"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--ops needs a number"), std::string::npos)
      << r.output;
  r = RunTool({"/tmp", "--filter", "("});
  EXPECT_EQ(r.status, 2) << r.output;
  r = RunTool({"/tmp", "--bogus"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("unknown option --bogus"), std::string::npos)
      << r.output;
  r = RunTool({"/tmp", "--scratch", "/proc"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("not on the file system of"), std::string::npos)
      << r.output;
  r = RunTool({"--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("usage: zest-conformance MOUNTPOINT"),
            std::string::npos);
}

TEST(ConformanceUsage, ListNamesEveryCheck) {
  ToolRun r = RunTool({"--list"});
  EXPECT_EQ(r.status, 0);
  EXPECT_GE(CountLines(r.output, ""), 40) << r.output;
  EXPECT_NE(r.output.find("rename.exchange"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("difftest"), std::string::npos) << r.output;
  r = RunTool({"--list", "--filter", "^xattr\\."});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(CountLines(r.output, "xattr."), CountLines(r.output, ""))
      << r.output;
}

// SIGINT ends the run between steps: exit 130, and the scratch directory
// inside the file system under test is gone.
TEST(ConformanceUsage, InterruptCleansUp) {
  TmpfsDir dir;  // any directory: here a tmpfs one, compared with itself
  ASSERT_TRUE(dir.ok());
  UniqueFd out = OutputFile();
  pid_t pid = Spawn({dir.path(), "--filter", "difftest", "--ops", "100000000"},
                    out.get());
  // Wait until the tester runs (its progress lines), then interrupt.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string head(4096, '\0');
    ssize_t n = ::pread(out.get(), head.data(), head.size(), 0);
    if (n > 0 && head.substr(0, n).find("difftest: ") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGINT);
  ToolRun r = Collect(pid, out.get());
  EXPECT_EQ(r.status, 130) << r.output;
  EXPECT_NE(r.output.find("interrupted"), std::string::npos) << r.output;
  EXPECT_TRUE(ListDir(dir.path()).empty()) << "scratch directory left behind";
}

}  // namespace
}  // namespace zest::testing
