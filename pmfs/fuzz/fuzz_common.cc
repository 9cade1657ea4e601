#include "pmfs/fuzz/fuzz_common.h"

#include <fmt/format.h>

#include <vector>

#include "pmfs/fsck.h"
#include "pmfs/fuzz/sample_image.h"

namespace zest::pmfs::sample {

std::string fsck_one(std::span<const uint8_t> input) {
  const auto& base = standard_image().image();
  std::vector<std::byte> image(base);
  apply_patches(image, input);
  FsckReport r = fsck_image(image);
  int code = r.exit_code();
  if (code != 0 && code != 4 && code != 8) {
    return fmt::format("read-only check returned exit code {}", code);
  }
  if (!r.repairs.empty()) return "read-only check reports repairs";
  if (code == 0 && !r.errors.empty()) return "exit code 0 with errors";
  if (code == 4 && r.errors.empty()) return "exit code 4 without errors";
  // The check never writes to what it was given.
  std::vector<std::byte> again(base);
  apply_patches(again, input);
  if (again != image) return "fsck_image modified its input";
  return {};
}

}  // namespace zest::pmfs::sample
