#include "tools/builtin_fs.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>

#include <fmt/format.h>

#include "memfs/memfs.h"
#include "mirrorfs/mirrorfs.h"
#include "zest/plugin.h"
#if ZEST_HAVE_PMFS
#include "pmfs/pmfs.h"
#endif

namespace zest::tools {
namespace {

bool parse_u32(std::string_view s, uint32_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

Result<Instance> make_memfs(const MountConfig& mc, std::string* why) {
  memfs::Options o;
  o.atime = mc.atime;
  for (const std::string& opt : mc.options) {
    if (opt == "cached") {
      o.io_mode = fs::IoMode::Cached;
    } else if (opt == "writeback") {
      o.io_mode = fs::IoMode::Cached;
      o.writeback_cache = true;
    } else if (opt.rfind("delay_us=", 0) == 0) {
      if (!parse_u32(std::string_view(opt).substr(9), &o.reply_delay_us)) {
        *why = fmt::format("bad value in -o {}", opt);
        return Errno(EINVAL);
      }
    } else {
      *why = fmt::format("unknown option '{}' for memfs", opt);
      return Errno(EINVAL);
    }
  }
  Instance inst;
  inst.fs = memfs::make_memfs(o);
  inst.fsname = mc.source.empty() ? "memfs" : mc.source;
  return inst;
}

#if ZEST_HAVE_PMFS
Result<Instance> make_pmfs(const MountConfig& mc, std::string* why) {
  pmfs::Options o;
  o.read_only = mc.read_only;
  o.atime = mc.atime;
  for (const std::string& opt : mc.options) {
    if (opt.rfind("durability=", 0) == 0) {
      if (!pmem::parse_durability(std::string_view(opt).substr(11), &o.durability)) {
        *why = fmt::format("bad value in -o {} (auto, cache-line, page)", opt);
        return Errno(EINVAL);
      }
    } else {
      *why = fmt::format("unknown option '{}' for pmfs", opt);
      return Errno(EINVAL);
    }
  }
  std::string open_why;
  auto fs = pmfs::open(mc.source, o, &open_why);
  if (!fs) {
    *why = fmt::format("{}: {}", mc.source, open_why);
    return fs.error();
  }
  Instance inst;
  const pmfs::PmFs* pm = fs->get();
  inst.pool_path = mc.source;
  inst.pool_size = pm->pool().size();
  inst.pool_needs_msync = pm->pool().granularity() == pmem::Granularity::Page;
  inst.fs = std::move(*fs);
  inst.fsname = mc.source;
  return inst;
}
#endif

Result<Instance> make_mirrorfs(const MountConfig& mc, std::string* why) {
  mirrorfs::Options o;
  o.source = mc.source;
  for (const std::string& opt : mc.options) {
    if (opt == "passthrough") {
      o.io_mode = fs::IoMode::Passthrough;
    } else if (opt == "nopassthrough") {
      o.io_mode = fs::IoMode::Direct;
    } else if (opt == "cached") {
      o.io_mode = fs::IoMode::Cached;
    } else if (opt == "splice") {
      o.splice = true;
    } else if (opt == "nosplice") {
      o.splice = false;
    } else if (opt == "noxattr") {
      o.xattr = false;
    } else if (opt.rfind("forgotten_handles=", 0) == 0) {
      uint32_t n = 0;
      if (!parse_u32(std::string_view(opt).substr(18), &n)) {
        *why = fmt::format("bad value in -o {}", opt);
        return Errno(EINVAL);
      }
      o.forgotten_handles = n;
    } else if (opt.rfind("splice_min=", 0) == 0) {
      if (!parse_u32(std::string_view(opt).substr(11), &o.splice_min)) {
        *why = fmt::format("bad value in -o {}", opt);
        return Errno(EINVAL);
      }
      o.splice = true;
    } else {
      *why = fmt::format("unknown option '{}' for mirrorfs", opt);
      return Errno(EINVAL);
    }
  }
  auto fs = mirrorfs::make_mirrorfs(o, why);
  if (!fs) return fs.error();
  Instance inst;
  inst.fs = std::move(*fs);
  inst.fsname = mc.source;
  return inst;
}

}  // namespace

const char* default_fs() {
#if ZEST_HAVE_PMFS
  return "pmfs";
#else
  return "memfs";
#endif
}

std::string default_pool_path() {
  if (::geteuid() == 0) return "/var/lib/zest/default.pool";
  const char* data = std::getenv("XDG_DATA_HOME");
  if (data && *data) return fmt::format("{}/zest/default.pool", data);
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.local/share/zest/default.pool", home && *home ? home : "/tmp");
}

void register_builtin_file_systems() {
#if ZEST_HAVE_PMFS
  register_plugin({.name = "pmfs",
                   .summary = "crash-consistent persistent-memory file system (the default)",
                   .options_help = "  durability=auto|cache-line|page (see zest stat)",
                   .source = Plugin::Source::kRequired,
                   .source_name = "POOL",
                   .make = make_pmfs});
#endif
  register_plugin({.name = "memfs",
                   .summary = "in-memory file system",
                   .options_help =
                       "  cached (page-cache mode instead of direct I/O),\n"
                       "  writeback (cached + kernel writeback cache),\n"
                       "  delay_us=N (test: answer reads/writes/lookups from another\n"
                       "  thread after N microseconds)",
                   .source = Plugin::Source::kOptional,
                   .source_name = "NAME",
                   .make = make_memfs});
  register_plugin({.name = "mirrorfs",
                   .summary = "mirrors a directory (passthrough)",
                   .options_help =
                       "  passthrough (default: the kernel reads/writes the backing files),\n"
                       "  nopassthrough (direct I/O through the server), cached (page cache),\n"
                       "  splice (default: reads the server serves are spliced from the\n"
                       "  backing file, not copied, when of splice_min=N bytes or more,\n"
                       "  default 32768), nosplice (always copied),\n"
                       "  noxattr (no extended attributes: ENOSYS, so passthrough writes\n"
                       "  need no security.capability lookup in the server),\n"
                       "  forgotten_handles=N (file handles of forgotten inodes kept for NFS\n"
                       "  export, about 180 bytes each; default 262144)",
                   .source = Plugin::Source::kRequired,
                   .source_name = "DIR",
                   .make = make_mirrorfs});
}

}  // namespace zest::tools
