// zest mount / zest umount.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/log.h"
#include "layout/channel_server.h"
#include "pmfs/pmfs.h"
#include "server/session.h"
#include "tools/commands.h"
#include "tools/fs_registry.h"
#include "transport/mount.h"
#include "transport/uring_queue.h"
#include "pmfs/format.h"

namespace zest::tools {
namespace {

constexpr uint64_t kDefaultPoolSize = 1ull << 30;

struct MountArgs {
  std::string fs_type = default_fs();
  std::vector<std::string> positional;  // [SOURCE] MOUNTPOINT
  bool foreground = false;
  unsigned threads = 0;
  unsigned spin_us = 0;
  // io_uring where the kernel offers it: on the 2-vCPU VM it answered a
  // 4 KiB read in 8.5 us against 52 us over /dev/fuse on an idle machine,
  // ~5-10% slower under load, and scales with threads (docs/benchmarks.md).
  std::string transport = "auto";
  unsigned uring_depth = 8;
  std::string durability;
  std::vector<std::string> options;  // -o, each possibly comma separated
  bool debug = false;
  bool direct_io = false;  // -o direct_io: no page cache for buffered opens
  // -o nolayouts: no client channel (libzest-direct then uses the kernel
  // path); layout_recall_ms=N: how long a recalled lease holder gets.
  bool layouts = true;
  unsigned recall_ms = 100;
};

void error(const std::string& what) { fmt::print(stderr, "zest: {}\n", what); }

std::vector<std::string> split_options(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const std::string& s : in) {
    size_t start = 0;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      if (comma > start) out.push_back(s.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return out;
}

// Splits -o into kernel mount options and file-system options.
bool parse_mount_options(const std::vector<std::string>& all,
                         transport::MountOptions* mo,
                         std::vector<std::string>* fs_opts, std::string* why) {
  for (const std::string& o : all) {
    if (o == "ro") {
      mo->read_only = true;
    } else if (o == "rw") {
      mo->read_only = false;
    } else if (o == "allow_other") {
      mo->allow_other = true;
    } else if (o == "noallow_other" || o == "private") {
      mo->allow_other = false;
    } else if (o == "default_permissions") {
      mo->default_permissions = true;
    } else if (o == "dev" || o == "suid") {
      // As fusermount3 and the kernel's own rules for user mounts: device
      // nodes and set-id programs on a file system a user serves would give
      // that user the machine.
      if (::geteuid() != 0) {
        *why = fmt::format("-o {}: only root may mount with {}", o,
                           o == "dev" ? "device nodes usable" : "set-id programs honoured");
        return false;
      }
      (o == "dev" ? mo->dev : mo->suid) = true;
    } else if (o == "nodev") {
      mo->dev = false;
    } else if (o == "nosuid") {
      mo->suid = false;
    } else if (o == "exec" || o == "noexec") {
      mo->exec = o == "exec";
    } else if (o == "noatime") {
      mo->atime_flags = (mo->atime_flags & ~MS_STRICTATIME) | MS_NOATIME;
    } else if (o == "relatime" || o == "atime") {
      mo->atime_flags &= ~(MS_NOATIME | MS_STRICTATIME);
    } else if (o == "strictatime") {
      mo->atime_flags = (mo->atime_flags & ~MS_NOATIME) | MS_STRICTATIME;
    } else if (o == "nodiratime" || o == "diratime") {
      mo->atime_flags = o == "nodiratime" ? (mo->atime_flags | MS_NODIRATIME)
                                          : (mo->atime_flags & ~MS_NODIRATIME);
    } else if (o == "lazytime" || o == "nolazytime") {
      mo->atime_flags = o == "lazytime" ? (mo->atime_flags | MS_LAZYTIME)
                                        : (mo->atime_flags & ~MS_LAZYTIME);
    } else if (o.rfind("fsname=", 0) == 0) {
      mo->fsname = o.substr(7);
    } else if (o.rfind("max_read=", 0) == 0) {
      try {
        mo->max_read = static_cast<uint32_t>(std::stoul(o.substr(9)));
      } catch (...) {
        *why = fmt::format("bad value in -o {}", o);
        return false;
      }
    } else {
      fs_opts->push_back(o);
    }
  }
  return true;
}

// FUSE over io_uring needs the fuse module's enable_uring parameter. As
// root we turn it on (and say so); otherwise --transport=uring fails here,
// before anything is mounted, and auto settles for /dev/fuse.
bool prepare_transport(MountArgs* args) {
  if (args->transport == "dev") return true;
  bool strict = args->transport == "uring";
  switch (transport::uring_support()) {
    case transport::UringSupport::kEnabled:
      return true;
    case transport::UringSupport::kAbsent:
      if (strict) {
        error("mount: --transport=uring: this kernel has no FUSE over io_uring "
              "(no /sys/module/fuse/parameters/enable_uring)");
        return false;
      }
      fmt::print(stderr, "zest: this kernel has no FUSE over io_uring; using /dev/fuse\n");
      args->transport = "dev";
      return true;
    case transport::UringSupport::kDisabled:
      break;
  }
  if (::geteuid() == 0) {
    if (auto r = transport::enable_uring(); r) {
      fmt::print(stderr, "zest: enabled FUSE over io_uring "
                         "(wrote Y to /sys/module/fuse/parameters/enable_uring)\n");
      return true;
    } else if (strict) {
      error(fmt::format("mount: --transport=uring: cannot enable FUSE over io_uring: {}",
                        r.error().message()));
      return false;
    }
  } else if (strict) {
    error("mount: --transport=uring: FUSE over io_uring is disabled "
          "(as root: echo Y > /sys/module/fuse/parameters/enable_uring)");
    return false;
  }
  fmt::print(stderr, "zest: FUSE over io_uring is disabled in the kernel; using /dev/fuse\n");
  args->transport = "dev";
  return true;
}

// Runs the server for an already created mount until it is unmounted.
int serve(transport::FuseMount& mount, FsChoice& choice, const MountArgs& args) {
  server::SessionOptions so;
  so.threads = args.threads;
  so.debug = args.debug;
  so.spin_ns = uint64_t(args.spin_us) * 1000;
  so.transport = args.transport == "uring"  ? server::Transport::kUring
                 : args.transport == "auto" ? server::Transport::kAuto
                                            : server::Transport::kDev;
  so.uring_depth = args.uring_depth;
  so.direct_io = args.direct_io;
  server::Session session(*choice.fs, so);
  // Layouts: the client channel for direct access (docs/direct.md), on a
  // file system that offers them and stores files in a pool.
  std::unique_ptr<layout::ChannelServer> channel;
  auto* pm = dynamic_cast<pmfs::PmFs*>(choice.fs.get());
  if (args.layouts && pm && choice.fs->layouts() && !args.positional.empty()) {
    layout::ChannelOptions co;
    co.pool_path = args.positional.front();
    co.pool_size = pm->pool().size();
    co.persist_msync = pm->pool().granularity() == pmem::Granularity::Page;
    co.fs_dev = mount.device();
    co.recall_timeout = std::chrono::milliseconds(args.recall_ms);
    std::string why;
    auto c = layout::ChannelServer::start(
        *choice.fs->layouts(), co,
        [&session](fs::Ino ino, int64_t off, int64_t len) {
          (void)session.notify_inval_inode(ino, off, len);
        },
        &why);
    if (c) {
      channel = std::move(*c);
      session.set_access_gate(channel->gate());
    } else {
      fmt::print(stderr, "zest: no direct access on {}: {}\n", mount.mountpoint(), why);
    }
  }
  auto r = session.serve(mount);
  channel.reset();  // before the file system: it hands back deferred blocks
  // The file system goes before the session: pending async replies still
  // complete through the session while the file system shuts down.
  choice.fs.reset();
  if (!r) {
    error(fmt::format("{}: serving failed: {}", mount.mountpoint(), r.error().message()));
    return 1;
  }
  return 0;
}

int do_mount(MountArgs args, bool announce_default) {
  if (args.debug) set_log_level(LogLevel::Debug);
  std::string source, mountpoint;
  if (args.positional.size() == 1) {
    mountpoint = args.positional[0];
  } else if (args.positional.size() == 2) {
    // Absolute, for what the server opens after it left this directory
    // (the client channel opens the pool again for each client).
    std::error_code ec;
    if (auto abs = std::filesystem::absolute(args.positional[0], ec); !ec)
      args.positional[0] = abs.lexically_normal().string();
    source = args.positional[0];
    mountpoint = args.positional[1];
  } else {
    error("mount: expected [SOURCE] MOUNTPOINT");
    return 2;
  }

  transport::MountOptions mo;
  mo.subtype = "zest";
  // allow_other needs root, or user_allow_other in /etc/fuse.conf for
  // fusermount3: on by default only for root.
  mo.allow_other = ::geteuid() == 0;
  std::vector<std::string> fs_opts;
  std::string why;
  if (!parse_mount_options(split_options(args.options), &mo, &fs_opts, &why)) {
    error("mount: " + why);
    return 2;
  }
  // -o transport=... and uring_depth=... (as in fstab) are ours.
  for (auto it = fs_opts.begin(); it != fs_opts.end();) {
    if (it->rfind("transport=", 0) == 0) {
      args.transport = it->substr(10);
      if (args.transport != "dev" && args.transport != "uring" && args.transport != "auto") {
        error("mount: -o transport= takes dev, uring or auto");
        return 2;
      }
    } else if (*it == "direct_io") {
      args.direct_io = true;
    } else if (*it == "layouts" || *it == "nolayouts") {
      args.layouts = *it == "layouts";
    } else if (it->rfind("layout_recall_ms=", 0) == 0) {
      try {
        args.recall_ms = std::clamp(static_cast<unsigned>(std::stoul(it->substr(17))), 1u, 60000u);
      } catch (...) {
        error("mount: bad value in -o " + *it);
        return 2;
      }
    } else if (it->rfind("uring_depth=", 0) == 0) {
      try {
        args.uring_depth = std::clamp(static_cast<unsigned>(std::stoul(it->substr(12))), 1u, 256u);
      } catch (...) {
        error("mount: bad value in -o " + *it);
        return 2;
      }
    } else {
      ++it;
      continue;
    }
    it = fs_opts.erase(it);
  }
  // The cheap checks first, so "already mounted" is said before a pool that
  // the running server holds is reported as busy.
  if (::access("/dev/fuse", F_OK) != 0) {
    error("mount: /dev/fuse does not exist (load the fuse module: modprobe fuse)");
    return 1;
  }
  if (auto r = transport::check_mountpoint(mountpoint, &why); !r) {
    error(fmt::format("mount: {}: {}", mountpoint, why));
    return 1;
  }
  fs::AtimePolicy atime;
  if (mo.atime_flags & MS_NOATIME) atime.mode = fs::AtimePolicy::Mode::None;
  if (mo.atime_flags & MS_STRICTATIME) atime.mode = fs::AtimePolicy::Mode::Strict;
  atime.dirs = !(mo.atime_flags & MS_NODIRATIME);
  atime.lazy = (mo.atime_flags & MS_LAZYTIME) != 0;
  auto choice = make_fs(args.fs_type, source, fs_opts, mo.read_only, atime, &why);
  if (!choice) {
    error("mount: " + why);
    return 1;
  }
  if (mo.fsname == "zest") mo.fsname = choice->fsname;
  if (!prepare_transport(&args)) return 1;

  if (args.foreground) {
    auto mount = transport::FuseMount::mount(mountpoint, mo, &why);
    if (!mount) {
      error(fmt::format("mount: {}: {}", mountpoint, why));
      return 1;
    }
    return serve(*mount, *choice, args);
  }

  // Daemon: the child mounts and reports back through a pipe, so the parent
  // exits only once the mount exists (or with the child's error).
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    error(fmt::format("mount: pipe: {}", std::strerror(errno)));
    return 1;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    error(fmt::format("mount: fork: {}", std::strerror(errno)));
    return 1;
  }
  if (pid > 0) {
    ::close(pipefd[1]);
    std::string msg;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof(buf))) > 0) msg.append(buf, n);
    ::close(pipefd[0]);
    if (msg.rfind("ok", 0) != 0) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      error(msg.empty() ? "mount: the server exited before mounting" : msg);
      return 1;
    }
    std::string where = msg.substr(3);
    if (announce_default)
      fmt::print("zest: {} mounted on {} (server pid {})\n"
                 "      unmount with: zest umount {}\n",
                 args.fs_type, where, pid, where);
    return 0;
  }
  ::close(pipefd[0]);
  ::setsid();
  auto mount = transport::FuseMount::mount(mountpoint, mo, &why);
  std::string report = mount ? "ok " + mount->mountpoint()
                             : fmt::format("mount: {}: {}", mountpoint, why);
  (void)!::write(pipefd[1], report.data(), report.size());
  ::close(pipefd[1]);
  if (!mount) ::_exit(1);
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDERR_FILENO);
    if (devnull > STDERR_FILENO) ::close(devnull);
  }
  (void)!::chdir("/");
  ::_exit(serve(*mount, *choice, args));
}

}  // namespace

std::function<int()> add_mount_command(CLI::App& app) {
  auto args = std::make_shared<MountArgs>();
  CLI::App* cmd = app.add_subcommand(
      "mount", "Mount a zest file system: zest mount [--fs TYPE] [SOURCE] MOUNTPOINT");
  cmd->add_option("--fs,-t", args->fs_type, "File system type")
      ->check(CLI::IsMember(fs_names()));
  cmd->add_option("args", args->positional, "[SOURCE] MOUNTPOINT")
      ->expected(1, 2)->required();
  cmd->add_flag("-f,--foreground", args->foreground,
                "Stay in the foreground (default: run as a daemon)");
  cmd->add_option("--threads", args->threads,
                  "Worker threads, one /dev/fuse channel each (default: online CPUs)");
  cmd->add_option("--spin-us", args->spin_us,
                  "Microseconds an idle worker keeps polling /dev/fuse before it sleeps "
                  "(saves a wake-up per request under load, costs CPU)");
  cmd->add_option("--transport", args->transport,
                  "How requests reach the server: dev (/dev/fuse), uring (FUSE over "
                  "io_uring, one queue per CPU), or auto (the default: io_uring when the "
                  "kernel offers it, as root turning on the fuse module's enable_uring; "
                  "else /dev/fuse)")
      ->check(CLI::IsMember({"dev", "uring", "auto"}));
  cmd->add_option("--uring-depth", args->uring_depth,
                  "io_uring: requests in flight per CPU queue (default 8)")
      ->check(CLI::Range(1u, 256u));
  cmd->add_option("--durability", args->durability,
                  "pmfs: auto (pmem, else CPU cache flushes: survives a server crash), "
                  "cache-line, or page (msync: survives a power cut, slower)");
  cmd->add_option("-o", args->options,
                  "Options, comma separated: ro, noallow_other, fsname=NAME, "
                  "dev and suid (root only; nodev,nosuid is the default), noexec, "
                  "relatime (default), noatime, strictatime, nodiratime, lazytime, "
                  "max_read=N, transport=dev|uring|auto, uring_depth=N, direct_io (no "
                  "page cache even for buffered opens; shared mappings are then refused), "
                  "nolayouts (no direct access for libzest-direct clients), "
                  "layout_recall_ms=N (how long a client has to return a recalled "
                  "lease, default 100), and the file system's own")
      ->allow_extra_args(false);
  cmd->add_flag("-d,--debug", args->debug, "Log every request (implies -f)");
  cmd->footer(fs_options_help());
  return [args]() {
    if (args->debug) args->foreground = true;
    if (!args->durability.empty()) args->options.push_back("durability=" + args->durability);
    return do_mount(*args, true);
  };
}

std::function<int()> add_umount_command(CLI::App& app) {
  auto mp = std::make_shared<std::string>();
  auto lazy = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("umount", "Unmount a zest file system");
  cmd->add_option("MOUNTPOINT", *mp, "Where it is mounted")->required();
  cmd->add_flag("-l,--lazy", *lazy, "Detach now, finish when no longer busy");
  return [mp, lazy]() {
    std::string why;
    auto r = transport::unmount_path(*mp, *lazy, &why);
    if (!r) {
      error(fmt::format("umount: {}: {}", *mp, why));
      return 1;
    }
    return 0;
  };
}

int run_default_mount() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string mp = fmt::format("{}/zest", runtime && *runtime ? runtime : "/tmp");
  if (::mkdir(mp.c_str(), 0755) != 0 && errno != EEXIST) {
    error(fmt::format("cannot create default mountpoint {}: {}", mp, std::strerror(errno)));
    return 1;
  }
  MountArgs args;
  args.fs_type = default_fs();
  if (args.fs_type == std::string("pmfs")) {
    std::string pool = default_pool_path();
    if (::access(pool.c_str(), F_OK) != 0) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(pool).parent_path(), ec);
      if (ec) {
        error(fmt::format("cannot create the directory of {}: {}", pool, ec.message()));
        return 1;
      }
      pmfs::MkfsOptions o;
      o.root_uid = ::getuid();
      o.root_gid = ::getgid();
      o.root_mode = 0755;
      std::string why;
      if (auto r = pmfs::mkfs(pool, kDefaultPoolSize, o, &why); !r) {
        error(fmt::format("cannot create the default pool {}: {}", pool, why));
        return 1;
      }
      fmt::print("zest: created a {} GiB pmfs pool at {} (sparse)\n",
                 kDefaultPoolSize >> 30, pool);
    }
    args.positional = {pool, mp};
  } else {
    args.positional = {mp};
  }
  return do_mount(args, true);
}

}  // namespace zest::tools
