#include "tests/mount/zest_mount.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/fd.h"

#ifndef ZEST_BINARY
#define ZEST_BINARY "zest"
#endif

namespace zest::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoText(int e) { return std::string(std::strerror(e)); }

std::string WaitStatusText(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// Waits up to TIMEOUT for PID; returns true and the status when it ended.
bool WaitFor(pid_t pid, std::chrono::milliseconds timeout, int* status) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;  // not our child any more
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Runs ARGV (argv[0] a path) with stdout/stderr to /dev/null, waits up to
// TIMEOUT, kills it by pid if it overruns. Returns the wait status or -1.
int RunHelper(const std::vector<std::string>& argv,
              std::chrono::milliseconds timeout) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  int status = 0;
  if (!WaitFor(pid, timeout, &status)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
  }
  return status;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(
          std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::string MountTypeAt(const std::string& path, unsigned long* minor) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint opts [optional...] - type src ...
    std::istringstream ls(line);
    std::string id, parent, devno, root, mnt;
    ls >> id >> parent >> devno >> root >> mnt;
    if (Unescape(mnt) != path) continue;
    std::string tok;
    while (ls >> tok && tok != "-") {
    }
    std::string type;
    ls >> type;
    found = type;  // the last (topmost) mount at PATH wins
    if (minor) {
      auto colon = devno.find(':');
      if (colon != std::string::npos)
        *minor = std::strtoul(devno.c_str() + colon + 1, nullptr, 10);
    }
  }
  return found;
}

void RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    ::chmod(path.c_str(), 0700);
    if (DIR* d = ::opendir(path.c_str())) {
      std::vector<std::string> names;
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      ::closedir(d);
      for (auto& n : names) RemoveTree(path + "/" + n);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

namespace {
const char* g_default_transport = nullptr;
}  // namespace

void SetDefaultTransport(const char* transport) { g_default_transport = transport; }

std::string TestTransport() {
  if (const char* t = std::getenv("ZEST_TEST_TRANSPORT"); t && *t) return t;
  // zest mount's own default is auto (io_uring where offered); the plain
  // variants pin /dev/fuse so that both transports stay covered.
  return g_default_transport ? g_default_transport : "dev";
}

std::string FuseUnavailableReason() {
  if (std::getenv("ZEST_TEST_SUBJECT")) return "";
  UniqueFd fd(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!fd) return "/dev/fuse not available: open: " + ErrnoText(errno);
  if (::geteuid() != 0)
    return "/dev/fuse not available: mount tests need root (allow_other, "
           "mknod, chown to other users)";
  if (::access(ZEST_BINARY, X_OK) != 0)
    return std::string("zest binary not built: ") + ZEST_BINARY;
  if (TestTransport() == "uring" &&
      ::access("/sys/module/fuse/parameters/enable_uring", F_OK) != 0)
    return "FUSE over io_uring not available: this kernel has no "
           "/sys/module/fuse/parameters/enable_uring (CONFIG_FUSE_IO_URING)";
  return "";
}

// --- ZestMount --------------------------------------------------------------

std::unique_ptr<ZestMount> ZestMount::Start(
    const std::string& fs, const std::vector<std::string>& args,
    std::string* error) {
  std::unique_ptr<ZestMount> m(new ZestMount());
  m->fs_ = fs;
  char tmpl[] = "/tmp/zest-mnt-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    *error = "mkdtemp: " + ErrnoText(errno);
    m->torn_down_ = true;
    return nullptr;
  }
  m->mountpoint_ = tmpl;
  m->stderr_fd_ = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

  std::vector<std::string> argv = {ZEST_BINARY, "mount", "-f", "--fs", fs};
  if (std::string t = TestTransport(); !t.empty()) argv.push_back("--transport=" + t);
  argv.insert(argv.end(), args.begin(), args.end());
  if (fs == "pmfs") {
    // A fresh pool in /dev/shm (memory, as pmem would be), 01777 at the
    // root like the tmpfs oracle.
    char pool[] = "/dev/shm/zest-pool-XXXXXX";
    int fd = ::mkstemp(pool);
    if (fd < 0) {
      *error = "mkstemp: " + ErrnoText(errno);
      return nullptr;
    }
    ::close(fd);
    ::unlink(pool);
    m->pool_ = pool;
    int rc = RunHelper({ZEST_BINARY, "mkfs", "--size", "512M", m->pool_}, std::chrono::seconds(30));
    if (rc != 0) {
      *error = "zest mkfs " + m->pool_ + " failed (" + std::to_string(rc) + ")";
      return nullptr;
    }
    argv.push_back(m->pool_);
  } else if (fs == "mirrorfs") {
    // A fresh backing directory on tmpfs, 01777 like the root of a fresh
    // tmpfs mount (kept in pool_, removed with everything in it after).
    char dir[] = "/dev/shm/zest-mirror-XXXXXX";
    if (!::mkdtemp(dir)) {
      *error = "mkdtemp: " + ErrnoText(errno);
      return nullptr;
    }
    ::chmod(dir, 01777);
    m->pool_ = dir;
    argv.push_back(m->pool_);
  }
  argv.push_back(m->mountpoint_);
  m->argv_ = std::move(argv);
  if (!m->Launch(error)) return nullptr;
  return m;
}

bool ZestMount::Launch(std::string* error) {
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = "fork: " + ErrnoText(errno);
    return false;  // destructor removes the directory
  }
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
    }
    if (stderr_fd_ >= 0) ::dup2(stderr_fd_, 2);
    std::vector<char*> a;
    for (auto& s : argv_) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    std::fprintf(stderr, "execv %s: %s\n", a[0], std::strerror(errno));
    ::_exit(127);
  }
  pid_ = pid;

  auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    unsigned long minor = 0;
    std::string type = MountTypeAt(mountpoint_, &minor);
    if (type == "fuse.zest") {
      fuse_minor_ = minor;
      have_minor_ = true;
      return true;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      pid_ = -1;
      *error = "zest mount exited before the mount appeared (" +
               WaitStatusText(status) + "); stderr:\n" + ServerStderr();
      return false;
    }
    if (Clock::now() >= deadline) {
      *error = "zest mount: no fuse.zest mount at " + mountpoint_ +
               " after 10 s (found type '" + type + "'); stderr:\n" +
               ServerStderr();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool ZestMount::Restart(std::string* error) {
  std::string report;
  if (pid_ >= 0 && !Unmount(&report)) {
    *error = "unmount before restart: " + report;
    return false;
  }
  return Launch(error);
}

std::string ZestMount::describe() const {
  return "zest mount --fs " + fs_ + " at " + mountpoint_;
}

std::string ZestMount::ServerStderr() const {
  if (stderr_fd_ < 0) return "(stderr not captured)";
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(stderr_fd_, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, n);
    off += n;
    if (out.size() > (1 << 20)) break;
  }
  return out;
}

bool ZestMount::Unmount(std::string* report) {
  std::string r;
  bool ok = true;
  if (pid_ < 0) {
    if (report) *report = "server not running";
    return false;
  }
  if (!MountTypeAt(mountpoint_).empty()) {
    int st = RunHelper({ZEST_BINARY, "umount", mountpoint_},
                       std::chrono::seconds(10));
    r += "zest umount: " +
         (st < 0 ? std::string("timed out") : WaitStatusText(st));
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = false;
  }
  int status = 0;
  if (WaitFor(pid_, std::chrono::seconds(10), &status)) {
    pid_ = -1;
    r += "; server: " + WaitStatusText(status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ok = false;
  } else {
    r += "; server still running 10 s after umount";
    ok = false;
  }
  if (report) *report = r;
  return ok;
}

void ZestMount::Teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  if (pid_ >= 0) Unmount(nullptr);
  // Fallbacks, gentlest first. A hung server would make path lookups in the
  // mount hang, so nothing here stats the mountpoint.
  if (!MountTypeAt(mountpoint_).empty()) {
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
    if (!MountTypeAt(mountpoint_).empty())
      RunHelper({"/bin/umount", "-l", mountpoint_}, std::chrono::seconds(5));
  }
  if (pid_ >= 0) {
    int status = 0;
    if (!WaitFor(pid_, std::chrono::seconds(3), &status)) {
      // Abort the connection so a server stuck in a request can see EOF.
      AbortConnection();
      if (!WaitFor(pid_, std::chrono::seconds(2), &status)) {
        ::kill(pid_, SIGTERM);
        if (!WaitFor(pid_, std::chrono::seconds(3), &status)) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
        }
      }
    }
    pid_ = -1;
  }
  if (!mountpoint_.empty()) ::rmdir(mountpoint_.c_str());
  if (!pool_.empty()) RemoveTree(pool_);  // a pool file or a backing dir
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
  stderr_fd_ = -1;
}

void ZestMount::AbortConnection() {
  if (have_minor_) {
    std::string abort =
        "/sys/fs/fuse/connections/" + std::to_string(fuse_minor_) + "/abort";
    UniqueFd fd(::open(abort.c_str(), O_WRONLY | O_CLOEXEC));
    if (fd && ::write(fd.get(), "1", 1) == 1) return;
  }
  // fusectl is not mounted: killing the server closes its /dev/fuse fd,
  // which aborts the connection just the same. Reaped in Teardown().
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

ZestMount::~ZestMount() { Teardown(); }

// --- ExistingDir
// --------------------------------------------------------------

std::unique_ptr<ExistingDir> ExistingDir::Create(const std::string& parent,
                                                 std::string* error) {
  std::string tmpl = parent + "/zest-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) {
    *error = "mkdtemp in " + parent + ": " + ErrnoText(errno);
    return nullptr;
  }
  std::unique_ptr<ExistingDir> d(new ExistingDir());
  d->path_ = buf.data();
  ::chmod(d->path_.c_str(), 0755);
  return d;
}

ExistingDir::~ExistingDir() { RemoveTree(path_); }

std::unique_ptr<SubjectMount> StartSubject(const std::string& fs,
                                           const std::vector<std::string>& args,
                                           std::string* error) {
  if (const char* dir = std::getenv("ZEST_TEST_SUBJECT"))
    return ExistingDir::Create(dir, error);
  return ZestMount::Start(fs, args, error);
}

// --- TmpfsDir
// -----------------------------------------------------------------

TmpfsDir::TmpfsDir() {
  char tmpl[] = "/dev/shm/zest-oracle-XXXXXX";
  if (::mkdtemp(tmpl)) {
    path_ = tmpl;
    ::chmod(path_.c_str(), 0755);
  }
}

TmpfsDir::~TmpfsDir() {
  if (!path_.empty()) RemoveTree(path_);
}

}  // namespace zest::testing
