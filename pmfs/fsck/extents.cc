// Step 2 of each pass, for regular files and long symlinks: the extent
// chain. Every chain block must be in the data region, seen once, with a
// valid header owned by this inode (else the chain is cut before it);
// every used extent slot must be valid and map data-region blocks below
// the largest file; no two extents of a file may map one file block (the
// later one is dropped); a long symlink maps exactly one written block, at
// file block 0. `blocks` is then set from what the extents map, and an
// oversized file is cut to the end of its data. Every chain block and
// extent is claimed for blocks.cc.
//
// Assumes inodes.cc: the inode is live, has_extents() holds, extent_head
// is 0 or in the data region, and a symlink's size is 1..4095. Runs in
// walk_contents's loop, inode by inode, before the inode's directory chain
// and xattr table (the order of the claims decides double claims).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

namespace {

// File block numbers whose byte offsets still fit in off_t.
constexpr uint64_t kMaxFileBlocks = (uint64_t(1) << 63) / kBlockSize;

}  // namespace

struct Pass::FileExtent {
  uint64_t file_block;
  uint64_t count;
  uint64_t off;
  size_t claim;
  bool unwritten;
};

void Pass::walk_extents(const Live& l) {
  const uint64_t ino = l.ino;
  const size_t first_claim = claims_.size();
  std::vector<FileExtent> extents;
  std::unordered_set<uint64_t> visited;
  uint64_t prev = 0;
  for (uint64_t b = l.d.extent_head; b != 0;) {
    ExtentBlockHeader h{};
    const std::string problem =
        chain_block_problem(b, kExtentBlockMagic, ino, visited, &h);
    if (!problem.empty()) {
      rep_.error(
          fmt::format("inode {}: extent chain block {} {}", ino, b, problem));
      cut_chain(ino, prev, Kind::ExtentBlock, b);
      break;
    }
    claim(b, 1, ino, prev, Kind::ExtentBlock);
    for (size_t i = 0; i < kExtentsPerBlock; ++i) {
      uint64_t off =
          b * kBlockSize + sizeof(ExtentBlockHeader) + i * sizeof(DiskExtent);
      check_extent(ino, b, i, off, &extents);
    }
    prev = b;
    b = h.next;
  }

  // No two extents of one file map the same file block: the later one in
  // chain order is dropped.
  std::vector<size_t> order(extents.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return extents[a].file_block < extents[b].file_block ||
           (extents[a].file_block == extents[b].file_block && a < b);
  });
  std::vector<bool> dropped(extents.size(), false);
  size_t reach = SIZE_MAX;  // the extent reaching furthest so far
  for (size_t k : order) {
    const FileExtent& e = extents[k];
    if (reach != SIZE_MAX) {
      const FileExtent& r = extents[reach];
      if (e.file_block < r.file_block + r.count) {
        size_t victim = std::max(k, reach);
        size_t keep = std::min(k, reach);
        rep_.error(fmt::format(
            "inode {}: extents overlap: file blocks {}+{} and {}+{}", ino,
            extents[keep].file_block, extents[keep].count,
            extents[victim].file_block, extents[victim].count));
        drop_extent(ino, extents[victim].off, extents[victim].file_block,
                    extents[victim].count,
                    "overlaps another extent of the file");
        dropped[victim] = true;
        claims_[extents[victim].claim].dropped = true;
        if (victim == reach) reach = k;
        continue;
      }
    }
    if (reach == SIZE_MAX ||
        e.file_block + e.count >
            extents[reach].file_block + extents[reach].count) {
      reach = k;
    }
  }
  if ((l.d.mode & S_IFMT) == S_IFLNK &&
      !check_symlink_extents(l, extents, dropped)) {
    // Freed: what it claimed must not cost another owner its blocks.
    for (size_t c = first_claim; c < claims_.size(); ++c)
      claims_[c].dropped = true;
    return;
  }
  uint64_t blocks = 0;
  uint64_t data_end = 0;  // past the last written block
  for (size_t i = 0; i < extents.size(); ++i) {
    if (dropped[i]) continue;
    blocks += extents[i].count;
    if (!extents[i].unwritten)
      data_end = std::max(data_end, extents[i].file_block + extents[i].count);
  }
  if (blocks != l.d.blocks) {
    rep_.error(fmt::format("inode {}: blocks {} but its extents map {}", ino,
                           l.d.blocks, blocks));
    patch_inode(
        ino, [&](DiskInode& x) { x.blocks = blocks; },
        fmt::format("blocks set to {}", blocks));
  }
  if ((l.d.mode & S_IFMT) == S_IFREG && l.d.size > kMaxFileSize) {
    // data_end <= kMaxFileBlocks, so this cannot wrap.
    const uint64_t size = std::min(data_end * kBlockSize, kMaxFileSize);
    rep_.error(fmt::format("inode {}: size {} exceeds the largest file ({})",
                           ino, l.d.size, kMaxFileSize));
    patch_inode(
        ino, [&](DiskInode& x) { x.size = size; },
        fmt::format("size set to {} (the end of its last written block)",
                    size));
  }
}

// A long symlink's target (at most 4095 bytes) lives in one block: the
// file maps exactly one written block, at file block 0, as mount reads
// it. Other extents are dropped and a longer target extent is shortened;
// without a target block the symlink is freed (false).
bool Pass::check_symlink_extents(const Live& l,
                                 std::vector<FileExtent>& extents,
                                 std::vector<bool>& dropped) {
  const uint64_t ino = l.ino;
  size_t target = SIZE_MAX;
  for (size_t i = 0; i < extents.size() && target == SIZE_MAX; ++i) {
    if (!dropped[i] && extents[i].file_block == 0 && !extents[i].unwritten)
      target = i;
  }
  if (target == SIZE_MAX) {
    rep_.error(fmt::format(
        "inode {}: symlink target of {} bytes is not mapped by a written "
        "extent at file block 0",
        ino, l.d.size));
    info_[ino].state = State::Bad;
    free_inode(ino, "unreadable symlink");
    return false;
  }
  for (size_t i = 0; i < extents.size(); ++i) {
    if (i == target || dropped[i]) continue;
    const FileExtent& e = extents[i];
    rep_.error(fmt::format(
        "inode {}: symlink maps file blocks {}+{} besides its target block",
        ino, e.file_block, e.count));
    drop_extent(ino, e.off, e.file_block, e.count, "a symlink maps one block");
    dropped[i] = true;
    claims_[e.claim].dropped = true;
  }
  FileExtent& t = extents[target];
  if (t.count != 1) {
    rep_.error(fmt::format(
        "inode {}: symlink target extent maps {} blocks, not 1", ino, t.count));
    if (repair_) {
      auto x = view_.get<DiskExtent>(t.off);
      x.count = 1;
      x.csum = csum_of(x);
      view_.write_pool(t.off, &x, sizeof(x));
      rep_.repair(fmt::format(
          "inode {}: symlink target extent shortened to 1 block (pool "
          "blocks {}+{} freed)",
          ino, x.pool_block + 1, t.count - 1));
      claims_[t.claim].count = 1;
    }
    t.count = 1;
  }
  return true;
}

void Pass::drop_extent(uint64_t ino, uint64_t off, uint64_t file_block,
                       uint64_t count, const char* why) {
  if (!repair_) return;
  zero(off, sizeof(DiskExtent));
  rep_.repair(fmt::format(
      "inode {}: extent for file blocks {}+{} cleared ({}); its data is "
      "lost",
      ino, file_block, count, why));
}

void Pass::check_extent(uint64_t ino, uint64_t b, size_t slot, uint64_t off,
                        std::vector<FileExtent>* extents) {
  auto e = view_.get<DiskExtent>(off);
  std::string problem;
  if (e.flags == 0) {
    if (all_zero(&e, sizeof(e))) return;
    problem = "free slot is not clear";
  } else if (e.csum != csum_of(e)) {
    problem = "checksum mismatch";
  } else if ((e.flags & ~(kExtentValid | kExtentUnwritten)) ||
             !(e.flags & kExtentValid)) {
    problem = fmt::format("bad flags {:#x}", e.flags);
  } else if (e.count == 0) {
    problem = "count 0";
  } else if (!in_data(e.pool_block, e.count)) {
    problem = fmt::format("maps pool blocks outside the data region ({})",
                          outside(e.pool_block, e.count));
  } else if (e.file_block >= kMaxFileBlocks ||
             e.count > kMaxFileBlocks - e.file_block) {
    problem = fmt::format("file blocks {}+{} exceed the largest file",
                          e.file_block, e.count);
  }
  if (!problem.empty()) {
    rep_.error(fmt::format("inode {}: extent block {} slot {}: {}", ino, b,
                           slot, problem));
    drop_extent(ino, off, e.file_block, e.count, "corrupt");
    return;
  }
  ++stats_->extents_checked;
  size_t c = claim(e.pool_block, e.count, ino, off, Kind::Data, e.file_block);
  extents->push_back(
      {e.file_block, e.count, off, c, (e.flags & kExtentUnwritten) != 0});
}

}  // namespace zest::pmfs::fsck_internal
