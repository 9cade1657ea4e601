// fsck for pmfs: the driver. fsck.h states what it promises and the repair
// policy; the checks live in pmfs/fsck/, one file each, and run in this
// order:
//   before the passes (and again before the final, verifying one):
//     fsck/superblock.cc      the superblocks: pick the valid copy, compare
//                             the other;
//     fsck/journal.cc         the journal: a committed, unapplied
//                             transaction is replayed, into a private
//                             overlay when checking, into the pool when
//                             repairing;
//   then passes over the inode table and everything it points to (Pass,
//   fsck/passes.h): one when checking; when repairing, passes until one
//   repairs nothing, then one that only checks. Each runs five steps:
//     1. fsck/inodes.cc       inode slots;
//     2. fsck/extents.cc, fsck/directories.cc, fsck/xattrs.cc: what each
//        live inode points to (extent chains; directory chains, entries and
//        names; xattr chains), claiming every block they use;
//     3. fsck/blocks.cc       block ownership across the pool;
//     4. fsck/connectivity.cc the directory tree: links, parents, link
//                             counts, reachability, orphans;
//     5. fsck/lost_found.cc   unreachable inodes reconnected under
//                             /lost+found;
//   fsck/repair.cc holds the repair primitives they share. This file runs
//   them: Pass::run, the per-inode loop of step 2, the repair loop, and the
//   public entry points.
// Nothing is read in place: every structure is copied out of the View
// (fsck/view.h) and checked there, so a concurrent or malicious writer
// cannot change it between check and use, and unaligned garbage is
// harmless.
#include "pmfs/fsck.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

#include "pmem/pool.h"
#include "pmfs/fsck/passes.h"

namespace zest::pmfs {

int FsckReport::exit_code() const {
  if (operational_error) return 8;
  if (!uncorrected.empty()) return 4;
  if (!repairs.empty()) return 1;
  return 0;
}

namespace fsck_internal {

void Pass::run() {
  scan_inodes();
  walk_contents();
  check_ownership();
  check_tree();
}

// One loop, inode by inode, rather than one per kind of structure: the
// claims are made in this order (inode, then chain), and blocks.cc drops the
// later of two claims on one block.
void Pass::walk_contents() {
  rep_.progress("checking extents, directories and xattrs");
  uint64_t done = 0;
  const uint64_t step = std::max<uint64_t>(16384, live_.size() / 16);
  for (const Live& l : live_) {
    if (++done % step == 0) {
      rep_.progress(fmt::format("contents {}/{}", done, live_.size()));
    }
    if (info_[l.ino].state != State::Live) continue;
    // Also without a chain: `blocks` and the size are checked there.
    if (has_extents(l.d)) walk_extents(l);
    if (info_[l.ino].state != State::Live) continue;
    if (l.d.dir_head != 0) walk_dir(l.ino, l.d.dir_head);
    if (l.d.xattr_block != 0) walk_xattrs(l.ino, l.d.xattr_block);
  }
  check_xattr_feature();
}

namespace {

// Repair passes before giving up on reaching a fixed point.
constexpr int kMaxRepairPasses = 8;

void reset_stats(FsckReport* r) {
  r->inodes_checked = r->dirents_checked = r->extents_checked =
      r->blocks_in_use = 0;
}

FsckReport run(View& view, const FsckOptions& options, bool repair) {
  FsckReport report;
  Reporter rep(&report, options);
  auto sb = check_superblocks(view, repair, rep, &report);
  if (sb && repair && sb->features_ro_compat != 0) repair = false;
  if (sb) {
    check_journal(view, *sb, repair, rep);
    if (!repair) {
      rep.progress("pass 1");
      Pass(view, *sb, false, rep, &report).run();
    } else {
      // Repair until a pass changes nothing, then check once more without
      // repairing: what that finds is left uncorrected.
      for (int pass = 1; pass <= kMaxRepairPasses; ++pass) {
        rep.progress(fmt::format("pass {} (repairing)", pass));
        uint64_t before = rep.repairs_made();
        reset_stats(&report);
        Pass p(view, *sb, true, rep, &report);
        p.run();
        sb->features_incompat |= p.features_set();
        if (rep.repairs_made() == before) break;
      }
      retire_stale_journal(view, *sb, rep);
      rep.send_errors_to(&report.uncorrected);
      rep.progress("verifying");
      reset_stats(&report);
      FsckReport scratch;
      if (check_superblocks(view, false, rep, &scratch)) {
        check_journal(view, *sb, false, rep);
        Pass(view, *sb, false, rep, &report).run();
      }
      rep.finish();
      return report;
    }
  }
  rep.finish();
  report.uncorrected = report.errors;
  return report;
}

}  // namespace

}  // namespace fsck_internal

Result<FsckReport> fsck(const std::string& pool_path,
                        const FsckOptions& options, std::string* why) {
  pmem::OpenOptions open;
  open.read_only = !options.repair;
  auto pool = pmem::PoolMap::open(pool_path, open, why);
  if (!pool) return pool.error();  // *why names the path
  fsck_internal::View view(pool->base(), pool->size(),
                           options.repair ? &*pool : nullptr);
  return fsck_internal::run(view, options, options.repair);
}

FsckReport fsck_image(std::span<const std::byte> image,
                      const FsckOptions& options) {
  fsck_internal::View view(image.data(), image.size(), nullptr);
  return fsck_internal::run(view, options, false);
}

}  // namespace zest::pmfs
