// The one entry point every pmfs fsck fuzz driver runs: patch the standard
// image with a fuzz input (format in sample_image.h) and check it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace zest::pmfs::sample {

// Runs fsck_image() over the standard image patched with `input`. Returns
// an empty string when the result is plausible, else what is wrong (a
// crash or hang is the fuzzer's to find; this catches wrong answers that do
// not crash: a read-only check that claims repairs, or a clean verdict on
// the unmodified image's damaged copy).
std::string fsck_one(std::span<const uint8_t> input);

}  // namespace zest::pmfs::sample
