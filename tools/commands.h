// Subcommands of the `zest` tool. Each registers itself on the CLI11 app
// and returns the exit code of its run.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace zest::tools {

// Adds `mount` and `umount`; the returned functions run them after parsing.
std::function<int()> add_mount_command(CLI::App& app);
std::function<int()> add_umount_command(CLI::App& app);
std::function<int()> add_mkfs_command(CLI::App& app);
std::function<int()> add_fsck_command(CLI::App& app);
std::function<int()> add_stat_command(CLI::App& app);
// `zest run CMD...`: CMD with libzest-preload.so (docs/preload.md).
std::function<int()> add_run_command(CLI::App& app);
// `zest export MOUNTPOINT`: serve a zest mount over NFS through NFS-Ganesha
// (docs/export.md).
std::function<int()> add_export_command(CLI::App& app);
int run_program(std::vector<std::string> args);  // execs; returns only on failure
// `zest` with no arguments: mount the default file system on the default
// mountpoint, as a daemon, and say where and how to unmount.
int run_default_mount();
// mount(8)'s helper: argv[0] is mount.zest (docs/mounting.md).
int run_mount_helper(int argc, char** argv);
// `zest SOURCE MOUNTPOINT -o OPTS`, as mount.fuse3 runs it for fuse.zest.
int run_libfuse_style(int argc, char** argv);

}  // namespace zest::tools
