#include "tools/fs_registry.h"

#include <charconv>

#include <fmt/format.h>

#include "memfs/memfs.h"

namespace zest::tools {

std::vector<std::string> fs_names() { return {"memfs"}; }
const char* default_fs() { return "memfs"; }

std::string fs_options_help() {
  return "memfs options: cached (page-cache mode instead of direct I/O),\n"
         "  writeback (cached + kernel writeback cache),\n"
         "  delay_us=N (test: answer reads/writes/lookups from another\n"
         "  thread after N microseconds)";
}

namespace {

bool parse_u32(std::string_view s, uint32_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

Result<FsChoice> make_fs(const std::string& name, const std::string& source,
                         const std::vector<std::string>& opts, std::string* why) {
  if (name == "memfs") {
    memfs::Options o;
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
  *why = fmt::format("unknown file system type '{}' (known: memfs)", name);
  return Errno(EINVAL);
}

}  // namespace zest::tools
