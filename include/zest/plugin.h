// zest/plugin.h: how a file system plugs into the zest command line.
//
// A file system is described by a Plugin: its name, its help text and a
// factory that builds one fs::FileSystem per mount from the command line's
// SOURCE and -o options. The same Plugin serves three ways:
//
//   1. its own program:   int main(int c, char** v) { return zest::main(c, v, my_plugin()); }
//   2. the zest command:  zest mount --fs ./libmyfs.so SOURCE MOUNTPOINT
//                         (or --fs myfs, found as libzest-fs-myfs.so on
//                         $ZEST_PLUGIN_PATH or in the installed plugin
//                         directory), once the shared object says
//                         ZEST_PLUGIN(my_plugin);
//   3. built in:          pmfs, memfs and mirrorfs are Plugins registered
//                         with zest::register_plugin() by the zest command.
//
// Everything the server does around the file system (mounting, -o mount
// options, daemonizing, logging, signals, unmounting, the worker threads,
// the transport) is the same for all three.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zest/fs/atime.h"
#include "zest/fs/filesystem.h"
#include "zest/result.h"

namespace zest {

// What the command line says about one mount, for the factory.
struct MountConfig {
  std::string source;      // SOURCE ("" when the command line had none)
  std::string mountpoint;  // absolute
  // The -o options the server did not take itself (the mount options such
  // as ro, noexec, allow_other, fsname=, and the server's own such as
  // transport=), in command-line order: the file system's own options. A
  // factory answers an unknown one with EINVAL and a *why naming it.
  std::vector<std::string> options;
  bool read_only = false;  // -o ro: the mount is read-only
  fs::AtimePolicy atime;   // the atime family of -o (relatime by default)
};

// One file system built for one mount.
struct Instance {
  std::unique_ptr<fs::FileSystem> fs;
  // The first column of /proc/mounts; "" means SOURCE, or the plugin's
  // name when there is no SOURCE. -o fsname= overrides it.
  std::string fsname;
  // Direct access (docs/direct.md): a file system whose LayoutProvider
  // hands out extents of one pool file names that file here, and the
  // server then opens the client channel for libzest-direct. Empty: none.
  std::string pool_path;
  uint64_t pool_size = 0;
  bool pool_needs_msync = false;  // stores reach the media only with msync
};

struct Plugin {
  // What SOURCE means to the file system.
  enum class Source : uint8_t {
    kNone,      // no SOURCE: [options] MOUNTPOINT
    kOptional,  // [SOURCE] MOUNTPOINT
    kRequired,  // SOURCE MOUNTPOINT
  };

  std::string name;          // `--fs NAME`; lower case, no '/'
  std::string summary;       // one line, for --help
  // Its own -o options, one per line, for --help. Empty: it takes none,
  // and the server refuses any -o option it does not know itself.
  std::string options_help;
  Source source = Source::kNone;
  std::string source_name = "SOURCE";  // in the usage line: POOL, DIR...
  // Builds the file system for one mount. On failure, answers an errno and
  // sets *why to a message that names what is wrong ("pool: bad magic").
  // Called before the mount exists, in the process that serves it.
  std::function<Result<Instance>(const MountConfig&, std::string* why)> make;
};

// Makes `plugin` known to `zest mount --fs NAME` in this process (the zest
// command registers its built-in file systems this way). A later
// registration of the same name replaces the earlier one.
void register_plugin(Plugin plugin);

// The registered plugin called `name`, else a shared object: `name` itself
// when it contains a '/', else libzest-fs-NAME.so searched on
// $ZEST_PLUGIN_PATH (colon separated) and then in the installed plugin
// directory. nullptr with *why set when there is none. The object stays
// loaded for the life of the process.
const Plugin* find_plugin(const std::string& name, std::string* why);

// The names of the registered plugins, in registration order.
std::vector<std::string> plugin_names();

// The version of the plugin interface a shared object was built against;
// find_plugin refuses an object whose version differs.
inline constexpr unsigned kPluginAbi = 1;

}  // namespace zest

// In a shared object: ZEST_PLUGIN(fn), where `zest::Plugin fn()` describes
// the file system, makes it loadable with `zest mount --fs`.
#define ZEST_PLUGIN(fn)                                                  \
  extern "C" __attribute__((visibility("default"))) const zest::Plugin*  \
  zest_plugin_entry(unsigned* abi) {                                     \
    static const zest::Plugin plugin = fn();                             \
    *abi = zest::kPluginAbi;                                             \
    return &plugin;                                                      \
  }
