// The file systems the `zest` command can mount, by name, and how their
// -o options are parsed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "zest/result.h"
#include "zest/fs/atime.h"
#include "zest/fs/filesystem.h"

namespace zest::tools {

struct FsChoice {
  std::unique_ptr<fs::FileSystem> fs;
  std::string fsname;  // shown in /proc/mounts
};

// Names accepted by --fs, the default first.
std::vector<std::string> fs_names();
const char* default_fs();

// Builds file system `name` for SOURCE (may be empty) with the fs-specific
// options `opts` (what -o left after the mount options), read-only or not,
// updating atime as `atime` says (mirrorfs leaves atime to its backing
// file system). On error, *why says what is wrong.
Result<FsChoice> make_fs(const std::string& name, const std::string& source,
                         const std::vector<std::string>& opts, bool read_only,
                         const fs::AtimePolicy& atime, std::string* why);

// Where `zest` with no arguments keeps its pool: /var/lib/zest/default.pool
// for root, else $XDG_DATA_HOME (or ~/.local/share)/zest/default.pool.
std::string default_pool_path();

// A short description of each file system's options, for --help.
std::string fs_options_help();

}  // namespace zest::tools
