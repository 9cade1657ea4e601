#include "pmfs/extent_map.h"

#include <algorithm>
#include <cstring>

namespace zest::pmfs {
namespace {

// Map nodes erased by one edit are reused by the next inserts, so the
// steady-state write path does not allocate map nodes.
thread_local std::vector<ExtentMap::Map::node_type> t_nodes;
constexpr size_t kNodeCacheMax = 64;

bool same(const Mapping& m, uint64_t file, const ExtentMap::Ext& x) {
  return m.file == file && m.pool == x.pool && m.count == x.count && m.flags == x.flags;
}

}  // namespace

DiskExtent make_extent(uint64_t file, uint64_t pool, uint64_t count, uint32_t flags) {
  DiskExtent d{};
  d.file_block = file;
  d.pool_block = pool;
  d.count = static_cast<uint32_t>(count);
  d.flags = kExtentValid | flags;
  d.csum = crc32c(&d, sizeof(d));
  return d;
}

bool extent_csum_ok(const DiskExtent& e) {
  DiskExtent c = e;
  c.csum = 0;
  return crc32c(&c, sizeof(c)) == e.csum;
}

ExtentMap::Edit& ExtentMap::Edit::local(uint64_t head) {
  thread_local Edit e;
  e.clear(head);
  return e;
}

bool ExtentMap::load(uint32_t slot, uint64_t file, uint64_t pool, uint64_t count,
                     uint32_t flags) {
  auto next = map_.lower_bound(file);
  if (next != map_.end() && next->first < file + count) return false;
  if (next != map_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.count > file) return false;
  }
  map_.emplace_hint(next, file, Ext{pool, count, flags, slot});
  blocks_ += count;
  return true;
}

void ExtentMap::finish_load() {
  std::vector<bool> used(chain_.size() * kExtentsPerBlock, false);
  for (const auto& [f, x] : map_) used[x.slot] = true;
  free_slots_.clear();
  for (size_t s = used.size(); s-- > 0;) {
    if (!used[s]) free_slots_.push_back(static_cast<uint32_t>(s));
  }
}

ExtentMap::Map::const_iterator ExtentMap::from(uint64_t fb) const {
  auto it = map_.upper_bound(fb);
  if (it != map_.begin()) {
    auto p = std::prev(it);
    if (p->first + p->second.count > fb) return p;
  }
  return it;
}

ExtentMap::Map::const_iterator ExtentMap::containing(uint64_t fb) const {
  auto it = from(fb);
  if (it != map_.end() && it->first <= fb) return it;
  return map_.end();
}

size_t ExtentMap::count_in(uint64_t a, uint64_t b, size_t stop_at) const {
  size_t n = 0;
  for (auto it = from(a); it != map_.end() && it->first < b && n < stop_at; ++it) ++n;
  return n;
}

uint64_t ExtentMap::slot_offset(uint32_t slot, const Edit& e) const {
  const size_t idx = slot / kExtentsPerBlock;
  const uint64_t block = idx < chain_.size() ? chain_[idx] : e.new_chain[idx - chain_.size()];
  return block * kBlockSize + sizeof(ExtentBlockHeader) +
         (slot % kExtentsPerBlock) * sizeof(DiskExtent);
}

Result<uint32_t> ExtentMap::take_slot(Edit& e, const Env& env) {
  if (e.taken < free_slots_.size()) return free_slots_[free_slots_.size() - 1 - e.taken++];
  if (e.extra_free.empty()) {
    // A new chain block, initialised and flushed before the transaction
    // links it (as the new head); the journal's first fence persists it.
    std::vector<BlockRun>& runs = *[] {
      thread_local std::vector<BlockRun> r;
      r.clear();
      return &r;
    }();
    if (Status s = env.alloc->alloc(1, 0, 1, &runs); !s) return s.error();
    const uint64_t block = runs[0].start;
    ExtentBlockHeader h{};
    h.magic = kExtentBlockMagic;
    h.ino = env.ino;
    h.next = e.new_head;
    h.csum = crc32c(&h, sizeof(h));
    env.pool->zero(block * kBlockSize, kBlockSize);
    env.pool->write_nt(block * kBlockSize, &h, sizeof(h));
    const size_t idx = chain_.size() + e.new_chain.size();
    e.new_chain.push_back(block);
    e.new_head = block;
    for (size_t s = kExtentsPerBlock; s-- > 0;) {
      e.extra_free.push_back(static_cast<uint32_t>(idx * kExtentsPerBlock + s));
    }
  }
  const uint32_t slot = e.extra_free.back();
  e.extra_free.pop_back();
  return slot;
}

Status ExtentMap::stage(Edit& e, uint64_t a, uint64_t b, std::span<const Mapping> maps,
                        const Env& env, Transaction& tx) {
  // Old extents overlapping the window or touching it (merge candidates).
  auto it = map_.lower_bound(a);
  if (it != map_.begin()) {
    auto p = std::prev(it);
    if (p->first + p->second.count >= a) it = p;
  }
  for (; it != map_.end() && it->first <= b; ++it) e.olds.push_back(*it);

  // The window's new contents: kept outer parts of old extents, then maps.
  for (const auto& [f, x] : e.olds) {
    if (f < a) e.pieces.push_back({f, x.pool, std::min(x.end(f), a) - f, x.flags});
  }
  for (const Mapping& m : maps) {
    if (m.count) e.pieces.push_back(m);
  }
  for (const auto& [f, x] : e.olds) {
    if (x.end(f) > b) {
      const uint64_t s = std::max(f, b);
      e.pieces.push_back({s, x.pool + (s - f), x.end(f) - s, x.flags});
    }
  }
  // Merge neighbours that are file- and pool-contiguous with equal flags.
  size_t out = 0;
  for (size_t k = 0; k < e.pieces.size(); ++k) {
    Mapping& m = e.pieces[k];
    if (out > 0) {
      Mapping& last = e.pieces[out - 1];
      if (last.file + last.count == m.file && last.pool + last.count == m.pool &&
          last.flags == m.flags && last.count + m.count <= UINT32_MAX) {
        last.count += m.count;
        continue;
      }
    }
    e.pieces[out++] = m;
  }
  e.pieces.resize(out);

  // Blocks of old extents inside the window that the new maps do not keep
  // in place are freed after the commit.
  for (const auto& [f, x] : e.olds) {
    const uint64_t s = std::max(f, a), end = std::min(x.end(f), b);
    if (s >= end) continue;
    e.blocks_delta -= static_cast<int64_t>(end - s);
    uint64_t cursor = s;
    for (const Mapping& m : maps) {
      const uint64_t os = std::max(cursor, m.file), oe = std::min(end, m.file + m.count);
      if (os >= oe || m.pool - m.file != x.pool - f) continue;
      if (os > cursor) tx.free_after(x.pool + (cursor - f), os - cursor);
      cursor = oe;
    }
    if (end > cursor) tx.free_after(x.pool + (cursor - f), end - cursor);
  }
  if (!tx.frees().empty()) tx.frees_data_of(env.ino);
  for (const Mapping& m : maps) e.blocks_delta += static_cast<int64_t>(m.count);

  // Slots: an unchanged extent keeps its slot and needs no record; the
  // others reuse old slots, then take free ones.
  thread_local std::vector<uint8_t> kept;
  kept.assign(e.olds.size(), 0);
  thread_local std::vector<uint8_t> unchanged;
  unchanged.assign(e.pieces.size(), 0);
  for (size_t k = 0; k < e.pieces.size(); ++k) {
    for (size_t o = 0; o < e.olds.size(); ++o) {
      if (!kept[o] && same(e.pieces[k], e.olds[o].first, e.olds[o].second)) {
        kept[o] = 1;
        unchanged[k] = 1;
        break;
      }
    }
  }
  size_t next_old = 0;
  for (size_t k = 0; k < e.pieces.size(); ++k) {
    if (unchanged[k]) continue;
    const Mapping& m = e.pieces[k];
    while (next_old < e.olds.size() && kept[next_old]) ++next_old;
    uint32_t slot;
    if (next_old < e.olds.size()) {
      slot = e.olds[next_old].second.slot;
      e.erase.push_back(e.olds[next_old].first);
      kept[next_old++] = 2;  // slot reused
    } else {
      auto s = take_slot(e, env);
      if (!s) return s.error();
      slot = *s;
    }
    tx.put(slot_offset(slot, e), make_extent(m.file, m.pool, m.count, m.flags));
    e.inserts.push_back({m.file, Ext{m.pool, m.count, m.flags, slot}});
  }
  for (size_t o = 0; o < e.olds.size(); ++o) {
    if (kept[o]) continue;
    const DiskExtent zero{};
    tx.put(slot_offset(e.olds[o].second.slot, e), zero);
    e.freed_slots.push_back(e.olds[o].second.slot);
    e.erase.push_back(e.olds[o].first);
  }
  return {};
}

void ExtentMap::apply(Edit& e) {
  for (uint64_t key : e.erase) {
    auto node = map_.extract(key);
    if (t_nodes.size() < kNodeCacheMax) t_nodes.push_back(std::move(node));
  }
  for (const auto& [f, x] : e.inserts) {
    if (!t_nodes.empty()) {
      auto node = std::move(t_nodes.back());
      t_nodes.pop_back();
      node.key() = f;
      node.mapped() = x;
      map_.insert(std::move(node));
    } else {
      map_.emplace(f, x);
    }
  }
  free_slots_.resize(free_slots_.size() - e.taken);
  for (uint32_t s : e.freed_slots) free_slots_.push_back(s);
  for (uint32_t s : e.extra_free) free_slots_.push_back(s);
  for (uint64_t b : e.new_chain) chain_.push_back(b);
  head_ = e.new_head;
  blocks_ = static_cast<uint64_t>(static_cast<int64_t>(blocks_) + e.blocks_delta);
}

void ExtentMap::abort(Edit& e, BlockAllocator& alloc) {
  for (uint64_t b : e.new_chain) alloc.free(b, 1);
  e.clear(head_);
}

void ExtentMap::free_all(Transaction& tx) const {
  for (const auto& [f, x] : map_) tx.free_after(x.pool, x.count);
  for (uint64_t b : chain_) tx.free_after(b, 1);
}

void ExtentMap::reset() {
  map_.clear();
  chain_.clear();
  free_slots_.clear();
  blocks_ = 0;
  head_ = 0;
}

}  // namespace zest::pmfs
