// Step 2 of each pass, for any inode with extended attributes: its xattr
// table and records. The table must have a valid header owned by this
// inode (else xattr_block is cleared); every used entry must be valid, its
// record in the data region, of a plausible size, with a valid checksum and
// a unique name without NUL, and take exactly the blocks it fills. Bad
// entries are cleared; the table and every record are claimed for
// blocks.cc.
//
// Assumes inodes.cc: the inode is live and xattr_block is in the data
// region. Runs in walk_contents's loop, inode by inode, after the inode's
// extents and directory chain.
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

namespace {

constexpr uint64_t kMaxXattrRecord =
    sizeof(XattrRecordHeader) + 255 + kXattrMaxValue;
constexpr uint64_t kMaxXattrBlocks =
    (kMaxXattrRecord + kBlockSize - 1) / kBlockSize;

}  // namespace

void Pass::walk_xattrs(uint64_t ino, uint64_t table) {
  auto clear_table = [&](const std::string& problem) {
    rep_.error(
        fmt::format("inode {}: xattr table block {} {}", ino, table, problem));
    patch_inode(
        ino, [](DiskInode& x) { x.xattr_block = 0; },
        "xattr_block cleared; all its extended attributes are lost");
  };
  auto h = view_.get<XattrTableHeader>(table * kBlockSize);
  if (h.magic != kXattrTableMagic)
    return clear_table(fmt::format("has bad magic {:#x}", h.magic));
  if (h.csum != csum_of(h)) return clear_table("has a bad header checksum");
  if (h.ino != ino)
    return clear_table(fmt::format("belongs to inode {}", h.ino));
  claim(table, 1, ino, 0, Kind::XattrTable);

  std::unordered_set<std::string> names;
  std::vector<std::byte> record;
  for (size_t i = 0; i < kXattrsPerTable; ++i) {
    uint64_t off =
        table * kBlockSize + sizeof(XattrTableHeader) + i * sizeof(XattrEntry);
    auto e = view_.get<XattrEntry>(off);
    std::string problem;
    std::string name;
    uint64_t need = e.nblocks;  // blocks the record fills
    if (e.block == 0) {
      if (all_zero(&e, sizeof(e))) continue;
      problem = "free entry is not clear";
    } else if (e.csum != csum_of(e)) {
      problem = "checksum mismatch";
    } else if (e.nblocks == 0 || e.nblocks > kMaxXattrBlocks) {
      problem = fmt::format("record of {} blocks (1..{} allowed)", e.nblocks,
                            kMaxXattrBlocks);
    } else if (!in_data(e.block, e.nblocks)) {
      problem = fmt::format("record {}", outside(e.block, e.nblocks));
    } else {
      auto r = view_.get<XattrRecordHeader>(e.block * kBlockSize);
      uint64_t len = sizeof(r) + uint64_t(r.namelen) + r.valuelen;
      if (r.namelen == 0 || r.namelen > 255) {
        problem = fmt::format("record name length {} is not 1..255", r.namelen);
      } else if (r.valuelen > kXattrMaxValue) {
        problem = fmt::format("record value length {} exceeds {}", r.valuelen,
                              kXattrMaxValue);
      } else if (len > uint64_t(e.nblocks) * kBlockSize) {
        problem = fmt::format("record of {} bytes does not fit its {} blocks",
                              len, e.nblocks);
      } else {
        need = (len + kBlockSize - 1) / kBlockSize;
        record.resize(static_cast<size_t>(len));
        view_.read(e.block * kBlockSize, record.data(), record.size());
        std::memset(record.data(), 0,
                    sizeof(uint32_t));  // csum taken as zero
        name.assign(reinterpret_cast<const char*>(record.data()) + sizeof(r),
                    r.namelen);
        if (crc32c(record.data(), record.size()) != r.csum) {
          problem = "record checksum mismatch";
        } else if (name.find('\0') != std::string::npos) {
          problem = fmt::format("record name {} contains NUL", quote(name));
        } else if (!names.insert(name).second) {
          problem = fmt::format("duplicate name {}", quote(name));
        }
      }
    }
    if (!problem.empty()) {
      rep_.error(fmt::format("inode {}: xattr table block {} entry {}: {}", ino,
                             table, i, problem));
      if (repair_) {
        zero(off, sizeof(XattrEntry));
        rep_.repair(fmt::format(
            "inode {}: xattr entry {} cleared{}", ino, i,
            name.empty() ? "" : " (attribute " + quote(name) + " lost)"));
      }
      continue;
    }
    // A record takes exactly the blocks it fills (mount checks this):
    // an intact record with a longer entry gets the entry shortened.
    if (need != e.nblocks) {
      rep_.error(fmt::format(
          "inode {}: xattr table block {} entry {}: record {} fills {} "
          "blocks but the entry says {}",
          ino, table, i, quote(name), need, e.nblocks));
      if (repair_) {
        rep_.repair(fmt::format(
            "inode {}: xattr entry {} set to the {} blocks of its record "
            "(blocks {}+{} freed)",
            ino, i, need, e.block + need, e.nblocks - need));
        e.nblocks = static_cast<uint32_t>(need);
        e.csum = csum_of(e);
        view_.write_pool(off, &e, sizeof(e));
      }
    }
    claim(e.block, e.nblocks, ino, off, Kind::XattrRecord);
  }
}

}  // namespace zest::pmfs::fsck_internal
