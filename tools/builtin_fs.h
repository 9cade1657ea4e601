// The file systems built into the `zest` command. They are zest::Plugins
// registered like any other (zest/plugin.h), so `zest mount --fs NAME`
// treats a built-in and a plugin loaded from a shared object the same way.
#pragma once

#include <string>

namespace zest::tools {

// Registers pmfs (when built), memfs and mirrorfs, pmfs first.
void register_builtin_file_systems();
const char* default_fs();

// Where `zest` with no arguments keeps its pool: /var/lib/zest/default.pool
// for root, else $XDG_DATA_HOME (or ~/.local/share)/zest/default.pool.
std::string default_pool_path();

}  // namespace zest::tools
