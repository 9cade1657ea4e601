// The kernel's side of the cross-check in abi_test.cc: this translation unit
// sees only the system <linux/fuse.h> (Debian 12: protocol 7.38), never
// abi/fuse_abi.h, whose identical names would clash with it.
#include <linux/fuse.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

struct Entry {
  const char* name;
  uint64_t value;
};

template <typename T>
constexpr uint64_t field_size() {
  if constexpr (std::is_unbounded_array_v<T>) {
    return 0;
  } else {
    return sizeof(T);
  }
}

template <typename T>
constexpr uint64_t field_signed() {
  return std::is_signed_v<std::remove_all_extents_t<T>> ? 1 : 0;
}

const std::vector<Entry>& table() {
  static const std::vector<Entry> entries = {
#define ZEST_STRUCT(s) {"sizeof " #s, sizeof(::s)},
#define ZEST_FIELD(s, f)                                     \
  {"offsetof " #s "." #f, offsetof(::s, f)},                 \
      {"sizeof " #s "." #f, field_size<decltype(::s::f)>()}, \
      {"signed " #s "." #f, field_signed<decltype(::s::f)>()},
#define ZEST_CONST32(c) {#c, static_cast<uint32_t>(c)},
#define ZEST_CONST64(c) {#c, static_cast<uint64_t>(c)},
#include "tests/abi/abi_list.inc"
#undef ZEST_STRUCT
#undef ZEST_FIELD
#undef ZEST_CONST32
#undef ZEST_CONST64
  };
  return entries;
}

}  // namespace

// Plain functions, so the test TU needs no declaration from this header.
size_t kernel_abi_count() { return table().size(); }
const char* kernel_abi_name(size_t i) { return table()[i].name; }
uint64_t kernel_abi_value(size_t i) { return table()[i].value; }

// FUSE_DIRENT_SIZE / FUSE_DIRENTPLUS_SIZE take a record; build one.
uint64_t kernel_dirent_size(uint32_t namelen) {
  fuse_dirent d;
  std::memset(&d, 0, sizeof d);
  d.namelen = namelen;
  return FUSE_DIRENT_SIZE(&d);
}
uint64_t kernel_direntplus_size(uint32_t namelen) {
  fuse_direntplus d;
  std::memset(&d, 0, sizeof d);
  d.dirent.namelen = namelen;
  return FUSE_DIRENTPLUS_SIZE(&d);
}
uint64_t kernel_dirent_align(uint64_t x) { return FUSE_DIRENT_ALIGN(x); }
