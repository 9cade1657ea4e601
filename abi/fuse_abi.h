// The FUSE kernel protocol, version 7.45 (Linux 6.18), as C++ types.
//
// Written from the Linux uAPI header include/uapi/linux/fuse.h. The names are
// the kernel's, unchanged, so code that uses them reads like the protocol
// spec; every #define became a typed constant and every function-like macro a
// constexpr function. This file has no logic: it is the wire format only.
//
// Every struct is checked against the kernel's size (and the offsets of the
// fields where padding makes the layout easy to get wrong) by static_assert;
// tests/abi/ also compares the part shared with the system's <linux/fuse.h>.
//
// The protocol is little-endian on every platform zest supports, and all
// structs are padded by the kernel to 64-bit multiples so that 32-bit servers
// work under 64-bit kernels; nothing here is packed.
#pragma once

#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace zest::abi {

// ---------------------------------------------------------------------------
// Version negotiation: the kernel sends its major.minor in FUSE_INIT; the
// server answers with its own. Equal majors use the smaller minor.

inline constexpr uint32_t FUSE_KERNEL_VERSION = 7;
inline constexpr uint32_t FUSE_KERNEL_MINOR_VERSION = 45;

// Node id of the mount's root directory.
inline constexpr uint64_t FUSE_ROOT_ID = 1;

// ---------------------------------------------------------------------------
// Attributes

struct fuse_attr {
  uint64_t ino;
  uint64_t size;
  uint64_t blocks;
  uint64_t atime;
  uint64_t mtime;
  uint64_t ctime;
  uint32_t atimensec;
  uint32_t mtimensec;
  uint32_t ctimensec;
  uint32_t mode;
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint32_t rdev;
  uint32_t blksize;
  uint32_t flags;  // FUSE_ATTR_*
};

// Mirrors struct statx_timestamp (statx(2)).
struct fuse_sx_time {
  int64_t tv_sec;
  uint32_t tv_nsec;
  int32_t __reserved;
};

// Mirrors struct statx (statx(2)) bit for bit.
struct fuse_statx {
  uint32_t mask;
  uint32_t blksize;
  uint64_t attributes;
  uint32_t nlink;
  uint32_t uid;
  uint32_t gid;
  uint16_t mode;
  uint16_t __spare0[1];
  uint64_t ino;
  uint64_t size;
  uint64_t blocks;
  uint64_t attributes_mask;
  fuse_sx_time atime;
  fuse_sx_time btime;
  fuse_sx_time ctime;
  fuse_sx_time mtime;
  uint32_t rdev_major;
  uint32_t rdev_minor;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint64_t __spare2[14];
};

struct fuse_kstatfs {
  uint64_t blocks;
  uint64_t bfree;
  uint64_t bavail;
  uint64_t files;
  uint64_t ffree;
  uint32_t bsize;
  uint32_t namelen;
  uint32_t frsize;
  uint32_t padding;
  uint32_t spare[6];
};

struct fuse_file_lock {
  uint64_t start;
  uint64_t end;
  uint32_t type;
  uint32_t pid;  // thread group id of the lock owner
};

// ---------------------------------------------------------------------------
// Flag sets

// fuse_setattr_in::valid: which fields of the request are meaningful.
inline constexpr uint32_t FATTR_MODE = 1u << 0;
inline constexpr uint32_t FATTR_UID = 1u << 1;
inline constexpr uint32_t FATTR_GID = 1u << 2;
inline constexpr uint32_t FATTR_SIZE = 1u << 3;
inline constexpr uint32_t FATTR_ATIME = 1u << 4;
inline constexpr uint32_t FATTR_MTIME = 1u << 5;
inline constexpr uint32_t FATTR_FH = 1u << 6;
inline constexpr uint32_t FATTR_ATIME_NOW = 1u << 7;
inline constexpr uint32_t FATTR_MTIME_NOW = 1u << 8;
inline constexpr uint32_t FATTR_LOCKOWNER = 1u << 9;
inline constexpr uint32_t FATTR_CTIME = 1u << 10;
inline constexpr uint32_t FATTR_KILL_SUIDGID = 1u << 11;

// fuse_open_out::open_flags: how the kernel treats the opened file.
inline constexpr uint32_t FOPEN_DIRECT_IO = 1u << 0;   // no page cache
inline constexpr uint32_t FOPEN_KEEP_CACHE = 1u << 1;  // keep cached data
inline constexpr uint32_t FOPEN_NONSEEKABLE = 1u << 2;
inline constexpr uint32_t FOPEN_CACHE_DIR = 1u << 3;  // cache readdir
inline constexpr uint32_t FOPEN_STREAM = 1u << 4;     // no file position
inline constexpr uint32_t FOPEN_NOFLUSH = 1u << 5;    // no FLUSH on close
inline constexpr uint32_t FOPEN_PARALLEL_DIRECT_WRITES = 1u << 6;
inline constexpr uint32_t FOPEN_PASSTHROUGH = 1u << 7;  // backing_id is set

// FUSE_INIT capability flags, bits 0..31 (fuse_init_in/out::flags).
inline constexpr uint32_t FUSE_ASYNC_READ = 1u << 0;
inline constexpr uint32_t FUSE_POSIX_LOCKS = 1u << 1;
inline constexpr uint32_t FUSE_FILE_OPS = 1u << 2;
inline constexpr uint32_t FUSE_ATOMIC_O_TRUNC = 1u << 3;
inline constexpr uint32_t FUSE_EXPORT_SUPPORT = 1u << 4;
inline constexpr uint32_t FUSE_BIG_WRITES = 1u << 5;
inline constexpr uint32_t FUSE_DONT_MASK = 1u << 6;
inline constexpr uint32_t FUSE_SPLICE_WRITE = 1u << 7;
inline constexpr uint32_t FUSE_SPLICE_MOVE = 1u << 8;
inline constexpr uint32_t FUSE_SPLICE_READ = 1u << 9;
inline constexpr uint32_t FUSE_FLOCK_LOCKS = 1u << 10;
inline constexpr uint32_t FUSE_HAS_IOCTL_DIR = 1u << 11;
inline constexpr uint32_t FUSE_AUTO_INVAL_DATA = 1u << 12;
inline constexpr uint32_t FUSE_DO_READDIRPLUS = 1u << 13;
inline constexpr uint32_t FUSE_READDIRPLUS_AUTO = 1u << 14;
inline constexpr uint32_t FUSE_ASYNC_DIO = 1u << 15;
inline constexpr uint32_t FUSE_WRITEBACK_CACHE = 1u << 16;
inline constexpr uint32_t FUSE_NO_OPEN_SUPPORT = 1u << 17;
inline constexpr uint32_t FUSE_PARALLEL_DIROPS = 1u << 18;
inline constexpr uint32_t FUSE_HANDLE_KILLPRIV = 1u << 19;
inline constexpr uint32_t FUSE_POSIX_ACL = 1u << 20;
inline constexpr uint32_t FUSE_ABORT_ERROR = 1u << 21;
inline constexpr uint32_t FUSE_MAX_PAGES = 1u << 22;
inline constexpr uint32_t FUSE_CACHE_SYMLINKS = 1u << 23;
inline constexpr uint32_t FUSE_NO_OPENDIR_SUPPORT = 1u << 24;
inline constexpr uint32_t FUSE_EXPLICIT_INVAL_DATA = 1u << 25;
inline constexpr uint32_t FUSE_MAP_ALIGNMENT = 1u << 26;
inline constexpr uint32_t FUSE_SUBMOUNTS = 1u << 27;
inline constexpr uint32_t FUSE_HANDLE_KILLPRIV_V2 = 1u << 28;
inline constexpr uint32_t FUSE_SETXATTR_EXT = 1u << 29;
inline constexpr uint32_t FUSE_INIT_EXT = 1u << 30;  // flags2 is valid
inline constexpr uint32_t FUSE_INIT_RESERVED = 1u << 31;

// FUSE_INIT capability flags, bits 32..63. On the wire they travel in
// fuse_init_in/out::flags2, shifted down by 32, and only with FUSE_INIT_EXT.
inline constexpr uint64_t FUSE_SECURITY_CTX = 1ULL << 32;
inline constexpr uint64_t FUSE_HAS_INODE_DAX = 1ULL << 33;
inline constexpr uint64_t FUSE_CREATE_SUPP_GROUP = 1ULL << 34;
inline constexpr uint64_t FUSE_HAS_EXPIRE_ONLY = 1ULL << 35;
inline constexpr uint64_t FUSE_DIRECT_IO_ALLOW_MMAP = 1ULL << 36;
inline constexpr uint64_t FUSE_PASSTHROUGH = 1ULL << 37;
inline constexpr uint64_t FUSE_NO_EXPORT_SUPPORT = 1ULL << 38;
inline constexpr uint64_t FUSE_HAS_RESEND = 1ULL << 39;
inline constexpr uint64_t FUSE_DIRECT_IO_RELAX =
    FUSE_DIRECT_IO_ALLOW_MMAP;  // old name
inline constexpr uint64_t FUSE_ALLOW_IDMAP = 1ULL << 40;
inline constexpr uint64_t FUSE_OVER_IO_URING = 1ULL << 41;
inline constexpr uint64_t FUSE_REQUEST_TIMEOUT = 1ULL << 42;

// CUSE_INIT flags.
inline constexpr uint32_t CUSE_UNRESTRICTED_IOCTL = 1u << 0;

// fuse_release_in::release_flags.
inline constexpr uint32_t FUSE_RELEASE_FLUSH = 1u << 0;
inline constexpr uint32_t FUSE_RELEASE_FLOCK_UNLOCK = 1u << 1;

// fuse_getattr_in::getattr_flags: fh is valid.
inline constexpr uint32_t FUSE_GETATTR_FH = 1u << 0;

// fuse_lk_in::lk_flags: a flock(2) lock, not a POSIX one.
inline constexpr uint32_t FUSE_LK_FLOCK = 1u << 0;

// fuse_write_in::write_flags.
inline constexpr uint32_t FUSE_WRITE_CACHE = 1u << 0;  // from the page cache
inline constexpr uint32_t FUSE_WRITE_LOCKOWNER = 1u << 1;
inline constexpr uint32_t FUSE_WRITE_KILL_SUIDGID = 1u << 2;
inline constexpr uint32_t FUSE_WRITE_KILL_PRIV =
    FUSE_WRITE_KILL_SUIDGID;  // old name

// fuse_read_in::read_flags.
inline constexpr uint32_t FUSE_READ_LOCKOWNER = 1u << 1;

// fuse_ioctl_in/out::flags.
inline constexpr uint32_t FUSE_IOCTL_COMPAT = 1u << 0;
inline constexpr uint32_t FUSE_IOCTL_UNRESTRICTED = 1u << 1;
inline constexpr uint32_t FUSE_IOCTL_RETRY = 1u << 2;
inline constexpr uint32_t FUSE_IOCTL_32BIT = 1u << 3;
inline constexpr uint32_t FUSE_IOCTL_DIR = 1u << 4;
inline constexpr uint32_t FUSE_IOCTL_COMPAT_X32 = 1u << 5;
// Upper bound of in_iovs + out_iovs in a retried ioctl.
inline constexpr uint32_t FUSE_IOCTL_MAX_IOV = 256;

// fuse_poll_in::flags.
inline constexpr uint32_t FUSE_POLL_SCHEDULE_NOTIFY = 1u << 0;

// fuse_fsync_in::fsync_flags.
inline constexpr uint32_t FUSE_FSYNC_FDATASYNC = 1u << 0;

// fuse_attr::flags.
inline constexpr uint32_t FUSE_ATTR_SUBMOUNT = 1u << 0;
inline constexpr uint32_t FUSE_ATTR_DAX = 1u << 1;

// fuse_open_in/fuse_create_in::open_flags.
inline constexpr uint32_t FUSE_OPEN_KILL_SUIDGID = 1u << 0;

// fuse_setxattr_in::setxattr_flags.
inline constexpr uint32_t FUSE_SETXATTR_ACL_KILL_SGID = 1u << 0;

// fuse_notify_inval_entry_out::flags: only expire the dentry, keep it.
inline constexpr uint32_t FUSE_EXPIRE_ONLY = 1u << 0;

// Request extensions (after the op's arguments, total_extlen 8-byte units).
// Types up to FUSE_MAX_NR_SECCTX are a fuse_secctx_header's nr_secctx.
enum fuse_ext_type : uint32_t {
  FUSE_MAX_NR_SECCTX = 31,
  FUSE_EXT_GROUPS = 32,
};

// ---------------------------------------------------------------------------
// Operations (fuse_in_header::opcode)

enum fuse_opcode : uint32_t {
  FUSE_LOOKUP = 1,
  FUSE_FORGET = 2,  // no reply
  FUSE_GETATTR = 3,
  FUSE_SETATTR = 4,
  FUSE_READLINK = 5,
  FUSE_SYMLINK = 6,
  FUSE_MKNOD = 8,
  FUSE_MKDIR = 9,
  FUSE_UNLINK = 10,
  FUSE_RMDIR = 11,
  FUSE_RENAME = 12,
  FUSE_LINK = 13,
  FUSE_OPEN = 14,
  FUSE_READ = 15,
  FUSE_WRITE = 16,
  FUSE_STATFS = 17,
  FUSE_RELEASE = 18,
  FUSE_FSYNC = 20,
  FUSE_SETXATTR = 21,
  FUSE_GETXATTR = 22,
  FUSE_LISTXATTR = 23,
  FUSE_REMOVEXATTR = 24,
  FUSE_FLUSH = 25,
  FUSE_INIT = 26,
  FUSE_OPENDIR = 27,
  FUSE_READDIR = 28,
  FUSE_RELEASEDIR = 29,
  FUSE_FSYNCDIR = 30,
  FUSE_GETLK = 31,
  FUSE_SETLK = 32,
  FUSE_SETLKW = 33,
  FUSE_ACCESS = 34,
  FUSE_CREATE = 35,
  FUSE_INTERRUPT = 36,
  FUSE_BMAP = 37,
  FUSE_DESTROY = 38,
  FUSE_IOCTL = 39,
  FUSE_POLL = 40,
  FUSE_NOTIFY_REPLY = 41,
  FUSE_BATCH_FORGET = 42,  // no reply
  FUSE_FALLOCATE = 43,
  FUSE_READDIRPLUS = 44,
  FUSE_RENAME2 = 45,
  FUSE_LSEEK = 46,
  FUSE_COPY_FILE_RANGE = 47,
  FUSE_SETUPMAPPING = 48,
  FUSE_REMOVEMAPPING = 49,
  FUSE_SYNCFS = 50,
  FUSE_TMPFILE = 51,
  FUSE_STATX = 52,
  FUSE_COPY_FILE_RANGE_64 = 53,

  CUSE_INIT = 4096,

  // Never sent; they show a peer of the other byte order.
  CUSE_INIT_BSWAP_RESERVED = 1048576,    // CUSE_INIT << 8
  FUSE_INIT_BSWAP_RESERVED = 436207616,  // FUSE_INIT << 24
};

// Unsolicited messages from the server: fuse_out_header::unique is 0 and
// fuse_out_header::error carries the code. (7.45 dropped
// FUSE_NOTIFY_CODE_MAX from the enum.)
enum fuse_notify_code : uint32_t {
  FUSE_NOTIFY_POLL = 1,
  FUSE_NOTIFY_INVAL_INODE = 2,
  FUSE_NOTIFY_INVAL_ENTRY = 3,
  FUSE_NOTIFY_STORE = 4,
  FUSE_NOTIFY_RETRIEVE = 5,
  FUSE_NOTIFY_DELETE = 6,
  FUSE_NOTIFY_RESEND = 7,
  FUSE_NOTIFY_INC_EPOCH = 8,
  FUSE_NOTIFY_PRUNE = 9,
};

// A read(2) of /dev/fuse must offer at least this many bytes.
inline constexpr size_t FUSE_MIN_READ_BUFFER = 8192;

// ---------------------------------------------------------------------------
// Per-operation arguments and replies

// Reply sizes used by servers older than the given minor version.
inline constexpr size_t FUSE_COMPAT_ENTRY_OUT_SIZE = 120;
inline constexpr size_t FUSE_COMPAT_ATTR_OUT_SIZE = 96;
inline constexpr size_t FUSE_COMPAT_MKNOD_IN_SIZE = 8;
inline constexpr size_t FUSE_COMPAT_WRITE_IN_SIZE = 24;
inline constexpr size_t FUSE_COMPAT_STATFS_SIZE = 48;
inline constexpr size_t FUSE_COMPAT_SETXATTR_IN_SIZE = 8;
inline constexpr size_t FUSE_COMPAT_INIT_OUT_SIZE = 8;
inline constexpr size_t FUSE_COMPAT_22_INIT_OUT_SIZE = 24;

struct fuse_entry_out {
  uint64_t nodeid;
  uint64_t generation;   // (nodeid, generation) never repeats in a mount
  uint64_t entry_valid;  // seconds the name may be cached
  uint64_t attr_valid;   // seconds the attributes may be cached
  uint32_t entry_valid_nsec;
  uint32_t attr_valid_nsec;
  fuse_attr attr;
};

struct fuse_forget_in {
  uint64_t nlookup;
};

struct fuse_forget_one {
  uint64_t nodeid;
  uint64_t nlookup;
};

// Followed by `count` fuse_forget_one.
struct fuse_batch_forget_in {
  uint32_t count;
  uint32_t dummy;
};

struct fuse_getattr_in {
  uint32_t getattr_flags;  // FUSE_GETATTR_*
  uint32_t dummy;
  uint64_t fh;
};

struct fuse_attr_out {
  uint64_t attr_valid;
  uint32_t attr_valid_nsec;
  uint32_t dummy;
  fuse_attr attr;
};

struct fuse_statx_in {
  uint32_t getattr_flags;
  uint32_t reserved;
  uint64_t fh;
  uint32_t sx_flags;  // AT_STATX_* of the caller
  uint32_t sx_mask;   // STATX_* wanted
};

struct fuse_statx_out {
  uint64_t attr_valid;
  uint32_t attr_valid_nsec;
  uint32_t flags;
  uint64_t spare[2];
  fuse_statx stat;
};

// Followed by the name. Before 7.12 only mode and rdev were sent.
struct fuse_mknod_in {
  uint32_t mode;
  uint32_t rdev;
  uint32_t umask;
  uint32_t padding;
};

struct fuse_mkdir_in {
  uint32_t mode;
  uint32_t umask;
};

// Followed by the old and the new name.
struct fuse_rename_in {
  uint64_t newdir;
};

struct fuse_rename2_in {
  uint64_t newdir;
  uint32_t flags;  // RENAME_* of renameat2(2)
  uint32_t padding;
};

struct fuse_link_in {
  uint64_t oldnodeid;
};

struct fuse_setattr_in {
  uint32_t valid;  // FATTR_*
  uint32_t padding;
  uint64_t fh;
  uint64_t size;
  uint64_t lock_owner;
  uint64_t atime;
  uint64_t mtime;
  uint64_t ctime;
  uint32_t atimensec;
  uint32_t mtimensec;
  uint32_t ctimensec;
  uint32_t mode;
  uint32_t unused4;
  uint32_t uid;
  uint32_t gid;
  uint32_t unused5;
};

struct fuse_open_in {
  uint32_t flags;       // open(2) flags
  uint32_t open_flags;  // FUSE_OPEN_*
};

// Followed by the name.
struct fuse_create_in {
  uint32_t flags;
  uint32_t mode;
  uint32_t umask;
  uint32_t open_flags;  // FUSE_OPEN_*
};

struct fuse_open_out {
  uint64_t fh;
  uint32_t open_flags;  // FOPEN_*
  int32_t backing_id;   // with FOPEN_PASSTHROUGH: from BACKING_OPEN
};

struct fuse_release_in {
  uint64_t fh;
  uint32_t flags;
  uint32_t release_flags;  // FUSE_RELEASE_*
  uint64_t lock_owner;
};

struct fuse_flush_in {
  uint64_t fh;
  uint32_t unused;
  uint32_t padding;
  uint64_t lock_owner;
};

struct fuse_read_in {
  uint64_t fh;
  uint64_t offset;
  uint32_t size;
  uint32_t read_flags;  // FUSE_READ_*
  uint64_t lock_owner;
  uint32_t flags;  // open(2) flags of the file
  uint32_t padding;
};

// Followed by `size` bytes of data.
struct fuse_write_in {
  uint64_t fh;
  uint64_t offset;
  uint32_t size;
  uint32_t write_flags;  // FUSE_WRITE_*
  uint64_t lock_owner;
  uint32_t flags;  // open(2) flags of the file
  uint32_t padding;
};

struct fuse_write_out {
  uint32_t size;
  uint32_t padding;
};

struct fuse_statfs_out {
  fuse_kstatfs st;
};

struct fuse_fsync_in {
  uint64_t fh;
  uint32_t fsync_flags;  // FUSE_FSYNC_*
  uint32_t padding;
};

// Followed by the name and the value. Without FUSE_SETXATTR_EXT the kernel
// sends only the first FUSE_COMPAT_SETXATTR_IN_SIZE bytes.
struct fuse_setxattr_in {
  uint32_t size;
  uint32_t flags;           // XATTR_CREATE / XATTR_REPLACE
  uint32_t setxattr_flags;  // FUSE_SETXATTR_*
  uint32_t padding;
};

struct fuse_getxattr_in {
  uint32_t size;
  uint32_t padding;
};

struct fuse_getxattr_out {
  uint32_t size;
  uint32_t padding;
};

struct fuse_lk_in {
  uint64_t fh;
  uint64_t owner;
  fuse_file_lock lk;
  uint32_t lk_flags;  // FUSE_LK_*
  uint32_t padding;
};

struct fuse_lk_out {
  fuse_file_lock lk;
};

struct fuse_access_in {
  uint32_t mask;
  uint32_t padding;
};

struct fuse_init_in {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;   // INIT flags, bits 0..31
  uint32_t flags2;  // INIT flags, bits 32..63 (with FUSE_INIT_EXT)
  uint32_t unused[11];
};

struct fuse_init_out {
  uint32_t major;
  uint32_t minor;
  uint32_t max_readahead;
  uint32_t flags;
  uint16_t max_background;
  uint16_t congestion_threshold;
  uint32_t max_write;
  uint32_t time_gran;
  uint16_t max_pages;
  uint16_t map_alignment;
  uint32_t flags2;
  uint32_t max_stack_depth;  // with FUSE_PASSTHROUGH
  uint16_t request_timeout;  // seconds, with FUSE_REQUEST_TIMEOUT
  uint16_t unused[11];
};

inline constexpr size_t CUSE_INIT_INFO_MAX = 4096;

struct cuse_init_in {
  uint32_t major;
  uint32_t minor;
  uint32_t unused;
  uint32_t flags;
};

struct cuse_init_out {
  uint32_t major;
  uint32_t minor;
  uint32_t unused;
  uint32_t flags;
  uint32_t max_read;
  uint32_t max_write;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint32_t spare[10];
};

struct fuse_interrupt_in {
  uint64_t unique;
};

struct fuse_bmap_in {
  uint64_t block;
  uint32_t blocksize;
  uint32_t padding;
};

struct fuse_bmap_out {
  uint64_t block;
};

struct fuse_ioctl_in {
  uint64_t fh;
  uint32_t flags;  // FUSE_IOCTL_*
  uint32_t cmd;
  uint64_t arg;
  uint32_t in_size;
  uint32_t out_size;
};

struct fuse_ioctl_iovec {
  uint64_t base;
  uint64_t len;
};

struct fuse_ioctl_out {
  int32_t result;
  uint32_t flags;  // FUSE_IOCTL_*
  uint32_t in_iovs;
  uint32_t out_iovs;
};

struct fuse_poll_in {
  uint64_t fh;
  uint64_t kh;
  uint32_t flags;  // FUSE_POLL_*
  uint32_t events;
};

struct fuse_poll_out {
  uint32_t revents;
  uint32_t padding;
};

struct fuse_notify_poll_wakeup_out {
  uint64_t kh;
};

struct fuse_fallocate_in {
  uint64_t fh;
  uint64_t offset;
  uint64_t length;
  uint32_t mode;  // FALLOC_FL_*
  uint32_t padding;
};

// Top bit of fuse_in_header::unique: the kernel resends this request
// (after FUSE_NOTIFY_RESEND).
inline constexpr uint64_t FUSE_UNIQUE_RESEND = 1ULL << 63;

// fuse_in_header::uid/gid when an idmapped mount (FUSE_ALLOW_IDMAP) has no
// mapping for the caller.
inline constexpr uint32_t FUSE_INVALID_UIDGID = static_cast<uint32_t>(-1);

// ---------------------------------------------------------------------------
// Message headers

// Starts every request; len covers header, arguments and extensions.
struct fuse_in_header {
  uint32_t len;
  uint32_t opcode;  // fuse_opcode
  uint64_t unique;
  uint64_t nodeid;
  uint32_t uid;
  uint32_t gid;
  uint32_t pid;
  uint16_t total_extlen;  // extensions, in 8-byte units
  uint16_t padding;
};

// Starts every reply and notification; error is 0 or a negative errno.
struct fuse_out_header {
  uint32_t len;
  int32_t error;
  uint64_t unique;
};

// ---------------------------------------------------------------------------
// Directory entries. name[] is a flexible array member, a C feature that GCC
// and Clang accept in C++; it is what lets a reply be built in place.

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif

// One READDIR record; padded to 8 bytes (fuse_dirent_size).
struct fuse_dirent {
  uint64_t ino;
  uint64_t off;  // cookie of the next entry
  uint32_t namelen;
  uint32_t type;  // DT_* of dirent(3), i.e. (mode & S_IFMT) >> 12
  char name[];
};

// One READDIRPLUS record.
struct fuse_direntplus {
  fuse_entry_out entry_out;
  fuse_dirent dirent;
};

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

// Variable-length records are aligned to 8 bytes.
constexpr size_t fuse_rec_align(size_t x) {
  return (x + sizeof(uint64_t) - 1) & ~(sizeof(uint64_t) - 1);
}
constexpr size_t fuse_dirent_align(size_t x) { return fuse_rec_align(x); }

inline constexpr size_t FUSE_NAME_OFFSET = 24;  // offsetof(fuse_dirent, name)
inline constexpr size_t FUSE_NAME_OFFSET_DIRENTPLUS = 152;  // ... dirent.name

// Bytes one record with a name of namelen bytes takes in the reply buffer.
constexpr size_t fuse_dirent_size(size_t namelen) {
  return fuse_dirent_align(FUSE_NAME_OFFSET + namelen);
}
constexpr size_t fuse_direntplus_size(size_t namelen) {
  return fuse_dirent_align(FUSE_NAME_OFFSET_DIRENTPLUS + namelen);
}

// ---------------------------------------------------------------------------
// Notifications (server to kernel)

struct fuse_notify_inval_inode_out {
  uint64_t ino;
  int64_t off;
  int64_t len;  // <= 0: to the end of the file
};

// Followed by the name and a NUL.
struct fuse_notify_inval_entry_out {
  uint64_t parent;
  uint32_t namelen;
  uint32_t flags;  // FUSE_EXPIRE_ONLY
};

// Followed by the name and a NUL.
struct fuse_notify_delete_out {
  uint64_t parent;
  uint64_t child;
  uint32_t namelen;
  uint32_t padding;
};

// Followed by `size` bytes of data.
struct fuse_notify_store_out {
  uint64_t nodeid;
  uint64_t offset;
  uint32_t size;
  uint32_t padding;
};

struct fuse_notify_retrieve_out {
  uint64_t notify_unique;
  uint64_t nodeid;
  uint64_t offset;
  uint32_t size;
  uint32_t padding;
};

// The kernel's FUSE_NOTIFY_REPLY to a retrieve; shaped like fuse_write_in.
struct fuse_notify_retrieve_in {
  uint64_t dummy1;
  uint64_t offset;
  uint32_t size;
  uint32_t dummy2;
  uint64_t dummy3;
  uint64_t dummy4;
};

// Followed by `count` node ids (uint64_t) the kernel should drop if unused.
struct fuse_notify_prune_out {
  uint32_t count;
  uint32_t padding;
  uint64_t spare;
};

// ---------------------------------------------------------------------------
// /dev/fuse ioctls

// Argument of FUSE_DEV_IOC_BACKING_OPEN: a file to pass reads/writes to.
struct fuse_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};

inline constexpr unsigned long FUSE_DEV_IOC_MAGIC = 229;
// Attach a new fd of /dev/fuse to the session of the fd given (uint32_t).
inline constexpr unsigned long FUSE_DEV_IOC_CLONE =
    _IOR(FUSE_DEV_IOC_MAGIC, 0, uint32_t);
// Register a backing file; returns a backing id for fuse_open_out.
inline constexpr unsigned long FUSE_DEV_IOC_BACKING_OPEN =
    _IOW(FUSE_DEV_IOC_MAGIC, 1, fuse_backing_map);
// Drop a backing id (uint32_t).
inline constexpr unsigned long FUSE_DEV_IOC_BACKING_CLOSE =
    _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t);
// Before mount: make FUSE_INIT happen during mount(2) (ENOTTY if unsupported).
inline constexpr unsigned long FUSE_DEV_IOC_SYNC_INIT =
    _IO(FUSE_DEV_IOC_MAGIC, 3);

// ---------------------------------------------------------------------------
// More operations

struct fuse_lseek_in {
  uint64_t fh;
  uint64_t offset;
  uint32_t whence;
  uint32_t padding;
};

struct fuse_lseek_out {
  uint64_t offset;
};

struct fuse_copy_file_range_in {
  uint64_t fh_in;
  uint64_t off_in;
  uint64_t nodeid_out;
  uint64_t fh_out;
  uint64_t off_out;
  uint64_t len;
  uint64_t flags;
};

// Reply of FUSE_COPY_FILE_RANGE_64 (FUSE_COPY_FILE_RANGE answers with
// fuse_write_out, whose 32-bit size caps a copy below 4 GiB).
struct fuse_copy_file_range_out {
  uint64_t bytes_copied;
};

// virtio-fs DAX window mappings.
inline constexpr uint64_t FUSE_SETUPMAPPING_FLAG_WRITE = 1ULL << 0;
inline constexpr uint64_t FUSE_SETUPMAPPING_FLAG_READ = 1ULL << 1;

struct fuse_setupmapping_in {
  uint64_t fh;
  uint64_t foffset;  // file offset
  uint64_t len;
  uint64_t flags;    // FUSE_SETUPMAPPING_FLAG_*
  uint64_t moffset;  // offset in the DAX window
};

// Followed by `count` fuse_removemapping_one.
struct fuse_removemapping_in {
  uint32_t count;
};

struct fuse_removemapping_one {
  uint64_t moffset;
  uint64_t len;
};

// The kernel's FUSE_REMOVEMAPPING_MAX_ENTRY depends on its PAGE_SIZE.
constexpr size_t fuse_removemapping_max_entry(size_t page_size) {
  return page_size / sizeof(fuse_removemapping_one);
}

struct fuse_syncfs_in {
  uint64_t padding;
};

// ---------------------------------------------------------------------------
// Request extensions

// One security context: this, then the xattr name (NUL-terminated), then the
// context value, padded to 8 bytes.
struct fuse_secctx {
  uint32_t size;
  uint32_t padding;
};

// Starts the security-context extension; size includes this header.
struct fuse_secctx_header {
  uint32_t size;
  uint32_t nr_secctx;
};

// Starts every other extension; size includes this header. type is a
// fuse_ext_type above FUSE_MAX_NR_SECCTX.
struct fuse_ext_header {
  uint32_t size;
  uint32_t type;
};

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif

// FUSE_EXT_GROUPS payload (with FUSE_CREATE_SUPP_GROUP).
struct fuse_supp_groups {
  uint32_t nr_groups;
  uint32_t groups[];
};

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

// ---------------------------------------------------------------------------
// FUSE over io_uring (FUSE_OVER_IO_URING, 7.42). Each ring entry's header
// buffer is a fuse_uring_req_header; the payload buffer holds the data.

inline constexpr size_t FUSE_URING_IN_OUT_HEADER_SZ = 128;
inline constexpr size_t FUSE_URING_OP_IN_OUT_SZ = 128;

struct fuse_uring_ent_in_out {
  uint64_t flags;
  uint64_t commit_id;   // echo in the COMMIT_AND_FETCH that answers
  uint32_t payload_sz;  // bytes used in the payload buffer
  uint32_t padding;
  uint64_t reserved;
};

struct fuse_uring_req_header {
  char in_out[FUSE_URING_IN_OUT_HEADER_SZ];  // fuse_in_header / fuse_out_header
  char op_in[FUSE_URING_OP_IN_OUT_SZ];       // the opcode's own argument struct
  fuse_uring_ent_in_out ring_ent_in_out;
};

// IORING_OP_URING_CMD cmd_op values.
enum fuse_uring_cmd : uint32_t {
  FUSE_IO_URING_CMD_INVALID = 0,
  FUSE_IO_URING_CMD_REGISTER = 1,  // hand over a buffer, wait for a request
  FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,  // answer, wait for the next request
};

// Lives in the SQE's 80-byte command area.
struct fuse_uring_cmd_req {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;  // queue index, one queue per CPU
  uint8_t padding[6];
};

// ---------------------------------------------------------------------------
// Layout checks: sizes from the 6.18 uAPI header; offsets where padding or
// field order is easy to get wrong.

#define ZEST_ABI_SIZE(T, n)                                            \
  static_assert(sizeof(T) == (n), #T " size");                         \
  static_assert(                                                       \
      std::is_standard_layout_v<T> && std::is_trivially_copyable_v<T>, \
      #T " must be a plain wire struct")
#define ZEST_ABI_OFFSET(T, f, n) static_assert(offsetof(T, f) == (n), #T "." #f)

ZEST_ABI_SIZE(fuse_attr, 88);
ZEST_ABI_OFFSET(fuse_attr, atimensec, 48);
ZEST_ABI_OFFSET(fuse_attr, mode, 60);
ZEST_ABI_OFFSET(fuse_attr, blksize, 80);
ZEST_ABI_OFFSET(fuse_attr, flags, 84);
ZEST_ABI_SIZE(fuse_sx_time, 16);
ZEST_ABI_SIZE(fuse_statx, 256);
ZEST_ABI_OFFSET(fuse_statx, mode, 28);
ZEST_ABI_OFFSET(fuse_statx, ino, 32);
ZEST_ABI_OFFSET(fuse_statx, atime, 64);
ZEST_ABI_OFFSET(fuse_statx, mtime, 112);
ZEST_ABI_OFFSET(fuse_statx, rdev_major, 128);
ZEST_ABI_OFFSET(fuse_statx, __spare2, 144);
ZEST_ABI_SIZE(fuse_kstatfs, 80);
ZEST_ABI_OFFSET(fuse_kstatfs, bsize, 40);
ZEST_ABI_SIZE(fuse_file_lock, 24);
ZEST_ABI_SIZE(fuse_entry_out, 128);
ZEST_ABI_OFFSET(fuse_entry_out, entry_valid_nsec, 32);
ZEST_ABI_OFFSET(fuse_entry_out, attr, 40);
ZEST_ABI_SIZE(fuse_forget_in, 8);
ZEST_ABI_SIZE(fuse_forget_one, 16);
ZEST_ABI_SIZE(fuse_batch_forget_in, 8);
ZEST_ABI_SIZE(fuse_getattr_in, 16);
ZEST_ABI_OFFSET(fuse_getattr_in, fh, 8);
ZEST_ABI_SIZE(fuse_attr_out, 104);
ZEST_ABI_OFFSET(fuse_attr_out, attr, 16);
ZEST_ABI_SIZE(fuse_statx_in, 24);
ZEST_ABI_OFFSET(fuse_statx_in, sx_flags, 16);
ZEST_ABI_SIZE(fuse_statx_out, 288);
ZEST_ABI_OFFSET(fuse_statx_out, stat, 32);
ZEST_ABI_SIZE(fuse_mknod_in, 16);
ZEST_ABI_SIZE(fuse_mkdir_in, 8);
ZEST_ABI_SIZE(fuse_rename_in, 8);
ZEST_ABI_SIZE(fuse_rename2_in, 16);
ZEST_ABI_SIZE(fuse_link_in, 8);
ZEST_ABI_SIZE(fuse_setattr_in, 88);
ZEST_ABI_OFFSET(fuse_setattr_in, fh, 8);
ZEST_ABI_OFFSET(fuse_setattr_in, atime, 32);
ZEST_ABI_OFFSET(fuse_setattr_in, atimensec, 56);
ZEST_ABI_OFFSET(fuse_setattr_in, mode, 68);
ZEST_ABI_OFFSET(fuse_setattr_in, uid, 76);
ZEST_ABI_OFFSET(fuse_setattr_in, gid, 80);
ZEST_ABI_SIZE(fuse_open_in, 8);
ZEST_ABI_SIZE(fuse_create_in, 16);
ZEST_ABI_SIZE(fuse_open_out, 16);
ZEST_ABI_OFFSET(fuse_open_out, backing_id, 12);
ZEST_ABI_SIZE(fuse_release_in, 24);
ZEST_ABI_SIZE(fuse_flush_in, 24);
ZEST_ABI_OFFSET(fuse_flush_in, lock_owner, 16);
ZEST_ABI_SIZE(fuse_read_in, 40);
ZEST_ABI_OFFSET(fuse_read_in, size, 16);
ZEST_ABI_OFFSET(fuse_read_in, lock_owner, 24);
ZEST_ABI_OFFSET(fuse_read_in, flags, 32);
ZEST_ABI_SIZE(fuse_write_in, 40);
ZEST_ABI_OFFSET(fuse_write_in, size, 16);
ZEST_ABI_OFFSET(fuse_write_in, write_flags, 20);
ZEST_ABI_OFFSET(fuse_write_in, lock_owner, 24);
ZEST_ABI_OFFSET(fuse_write_in, flags, 32);
ZEST_ABI_SIZE(fuse_write_out, 8);
ZEST_ABI_SIZE(fuse_statfs_out, 80);
ZEST_ABI_SIZE(fuse_fsync_in, 16);
ZEST_ABI_SIZE(fuse_setxattr_in, 16);
ZEST_ABI_SIZE(fuse_getxattr_in, 8);
ZEST_ABI_SIZE(fuse_getxattr_out, 8);
ZEST_ABI_SIZE(fuse_lk_in, 48);
ZEST_ABI_OFFSET(fuse_lk_in, lk, 16);
ZEST_ABI_OFFSET(fuse_lk_in, lk_flags, 40);
ZEST_ABI_SIZE(fuse_lk_out, 24);
ZEST_ABI_SIZE(fuse_access_in, 8);
ZEST_ABI_SIZE(fuse_init_in, 64);
ZEST_ABI_OFFSET(fuse_init_in, flags, 12);
ZEST_ABI_OFFSET(fuse_init_in, flags2, 16);
ZEST_ABI_OFFSET(fuse_init_in, unused, 20);
ZEST_ABI_SIZE(fuse_init_out, 64);
ZEST_ABI_OFFSET(fuse_init_out, max_background, 16);
ZEST_ABI_OFFSET(fuse_init_out, congestion_threshold, 18);
ZEST_ABI_OFFSET(fuse_init_out, max_write, 20);
ZEST_ABI_OFFSET(fuse_init_out, time_gran, 24);
ZEST_ABI_OFFSET(fuse_init_out, max_pages, 28);
ZEST_ABI_OFFSET(fuse_init_out, map_alignment, 30);
ZEST_ABI_OFFSET(fuse_init_out, flags2, 32);
ZEST_ABI_OFFSET(fuse_init_out, max_stack_depth, 36);
ZEST_ABI_OFFSET(fuse_init_out, request_timeout, 40);
ZEST_ABI_OFFSET(fuse_init_out, unused, 42);
ZEST_ABI_SIZE(cuse_init_in, 16);
ZEST_ABI_SIZE(cuse_init_out, 72);
ZEST_ABI_SIZE(fuse_interrupt_in, 8);
ZEST_ABI_SIZE(fuse_bmap_in, 16);
ZEST_ABI_SIZE(fuse_bmap_out, 8);
ZEST_ABI_SIZE(fuse_ioctl_in, 32);
ZEST_ABI_OFFSET(fuse_ioctl_in, arg, 16);
ZEST_ABI_SIZE(fuse_ioctl_iovec, 16);
ZEST_ABI_SIZE(fuse_ioctl_out, 16);
ZEST_ABI_SIZE(fuse_poll_in, 24);
ZEST_ABI_SIZE(fuse_poll_out, 8);
ZEST_ABI_SIZE(fuse_notify_poll_wakeup_out, 8);
ZEST_ABI_SIZE(fuse_fallocate_in, 32);
ZEST_ABI_SIZE(fuse_in_header, 40);
ZEST_ABI_OFFSET(fuse_in_header, unique, 8);
ZEST_ABI_OFFSET(fuse_in_header, nodeid, 16);
ZEST_ABI_OFFSET(fuse_in_header, uid, 24);
ZEST_ABI_OFFSET(fuse_in_header, pid, 32);
ZEST_ABI_OFFSET(fuse_in_header, total_extlen, 36);
ZEST_ABI_SIZE(fuse_out_header, 16);
ZEST_ABI_OFFSET(fuse_out_header, unique, 8);
ZEST_ABI_SIZE(fuse_dirent, 24);
ZEST_ABI_OFFSET(fuse_dirent, namelen, 16);
ZEST_ABI_OFFSET(fuse_dirent, type, 20);
ZEST_ABI_OFFSET(fuse_dirent, name, FUSE_NAME_OFFSET);
ZEST_ABI_SIZE(fuse_direntplus, 152);
ZEST_ABI_OFFSET(fuse_direntplus, dirent, 128);
static_assert(offsetof(fuse_direntplus, dirent) + offsetof(fuse_dirent, name) ==
              FUSE_NAME_OFFSET_DIRENTPLUS);
ZEST_ABI_SIZE(fuse_notify_inval_inode_out, 24);
ZEST_ABI_SIZE(fuse_notify_inval_entry_out, 16);
ZEST_ABI_SIZE(fuse_notify_delete_out, 24);
ZEST_ABI_SIZE(fuse_notify_store_out, 24);
ZEST_ABI_SIZE(fuse_notify_retrieve_out, 32);
ZEST_ABI_SIZE(fuse_notify_retrieve_in, 40);
static_assert(sizeof(fuse_notify_retrieve_in) == sizeof(fuse_write_in));
ZEST_ABI_SIZE(fuse_notify_prune_out, 16);
ZEST_ABI_SIZE(fuse_backing_map, 16);
ZEST_ABI_OFFSET(fuse_backing_map, padding, 8);
ZEST_ABI_SIZE(fuse_lseek_in, 24);
ZEST_ABI_SIZE(fuse_lseek_out, 8);
ZEST_ABI_SIZE(fuse_copy_file_range_in, 56);
ZEST_ABI_SIZE(fuse_copy_file_range_out, 8);
ZEST_ABI_SIZE(fuse_setupmapping_in, 40);
ZEST_ABI_SIZE(fuse_removemapping_in, 4);
ZEST_ABI_SIZE(fuse_removemapping_one, 16);
ZEST_ABI_SIZE(fuse_syncfs_in, 8);
ZEST_ABI_SIZE(fuse_secctx, 8);
ZEST_ABI_SIZE(fuse_secctx_header, 8);
ZEST_ABI_SIZE(fuse_ext_header, 8);
ZEST_ABI_SIZE(fuse_supp_groups, 4);
ZEST_ABI_OFFSET(fuse_supp_groups, groups, 4);
ZEST_ABI_SIZE(fuse_uring_ent_in_out, 32);
ZEST_ABI_OFFSET(fuse_uring_ent_in_out, commit_id, 8);
ZEST_ABI_OFFSET(fuse_uring_ent_in_out, payload_sz, 16);
ZEST_ABI_OFFSET(fuse_uring_ent_in_out, reserved, 24);
ZEST_ABI_SIZE(fuse_uring_req_header, 288);
ZEST_ABI_OFFSET(fuse_uring_req_header, op_in, 128);
ZEST_ABI_OFFSET(fuse_uring_req_header, ring_ent_in_out, 256);
ZEST_ABI_SIZE(fuse_uring_cmd_req, 24);
ZEST_ABI_OFFSET(fuse_uring_cmd_req, qid, 16);
ZEST_ABI_OFFSET(fuse_uring_cmd_req, padding, 18);
static_assert(sizeof(fuse_uring_cmd_req) <= 80,
              "must fit the SQE command area");
static_assert(sizeof(fuse_in_header) <= FUSE_URING_IN_OUT_HEADER_SZ);

#undef ZEST_ABI_SIZE
#undef ZEST_ABI_OFFSET

#if defined(__x86_64__) || defined(__aarch64__)
// The ioctl numbers as the kernel computes them with the generic encoding
// (_IOC: dir << 30 | size << 16 | type << 8 | nr).
static_assert(FUSE_DEV_IOC_CLONE == 0x8004e500);
static_assert(FUSE_DEV_IOC_BACKING_OPEN == 0x4010e501);
static_assert(FUSE_DEV_IOC_BACKING_CLOSE == 0x4004e502);
static_assert(FUSE_DEV_IOC_SYNC_INIT == 0xe503);
#endif

static_assert(fuse_dirent_size(0) == 24 && fuse_dirent_size(1) == 32 &&
              fuse_dirent_size(8) == 32 && fuse_dirent_size(9) == 40);
static_assert(fuse_direntplus_size(1) == 160);

}  // namespace zest::abi
