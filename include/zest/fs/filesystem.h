// FileSystem: the interface a zest file-system plugin implements.
//
// Inode based, one virtual method per operation. Every method has a default
// that answers ENOSYS, so a plugin implements what it supports. Each call
// gets a reply object that must be completed exactly once, now or later from
// any thread (see zest/fs/reply.h).
//
// Inode references: the server counts the references the kernel holds (each
// successful EntryReply/CreateReply and each readdirplus entry adds one,
// FORGET removes them) and calls forget(ino) once none remain. A file system
// decides whether to free an inode with no links and no open handle by
// asking KernelRefs::referenced() under that inode's lock, and re-checks on
// forget(). The count is taken inside the reply call, so a file system that
// replies with an entry while holding the inode's lock (as it must, to keep
// the name valid) can never miss a reference being handed out.
//
// Permission checks on access are done by the kernel (default_permissions);
// a file system applies ownership rules of its own (setgid directories,
// clearing set-id bits). `mode` arrives with the umask already applied,
// except for file systems that declare Capabilities::posix_acl, which apply
// Context::umask themselves (a default ACL of the parent replaces it).
//
// Methods may be called concurrently from several worker threads, also for
// the same inode: a file system locks what it needs (per inode, not global).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "zest/fs/layout.h"
#include "zest/fs/notifier.h"
#include "zest/fs/reply.h"
#include "zest/fs/types.h"

namespace zest::fs {

// The server's count of the kernel's references (see above).
class KernelRefs {
 public:
  virtual bool referenced(Ino ino) const = 0;

 protected:
  ~KernelRefs() = default;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // --- lifetime ---------------------------------------------------------
  virtual Capabilities capabilities() const { return {}; }
  // Called once, when INIT arrives, just before init(): how to send the
  // kernel notifications (zest/fs/notifier.h). `notifier` stays valid until
  // destroy() returns; calls before INIT is answered fail with ENOTCONN.
  virtual void set_notifier(Notifier* /*notifier*/) {}
  // Called once the kernel connection is up, before any other operation.
  // `refs` stays valid until destroy().
  virtual void init(const KernelRefs* /*refs*/) {}
  // Called when the kernel connection ends (unmount, or a stop signal that
  // unmounted), after the workers stopped taking requests. Replies still
  // parked (a blocked SETLKW, an async read) must be completed here, or
  // they are answered EIO when their reply objects are destroyed. Shutdown
  // order: destroy(), then the server ends its session, then the plugin's
  // FileSystem object is destroyed (a completion thread may still answer
  // until then: the session outlives it).
  virtual void destroy() {}
  // The kernel holds no more references to `ino` (see top of file); a
  // reference may have been handed out again since, so check referenced().
  virtual void forget(Ino /*ino*/) {}
  // The file system's block map for direct access (zest/fs/layout.h), or
  // nullptr (the default): layouts are not supported (ENOTSUP). The
  // provider lives as long as the file system.
  virtual LayoutProvider* layouts() { return nullptr; }

  // --- names ------------------------------------------------------------
  // lookup: the child `name` of directory `parent` ("." and ".." too, for
  // NFS export: Capabilities::export_support). Answer an Entry: the kernel
  // then holds one reference more (see the top of the file) and caches the
  // name for entry_timeout seconds and the attributes for attr_timeout.
  // A missing name: error(ENOENT), or ok() with Entry::ino 0 and an
  // entry_timeout to let the kernel cache the miss (a negative entry; no
  // reference is taken). Timeouts of 0 make the kernel ask every time: what
  // a file system whose names change behind the kernel's back needs, or it
  // invalidates them itself (Notifier::inval_entry).
  virtual void lookup(const Context&, Ino /*parent*/, std::string_view /*name*/,
                      EntryReply r) { r.error(ENOSYS); }
  virtual void mknod(const Context&, Ino /*parent*/, std::string_view /*name*/,
                     uint32_t /*mode*/, uint32_t /*rdev*/, EntryReply r) {
    r.error(ENOSYS);
  }
  virtual void mkdir(const Context&, Ino /*parent*/, std::string_view /*name*/,
                     uint32_t /*mode*/, EntryReply r) { r.error(ENOSYS); }
  virtual void symlink(const Context&, std::string_view /*target*/,
                       Ino /*parent*/, std::string_view /*name*/,
                       EntryReply r) { r.error(ENOSYS); }
  virtual void link(const Context&, Ino /*ino*/, Ino /*newparent*/,
                    std::string_view /*newname*/, EntryReply r) {
    r.error(ENOSYS);
  }
  virtual void unlink(const Context&, Ino /*parent*/, std::string_view /*name*/,
                      StatusReply r) { r.error(ENOSYS); }
  virtual void rmdir(const Context&, Ino /*parent*/, std::string_view /*name*/,
                     StatusReply r) { r.error(ENOSYS); }
  // flags: 0, RENAME_NOREPLACE, RENAME_EXCHANGE (RENAME_WHITEOUT -> EINVAL).
  virtual void rename(const Context&, Ino /*parent*/, std::string_view /*name*/,
                      Ino /*newparent*/, std::string_view /*newname*/,
                      uint32_t /*flags*/, StatusReply r) { r.error(ENOSYS); }

  // --- attributes -------------------------------------------------------
  // fh is set when the call came through an open file (fstat).
  virtual void getattr(const Context&, Ino /*ino*/, const uint64_t* /*fh*/,
                       AttrReply r) { r.error(ENOSYS); }
  virtual void setattr(const Context&, Ino /*ino*/, const SetAttr&,
                       AttrReply r) { r.error(ENOSYS); }
  virtual void readlink(const Context&, Ino /*ino*/, DataReply r) {
    r.error(ENOSYS);
  }
  virtual void access(const Context&, Ino /*ino*/, uint32_t /*mask*/,
                      StatusReply r) { r.error(ENOSYS); }
  // Default: an empty file system of 4 KiB blocks and 255-byte names (as
  // libfuse answers), so that df and statvfs work on any file system.
  virtual void statfs(const Context&, Ino /*ino*/, StatfsReply r) { r.ok(StatFs{}); }

  // --- extended attributes ----------------------------------------------
  // flags: XATTR_CREATE / XATTR_REPLACE. ext_flags: kXattrAclKillSgid (only
  // with Capabilities::posix_acl, when setting an ACL).
  virtual void setxattr(const Context&, Ino /*ino*/, std::string_view /*name*/,
                        std::span<const std::byte> /*value*/, uint32_t /*flags*/,
                        uint32_t /*ext_flags*/, StatusReply r) { r.error(ENOSYS); }
  // size 0: answer ok_size(); else the value or ERANGE.
  virtual void getxattr(const Context&, Ino /*ino*/, std::string_view /*name*/,
                        uint32_t /*size*/, XattrReply r) { r.error(ENOSYS); }
  // The names, each NUL-terminated; size as for getxattr.
  virtual void listxattr(const Context&, Ino /*ino*/, uint32_t /*size*/,
                         XattrReply r) { r.error(ENOSYS); }
  virtual void removexattr(const Context&, Ino /*ino*/,
                           std::string_view /*name*/, StatusReply r) {
    r.error(ENOSYS);
  }

  // --- files ------------------------------------------------------------
  // flags: the open(2) flags (O_CREAT, O_EXCL and O_NOCTTY are the
  // kernel's; O_TRUNC comes here, and with it the file system truncates).
  // The file system picks the I/O mode and a handle (OpenInfo::fh) that
  // comes back on read, write, flush and release. ENOSYS with
  // Capabilities::no_open: the kernel stops sending opens.
  virtual void open(const Context&, Ino /*ino*/, uint32_t /*flags*/,
                    OpenReply r) { r.error(ENOSYS); }
  virtual void create(const Context&, Ino /*parent*/, std::string_view /*name*/,
                      uint32_t /*mode*/, uint32_t /*flags*/, CreateReply r) {
    r.error(ENOSYS);
  }
  // O_TMPFILE: an unnamed regular file in directory `parent`.
  virtual void tmpfile(const Context&, Ino /*parent*/, uint32_t /*mode*/,
                       uint32_t /*flags*/, CreateReply r) { r.error(ENOSYS); }
  virtual void read(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                    uint64_t /*offset*/, uint32_t /*size*/, DataReply r) {
    r.error(ENOSYS);
  }
  virtual void write(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                     uint64_t /*offset*/, std::span<const std::byte> /*data*/,
                     uint32_t /*flags*/, WriteReply r) { r.error(ENOSYS); }
  // close(2) of one descriptor; may come several times per open.
  // Context::lock_owner: the closing process's lock owner; a file system
  // that keeps POSIX locks (Capabilities::posix_locks) drops that owner's
  // locks on the inode here, since the kernel keeps none it could drop.
  virtual void flush(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                     StatusReply r) { r.ok(); }
  // The last reference to the open file is gone. With
  // Context::release_flock the open file holds flock(2) locks of owner
  // Context::lock_owner: drop them (and its OFD locks: fs::LockTable drops
  // every lock taken through `fh`).
  virtual void release(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                       uint32_t /*flags*/, StatusReply r) { r.ok(); }
  virtual void fsync(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                     bool /*datasync*/, StatusReply r) { r.error(ENOSYS); }
  // mode: FALLOC_FL_KEEP_SIZE / PUNCH_HOLE / ZERO_RANGE bits, as fallocate(2).
  virtual void fallocate(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                         uint32_t /*mode*/, uint64_t /*offset*/,
                         uint64_t /*length*/, StatusReply r) {
    r.error(ENOSYS);
  }
  // whence: SEEK_DATA or SEEK_HOLE (the kernel handles the others).
  virtual void lseek(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                     uint64_t /*offset*/, int /*whence*/, LseekReply r) {
    r.error(ENOSYS);
  }
  virtual void copy_file_range(const Context&, Ino /*ino_in*/,
                               uint64_t /*fh_in*/, uint64_t /*off_in*/,
                               Ino /*ino_out*/, uint64_t /*fh_out*/,
                               uint64_t /*off_out*/, uint64_t /*len*/,
                               uint32_t /*flags*/, WriteReply r) {
    r.error(ENOSYS);
  }

  // --- locks ------------------------------------------------------------
  // Only called with Capabilities::posix_locks (getlk, setlk) or
  // Capabilities::flock_locks (setlk with `flock`); otherwise the kernel
  // keeps locks itself. fs::LockTable (zest/fs/lock_table.h) implements
  // all of this for file systems that hold their locks in memory.
  //
  // `owner`: the lock owner (also Context::lock_owner): a process's file
  // table for fcntl(2) locks, the open file for OFD and flock(2) locks.
  // Locks of one owner never conflict with each other; a new lock of an
  // owner replaces (splits, merges) its own locks on the range.
  //
  // getlk (F_GETLK, F_OFD_GETLK): answer the first lock of another owner
  // that conflicts with `lock` (a write lock conflicts with any overlapping
  // lock, a read lock with overlapping write locks), or `lock` with type
  // F_UNLCK when there is none.
  virtual void getlk(const Context&, Ino /*ino*/, uint64_t /*fh*/, uint64_t /*owner*/,
                     const Lock& /*lock*/, LockReply r) { r.error(ENOSYS); }
  // setlk: take (F_RDLCK, F_WRLCK) or release (F_UNLCK) `lock`. On a
  // conflict answer EAGAIN, unless `sleep` (F_SETLKW, flock without
  // LOCK_NB): then keep the reply and answer ok once the lock is granted,
  // EINTR if the caller is interrupted meanwhile (Reply::on_interrupt; the
  // kernel restarts the call when the signal handler asks for it), or
  // EDEADLK. `flock`: a flock(2) lock (whole file); flock and POSIX locks
  // do not conflict with each other on Linux. Waiting in the call would
  // hold a server thread: park the reply instead.
  virtual void setlk(const Context&, Ino /*ino*/, uint64_t /*fh*/, uint64_t /*owner*/,
                     const Lock& /*lock*/, bool /*sleep*/, bool /*flock*/,
                     StatusReply r) { r.error(ENOSYS); }

  // --- directories ------------------------------------------------------
  virtual void opendir(const Context&, Ino /*ino*/, uint32_t /*flags*/,
                       OpenReply r) { r.ok(OpenInfo{}); }
  // offset: 0 or a next_off handed out by an earlier add(). Offsets must
  // stay valid while entries are added and removed (a listing that unlinks
  // as it goes must neither skip nor repeat a name that stayed): derive
  // them from something stable (a cookie per entry), not list positions.
  // In plus mode (readdirplus) an entry given an Entry counts a kernel
  // reference like lookup; one given none is just a name.
  virtual void readdir(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                       uint64_t /*offset*/, DirReply r) { r.error(ENOSYS); }
  virtual void releasedir(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                          StatusReply r) { r.ok(); }
  virtual void fsyncdir(const Context&, Ino /*ino*/, uint64_t /*fh*/,
                        bool /*datasync*/, StatusReply r) { r.error(ENOSYS); }
  // syncfs(2) on the mount.
  virtual void syncfs(const Context&, StatusReply r) { r.ok(); }

  // --- control ----------------------------------------------------------
  // An ioctl(2) on an open file or directory, as the kernel forwards it to
  // a FUSE file system: `cmd` encodes the direction and size (_IOC_DIR,
  // _IOC_SIZE); `in` holds the argument when the command writes one
  // (_IOW/_IOWR), and the reply (DataReply::ok) may carry up to `out_size`
  // bytes that the kernel copies back to the argument (_IOR/_IOWR).
  // Commands the server handles itself (kIocShutdown) never come here.
  virtual void ioctl(const Context&, Ino /*ino*/, uint64_t /*fh*/, uint32_t /*cmd*/,
                     std::span<const std::byte> /*in*/, uint32_t /*out_size*/,
                     DataReply r) { r.error(ENOTTY); }
  // FS_IOC_SHUTDOWN (XFS_IOC_GOINGDOWN) from a privileged caller: from the
  // moment this answers ok, the file system writes nothing more to its
  // media (what was acknowledged stays durable), and the server answers
  // EIO to every later request but forgets and releases; the next mount
  // recovers. `flags`: kShutdownDefault/LogFlush/NoLogFlush when known
  // (the kernel does not forward the argument of this _IOR command, so the
  // server passes kShutdownDefault).
  virtual void shutdown(const Context&, uint32_t /*flags*/, StatusReply r) {
    r.error(ENOTTY);
  }
  // poll(2)/select(2)/epoll on an open file: answer the events in
  // `events` (POLLIN, POLLOUT, ...) that are ready now. With
  // kPollScheduleNotify in `flags` the caller will sleep: remember `kh` and
  // call Notifier::poll_wakeup(kh) once the answer may have changed (once
  // is enough; the kernel polls again and says kPollScheduleNotify again if
  // it still waits). `kh` stays the same for the life of the open file.
  // ENOSYS (the default): the kernel answers "always ready" for every file
  // of the mount from then on.
  virtual void poll(const Context&, Ino /*ino*/, uint64_t /*fh*/, uint64_t /*kh*/,
                    uint32_t /*flags*/, uint32_t /*events*/, PollReply r) {
    r.error(ENOSYS);
  }
  // FIBMAP: the device block that holds block `block` (of `blocksize`
  // bytes) of the file. The kernel sends it only for file systems mounted
  // on a block device (fuseblk), which zest never mounts; it is decoded and
  // passed on for completeness. ENOSYS: the kernel answers EINVAL itself.
  // (FIEMAP is not part of the protocol: on FUSE it fails with EOPNOTSUPP
  // in the kernel and never reaches the file system.)
  virtual void bmap(const Context&, Ino /*ino*/, uint32_t /*blocksize*/,
                    uint64_t /*block*/, BmapReply r) { r.error(ENOSYS); }
  // statx(2) asking for more than stat(2) gives (STATX_BTIME), when the
  // kernel's cached attributes are not enough: answer like getattr plus the
  // birth time, `mask` saying which fields are valid. `flags`: the caller's
  // AT_STATX_* sync flags; `mask`: the STATX_* it wants. fh is set when the
  // call came through an open file. ENOSYS (the default): the kernel uses
  // getattr from then on and statx shows no birth time.
  virtual void statx(const Context&, Ino /*ino*/, const uint64_t* /*fh*/, uint32_t /*flags*/,
                     uint32_t /*mask*/, StatxReply r) { r.error(ENOSYS); }
};

// FS_IOC_SHUTDOWN = _IOR('X', 125, __u32), and its flags (XFS's names).
inline constexpr uint32_t kIocShutdown = 0x8004587d;
inline constexpr uint32_t kShutdownDefault = 0;     // sync, then stop
inline constexpr uint32_t kShutdownLogFlush = 1;    // flush the log, stop
inline constexpr uint32_t kShutdownNoLogFlush = 2;  // stop at once

}  // namespace zest::fs
