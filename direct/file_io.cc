// libzest-direct's data path: reads copy from the pool under a lease,
// overwrites store in place, allocating writes store into unwritten
// extents and commit them (docs/direct.md, "The data path").
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "direct/client.h"
#include "direct/pool_copy.h"

namespace zest::direct {

namespace {

constexpr int kMaxTries = 8;
// Writes at or past the end map this much ahead (as unwritten
// preallocation), so that appends need one round trip (the commit).
constexpr uint64_t kAppendWindow = 64 * 1024;
// Reads, and writes before they allocate, map this much (without
// allocating anything), so that neighbouring accesses need no round trip.
constexpr uint64_t kReadWindow = 1 << 20;

uint64_t down(uint64_t v, uint64_t b) { return v / b * b; }
uint64_t up(uint64_t v, uint64_t b) { return (v + b - 1) / b * b; }

template <class T>
std::span<const std::byte> bytes_of(const T& v) {
  return {reinterpret_cast<const std::byte*>(&v), sizeof(v)};
}

// Clears what the handle knows about its lease (rw held exclusively).
void forget_lease(FileState& f) {
  f.lease = {};
  f.cache.clear();
  f.gen = 0;
  f.size_known = false;  // a size from an older lease may be stale
}

void persist(zest_direct* d, std::byte* p, size_t n) {
  persist_fence();
  if (d->msync_needed && n) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(4095);
    ::msync(reinterpret_cast<void*>(a), reinterpret_cast<uintptr_t>(p) + n - a, MS_SYNC);
  }
}

int64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec;
}

w::ReturnIn return_msg(FileState& f) {
  w::ReturnIn r{f.lease.id, f.ino, f.gen, 0, 0, 0};
  if (f.mtime_dirty && f.lease.write) {
    const int64_t t = f.mtime_ns.load();
    r.flags = w::kReturnSetMtime;
    r.mtime_sec = t / 1000000000;
    r.mtime_nsec = static_cast<uint32_t>(t % 1000000000);
  }
  return r;
}

}  // namespace

bool lease_usable(const zest_direct* d, const FileState& f) {
  // A server that went away takes every lease with it: another one may
  // mount the pool next.
  return f.lease.id != 0 && layout::slot_usable(f.lease.word, d->table_word(f.lease.slot)) &&
         !d->chan.lost();
}

Handle* handle_of(zest_direct* d, int h) {
  if (!d || h < 0 || h >= zest_direct::kMaxHandles) return nullptr;
  return d->handles[h].load(std::memory_order_acquire);
}

int drop_lease(zest_direct* d, FileState& f) {
  w::ReturnIn r;
  {
    std::unique_lock g(f.rw);
    if (!f.lease.id) return 0;
    r = return_msg(f);
    {
      std::lock_guard l(d->handles_mu);
      d->by_lease.erase(f.lease.id);
    }
    forget_lease(f);
    f.mtime_dirty = false;
  }
  auto res = d->chan.call(w::kReturn, bytes_of(r), -1, nullptr);
  // ENOENT: the server took it back already (fenced and returned by the
  // listener); nothing was lost but possibly the mtime of overwrites.
  return res || res.error().value == ENOENT ? 0 : res.error().value;
}

int flush_mtime(zest_direct* d, FileState& f) {
  w::CommitIn c{};
  {
    std::shared_lock g(f.rw);
    if (!f.lease.id || !f.mtime_dirty.exchange(false)) return 0;
    const int64_t t = f.mtime_ns.load();
    c = {f.lease.id, f.ino, f.gen, w::kNoSize, t / 1000000000,
         static_cast<uint32_t>(t % 1000000000), 0};
  }
  auto r = d->chan.call(w::kCommit, bytes_of(c), -1, nullptr);
  if (!r && r.error().value != ESTALE) f.mtime_dirty.store(true);  // try again later
  return r ? 0 : r.error().value;
}

void on_recall(zest_direct* d, uint64_t id) {
  d->stats().recalls.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<FileState> f;
  {
    std::lock_guard l(d->handles_mu);
    auto it = d->by_lease.find(id);
    if (it != d->by_lease.end()) {
      f = it->second;
      d->by_lease.erase(it);
    }
  }
  if (!f) {
    d->chan.give_back(w::ReturnIn{id, 0, 0, 0, 0, 0});  // not installed yet
    return;
  }
  zest_recall_fn cb;
  void* arg;
  int handle;
  {
    std::shared_lock g(f->rw);
    cb = f->recall_cb;
    arg = f->recall_arg;
    handle = f->recall_handle;
  }
  if (cb) cb(arg, handle);
  w::ReturnIn r{id, 0, 0, 0, 0, 0};
  {
    // Waits for copies in flight, never for the server.
    std::unique_lock g(f->rw);
    if (f->lease.id == id) {
      if (layout::slot_state(d->table_word(f->lease.slot)) == layout::SlotState::Fenced)
        d->stats().fenced.fetch_add(1, std::memory_order_relaxed);
      r = return_msg(*f);
      forget_lease(*f);
      f->mtime_dirty = false;
      f->recall_cb = nullptr;
    }
  }
  d->chan.give_back(r);
}

int ensure_lease(zest_direct* d, Handle& h, bool write) {
  FileState& f = *h.st;
  {
    std::shared_lock g(f.rw);
    if (lease_usable(d, f) && (f.lease.write || !write)) return 0;
  }
  if (f.lease.id) {
    if (int e = drop_lease(d, f); e) return e;
  }
  const bool want_write = write || ((h.flags & O_ACCMODE) != O_RDONLY && d->writable);
  w::LeaseIn in{want_write ? w::kWrite : w::kRead, 0, 0, ~0ull};
  std::vector<std::byte> body;
  auto r = d->chan.call(w::kLease, bytes_of(in), h.fd, &body);
  if (!r) return r.error().value;
  w::LeaseOut out;
  if (body.size() != sizeof(out)) return EPROTO;
  std::memcpy(&out, body.data(), sizeof(out));
  if (out.slot * sizeof(uint64_t) >= d->table_bytes) return EPROTO;
  d->stats().leases.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard l(d->handles_mu);
    d->by_lease[out.id] = h.st;
  }
  std::unique_lock g(f.rw);
  forget_lease(f);
  f.lease = {out.id, out.word, out.slot, want_write};
  f.ino = out.ino;
  return 0;
}

int map_range(zest_direct* d, FileState& f, uint64_t off, uint64_t len, bool write) {
  w::MapIn in{};
  {
    std::shared_lock g(f.rw);
    if (!f.lease.id) return ESTALE;
    in = {f.lease.id, f.ino, off, len, write ? w::kIntentWrite : w::kIntentRead, 0};
  }
  std::vector<std::byte> body;
  auto r = d->chan.call(w::kMap, bytes_of(in), -1, &body);
  if (!r) return r.error().value;
  w::MapOut mo;
  if (body.size() < sizeof(mo)) return EPROTO;
  std::memcpy(&mo, body.data(), sizeof(mo));
  if (body.size() != sizeof(mo) + size_t(mo.count) * sizeof(w::Extent)) return EPROTO;
  std::vector<w::Extent> ext(mo.count);
  if (mo.count) std::memcpy(ext.data(), body.data() + sizeof(mo), mo.count * sizeof(w::Extent));
  for (const w::Extent& e : ext) {
    // Never trust an address outside the pool.
    if (e.state != w::kHole &&
        (e.pool_offset > d->pool_size || e.length > d->pool_size - e.pool_offset))
      return EPROTO;
  }
  d->stats().maps.fetch_add(1, std::memory_order_relaxed);
  // Fill our page tables for what we are about to touch, one call per
  // extent instead of a page fault per page (a fault costs microseconds,
  // more in a VM). Blocks of the pool only; holes are never touched.
  for (const w::Extent& e : ext) {
    if (e.state == w::kHole || (!write && e.state != w::kWritten)) continue;
    const uintptr_t a0 = reinterpret_cast<uintptr_t>(d->pool + e.pool_offset) & ~uintptr_t(4095);
    const uintptr_t a1 = reinterpret_cast<uintptr_t>(d->pool + e.pool_offset + e.length);
    ::madvise(reinterpret_cast<void*>(a0), a1 - a0, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
  }
  std::unique_lock g(f.rw);
  if (f.lease.id != in.lease) return ESTALE;  // recalled meanwhile
  if (f.gen != mo.generation) {
    f.cache.clear();
    f.gen = mo.generation;
  }
  f.cache.insert(ext);
  f.size = mo.file_size;
  f.size_known = true;
  return 0;
}

namespace {

// The fast read: -1 when the lease or the cached map does not allow it.
ssize_t try_read(zest_direct* d, FileState& f, char* buf, size_t n, uint64_t off) {
  std::shared_lock g(f.rw);
  if (!lease_usable(d, f) || !f.size_known) return -1;
  if (off >= f.size) return 0;
  n = std::min<uint64_t>(n, f.size - off);
  const uint64_t end = off + n;
  for (uint64_t pos = off; pos < end;) {
    const w::Extent* e = f.cache.find(pos);
    if (!e) return -1;
    pos = e->offset + e->length;
  }
  for (uint64_t pos = off; pos < end;) {
    const w::Extent* e = f.cache.find(pos);
    const uint64_t k = std::min(end, e->offset + e->length) - pos;
    if (e->state == w::kWritten)
      load_from_pool(buf + (pos - off), d->pool + e->pool_offset + (pos - e->offset), k);
    else
      std::memset(buf + (pos - off), 0, k);
    pos += k;
  }
  // Fenced while copying: the bytes may be stale (never another file's:
  // blocks freed meanwhile wait until this lease is returned).
  if (!lease_usable(d, f)) return -1;
  return static_cast<ssize_t>(n);
}

// The fast overwrite: in place, inside written extents and the file's size.
ssize_t try_overwrite(zest_direct* d, FileState& f, const char* buf, size_t n, uint64_t off) {
  std::shared_lock g(f.rw);
  if (!lease_usable(d, f) || !f.lease.write || !f.size_known || off + n > f.size) return -1;
  const uint64_t end = off + n;
  for (uint64_t pos = off; pos < end;) {
    const w::Extent* e = f.cache.find(pos);
    if (!e || e->state != w::kWritten) return -1;
    pos = e->offset + e->length;
  }
  for (uint64_t pos = off; pos < end;) {
    const w::Extent* e = f.cache.find(pos);
    const uint64_t k = std::min(end, e->offset + e->length) - pos;
    std::byte* p = d->pool + e->pool_offset + (pos - e->offset);
    store_to_pool(p, buf + (pos - off), k);
    if (d->msync_needed) persist(d, p, k);
    pos += k;
  }
  persist_fence();
  if (!lease_usable(d, f)) return -1;  // do it again under a new lease
  f.mtime_ns.store(now_ns(), std::memory_order_relaxed);
  f.mtime_dirty.store(true, std::memory_order_release);
  return static_cast<ssize_t>(n);
}

// An allocating write (f.slow held, extents of the range in the cache):
// stores, then commits. 0 done; -1 retry; > 0 an errno.
int store_and_commit(zest_direct* d, FileState& f, const char* buf, size_t n, uint64_t off) {
  const uint64_t B = d->block;
  const uint64_t end = off + n;
  std::vector<w::Extent> flip;  // unwritten block ranges we filled
  w::CommitIn c{};
  {
    std::shared_lock g(f.rw);
    if (!lease_usable(d, f) || !f.lease.write || !f.size_known) return -1;
    for (uint64_t pos = down(off, B); pos < up(end, B);) {
      const w::Extent* e = f.cache.find(pos);
      if (!e || e->state == w::kHole) return -1;
      pos = e->offset + e->length;
    }
    const uint64_t size = f.size;
    for (uint64_t pos = down(off, B); pos < up(end, B);) {
      const w::Extent* e = f.cache.find(pos);
      const uint64_t k = std::min(up(end, B), e->offset + e->length) - pos;
      std::byte* p = d->pool + e->pool_offset + (pos - e->offset);
      // Within [pos, pos + k): our bytes [max(pos,off), min(pos+k,end)).
      const uint64_t a = std::max(pos, off), b = std::min(pos + k, end);
      if (e->state == w::kUnwritten) {
        // The whole blocks turn written: what we do not write must be 0.
        if (a > pos) zero_pool(p, a - pos);
        if (pos + k > b) zero_pool(p + (b - pos), pos + k - b);
        if (!flip.empty() && flip.back().offset + flip.back().length == pos &&
            flip.back().pool_offset + flip.back().length == e->pool_offset + (pos - e->offset)) {
          flip.back().length += k;
        } else {
          flip.push_back({pos, k, e->pool_offset + (pos - e->offset), w::kWritten, 0});
        }
      } else if (end > size) {
        // A written block at the end: bytes between the old end and ours,
        // and past ours, must read as zeros.
        const uint64_t z0 = std::max(pos, size);
        if (a > z0) zero_pool(p + (z0 - pos), a - z0);
        if (pos + k > std::max(b, size)) {
          const uint64_t z1 = std::max(b, size);
          zero_pool(p + (z1 - pos), pos + k - z1);
        }
      }
      if (b > a) store_to_pool(p + (a - pos), buf + (a - off), b - a);
      if (d->msync_needed) persist(d, p, k);
      pos += k;
    }
    persist_fence();
    if (!lease_usable(d, f)) return -1;
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    c = {f.lease.id, f.ino, f.gen, end > size ? end : w::kNoSize, now.tv_sec,
         static_cast<uint32_t>(now.tv_nsec), static_cast<uint32_t>(flip.size())};
  }
  if (flip.empty() && c.new_size == w::kNoSize) {
    // Written blocks, inside the file: an overwrite after all.
    f.mtime_ns.store(c.mtime_sec * 1000000000 + c.mtime_nsec, std::memory_order_relaxed);
    f.mtime_dirty.store(true, std::memory_order_release);
    return 0;
  }
  if (flip.size() > w::kMaxExtents) return EFBIG;  // cannot happen for 1 MiB writes
  std::vector<std::byte> msg(sizeof(c) + flip.size() * sizeof(w::Extent));
  std::memcpy(msg.data(), &c, sizeof(c));
  if (!flip.empty()) std::memcpy(msg.data() + sizeof(c), flip.data(), flip.size() * sizeof(w::Extent));
  auto r = d->chan.call(w::kCommit, msg, -1, nullptr);
  if (!r) {
    const int e = r.error().value;
    if (e == ESTALE || e == EINVAL) {
      std::unique_lock x(f.rw);
      if (f.lease.id == c.lease) f.cache.clear();  // the map moved: map again
      return -1;
    }
    return e;
  }
  d->stats().commits.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock x(f.rw);
  if (f.lease.id == c.lease) {
    for (const w::Extent& e : flip) f.cache.mark_written(e.offset, e.length);
    f.size = std::max(f.size, end);
  }
  return 0;
}

ssize_t kernel_read(zest_direct* d, Handle& h, void* buf, size_t n, uint64_t off) {
  d->stats().kernel_reads.fetch_add(1, std::memory_order_relaxed);
  ssize_t r = ::pread(h.fd, buf, n, static_cast<off_t>(off));
  return r < 0 ? -errno : r;
}

ssize_t kernel_write(zest_direct* d, Handle& h, const void* buf, size_t n, uint64_t off) {
  d->stats().kernel_writes.fetch_add(1, std::memory_order_relaxed);
  // The file's lease would be recalled by this write: give it back first.
  if (h.st) {
    std::lock_guard s(h.st->slow);
    drop_lease(d, *h.st);
  }
  ssize_t r = ::pwrite(h.fd, buf, n, static_cast<off_t>(off));
  if (r > 0) h.kernel_dirty = true;
  return r < 0 ? -errno : r;
}

}  // namespace

ssize_t file_read(zest_direct* d, Handle& h, void* buf, size_t n, uint64_t off) {
  if (n == 0) return 0;
  if (!h.direct || (h.flags & O_ACCMODE) == O_WRONLY) return kernel_read(d, h, buf, n, off);
  FileState& f = *h.st;
  for (int t = 0; t < kMaxTries; ++t) {
    if (ssize_t r = try_read(d, f, static_cast<char*>(buf), n, off); r >= 0) {
      d->stats().direct_reads.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
    if (t) d->stats().retries.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard s(f.slow);
    if (ensure_lease(d, h, false) != 0) break;
    // Map from the read on, a window ahead (sequential readers); a Read
    // map stops at the end of the file.
    const uint64_t a = down(off, d->block);
    const uint64_t want = std::max<uint64_t>(up(off + n, d->block) - a, kReadWindow);
    if (map_range(d, f, a, want, false) != 0) break;
  }
  return kernel_read(d, h, buf, n, off);
}

ssize_t file_write(zest_direct* d, Handle& h, const void* buf, size_t n, uint64_t off) {
  if (n == 0) return 0;
  if ((h.flags & O_ACCMODE) == O_RDONLY) return -EBADF;
  if (!h.direct || !d->writable || (h.flags & O_APPEND)) return kernel_write(d, h, buf, n, off);
  if (off > UINT64_MAX - n) return -EFBIG;
  FileState& f = *h.st;
  const char* src = static_cast<const char*>(buf);
  for (int t = 0; t < kMaxTries; ++t) {
    if (ssize_t r = try_overwrite(d, f, src, n, off); r >= 0) {
      d->stats().direct_writes.fetch_add(1, std::memory_order_relaxed);
      return r;
    }
    if (t) d->stats().retries.fetch_add(1, std::memory_order_relaxed);
    std::unique_lock s(f.slow);
    int e = ensure_lease(d, h, true);
    if (e == EACCES || e == EBADF || e == ENOTCONN || e == ETIMEDOUT || e == ENOLCK) break;
    if (e) return -e;
    const uint64_t B = d->block;
    const uint64_t a = down(off, B), b = up(off + n, B);
    // Which blocks the cache knows, and whether any is a hole.
    auto coverage = [&](bool* known, bool* hole, uint64_t* size) {
      std::shared_lock g(f.rw);
      *size = f.size;
      *known = f.size_known;
      *hole = false;
      for (uint64_t pos = a; *known && pos < b;) {
        const w::Extent* x = f.cache.find(pos);
        if (!x) {
          // Past the end a Read map has nothing: that is a hole.
          if (f.size_known && pos >= up(f.size, B)) {
            *hole = true;
            break;
          }
          *known = false;
          break;
        }
        if (x->state == w::kHole) *hole = true;
        pos = x->offset + x->length;
      }
    };
    bool known, hole;
    uint64_t size;
    coverage(&known, &hole, &size);
    if (!known) {
      // Learn the map first, allocating nothing: an overwrite needs no more.
      e = map_range(d, f, a, std::max<uint64_t>(b - a, kReadWindow), false);
      if (e) continue;
      coverage(&known, &hole, &size);
      if (!known) hole = true;
    }
    if (hole) {
      // Allocate: exactly the range, or a window ahead for appends.
      const uint64_t len = off + n >= size ? std::max(b - a, kAppendWindow) : b - a;
      e = map_range(d, f, a, len, true);
      if (e == ENOSPC || e == EFBIG || e == EROFS) return -e;
      if (e) continue;
    }
    e = store_and_commit(d, f, src, n, off);
    if (e == 0) {
      d->stats().direct_writes.fetch_add(1, std::memory_order_relaxed);
      return static_cast<ssize_t>(n);
    }
    if (e > 0) return -e;
  }
  return kernel_write(d, h, buf, n, off);
}

}  // namespace zest::direct
