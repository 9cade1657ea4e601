// zest mount / zest umount, the mount(8) helper (mount.zest) and the
// libfuse-style `zest SOURCE MOUNTPOINT -o OPTS` that mount.fuse3 runs.
// Mounting itself is the host's (host/serve.h): the same for the built-in
// file systems and for plugins.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "host/main_options.h"
#include "host/mount_options.h"
#include "host/serve.h"
#include "tools/builtin_fs.h"
#include "tools/commands.h"
#include "transport/mount.h"
#include "zest/plugin.h"
#if ZEST_HAVE_PMFS
#include "pmfs/format.h"
#endif

namespace zest::tools {
namespace {

constexpr uint64_t kDefaultPoolSize = 1ull << 30;

void error(const std::string& what) { fmt::print(stderr, "zest: {}\n", what); }

struct MountCommand {
  std::string fs_type = default_fs();
  std::vector<std::string> positional;  // [SOURCE] MOUNTPOINT
  host::MountRequest req;
  std::string durability;
};

int run_mount(const std::string& fs_type, const std::vector<std::string>& pos,
              host::MountRequest req) {
  std::string why;
  const Plugin* p = find_plugin(fs_type, &why);
  if (!p) {
    error("mount: " + why);
    return 2;
  }
  if (!host::place_positionals(*p, pos, &req, &why)) {
    error("mount: " + why);
    return 2;
  }
  return host::mount_and_serve(*p, std::move(req));
}

std::string file_systems_help() {
  std::string s = host::mount_options_help();
  for (const std::string& n : plugin_names()) {
    std::string why;
    const Plugin* p = find_plugin(n, &why);
    s += fmt::format("{} ({}{}{}) options:\n{}\n", n, p->summary,
                     p->source == Plugin::Source::kNone ? "" : "; SOURCE: ",
                     p->source == Plugin::Source::kNone ? "" : p->source_name, p->options_help);
  }
  s += "Other file systems: --fs NAME loads libzest-fs-NAME.so from $ZEST_PLUGIN_PATH or the\n"
       "plugin directory, --fs PATH a plugin shared object (zest/plugin.h).";
  return s;
}

}  // namespace

std::function<int()> add_mount_command(CLI::App& app) {
  auto args = std::make_shared<MountCommand>();
  CLI::App* cmd = app.add_subcommand(
      "mount", "Mount a zest file system: zest mount [--fs TYPE] [SOURCE] MOUNTPOINT");
  cmd->add_option("--fs,-t", args->fs_type,
                  "File system: pmfs (default), memfs, mirrorfs, or a plugin's name or path");
  cmd->add_option("args", args->positional, "[SOURCE] MOUNTPOINT")->expected(1, 2)->required();
  host::add_server_options(*cmd, &args->req);
  cmd->add_option("--durability", args->durability,
                  "pmfs: auto (pmem, else CPU cache flushes: survives a server crash), "
                  "cache-line, or page (msync: survives a power cut, slower)");
  cmd->footer(file_systems_help());
  return [args]() {
    if (!args->durability.empty()) args->req.options.push_back("durability=" + args->durability);
    args->req.server.announce = true;
    return run_mount(args->fs_type, args->positional, args->req);
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

int run_mount_helper(int argc, char** argv) {
  // mount(8) runs /sbin/mount.zest SOURCE MOUNTPOINT [-sfnvN] [-o OPTS]
  // [-t TYPE]: -s sloppy, -f fake, -n no mtab, -v verbose, -N namespace.
  // The file system is -o fs=NAME (default pmfs), or the subtype of -t
  // zest.NAME.
  std::vector<std::string> pos, opts;
  std::string fs_type = default_fs();
  bool fake = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      fmt::print("Usage: mount.zest SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]\n"
                 "The mount(8) helper for type zest: mount -t zest POOL MOUNTPOINT, or an\n"
                 "/etc/fstab line such as\n"
                 "  /var/lib/zest/default.pool /mnt/zest zest defaults,noauto 0 0\n"
                 "  memfs /mnt/scratch zest fs=memfs 0 0\n"
                 "-o fs=NAME picks the file system (default {}); the other options are\n"
                 "zest mount's (zest mount --help).\n",
                 default_fs());
      return 0;
    }
    if ((a == "-o" || a == "-t" || a == "-N") && i + 1 < argc) {
      std::string v = argv[++i];
      if (a == "-o") opts.push_back(v);
      if (a == "-t" && v.rfind("zest.", 0) == 0) fs_type = v.substr(5);
      continue;
    }
    if (a.size() > 1 && a[0] == '-') {
      for (char c : a.substr(1)) {
        if (c == 'f') fake = true;
        else if (c == 'v') verbose = true;
        else if (c != 's' && c != 'n') {
          fmt::print(stderr, "mount.zest: unknown option -{}\n", c);
          return 2;  // mount(8): usage error... but helpers use 1; both fail
        }
      }
      continue;
    }
    pos.push_back(a);
  }
  if (pos.size() != 2) {
    fmt::print(stderr, "mount.zest: expected SOURCE MOUNTPOINT (mount.zest --help)\n");
    return 1;
  }
  host::MountRequest req;
  std::vector<std::string> rest;
  for (const std::string& o : host::split_options(opts)) {
    if (o.rfind("fs=", 0) == 0) fs_type = o.substr(3);
    else rest.push_back(o);
  }
  req.options = rest;
  if (verbose)
    fmt::print(stderr, "mount.zest: {} {} on {} -o {}\n", fs_type, pos[0], pos[1],
               fmt::join(rest, ","));
  if (fake) return 0;
  // A file system that takes no SOURCE accepts "none" or its name there
  // (fstab always has a first column).
  int rc = run_mount(fs_type, pos, std::move(req));
  // mount(8) helpers exit with mount's codes: 1 incorrect invocation or
  // permissions, 32 mount failure.
  return rc == 0 ? 0 : rc == 2 ? 1 : 32;
}

int run_libfuse_style(int argc, char** argv) {
  // mount.fuse3 runs `zest SOURCE MOUNTPOINT -o OPTS` for type fuse.zest;
  // the file system is -o fs=NAME as for mount.zest.
  std::vector<std::string> pos, opts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o" && i + 1 < argc) opts.push_back(argv[++i]);
    else if (a.rfind("-o", 0) == 0 && a.size() > 2) opts.push_back(a.substr(2));
    else pos.push_back(a);
  }
  std::string fs_type = default_fs();
  host::MountRequest req;
  for (const std::string& o : host::split_options(opts)) {
    if (o.rfind("fs=", 0) == 0) fs_type = o.substr(3);
    else req.options.push_back(o);
  }
  return run_mount(fs_type, pos, std::move(req));
}

int run_default_mount() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string mp = fmt::format("{}/zest", runtime && *runtime ? runtime : "/tmp");
  if (::mkdir(mp.c_str(), 0755) != 0 && errno != EEXIST) {
    error(fmt::format("cannot create default mountpoint {}: {}", mp, std::strerror(errno)));
    return 1;
  }
  std::vector<std::string> pos{mp};
#if ZEST_HAVE_PMFS
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
    fmt::print("zest: created a {} GiB pmfs pool at {} (sparse)\n", kDefaultPoolSize >> 30,
               pool);
  }
  pos.insert(pos.begin(), pool);
#endif
  host::MountRequest req;
  req.server.announce = true;
  return run_mount(default_fs(), pos, std::move(req));
}

}  // namespace zest::tools
