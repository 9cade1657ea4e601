#include "host/serve.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "base/log.h"
#include "host/mount_options.h"
#include "layout/channel_server.h"
#include "server/session.h"
#include "transport/mount.h"
#include "transport/uring_queue.h"

namespace zest::host {
namespace {

void error(const std::string& what) { fmt::print(stderr, "zest: {}\n", what); }

// FUSE over io_uring needs the fuse module's enable_uring parameter. As
// root we turn it on (and say so); otherwise transport=uring fails here,
// before anything is mounted, and auto settles for /dev/fuse.
bool prepare_transport(ServerConfig* cfg) {
  if (cfg->transport == "dev") return true;
  bool strict = cfg->transport == "uring";
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
      cfg->transport = "dev";
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
  cfg->transport = "dev";
  return true;
}

// Serves an existing mount until it is unmounted or a stop signal comes.
int serve(transport::FuseMount& mount, Instance& inst, const ServerConfig& cfg) {
  server::SessionOptions so;
  so.threads = cfg.threads;
  so.debug = cfg.debug;
  so.spin_ns = uint64_t(cfg.spin_us) * 1000;
  so.transport = cfg.transport == "uring"  ? server::Transport::kUring
                 : cfg.transport == "auto" ? server::Transport::kAuto
                                           : server::Transport::kDev;
  so.uring_depth = cfg.uring_depth;
  so.direct_io = cfg.direct_io;
  server::Session session(*inst.fs, so);
  // Layouts: the client channel for direct access (docs/direct.md), on a
  // file system that offers them and stores files in a pool.
  std::unique_ptr<layout::ChannelServer> channel;
  if (cfg.layouts && inst.fs->layouts() && !inst.pool_path.empty()) {
    layout::ChannelOptions co;
    co.pool_path = inst.pool_path;
    co.pool_size = inst.pool_size;
    co.persist_msync = inst.pool_needs_msync;
    co.fs_dev = mount.device();
    co.recall_timeout = std::chrono::milliseconds(cfg.recall_ms);
    std::string why;
    auto c = layout::ChannelServer::start(
        *inst.fs->layouts(), co,
        [&session](fs::Ino ino, int64_t off, int64_t len) {
          (void)session.notify_inval_inode(ino, off, len);
        },
        &why);
    if (c) {
      channel = std::move(*c);
      session.set_access_gate(channel->gate());
    } else {
      log_warn("no direct access on {}: {}", mount.mountpoint(), why);
    }
  }
  auto r = session.serve(mount);
  channel.reset();  // before the file system: it hands back deferred blocks
  // The file system goes before the session: pending async replies still
  // complete through the session while the file system shuts down.
  inst.fs.reset();
  if (!r) {
    log_error("{}: serving failed: {}", mount.mountpoint(), r.error().message());
    return 1;
  }
  return 0;
}

// The daemon's stdin and stdout go to /dev/null; its log to --log-file
// (stderr appended there) or to syslog.
bool detach_output(const ServerConfig& cfg, const std::string& ident) {
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int err = devnull;
  if (!cfg.log_file.empty()) {
    err = ::open(cfg.log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (err < 0) return false;
  } else {
    log_to_syslog(ident.c_str());
  }
  if (devnull >= 0) {
    ::dup2(devnull, STDIN_FILENO);
    ::dup2(devnull, STDOUT_FILENO);
  }
  if (err >= 0) ::dup2(err, STDERR_FILENO);
  if (err > STDERR_FILENO && err != devnull) ::close(err);
  if (devnull > STDERR_FILENO) ::close(devnull);
  return true;
}

}  // namespace

int mount_and_serve(const Plugin& plugin, MountRequest req) {
  ServerConfig& cfg = req.server;
  if (cfg.debug) {
    cfg.foreground = true;
    set_log_level(LogLevel::Debug);
  }
  if (req.mountpoint.empty()) {
    error("mount: no mountpoint given");
    return 2;
  }
  if (plugin.source == Plugin::Source::kRequired && req.source.empty()) {
    error(fmt::format("mount: {} needs a {}: {} MOUNTPOINT", plugin.name, plugin.source_name,
                      plugin.source_name));
    return 2;
  }
  if (plugin.source == Plugin::Source::kNone && !req.source.empty()) {
    error(fmt::format("mount: {} takes no {} (got '{}')", plugin.name, plugin.source_name,
                      req.source));
    return 2;
  }
  // Absolute, for what the server opens after it left this directory
  // (the client channel opens the pool again for each client).
  std::error_code ec;
  if (!req.source.empty() && plugin.source != Plugin::Source::kNone) {
    if (auto abs = std::filesystem::absolute(req.source, ec); !ec)
      req.source = abs.lexically_normal().string();
  }

  transport::MountOptions mo;
  mo.subtype = "zest";
  // allow_other needs root, or user_allow_other in /etc/fuse.conf for
  // fusermount3: on by default only for root.
  mo.allow_other = ::geteuid() == 0;
  MountConfig mc;
  std::string why;
  if (!sort_options(split_options(req.options), &mo, &cfg, &mc.options, &why)) {
    error("mount: " + why);
    return 2;
  }
  if (cfg.debug) cfg.foreground = true;
  if (plugin.options_help.empty() && !mc.options.empty()) {
    error(fmt::format("mount: unknown option '{}' ({} takes no options of its own)",
                      mc.options.front(), plugin.name));
    return 2;
  }
  // The cheap checks first, so "already mounted" is said before a pool that
  // the running server holds is reported as busy.
  if (::access("/dev/fuse", F_OK) != 0) {
    error("mount: /dev/fuse does not exist (load the fuse module: modprobe fuse)");
    return 1;
  }
  if (auto r = transport::check_mountpoint(req.mountpoint, &why); !r) {
    error(fmt::format("mount: {}: {}", req.mountpoint, why));
    return 1;
  }
  if (auto abs = std::filesystem::absolute(req.mountpoint, ec); !ec)
    mc.mountpoint = abs.lexically_normal().string();
  else
    mc.mountpoint = req.mountpoint;
  mc.source = req.source;
  mc.read_only = mo.read_only;
  mc.atime = atime_policy(mo);
  if (!plugin.make) {
    error(fmt::format("mount: file system {} has no factory", plugin.name));
    return 1;
  }

  // Makes the file system and mounts it, in the process that serves it: a
  // daemon forks first, so a file system may start threads when it is made
  // (threads do not survive fork). *err is "" when the reason was printed.
  struct Ready {
    Instance inst;
    transport::FuseMount mount;
  };
  auto prepare = [&](std::string* err) -> std::optional<Ready> {
    std::string why;
    auto made = plugin.make(mc, &why);
    if (!made || !made->fs) {
      *err = fmt::format("mount: {}", !why.empty() ? why
                                      : made       ? std::string("the file system was not made")
                                                   : made.error().message());
      return std::nullopt;
    }
    Ready r{std::move(*made), {}};
    if (mo.fsname == "zest") {
      mo.fsname = !r.inst.fsname.empty() ? r.inst.fsname
                  : !req.source.empty()  ? req.source
                                         : plugin.name;
    }
    if (!prepare_transport(&cfg)) {
      err->clear();
      return std::nullopt;
    }
    auto mount = transport::FuseMount::mount(req.mountpoint, mo, &why);
    if (!mount) {
      *err = fmt::format("mount: {}: {}", req.mountpoint, why);
      return std::nullopt;
    }
    r.mount = std::move(*mount);
    return r;
  };

  if (cfg.foreground) {
    std::string err;
    auto ready = prepare(&err);
    if (!ready) {
      if (!err.empty()) error(err);
      return 1;
    }
    return serve(ready->mount, ready->inst, cfg);
  }

  // Daemon: the child makes the file system, mounts and reports back
  // through a pipe, so the parent exits only once the mount exists (or with
  // the child's error).
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
    if (msg.rfind("ok ", 0) != 0) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (msg.rfind("error ", 0) == 0) {
        if (msg.size() > 6) error(msg.substr(6));
      } else {
        error("mount: the server exited before mounting");
      }
      return 1;
    }
    std::string where = msg.substr(3);
    if (cfg.announce)
      fmt::print("zest: {} mounted on {} (server pid {})\n"
                 "      unmount with: zest umount {}\n",
                 plugin.name, where, pid, where);
    return 0;
  }
  ::close(pipefd[0]);
  ::setsid();
  std::string err;
  auto ready = prepare(&err);
  std::string report;
  if (!ready) {
    report = "error " + err;
  } else if (!detach_output(cfg, "zest-" + plugin.name)) {
    report = fmt::format("error mount: --log-file {}: {}", cfg.log_file, std::strerror(errno));
    ready->mount.unmount();
  } else {
    report = "ok " + ready->mount.mountpoint();
  }
  (void)!::write(pipefd[1], report.data(), report.size());
  ::close(pipefd[1]);
  if (!ready || report.rfind("ok ", 0) != 0) ::_exit(1);
  log_info("serving {} on {} (pid {})", plugin.name, ready->mount.mountpoint(), ::getpid());
  (void)!::chdir("/");
  int status = serve(ready->mount, ready->inst, cfg);
  log_info("{} on {} stopped", plugin.name, req.mountpoint);
  ::_exit(status);
}

}  // namespace zest::host
