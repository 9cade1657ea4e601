#include "conformance/probe.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace zest::conformance {

std::string ErrnoName(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "errno " + std::to_string(e);
}

void Probe::Note(const std::string& label, const std::string& value) {
  lines_.push_back({label, value});
}

bool Probe::Ok(const std::string& label, long rc) {
  Note(label, rc >= 0 ? "ok" : "errno " + ErrnoName(errno));
  return rc >= 0;
}

long Probe::Ret(const std::string& label, long rc) {
  Note(label,
       rc >= 0 ? "= " + std::to_string(rc) : "errno " + ErrnoName(errno));
  return rc;
}

UniqueFd Probe::Open(const std::string& label, const std::string& rel,
                     int flags, mode_t mode) {
  int fd = ::open(P(rel).c_str(), flags | O_CLOEXEC, mode);
  Ok(label, fd);
  return UniqueFd(fd);
}

namespace {

std::string Describe(const struct stat& st, unsigned f) {
  std::string s;
  auto add = [&](const std::string& part) {
    if (!s.empty()) s += " ";
    s += part;
  };
  if (f & Probe::kType) {
    const char* t = S_ISREG(st.st_mode)    ? "reg"
                    : S_ISDIR(st.st_mode)  ? "dir"
                    : S_ISLNK(st.st_mode)  ? "lnk"
                    : S_ISFIFO(st.st_mode) ? "fifo"
                    : S_ISSOCK(st.st_mode) ? "sock"
                    : S_ISCHR(st.st_mode)  ? "chr"
                    : S_ISBLK(st.st_mode)  ? "blk"
                                           : "?";
    add(t);
  }
  if (f & Probe::kPerm) {
    char b[16];
    std::snprintf(b, sizeof b, "0%o", st.st_mode & 07777);
    add(b);
  }
  if (f & Probe::kNlink) add("nlink=" + std::to_string(st.st_nlink));
  if (f & Probe::kOwner)
    add("uid=" + std::to_string(st.st_uid) +
        " gid=" + std::to_string(st.st_gid));
  if ((f & Probe::kSize) && !S_ISDIR(st.st_mode))
    add("size=" + std::to_string(st.st_size));
  if (f & Probe::kRdev) {
    char b[32];
    std::snprintf(b, sizeof b, "rdev=%llx", (unsigned long long)st.st_rdev);
    add(b);
  }
  return s;
}

}  // namespace

void Probe::Stat(const std::string& rel, unsigned fields) {
  struct stat st {};
  std::string label = "lstat " + (rel.empty() ? std::string(".") : rel);
  if (::lstat(P(rel).c_str(), &st) != 0)
    Note(label, "errno " + ErrnoName(errno));
  else
    Note(label, Describe(st, fields));
}

void Probe::Fstat(const std::string& label, int fd, unsigned fields) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    Note(label, "errno " + ErrnoName(errno));
  else
    Note(label, Describe(st, fields));
}

void Probe::Data(const std::string& label, const std::string& bytes) {
  Note(label, bytes);
}

bool Probe::Feature(const std::string& name, long rc) {
  if (rc >= 0) {
    lines_.push_back({name, "supported", true});
    return true;
  }
  int e = errno;
  bool missing = e == EOPNOTSUPP || e == ENOSYS || e == ENOTTY || e == ENODEV;
  lines_.push_back({name,
                    (missing ? "unsupported (" : "errno ") + ErrnoName(e) +
                        (missing ? ")" : ""),
                    missing});
  return false;
}

struct stat Probe::Lstat(const std::string& rel) const {
  struct stat st {};
  if (::lstat(P(rel).c_str(), &st) != 0) st = {};
  return st;
}

int Probe::AsUser(uid_t uid, const std::function<int()>& fn) const {
  pid_t pid = ::fork();
  if (pid < 0) return 254;
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 ||
        ::setuid(uid) != 0)
      ::_exit(255);
    ::setfsuid(uid);
    ::_exit(fn());
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 253;
}

void Probe::Tick() {
  std::this_thread::sleep_for(std::chrono::milliseconds(15));
}

Times TimesOf(const Probe& p, const std::string& rel) {
  struct stat st = p.Lstat(rel);
  return {st.st_atim, st.st_mtim, st.st_ctim};
}

std::string TimeChanges(const Times& b, const Times& a, bool with_atime) {
  auto same = [](const timespec& x, const timespec& y) {
    return x.tv_sec == y.tv_sec && x.tv_nsec == y.tv_nsec;
  };
  std::string s;
  if (with_atime)
    s += same(b.atime, a.atime) ? "atime same, " : "atime changed, ";
  s += same(b.mtime, a.mtime) ? "mtime same, " : "mtime changed, ";
  s += same(b.ctime, a.ctime) ? "ctime same" : "ctime changed";
  return s;
}

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
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, s.data() + done, n - done, off + done);
    if (r < 0) return "<read: errno " + ErrnoName(errno) + ">";
    if (r == 0) break;
    done += r;
  }
  s.resize(done);
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

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return {"errno " + ErrnoName(errno)};
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

}  // namespace zest::conformance
