// zest: mount, unmount, make, check and describe zest file systems.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tools/builtin_fs.h"
#include "tools/commands.h"
#include "zest/main.h"

int main(int argc, char** argv) {
  zest::tools::register_builtin_file_systems();
  std::string self = argc > 0 ? argv[0] : "zest";
  if (self.rfind('/') != std::string::npos) self = self.substr(self.rfind('/') + 1);
  if (self == "mount.zest") return zest::tools::run_mount_helper(argc, argv);
  const std::vector<std::string> subcommands{"mount", "umount", "mkfs", "fsck",
                                             "stat",  "run",    "export"};
  // `zest run [--] COMMAND ...`: the command's arguments are its own.
  if (argc >= 3 && std::string(argv[1]) == "run" && std::string(argv[2]) != "--help" &&
      std::string(argv[2]) != "-h")
    return zest::tools::run_program(std::vector<std::string>(argv + 2, argv + argc));
  // `zest SOURCE MOUNTPOINT [-o OPTS]`: the libfuse convention mount.fuse3
  // uses (type fuse.zest in /etc/fstab).
  if (argc >= 3 && argv[1][0] != '-' &&
      std::find(subcommands.begin(), subcommands.end(), argv[1]) == subcommands.end())
    return zest::tools::run_libfuse_style(argc, argv);
  CLI::App app{"zest: file systems in user space at kernel speed", "zest"};
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  app.set_version_flag("-V,--version", fmt::format("zest {}", zest::version()));
  app.require_subcommand(0, 1);
  auto run_mount = zest::tools::add_mount_command(app);
  auto run_umount = zest::tools::add_umount_command(app);
#if ZEST_HAVE_PMFS
  auto run_mkfs = zest::tools::add_mkfs_command(app);
  auto run_fsck = zest::tools::add_fsck_command(app);
  auto run_stat = zest::tools::add_stat_command(app);
#endif
  auto run_run = zest::tools::add_run_command(app);
  auto run_export = zest::tools::add_export_command(app);
  app.footer("With no arguments, zest mounts the default file system on the "
             "default mountpoint.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (app.got_subcommand("mount")) return run_mount();
  if (app.got_subcommand("umount")) return run_umount();
#if ZEST_HAVE_PMFS
  if (app.got_subcommand("mkfs")) return run_mkfs();
  if (app.got_subcommand("fsck")) return run_fsck();
  if (app.got_subcommand("stat")) return run_stat();
#endif
  if (app.got_subcommand("run")) return run_run();
  if (app.got_subcommand("export")) return run_export();
  return zest::tools::run_default_mount();
}
