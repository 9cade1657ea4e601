// Plain value types of the plugin API. Nothing here knows about FUSE: the
// server translates between these and the kernel protocol, so the same file
// system can be served by other front ends (the direct-access path).
#pragma once

#include <sys/types.h>
#include <time.h>

#include <cstdint>

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
};

}  // namespace zest::fs
