#include "bench/mounts.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <thread>
#include <utility>

#include "base/fd.h"

namespace zest::bench {

volatile int g_interrupted = 0;
volatile int g_stalled = 0;
std::atomic<uint64_t> g_progress{0};

// ---- ScratchDir ------------------------------------------------------------

Outcome<ScratchDir> ScratchDir::create(const std::string& parent) {
  std::string tmpl = parent + "/zest-bench.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return sys_failure("mkdtemp", tmpl);
  ScratchDir d;
  d.path_ = tmpl;
  return d;
}

ScratchDir::ScratchDir(ScratchDir&& o) noexcept
    : path_(std::exchange(o.path_, {})),
      dirs_(std::move(o.dirs_)),
      files_(std::move(o.files_)) {}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  for (auto it = files_.rbegin(); it != files_.rend(); ++it)
    unlink(it->c_str());
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) rmdir(it->c_str());
  if (rmdir(path_.c_str()) != 0) {
    fmt::print(stderr, "zest-bench: note: could not remove {}: {}\n", path_,
               std::strerror(errno));
  }
}

Outcome<std::string> ScratchDir::make_dir(const std::string& name) {
  std::string p = path_ + "/" + name;
  if (mkdir(p.c_str(), 0755) != 0) return sys_failure("mkdir", p);
  dirs_.push_back(p);
  return p;
}

std::string ScratchDir::file(const std::string& name) {
  std::string p = path_ + "/" + name;
  files_.push_back(p);
  return p;
}

// ---- mount table -----------------------------------------------------------

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') octal = false;
        v = v * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(char(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string read_whole(const char* path) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  std::string out;
  if (!fd) return out;
  char buf[16384];
  while (true) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

std::string find_fusermount() {
  for (const char* p : {"/usr/bin/fusermount3", "/bin/fusermount3",
                        "/usr/local/bin/fusermount3"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return {};
}

}  // namespace

std::optional<std::string> mount_device(const std::string& mountpoint) {
  std::string table = read_whole("/proc/self/mountinfo");
  std::string_view rest(table);
  std::optional<std::string> found;
  while (!rest.empty()) {
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view{}
                                         : rest.substr(eol + 1);
    // Fields: id parent major:minor root mountpoint ...
    size_t starts[5] = {0, 0, 0, 0, 0};
    size_t pos = 0;
    bool complete = true;
    for (int field = 1; field < 5; ++field) {
      pos = line.find(' ', pos);
      if (pos == std::string_view::npos) {
        complete = false;
        break;
      }
      starts[field] = ++pos;
    }
    if (!complete) continue;
    size_t end = line.find(' ', starts[4]);
    if (unescape_mountinfo(line.substr(starts[4], end - starts[4])) ==
        mountpoint) {
      // The last entry wins: it is the one on top.
      found = std::string(line.substr(starts[2], starts[3] - 1 - starts[2]));
    }
  }
  return found;
}

bool is_mounted(const std::string& mountpoint) {
  return mount_device(mountpoint).has_value();
}

Outcome<void> unmount(const std::string& mountpoint) {
  if (!is_mounted(mountpoint)) return {};
  if (umount2(mountpoint.c_str(), 0) == 0) return {};
  int first = errno;
  if (umount2(mountpoint.c_str(), MNT_DETACH) == 0) return {};
  // Unprivileged FUSE mounts: fusermount3 is the way out.
  std::string fm = find_fusermount();
  if (!fm.empty()) {
    auto child = ChildProcess::spawn({fm, "-u", "-z", mountpoint}, "/dev/null");
    if (child.ok() && child->wait().ok()) return {};
  }
  return sys_failure("umount2", mountpoint, first);
}

// ---- programs --------------------------------------------------------------

std::string find_program(const std::string& name) {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin",
                          "/usr/local/sbin", "/usr/local/bin"}) {
    std::string p = std::string(dir) + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

Outcome<void> run_program(const std::vector<std::string>& argv,
                          const std::string& log_path) {
  auto child = ChildProcess::spawn(argv, log_path);
  if (!child) return child.failure();
  if (auto r = child->wait(); !r) {
    std::string tail = log_tail(log_path, 3);
    return Failure{fmt::format("{} {}{}{}", argv[0], r.error(),
                               tail.empty() ? "" : ": ", tail)};
  }
  return {};
}

// ---- KernelMount -----------------------------------------------------------

Outcome<KernelMount> KernelMount::tmpfs(const std::string& dir) {
  if (::mount("zest-bench", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=0755") != 0) {
    return sys_failure("mount tmpfs on", dir);
  }
  KernelMount m;
  m.dir_ = dir;
  return m;
}

Outcome<KernelMount> KernelMount::mount(const std::string& source,
                                        const std::string& dir,
                                        const std::string& fstype) {
  if (::mount(source.c_str(), dir.c_str(), fstype.c_str(), MS_NOSUID | MS_NODEV,
              nullptr) != 0) {
    return sys_failure("mount " + fstype + " " + source + " on", dir);
  }
  KernelMount m;
  m.dir_ = dir;
  return m;
}

KernelMount::KernelMount(KernelMount&& o) noexcept
    : dir_(std::exchange(o.dir_, {})) {}

KernelMount::~KernelMount() {
  if (dir_.empty()) return;
  if (auto r = unmount(dir_); !r) {
    fmt::print(stderr, "zest-bench: {}\n", r.error());
  }
}

// ---- LoopDevice ------------------------------------------------------------

Outcome<LoopDevice> LoopDevice::attach(const std::string& image,
                                       const std::string& log_path) {
  std::string losetup = find_program("losetup");
  if (losetup.empty()) return Failure{"losetup not found (util-linux)"};
  if (access("/dev/loop-control", R_OK | W_OK) != 0) {
    return sys_failure("access", "/dev/loop-control");
  }
  // losetup prints the device on stdout, which goes to the (fresh) log.
  unlink(log_path.c_str());
  if (auto r = run_program({losetup, "--find", "--show", image}, log_path);
      !r) {
    return r.failure();
  }
  std::string dev = log_tail(log_path, 1);
  while (!dev.empty() && (dev.back() == '\n' || dev.back() == ' '))
    dev.pop_back();
  if (dev.rfind("/dev/loop", 0) != 0) {
    return Failure{
        fmt::format("losetup --find --show {}: unexpected output "
                    "'{}'",
                    image, dev)};
  }
  LoopDevice d;
  d.device_ = dev;
  d.losetup_ = losetup;
  return d;
}

LoopDevice::LoopDevice(LoopDevice&& o) noexcept
    : device_(std::exchange(o.device_, {})), losetup_(std::move(o.losetup_)) {}

LoopDevice::~LoopDevice() {
  if (device_.empty()) return;
  if (auto r = run_program({losetup_, "-d", device_}, "/dev/null"); !r) {
    fmt::print(stderr, "zest-bench: detaching {}: {}\n", device_, r.error());
  }
}

// ---- FuseMount -------------------------------------------------------------

Outcome<FuseMount> FuseMount::start(const std::vector<std::string>& argv,
                                    const std::string& mountpoint,
                                    const std::string& log_path,
                                    std::chrono::milliseconds timeout) {
  FuseMount m;
  m.mountpoint_ = mountpoint;
  m.log_path_ = log_path;
  auto child = ChildProcess::spawn(argv, log_path);
  if (!child) return child.failure();
  m.server_ = std::move(child.value());

  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!is_mounted(mountpoint)) {
    if (auto how = m.server_.poll_exit()) {
      std::string tail = log_tail(log_path);
      return Failure{fmt::format("{} {} before mounting {}{}{}", argv[0], *how,
                                 mountpoint, tail.empty() ? "" : ": ", tail)};
    }
    if (g_interrupted) {
      m.server_.stop(std::chrono::milliseconds(0));
      return Failure{"interrupted"};
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      m.server_.stop(std::chrono::milliseconds(0));
      std::string tail = log_tail(log_path);
      return Failure{fmt::format("{} did not mount {} within {} ms{}{}",
                                 argv[0], mountpoint, timeout.count(),
                                 tail.empty() ? "" : ": ", tail)};
      // ~FuseMount stops the server.
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return m;
}

FuseMount::FuseMount(FuseMount&& o) noexcept
    : mountpoint_(std::exchange(o.mountpoint_, {})),
      log_path_(std::move(o.log_path_)),
      server_(std::move(o.server_)) {}

FuseMount::~FuseMount() {
  if (mountpoint_.empty()) return;
  if (auto r = unmount(mountpoint_); !r) {
    fmt::print(stderr, "zest-bench: {}\n", r.error());
  }
  // After the unmount the server reads ENODEV and exits by itself.
  std::string how = server_.stop(std::chrono::seconds(5));
  if (!how.empty() && how != "exited with status 0") {
    fmt::print(stderr, "zest-bench: server for {} {}\n", mountpoint_, how);
  }
}

}  // namespace zest::bench
