// libFuzzer target for mounting pmfs (built with -DZEST_FUZZ=ON under clang):
//   build/pmfs/fuzz/pmfs_mount_fuzz -timeout=10 corpus/
//     (seeds: pmfs_fuzz_seeds corpus/; the fsck fuzzer's corpus works too)
// Each input is a patch list over the standard 1 MiB image (format in
// pmfs/fuzz/sample_image.h). The image is opened with pmfs::open and, when
// accepted, walked through the FileSystem API (mount_walk.h). Corrupt input
// must give an error, never a crash, a hang or an implausible answer.
#include <cstdio>
#include <cstdlib>

#include "base/log.h"
#include "pmfs/fuzz/mount_walk.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Mount warns about every superblock it rewrites; the fuzzer would drown.
  zest::set_log_level(zest::LogLevel::Error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string wrong = zest::pmfs::sample::mount_one({data, size});
  if (!wrong.empty()) {
    std::fprintf(stderr, "mount_fuzz: %s\n", wrong.c_str());
    std::abort();
  }
  return 0;
}
