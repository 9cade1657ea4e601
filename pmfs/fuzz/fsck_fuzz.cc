// libFuzzer target for pmfs fsck (built with -DZEST_FUZZ=ON under clang):
//   build/pmfs/fuzz/pmfs_fsck_fuzz corpus/   (seed: pmfs_fuzz_seeds corpus/)
// Each input is a patch list over the standard 1 MiB image; the format is
// documented in pmfs/fuzz/sample_image.h (byte 0 flags, bit 0 = re-seal
// checksums; then repeated {u32 LE offset mod image size, u8 len, len bytes}).
// The mount-side fuzzer is meant to take the same inputs.
#include <cstdio>
#include <cstdlib>

#include "pmfs/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string wrong = zest::pmfs::sample::fsck_one({data, size});
  if (!wrong.empty()) {
    std::fprintf(stderr, "fsck_fuzz: %s\n", wrong.c_str());
    std::abort();
  }
  return 0;
}
