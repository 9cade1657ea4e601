// The -o options of a zest mount: which belong to the kernel mount (as
// mount(8) names them), which to the server, which mount(8) and systemd
// keep for themselves (ignored here, as mount helpers do), and which are
// left for the file system.
#pragma once

#include <string>
#include <vector>

#include "host/server_config.h"
#include "transport/mount.h"
#include "zest/fs/atime.h"

namespace zest::host {

// "a,b" "c" -> "a" "b" "c" (empty items dropped).
std::vector<std::string> split_options(const std::vector<std::string>& in);

// Sorts `all` (already split) into the kernel's mount options (*mo), the
// server's (*server) and the file system's (*fs_opts, in order). False with
// *why set on a bad value or an option that needs root.
bool sort_options(const std::vector<std::string>& all, transport::MountOptions* mo,
                  ServerConfig* server, std::vector<std::string>* fs_opts,
                  std::string* why);

// The atime policy the file system applies, from the mount's atime flags.
fs::AtimePolicy atime_policy(const transport::MountOptions& mo);

// What --help says about the options sort_options takes.
const char* mount_options_help();

}  // namespace zest::host
