// Mounting and serving one file system: the part of every zest program
// after its command line was parsed (zest::main, `zest mount`, mount.zest).
#pragma once

#include <string>
#include <vector>

#include "host/server_config.h"
#include "zest/plugin.h"

namespace zest::host {

struct MountRequest {
  std::string source;      // "" when none
  std::string mountpoint;
  std::vector<std::string> options;  // -o, each possibly comma separated
  ServerConfig server;
};

// Checks the request, builds the file system with plugin.make, mounts it
// and serves it: in the foreground until it is unmounted, or as a daemon
// (this returns in the parent once the mount exists). Messages name the
// mountpoint or the source. Returns an exit status: 0, 1 (could not mount
// or serve), 2 (bad request).
int mount_and_serve(const Plugin& plugin, MountRequest req);

}  // namespace zest::host
