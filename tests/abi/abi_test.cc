// Checks abi/fuse_abi.h against the system <linux/fuse.h> (via kernel_abi.cc)
// for every struct, field and constant the two protocol versions share, and
// the constexpr helpers against the kernel's macros.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "abi/fuse_abi.h"

// Exported by kernel_abi.cc.
size_t kernel_abi_count();
const char* kernel_abi_name(size_t i);
uint64_t kernel_abi_value(size_t i);
uint64_t kernel_dirent_size(uint32_t namelen);
uint64_t kernel_direntplus_size(uint32_t namelen);
uint64_t kernel_dirent_align(uint64_t x);

namespace zest::abi {
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

std::vector<Entry> zest_table() {
  return {
#define ZEST_STRUCT(s) {"sizeof " #s, sizeof(s)},
#define ZEST_FIELD(s, f)                                   \
  {"offsetof " #s "." #f, offsetof(s, f)},                 \
      {"sizeof " #s "." #f, field_size<decltype(s::f)>()}, \
      {"signed " #s "." #f, field_signed<decltype(s::f)>()},
#define ZEST_CONST32(c) {#c, static_cast<uint32_t>(c)},
#define ZEST_CONST64(c) {#c, static_cast<uint64_t>(c)},
#include "tests/abi/abi_list.inc"
#undef ZEST_STRUCT
#undef ZEST_FIELD
#undef ZEST_CONST32
#undef ZEST_CONST64
  };
}

TEST(AbiTest, SharedPartMatchesSystemHeader) {
  const std::vector<Entry> ours = zest_table();
  ASSERT_EQ(ours.size(), kernel_abi_count());
  ASSERT_GT(ours.size(), 400u);  // the list really was expanded
  for (size_t i = 0; i < ours.size(); ++i) {
    ASSERT_STREQ(ours[i].name, kernel_abi_name(i));
    EXPECT_EQ(ours[i].value, kernel_abi_value(i)) << ours[i].name;
  }
}

TEST(AbiTest, DirentHelpersMatchKernelMacros) {
  for (uint32_t namelen = 0; namelen <= 300; ++namelen) {
    EXPECT_EQ(fuse_dirent_size(namelen), kernel_dirent_size(namelen))
        << namelen;
    EXPECT_EQ(fuse_direntplus_size(namelen), kernel_direntplus_size(namelen))
        << namelen;
  }
  for (uint64_t x = 0; x <= 64; ++x) {
    EXPECT_EQ(fuse_dirent_align(x), kernel_dirent_align(x)) << x;
    EXPECT_EQ(fuse_rec_align(x), kernel_dirent_align(x)) << x;
  }
}

// The 7.39-7.45 additions have no system header to compare with; their
// sizes are static_asserts in the header. These pin down the values.
TEST(AbiTest, NewerProtocolValues) {
  EXPECT_EQ(FUSE_KERNEL_VERSION, 7u);
  EXPECT_EQ(FUSE_KERNEL_MINOR_VERSION, 45u);
  EXPECT_EQ(FUSE_STATX, 52u);
  EXPECT_EQ(FUSE_COPY_FILE_RANGE_64, 53u);
  EXPECT_EQ(FUSE_NOTIFY_RESEND, 7u);
  EXPECT_EQ(FUSE_NOTIFY_INC_EPOCH, 8u);
  EXPECT_EQ(FUSE_NOTIFY_PRUNE, 9u);
  EXPECT_EQ(FUSE_EXT_GROUPS, 32u);
  EXPECT_EQ(FOPEN_PASSTHROUGH, 0x80u);
  EXPECT_EQ(FUSE_CREATE_SUPP_GROUP, 1ULL << 34);
  EXPECT_EQ(FUSE_DIRECT_IO_ALLOW_MMAP, 1ULL << 36);
  EXPECT_EQ(FUSE_DIRECT_IO_RELAX, FUSE_DIRECT_IO_ALLOW_MMAP);
  EXPECT_EQ(FUSE_PASSTHROUGH, 1ULL << 37);
  EXPECT_EQ(FUSE_NO_EXPORT_SUPPORT, 1ULL << 38);
  EXPECT_EQ(FUSE_HAS_RESEND, 1ULL << 39);
  EXPECT_EQ(FUSE_ALLOW_IDMAP, 1ULL << 40);
  EXPECT_EQ(FUSE_OVER_IO_URING, 1ULL << 41);
  EXPECT_EQ(FUSE_REQUEST_TIMEOUT, 1ULL << 42);
  EXPECT_EQ(FUSE_UNIQUE_RESEND, 1ULL << 63);
  EXPECT_EQ(FUSE_INVALID_UIDGID, 0xffffffffu);
  EXPECT_EQ(FUSE_IO_URING_CMD_REGISTER, 1u);
  EXPECT_EQ(FUSE_IO_URING_CMD_COMMIT_AND_FETCH, 2u);
  EXPECT_EQ(FUSE_DEV_IOC_BACKING_OPEN,
            static_cast<unsigned long>(_IOW(229, 1, fuse_backing_map)));
  EXPECT_EQ(FUSE_DEV_IOC_BACKING_CLOSE,
            static_cast<unsigned long>(_IOW(229, 2, uint32_t)));
  EXPECT_EQ(FUSE_DEV_IOC_SYNC_INIT, static_cast<unsigned long>(_IO(229, 3)));
  EXPECT_EQ(fuse_removemapping_max_entry(4096), 256u);
}

// The 64-bit INIT flags travel shifted down into flags2.
TEST(AbiTest, Flags2Split) {
  const uint64_t want =
      FUSE_ASYNC_READ | FUSE_INIT_EXT | FUSE_PASSTHROUGH | FUSE_OVER_IO_URING;
  fuse_init_out out{};
  out.flags = static_cast<uint32_t>(want);
  out.flags2 = static_cast<uint32_t>(want >> 32);
  EXPECT_EQ(out.flags, FUSE_ASYNC_READ | FUSE_INIT_EXT);
  EXPECT_EQ(out.flags2, (1u << 5) | (1u << 9));
}

}  // namespace
}  // namespace zest::abi
