// libzest-direct's C API (zest_direct.h): attach, handles, names.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>

#include "direct/client.h"

using zest::direct::FileState;
using zest::direct::Handle;
namespace w = zest::layout::wire;

namespace {

// -errno results to the C convention.
template <class T>
T fail(int e) {
  errno = e;
  if constexpr (std::is_pointer_v<T>)
    return nullptr;
  else
    return static_cast<T>(-1);
}

// A path relative to the mount (absolute paths are used as given).
const char* rel(const char* path) { return path; }
int dirfd_of(zest_direct* d, const char* path) { return path[0] == '/' ? AT_FDCWD : d->root.get(); }

ssize_t finish(ssize_t r) {
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

}  // namespace

extern "C" {

zest_direct* zest_direct_attach(const char* mountpoint, unsigned flags) {
  if (!mountpoint) return fail<zest_direct*>(EINVAL);
  auto* d = new (std::nothrow) zest_direct;
  if (!d) return fail<zest_direct*>(ENOMEM);
  d->root.reset(::open(mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!d->root) {
    const int e = errno;
    delete d;
    return fail<zest_direct*>(e);
  }
  struct stat st;
  ::fstat(d->root.get(), &st);
  d->dev = st.st_dev;
  d->handles.reset(new std::atomic<Handle*>[zest_direct::kMaxHandles]);
  for (int i = 0; i < zest_direct::kMaxHandles; ++i) d->handles[i].store(nullptr);
  if (flags & ZEST_DIRECT_NO_DIRECT) return d;
  const bool want_write = !(flags & ZEST_DIRECT_READONLY);
  auto r = d->chan.attach(
      d->dev, want_write, [d](uint64_t id) { zest::direct::on_recall(d, id); }, nullptr);
  if (!r) return d;  // no channel: the kernel path serves everything
  const w::AttachOut& info = d->chan.info();
  d->table_bytes = size_t(info.table_slots) * sizeof(uint64_t);
  void* t = ::mmap(nullptr, d->table_bytes, PROT_READ, MAP_SHARED, d->chan.table_fd(), 0);
  if (t == MAP_FAILED) return d;
  d->table = static_cast<const std::atomic<uint64_t>*>(t);
  if (info.pool_access == w::kPoolNone || info.block_size == 0) return d;
  const bool rw = info.pool_access == w::kPoolWrite;
  void* p = ::mmap(nullptr, info.pool_size, PROT_READ | (rw ? PROT_WRITE : 0), MAP_SHARED,
                   d->chan.pool_fd(), 0);
  if (p == MAP_FAILED) return d;
  d->pool = static_cast<std::byte*>(p);
  d->pool_size = info.pool_size;
  d->block = info.block_size;
  d->msync_needed = info.persist != 0;
  d->writable = rw;
  d->direct = true;
  return d;
}

void zest_direct_detach(zest_direct* d) {
  if (!d) return;
  for (int h = 0; h < zest_direct::kMaxHandles && h < d->next_number; ++h)
    if (d->handles[h].load()) zest_close(d, h);
  // The listener must stop before the mappings go.
  d->chan.~ChannelClient();
  new (&d->chan) zest::direct::ChannelClient();
  if (d->pool) ::munmap(d->pool, d->pool_size);
  if (d->table) ::munmap(const_cast<std::atomic<uint64_t>*>(d->table), d->table_bytes);
  delete d;
}

int zest_direct_is_direct(const zest_direct* d) { return d && d->direct ? 1 : 0; }

namespace {

// A handle for kernel fd `fd` (owned or not); -1/errno on failure.
int install(zest_direct* d, int fd, int flags, bool owns, bool require_direct) {
  auto h = std::make_unique<Handle>();
  h->fd = fd;
  h->flags = flags;
  h->owns_fd = owns;
  struct stat st;
  const bool direct =
      d->direct && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == d->dev;
  if (require_direct && !direct) return fail<int>(EXDEV);
  std::lock_guard l(d->handles_mu);
  int n;
  if (!d->free_numbers.empty()) {
    n = d->free_numbers.back();
    d->free_numbers.pop_back();
  } else if (d->next_number < zest_direct::kMaxHandles) {
    n = d->next_number++;
  } else {
    if (owns) ::close(fd);
    return fail<int>(EMFILE);
  }
  if (direct) {
    // One state per file, shared by its handles (one lease per file).
    std::shared_ptr<FileState> fs = d->files[st.st_ino].lock();
    if (!fs) {
      fs = std::make_shared<FileState>();
      fs->ino = st.st_ino;
      d->files[st.st_ino] = fs;
    }
    ++fs->handles;
    h->st = std::move(fs);
    h->direct = true;
  }
  h->number = n;
  d->handles[n].store(h.get(), std::memory_order_release);
  d->owned[n] = std::move(h);
  return n;
}

}  // namespace

int zest_open(zest_direct* d, const char* path, int flags, mode_t mode) {
  if (!d || !path) return fail<int>(EINVAL);
  const int fd = ::openat(dirfd_of(d, path), rel(path), flags | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  return install(d, fd, flags, true, false);
}

int zest_adopt(zest_direct* d, int fd, int flags) {
  if (!d || fd < 0) return fail<int>(EINVAL);
  return install(d, fd, flags, false, true);
}

int zest_forget(zest_direct* d, int h) { return zest_close(d, h); }

int zest_close(zest_direct* d, int n) {
  std::unique_ptr<Handle> h;
  bool last = false;
  if (!zest::direct::handle_of(d, n)) return fail<int>(EBADF);
  {
    std::lock_guard l(d->handles_mu);
    auto it = d->owned.find(n);
    if (it == d->owned.end()) return fail<int>(EBADF);
    h = std::move(it->second);
    d->owned.erase(it);
    d->handles[n].store(nullptr, std::memory_order_release);
    d->free_numbers.push_back(n);
    if (h->st) {
      last = --h->st->handles == 0;
      if (last) d->files.erase(h->st->ino);
    }
  }
  if (h->st) {
    std::lock_guard s(h->st->slow);
    if (last)
      zest::direct::drop_lease(d, *h->st);  // with the mtime of overwrites
    else
      zest::direct::flush_mtime(d, *h->st);
  }
  return h->owns_fd ? ::close(h->fd) : 0;
}

int zest_fd(zest_direct* d, int h) {
  Handle* f = zest::direct::handle_of(d, h);
  return f ? f->fd : fail<int>(EBADF);
}

ssize_t zest_pread(zest_direct* d, int h, void* buf, size_t n, off_t off) {
  Handle* f = zest::direct::handle_of(d, h);
  if (!f) return fail<ssize_t>(EBADF);
  if (off < 0) return fail<ssize_t>(EINVAL);
  return finish(zest::direct::file_read(d, *f, buf, n, static_cast<uint64_t>(off)));
}

ssize_t zest_pwrite(zest_direct* d, int h, const void* buf, size_t n, off_t off) {
  Handle* f = zest::direct::handle_of(d, h);
  if (!f) return fail<ssize_t>(EBADF);
  if (off < 0) return fail<ssize_t>(EINVAL);
  return finish(zest::direct::file_write(d, *f, buf, n, static_cast<uint64_t>(off)));
}

ssize_t zest_preadv(zest_direct* d, int h, const struct iovec* iov, int cnt, off_t off) {
  ssize_t total = 0;
  for (int i = 0; i < cnt; ++i) {
    const ssize_t r = zest_pread(d, h, iov[i].iov_base, iov[i].iov_len, off + total);
    if (r < 0) return total ? total : -1;
    total += r;
    if (static_cast<size_t>(r) < iov[i].iov_len) break;
  }
  return total;
}

ssize_t zest_pwritev(zest_direct* d, int h, const struct iovec* iov, int cnt, off_t off) {
  ssize_t total = 0;
  for (int i = 0; i < cnt; ++i) {
    const ssize_t r = zest_pwrite(d, h, iov[i].iov_base, iov[i].iov_len, off + total);
    if (r < 0) return total ? total : -1;
    total += r;
    if (static_cast<size_t>(r) < iov[i].iov_len) break;
  }
  return total;
}

static int sync_handle(zest_direct* d, int n, bool data_only) {
  Handle* h = zest::direct::handle_of(d, n);
  if (!h) return fail<int>(EBADF);
  // Direct writes are durable on return; what remains is the mtime of
  // overwrites, and whatever went through the kernel.
  if (!data_only && h->st) {
    std::lock_guard s(h->st->slow);
    if (int e = zest::direct::flush_mtime(d, *h->st); e && e != ESTALE) return fail<int>(e);
  }
  if (h->kernel_dirty || !h->direct) {
    if ((data_only ? ::fdatasync(h->fd) : ::fsync(h->fd)) != 0) return -1;
    h->kernel_dirty = false;
  }
  return 0;
}

int zest_fsync(zest_direct* d, int h) { return sync_handle(d, h, false); }
int zest_fdatasync(zest_direct* d, int h) { return sync_handle(d, h, true); }

int zest_fstat(zest_direct* d, int n, struct stat* st) {
  Handle* h = zest::direct::handle_of(d, n);
  if (!h) return fail<int>(EBADF);
  if (h->st) {
    bool dirty;
    {
      std::shared_lock g(h->st->rw);
      dirty = h->st->mtime_dirty;
    }
    if (dirty) {
      std::lock_guard s(h->st->slow);
      zest::direct::flush_mtime(d, *h->st);
    }
  }
  return ::fstat(h->fd, st);
}

// Calls that change the layout go through the kernel, the file's lease
// given back first (the kernel path would recall it anyway).
int zest_ftruncate(zest_direct* d, int n, off_t size) {
  Handle* h = zest::direct::handle_of(d, n);
  if (!h) return fail<int>(EBADF);
  if (h->st) {
    std::lock_guard s(h->st->slow);
    zest::direct::drop_lease(d, *h->st);
  }
  return ::ftruncate(h->fd, size);
}

int zest_fallocate(zest_direct* d, int n, int mode, off_t off, off_t len) {
  Handle* h = zest::direct::handle_of(d, n);
  if (!h) return fail<int>(EBADF);
  if (h->st) {
    std::lock_guard s(h->st->slow);
    zest::direct::drop_lease(d, *h->st);
  }
  return ::fallocate(h->fd, mode, off, len);
}

int zest_direct_flush_times(zest_direct* d) {
  if (!d) return fail<int>(EINVAL);
  std::vector<std::shared_ptr<FileState>> files;
  {
    std::lock_guard l(d->handles_mu);
    for (auto& [ino, w] : d->files)
      if (auto f = w.lock(); f && f->mtime_dirty.load(std::memory_order_relaxed)) files.push_back(f);
  }
  int err = 0;
  for (auto& f : files) {
    std::lock_guard s(f->slow);
    if (int e = zest::direct::flush_mtime(d, *f); e && e != ESTALE) err = e;
  }
  return err ? fail<int>(err) : 0;
}

int zest_stat(zest_direct* d, const char* path, struct stat* st) {
  if (!d || !path) return fail<int>(EINVAL);
  zest_direct_flush_times(d);  // the mtime of our overwrites, first
  return ::fstatat(dirfd_of(d, path), rel(path), st, 0);
}
int zest_unlink(zest_direct* d, const char* path) {
  if (!d || !path) return fail<int>(EINVAL);
  return ::unlinkat(dirfd_of(d, path), rel(path), 0);
}
int zest_rename(zest_direct* d, const char* from, const char* to) {
  if (!d || !from || !to) return fail<int>(EINVAL);
  return ::renameat(dirfd_of(d, from), rel(from), dirfd_of(d, to), rel(to));
}
int zest_mkdir(zest_direct* d, const char* path, mode_t mode) {
  if (!d || !path) return fail<int>(EINVAL);
  return ::mkdirat(dirfd_of(d, path), rel(path), mode);
}
int zest_rmdir(zest_direct* d, const char* path) {
  if (!d || !path) return fail<int>(EINVAL);
  return ::unlinkat(dirfd_of(d, path), rel(path), AT_REMOVEDIR);
}

int zest_readdir(zest_direct* d, const char* path,
                 int (*fn)(void* arg, const char* name, ino_t ino, unsigned char type),
                 void* arg) {
  if (!d || !path || !fn) return fail<int>(EINVAL);
  const int fd = ::openat(dirfd_of(d, path), rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    const int e = errno;
    ::close(fd);
    return fail<int>(e);
  }
  int rc = 0;
  errno = 0;
  while (dirent* e = ::readdir(dir)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    if ((rc = fn(arg, e->d_name, e->d_ino, e->d_type)) != 0) break;
    errno = 0;
  }
  const int e = errno;
  ::closedir(dir);
  if (rc == 0 && e) return fail<int>(e);
  return rc;
}

int zest_direct_map(zest_direct* d, int n, off_t off, size_t len, int intent,
                    zest_recall_fn recall, void* arg, struct zest_extent* out, int max) {
  Handle* h = zest::direct::handle_of(d, n);
  if (!h) return fail<int>(EBADF);
  if (off < 0 || len == 0 || max < 0 || (intent != ZEST_MAP_READ && intent != ZEST_MAP_WRITE))
    return fail<int>(EINVAL);
  if (!h->direct) return fail<int>(EOPNOTSUPP);
  const bool write = intent == ZEST_MAP_WRITE;
  if (write && (!d->writable || (h->flags & O_ACCMODE) == O_RDONLY)) return fail<int>(EACCES);
  FileState& f = *h->st;
  std::lock_guard s(f.slow);
  if (int e = zest::direct::ensure_lease(d, *h, write); e) return fail<int>(e);
  {
    std::unique_lock g(f.rw);
    f.recall_cb = recall;
    f.recall_arg = arg;
    f.recall_handle = n;
  }
  if (int e = zest::direct::map_range(d, f, static_cast<uint64_t>(off), len, write); e)
    return fail<int>(e);
  std::shared_lock g(f.rw);
  int k = 0;
  const uint64_t end = static_cast<uint64_t>(off) + len;
  for (uint64_t pos = static_cast<uint64_t>(off) / d->block * d->block; pos < end && k < max;) {
    const w::Extent* e = f.cache.find(pos);
    if (!e) break;
    out[k].offset = pos;
    out[k].length = e->offset + e->length - pos;
    out[k].state = static_cast<int>(e->state);
    out[k].pool_offset = e->state == w::kHole ? 0 : e->pool_offset + (pos - e->offset);
    out[k].addr = e->state == w::kHole ? nullptr : d->pool + out[k].pool_offset;
    pos = e->offset + e->length;
    ++k;
  }
  return k;
}

int zest_direct_commit(zest_direct* d, int n, off_t off, size_t len) {
  Handle* h = zest::direct::handle_of(d, n);
  if (!h) return fail<int>(EBADF);
  if (off < 0 || len == 0) return fail<int>(EINVAL);
  if (!h->st) return fail<int>(EOPNOTSUPP);
  FileState& f = *h->st;
  std::lock_guard s(f.slow);
  std::vector<w::Extent> flip;
  w::CommitIn c{};
  const uint64_t end = static_cast<uint64_t>(off) + len;
  {
    std::shared_lock g(f.rw);
    if (!zest::direct::lease_usable(d, f) || !f.lease.write) return fail<int>(ESTALE);
    for (uint64_t pos = static_cast<uint64_t>(off) / d->block * d->block; pos < end;) {
      const w::Extent* e = f.cache.find(pos);
      if (!e) return fail<int>(EINVAL);
      const uint64_t k = std::min(end, e->offset + e->length) - pos;
      const uint64_t kb = (k + d->block - 1) / d->block * d->block;
      if (e->state == w::kUnwritten)
        flip.push_back({pos, std::min(kb, e->offset + e->length - pos),
                        e->pool_offset + (pos - e->offset), w::kWritten, 0});
      pos = e->offset + e->length;
    }
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    c = {f.lease.id, f.ino, f.gen, end > f.size ? end : w::kNoSize, now.tv_sec,
         static_cast<uint32_t>(now.tv_nsec), static_cast<uint32_t>(flip.size())};
  }
  if (flip.size() > w::kMaxExtents) return fail<int>(E2BIG);
  std::vector<std::byte> msg(sizeof(c) + flip.size() * sizeof(w::Extent));
  std::memcpy(msg.data(), &c, sizeof(c));
  if (!flip.empty()) std::memcpy(msg.data() + sizeof(c), flip.data(), flip.size() * sizeof(w::Extent));
  auto r = d->chan.call(w::kCommit, msg, -1, nullptr);
  if (!r) return fail<int>(r.error().value);
  std::unique_lock g(f.rw);
  for (const w::Extent& e : flip) f.cache.mark_written(e.offset, e.length);
  f.size = std::max(f.size, end);
  return 0;
}

int zest_direct_unmap(zest_direct* d, int n) {
  Handle* h = zest::direct::handle_of(d, n);
  if (!h) return fail<int>(EBADF);
  if (!h->st) return 0;
  FileState& f = *h->st;
  std::lock_guard s(f.slow);
  {
    std::unique_lock g(f.rw);
    f.recall_cb = nullptr;
  }
  const int e = zest::direct::drop_lease(d, f);
  return e ? fail<int>(e) : 0;
}

void zest_direct_get_stats(const zest_direct* d, struct zest_direct_stats* o) {
  if (!d || !o) return;
  *o = {};
  for (const auto& s : d->counters) {
    o->direct_reads += s.direct_reads.load();
    o->direct_writes += s.direct_writes.load();
    o->kernel_reads += s.kernel_reads.load();
    o->kernel_writes += s.kernel_writes.load();
    o->leases += s.leases.load();
    o->recalls += s.recalls.load();
    o->fenced += s.fenced.load();
    o->maps += s.maps.load();
    o->commits += s.commits.load();
    o->retries += s.retries.load();
  }
}

}  // extern "C"
