// The POSIX rules a file system that keeps its own metadata must apply
// itself (memfs, pmfs): names, the owner and mode of new inodes, clearing
// set-id bits, the checks of unlink/rmdir/rename that need the file
// system's own tree, and which times each operation changes. Pure functions
// on plain values, no I/O and no allocation; both file systems call them, so
// a new one answers as tmpfs does by calling them too.
//
// What the kernel already does, and a file system must NOT repeat (Linux
// 6.18, a FUSE mount with default_permissions, which zest mounts with by
// default (transport/mount.h) and FUSE_POSIX_ACL turns on):
//
// - Permission to search, read, write and execute, against the mode, owner
//   and ACLs the file system answered (generic_permission). access(2) is the
//   exception: FUSE asks the file system (FileSystem::access).
// - Sticky directories: may_delete() calls check_sticky() for unlink, rmdir
//   and both names of rename, on every file system: in a directory with
//   S_ISVTX only the file's owner, the directory's owner or CAP_FOWNER may
//   remove or rename an entry (EPERM). Such a request never reaches us.
// - setattr permission (setattr_prepare(), run by fuse_do_setattr because
//   default_permissions leaves out ATTR_FORCE): chown only by CAP_CHOWN,
//   chgrp by the owner to one of its groups, chmod by the owner or
//   CAP_FOWNER; explicit times (utimensat with timespecs) by the owner or
//   CAP_FOWNER; UTIME_NOW/NULL times also by anyone with write permission
//   (may_setattr(), ATTR_TOUCH). All EPERM/EACCES before SETATTR is sent.
// - chmod by a caller neither in the file's group nor CAP_FSETID: the
//   kernel drops S_ISGID from the mode before sending it
//   (setattr_prepare(); likewise FUSE_SETXATTR_ACL_KILL_SGID for ACLs,
//   zest/fs/posix_acl.h). The file system stores the mode it gets.
// - A new file in a setgid directory: vfs_prepare_mode() (mode_strip_sgid)
//   drops S_ISGID from a group-executable non-directory when the caller is
//   neither in the directory's group nor CAP_FSETID; vfs_mkdir() keeps only
//   the permission bits and S_ISVTX of a new directory's mode.
// - "." and ".." as the last name of mkdir/mknod/link/unlink/rmdir/rename,
//   empty names and names with '/' are answered by path lookup and never
//   sent. RENAME_NOREPLACE together with RENAME_EXCHANGE, unknown rename
//   flags, and RENAME_NOREPLACE onto a name the dcache knows, are answered
//   by do_renameat2()/fuse_rename2() (RENAME_WHITEOUT does reach the file
//   system). The type checks of unlink/rmdir/rename
//   (may_delete(): ENOTDIR, EISDIR) and moving a directory into itself
//   (lock_rename()'s trap: EINVAL) are made against the kernel's dentries.
//
// What the file system must do, and the helpers below do:
//
// - Names longer than 255 bytes: FUSE limits names only to its own
//   FUSE_NAME_MAX (1024 bytes or more), so lookup and every creating call
//   may carry one; the file system answers ENAMETOOLONG (check_name,
//   kNameMax).
// - ENOTEMPTY for a non-empty target directory: only the file system knows
//   (check_victim, check_rename). It repeats the VFS's type and ancestry
//   checks on its own tree, which is the authority (a disconnected dentry,
//   from open_by_handle_at, has no ancestry the VFS could check), and the
//   "." / ".." / flag checks for callers that do not come through the VFS
//   (in-process tests, another front end).
// - Setgid directories: a new inode takes the directory's group, and a new
//   directory also S_ISGID (new_inode_gid, inherit_mode; the kernel leaves
//   this to the file system's inode_init_owner()).
// - Set-id bits on write, truncate and chown: with FUSE_HANDLE_KILLPRIV_V2
//   (Capabilities::kills_suid) the kernel tells the file system to clear
//   them instead of doing it itself (kill_suid_sgid and its callers).
// - Times: FUSE inodes are S_NOATIME, and S_NOCMTIME unless they are
//   regular files under the writeback cache, so the kernel updates no time
//   of its own; the file system stamps what each operation changes
//   (times_for, setattr_times; atime's policy is zest/fs/atime.h).
#pragma once

#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // RENAME_NOREPLACE, RENAME_EXCHANGE (glibc, _GNU_SOURCE)
#include <optional>
#include <string_view>

#include "zest/fs/types.h"
#include "zest/result.h"

namespace zest::fs {

// --- names ------------------------------------------------------------------

// NAME_MAX: the longest name of one directory entry, in bytes.
inline constexpr size_t kNameMax = 255;

inline bool is_dot_name(std::string_view name) {
  return name == "." || name == "..";
}

// 0, or the errno for a name no directory entry may have: ENOENT for an
// empty name (what path lookup answers for ""), ENAMETOOLONG beyond
// kNameMax, EINVAL for a name holding '/'. "." and ".." pass: their errno
// depends on the operation (check_new_name, check_remove_name,
// check_rename_request).
inline int check_name(std::string_view name) {
  if (name.empty()) return ENOENT;
  if (name.size() > kNameMax) return ENAMETOOLONG;
  if (name.find('/') != std::string_view::npos) return EINVAL;
  return 0;
}

// The name of a new entry (mknod, mkdir, create, symlink, link): as
// check_name, and EEXIST for "." and "..", which always exist (the VFS's
// answer to mkdir("dir/.")).
inline int check_new_name(std::string_view name) {
  if (int err = check_name(name)) return err;
  return is_dot_name(name) ? EEXIST : 0;
}

// The name unlink (rmdir false) or rmdir (true) removes: as check_name, and
// what do_unlinkat()/do_rmdir() answer for the dot names: unlink of either
// EISDIR, rmdir(".") EINVAL, rmdir("..") ENOTEMPTY.
inline int check_remove_name(std::string_view name, bool rmdir) {
  if (int err = check_name(name)) return err;
  if (name == ".") return rmdir ? EINVAL : EISDIR;
  if (name == "..") return rmdir ? ENOTEMPTY : EISDIR;
  return 0;
}

// A rename's flags and names, before anything is looked up: EINVAL for a
// flag other than RENAME_NOREPLACE and RENAME_EXCHANGE (RENAME_WHITEOUT is
// not supported) or for both together (do_renameat2()), check_name's errnos
// for either name, and EBUSY for "." or ".." as either name (what
// do_renameat2() answers for a last component that is not a plain name).
inline int check_rename_request(uint32_t flags, std::string_view name,
                                std::string_view newname) {
  if (flags & ~uint32_t{RENAME_NOREPLACE | RENAME_EXCHANGE}) return EINVAL;
  if ((flags & RENAME_EXCHANGE) && (flags & RENAME_NOREPLACE)) return EINVAL;
  if (int err = check_name(name)) return err;
  if (int err = check_name(newname)) return err;
  if (is_dot_name(name) || is_dot_name(newname)) return EBUSY;
  return 0;
}

// --- new inodes -------------------------------------------------------------

// mknod(2)'s mode as may_mknod() and do_mknodat() take it: no type means a
// regular file; regular files, devices, FIFOs and sockets are made; a
// directory is EPERM (mkdir makes those), any other type EINVAL. The result
// keeps the type and the permission and set-id bits.
inline Result<uint32_t> mknod_mode(uint32_t mode) {
  switch (mode & S_IFMT) {
    case 0:
      mode |= S_IFREG;
      break;
    case S_IFREG:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      break;
    case S_IFDIR:
      return Errno(EPERM);
    default:
      return Errno(EINVAL);
  }
  return mode & (S_IFMT | 07777);
}

// mkdir(2)'s mode as vfs_mkdir() passes it on: the permission bits and
// S_ISVTX only; S_ISGID comes from the parent alone (inherit_mode).
inline uint32_t mkdir_mode(uint32_t mode) { return S_IFDIR | (mode & 01777); }

// The group of a new inode (inode_init_owner()): the caller's, or in a
// directory with S_ISGID the directory's (BSD group semantics).
inline uint32_t new_inode_gid(const Context& ctx, uint32_t parent_mode,
                              uint32_t parent_gid) {
  return (parent_mode & S_ISGID) ? parent_gid : ctx.gid;
}

// The mode of a new inode in a directory of mode `parent_mode`
// (inode_init_owner()): a new directory in a setgid directory is setgid
// too; anything else keeps `mode`.
inline uint32_t inherit_mode(uint32_t mode, uint32_t parent_mode) {
  if ((parent_mode & S_ISGID) && S_ISDIR(mode)) mode |= S_ISGID;
  return mode;
}

// --- set-id bits ------------------------------------------------------------

// The bit of FileSystem::write's `flags` the server sets for
// FUSE_WRITE_KILL_SUIDGID: the writer lacks CAP_FSETID.
inline constexpr uint32_t kWriteKillSuidGid = 1;

// `mode` with its set-id bits cleared as should_remove_suid() decides:
// S_ISUID always, S_ISGID only with S_IXGRP (without it S_ISGID means
// mandatory locking, which stays).
inline uint32_t kill_suid_sgid(uint32_t mode) {
  uint32_t kill = mode & S_ISUID;
  if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) kill |= S_ISGID;
  return mode & ~kill;
}

// A write that stored at least one byte clears set-id bits when the server
// says so (kWriteKillSuidGid; file_remove_privs() in the kernel).
inline bool write_kills_suid(uint32_t write_flags) {
  return (write_flags & kWriteKillSuidGid) != 0;
}

// open(2) with O_TRUNC truncates in the file system (FUSE_ATOMIC_O_TRUNC)
// and clears set-id bits unless the caller is privileged (do_truncate()
// passes dentry_needs_remove_privs()); root stands for CAP_FSETID.
inline bool open_trunc_kills_suid(const Context& ctx) { return ctx.uid != 0; }

// Whether a SETATTR of an inode of mode `mode` clears set-id bits: when the
// kernel says so (SetAttr::kKillSuidGid, a truncate by an unprivileged
// caller), and on every chown of a non-directory (chown_common() adds
// ATTR_KILL_SUID/SGID), including chown(f, -1, -1), which with
// FUSE_HANDLE_KILLPRIV_V2 arrives as a SETATTR with nothing valid — as does
// the privilege drop before a write by a caller without CAP_FSETID.
inline bool setattr_kills_suid(const SetAttr& s, uint32_t mode) {
  const bool chown_like =
      (s.valid & (SetAttr::kUid | SetAttr::kGid)) || s.valid == 0;
  return (chown_like && !S_ISDIR(mode)) || (s.valid & SetAttr::kKillSuidGid);
}

// --- unlink, rmdir, rename --------------------------------------------------

// The entry an unlink/rmdir removes, or a rename replaces (may_delete(), and
// the file system's emptiness check): `dir_op` is rmdir, or a rename of a
// directory. ENOTDIR: a directory operation on a non-directory; EISDIR: the
// other way round; ENOTEMPTY: a directory that still has entries
// (`victim_empty` is read only for a directory). 0 if it may go.
inline int check_victim(bool dir_op, bool victim_is_dir, bool victim_empty) {
  if (dir_op && !victim_is_dir) return ENOTDIR;
  if (!dir_op && victim_is_dir) return EISDIR;
  if (victim_is_dir && !victim_empty) return ENOTEMPTY;
  return 0;
}

// What the file system knows about a rename once both names are looked up
// and locked, for check_rename. The caller has already answered ENOENT for
// a missing source (or a missing target with RENAME_EXCHANGE), and 0 with
// nothing done when source and target are one inode (vfs_rename()).
struct RenameFacts {
  uint32_t flags = 0;  // RENAME_NOREPLACE, RENAME_EXCHANGE
  bool src_is_dir = false;
  bool dst_exists = false;
  bool dst_is_dir = false;
  bool dst_empty = false;  // dst is a directory without entries
  // The source is a directory and the new parent lies within it (itself or
  // below); with RENAME_EXCHANGE also the target and the old parent.
  bool src_into_itself = false;
  bool dst_into_itself = false;
};

// 0 if the rename may go ahead, else EEXIST (RENAME_NOREPLACE onto an
// existing name), EINVAL (a directory into its own subtree), or what
// check_victim answers for the replaced target (not for an exchange, which
// replaces nothing).
inline int check_rename(const RenameFacts& f) {
  if (f.dst_exists && (f.flags & RENAME_NOREPLACE)) return EEXIST;
  if (f.src_into_itself || f.dst_into_itself) return EINVAL;
  if (f.dst_exists && !(f.flags & RENAME_EXCHANGE)) {
    return check_victim(f.src_is_dir, f.dst_is_dir, f.dst_empty);
  }
  return 0;
}

// --- times ------------------------------------------------------------------

// Which of an inode's times an operation sets to the current time.
struct TimeChanges {
  bool atime = false;
  bool mtime = false;
  bool ctime = false;
};

// Operations that change times (setattr: setattr_times; reads: the atime
// policy of zest/fs/atime.h decides whether atime moves).
enum class TimeOp {
  Create,     // mknod, mkdir, create, symlink: new inode, its directory
  Link,       // the inode gains a name in the directory
  Remove,     // unlink, rmdir: the inode loses a name in the directory
  Rename,     // each inode moved or replaced; both directories
  Write,      // write that stored bytes, the destination of copy_file_range
  Truncate,   // open(2) with O_TRUNC
  Fallocate,  // every successful mode, also KEEP_SIZE and punching
  Xattr,      // setxattr, removexattr, setting or removing an ACL
  Read,       // read, readdir: atime only
};

// The inode's changes, and those of the directory (or directories) whose
// entries it changed.
struct OpTimes {
  TimeChanges inode;
  TimeChanges dir;
};

// As POSIX's "shall mark for update" for each call, and as tmpfs stamps
// them: a new inode gets all three and its directory mtime and ctime; a
// name added, removed or moved changes the inode's ctime and the
// directories' mtime and ctime; data changes mtime and ctime; metadata
// changes ctime.
constexpr OpTimes times_for(TimeOp op) {
  constexpr TimeChanges kNone{}, kA{true, false, false}, kC{false, false, true},
      kMC{false, true, true}, kAMC{true, true, true};
  switch (op) {
    case TimeOp::Create:
      return {kAMC, kMC};
    case TimeOp::Link:
      return {kC, kMC};
    case TimeOp::Remove:
      return {kC, kMC};
    case TimeOp::Rename:
      return {kC, kMC};
    case TimeOp::Write:
      return {kMC, kNone};
    case TimeOp::Truncate:
      return {kMC, kNone};
    case TimeOp::Fallocate:
      return {kMC, kNone};
    case TimeOp::Xattr:
      return {kC, kNone};
    case TimeOp::Read:
      return {kA, kNone};
  }
  return {};
}

// Sets the times `c` names to `now`.
inline void stamp(TimeChanges c, const timespec& now, timespec* atime,
                  timespec* mtime, timespec* ctime) {
  if (c.atime) *atime = now;
  if (c.mtime) *mtime = now;
  if (c.ctime) *ctime = now;
}

// Whether a SETATTR with a size marks mtime (and so ctime) as truncate(2)
// does on tmpfs: when the size changes, when the file holds data
// (shmem_truncate_range() stamps the times even at the same size), and
// always through an open file (ftruncate(2) and O_TRUNC pass
// ATTR_MTIME|ATTR_CTIME). truncate(2) to the same size of a file without
// data changes nothing.
inline bool truncate_stamps(const SetAttr& s, bool resized, bool holds_data) {
  return resized || holds_data || s.has_fh;
}

// The times a SETATTR leaves; nullopt: unchanged.
struct SetAttrTimes {
  std::optional<timespec> atime;
  std::optional<timespec> mtime;
  std::optional<timespec> ctime;
};

// For a SETATTR `s` that succeeded: `truncated` is truncate_stamps() of its
// size change (false without one), `killed` whether set-id bits were
// cleared. atime and mtime take the explicit time or now as `s` says (a
// truncation's mtime unless `s` names one); ctime takes `s.ctime` when
// given, else now whenever anything was asked or changed — every setattr
// but a truncate that stamped nothing, and a chown(f, -1, -1) too.
inline SetAttrTimes setattr_times(const SetAttr& s, bool truncated, bool killed,
                                  const timespec& now) {
  using A = SetAttr;
  SetAttrTimes t;
  if (s.valid & A::kAtimeNow) {
    t.atime = now;
  } else if (s.valid & A::kAtime) {
    t.atime = s.atime;
  }
  if (s.valid & A::kMtimeNow) {
    t.mtime = now;
  } else if (s.valid & A::kMtime) {
    t.mtime = s.mtime;
  } else if (truncated) {
    t.mtime = now;
  }
  const bool changed = (s.valid & ~(A::kSize | A::kKillSuidGid)) != 0 ||
                       !(s.valid & A::kSize) || truncated || killed;
  if (s.valid & A::kCtime) {
    t.ctime = s.ctime;
  } else if (changed) {
    t.ctime = now;
  }
  return t;
}

}  // namespace zest::fs
