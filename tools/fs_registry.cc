#include "tools/fs_registry.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>

#include <fmt/format.h>

#include "memfs/memfs.h"
#include "mirrorfs/mirrorfs.h"
#include "pmfs/pmfs.h"

namespace zest::tools {

std::vector<std::string> fs_names() { return {"pmfs", "memfs", "mirrorfs"}; }
const char* default_fs() { return "pmfs"; }

std::string fs_options_help() {
  return "pmfs (SOURCE: a pool made by zest mkfs) options:\n"
         "  durability=auto|cache-line|page (see zest stat), ro\n"
         "memfs options: cached (page-cache mode instead of direct I/O),\n"
         "  writeback (cached + kernel writeback cache),\n"
         "  delay_us=N (test: answer reads/writes/lookups from another\n"
         "  thread after N microseconds)\n"
         "mirrorfs (SOURCE: the directory to mirror) options:\n"
         "  passthrough (default: the kernel reads/writes the backing files),\n"
         "  nopassthrough (direct I/O through the server), cached (page cache),\n"
         "  splice (default: reads the server serves are spliced from the\n"
         "  backing file, not copied, when of splice_min=N bytes or more,\n"
         "  default 32768), nosplice (always copied),\n"
         "  noxattr (no extended attributes: ENOSYS, so passthrough writes\n"
         "  need no security.capability lookup in the server)";
}

namespace {

bool parse_u32(std::string_view s, uint32_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::string default_pool_path() {
  if (::geteuid() == 0) return "/var/lib/zest/default.pool";
  const char* data = std::getenv("XDG_DATA_HOME");
  if (data && *data) return fmt::format("{}/zest/default.pool", data);
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.local/share/zest/default.pool", home && *home ? home : "/tmp");
}

Result<FsChoice> make_fs(const std::string& name, const std::string& source,
                         const std::vector<std::string>& opts, bool read_only,
                         const fs::AtimePolicy& atime, std::string* why) {
  if (name == "memfs") {
    memfs::Options o;
    o.atime = atime;
    for (const std::string& opt : opts) {
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
    return FsChoice{memfs::make_memfs(o), source.empty() ? "memfs" : source};
  }
  if (name == "pmfs") {
    if (source.empty()) {
      *why = "pmfs needs a pool: zest mount [--fs pmfs] POOL MOUNTPOINT (make one with zest mkfs)";
      return Errno(EINVAL);
    }
    pmfs::Options o;
    o.read_only = read_only;
    o.atime = atime;
    for (const std::string& opt : opts) {
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
    auto fs = pmfs::open(source, o, &open_why);
    if (!fs) {
      *why = fmt::format("{}: {}", source, open_why);
      return fs.error();
    }
    return FsChoice{std::move(*fs), source};
  }
  if (name == "mirrorfs") {
    if (source.empty()) {
      *why = "mirrorfs needs a backing directory: zest mount --fs mirrorfs DIR MOUNTPOINT";
      return Errno(EINVAL);
    }
    mirrorfs::Options o;
    o.source = source;
    for (const std::string& opt : opts) {
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
    return FsChoice{std::move(*fs), source};
  }
  *why = fmt::format("unknown file system type '{}' (known: pmfs, memfs, mirrorfs)", name);
  return Errno(EINVAL);
}

}  // namespace zest::tools
