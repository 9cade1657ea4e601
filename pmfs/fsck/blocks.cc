// Step 3 of each pass: block ownership across the pool (what e2fsck's
// passes 1B-1D and 5 do for duplicate blocks and the bitmaps). Step 2
// claimed every block a structure uses (chain blocks, extents, xattr
// tables, slot blocks and records), in inode order, then chain order; no
// block may be claimed twice. Of two claims that overlap, the later one is
// dropped (its extent or xattr entry cleared, its chain cut), after all of
// them are known. The union of the claims is
// the blocks_in_use statistic. pmfs has no on-media block bitmap: mount
// rebuilds the allocator from the live inodes, so a block no one claims is
// free, and there is no count to check.
//
// Assumes every claim lies in the data region (the claiming steps checked
// it) and that claims_ holds them in the order they were made.
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

size_t Pass::claim(uint64_t start, uint64_t count, uint64_t ino, uint64_t ref,
                   Kind kind, uint64_t file_block) {
  claims_.push_back({start, count, ino, ref, file_block, kind});
  return claims_.size() - 1;
}

std::string Pass::owner(const Claim& c) const {
  switch (c.kind) {
    case Kind::Data:
      return fmt::format("inode {} data (file blocks {}+{})", c.ino,
                         c.file_block, c.count);
    case Kind::ExtentBlock:
      return fmt::format("inode {} extent block", c.ino);
    case Kind::DirBlock:
      return fmt::format("directory {} directory block", c.ino);
    case Kind::XattrTable:
      return fmt::format("inode {} xattr table", c.ino);
    case Kind::XattrSlotBlock:
      return fmt::format("inode {} xattr slot block", c.ino);
    case Kind::XattrRecord:
    case Kind::XattrSlotRecord:
      return fmt::format("inode {} xattr record", c.ino);
  }
  return "?";
}

void Pass::drop_claim(const Claim& c) {
  if (!repair_) return;
  switch (c.kind) {
    case Kind::Data:
      drop_extent(c.ino, c.ref, c.file_block, c.count,
                  "blocks owned by another structure");
      break;
    case Kind::ExtentBlock:
    case Kind::DirBlock:
      cut_chain(c.ino, c.ref, c.kind, c.start);
      break;
    case Kind::XattrTable:
    case Kind::XattrSlotBlock:
      cut_chain(c.ino, c.ref, c.kind, c.start);
      break;
    case Kind::XattrRecord:
      zero(c.ref, sizeof(XattrEntry));
      rep_.repair(
          fmt::format("inode {}: xattr record at block {} shared with another "
                      "structure: entry cleared, attribute lost",
                      c.ino, c.start));
      break;
    case Kind::XattrSlotRecord:
      zero(c.ref,
           kXattrSlotSize);  // an entry that refers to a record: one slot
      rep_.repair(
          fmt::format("inode {}: xattr record at block {} shared with another "
                      "structure: slot entry cleared, attribute lost",
                      c.ino, c.start));
      break;
  }
}

// Claims are made in inode order, then chain order, so a higher index is
// the later owner: it is the one dropped.
void Pass::check_ownership() {
  rep_.progress("checking block ownership");
  std::vector<size_t> order;
  order.reserve(claims_.size());
  for (size_t i = 0; i < claims_.size(); ++i) {
    if (!claims_[i].dropped) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return claims_[a].start < claims_[b].start ||
           (claims_[a].start == claims_[b].start && a < b);
  });
  std::vector<size_t> drops;  // claims dropped, in the order found
  size_t reach = SIZE_MAX;    // the claim reaching furthest so far
  uint64_t covered_to = 0;    // blocks_in_use counts the union
  uint64_t in_use = 0;
  for (size_t k : order) {
    const Claim& c = claims_[k];
    uint64_t end = c.start + c.count;
    if (end > covered_to) {
      in_use += end - std::max(c.start, covered_to);
      covered_to = end;
    }
    if (reach != SIZE_MAX &&
        c.start < claims_[reach].start + claims_[reach].count) {
      const Claim& r = claims_[reach];
      uint64_t lo = c.start;
      uint64_t hi = std::min(end, r.start + r.count);
      size_t first = std::min(k, reach), later = std::max(k, reach);
      rep_.error(fmt::format("blocks {}+{} are claimed twice: by {} and by {}",
                             lo, hi - lo, owner(claims_[first]),
                             owner(claims_[later])));
      claims_[later].dropped = true;
      drops.push_back(later);
      if (later == reach) reach = k;
      continue;
    }
    if (reach == SIZE_MAX || end > claims_[reach].start + claims_[reach].count)
      reach = k;
  }
  stats_->blocks_in_use = in_use;
  // Repairs once every drop is known: a claim whose parent (the block
  // holding its pointer) was dropped is out of its chain already, and that
  // block may now be another structure's, so it is not written.
  for (size_t d : drops) {
    const Claim& c = claims_[d];
    if (c.parent != SIZE_MAX && claims_[c.parent].dropped) continue;
    drop_claim(c);
  }
}

}  // namespace zest::pmfs::fsck_internal
