/* libzest-direct: read and write files of a zest mount with no kernel
 * crossing on the data path (docs/direct.md).
 *
 * A program attaches to a mount point, then opens files through this
 * library. Every open goes through the kernel mount (so the kernel checks
 * permissions, and the library keeps that kernel fd as proof and as its
 * fallback); reads and writes then go straight to the file system's pool
 * under a lease, when the file system offers layouts (pmfs does) and the
 * process may open the pool file itself. Everything else, and everything
 * the library cannot do directly, goes through the kernel mount, so a
 * program works the same with or without direct access.
 *
 * Conventions: as POSIX. Functions return -1 (or NULL) and set errno on
 * failure. Handles are this library's own small integers, not kernel file
 * descriptors (zest_fd() gives the kernel fd behind one). Every function is
 * thread-safe; one handle may be used by several threads at once, as an fd.
 *
 * Durability: a write that returns is durable as the file system promises
 * for its own writes (pmfs: durable on return). Overwrites of written data
 * go in place and are not atomic against a crash (each aligned 8 bytes
 * is); writes that allocate (holes, appends) become visible, with the new
 * size, atomically when they return. The mtime of in-place overwrites
 * reaches the file system at fsync, close, or when the lease is recalled.
 */
#ifndef ZEST_DIRECT_H
#define ZEST_DIRECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef struct zest_direct zest_direct;

/* zest_direct_attach flags */
#define ZEST_DIRECT_READONLY 1u  /* ask for a read-only pool mapping */
#define ZEST_DIRECT_NO_DIRECT 2u /* never use the pool: kernel path only */

/* Attaches to the zest mount at `mountpoint`. Succeeds on any mount (on a
 * file system without layouts, or without pool access, every call simply
 * goes through the kernel); fails with ENOENT/ENOTDIR for a bad path. */
zest_direct* zest_direct_attach(const char* mountpoint, unsigned flags);
/* Closes every handle still open and lets go of the mount. */
void zest_direct_detach(zest_direct* d);
/* 1 when reads and writes can go to the pool directly, else 0. */
int zest_direct_is_direct(const zest_direct* d);

/* Files. Paths are absolute, or relative to the mount point. */
int zest_open(zest_direct* d, const char* path, int flags, mode_t mode);
int zest_close(zest_direct* d, int h);
int zest_fd(zest_direct* d, int h); /* the kernel fd behind a handle */
/* A handle for a kernel fd the caller opened on the mount (with `flags`,
 * as given to open) and keeps owning: zest_forget releases the handle and
 * leaves the fd open. For interposers (libzest-preload). -1/EXDEV when
 * the fd is not a regular file of this mount. */
int zest_adopt(zest_direct* d, int fd, int flags);
int zest_forget(zest_direct* d, int h);
ssize_t zest_pread(zest_direct* d, int h, void* buf, size_t n, off_t off);
ssize_t zest_pwrite(zest_direct* d, int h, const void* buf, size_t n, off_t off);
ssize_t zest_preadv(zest_direct* d, int h, const struct iovec* iov, int cnt, off_t off);
ssize_t zest_pwritev(zest_direct* d, int h, const struct iovec* iov, int cnt, off_t off);
int zest_fsync(zest_direct* d, int h);
int zest_fdatasync(zest_direct* d, int h);
int zest_fstat(zest_direct* d, int h, struct stat* st);
int zest_ftruncate(zest_direct* d, int h, off_t size);
int zest_fallocate(zest_direct* d, int h, int mode, off_t off, off_t len);

/* Sends the mtime of overwrites made in place (on every file of this
 * attachment) to the file system now, so that stat by path shows it. */
int zest_direct_flush_times(zest_direct* d);

/* Names (through the kernel mount, which checks permissions). */
int zest_stat(zest_direct* d, const char* path, struct stat* st);
int zest_unlink(zest_direct* d, const char* path);
int zest_rename(zest_direct* d, const char* from, const char* to);
int zest_mkdir(zest_direct* d, const char* path, mode_t mode);
int zest_rmdir(zest_direct* d, const char* path);
/* Calls fn for each entry but "." and ".."; stops early when fn returns
 * non-zero (and returns that value). */
int zest_readdir(zest_direct* d, const char* path,
                 int (*fn)(void* arg, const char* name, ino_t ino, unsigned char type),
                 void* arg);

/* Raw pool ranges for a device or copy engine (no pinning: the range is
 * valid until `recall` is called, from another thread, after which the
 * caller must stop touching it before returning). */
#define ZEST_MAP_READ 1
#define ZEST_MAP_WRITE 2
#define ZEST_EXTENT_WRITTEN 1
#define ZEST_EXTENT_UNWRITTEN 2 /* allocated, reads as zeros until committed */
#define ZEST_EXTENT_HOLE 3
struct zest_extent {
  uint64_t offset;  /* in the file */
  uint64_t length;
  void* addr;       /* in this process (NULL for a hole) */
  uint64_t pool_offset;
  int state;
};
typedef void (*zest_recall_fn)(void* arg, int h);
/* Maps [off, off + len) of handle h (rounded out to blocks; WRITE
 * allocates holes as unwritten extents). Fills at most `max` extents and
 * returns how many, or -1. The map holds until recall or zest_direct_unmap. */
int zest_direct_map(zest_direct* d, int h, off_t off, size_t len, int intent,
                    zest_recall_fn recall, void* arg, struct zest_extent* out, int max);
/* Makes what was stored into unwritten extents of [off, off + len) file
 * data, growing the size to off + len if that is larger. */
int zest_direct_commit(zest_direct* d, int h, off_t off, size_t len);
int zest_direct_unmap(zest_direct* d, int h);

/* Counters of this attachment. */
struct zest_direct_stats {
  uint64_t direct_reads, direct_writes;  /* calls served from the pool */
  uint64_t kernel_reads, kernel_writes;  /* calls that went through the kernel */
  uint64_t leases, recalls, fenced, maps, commits, retries;
};
void zest_direct_get_stats(const zest_direct* d, struct zest_direct_stats* out);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif /* ZEST_DIRECT_H */
