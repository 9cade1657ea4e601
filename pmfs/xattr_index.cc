#include "pmfs/xattr_index.h"

#include <cstring>
#include <tuple>

namespace zest::pmfs {
namespace {

constexpr uint64_t kFullSlots = (uint64_t{1} << kXattrSlots) - 1;
constexpr std::byte kZeroEntry[kXattrInlineMax] = {};

uint64_t run_mask(uint8_t nslots, uint8_t slot) {
  return ((uint64_t{1} << nslots) - 1) << slot;
}

// First slot of `nslots` consecutive free slots in `used` (`want` when it
// is one), or -1.
int find_run(uint64_t used, uint8_t nslots, int want = -1) {
  uint64_t r = ~used & kFullSlots;
  for (uint8_t i = 1; i < nslots; ++i) r &= (~used & kFullSlots) >> i;
  if (!r) return -1;
  if (want >= 0 && (r >> want & 1)) return want;
  return __builtin_ctzll(r);
}

uint64_t entry_offset(uint64_t block, uint8_t slot) {
  return block * kBlockSize + sizeof(XattrSlotBlockHeader) +
         uint64_t(slot) * kXattrSlotSize;
}

// The bytes of a slot entry (nslots * 64, zero padded), sealed: the name and
// value, or (record != 0) a reference to the record. Returns nslots.
uint8_t encode_entry(std::string_view name, std::span<const std::byte> value,
                     uint64_t record, uint32_t nblocks, std::byte* out) {
  XattrSlotHeader h{};
  h.namelen = static_cast<uint16_t>(name.size());
  h.valuelen = static_cast<uint32_t>(value.size());
  size_t len = sizeof(h);
  if (record) {
    h.flags = kXattrSlotRecord;
    const XattrRecordRef ref{record, nblocks, 0};
    std::memcpy(out + len, &ref, sizeof(ref));
    len += sizeof(ref);
  } else {
    std::memcpy(out + len, name.data(), name.size());
    len += name.size();
    if (!value.empty()) std::memcpy(out + len, value.data(), value.size());
    len += value.size();
  }
  h.nslots = static_cast<uint8_t>(xattr_slots(len));
  std::memset(out + len, 0, h.nslots * kXattrSlotSize - len);
  std::memcpy(out, &h, sizeof(h));
  h.csum = crc32c(out, len);
  std::memcpy(out, &h.csum, sizeof(h.csum));
  return h.nslots;
}

// A record in the new blocks [record, record + nblocks): header, name,
// value, the rest of its last block zero; not yet fenced (the commit's
// first fence persists it before anything points to it).
void write_record(pmem::PoolMap& pool, uint64_t record, uint32_t nblocks,
                  std::string_view name, std::span<const std::byte> value) {
  XattrRecordHeader rh{};
  rh.namelen = static_cast<uint16_t>(name.size());
  rh.valuelen = static_cast<uint32_t>(value.size());
  uint32_t crc = crc32c(&rh, sizeof(rh));
  crc = crc32c(name.data(), name.size(), crc);
  crc = crc32c(value.data(), value.size(), crc);
  rh.csum = crc;
  const uint64_t at = record * kBlockSize;
  const uint64_t len = sizeof(rh) + name.size() + value.size();
  pool.write_nt(at, &rh, sizeof(rh));
  pool.write_nt(at + sizeof(rh), name.data(), name.size());
  if (!value.empty())
    pool.write_nt(at + sizeof(rh) + name.size(), value.data(), value.size());
  if (const uint64_t end = uint64_t(nblocks) * kBlockSize; len < end)
    pool.zero(at + len, end - len);
}

}  // namespace

XattrSlotBlockHeader make_xattr_slot_block_header(uint64_t ino, uint64_t next) {
  XattrSlotBlockHeader h{};
  h.magic = kXattrSlotBlockMagic;
  h.ino = ino;
  h.next = next;
  h.csum = crc32c(&h, sizeof(h));
  return h;
}

uint64_t XattrIndex::value_offset(Map::const_iterator it) {
  const XattrLoc& x = it->second;
  if (x.kind == XattrLoc::Kind::Inline) {
    return entry_offset(x.block, x.slot) + sizeof(XattrSlotHeader) +
           it->first.size();
  }
  return x.record * kBlockSize + sizeof(XattrRecordHeader) + it->first.size();
}

// --- mount
// ----------------------------------------------------------------------

void XattrIndex::load_block(uint64_t block, bool table) {
  Block b;
  b.table = table;
  b.prev = tail_;
  if (tail_) {
    blocks_.at(tail_).next = block;
  } else {
    head_ = block;
  }
  tail_ = block;
  blocks_[block] = b;
}

bool XattrIndex::load(std::string name, const XattrLoc& loc) {
  auto bit = blocks_.find(loc.block);
  if (bit == blocks_.end()) return false;
  Block& b = bit->second;
  uint64_t m = 0;
  if (loc.kind != XattrLoc::Kind::Table) {
    if (loc.nslots == 0 || loc.slot + loc.nslots > kXattrSlots) return false;
    m = run_mask(loc.nslots, loc.slot);
    if (b.used & m) return false;
  }
  const uint64_t len = name.size() + loc.valuelen;
  if (!map_.emplace(std::move(name), loc).second) return false;
  b.used |= m;
  ++b.entries;
  bytes_ += len;
  return true;
}

void XattrIndex::finish_load() {
  for (auto& [n, b] : blocks_) {
    if (b.used != kFullSlots) mark_candidate(n);
  }
}

// --- placement
// ----------------------------------------------------------------

std::pair<uint64_t, int> XattrIndex::place(uint8_t nslots) {
  size_t looked = 0;
  size_t k = cand_.size();
  while (k > 0 && looked < 4) {
    const uint64_t b = cand_[k - 1];
    Block& blk = blocks_.at(b);
    if (blk.used == kFullSlots && k == cand_.size()) {
      cand_.pop_back();  // full: no longer a candidate
      blk.cand = false;
      --k;
      continue;
    }
    const int s = find_run(blk.used, nslots);
    if (s >= 0) return {b, s};
    --k;
    ++looked;
  }
  return {0, -1};
}

void XattrIndex::mark_candidate(uint64_t b) {
  Block& blk = blocks_.at(b);
  if (blk.table || blk.cand) return;
  blk.cand = true;
  cand_.push_back(b);
}

void XattrIndex::drop_candidate(uint64_t b) {
  auto it = blocks_.find(b);
  if (it == blocks_.end() || !it->second.cand) return;
  it->second.cand = false;
  for (size_t k = cand_.size(); k > 0; --k) {
    if (cand_[k - 1] == b) {
      cand_.erase(cand_.begin() + static_cast<ptrdiff_t>(k - 1));
      break;
    }
  }
}

void XattrIndex::erase_block(uint64_t b) {
  drop_candidate(b);
  blocks_.erase(b);
}

void XattrIndex::save(uint64_t b) {
  Undo u{Undo::What::Block};
  u.block = b;
  if (auto it = blocks_.find(b); it != blocks_.end()) u.before = it->second;
  log_.push_back(u);
}

void XattrIndex::stage_next(const Env& env, uint64_t b, uint64_t next,
                            Transaction& tx) const {
  const uint64_t off = b * kBlockSize;
  if (blocks_.at(b).table) {
    // Tables are never new, so the pool holds their committed header.
    XattrTableHeader h;
    std::memcpy(&h, env.pool->at<XattrTableHeader>(off), sizeof(h));
    h.next = next;
    h.csum = 0;
    h.csum = crc32c(&h, sizeof(h));
    tx.put(off, h);
  } else {
    tx.put(off, make_xattr_slot_block_header(env.ino, next));
  }
}

// --- setting
// -------------------------------------------------------------------

Status XattrIndex::stage_set(const Env& env, DiskInode& nd,
                             std::string_view name,
                             std::span<const std::byte> value,
                             Transaction& tx) {
  const auto old = map_.find(name);
  const bool replace = old != map_.end();
  const uint64_t old_bytes =
      replace ? old->first.size() + old->second.valuelen : 0;
  const uint64_t new_bytes = bytes_ - old_bytes + name.size() + value.size();
  if ((!replace && map_.size() >= kXattrMaxCount) ||
      new_bytes > kXattrMaxBytes) {
    return Errno(ENOSPC);
  }
  const bool whole =
      sizeof(XattrSlotHeader) + name.size() + value.size() <= kXattrInlineMax;
  const uint8_t nslots = static_cast<uint8_t>(
      xattr_slots(xattr_entry_len(name.size(), value.size())));

  // What can fail comes first: the record (a large value), then the place
  // of the entry: where the old one was when it still fits there (so a
  // replace never empties a block), else a block with room, else a new
  // block at the tail of the chain.
  uint64_t record = 0;
  uint32_t nblocks = 0;
  if (!whole) {
    nblocks =
        static_cast<uint32_t>(xattr_record_blocks(name.size(), value.size()));
    auto r = env.alloc->alloc_contiguous(nblocks);
    if (!r) return r.error();
    record = *r;
    write_record(*env.pool, record, nblocks, name, value);
  }
  uint64_t block = 0;
  int slot = -1;
  if (replace && old->second.kind != XattrLoc::Kind::Table) {
    const XattrLoc& o = old->second;
    slot = find_run(blocks_.at(o.block).used & ~run_mask(o.nslots, o.slot),
                    nslots, o.slot);
    if (slot >= 0) block = o.block;
  }
  if (!block) std::tie(block, slot) = place(nslots);
  const bool new_block = block == 0;
  if (new_block) {
    auto b = env.alloc->alloc_contiguous(1);
    if (!b) {
      if (record) env.alloc->free(record, nblocks);
      return b.error();
    }
    block = *b;
    slot = 0;
    const XattrSlotBlockHeader h = make_xattr_slot_block_header(env.ino, 0);
    env.pool->zero(block * kBlockSize, kBlockSize);
    env.pool->write_nt(block * kBlockSize, &h, sizeof(h));
  }

  // Nothing fails from here on: DRAM changes (logged for rollback) and the
  // transaction's records.
  if (open_++ == 0) {
    saved_head_ = head_;
    saved_tail_ = tail_;
    saved_bytes_ = bytes_;
  }
  if (record) fresh_.push_back({record, nblocks});
  if (new_block) {
    fresh_.push_back({block, 1});
    save(block);
    Block nb;
    nb.prev = tail_;
    if (tail_) {
      save(tail_);
      stage_next(env, tail_, block, tx);
      blocks_.at(tail_).next = block;
    } else {
      nd.xattr_block = block;
      head_ = block;
    }
    tail_ = block;
    blocks_[block] = nb;
    mark_candidate(block);
  }
  if (replace) {
    // The old entry goes in the same transaction (before the new one, which
    // may reuse its slots: records are applied in order).
    const XattrLoc& o = old->second;
    save(o.block);
    Block& ob = blocks_.at(o.block);
    if (o.kind == XattrLoc::Kind::Table) {
      const XattrEntry zero{};
      tx.put(o.block * kBlockSize + sizeof(XattrTableHeader) +
                 o.entry * sizeof(XattrEntry),
             zero);
    } else {
      tx.put(entry_offset(o.block, o.slot), kZeroEntry,
             o.nslots * kXattrSlotSize);
      ob.used &= ~run_mask(o.nslots, o.slot);
    }
    --ob.entries;
    if (o.has_record()) tx.free_after(o.record, o.nblocks);
    if (o.block != block) mark_candidate(o.block);
  }
  save(block);
  std::byte buf[kXattrInlineMax];
  encode_entry(name, value, record, nblocks, buf);
  tx.put(entry_offset(block, static_cast<uint8_t>(slot)), buf,
         nslots * kXattrSlotSize);
  Block& nb = blocks_.at(block);
  nb.used |= run_mask(nslots, static_cast<uint8_t>(slot));
  ++nb.entries;

  XattrLoc loc;
  loc.kind = whole ? XattrLoc::Kind::Inline : XattrLoc::Kind::Record;
  loc.slot = static_cast<uint8_t>(slot);
  loc.nslots = nslots;
  loc.valuelen = static_cast<uint32_t>(value.size());
  loc.block = block;
  loc.record = record;
  loc.nblocks = nblocks;
  Undo u{replace ? Undo::What::NameLoc : Undo::What::NameAdded};
  if (replace) {
    u.it = old;
    u.loc = old->second;
    old->second = loc;
  } else {
    u.it = map_.emplace(std::string(name), loc).first;
  }
  log_.push_back(u);
  bytes_ = new_bytes;
  return {};
}

void XattrIndex::finish() {
  if (open_ > 0 && --open_ == 0) {
    log_.clear();
    fresh_.clear();
  }
}

void XattrIndex::rollback(BlockAllocator& alloc) {
  if (open_ > 0) --open_;
  if (log_.empty())
    return;  // an earlier rollback of the same transaction did it all
  for (auto u = log_.rbegin(); u != log_.rend(); ++u) {
    switch (u->what) {
      case Undo::What::Block:
        if (!u->before) {
          erase_block(u->block);
        } else {
          auto cur = blocks_.find(u->block);
          const bool cand = cur != blocks_.end() && cur->second.cand;
          Block& b = blocks_[u->block];
          b = *u->before;
          b.cand = cand;
        }
        break;
      case Undo::What::NameAdded:
        map_.erase(u->it);
        break;
      case Undo::What::NameLoc:
        u->it->second = u->loc;
        break;
    }
  }
  for (const Undo& u : log_) {
    if (u.what != Undo::What::Block) continue;
    auto b = blocks_.find(u.block);
    if (b != blocks_.end() && b->second.used != kFullSlots)
      mark_candidate(u.block);
  }
  head_ = saved_head_;
  tail_ = saved_tail_;
  bytes_ = saved_bytes_;
  for (const BlockRun& r : fresh_) alloc.free(r.start, r.count);
  log_.clear();
  fresh_.clear();
  open_ = 0;
}

// --- removing
// ------------------------------------------------------------------

XattrIndex::Removal XattrIndex::stage_remove(const Env& env, DiskInode& nd,
                                             std::string_view name,
                                             Transaction& tx) {
  const XattrLoc& x = map_.find(name)->second;
  Removal r;
  if (x.has_record()) tx.free_after(x.record, x.nblocks);
  if (map_.size() == 1) {
    // The last attribute: the whole chain goes (also tables a replace left
    // empty), and nothing is written into it.
    for (const auto& [b, blk] : blocks_) tx.free_after(b, 1);
    nd.xattr_block = 0;
    r.chain = true;
    return r;
  }
  const Block& blk = blocks_.at(x.block);
  if (blk.entries == 1) {
    // Its block empties: unlinked and freed (not written into).
    if (blk.prev) {
      stage_next(env, blk.prev, blk.next, tx);
    } else {
      nd.xattr_block = blk.next;
    }
    tx.free_after(x.block, 1);
    r.unlinked = x.block;
  } else if (x.kind == XattrLoc::Kind::Table) {
    const XattrEntry zero{};
    tx.put(x.block * kBlockSize + sizeof(XattrTableHeader) +
               x.entry * sizeof(XattrEntry),
           zero);
  } else {
    tx.put(entry_offset(x.block, x.slot), kZeroEntry,
           x.nslots * kXattrSlotSize);
  }
  return r;
}

void XattrIndex::apply_remove(std::string_view name, const Removal& r) {
  if (r.chain) return clear();
  auto it = map_.find(name);
  if (it == map_.end()) return;
  const XattrLoc x = it->second;
  bytes_ -= it->first.size() + x.valuelen;
  map_.erase(it);
  if (r.unlinked) {
    const Block blk = blocks_.at(r.unlinked);
    if (blk.prev) {
      blocks_.at(blk.prev).next = blk.next;
    } else {
      head_ = blk.next;
    }
    if (blk.next) {
      blocks_.at(blk.next).prev = blk.prev;
    } else {
      tail_ = blk.prev;
    }
    erase_block(r.unlinked);
    return;
  }
  Block& blk = blocks_.at(x.block);
  --blk.entries;
  if (x.kind != XattrLoc::Kind::Table) {
    blk.used &= ~run_mask(x.nslots, x.slot);
    mark_candidate(x.block);
  }
}

void XattrIndex::free_all(Transaction& tx) const {
  for (const auto& [b, blk] : blocks_) tx.free_after(b, 1);
  for (const auto& [name, x] : map_) {
    if (x.has_record()) tx.free_after(x.record, x.nblocks);
  }
}

void XattrIndex::clear() {
  map_.clear();
  blocks_.clear();
  cand_.clear();
  head_ = tail_ = bytes_ = 0;
  open_ = 0;
  log_.clear();
  fresh_.clear();
}

}  // namespace zest::pmfs
