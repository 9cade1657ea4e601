#include <algorithm>

#include "direct/client.h"

namespace zest::direct {

void ExtentCache::erase_range(uint64_t a, uint64_t b) {
  // Cut extents overlapping [a, b) down to what lies outside it.
  auto it = m_.lower_bound(a);
  if (it != m_.begin()) --it;
  std::vector<w::Extent> keep;
  while (it != m_.end() && it->first < b) {
    const w::Extent e = it->second;
    const uint64_t ee = e.offset + e.length;
    if (ee <= a) {
      ++it;
      continue;
    }
    it = m_.erase(it);
    if (e.offset < a) {
      w::Extent l = e;
      l.length = a - e.offset;
      keep.push_back(l);
    }
    if (ee > b) {
      w::Extent r = e;
      r.offset = b;
      r.length = ee - b;
      if (r.state != w::kHole) r.pool_offset = e.pool_offset + (b - e.offset);
      keep.push_back(r);
    }
  }
  for (const w::Extent& e : keep) m_[e.offset] = e;
}

void ExtentCache::insert(const std::vector<w::Extent>& ext) {
  for (const w::Extent& e : ext) {
    if (e.length == 0) continue;
    erase_range(e.offset, e.offset + e.length);
    m_[e.offset] = e;
  }
}

const w::Extent* ExtentCache::find(uint64_t off) const {
  auto it = m_.upper_bound(off);
  if (it == m_.begin()) return nullptr;
  --it;
  const w::Extent& e = it->second;
  return off < e.offset + e.length ? &e : nullptr;
}

void ExtentCache::mark_written(uint64_t off, uint64_t len) {
  std::vector<w::Extent> pieces;
  for (uint64_t pos = off; pos < off + len;) {
    const w::Extent* e = find(pos);
    if (!e) return;  // not ours to know: left alone
    const uint64_t end = std::min(off + len, e->offset + e->length);
    w::Extent p = *e;
    p.pool_offset = e->pool_offset + (pos - e->offset);
    p.offset = pos;
    p.length = end - pos;
    p.state = w::kWritten;
    pieces.push_back(p);
    pos = end;
  }
  insert(pieces);
}

}  // namespace zest::direct
