// Plain value types of the plugin API. Nothing here knows about FUSE: the
// server translates between these and the kernel protocol, so the same file
// system can be served by other front ends (the direct-access path).
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <span>

namespace zest::fs {

using Ino = uint64_t;
inline constexpr Ino kRootIno = 1;

// Who is asking. Taken from the request header.
struct Context {
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;
  // mknod, mkdir, create and tmpfile: the caller's umask (0 in every other
  // call). A file system with Capabilities::posix_acl applies it itself,
  // unless the parent directory has a default ACL (zest/fs/posix_acl.h,
  // acl_inherit); for the others the kernel applied it already and applying
  // it again changes nothing.
  uint32_t umask = 0;
  // flush, release, getlk and setlk: the kernel's id of the lock owner
  // (one per process's file table for POSIX locks, one per open file for
  // flock(2) and OFD locks); 0 in every other call. A file system that
  // keeps locks drops the owner's POSIX locks at flush (close(2) of any
  // descriptor releases them, as POSIX says) and, at release with
  // `release_flock`, its flock locks (fs::LockTable does both).
  uint64_t lock_owner = 0;
  // release: the open file took flock(2) locks (FUSE_RELEASE_FLOCK_UNLOCK).
  bool release_flock = false;
  // mknod, mkdir, create, tmpfile and symlink, with
  // Capabilities::supp_groups: supplementary groups of the caller the
  // kernel chose to tell (FUSE_EXT_GROUPS). Linux 6.18 sends at most one:
  // the parent directory's group, when the caller is in it only as a
  // supplementary group (not its fsgid), so that a file system can decide
  // what inode_init_owner() decides (S_ISGID kept on a new file in a setgid
  // directory). Further groups beyond kMaxGroups are not kept.
  static constexpr uint32_t kMaxGroups = 8;
  uint32_t ngroups = 0;
  uint32_t groups[kMaxGroups] = {};
  std::span<const uint32_t> supp_groups() const { return {groups, ngroups}; }
};

// Attributes of an inode, as stat(2) shows them.
struct Attr {
  Ino ino = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // in 512-byte units, as st_blocks
  timespec atime{};
  timespec mtime{};
  timespec ctime{};
  uint32_t mode = 0;  // file type and permission bits
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t rdev = 0;
  uint32_t blksize = 4096;
};

// The answer to lookup/mkdir/mknod/symlink/link/create: an inode the kernel
// now holds one more reference to (see FileSystem::forget).
struct Entry {
  Ino ino = 0;
  uint64_t generation = 0;
  Attr attr;
  double entry_timeout = 1.0;  // seconds the kernel may cache the name
  double attr_timeout = 1.0;   // seconds the kernel may cache attr
};

// How the kernel moves the data of one open file.
enum class IoMode : uint8_t {
  // The file system's copy is the only one: every write reaches the file
  // system before it returns and nothing is cached across opens. O_DIRECT
  // opens bypass the page cache; buffered opens use it written through,
  // since only the page cache keeps pwrite coherent with shared mappings
  // (docs/architecture.md, "I/O modes and coherence").
  Direct,
  Cached,       // kernel page cache; only misses and write-back reach us
  Passthrough,  // the kernel reads/writes a backing file itself
};

struct OpenInfo {
  uint64_t fh = 0;  // file system's handle, given back on every call
  IoMode mode = IoMode::Direct;
  // Page cache (Cached, and Direct's buffered opens): do not drop the
  // kernel's cached pages of the file at this open.
  bool keep_cache = false;
  bool nonseekable = false;
  bool parallel_direct_writes = true;  // O_DIRECT opens: no inode lock
  int backing_fd = -1;  // Passthrough: the file the kernel should use
};

// setattr changes. Only the fields named in `valid` are meaningful.
struct SetAttr {
  enum : uint32_t {
    kMode = 1u << 0,
    kUid = 1u << 1,
    kGid = 1u << 2,
    kSize = 1u << 3,
    kAtime = 1u << 4,      // set atime to `atime`
    kMtime = 1u << 5,      // set mtime to `mtime`
    kAtimeNow = 1u << 6,   // set atime to the current time
    kMtimeNow = 1u << 7,   // set mtime to the current time
    kCtime = 1u << 8,      // set ctime to `ctime`
    kKillSuidGid = 1u << 9,
  };
  uint32_t valid = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  timespec atime{};
  timespec mtime{};
  timespec ctime{};
  bool has_fh = false;  // the change came through an open file (ftruncate...)
  uint64_t fh = 0;
};

// setxattr's `ext_flags`: what the kernel asks beyond storing the value.
// The caller is neither in the file's group nor privileged: setting an
// access ACL also clears S_ISGID (FUSE_SETXATTR_ACL_KILL_SGID).
inline constexpr uint32_t kXattrAclKillSgid = 1u << 0;

// A POSIX record lock (fcntl(2) F_GETLK/F_SETLK/F_SETLKW, OFD locks) or,
// for setlk with `flock`, a flock(2) lock over the whole file. `end` is
// inclusive; "to the end of the file" is kLockEnd.
struct Lock {
  uint32_t type = F_UNLCK;  // F_RDLCK, F_WRLCK or F_UNLCK
  uint64_t start = 0;
  uint64_t end = 0;
  uint32_t pid = 0;  // the holder's process (as the kernel's pid namespace sees it)
};
inline constexpr uint64_t kLockEnd = 0x7fffffffffffffffULL;  // OFFSET_MAX

// statx(2) with more than stat(2) can say: the attributes plus the birth
// time. `mask` holds the STATX_* bits that are valid (STATX_BASIC_STATS and
// STATX_BTIME are what the kernel passes on).
struct StatxAttr {
  Attr attr;
  timespec btime{};
  uint32_t mask = 0;
  uint64_t attributes = 0;       // STATX_ATTR_* set
  uint64_t attributes_mask = 0;  // STATX_ATTR_* the file system knows
};

// poll's `flags`: the kernel waits for readiness; remember the poll
// handle and send Notifier::poll_wakeup(kh) when the answer would change.
inline constexpr uint32_t kPollScheduleNotify = 1u << 0;

struct StatFs {
  uint64_t blocks = 0;  // in units of frsize
  uint64_t bfree = 0;
  uint64_t bavail = 0;
  uint64_t files = 0;
  uint64_t ffree = 0;
  uint32_t bsize = 4096;
  uint32_t frsize = 4096;
  uint32_t namelen = 255;
};

// What the file system asks of the kernel at mount time.
struct Capabilities {
  bool writeback_cache = false;  // Cached files may use the writeback cache
  bool export_support = true;    // lookup of "." and ".." is answered
  // The file system clears S_ISUID (and S_ISGID when group-executable) on
  // writes and truncates that ask for it (the write flag and
  // SetAttr::kKillSuidGid) and on chown of a non-directory. The kernel then
  // stops asking for security.capability before every buffered write
  // (FUSE_HANDLE_KILLPRIV_V2 sets SB_NOSEC): one round trip less per write.
  bool kills_suid = false;
  // Every change to file data comes through this mount (memfs, pmfs; not
  // mirrorfs, whose backing files others may change). The kernel then does
  // not revalidate its page cache against mtime and size.
  bool sole_writer = false;
  uint32_t max_write = 1u << 20;
  // Reads answered with DataReply::ok_fd may be spliced from the file to
  // /dev/fuse (FUSE_SPLICE_WRITE) when at least `splice_min` bytes long;
  // shorter ones, and all of them without this, are copied (pread into the
  // request's buffer). Splicing takes one system call more per reply and
  // saves one copy of the data: on the 2-vCPU VM it lost 5% at 4 KiB, broke
  // even at 16 KiB and won from 32 KiB on (mirrorfs/README.md), hence the
  // default threshold.
  bool splice_write = false;
  uint32_t splice_min = 32 * 1024;
  // The file system stores POSIX ACLs as the xattrs system.posix_acl_access
  // and system.posix_acl_default and keeps them consistent with the mode
  // (zest/fs/posix_acl.h). The kernel then checks permissions against them
  // (FUSE_POSIX_ACL, which also turns on default_permissions), leaves the
  // umask to the file system (FUSE_DONT_MASK; Context::umask) and says when
  // an ACL change must clear S_ISGID (FUSE_SETXATTR_EXT, kXattrAclKillSgid).
  bool posix_acl = false;

  // --- locks ---------------------------------------------------------------
  // The file system answers getlk/setlk for POSIX record locks (fcntl(2),
  // OFD locks; FUSE_POSIX_LOCKS) and/or setlk with `flock` for flock(2)
  // (FUSE_FLOCK_LOCKS). Without them (the default) the kernel keeps the
  // locks itself, which is right as long as this mount is the only way to
  // the files (fs::LockTable implements the semantics for file systems that
  // want to hold them: network or shared back ends).
  bool posix_locks = false;
  bool flock_locks = false;

  // --- connection parameters (set once, at INIT) ---------------------------
  // The largest readahead the kernel may do (capped by its own offer).
  uint32_t max_readahead = 1u << 20;
  // Granularity of the file system's timestamps in nanoseconds, a power of
  // ten from 1 to 1e9: the kernel truncates the times it sets (utimensat,
  // its own c/mtime updates) to it.
  uint32_t time_gran = 1;
  // When the kernel drops a file's cached pages on its own:
  //  kDefault: kAuto, or kSizeChange for sole_writer file systems (see
  //            sole_writer above; what every file system got before this);
  //  kSizeChange: when a GETATTR reply shows a new size;
  //  kAuto: also when it shows a new mtime (FUSE_AUTO_INVAL_DATA);
  //  kExplicit: never; only Notifier::inval_inode drops them
  //             (FUSE_EXPLICIT_INVAL_DATA).
  enum class DataInval : uint8_t { kDefault, kSizeChange, kAuto, kExplicit };
  DataInval data_inval = DataInval::kDefault;
  // READDIRPLUS: kAuto lets the kernel choose per directory stream
  // (FUSE_DO_READDIRPLUS + FUSE_READDIRPLUS_AUTO: plus for the first
  // listing and after lookups); kAlways, every listing is plus; kOff, never.
  enum class Readdirplus : uint8_t { kAuto, kAlways, kOff };
  Readdirplus readdirplus = Readdirplus::kAuto;
  // The file system keeps no state per open file (regular files, resp.
  // directories): the server answers the first OPEN (OPENDIR) with ENOSYS
  // itself and the kernel opens without asking from then on
  // (FUSE_NO_OPEN_SUPPORT / FUSE_NO_OPENDIR_SUPPORT): open()/opendir(),
  // release()/releasedir() are not called, `fh` is 0, and files use the
  // page cache, kept across opens. A file system that answers open with
  // ENOSYS itself gets the same from then on.
  bool no_open = false;
  bool no_opendir = false;
  // The kernel caches readlink answers in the page cache
  // (FUSE_CACHE_SYMLINKS); Notifier::inval_inode drops them.
  bool cache_symlinks = true;
  // Context::groups is filled for creating calls (FUSE_CREATE_SUPP_GROUP).
  bool supp_groups = false;
};

}  // namespace zest::fs
