// The mount-side fuzz entry point: patch the standard image with a fuzz
// input (format in sample_image.h), open it with pmfs::open, and if the file
// system accepts it, drive it through the FileSystem API the way a kernel
// would: look up, stat, list, read and readlink everything reachable, list
// and read every xattr, then create, write, read back and unlink one file,
// and destroy (unmount).
//
// What counts as wrong (besides a crash or a hang, which are the fuzzer's
// and the replay driver's watchdog's to find):
//   - open refuses without saying why, or with an errno other than the
//     documented EINVAL / EUCLEAN (and EBUSY/ENOMEM/EIO for the pool file);
//   - a reply missing or sent twice;
//   - readdir that never ends (offsets that do not advance);
//   - data just written and acknowledged that reads back different;
//   - a pool fsck called clean before the mount that is not clean after the
//     mount, the walk and the unmount (mount and the operations must keep a
//     consistent pool consistent).
// Every loop is bounded (a step limit), so a damaged structure the file
// system follows in circles shows up as "step limit", not as a hang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace zest::pmfs::sample {

struct MountWalkStats {
  bool opened = false;         // pmfs::open accepted the image
  bool fsck_clean = false;     // fsck_image said 0 before the mount
  bool refused_clean = false;  // open refused an image fsck calls clean
  uint64_t operations = 0;     // FileSystem calls made
  std::string refusal;         // open's why, when it refused
};

// Runs one input. Returns an empty string when everything was plausible,
// else what was wrong. `stats` (may be null) says what happened.
std::string mount_one(std::span<const uint8_t> input,
                      MountWalkStats* stats = nullptr);

// The repair side: patch the standard image, run fsck --repair on it until
// it repairs nothing more, then a read-only fsck must call it clean,
// pmfs::open must accept it, the walk above must find nothing wrong, and
// the pool must still be clean after the mount and the walk. Inputs fsck
// cannot repair by design (no valid superblock copy; unknown
// read-only-compatible features, which disable repair) are skipped.
struct RepairStats {
  bool damaged = false;     // the first repair run found errors
  bool skipped = false;     // not repairable by design (see above)
  uint64_t repairs = 0;     // repairs made, all runs
  int runs = 0;             // fsck --repair runs until one repaired nothing
  uint64_t operations = 0;  // FileSystem calls made by the walk
};
std::string repair_one(std::span<const uint8_t> input,
                       RepairStats* stats = nullptr);

}  // namespace zest::pmfs::sample
