#include "tests/pcrash/pool_mount.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "base/fd.h"
#include "tests/mount/zest_mount.h"

#ifndef ZEST_BINARY
#define ZEST_BINARY "zest"
#endif

namespace zest::pcrash {
namespace {

using Clock = std::chrono::steady_clock;

std::string StatusText(int status) {
  if (status < 0) return "timed out or not run";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

bool WaitFor(pid_t pid, std::chrono::milliseconds timeout, int* status) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;  // not our child any more
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// argv as execv wants it, built before fork (nothing allocates in the child).
struct Argv {
  explicit Argv(std::vector<std::string> a) : args(std::move(a)) {
    for (auto& s : args) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
  std::vector<std::string> args;
  std::vector<char*> ptrs;
};

}  // namespace

bool ToolRun::exited(int code) const {
  return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

std::string ToolRun::describe() const { return StatusText(status); }

ToolRun RunZest(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  ToolRun run;
  std::vector<std::string> all{ZEST_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  Argv argv(std::move(all));
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    run.output = std::string("pipe: ") + std::strerror(errno);
    return run;
  }
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);
  pid_t pid = ::fork();
  if (pid < 0) {
    run.output = std::string("fork: ") + std::strerror(errno);
    return run;
  }
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(wr.get(), 1);
    ::dup2(wr.get(), 2);
    ::execv(argv.ptrs[0], argv.ptrs.data());
    ::_exit(127);
  }
  wr.reset();
  auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{rd.get(), POLLIN, 0};
    int r = ::poll(&p, 1, int(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    run.output.append(buf, size_t(n));
  }
  int status = 0;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (!WaitFor(pid, std::max(left, std::chrono::milliseconds(0)), &status)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    run.output += "\n(killed after the timeout)";
    return run;
  }
  run.status = status;
  return run;
}

// --- Pool -------------------------------------------------------------------

std::unique_ptr<Pool> Pool::Make(const std::string& size, std::string* error) {
  char tmpl[] = "/dev/shm/zest-pcrash-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) {
    *error = std::string("mkstemp: ") + std::strerror(errno);
    return nullptr;
  }
  ::close(fd);
  ::unlink(tmpl);  // mkfs refuses an existing file; the name stays ours
  std::unique_ptr<Pool> p(new Pool());
  p->path_ = tmpl;
  ToolRun r = RunZest({"mkfs", "--size", size, p->path_}, std::chrono::seconds(30));
  if (!r.exited(0)) {
    *error = "zest mkfs " + p->path_ + ": " + r.describe() + ": " + r.output;
    return nullptr;
  }
  return p;
}

Pool::~Pool() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

// --- PoolMount --------------------------------------------------------------

std::unique_ptr<PoolMount> PoolMount::Start(const std::string& pool, std::string* error) {
  std::unique_ptr<PoolMount> m(new PoolMount());
  char tmpl[] = "/tmp/zest-pcrash-mnt-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    *error = std::string("mkdtemp: ") + std::strerror(errno);
    return nullptr;
  }
  m->mountpoint_ = tmpl;
  m->stderr_fd_ = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  Argv argv({ZEST_BINARY, "mount", "-f", "--fs", "pmfs", pool, m->mountpoint_});
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    return nullptr;
  }
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
    }
    if (m->stderr_fd_ >= 0) ::dup2(m->stderr_fd_, 2);
    ::execv(argv.ptrs[0], argv.ptrs.data());
    ::_exit(127);
  }
  m->pid_ = pid;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    if (testing::MountTypeAt(m->mountpoint_) == "fuse.zest") return m;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      m->pid_ = -1;
      *error = "zest mount " + pool + " exited before the mount appeared (" +
               StatusText(status) + "); stderr:\n" + m->ServerStderr();
      return nullptr;
    }
    if (Clock::now() >= deadline) {
      *error = "zest mount " + pool + ": no mount after 10 s; stderr:\n" + m->ServerStderr();
      return nullptr;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void PoolMount::Kill() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void PoolMount::DetachDead() {
  // Never stat the mountpoint of a dead server: mountinfo only.
  for (int i = 0; i < 3 && !testing::MountTypeAt(mountpoint_).empty(); ++i)
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
}

bool PoolMount::Unmount(std::string* report) {
  if (pid_ < 0) {
    *report = "server not running";
    return false;
  }
  ToolRun u = RunZest({"umount", mountpoint_}, std::chrono::seconds(10));
  int status = 0;
  bool ended = WaitFor(pid_, std::chrono::seconds(10), &status);
  if (ended) pid_ = -1;
  *report = "zest umount: " + u.describe() + " " + u.output +
            "; server: " + (ended ? StatusText(status) : "still running 10 s later");
  return u.exited(0) && ended && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string PoolMount::ServerStderr() const {
  if (stderr_fd_ < 0) return "(not captured)";
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (ssize_t n; (n = ::pread(stderr_fd_, buf, sizeof buf, off)) > 0 && out.size() < (1 << 20);
       off += n)
    out.append(buf, size_t(n));
  return out;
}

void PoolMount::Teardown() {
  if (pid_ >= 0) {
    std::string report;
    if (!Unmount(&report) && pid_ >= 0) Kill();
  }
  DetachDead();
  if (!mountpoint_.empty()) ::rmdir(mountpoint_.c_str());
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
  stderr_fd_ = -1;
}

PoolMount::~PoolMount() { Teardown(); }

}  // namespace zest::pcrash
