// The plugin registry: built-in file systems registered by the program, and
// shared objects loaded by name or path (zest/plugin.h).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "zest/plugin.h"

#ifndef ZEST_PLUGIN_DIR
#define ZEST_PLUGIN_DIR "/usr/local/lib/zest/plugins"
#define ZEST_PLUGIN_RELDIR "lib/zest/plugins"
#endif

namespace zest {
namespace {

struct Registry {
  std::mutex mu;
  // A deque: pointers handed out by find_plugin stay valid as it grows.
  std::deque<Plugin> plugins;
};

Registry& registry() {
  static Registry r;
  return r;
}

using Entry = const Plugin* (*)(unsigned*);

const Plugin* load(const std::string& path, std::string* why) {
  // RTLD_NODELETE: the object's code stays mapped for the process's life,
  // since the plugin's file systems and their threads may outlive any
  // handle we keep.
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!h) {
    *why = fmt::format("cannot load {}: {}", path, ::dlerror());
    return nullptr;
  }
  auto entry = reinterpret_cast<Entry>(::dlsym(h, "zest_plugin_entry"));
  if (!entry) {
    *why = fmt::format("{} is not a zest plugin (no zest_plugin_entry: build it with "
                       "ZEST_PLUGIN(...), zest/plugin.h)",
                       path);
    return nullptr;
  }
  unsigned abi = 0;
  const Plugin* p = entry(&abi);
  if (abi != kPluginAbi || !p) {
    *why = fmt::format("{} was built for zest plugin interface {}, this is {}", path, abi,
                       kPluginAbi);
    return nullptr;
  }
  return p;
}

}  // namespace

void register_plugin(Plugin plugin) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (Plugin& p : r.plugins) {
    if (p.name == plugin.name) {
      p = std::move(plugin);
      return;
    }
  }
  r.plugins.push_back(std::move(plugin));
}

std::vector<std::string> plugin_names() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::vector<std::string> out;
  for (const Plugin& p : r.plugins) out.push_back(p.name);
  return out;
}

const Plugin* find_plugin(const std::string& name, std::string* why) {
  {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    for (const Plugin& p : r.plugins)
      if (p.name == name) return &p;
  }
  if (name.empty()) {
    *why = "no file system named";
    return nullptr;
  }
  if (name.find('/') != std::string::npos) return load(name, why);
  std::string file = fmt::format("libzest-fs-{}.so", name);
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("ZEST_PLUGIN_PATH"); env && *env) {
    std::string s = env;
    size_t start = 0;
    while (start <= s.size()) {
      size_t colon = s.find(':', start);
      if (colon == std::string::npos) colon = s.size();
      if (colon > start) dirs.push_back(s.substr(start, colon - start));
      start = colon + 1;
    }
  }
  // The installed plugin directory: beside this program's installation
  // (PREFIX/bin/PROG -> PREFIX/LIBDIR/zest/plugins, so a relocated install
  // or a package finds its own), then where the build meant to install.
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string dir(exe, static_cast<size_t>(n));
    dir.resize(dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/'));
    dirs.push_back(dir + "/../" ZEST_PLUGIN_RELDIR);
  }
  dirs.push_back(ZEST_PLUGIN_DIR);
  for (const std::string& d : dirs) {
    std::string path = d + "/" + file;
    if (::access(path.c_str(), F_OK) == 0) return load(path, why);
  }
  std::string known;
  for (const std::string& n : plugin_names()) known += (known.empty() ? "" : ", ") + n;
  *why = fmt::format("unknown file system type '{}' (built in: {}; no {} in {}{})", name,
                     known.empty() ? "none" : known, file,
                     std::getenv("ZEST_PLUGIN_PATH") ? "$ZEST_PLUGIN_PATH or " : "",
                     ZEST_PLUGIN_DIR);
  return nullptr;
}

}  // namespace zest
