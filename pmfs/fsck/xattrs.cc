// Step 2 of each pass, for any inode with extended attributes: its xattr
// chain (docs/format.md, "Extended attributes"). Every chain block must be
// in the data region, seen once, with a valid header owned by this inode,
// an XattrTable or an XattrSlotBlock (else the chain is cut before it).
// Every used table entry and slot entry must be valid: a slot entry fits
// its block, takes the slots its length needs, has known flags and a valid
// checksum; a record lies in the data region, is of a plausible size, has a
// valid checksum and takes exactly the blocks it fills (an intact record
// with a longer entry gets the entry shortened); a slot entry that refers
// to a record agrees with it on the name and value lengths. Names are
// 1..255 bytes without NUL and unique across the chain. Bad entries are
// cleared; every chain block and record is claimed for blocks.cc. Slot
// blocks and chains of more than one block need kIncompatXattrSlots in the
// superblocks: without it, repair sets it (mount refuses such a pool).
//
// Assumes inodes.cc: the inode is live and xattr_block is in the data
// region. Runs in walk_contents's loop, inode by inode, after the inode's
// extents and directory chain.
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

void Pass::walk_xattrs(uint64_t ino, uint64_t head) {
  std::unordered_set<uint64_t> visited;
  std::unordered_set<std::string> names;
  uint64_t prev = 0;
  size_t prev_claim = SIZE_MAX;
  for (uint64_t b = head; b != 0;) {
    std::string problem;
    Kind kind = Kind::XattrTable;
    uint64_t next = 0;
    if (!in_data(b)) {
      problem =
          fmt::format("points outside the data region ({})", outside(b, 1));
    } else if (!visited.insert(b).second) {
      problem = "loops back (cycle)";
    } else {
      const auto magic = view_.get<uint32_t>(b * kBlockSize + sizeof(uint32_t));
      uint64_t owner = ino;
      bool csum_ok = true;
      if (magic == kXattrTableMagic) {
        const auto h = view_.get<XattrTableHeader>(b * kBlockSize);
        csum_ok = h.csum == csum_of(h);
        owner = h.ino;
        next = h.next;
      } else if (magic == kXattrSlotBlockMagic) {
        const auto h = view_.get<XattrSlotBlockHeader>(b * kBlockSize);
        csum_ok = h.csum == csum_of(h);
        owner = h.ino;
        next = h.next;
        kind = Kind::XattrSlotBlock;
      }
      if (magic != kXattrTableMagic && magic != kXattrSlotBlockMagic) {
        problem = fmt::format("has bad magic {:#x}", magic);
      } else if (!csum_ok) {
        problem = "has a bad header checksum";
      } else if (owner != ino) {
        problem = fmt::format("belongs to inode {}", owner);
      }
    }
    if (!problem.empty()) {
      rep_.error(
          fmt::format("inode {}: xattr chain block {} {}", ino, b, problem));
      cut_chain(ino, prev, Kind::XattrTable, b);
      break;
    }
    const size_t c = claim(b, 1, ino, prev, kind);
    claims_[c].parent = prev_claim;
    if (kind == Kind::XattrSlotBlock || next != 0) xattr_chains_ = true;
    if (kind == Kind::XattrTable) {
      check_xattr_table(ino, b, c, &names);
    } else {
      for (size_t s = 0; s < kXattrSlots;)
        s += check_xattr_slot(ino, b, s, c, &names);
    }
    prev = b;
    prev_claim = c;
    b = next;
  }
}

// What is wrong with the record of `nblocks` blocks at `block` (empty:
// nothing); *name and *valuelen get what it holds, *need the blocks it
// fills.
std::string Pass::xattr_record_problem(uint64_t block, uint32_t nblocks,
                                       std::string* name, uint32_t* valuelen,
                                       uint64_t* need) {
  *need = nblocks;
  if (nblocks == 0 || nblocks > kXattrMaxRecordBlocks) {
    return fmt::format("record of {} blocks (1..{} allowed)", nblocks,
                       kXattrMaxRecordBlocks);
  }
  if (!in_data(block, nblocks))
    return fmt::format("record {}", outside(block, nblocks));
  const auto r = view_.get<XattrRecordHeader>(block * kBlockSize);
  const uint64_t len = sizeof(r) + uint64_t(r.namelen) + r.valuelen;
  if (r.namelen == 0 || r.namelen > 255) {
    return fmt::format("record name length {} is not 1..255", r.namelen);
  }
  if (r.valuelen > kXattrMaxValue) {
    return fmt::format("record value length {} exceeds {}", r.valuelen,
                       kXattrMaxValue);
  }
  if (len > uint64_t(nblocks) * kBlockSize) {
    return fmt::format("record of {} bytes does not fit its {} blocks", len,
                       nblocks);
  }
  *need = (len + kBlockSize - 1) / kBlockSize;
  std::vector<std::byte>& record = scratch_;
  record.resize(static_cast<size_t>(len));
  view_.read(block * kBlockSize, record.data(), record.size());
  std::memset(record.data(), 0, sizeof(uint32_t));  // csum taken as zero
  name->assign(reinterpret_cast<const char*>(record.data()) + sizeof(r),
               r.namelen);
  *valuelen = r.valuelen;
  if (crc32c(record.data(), record.size()) != r.csum)
    return "record checksum mismatch";
  return {};
}

// A name's problem across the chain (empty: none; then it is taken).
std::string Pass::xattr_name_problem(const std::string& name,
                                     std::unordered_set<std::string>* names) {
  if (name.find('\0') != std::string::npos) {
    return fmt::format("name {} contains NUL", quote(name));
  }
  if (!names->insert(name).second)
    return fmt::format("duplicate name {}", quote(name));
  return {};
}

void Pass::check_xattr_table(uint64_t ino, uint64_t table, size_t table_claim,
                             std::unordered_set<std::string>* names) {
  for (size_t i = 0; i < kXattrsPerTable; ++i) {
    const uint64_t off =
        table * kBlockSize + sizeof(XattrTableHeader) + i * sizeof(XattrEntry);
    auto e = view_.get<XattrEntry>(off);
    std::string problem;
    std::string name;
    uint32_t valuelen = 0;
    uint64_t need = e.nblocks;  // blocks the record fills
    if (e.block == 0) {
      if (all_zero(&e, sizeof(e))) continue;
      problem = "free entry is not clear";
    } else if (e.csum != csum_of(e)) {
      problem = "checksum mismatch";
    } else {
      problem =
          xattr_record_problem(e.block, e.nblocks, &name, &valuelen, &need);
      if (problem.empty()) problem = xattr_name_problem(name, names);
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
    // A record takes exactly the blocks it fills (mount checks this): an
    // intact record with a longer entry gets the entry shortened.
    if (need != e.nblocks) {
      rep_.error(
          fmt::format("inode {}: xattr table block {} entry {}: record {} "
                      "fills {} blocks but the entry "
                      "says {}",
                      ino, table, i, quote(name), need, e.nblocks));
      if (repair_) {
        rep_.repair(
            fmt::format("inode {}: xattr entry {} set to the {} blocks of its "
                        "record (blocks {}+{} freed)",
                        ino, i, need, e.block + need, e.nblocks - need));
        e.nblocks = static_cast<uint32_t>(need);
        e.csum = csum_of(e);
        view_.write_pool(off, &e, sizeof(e));
      }
    }
    const size_t c = claim(e.block, e.nblocks, ino, off, Kind::XattrRecord);
    claims_[c].parent = table_claim;
  }
}

// Checks the slot entry starting at `slot`; returns how many slots to
// advance.
size_t Pass::check_xattr_slot(uint64_t ino, uint64_t b, size_t slot,
                              size_t block_claim,
                              std::unordered_set<std::string>* names) {
  const uint64_t off =
      b * kBlockSize + sizeof(XattrSlotBlockHeader) + slot * kXattrSlotSize;
  auto h = view_.get<XattrSlotHeader>(off);
  if (h.nslots == 0) return 1;  // free slot
  const size_t room = kXattrSlots - slot;
  // How far a damaged entry reaches: its nslots if that is plausible.
  const size_t span = h.nslots <= room ? h.nslots : 1;
  const bool rec = h.flags & kXattrSlotRecord;
  const uint64_t len = sizeof(h) + (rec ? sizeof(XattrRecordRef)
                                        : uint64_t(h.namelen) + h.valuelen);
  std::string problem;
  std::string name;
  uint64_t need = 0;
  XattrRecordRef ref{};
  if (h.nslots > room) {
    problem =
        fmt::format("entry of {} slots does not fit in the block", h.nslots);
  } else if (h.flags & ~kXattrSlotRecord) {
    problem = fmt::format("unknown flags {:#x}", h.flags);
  } else if (h.namelen == 0 || h.namelen > 255) {
    problem = fmt::format("name length {} is not 1..255", h.namelen);
  } else if (h.valuelen > kXattrMaxValue) {
    problem =
        fmt::format("value length {} exceeds {}", h.valuelen, kXattrMaxValue);
  } else if (len > kXattrInlineMax || xattr_slots(len) != h.nslots) {
    problem = fmt::format("{} slots for an entry of {} bytes", h.nslots, len);
  } else {
    std::array<std::byte, kXattrInlineMax> bytes;
    view_.read(off, bytes.data(), len);
    std::memset(bytes.data(), 0, sizeof(uint32_t));  // csum taken as zero
    if (crc32c(bytes.data(), len) != h.csum) {
      problem = "checksum mismatch";
    } else if (!rec) {
      name.assign(reinterpret_cast<const char*>(bytes.data()) + sizeof(h),
                  h.namelen);
    } else {
      std::memcpy(&ref, bytes.data() + sizeof(h), sizeof(ref));
      uint32_t valuelen = 0;
      problem =
          xattr_record_problem(ref.block, ref.nblocks, &name, &valuelen, &need);
      if (problem.empty() &&
          (name.size() != h.namelen || valuelen != h.valuelen)) {
        problem = fmt::format(
            "entry says a name of {} and a value of {} bytes, its record {} "
            "and {}",
            h.namelen, h.valuelen, name.size(), valuelen);
      }
    }
    if (problem.empty()) problem = xattr_name_problem(name, names);
  }
  if (!problem.empty()) {
    rep_.error(fmt::format("inode {}: xattr slot block {} slot {}: {}", ino, b,
                           slot, problem));
    if (repair_) {
      zero(off, span * kXattrSlotSize);
      rep_.repair(fmt::format(
          "inode {}: xattr slot block {} slot {}: {} slots cleared{}", ino, b,
          slot, span,
          name.empty() ? "" : " (attribute " + quote(name) + " lost)"));
    }
    return span;
  }
  if (rec) {
    if (need != ref.nblocks) {
      rep_.error(
          fmt::format("inode {}: xattr slot block {} slot {}: record {} fills "
                      "{} blocks but the entry says "
                      "{}",
                      ino, b, slot, quote(name), need, ref.nblocks));
      if (repair_) {
        rep_.repair(fmt::format(
            "inode {}: xattr slot block {} slot {} set to the {} blocks of its "
            "record (blocks "
            "{}+{} freed)",
            ino, b, slot, need, ref.block + need, ref.nblocks - need));
        ref.nblocks = static_cast<uint32_t>(need);
        std::array<std::byte, sizeof(h) + sizeof(ref)> bytes;
        h.csum = 0;
        std::memcpy(bytes.data(), &h, sizeof(h));
        std::memcpy(bytes.data() + sizeof(h), &ref, sizeof(ref));
        h.csum = crc32c(bytes.data(), bytes.size());
        std::memcpy(bytes.data(), &h.csum, sizeof(h.csum));
        view_.write_pool(off, bytes.data(), bytes.size());
      }
    }
    const size_t c =
        claim(ref.block, ref.nblocks, ino, off, Kind::XattrSlotRecord);
    claims_[c].parent = block_claim;
  }
  return h.nslots;
}

// After walk_contents: the xattr chains seen need kIncompatXattrSlots.
void Pass::check_xattr_feature() {
  if (!xattr_chains_ || (sb_.features_incompat & kIncompatXattrSlots)) return;
  rep_.error(
      "the pool holds xattr slot blocks or chains of xattr blocks, but the "
      "superblocks lack "
      "the kIncompatXattrSlots feature");
  if (!repair_) return;
  Superblock s = sb_;
  s.features_incompat |= kIncompatXattrSlots;
  seal(&s);
  std::array<std::byte, kBlockSize> block{};
  std::memcpy(block.data(), &s, sizeof(s));
  view_.write_pool(0, block.data(), kBlockSize);
  view_.write_pool(kBlockSize, block.data(), kBlockSize);
  features_set_ |= kIncompatXattrSlots;
  rep_.repair("superblocks: feature kIncompatXattrSlots set");
}

}  // namespace zest::pmfs::fsck_internal
