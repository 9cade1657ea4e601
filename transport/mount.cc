#include "transport/mount.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace zest::transport {
namespace {

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct MountInfo {
  std::string mountpoint;
  std::string fstype;
  dev_t device = 0;
};

std::vector<MountInfo> read_mountinfo() {
  std::vector<MountInfo> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mp, opts, field;
    ls >> id >> parent >> devno >> root >> mp >> opts;
    // optional fields end with "-", then fstype.
    while (ls >> field && field != "-") {
    }
    std::string fstype;
    ls >> fstype;
    unsigned maj = 0, min = 0;
    std::sscanf(devno.c_str(), "%u:%u", &maj, &min);
    out.push_back({unescape_mountinfo(mp), fstype, makedev(maj, min)});
  }
  return out;
}

dev_t device_of(const std::string& canonical_mountpoint) {
  dev_t dev = 0;
  for (auto& m : read_mountinfo())
    if (m.mountpoint == canonical_mountpoint) dev = m.device;  // topmost wins
  return dev;
}

std::string canonical(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf)) return buf;
  return path;
}

// Runs fusermount3 with `args`; returns its exit status or an errno.
Result<int> run_fusermount(const std::vector<std::string>& args, int commfd) {
  pid_t pid = ::fork();
  if (pid < 0) return last_errno();
  if (pid == 0) {
    if (commfd >= 0) {
      std::string v = std::to_string(commfd);
      ::setenv("_FUSE_COMMFD", v.c_str(), 1);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>("fusermount3"));
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp("fusermount3", argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return last_errno();
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Result<UniqueFd> receive_fd(int sock) {
  char data = 0;
  iovec iov{&data, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return last_errno();
  if (n == 0) return Errno(ECONNRESET);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return Errno(EPROTO);
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
  return UniqueFd(fd);
}

std::string join_options(const MountOptions& o) {
  std::string s;
  auto add = [&](const std::string& x) {
    if (x.empty()) return;
    if (!s.empty()) s += ',';
    s += x;
  };
  if (o.allow_other) add("allow_other");
  if (o.default_permissions) add("default_permissions");
  if (o.max_read) add(fmt::format("max_read={}", o.max_read));
  for (auto& e : o.extra) add(e);
  return s;
}

}  // namespace

bool is_mount_point(const std::string& path) {
  std::string c = canonical(path);
  for (auto& m : read_mountinfo())
    if (m.mountpoint == c) return true;
  return false;
}

Result<void> check_mountpoint(const std::string& mountpoint, std::string* why) {
  struct stat st;
  if (::stat(mountpoint.c_str(), &st) != 0) {
    int e = errno;
    *why = e == ENOTCONN
               ? "mountpoint is a dead FUSE mount (run `zest umount` on it)"
               : fmt::format("mountpoint does not exist ({})", std::strerror(e));
    return Errno(e);
  }
  if (!S_ISDIR(st.st_mode)) {
    *why = "mountpoint is not a directory";
    return Errno(ENOTDIR);
  }
  if (is_mount_point(mountpoint)) {
    *why = "mountpoint is already mounted";
    return Errno(EBUSY);
  }
  return {};
}

Result<FuseMount> FuseMount::mount(const std::string& mountpoint,
                                   const MountOptions& opts, std::string* why) {
  if (auto r = check_mountpoint(mountpoint, why); !r) return r.error();
  FuseMount m;
  m.mountpoint_ = canonical(mountpoint);

  std::string extra = join_options(opts);
  m.fd_.reset(::open("/dev/fuse", O_RDWR | O_CLOEXEC));
  if (!m.fd_ && errno != EACCES && errno != EPERM) {
    int e = errno;
    *why = fmt::format("cannot open /dev/fuse: {}", std::strerror(e));
    if (e == ENOENT) *why += " (is the fuse module loaded?)";
    return Errno(e);
  }
  if (m.fd_) {
    struct stat st;
    ::stat(m.mountpoint_.c_str(), &st);
    std::string data = fmt::format("fd={},rootmode={:o},user_id={},group_id={}",
                                   m.fd_.get(), st.st_mode & S_IFMT, ::getuid(),
                                   ::getgid());
    if (!extra.empty()) data += "," + extra;
    unsigned long flags = (opts.suid ? 0 : MS_NOSUID) | (opts.dev ? 0 : MS_NODEV) |
                          (opts.exec ? 0 : MS_NOEXEC) | opts.atime_flags |
                          (opts.read_only ? MS_RDONLY : 0);
    std::string type = "fuse." + opts.subtype;
    if (::mount(opts.fsname.c_str(), m.mountpoint_.c_str(), type.c_str(), flags,
                data.c_str()) == 0) {
      m.privileged_ = true;
      m.mounted_ = true;
      m.device_ = device_of(m.mountpoint_);
      return m;
    }
    int merr = errno;
    if (merr != EPERM) {
      *why = fmt::format("mount(2) failed: {}", std::strerror(merr));
      return Errno(merr);
    }
  }

  // Unprivileged: fusermount3 opens /dev/fuse, mounts, and sends us the fd.
  m.fd_.reset();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return last_errno();
  UniqueFd ours(sv[0]), theirs(sv[1]);
  ::fcntl(ours.get(), F_SETFD, FD_CLOEXEC);
  std::string fopts = fmt::format("fsname={},subtype={}", opts.fsname, opts.subtype);
  if (!extra.empty()) fopts += "," + extra;
  if (opts.read_only) fopts += ",ro";
  fopts += opts.dev ? ",dev" : ",nodev";
  fopts += opts.suid ? ",suid" : ",nosuid";
  if (!opts.exec) fopts += ",noexec";
  if (opts.atime_flags & MS_NOATIME) fopts += ",noatime";
  if (opts.atime_flags & MS_STRICTATIME) fopts += ",strictatime";
  if (opts.atime_flags & MS_NODIRATIME) fopts += ",nodiratime";
  if (opts.atime_flags & MS_LAZYTIME) fopts += ",lazytime";
  auto rc = run_fusermount({"-o", fopts, "--", m.mountpoint_}, theirs.get());
  theirs.reset();
  if (!rc || *rc != 0) {
    *why = rc ? fmt::format("not permitted: mount(2) needs CAP_SYS_ADMIN and "
                            "fusermount3 failed (exit {})", *rc)
              : fmt::format("cannot run fusermount3: {}", rc.error().message());
    return Errno(EPERM);
  }
  auto fd = receive_fd(ours.get());
  if (!fd) {
    *why = "fusermount3 did not pass back the /dev/fuse descriptor";
    return fd.error();
  }
  m.fd_ = std::move(*fd);
  m.mounted_ = true;
  m.device_ = device_of(m.mountpoint_);
  return m;
}

FuseMount& FuseMount::operator=(FuseMount&& o) noexcept {
  if (this != &o) {
    unmount();
    fd_ = std::move(o.fd_);
    mountpoint_ = std::move(o.mountpoint_);
    privileged_ = o.privileged_;
    mounted_ = std::exchange(o.mounted_, false);
    device_ = o.device_;
  }
  return *this;
}

FuseMount::~FuseMount() { unmount(); }

void FuseMount::unmount() {
  if (!mounted_) return;
  mounted_ = false;
  if (privileged_) {
    ::umount2(mountpoint_.c_str(), MNT_DETACH);
  } else {
    (void)run_fusermount({"-u", "-z", "--", mountpoint_}, -1);
  }
}

Result<void> unmount_path(const std::string& mountpoint, bool lazy,
                          std::string* why) {
  std::string c = canonical(mountpoint);
  const MountInfo* found = nullptr;
  auto mounts = read_mountinfo();
  for (auto& m : mounts)
    if (m.mountpoint == c) found = &m;  // the last one is the top of the stack
  if (!found) {
    *why = "not mounted";
    return Errno(EINVAL);
  }
  if (found->fstype.rfind("fuse", 0) != 0) {
    *why = fmt::format("not a FUSE mount (type {})", found->fstype);
    return Errno(EINVAL);
  }
  if (::umount2(c.c_str(), lazy ? MNT_DETACH : 0) == 0) return {};
  int e = errno;
  if (e == EPERM) {
    std::vector<std::string> args{"-u"};
    if (lazy) args.push_back("-z");
    args.push_back("--");
    args.push_back(c);
    auto rc = run_fusermount(args, -1);
    if (rc && *rc == 0) return {};
    *why = "not permitted (fusermount3 -u failed)";
    return Errno(EPERM);
  }
  *why = e == EBUSY ? "mount is busy (files open; try --lazy)"
                    : std::strerror(e);
  return Errno(e);
}

}  // namespace zest::transport
