// zest: mount, unmount, make, check and describe zest file systems.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "tools/commands.h"

int main(int argc, char** argv) {
  // `zest run [--] COMMAND ...`: the command's arguments are its own.
  if (argc >= 3 && std::string(argv[1]) == "run" && std::string(argv[2]) != "--help" &&
      std::string(argv[2]) != "-h")
    return zest::tools::run_program(std::vector<std::string>(argv + 2, argv + argc));
  CLI::App app{"zest: file systems in user space at kernel speed", "zest"};
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  app.require_subcommand(0, 1);
  auto run_mount = zest::tools::add_mount_command(app);
  auto run_umount = zest::tools::add_umount_command(app);
  auto run_mkfs = zest::tools::add_mkfs_command(app);
  auto run_fsck = zest::tools::add_fsck_command(app);
  auto run_stat = zest::tools::add_stat_command(app);
  auto run_run = zest::tools::add_run_command(app);
  app.footer("With no arguments, zest mounts the default file system on the "
             "default mountpoint.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (app.got_subcommand("mount")) return run_mount();
  if (app.got_subcommand("umount")) return run_umount();
  if (app.got_subcommand("mkfs")) return run_mkfs();
  if (app.got_subcommand("fsck")) return run_fsck();
  if (app.got_subcommand("stat")) return run_stat();
  if (app.got_subcommand("run")) return run_run();
  return zest::tools::run_default_mount();
}
