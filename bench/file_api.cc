#include "bench/file_api.h"

#include <cstring>

namespace zest::bench {

Outcome<DirectFiles> DirectFiles::attach(const std::string& mountpoint,
                                         const std::string& create_dir) {
  zest_direct* raw = zest_direct_attach(mountpoint.c_str(), 0);
  if (raw == nullptr) {
    return sys_failure("zest_direct_attach", mountpoint + ", 0");
  }
  DirectFiles f(raw);
  if (zest_direct_is_direct(raw) != 1) {
    return Failure{fmt::format(
        "zest_direct_attach({}, 0) succeeded but zest_direct_is_direct() is "
        "0: reads and writes would go through the kernel, so nothing is "
        "measured under the direct label",
        mountpoint)};
  }
  if (create_dir.size() + 1 + 32 > f.path_.size()) {
    return Failure{"create directory path too long: " + create_dir};
  }
  std::memcpy(f.path_.data(), create_dir.data(), create_dir.size());
  f.path_[create_dir.size()] = '/';
  f.prefix_ = create_dir.size() + 1;
  f.create_dir_h_ =
      zest_open(raw, create_dir.c_str(), O_RDONLY | O_DIRECTORY, 0);
  if (f.create_dir_h_ < 0) {
    return sys_failure("zest_open", mountpoint + "/" + create_dir);
  }
  return f;
}

const char* DirectFiles::in_create_dir(const char* name) {
  const size_t n = std::strlen(name);
  if (prefix_ + n + 1 > path_.size()) return "";  // fails with ENOENT
  std::memcpy(path_.data() + prefix_, name, n + 1);
  return path_.data();
}

const char* DirectFiles::cannot(Op op) {
  switch (op) {
    case Op::kNoop:
      return "not expressible through libzest-direct: it has no getxattr";
    case Op::kStatx:
      return "not expressible through libzest-direct: zest_stat cannot ask "
             "for AT_STATX_FORCE_SYNC (it is fstatat with no flags; see the "
             "stat row)";
    default:
      return nullptr;
  }
}

std::string check_served_directly(Op op, const zest_direct_stats& before,
                                  const zest_direct_stats& after,
                                  size_t calls) {
  const bool reads = reads_data(op);
  if (!reads && !writes_data(op)) return {};
  const uint64_t direct = reads ? after.direct_reads - before.direct_reads
                                : after.direct_writes - before.direct_writes;
  const uint64_t kernel = reads ? after.kernel_reads - before.kernel_reads
                                : after.kernel_writes - before.kernel_writes;
  if (direct > 0 && kernel * 100 <= calls) return {};
  const char* what = reads ? "reads" : "writes";
  return fmt::format(
      "not served from the pool: over the {} calls of this row "
      "libzest-direct counted {} direct and {} kernel {} (at most 1% may go "
      "through the kernel); these would be kernel-path numbers, so they are "
      "not reported under the direct label",
      calls, direct, kernel, what);
}

std::string describe(const zest_direct_stats& s) {
  return fmt::format(
      "direct_reads {}, direct_writes {}, kernel_reads {}, kernel_writes {}, "
      "leases {}, recalls {}, fenced {}, maps {}, commits {}, retries {}",
      s.direct_reads, s.direct_writes, s.kernel_reads, s.kernel_writes,
      s.leases, s.recalls, s.fenced, s.maps, s.commits, s.retries);
}

}  // namespace zest::bench
