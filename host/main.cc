// zest::main: the command line every zest file system gets (zest/main.h).
#include "zest/main.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "host/main_options.h"
#include "host/mount_options.h"
#include "host/serve.h"
#include "zest/version.h"

namespace zest {

const char* version() { return ZEST_VERSION_STRING; }

namespace host {

// Adds the options every mount takes (zest::main and `zest mount`).
void add_server_options(CLI::App& app, MountRequest* req) {
  ServerConfig& c = req->server;
  app.add_flag("-f,--foreground", c.foreground,
               "Stay in the foreground (default: run as a daemon once mounted)");
  app.add_flag("-d,--debug", c.debug, "Log every request (implies -f)");
  app.add_option("-o", req->options,
                 "Options, comma separated: mount options, the server's and the file "
                 "system's (below)")
      ->allow_extra_args(false);
  app.add_option("--threads", c.threads,
                 "Worker threads, one /dev/fuse channel or io_uring queue each "
                 "(default: online CPUs)");
  app.add_option("--transport", c.transport,
                 "How requests reach the server: dev (/dev/fuse), uring (FUSE over "
                 "io_uring), or auto (the default: io_uring when the kernel offers it, as "
                 "root turning on the fuse module's enable_uring; else /dev/fuse)")
      ->check(CLI::IsMember({"dev", "uring", "auto"}));
  app.add_option("--uring-depth", c.uring_depth,
                 "io_uring: requests in flight per CPU queue (default 8)")
      ->check(CLI::Range(1u, 256u));
  app.add_option("--spin-us", c.spin_us,
                 "Microseconds an idle worker keeps polling before it sleeps (saves a "
                 "wake-up per request under load, costs CPU)");
  app.add_option("--log-file", c.log_file,
                 "As a daemon, append the log to this file (default: syslog, the journal)");
}

std::string plugin_help(const Plugin& p) {
  std::string s = std::string(mount_options_help());
  if (!p.options_help.empty()) s += fmt::format("{} options (-o):\n{}\n", p.name, p.options_help);
  return s;
}

// SOURCE and MOUNTPOINT from the positional arguments, as the plugin takes
// them. False with *why on a wrong count.
bool place_positionals(const Plugin& p, const std::vector<std::string>& pos, MountRequest* req,
                       std::string* why) {
  if (pos.size() == 1) {
    req->mountpoint = pos[0];
    return true;
  }
  if (pos.size() == 2) {
    req->mountpoint = pos[1];
    // mount.fuse3 (type fuse.PROG in fstab) always passes a source; one
    // that takes none accepts "none" or its own name there.
    if (p.source == Plugin::Source::kNone && (pos[0] == "none" || pos[0] == p.name)) return true;
    req->source = pos[0];
    return true;
  }
  *why = "expected [SOURCE] MOUNTPOINT";
  return false;
}

}  // namespace host

int main(int argc, char** argv, const Plugin& plugin) {
  std::string usage = plugin.source == Plugin::Source::kNone       ? "MOUNTPOINT"
                      : plugin.source == Plugin::Source::kRequired ? plugin.source_name + " MOUNTPOINT"
                                                                   : "[" + plugin.source_name + "] MOUNTPOINT";
  std::string prog = argc > 0 ? argv[0] : plugin.name;
  CLI::App app{fmt::format("{}{}{}\n{} [OPTIONS] {}", plugin.name,
                           plugin.summary.empty() ? "" : ": ", plugin.summary, prog, usage),
               prog};
  host::MountRequest req;
  std::vector<std::string> pos;
  app.add_option("args", pos, usage)->expected(1, 2)->required();
  host::add_server_options(app, &req);
  app.set_version_flag("-V,--version", fmt::format("{} (zest {})", plugin.name, version()));
  app.footer(host::plugin_help(plugin));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::string why;
  if (!host::place_positionals(plugin, pos, &req, &why)) {
    fmt::print(stderr, "{}: {}\n", prog, why);
    return 2;
  }
  return host::mount_and_serve(plugin, std::move(req));
}

}  // namespace zest
