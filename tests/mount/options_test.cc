// Mount options that change what the kernel and the file system do: the
// atime family (relatime, noatime, strictatime, nodiratime, lazytime; a
// tmpfs mounted with the same flag is the oracle), dev and suid (root only,
// off by default), checked through real mounts.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/fd.h"
#include "tests/mount/zest_mount.h"

#ifndef ZEST_TEST_FS
#define ZEST_TEST_FS "memfs"
#endif

namespace zest::testing {
namespace {

// A tmpfs mounted with mount(2) flags, unmounted (lazily) on destruction.
class FlaggedTmpfs {
 public:
  explicit FlaggedTmpfs(unsigned long flags) {
    char tmpl[] = "/tmp/zest-tmpfs-XXXXXX";
    if (!::mkdtemp(tmpl)) return;
    path_ = tmpl;
    if (::mount("zest-oracle", path_.c_str(), "tmpfs", flags, "mode=1777") != 0) {
      error_ = std::strerror(errno);
      ::rmdir(path_.c_str());
      path_.clear();
    }
  }
  ~FlaggedTmpfs() {
    if (path_.empty()) return;
    ::umount2(path_.c_str(), MNT_DETACH);
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  const std::string& error() const { return error_; }

 private:
  std::string path_, error_;
};

timespec Atime(const std::string& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return {-1, 0};
  return st.st_atim;
}

bool Same(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

void SetTimes(const std::string& p, time_t atime, time_t mtime) {
  timespec ts[2] = {{atime, 0}, {mtime, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, 0), 0) << p << ": " << std::strerror(errno);
}

// Opens, reads everything, closes (as cat does). Returns bytes read.
ssize_t Cat(const std::string& p, int extra_flags = 0) {
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | extra_flags));
  if (!fd) return -1;
  char buf[4096];
  ssize_t total = 0, n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) total += n;
  return total;
}

void ListDir(const std::string& p) {
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  char buf[4096];
  while (::syscall(SYS_getdents64, fd.get(), buf, sizeof buf) > 0) {
  }
}

// One access scenario; returns, for each step, whether atime moved. The
// same steps run on tmpfs and on the subject.
std::vector<std::string> AtimeScenario(const std::string& root) {
  std::vector<std::string> out;
  const std::string f = root + "/f", d = root + "/d";
  {
    UniqueFd fd(::open(f.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    if (!fd || ::write(fd.get(), "hello", 5) != 5) return {"setup failed"};
  }
  if (::mkdir(d.c_str(), 0755) != 0) return {"mkdir failed"};
  const time_t now = ::time(nullptr);
  auto step = [&](const std::string& name, const std::string& path, auto&& access) {
    // close(2) is followed by an asynchronous RELEASE, and memfs/pmfs drop
    // a file's cached pages at open (so that the read reaches them and
    // updates atime) only when nothing else has it open: give the last
    // RELEASE time to arrive, as any real pause between accesses does.
    ::usleep(30000);
    timespec before = Atime(path);
    access();
    out.push_back(name + (Same(before, Atime(path)) ? ": kept" : ": updated"));
  };
  // atime older than mtime: relatime updates once.
  SetTimes(f, now - 100, now - 50);
  step("read after a change", f, [&] { Cat(f); });
  ::usleep(20000);  // strictatime: the next update has a later stamp
  step("second read", f, [&] { Cat(f); });
  // atime a day old but newer than mtime/ctime: relatime updates too.
  SetTimes(f, now - 25 * 3600, now - 26 * 3600);
  step("read a day later", f, [&] { Cat(f); });
  SetTimes(f, now - 100, now - 50);
  step("O_NOATIME read", f, [&] { Cat(f, O_NOATIME); });
  SetTimes(d, now - 100, now - 50);
  step("list a directory", d, [&] { ListDir(d); });
  ::usleep(20000);
  step("list it again", d, [&] { ListDir(d); });
  return out;
}

struct AtimeCase {
  const char* option;   // -o for zest ("" for the default)
  unsigned long flags;  // the same for tmpfs
};

class AtimeTest : public ::testing::TestWithParam<AtimeCase> {};

TEST_P(AtimeTest, MatchesTmpfs) {
  std::string reason = FuseUnavailableReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  const AtimeCase& c = GetParam();
  FlaggedTmpfs oracle(c.flags);
  ASSERT_FALSE(oracle.path().empty()) << "tmpfs mount: " << oracle.error();
  std::vector<std::string> args;
  if (*c.option) args = {"-o", c.option};
  std::string err;
  auto subject = StartSubject(ZEST_TEST_FS, args, &err);
  ASSERT_TRUE(subject) << err;
  std::vector<std::string> want = AtimeScenario(oracle.path());
  std::vector<std::string> got = AtimeScenario(subject->path());
  EXPECT_EQ(got, want) << "-o " << c.option;
  // The scenario tells the policies apart (not a test that cannot fail).
  EXPECT_EQ(want.size(), 6u);
  // The mount says what it does.
  if (subject->is_zest() && *c.option) {
    std::ifstream mounts("/proc/self/mounts");
    std::string line, opts;
    while (std::getline(mounts, line))
      if (line.find(" " + subject->path() + " ") != std::string::npos) opts = line;
    std::string o = c.option;
    if (o == "strictatime") {  // shown as neither relatime nor noatime
      EXPECT_EQ(opts.find("atime"), std::string::npos) << opts;
    } else {
      EXPECT_NE(opts.find(o), std::string::npos) << opts;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(, AtimeTest,
                         ::testing::Values(AtimeCase{"", 0}, AtimeCase{"relatime", MS_RELATIME},
                                           AtimeCase{"noatime", MS_NOATIME},
                                           AtimeCase{"strictatime", MS_STRICTATIME},
                                           AtimeCase{"nodiratime", MS_NODIRATIME},
                                           AtimeCase{"lazytime", MS_LAZYTIME}),
                         [](const auto& info) {
                           std::string s = *info.param.option ? info.param.option : "default";
                           return s;
                         });

// Runs argv as uid/gid 1000; returns its exit status and stdout.
int RunAsUser(const std::vector<std::string>& argv, std::string* out) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    if (::setgroups(0, nullptr) != 0 || ::setgid(1000) != 0 || ::setuid(1000) != 0)
      ::_exit(200);
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out->append(buf, n);
  ::close(pipefd[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

class DevSuidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = FuseUnavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (::getenv("ZEST_TEST_SUBJECT")) GTEST_SKIP() << "needs zest's own mounts";
  }
  std::unique_ptr<SubjectMount> Start(const std::vector<std::string>& args) {
    std::string err;
    auto m = StartSubject(ZEST_TEST_FS, args, &err);
    EXPECT_TRUE(m) << err;
    return m;
  }
};

TEST_F(DevSuidTest, DeviceNodesOpenOnlyWithDev) {
  for (bool dev : {false, true}) {
    auto m = Start(dev ? std::vector<std::string>{"-o", "dev"} : std::vector<std::string>{});
    ASSERT_TRUE(m);
    const std::string node = m->path() + "/null";
    ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0666, ::makedev(1, 3)), 0)
        << std::strerror(errno);
    UniqueFd fd(::open(node.c_str(), O_WRONLY | O_CLOEXEC));
    if (dev) {
      ASSERT_TRUE(fd) << "-o dev: open of /dev/null's twin: " << std::strerror(errno);
      EXPECT_EQ(::write(fd.get(), "x", 1), 1);
    } else {
      EXPECT_FALSE(fd);
      EXPECT_EQ(errno, EACCES) << "nodev (the default) must refuse device nodes";
    }
  }
}

TEST_F(DevSuidTest, SetUidProgramsRunAsOwnerOnlyWithSuid) {
  if (::access("/usr/bin/id", X_OK) != 0) GTEST_SKIP() << "/usr/bin/id missing";
  for (bool suid : {false, true}) {
    auto m = Start(suid ? std::vector<std::string>{"-o", "suid"} : std::vector<std::string>{});
    ASSERT_TRUE(m);
    const std::string prog = m->path() + "/id";
    {
      std::ifstream in("/usr/bin/id", std::ios::binary);
      std::ofstream o(prog, std::ios::binary);
      o << in.rdbuf();
    }
    ASSERT_EQ(::chmod(prog.c_str(), 04755), 0);
    std::string out;
    ASSERT_EQ(RunAsUser({prog, "-u"}, &out), 0) << out;
    EXPECT_EQ(out, suid ? "0\n" : "1000\n") << (suid ? "-o suid" : "nosuid (default)");
  }
}

TEST_F(DevSuidTest, OnlyRootMayAskForDevOrSuid) {
  for (const char* opt : {"dev", "suid"}) {
    char tmpl[] = "/tmp/zest-user-mnt-XXXXXX";
    ASSERT_TRUE(::mkdtemp(tmpl));
    ::chown(tmpl, 1000, 1000);
    std::string out;
    int rc = RunAsUser({ZEST_BINARY, "mount", "-f", "--fs", "memfs", "-o", opt, tmpl}, &out);
    ::rmdir(tmpl);
    EXPECT_EQ(rc, 2) << out;
    EXPECT_NE(out.find("only root"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace zest::testing
