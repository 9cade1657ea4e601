// The command-line pieces zest::main shares with the zest command.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "host/serve.h"
#include "zest/plugin.h"

namespace zest::host {

// -f, -d, -o, --threads, --transport, --uring-depth, --spin-us, --log-file.
void add_server_options(CLI::App& app, MountRequest* req);

// SOURCE and MOUNTPOINT from the positional arguments as `plugin` takes
// them (one that takes no SOURCE accepts "none" or its own name there, as
// mount.fuse3 and fstab always pass one). False with *why on a wrong count.
bool place_positionals(const Plugin& plugin, const std::vector<std::string>& pos,
                       MountRequest* req, std::string* why);

}  // namespace zest::host
