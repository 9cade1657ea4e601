// PmFsImpl as a fs::LayoutProvider: hands out a file's extents (map) and
// turns extents a direct-access client wrote unwritten -> written (commit).
// docs/layouts.md describes the rules; zest/fs/layout.h the promises.
//
// map(Write) reserves the holes of the range exactly as fallocate with
// KEEP_SIZE does (fill_window, Fill::Reserve: new unwritten extents, one
// transaction, no size or time change), except that it leaves unwritten
// extents unwritten instead of zeroing them, since another mapper may be
// writing there. Nothing on the media is new: a mapped extent is an
// ordinary unwritten extent, and one that is never committed stays
// preallocation (reads as zeros, counted in st_blocks and statfs, freed by
// truncate and unlink as any other).
//
// commit re-checks every extent against the current extent map under the
// inode's exclusive lock, so a client can only flip blocks the file owns,
// unwritten (or already written) at exactly the place it names; with the
// layout generation (Inode::layout_gen) that also refuses extents mapped
// before a truncate, punch, zero range or copy-on-write moved them.
#include <algorithm>
#include <mutex>
#include <shared_mutex>

#include "pmfs/pm_fs.h"

namespace zest::pmfs {

namespace {

using State = fs::LayoutExtent::State;

int not_regular(const Inode& i) { return i.is_dir() ? EISDIR : EINVAL; }

}  // namespace

void PmFsImpl::layout_of(const Inode& i, uint64_t a, uint64_t b,
                         std::vector<fs::LayoutExtent>* out) const {
  const ExtentMap& em = *i.ext;
  auto it = em.from(a);
  for (uint64_t pos = a; pos < b;) {
    if (it != em.map().end() && it->first <= pos) {
      const uint64_t e = std::min(b, it->first + it->second.count);
      const State st = (it->second.flags & kExtentUnwritten) ? State::Unwritten : State::Written;
      out->push_back({pos * kBlockSize, (e - pos) * kBlockSize,
                      (it->second.pool + (pos - it->first)) * kBlockSize, st});
      pos = e;
      ++it;
    } else {
      const uint64_t e = std::min(b, it != em.map().end() ? it->first : b);
      out->push_back({pos * kBlockSize, (e - pos) * kBlockSize, 0, State::Hole});
      pos = e;
    }
  }
}

Result<fs::Layout> PmFsImpl::map(fs::Ino ino, uint64_t offset, uint64_t length,
                                 fs::LayoutIntent intent) {
  if (length == 0) return Errno(EINVAL);
  if (offset > kMaxFileSize || length > kMaxFileSize - offset) return Errno(EFBIG);
  InodePtr i = get(ino);
  if (!i) return Errno(ENOENT);
  if (!i->is_reg()) return Errno(not_regular(*i));
  const uint64_t end = offset + length;
  const uint64_t a = offset / kBlockSize;
  fs::Layout out;
  if (intent == fs::LayoutIntent::Read) {
    std::shared_lock lock(i->mu);
    if (i->freed) return Errno(ENOENT);
    out.generation = i->layout_gen;
    out.file_size = i->d.size;
    const uint64_t b = (std::min(end, i->d.size) + kBlockSize - 1) / kBlockSize;
    if (a < b) layout_of(*i, a, b, &out.extents);
    return out;
  }
  if (!writable()) return Errno(EROFS);
  std::unique_lock lock(i->mu);
  if (i->freed) return Errno(ENOENT);
  const uint64_t b = (end + kBlockSize - 1) / kBlockSize;
  uint64_t mapped = 0;
  const ExtentMap& em = *i->ext;
  for (auto it = em.from(a); it != em.map().end() && it->first < b; ++it) {
    mapped += std::min(b, it->first + it->second.count) - std::max(a, it->first);
  }
  if (mapped < b - a) {
    // Refuse up front when the holes cannot be filled: nothing changes.
    if (b - a - mapped > balloc_.free_blocks()) return Errno(ENOSPC);
    if (Status s = fill_window(*i, a, b, Fill::Reserve, offset, end, i->d.size); !s) {
      return s.error();  // ENOSPC (chain blocks), E2BIG, EIO: nothing changed
    }
  }
  out.generation = i->layout_gen;
  out.file_size = i->d.size;
  layout_of(*i, a, b, &out.extents);
  return out;
}

Status PmFsImpl::commit(fs::Ino ino, uint64_t generation,
                        std::span<const fs::LayoutExtent> extents,
                        std::optional<uint64_t> new_size, timespec mtime) {
  InodePtr i = get(ino);
  if (!i) return Errno(ENOENT);
  if (!i->is_reg()) return Errno(not_regular(*i));
  if (!writable()) return Errno(EROFS);
  std::unique_lock lock(i->mu);
  if (i->freed || generation != i->layout_gen) return Errno(ESTALE);

  if (mtime.tv_nsec < 0 || mtime.tv_nsec >= 1000000000) return Errno(EINVAL);
  // The shape: non-empty, block aligned, sorted, not overlapping.
  uint64_t prev_end = 0;
  for (const fs::LayoutExtent& x : extents) {
    if (x.length == 0 || ((x.offset | x.length | x.pool_offset) & (kBlockSize - 1)) != 0 ||
        x.offset > kMaxFileSize || x.length > kMaxFileSize - x.offset || x.offset < prev_end) {
      return Errno(EINVAL);
    }
    prev_end = x.offset + x.length;
  }
  // Each extent must be mapped, without gaps, to exactly its pool blocks.
  const ExtentMap& em = *i->ext;
  bool flips = false;
  for (const fs::LayoutExtent& x : extents) {
    const uint64_t fa = x.offset / kBlockSize, fb = fa + x.length / kBlockSize;
    const uint64_t pa = x.pool_offset / kBlockSize;
    auto it = em.containing(fa);
    for (uint64_t pos = fa; pos < fb; ++it) {
      if (it == em.map().end() || it->first > pos) return Errno(EINVAL);
      if (it->second.pool + (pos - it->first) != pa + (pos - fa)) return Errno(EINVAL);
      if (it->second.flags & kExtentUnwritten) flips = true;
      pos = std::min(fb, it->first + it->second.count);
    }
  }
  // A growing size must end in a block that is written after the flip.
  const bool grows = new_size && *new_size > i->d.size;
  if (grows) {
    const uint64_t lb = (*new_size - 1) / kBlockSize;
    bool written = false;
    if (auto it = em.containing(lb); it != em.map().end()) {
      written = !(it->second.flags & kExtentUnwritten);
      for (const fs::LayoutExtent& x : extents) {
        if (lb >= x.offset / kBlockSize && lb < (x.offset + x.length) / kBlockSize) written = true;
      }
    }
    if (!written) return Errno(EINVAL);
  }

  Transaction& tx = Transaction::local();
  ExtentMap::Edit& e = ExtentMap::Edit::local(em.head());
  DiskInode nd = i->d;
  Status st = {};
  if (flips) {
    // The window from the first to the last committed block, restated
    // with the committed parts of unwritten extents written.
    thread_local std::vector<Mapping> maps;
    maps.clear();
    const uint64_t wa = extents.front().offset / kBlockSize;
    const uint64_t wb = (extents.back().offset + extents.back().length) / kBlockSize;
    size_t k = 0;
    auto cstart = [&](size_t n) { return extents[n].offset / kBlockSize; };
    auto cend = [&](size_t n) { return (extents[n].offset + extents[n].length) / kBlockSize; };
    for (auto it = em.from(wa); it != em.map().end() && it->first < wb; ++it) {
      const uint64_t s = std::max(wa, it->first);
      const uint64_t en = std::min(wb, it->first + it->second.count);
      const uint64_t p = it->second.pool + (s - it->first);
      if (!(it->second.flags & kExtentUnwritten)) {
        maps.push_back({s, p, en - s, it->second.flags});
        continue;
      }
      for (uint64_t pos = s; pos < en;) {
        while (k < extents.size() && cend(k) <= pos) ++k;
        if (k < extents.size() && cstart(k) <= pos) {
          const uint64_t q = std::min(en, cend(k));
          maps.push_back({pos, p + (pos - s), q - pos, 0});
          pos = q;
        } else {
          const uint64_t q = k < extents.size() ? std::min(en, cstart(k)) : en;
          maps.push_back({pos, p + (pos - s), q - pos, kExtentUnwritten});
          pos = q;
        }
      }
    }
    st = i->ext->stage(e, wa, wb, maps, env(i->ino), tx);
  }
  if (st) {
    if (flips) {
      nd.blocks = static_cast<uint64_t>(static_cast<int64_t>(nd.blocks) + e.blocks_delta);
      nd.extent_head = e.new_head;
    }
    if (grows) nd.size = *new_size;
    const timespec now = now_ts();
    nd.mtime_sec = mtime.tv_sec;
    nd.mtime_nsec = static_cast<uint32_t>(mtime.tv_nsec);
    nd.ctime_sec = now.tv_sec;
    nd.ctime_nsec = static_cast<uint32_t>(now.tv_nsec);
    put_inode(tx, i->ino, nd);
    st = journal_->fits(tx) ? commit(tx) : Status(Errno(E2BIG));
  }
  if (!st) {
    if (flips) i->ext->abort(e, balloc_);
    return st;
  }
  if (flips) i->ext->apply(e);
  i->d = nd;
  return {};
}

}  // namespace zest::pmfs
