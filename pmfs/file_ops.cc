// PmFsImpl file operations: open, read, write (copy-on-write), truncate,
// fallocate, lseek, copy_file_range.
//
// Data path: a write copies the new bytes (and the untouched parts of its
// first and last blocks) into newly allocated blocks with non-temporal
// stores, except into blocks that are allocated but unwritten (fallocate),
// which are written in place (they read as zeros until the transaction
// flips them). One transaction then points the extents at the new blocks
// and updates size, blocks and times; the old blocks are freed after it.
// Steady state, the write path allocates nothing: the transaction, the
// extent edit, the run and mapping lists are per-thread and reused, and
// extent map nodes are recycled.
//
// Journaled overwrite: a small write (up to kJournalDataMax bytes) that lies
// wholly inside written extents puts its bytes into the redo journal as
// records aimed at the blocks themselves, with the inode, in one
// transaction; the commit applies them in place. As atomic as copy-on-write
// (the journal commits all of it or none), with no allocation, no extent
// change and no fragmentation; it costs a second copy of the bytes, so
// larger writes stay copy-on-write.
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "base/log.h"
#include "pmfs/pm_fs.h"

namespace zest::pmfs {

const std::byte* zero_area();

namespace {

// Blocks one fallocate/zero/punch transaction covers at most when the
// whole range does not fit one transaction (do_fallocate).
constexpr uint64_t kWindowBlocks = 256;
// Overwrites up to this size go through the journal (see the top).
constexpr uint64_t kJournalDataMax = 16 * 1024;

int not_regular(const Inode& i) { return i.is_dir() ? EISDIR : EINVAL; }

// Data changed: mtime and ctime, and with `kill` the set-id bits
// (zest/fs/posix_rules.h).
void stamp_data_change(DiskInode& d, fs::TimeOp op, bool kill) {
  stamp(d, fs::times_for(op).inode, now_ts());
  if (kill) d.mode = fs::kill_suid_sgid(d.mode);
}

struct Scratch {
  Scratch() {
    maps.reserve(600);
    runs.reserve(300);
  }
  std::vector<Mapping> maps;
  std::vector<BlockRun> runs;  // allocated by this operation (rollback)
  void clear() {
    maps.clear();
    runs.clear();
  }
};
Scratch& scratch() {
  thread_local Scratch s;
  s.clear();
  return s;
}

// Pushes zeros in pieces the shared zero area can back.
void push_zeros(IovecList& iov, uint64_t n) {
  while (n > 0) {
    const uint64_t k = std::min<uint64_t>(n, kMaxIoChunk);
    iov.push(zero_area(), k);
    n -= k;
  }
}

}  // namespace

// --- open / release -------------------------------------------------------------

void PmFsImpl::open(const fs::Context& ctx, fs::Ino ino, uint32_t flags, fs::OpenReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (i->is_dir() && (flags & O_ACCMODE) != O_RDONLY) return r.error(EISDIR);
  std::unique_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  if ((flags & O_TRUNC) && i->is_reg()) {
    if (!writable()) return r.error(EROFS);
    DiskInode extra = i->d;
    stamp_data_change(extra, fs::TimeOp::Truncate, fs::open_trunc_kills_suid(ctx));
    if (Status s = truncate_locked(*i, 0, extra); !s) return r.error(s.error().value);
  }
  fs::OpenInfo o = open_info(flags, i.get());
  ++i->open_count;
  r.ok(o);
}

void PmFsImpl::release(const fs::Context&, fs::Ino ino, uint64_t, uint32_t, fs::StatusReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::unique_lock lock(i->mu);
  if (i->open_count > 0) --i->open_count;
  maybe_free(*i);
  r.ok();
}

void PmFsImpl::fsync(const fs::Context&, fs::Ino ino, uint64_t, bool, fs::StatusReply r) {
  // Every write is durable when it answers; only a lazytime atime waits.
  if (opts_.atime.lazy) {
    if (InodePtr i = get(ino)) {
      std::unique_lock lock(i->mu);
      flush_lazy_atime(*i);
    }
  }
  r.ok();
}

// --- read ----------------------------------------------------------------------

void PmFsImpl::read(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
                    uint32_t size, fs::DataReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_reg()) return r.error(not_regular(*i));
  // Before the reply: the kernel refetches atime after a read reply.
  note_access(*i, fh);
  IovecList iov;  // inline: no allocation for reads up to 1 MiB
  std::shared_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  const uint64_t fsize = i->d.size;
  if (offset < fsize) {
    const uint64_t end = offset + std::min<uint64_t>(size, fsize - offset);
    const std::byte* base = pool_.base();
    const ExtentMap& em = *i->ext;
    auto it = em.from(offset >> 12);
    uint64_t pos = offset;
    while (pos < end) {
      const uint64_t fb = pos >> 12;
      if (it != em.map().end() && it->first <= fb) {
        const uint64_t ext_end = (it->first + it->second.count) << 12;
        const uint64_t n = std::min(end, ext_end) - pos;
        if (it->second.flags & kExtentUnwritten) {
          push_zeros(iov, n);
        } else {
          iov.push(base + ((it->second.pool + (fb - it->first)) << 12) + (pos & 4095), n);
        }
        pos += n;
        ++it;
      } else {
        const uint64_t hole_end = it != em.map().end() ? (it->first << 12) : end;
        const uint64_t n = std::min(end, hole_end) - pos;
        push_zeros(iov, n);
        pos += n;
      }
    }
  }
  // The sink copies the bytes out before ok() returns: the blocks only need
  // to stay put while the lock is held (they are freed only by writers).
  r.ok(iov.span());
}

// --- write -----------------------------------------------------------------------

void PmFsImpl::fill_block(const Inode& i, uint64_t fb, uint64_t dst, uint64_t ov_start,
                          uint64_t ov_end, const std::byte* src) {
  const uint64_t to = dst * kBlockSize;
  const std::byte* old = nullptr;
  auto it = i.ext->containing(fb);
  if (it != i.ext->map().end() && !(it->second.flags & kExtentUnwritten) &&
      it->second.pool + (fb - it->first) != dst) {
    old = pool_.base() + (it->second.pool + (fb - it->first)) * kBlockSize;
  }
  auto keep = [&](uint64_t s, uint64_t e) {
    if (s >= e) return;
    if (old) {
      pool_.write_nt(to + s, old + s, e - s);
    } else {
      pool_.zero(to + s, e - s);
    }
  };
  keep(0, ov_start);
  if (ov_end > ov_start) {
    if (src) {
      pool_.write_nt(to + ov_start, src, ov_end - ov_start);
    } else {
      pool_.zero(to + ov_start, ov_end - ov_start);
    }
  }
  keep(ov_end, kBlockSize);
}

std::optional<Result<size_t>> PmFsImpl::overwrite_journaled(Inode& i, uint64_t off,
                                                            std::span<const std::byte> data,
                                                            bool kill) {
  const uint64_t end = off + data.size();
  const uint64_t fb0 = off >> 12, fb1 = (end + kBlockSize - 1) >> 12;
  const ExtentMap& em = *i.ext;
  Transaction& tx = Transaction::local();
  // One record per extent the range crosses; give up (copy-on-write) at a
  // hole or an unwritten extent.
  auto it = em.containing(fb0);
  for (uint64_t fb = fb0; fb < fb1; ++it) {
    if (it == em.map().end() || it->first > fb || (it->second.flags & kExtentUnwritten)) {
      return std::nullopt;
    }
    const uint64_t ext_end = it->first + it->second.count;
    const uint64_t a = std::max(off, fb << 12);
    const uint64_t b = std::min(end, ext_end << 12);
    tx.put((it->second.pool + (fb - it->first)) * kBlockSize + (a & (kBlockSize - 1)),
           data.data() + (a - off), b - a);
    fb = ext_end;
  }
  DiskInode nd = i.d;
  nd.size = std::max<uint64_t>(nd.size, end);
  stamp_data_change(nd, fs::TimeOp::Write, kill);
  put_inode(tx, i.ino, nd);
  if (!journal_->fits(tx)) return std::nullopt;
  if (Status st = commit(tx); !st) return Result<size_t>(st.error());
  i.d = nd;
  return Result<size_t>(data.size());
}

Result<size_t> PmFsImpl::write_locked(Inode& i, uint64_t off, std::span<const std::byte> data,
                                      bool kill) {
  if (off >= kMaxFileSize) return Errno(EFBIG);
  const uint64_t len = std::min<uint64_t>({data.size(), kMaxFileSize - off, kMaxIoChunk});
  if (len == 0) return size_t{0};
  if (!writable()) return Errno(EROFS);
  const uint64_t fb0 = off >> 12, fb1 = (off + len + kBlockSize - 1) >> 12;
  ExtentMap& em = *i.ext;
  if (len <= kJournalDataMax) {
    if (auto n = overwrite_journaled(i, off, data.first(len), kill)) return std::move(*n);
  }
  Scratch& sc = scratch();

  // Segments of the window: unwritten blocks are written in place, the rest
  // (holes and written blocks) get new blocks.
  uint64_t need = 0, goal = 0;
  {
    auto left = em.containing(fb0 - (fb0 > 0));
    if (fb0 > 0 && left != em.map().end() && left->first + left->second.count == fb0) {
      goal = left->second.pool + left->second.count;
    }
  }
  bool cow = false;  // replaces written blocks: they move (layout_gen)
  auto it = em.from(fb0);
  for (uint64_t pos = fb0; pos < fb1;) {
    if (it != em.map().end() && it->first <= pos) {
      const uint64_t e = std::min(fb1, it->first + it->second.count);
      if (it->second.flags & kExtentUnwritten) {
        sc.maps.push_back({pos, it->second.pool + (pos - it->first), e - pos, 0});
      } else {
        sc.maps.push_back({pos, 0, e - pos, 1});  // to allocate
        need += e - pos;
        cow = true;
      }
      pos = e;
      ++it;
    } else {
      const uint64_t e = std::min(fb1, it != em.map().end() ? it->first : fb1);
      sc.maps.push_back({pos, 0, e - pos, 1});
      need += e - pos;
      pos = e;
    }
  }
  if (cow) ++i.layout_gen;
  if (Status s = balloc_.alloc(need, goal, kMaxIoChunk / kBlockSize, &sc.runs); !s) {
    return s.error();
  }
  // Give the segments to allocate their blocks (splitting at run borders),
  // in place so the list stays sorted by file block.
  {
    thread_local std::vector<Mapping> out;
    out.clear();
    size_t r = 0;
    uint64_t used_in_run = 0;
    for (const Mapping& m : sc.maps) {
      if (m.flags != 1) {
        out.push_back(m);
        continue;
      }
      for (uint64_t f = m.file, left = m.count; left > 0;) {
        const BlockRun& run = sc.runs[r];
        const uint64_t k = std::min(left, run.count - used_in_run);
        out.push_back({f, run.start + used_in_run, k, 0});
        f += k;
        left -= k;
        used_in_run += k;
        if (used_in_run == run.count) {
          ++r;
          used_in_run = 0;
        }
      }
    }
    sc.maps.swap(out);
  }
  // Copy: whole blocks in one non-temporal copy per mapping, the partial
  // first/last blocks merged with their old contents.
  const std::byte* src = data.data();
  for (const Mapping& m : sc.maps) {
    uint64_t run_start = 0, run_len = 0;  // pending whole-block copy (bytes)
    for (uint64_t k = 0; k < m.count; ++k) {
      const uint64_t fb = m.file + k;
      const uint64_t bs = fb << 12;
      const uint64_t s = std::max(off, bs) - bs;
      const uint64_t e = std::min(off + len, bs + kBlockSize) - bs;
      if (s == 0 && e == kBlockSize) {
        if (run_len == 0) run_start = bs;
        run_len += kBlockSize;
        continue;
      }
      if (run_len) {
        pool_.write_nt((m.pool + ((run_start >> 12) - m.file)) * kBlockSize,
                       src + (run_start - off), run_len);
        run_len = 0;
      }
      fill_block(i, fb, m.pool + k, s, e, src + (bs + s - off));
    }
    if (run_len) {
      pool_.write_nt((m.pool + ((run_start >> 12) - m.file)) * kBlockSize, src + (run_start - off),
                     run_len);
    }
  }
  // One transaction: extents, then the inode.
  Transaction& tx = Transaction::local();
  ExtentMap::Edit& e = ExtentMap::Edit::local(em.head());
  DiskInode nd = i.d;
  Status st = em.stage(e, fb0, fb1, sc.maps, env(i.ino), tx);
  if (st) {
    nd.size = std::max<uint64_t>(nd.size, off + len);
    nd.blocks = static_cast<uint64_t>(static_cast<int64_t>(nd.blocks) + e.blocks_delta);
    nd.extent_head = e.new_head;
    stamp_data_change(nd, fs::TimeOp::Write, kill);
    put_inode(tx, i.ino, nd);
    st = commit(tx);
  }
  if (!st) {
    em.abort(e, balloc_);
    balloc_.free(sc.runs);
    return st.error();
  }
  em.apply(e);
  i.d = nd;
  return static_cast<size_t>(len);
}

void PmFsImpl::write(const fs::Context&, fs::Ino ino, uint64_t, uint64_t offset,
                     std::span<const std::byte> data, uint32_t flags, fs::WriteReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_reg()) return r.error(not_regular(*i));
  std::unique_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  size_t done = 0;
  while (done < data.size()) {  // FUSE sends at most 1 MiB: one pass
    auto n = write_locked(*i, offset + done, data.subspan(done), fs::write_kills_suid(flags));
    if (!n) {
      if (done == 0) return r.error(n.error().value);
      break;
    }
    if (*n == 0) break;
    done += *n;
  }
  r.ok(done);
}

// --- truncate ----------------------------------------------------------------------

Status PmFsImpl::trim_tail(Inode& i, uint64_t from) {
  ExtentMap& em = *i.ext;
  constexpr size_t kBatch = 128;
  // Clears kInodeTrimPending when nothing is left past `from`.
  auto done = [&]() -> Status {
    if (!(i.d.flags & kInodeTrimPending)) return {};
    Transaction& tx = Transaction::local();
    DiskInode nd = i.d;
    nd.flags &= ~kInodeTrimPending;
    put_inode(tx, i.ino, nd);
    if (Status s = commit(tx); !s) return s;
    i.d = nd;
    return {};
  };
  while (true) {
    auto last = em.map().end();
    if (em.map().empty()) return done();
    --last;
    if (last->first + last->second.count <= from) return done();
    // Window start: the kBatch-th extent from the end (or `from`).
    auto it = last;
    for (size_t k = 1; k < kBatch && it != em.map().begin(); ++k) --it;
    const uint64_t a = std::max(from, it->first);
    Transaction& tx = Transaction::local();
    ExtentMap::Edit& e = ExtentMap::Edit::local(em.head());
    Status st = em.stage(e, a, kMaxFileBlocks, {}, env(i.ino), tx);
    DiskInode nd = i.d;
    if (st) {
      nd.blocks = static_cast<uint64_t>(static_cast<int64_t>(nd.blocks) + e.blocks_delta);
      nd.extent_head = e.new_head;
      if (a == from) nd.flags &= ~kInodeTrimPending;  // the last batch
      put_inode(tx, i.ino, nd);
      st = commit(tx);
    }
    if (!st) {
      em.abort(e, balloc_);
      return st;
    }
    em.apply(e);
    i.d = nd;
  }
}

Status PmFsImpl::truncate_locked(Inode& i, uint64_t size, const DiskInode& extra) {
  if (size > kMaxFileSize) return Errno(EFBIG);
  if (!writable()) return Errno(EROFS);
  ExtentMap& em = *i.ext;
  Transaction& tx = Transaction::local();
  DiskInode nd = extra;
  nd.size = size;
  if (size > i.d.size) {
    // Growing: the bytes past the old end already read as zeros, and
    // blocks fallocated past it stay (as tmpfs).
    put_inode(tx, i.ino, nd);
    if (Status s = commit(tx); !s) return s;
    i.d = nd;
    return {};
  }
  // Shrinking (or dropping blocks fallocated past the end) frees and
  // copies blocks: mapped layouts go stale.
  ++i.layout_gen;
  if (size == 0) {
    // Drop the whole chain: no per-extent records, whatever the file's size.
    em.free_all(tx);
    tx.frees_data_of(i.ino);
    nd.blocks = 0;
    nd.extent_head = 0;
    put_inode(tx, i.ino, nd);
    if (Status s = commit(tx); !s) return s;
    em.reset();
    i.d = nd;
    return {};
  }
  Scratch& sc = scratch();
  const uint64_t keep = (size + kBlockSize - 1) >> 12;
  uint64_t window = keep;
  if (size & (kBlockSize - 1)) {
    // The block holding the new end keeps no bytes past it (those must read
    // as zeros if the file grows again): copy-on-write it.
    const uint64_t fb = size >> 12;
    auto it = em.containing(fb);
    if (it != em.map().end() && !(it->second.flags & kExtentUnwritten)) {
      if (Status s = balloc_.alloc(1, 0, 1, &sc.runs); !s) return s;
      fill_block(i, fb, sc.runs[0].start, size & (kBlockSize - 1), kBlockSize, nullptr);
      sc.maps.push_back({fb, sc.runs[0].start, 1, 0});
      window = fb;
    }
  }
  // Few extents past the end: all in this transaction. Many: this one sets
  // the size, later ones remove what lies past it (invisible meanwhile).
  const bool all = em.count_in(keep, kMaxFileBlocks, 129) <= 128;
  ExtentMap::Edit& e = ExtentMap::Edit::local(em.head());
  Status st = {};
  if (all || window < keep) {
    st = em.stage(e, window, all ? kMaxFileBlocks : window + 1, sc.maps, env(i.ino), tx);
  }
  if (st) {
    nd.blocks = static_cast<uint64_t>(static_cast<int64_t>(nd.blocks) + e.blocks_delta);
    nd.extent_head = e.new_head;
    // Cleared by the transaction that removes the last extent past the end
    // (trim_tail); mount finishes the job if we crash before that.
    if (!all) nd.flags |= kInodeTrimPending;
    put_inode(tx, i.ino, nd);
    st = commit(tx);
  }
  if (!st) {
    em.abort(e, balloc_);
    balloc_.free(sc.runs);
    return st;
  }
  em.apply(e);
  i.d = nd;
  if (!all) return trim_tail(i, keep);
  return {};
}

// --- fallocate -------------------------------------------------------------------

// One bounded transaction over file blocks [a, b) of a fallocate-like
// operation on the byte range [offset, end) (a == b: times and size only).
// Rules per block, as tmpfs (memfs/README.md):
//   allocate: hole -> new unwritten; unwritten -> zeroed, written; written kept.
//   zero:     whole blocks -> unwritten (in place, or new for holes); partial
//             blocks: written -> copy-on-write with the range zeroed,
//             unwritten -> zeroed and written, hole -> new unwritten.
//   punch:    whole blocks -> hole; partial written blocks -> copy-on-write
//             with the range zeroed; others kept.
//   reserve:  hole -> new unwritten; the rest kept as it is, times too
//             (map(Write), layout_ops.cc).
// Zeroing an unwritten block in place is safe: it reads as zeros until the
// transaction flips it.
Status PmFsImpl::fill_window(Inode& i, uint64_t a, uint64_t b, Fill mode, uint64_t offset,
                             uint64_t end, uint64_t new_size) {
  ExtentMap& em = *i.ext;
  Scratch& sc = scratch();
  const bool partials = mode != Fill::Allocate;
  const uint64_t pf = partials && (offset & 4095) ? offset >> 12 : UINT64_MAX;
  const uint64_t pl = partials && (end & 4095) ? end >> 12 : UINT64_MAX;
  enum Cls { Hole, Written, Unwritten };

  auto alloc_unwritten = [&](uint64_t s, uint64_t c) -> Status {
    const size_t first_run = sc.runs.size();
    if (Status st = balloc_.alloc(c, 0, c, &sc.runs); !st) return st;
    for (size_t k = first_run; k < sc.runs.size(); ++k) {
      sc.maps.push_back({s, sc.runs[k].start, sc.runs[k].count, kExtentUnwritten});
      s += sc.runs[k].count;
    }
    return {};
  };
  auto cow_zero = [&](uint64_t fb) -> Status {
    const size_t first_run = sc.runs.size();
    if (Status st = balloc_.alloc(1, 0, 1, &sc.runs); !st) return st;
    const uint64_t nb = sc.runs[first_run].start;
    const uint64_t bs = fb << 12;
    fill_block(i, fb, nb, std::max(offset, bs) - bs, std::min(end, bs + kBlockSize) - bs, nullptr);
    sc.maps.push_back({fb, nb, 1, 0});
    return {};
  };
  auto handle = [&](uint64_t s, uint64_t c, Cls cls, uint64_t pool, bool partial) -> Status {
    switch (mode) {
      case Fill::Reserve:
        if (cls == Hole) return alloc_unwritten(s, c);
        sc.maps.push_back({s, pool, c, cls == Unwritten ? kExtentUnwritten : 0u});
        return {};
      case Fill::Allocate:
        if (cls == Hole) return alloc_unwritten(s, c);
        if (cls == Unwritten) {
          // Zeroes blocks a layout may have handed out unwritten.
          ++i.layout_gen;
          pool_.zero(pool * kBlockSize, c * kBlockSize);
        }
        sc.maps.push_back({s, pool, c, 0});
        return {};
      case Fill::Zero:
        if (cls == Hole) return alloc_unwritten(s, c);
        if (!partial) {
          sc.maps.push_back({s, pool, c, kExtentUnwritten});
          return {};
        }
        if (cls == Written) return cow_zero(s);
        pool_.zero(pool * kBlockSize, kBlockSize);
        sc.maps.push_back({s, pool, 1, 0});
        return {};
      case Fill::Punch:
        if (!partial || cls == Hole) return {};
        if (cls == Written) return cow_zero(s);
        sc.maps.push_back({s, pool, 1, kExtentUnwritten});
        return {};
    }
    return {};
  };
  Status st = {};
  auto it = em.from(a);
  for (uint64_t pos = a; pos < b && st;) {
    Cls cls = Hole;
    uint64_t e, pool = 0;
    if (it != em.map().end() && it->first <= pos) {
      cls = (it->second.flags & kExtentUnwritten) ? Unwritten : Written;
      pool = it->second.pool + (pos - it->first);
      e = std::min(b, it->first + it->second.count);
    } else {
      e = std::min(b, it != em.map().end() ? it->first : b);
    }
    // Split out the (at most two) partial blocks.
    while (pos < e && st) {
      if (pos == pf || pos == pl) {
        st = handle(pos, 1, cls, pool, true);
        ++pos;
        ++pool;
        continue;
      }
      uint64_t next = e;
      if (pf > pos && pf < next) next = pf;
      if (pl > pos && pl < next) next = pl;
      st = handle(pos, next - pos, cls, pool, false);
      pool += next - pos;
      pos = next;
    }
    if (it != em.map().end() && it->first + it->second.count <= pos) ++it;
  }
  Transaction& tx = Transaction::local();
  ExtentMap::Edit& ed = ExtentMap::Edit::local(em.head());
  DiskInode nd = i.d;
  if (st && a < b) st = em.stage(ed, a, b, sc.maps, env(i.ino), tx);
  if (st) {
    nd.size = new_size;
    nd.blocks = static_cast<uint64_t>(static_cast<int64_t>(nd.blocks) + ed.blocks_delta);
    nd.extent_head = ed.new_head;
    // tmpfs: every successful fallocate mode changes both.
    if (mode != Fill::Reserve) stamp(nd, fs::times_for(fs::TimeOp::Fallocate).inode, now_ts());
    put_inode(tx, i.ino, nd);
    // E2BIG (internal): the transaction outgrew the journal; nothing
    // changed, the caller goes on in windows.
    st = journal_->fits(tx) ? commit(tx) : Status(Errno(E2BIG));
  }
  if (!st) {
    em.abort(ed, balloc_);
    balloc_.free(sc.runs);
    return st;
  }
  em.apply(ed);
  i.d = nd;
  return {};
}

int PmFsImpl::do_fallocate(Inode& i, uint32_t mode, uint64_t offset, uint64_t length) {
  const bool punch = mode & FALLOC_FL_PUNCH_HOLE;
  const bool zero = mode & FALLOC_FL_ZERO_RANGE;
  const bool keep = mode & FALLOC_FL_KEEP_SIZE;
  const uint64_t end = offset + length;
  const uint64_t first = offset >> 12, last = (end + kBlockSize - 1) >> 12;
  ExtentMap& em = *i.ext;
  if (!punch) {
    // Refuse up front when the holes cannot be filled: nothing changes.
    uint64_t mapped = 0;
    for (auto it = em.from(first); it != em.map().end() && it->first < last; ++it) {
      mapped += std::min(last, it->first + it->second.count) - std::max(first, it->first);
    }
    if (last - first - mapped > balloc_.free_blocks()) return ENOSPC;
  }
  const Fill f = punch ? Fill::Punch : zero ? Fill::Zero : Fill::Allocate;
  if (punch || zero) ++i.layout_gen;  // blocks freed or turned unwritten
  const uint64_t new_size = (!punch && !keep) ? std::max<uint64_t>(i.d.size, end) : i.d.size;
  // The whole range in one transaction when the journal holds it, so the
  // operation is atomic like every other (a range is one extent record per
  // extent it touches, plus the runs allocated for its holes). Only a range
  // whose transaction would outgrow the journal (thousands of extents) is
  // done in windows of kWindowBlocks, each atomic on its own.
  const size_t max_extents = journal_->capacity() / 256;
  if (em.count_in(first, last, max_extents + 1) <= max_extents) {
    Status s = fill_window(i, first, last, f, offset, end, new_size);
    if (s) return 0;
    if (s.error().value != E2BIG) return s.error().value;
  }
  bool any = false;
  for (uint64_t a = first; a < last;) {
    if (f == Fill::Punch) {  // skip holes quickly
      auto it = em.from(a);
      if (it == em.map().end()) break;
      a = std::max(a, it->first);
      if (a >= last) break;
    }
    const uint64_t b = std::min(last, a + kWindowBlocks);
    const bool final_window = b == last;
    if (Status s = fill_window(i, a, b, f, offset, end, final_window ? new_size : i.d.size);
        !s) {
      return s.error().value == E2BIG ? ENOSPC : s.error().value;
    }
    any = true;
    a = b;
  }
  // A punch that found nothing to remove still marks the times.
  if (!any) {
    if (Status s = fill_window(i, last, last, f, offset, end, new_size); !s) {
      return s.error().value;
    }
  }
  return 0;
}

void PmFsImpl::fallocate(const fs::Context&, fs::Ino ino, uint64_t, uint32_t mode,
                         uint64_t offset, uint64_t length, fs::StatusReply r) {
  constexpr uint32_t kKnown = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~kKnown) return r.error(EOPNOTSUPP);
  const bool punch = mode & FALLOC_FL_PUNCH_HOLE;
  const bool zero = mode & FALLOC_FL_ZERO_RANGE;
  const bool keep = mode & FALLOC_FL_KEEP_SIZE;
  if (punch && (zero || !keep)) return r.error(EOPNOTSUPP);
  if (length == 0) return r.error(EINVAL);
  if (offset > kMaxFileSize || length > kMaxFileSize - offset) return r.error(EFBIG);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_reg()) return r.error(i->is_dir() ? EISDIR : ENODEV);
  if (!writable()) return r.error(EROFS);
  std::unique_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  if (int err = do_fallocate(*i, mode, offset, length)) return r.error(err);
  r.ok();
}

// --- lseek -------------------------------------------------------------------------

void PmFsImpl::lseek(const fs::Context&, fs::Ino ino, uint64_t, uint64_t offset, int whence,
                     fs::LseekReply r) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return r.error(EINVAL);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_reg()) return r.error(not_regular(*i));
  std::shared_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  const uint64_t size = i->d.size;
  if (offset >= size) return r.error(ENXIO);
  const uint64_t end_block = (size + kBlockSize - 1) >> 12;
  const ExtentMap& em = *i->ext;
  uint64_t fb = offset >> 12;
  uint64_t found = end_block;
  auto it = em.from(fb);
  if (whence == SEEK_DATA) {
    for (; it != em.map().end() && it->first < end_block; ++it) {
      if (!(it->second.flags & kExtentUnwritten)) {
        found = std::max(fb, it->first);
        break;
      }
    }
  } else {
    uint64_t pos = fb;
    while (pos < end_block) {
      if (it != em.map().end() && it->first <= pos && !(it->second.flags & kExtentUnwritten)) {
        pos = it->first + it->second.count;
        ++it;
        continue;
      }
      break;
    }
    found = std::min(pos, end_block);
  }
  if (found >= end_block) {
    if (whence == SEEK_DATA) return r.error(ENXIO);
    return r.ok(size);
  }
  const uint64_t pos = std::max(offset, found << 12);
  if (whence == SEEK_DATA) {
    if (pos >= size) return r.error(ENXIO);
    return r.ok(pos);
  }
  r.ok(std::min(pos, size));
}

// --- copy_file_range ----------------------------------------------------------------

void PmFsImpl::copy_file_range(const fs::Context&, fs::Ino ino_in, uint64_t, uint64_t off_in,
                               fs::Ino ino_out, uint64_t, uint64_t off_out, uint64_t len,
                               uint32_t flags, fs::WriteReply r) {
  if (flags != 0) return r.error(EINVAL);
  InodePtr in = get(ino_in);
  InodePtr out = get(ino_out);
  if (!in || !out) return r.error(ENOENT);
  if (!in->is_reg()) return r.error(not_regular(*in));
  if (!out->is_reg()) return r.error(not_regular(*out));
  if (off_in > kMaxFileSize || off_out > kMaxFileSize) return r.error(EINVAL);
  if (!writable()) return r.error(EROFS);
  len = std::min(len, kMaxFileSize - std::max(off_in, off_out));

  std::shared_lock<std::shared_mutex> lin(in->mu, std::defer_lock);
  std::unique_lock<std::shared_mutex> lout(out->mu, std::defer_lock);
  if (in == out) {
    lout.lock();
  } else if (in->ino < out->ino) {
    lin.lock();
    lout.lock();
  } else {
    lout.lock();
    lin.lock();
  }
  if (in->freed || out->freed) return r.error(ENOENT);
  const uint64_t size = in->d.size;
  if (off_in >= size || len == 0) return r.ok(0);
  len = std::min(len, size - off_in);
  if (in == out && off_out + len > off_in && off_out < off_in + len) return r.error(EINVAL);
  // Through a bounce buffer, one atomic write per MiB (holes are copied as
  // written zeros, as the kernel's splice fallback does on tmpfs).
  thread_local std::vector<std::byte> buf;
  buf.resize(kMaxIoChunk);
  uint64_t done = 0;
  while (done < len) {
    const uint64_t n = std::min<uint64_t>(len - done, kMaxIoChunk);
    const uint64_t from = off_in + done;
    const ExtentMap& em = *in->ext;
    for (uint64_t pos = from; pos < from + n;) {
      const uint64_t fb = pos >> 12;
      const uint64_t k = std::min<uint64_t>(from + n - pos, kBlockSize - (pos & 4095));
      auto it = em.containing(fb);
      if (it != em.map().end() && !(it->second.flags & kExtentUnwritten)) {
        std::memcpy(buf.data() + (pos - from),
                    pool_.base() + ((it->second.pool + (fb - it->first)) << 12) + (pos & 4095), k);
      } else {
        std::memset(buf.data() + (pos - from), 0, k);
      }
      pos += k;
    }
    auto w = write_locked(*out, off_out + done, std::span<const std::byte>(buf.data(), n), false);
    if (!w) {
      if (done == 0) return r.error(w.error().value);
      break;
    }
    done += *w;
    if (*w < n) break;
  }
  r.ok(done);
}

}  // namespace zest::pmfs
