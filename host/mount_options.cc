#include "host/mount_options.h"

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace zest::host {
namespace {

bool starts_with(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }

bool parse_uint(std::string_view s, unsigned* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

// Options mount(8), fstab and systemd use for themselves; a mount helper
// receives some of them and must not fail on any (mount(8): "noauto",
// "_netdev", "nofail", "user"; systemd.mount(5): "x-systemd.*").
bool for_mount_itself(const std::string& o) {
  static constexpr std::string_view kWords[] = {
      "defaults", "auto", "noauto", "_netdev", "nofail", "user", "nouser",
      "users",    "owner", "group", "loop",   "sync",   "async", "silent",
      "loud",     "nofail"};
  for (std::string_view w : kWords)
    if (o == w) return true;
  return starts_with(o, "x-") || starts_with(o, "X-") || starts_with(o, "comment=") ||
         starts_with(o, "user=") || starts_with(o, "helper=");
}

}  // namespace

std::vector<std::string> split_options(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const std::string& s : in) {
    size_t start = 0;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      if (comma > start) out.push_back(s.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return out;
}

bool sort_options(const std::vector<std::string>& all, transport::MountOptions* mo,
                  ServerConfig* server, std::vector<std::string>* fs_opts,
                  std::string* why) {
  for (const std::string& o : all) {
    if (o == "ro" || o == "rw") {
      mo->read_only = o == "ro";
    } else if (o == "allow_other") {
      mo->allow_other = true;
    } else if (o == "noallow_other" || o == "private") {
      mo->allow_other = false;
    } else if (o == "default_permissions") {
      mo->default_permissions = true;
    } else if (o == "dev" || o == "suid") {
      // As fusermount3 and the kernel's own rules for user mounts: device
      // nodes and set-id programs on a file system a user serves would give
      // that user the machine.
      if (::geteuid() != 0) {
        *why = fmt::format("-o {}: only root may mount with {}", o,
                           o == "dev" ? "device nodes usable" : "set-id programs honoured");
        return false;
      }
      (o == "dev" ? mo->dev : mo->suid) = true;
    } else if (o == "nodev") {
      mo->dev = false;
    } else if (o == "nosuid") {
      mo->suid = false;
    } else if (o == "exec" || o == "noexec") {
      mo->exec = o == "exec";
    } else if (o == "noatime") {
      mo->atime_flags = (mo->atime_flags & ~MS_STRICTATIME) | MS_NOATIME;
    } else if (o == "relatime" || o == "atime") {
      mo->atime_flags &= ~(MS_NOATIME | MS_STRICTATIME);
    } else if (o == "strictatime") {
      mo->atime_flags = (mo->atime_flags & ~MS_NOATIME) | MS_STRICTATIME;
    } else if (o == "nodiratime" || o == "diratime") {
      mo->atime_flags = o == "nodiratime" ? (mo->atime_flags | MS_NODIRATIME)
                                          : (mo->atime_flags & ~MS_NODIRATIME);
    } else if (o == "lazytime" || o == "nolazytime") {
      mo->atime_flags = o == "lazytime" ? (mo->atime_flags | MS_LAZYTIME)
                                        : (mo->atime_flags & ~MS_LAZYTIME);
    } else if (starts_with(o, "fsname=")) {
      mo->fsname = o.substr(7);
    } else if (starts_with(o, "max_read=")) {
      unsigned v;
      if (!parse_uint(std::string_view(o).substr(9), &v)) {
        *why = fmt::format("bad value in -o {}", o);
        return false;
      }
      mo->max_read = v;
    } else if (starts_with(o, "transport=")) {
      server->transport = o.substr(10);
      if (server->transport != "dev" && server->transport != "uring" &&
          server->transport != "auto") {
        *why = "-o transport= takes dev, uring or auto";
        return false;
      }
    } else if (o == "direct_io") {
      server->direct_io = true;
    } else if (o == "layouts" || o == "nolayouts") {
      server->layouts = o == "layouts";
    } else if (starts_with(o, "layout_recall_ms=") || starts_with(o, "uring_depth=") ||
               starts_with(o, "threads=")) {
      size_t eq = o.find('=');
      unsigned v;
      if (!parse_uint(std::string_view(o).substr(eq + 1), &v)) {
        *why = fmt::format("bad value in -o {}", o);
        return false;
      }
      if (o[0] == 'l') server->recall_ms = std::clamp(v, 1u, 60000u);
      else if (o[0] == 'u') server->uring_depth = std::clamp(v, 1u, 256u);
      else server->threads = std::min(v, 1024u);
    } else if (for_mount_itself(o)) {
      // mount(8)'s and systemd's: nothing for the server to do.
    } else {
      fs_opts->push_back(o);
    }
  }
  return true;
}

fs::AtimePolicy atime_policy(const transport::MountOptions& mo) {
  fs::AtimePolicy atime;
  if (mo.atime_flags & MS_NOATIME) atime.mode = fs::AtimePolicy::Mode::None;
  if (mo.atime_flags & MS_STRICTATIME) atime.mode = fs::AtimePolicy::Mode::Strict;
  atime.dirs = !(mo.atime_flags & MS_NODIRATIME);
  atime.lazy = (mo.atime_flags & MS_LAZYTIME) != 0;
  return atime;
}

const char* mount_options_help() {
  return "Mount options (-o, comma separated):\n"
         "  ro, rw, noexec, exec, nodev, nosuid, dev and suid (root only),\n"
         "  relatime (default), noatime, strictatime, nodiratime, lazytime,\n"
         "  allow_other (default for root), noallow_other, fsname=NAME, max_read=N\n"
         "  ignored as mount(8) expects: defaults, auto, noauto, _netdev, nofail,\n"
         "  user, users, x-*, comment=*\n"
         "Server options (-o):\n"
         "  transport=dev|uring|auto, uring_depth=N, threads=N,\n"
         "  direct_io (no page cache even for buffered opens; shared mappings are\n"
         "  then refused), nolayouts (no direct access for libzest-direct clients),\n"
         "  layout_recall_ms=N (how long a client has to return a recalled lease,\n"
         "  default 100)\n";
}

}  // namespace zest::host
