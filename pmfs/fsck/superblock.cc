// Before the passes, first: the two superblocks. Each copy must be a valid
// superblock (superblock_valid(): magic, version, checksum, block size,
// pool size, geometry; plus the overflow checks below), the two must agree,
// and the rest of their blocks must be zero — except that B may lack an
// incompatible feature A has (pmfs turns one on by writing A, then B, and a
// crash can fall in between: noted, not an error). The copy the rest of
// fsck uses is A when valid, else B; repair rewrites the other one from it. Unknown
// compatible features are noted; unknown read-only-compatible ones also
// turn repair off (fsck.cc).
//
// Assumes nothing: this is the first structure read, and the only one read
// without a superblock to bound it. What it returns bounds everything
// after it: its geometry fits the pool and its sums do not wrap.
#include <array>
#include <cstring>
#include <optional>
#include <string>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

namespace {

// superblock_valid() plus checks that its sums do not wrap (a checksummed
// but hostile superblock could otherwise place the journal at 2^64 - 5).
bool geometry_sane(const Superblock& sb, std::string* why) {
  uint64_t total = sb.total_blocks;
  bool ok = sb.journal_start < total &&
            sb.journal_blocks <= total - sb.journal_start &&
            sb.itable_start < total &&
            sb.itable_blocks <= total - sb.itable_start &&
            sb.data_start <= total &&
            sb.inode_count / kInodesPerBlock == sb.itable_blocks;
  if (!ok) *why = "superblock geometry overflows the pool";
  return ok;
}

// Whether `b` is `a` before `a` turned on incompatible features that pmfs
// turns on while mounted (kIncompatXattrSlots): everything else equal.
bool upgrade_interrupted(const Superblock& a, const Superblock& b) {
  const uint64_t added = a.features_incompat & ~b.features_incompat;
  if (added == 0 || (added & ~kIncompatXattrSlots) != 0) return false;
  if ((b.features_incompat & ~a.features_incompat) != 0) return false;
  Superblock x = a, y = b;
  x.features_incompat = y.features_incompat = 0;
  x.csum = y.csum = 0;
  return std::memcmp(&x, &y, sizeof(x)) == 0;
}

}  // namespace

// Returns the superblock to use, or nothing when neither copy is valid.
std::optional<Superblock> check_superblocks(View& view, bool repair,
                                            Reporter& rep, FsckReport* report) {
  rep.progress("checking superblocks");
  if (view.size() < 2 * kBlockSize) {
    rep.error(fmt::format(
        "pool of {} bytes is too small to hold two superblocks", view.size()));
    report->operational_error = true;
    return std::nullopt;
  }
  Superblock copy[2];
  bool valid[2];
  std::string why[2];
  for (int i = 0; i < 2; ++i) {
    copy[i] = view.get<Superblock>(i * kBlockSize);
    valid[i] = superblock_valid(copy[i], view.size(), &why[i]) &&
               geometry_sane(copy[i], &why[i]);
  }
  const char* names[2] = {"superblock A (block 0)", "superblock B (block 1)"};
  if (!valid[0] && !valid[1]) {
    rep.error(fmt::format("no valid superblock: {}: {}; {}: {}", names[0],
                          why[0], names[1], why[1]));
    // Neither copy even has the magic: this is not a pmfs pool at all.
    if (copy[0].magic != kMagic && copy[1].magic != kMagic)
      report->operational_error = true;
    return std::nullopt;
  }
  int good = valid[0] ? 0 : 1;
  const Superblock& sb = copy[good];

  std::array<std::byte, kBlockSize> block;
  for (int i = 0; i < 2; ++i) {
    std::string problem;
    if (!valid[i]) {
      problem = why[i];
    } else if (i == 1 && good == 0 && upgrade_interrupted(copy[0], copy[1])) {
      // pmfs turns a feature on by writing superblock A, then B: a crash
      // in between leaves this, which mount finishes. Not an error.
      rep.note(fmt::format("{}: lacks incompatible features {:#x} that {} has (a feature "
                           "upgrade interrupted by a crash; the next mount finishes it)",
                           names[1], copy[0].features_incompat & ~copy[1].features_incompat,
                           names[0]));
      if (repair) {
        block.fill(std::byte{0});
        std::memcpy(block.data(), &sb, sizeof(sb));
        view.write_pool(kBlockSize, block.data(), kBlockSize);
        report->superblock_repaired = true;
        rep.repair(fmt::format("{}: rewritten from {}", names[1], names[0]));
      }
      continue;
    } else if (std::memcmp(&copy[i], &sb, sizeof(sb)) != 0) {
      problem = fmt::format("differs from {}", names[good]);
    } else {
      view.read(i * kBlockSize, block.data(), kBlockSize);
      if (!all_zero(block.data() + sizeof(Superblock),
                    kBlockSize - sizeof(Superblock))) {
        problem = "bytes after the superblock are not zero";
      }
    }
    if (problem.empty()) continue;
    rep.error(fmt::format("{}: {}", names[i], problem));
    if (repair) {
      block.fill(std::byte{0});
      std::memcpy(block.data(), &sb, sizeof(sb));
      view.write_pool(i * kBlockSize, block.data(), kBlockSize);
      report->superblock_repaired = true;
      rep.repair(fmt::format("{}: rewritten from {}", names[i], names[good]));
    }
  }
  if (sb.features_compat != 0) {
    rep.note(fmt::format("unknown compatible features {:#x} (ignored)",
                         sb.features_compat));
  }
  if (sb.features_ro_compat != 0) {
    rep.note(fmt::format(
        "unknown read-only-compatible features {:#x}: structures they add "
        "are not checked, and repair is disabled",
        sb.features_ro_compat));
  }
  return sb;
}

}  // namespace zest::pmfs::fsck_internal
