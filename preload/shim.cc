// libzest-preload: unmodified programs on the direct path (docs/preload.md).
//
// Interposes libc's file calls (LD_PRELOAD). Every open goes to the kernel
// (a real fd, always); when the fd is a regular file of a zest mount with
// direct access, a libzest-direct handle is attached to that fd number.
// Positional I/O (pread/pwrite and the v variants) then goes to the pool;
// read/write go there too, at the kernel's file offset (lseek, which FUSE
// answers without the server), which they move as the kernel would, so the
// offset is always the kernel's: dup, fork, exec and fd passing see it
// exact. Everything else, and every fd without direct state, goes to libc
// unchanged.
//
// Reentrancy: libzest-direct itself calls open, pread, fstat, close...;
// those calls must reach libc, not this shim: a thread-local flag marks
// code running inside the library (Inside), and every wrapper passes
// straight through while it is set.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <mutex>

#include "preload/fd_table.h"

#define ZEST_EXPORT extern "C" __attribute__((visibility("default")))

namespace zest::preload {
namespace {

// --- the real functions ----------------------------------------------------
template <class F>
F next(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}
#define REAL(name)                                                        \
  static auto real_##name = next<decltype(&::name)>(#name);               \
  if (!real_##name) real_##name = next<decltype(&::name)>(#name)

thread_local bool t_inside = false;
struct Inside {
  bool prev;
  Inside() : prev(t_inside) { t_inside = true; }
  ~Inside() { t_inside = prev; }
};

std::atomic<bool> g_ready{false};
// Allocated by init(): a global with a constructor could be initialized
// after our constructor ran (and wipe what it found).
Mount* g_mounts = nullptr;
int g_nmounts = 0;
std::mutex g_attach_mu;
std::atomic<FdState*> g_fds[kMaxFds];
Counters g_stats;
// Set by direct writes (which may leave an overwrite's mtime pending in
// libzest-direct); a stat by path first sends those times.
std::atomic<bool> g_times_pending{false};
// read/write at the file offset: one at a time per file (as the kernel's
// f_pos lock), striped by inode.
std::mutex g_pos_mu[64];

FdState* state_of(int fd) {
  if (t_inside || fd < 0 || fd >= kMaxFds || !g_ready.load(std::memory_order_acquire))
    return nullptr;
  return g_fds[fd].load(std::memory_order_acquire);
}

// Reads /proc/self/mountinfo for fuse.zest mounts.
void find_mounts() {
  Inside in;
  g_mounts = new Mount[16];
  FILE* f = std::fopen("/proc/self/mountinfo", "re");
  if (!f) return;
  char* line = nullptr;
  size_t cap = 0;
  while (::getline(&line, &cap, f) > 0 && g_nmounts < 16) {
    const char* sep = std::strstr(line, " - fuse.zest ");
    if (!sep) continue;
    unsigned id, parent, maj, min;
    char root[4096], mp[4096];
    if (std::sscanf(line, "%u %u %u:%u %4095s %4095s", &id, &parent, &maj, &min, root, mp) != 6)
      continue;
    Mount& m = g_mounts[g_nmounts++];
    m.dev = makedev(maj, min);
    m.path = mp;
  }
  std::free(line);
  std::fclose(f);
}

Mount* mount_of(dev_t dev) {
  for (int i = 0; i < g_nmounts; ++i)
    if (g_mounts[i].dev == dev) return &g_mounts[i];
  return nullptr;
}

zest_direct* attached(Mount* m) {
  if (zest_direct* d = m->d.load(std::memory_order_acquire)) return d;
  if (m->tried.load()) return nullptr;
  std::lock_guard lock(g_attach_mu);
  if (!m->tried.load()) {
    Inside in;
    zest_direct* d = zest_direct_attach(m->path.c_str(), 0);
    if (d && !zest_direct_is_direct(d)) {
      zest_direct_detach(d);
      d = nullptr;
    }
    m->d.store(d, std::memory_order_release);
    m->tried.store(true);
  }
  return m->d.load();
}

// After a successful open: attach direct state if the fd deserves it.
void maybe_adopt(int fd, int flags) {
  if (fd < 0 || fd >= kMaxFds || t_inside || !g_ready.load() || g_nmounts == 0) return;
  if (flags & O_PATH) return;
  Inside in;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  Mount* m = mount_of(st.st_dev);
  if (!m) {
    g_stats.not_zest.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  zest_direct* d = attached(m);
  if (!d) {
    g_stats.no_direct.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const int h = zest_adopt(d, fd, flags);
  if (h < 0) return;
  auto* s = new FdState{d, h, flags, st.st_ino};
  if (FdState* old = g_fds[fd].exchange(s)) {
    zest_forget(old->d, old->handle);
    delete old;
  }
  g_stats.adopted.fetch_add(1, std::memory_order_relaxed);
}

// Before a close (or dup2/dup3 over an fd): drop its direct state.
void forget(int fd) {
  if (fd < 0 || fd >= kMaxFds) return;
  if (FdState* s = g_fds[fd].exchange(nullptr)) {
    Inside in;
    zest_forget(s->d, s->handle);
    delete s;
  }
}

void adopt_dup(int oldfd, int newfd) {
  FdState* s = state_of(oldfd);
  if (!s || newfd < 0 || newfd >= kMaxFds) return;
  Inside in;
  const int h = zest_adopt(s->d, newfd, s->flags);
  if (h < 0) return;
  if (FdState* old = g_fds[newfd].exchange(new FdState{s->d, h, s->flags, s->ino})) {
    zest_forget(old->d, old->handle);
    delete old;
  }
}

void note_write() {
  if (!g_times_pending.load(std::memory_order_relaxed)) g_times_pending.store(true, std::memory_order_relaxed);
}

void flush_times() {
  if (!g_times_pending.load(std::memory_order_relaxed) || t_inside || !g_ready.load()) return;
  g_times_pending.store(false);
  Inside in;
  for (int i = 0; i < g_nmounts; ++i)
    if (zest_direct* d = g_mounts[i].d.load()) zest_direct_flush_times(d);
}

// Results of direct calls, counted.
template <class T>
T direct(T r) {
  g_stats.direct.fetch_add(1, std::memory_order_relaxed);
  if (r < 0) g_stats.errors.fetch_add(1, std::memory_order_relaxed);
  return r;
}

// stderr as it was at start: programs may close theirs before our atexit
// handler runs (coreutils do).
int g_debug_fd = -1;

void print_stats() {
  if (g_debug_fd < 0) return;
  char buf[512];
  const int n = std::snprintf(buf, sizeof buf,
               "zest-preload[%d]: %llu calls direct, %llu on fds without direct state; "
               "opens: %llu direct, %llu outside zest mounts, %llu on mounts without direct "
               "access; kernel path: %llu O_APPEND writes, %llu unsupported flags; %llu direct "
               "calls failed\n",
               static_cast<int>(::getpid()),
               (unsigned long long)g_stats.direct.load(), (unsigned long long)g_stats.passthrough.load(),
               (unsigned long long)g_stats.adopted.load(), (unsigned long long)g_stats.not_zest.load(),
               (unsigned long long)g_stats.no_direct.load(), (unsigned long long)g_stats.append.load(),
               (unsigned long long)g_stats.unsupported.load(), (unsigned long long)g_stats.errors.load());
  Inside in;
  if (n > 0) (void)!::write(g_debug_fd, buf, std::min<size_t>(n, sizeof buf - 1));
}

// fork: the child must not talk on the parent's channel or use its leases.
// Its fds stay valid (the kernel path serves them); new opens attach anew.
void after_fork_child() {
  for (auto& slot : g_fds) slot.store(nullptr, std::memory_order_relaxed);  // leaked, never used
  for (int i = 0; i < g_nmounts; ++i) {
    g_mounts[i].d.store(nullptr);
    g_mounts[i].tried.store(false);
  }
  new (&g_attach_mu) std::mutex();
  for (auto& m : g_pos_mu) new (&m) std::mutex();
}

__attribute__((constructor)) void init() {
  if (const char* e = std::getenv("ZEST_PRELOAD_DEBUG"); e && *e && *e != '0') {
    Inside in;
    g_debug_fd = ::fcntl(2, F_DUPFD_CLOEXEC, 64);
  }
  find_mounts();
  ::pthread_atfork(nullptr, nullptr, after_fork_child);
  std::atexit(print_stats);
  g_ready.store(true, std::memory_order_release);
}

mode_t mode_arg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

// read/write at the kernel's offset, moved as the kernel moves it.
template <class Op>
ssize_t at_offset(int fd, FdState* s, Op op) {
  std::lock_guard lock(g_pos_mu[s->ino % 64]);
  REAL(lseek);
  const off_t pos = real_lseek(fd, 0, SEEK_CUR);
  if (pos < 0) return -1;
  ssize_t r;
  {
    Inside in;
    r = op(pos);
  }
  if (r > 0) real_lseek(fd, pos + r, SEEK_SET);
  return direct(r);
}

}  // namespace
}  // namespace zest::preload

using namespace zest::preload;

// --- opens -----------------------------------------------------------------
ZEST_EXPORT int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  REAL(open);
  const int fd = real_open(path, flags, mode);
  maybe_adopt(fd, flags);
  return fd;
}
ZEST_EXPORT int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  REAL(open64);
  const int fd = real_open64(path, flags, mode);
  maybe_adopt(fd, flags);
  return fd;
}
ZEST_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  REAL(openat);
  const int fd = real_openat(dirfd, path, flags, mode);
  maybe_adopt(fd, flags);
  return fd;
}
ZEST_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  REAL(openat64);
  const int fd = real_openat64(dirfd, path, flags, mode);
  maybe_adopt(fd, flags);
  return fd;
}
// _FORTIFY_SOURCE's checked variants (no mode: they are the O_CREAT-less path).
ZEST_EXPORT int __open_2(const char* path, int flags) {
  REAL(open);
  const int fd = real_open(path, flags);
  maybe_adopt(fd, flags);
  return fd;
}
ZEST_EXPORT int __open64_2(const char* path, int flags) {
  REAL(open64);
  const int fd = real_open64(path, flags);
  maybe_adopt(fd, flags);
  return fd;
}
ZEST_EXPORT int __openat_2(int dirfd, const char* path, int flags) {
  REAL(openat);
  const int fd = real_openat(dirfd, path, flags);
  maybe_adopt(fd, flags);
  return fd;
}
ZEST_EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  REAL(openat64);
  const int fd = real_openat64(dirfd, path, flags);
  maybe_adopt(fd, flags);
  return fd;
}
ZEST_EXPORT int creat(const char* path, mode_t mode) {
  return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
ZEST_EXPORT int creat64(const char* path, mode_t mode) {
  return open64(path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

// --- closes and dups ---------------------------------------------------------
ZEST_EXPORT int close(int fd) {
  REAL(close);
  if (!t_inside) forget(fd);
  return real_close(fd);
}
ZEST_EXPORT int close_range(unsigned first, unsigned last, int flags) {
  REAL(close_range);
  if (!t_inside && !(flags & CLOSE_RANGE_CLOEXEC))
    for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(kMaxFds); ++fd) forget(static_cast<int>(fd));
  return real_close_range(first, last, flags);
}
ZEST_EXPORT int dup(int fd) {
  REAL(dup);
  const int n = real_dup(fd);
  if (n >= 0) adopt_dup(fd, n);
  return n;
}
ZEST_EXPORT int dup2(int fd, int nfd) {
  REAL(dup2);
  if (fd != nfd && !t_inside) forget(nfd);
  const int n = real_dup2(fd, nfd);
  if (n >= 0 && fd != nfd) adopt_dup(fd, n);
  return n;
}
ZEST_EXPORT int dup3(int fd, int nfd, int flags) {
  REAL(dup3);
  if (!t_inside) forget(nfd);
  const int n = real_dup3(fd, nfd, flags);
  if (n >= 0) adopt_dup(fd, n);
  return n;
}
ZEST_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);  // int or pointer: both fit (x86-64, arm64 ABIs)
  va_end(ap);
  REAL(fcntl);
  const int r = real_fcntl(fd, cmd, arg);
  if (r < 0 || t_inside) return r;
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
    adopt_dup(fd, r);
  } else if (cmd == F_SETFL) {
    if (FdState* s = state_of(fd))
      s->flags = (s->flags & ~(O_APPEND | O_NONBLOCK | O_DIRECT)) |
                 (static_cast<int>(reinterpret_cast<intptr_t>(arg)) & (O_APPEND | O_NONBLOCK | O_DIRECT));
  }
  return r;
}
ZEST_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntl(fd, cmd, arg);
}

// --- data --------------------------------------------------------------------
ZEST_EXPORT ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  if (FdState* s = state_of(fd)) {
    Inside in;
    return direct(zest_pread(s->d, s->handle, buf, n, off));
  }
  REAL(pread);
  return real_pread(fd, buf, n, off);
}
ZEST_EXPORT ssize_t pread64(int fd, void* buf, size_t n, off_t off) { return pread(fd, buf, n, off); }
ZEST_EXPORT ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  FdState* s = state_of(fd);
  if (s && !(s->flags & O_APPEND)) {
    note_write();
    Inside in;
    return direct(zest_pwrite(s->d, s->handle, buf, n, off));
  }
  if (s) g_stats.append.fetch_add(1, std::memory_order_relaxed);
  REAL(pwrite);
  return real_pwrite(fd, buf, n, off);
}
ZEST_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }
ZEST_EXPORT ssize_t preadv(int fd, const struct iovec* iov, int cnt, off_t off) {
  if (FdState* s = state_of(fd)) {
    Inside in;
    return direct(zest_preadv(s->d, s->handle, iov, cnt, off));
  }
  REAL(preadv);
  return real_preadv(fd, iov, cnt, off);
}
ZEST_EXPORT ssize_t preadv64(int fd, const struct iovec* iov, int cnt, off_t off) { return preadv(fd, iov, cnt, off); }
ZEST_EXPORT ssize_t pwritev(int fd, const struct iovec* iov, int cnt, off_t off) {
  FdState* s = state_of(fd);
  if (s && !(s->flags & O_APPEND)) {
    note_write();
    Inside in;
    return direct(zest_pwritev(s->d, s->handle, iov, cnt, off));
  }
  REAL(pwritev);
  return real_pwritev(fd, iov, cnt, off);
}
ZEST_EXPORT ssize_t pwritev64(int fd, const struct iovec* iov, int cnt, off_t off) { return pwritev(fd, iov, cnt, off); }
ZEST_EXPORT ssize_t preadv2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  FdState* s = state_of(fd);
  if (s && flags == 0 && off != -1) return preadv(fd, iov, cnt, off);
  if (s && flags == 0) return readv(fd, iov, cnt);
  if (s) g_stats.unsupported.fetch_add(1, std::memory_order_relaxed);
  REAL(preadv2);
  return real_preadv2(fd, iov, cnt, off, flags);
}
ZEST_EXPORT ssize_t preadv64v2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  return preadv2(fd, iov, cnt, off, flags);
}
ZEST_EXPORT ssize_t pwritev2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  FdState* s = state_of(fd);
  // RWF_DSYNC/RWF_SYNC ask for what a direct write is anyway: durable.
  const int ok = RWF_DSYNC | RWF_SYNC;
  if (s && (flags & ~ok) == 0 && off != -1) return pwritev(fd, iov, cnt, off);
  if (s && (flags & ~ok) == 0) return writev(fd, iov, cnt);
  if (s) g_stats.unsupported.fetch_add(1, std::memory_order_relaxed);
  REAL(pwritev2);
  return real_pwritev2(fd, iov, cnt, off, flags);
}
ZEST_EXPORT ssize_t pwritev64v2(int fd, const struct iovec* iov, int cnt, off_t off, int flags) {
  return pwritev2(fd, iov, cnt, off, flags);
}

ZEST_EXPORT ssize_t read(int fd, void* buf, size_t n) {
  if (FdState* s = state_of(fd))
    return at_offset(fd, s, [&](off_t pos) { return zest_pread(s->d, s->handle, buf, n, pos); });
  REAL(read);
  return real_read(fd, buf, n);
}
ZEST_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  FdState* s = state_of(fd);
  if (s && !(s->flags & O_APPEND)) {
    note_write();
    return at_offset(fd, s, [&](off_t pos) { return zest_pwrite(s->d, s->handle, buf, n, pos); });
  }
  if (s) g_stats.append.fetch_add(1, std::memory_order_relaxed);
  REAL(write);
  return real_write(fd, buf, n);
}
ZEST_EXPORT ssize_t readv(int fd, const struct iovec* iov, int cnt) {
  if (FdState* s = state_of(fd))
    return at_offset(fd, s, [&](off_t pos) { return zest_preadv(s->d, s->handle, iov, cnt, pos); });
  REAL(readv);
  return real_readv(fd, iov, cnt);
}
ZEST_EXPORT ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  FdState* s = state_of(fd);
  if (s && !(s->flags & O_APPEND)) {
    note_write();
    return at_offset(fd, s, [&](off_t pos) { return zest_pwritev(s->d, s->handle, iov, cnt, pos); });
  }
  if (s) g_stats.append.fetch_add(1, std::memory_order_relaxed);
  REAL(writev);
  return real_writev(fd, iov, cnt);
}

// --- metadata of open files --------------------------------------------------
ZEST_EXPORT int fstat(int fd, struct stat* st) {
  if (FdState* s = state_of(fd)) {
    Inside in;
    return direct(zest_fstat(s->d, s->handle, st));  // the mtime of overwrites first
  }
  REAL(fstat);
  return real_fstat(fd, st);
}
ZEST_EXPORT int fstat64(int fd, struct stat64* st) {
  return fstat(fd, reinterpret_cast<struct stat*>(st));  // one layout on 64-bit
}
ZEST_EXPORT int fsync(int fd) {
  if (FdState* s = state_of(fd)) {
    Inside in;
    return direct(zest_fsync(s->d, s->handle));
  }
  REAL(fsync);
  return real_fsync(fd);
}
ZEST_EXPORT int fdatasync(int fd) {
  if (FdState* s = state_of(fd)) {
    Inside in;
    return direct(zest_fdatasync(s->d, s->handle));
  }
  REAL(fdatasync);
  return real_fdatasync(fd);
}
ZEST_EXPORT int ftruncate(int fd, off_t len) {
  if (FdState* s = state_of(fd)) {
    Inside in;
    return direct(zest_ftruncate(s->d, s->handle, len));
  }
  REAL(ftruncate);
  return real_ftruncate(fd, len);
}
ZEST_EXPORT int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }
ZEST_EXPORT int fallocate(int fd, int mode, off_t off, off_t len) {
  if (FdState* s = state_of(fd)) {
    Inside in;
    return direct(zest_fallocate(s->d, s->handle, mode, off, len));
  }
  REAL(fallocate);
  return real_fallocate(fd, mode, off, len);
}
ZEST_EXPORT int fallocate64(int fd, int mode, off_t off, off_t len) { return fallocate(fd, mode, off, len); }
ZEST_EXPORT int posix_fallocate(int fd, off_t off, off_t len) {
  if (FdState* s = state_of(fd)) {
    Inside in;
    const int r = zest_fallocate(s->d, s->handle, 0, off, len);
    return direct(r) == 0 ? 0 : errno;
  }
  REAL(posix_fallocate);
  return real_posix_fallocate(fd, off, len);
}
ZEST_EXPORT int posix_fallocate64(int fd, off_t off, off_t len) { return posix_fallocate(fd, off, len); }

// --- stat by path: the mtime of our overwrites first ---------------------------
ZEST_EXPORT int stat(const char* path, struct stat* st) {
  flush_times();
  REAL(stat);
  return real_stat(path, st);
}
ZEST_EXPORT int stat64(const char* path, struct stat64* st) {
  flush_times();
  REAL(stat64);
  return real_stat64(path, st);
}
ZEST_EXPORT int lstat(const char* path, struct stat* st) {
  flush_times();
  REAL(lstat);
  return real_lstat(path, st);
}
ZEST_EXPORT int lstat64(const char* path, struct stat64* st) {
  flush_times();
  REAL(lstat64);
  return real_lstat64(path, st);
}
ZEST_EXPORT int fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  flush_times();
  REAL(fstatat);
  return real_fstatat(dirfd, path, st, flags);
}
ZEST_EXPORT int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) {
  flush_times();
  REAL(fstatat64);
  return real_fstatat64(dirfd, path, st, flags);
}
ZEST_EXPORT int statx(int dirfd, const char* path, int flags, unsigned mask, struct statx* st) {
  flush_times();
  REAL(statx);
  return real_statx(dirfd, path, flags, mask, st);
}
