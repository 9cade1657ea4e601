// MirrorFs: the mirrorfs FileSystem (see mirrorfs/mirrorfs.h).
//
// Structure: an InodeTable maps our inode numbers to MirrorInodes, each an
// O_PATH fd of its backing object. Name operations are the *at() system
// calls relative to the parent's O_PATH fd; calls that take no fd go
// through /proc/self/fd/N. Open files are OpenFile handles (the fh), open
// directories DirHandles.
//
// Locking: the backing file system serializes what it must; mirrorfs only
// guards its own state. Each MirrorInode::mu guards that inode's `dead`
// flag and shared data fd, and is held while an entry for it is handed to
// the kernel. An operation holds at most one inode lock at a time; the
// table's lock is a leaf under it. A DirHandle's lock is taken before the
// inode locks of readdirplus children.
//
// Inode lifetime: an inode stays in the table while the kernel may hold a
// reference (fs::KernelRefs, checked under the inode lock on forget); open
// handles keep the object itself alive through their InodePtr.
#pragma once

#include <dirent.h>

#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "zest/result.h"
#include "zest/fs/filesystem.h"
#include "mirrorfs/inode_table.h"
#include "mirrorfs/mirrorfs.h"

namespace zest::mirrorfs {

// One open of a regular file (the fh of open/create/tmpfile).
struct OpenFile {
  InodePtr inode;
  int fd = -1;       // what read/write/fsync/fallocate use
  UniqueFd own;      // a private fd, when this open does not use the shared one
  bool shared = false;    // counted in inode->data_users
  bool writable = false;  // fd was opened for writing
  bool sync = false;      // O_SYNC/O_DSYNC: flush after each write we serve
};

// One open directory: a real directory fd read with getdents64, whose
// d_off values are the backing file system's stable readdir cookies.
struct DirHandle {
  InodePtr inode;
  UniqueFd fd;
  std::mutex mu;
  std::vector<std::byte> buf;  // getdents64 buffer, allocated once per open
};

class MirrorFs final : public fs::FileSystem {
 public:
  MirrorFs(const Options& options, const struct stat& root_st, UniqueFd root);
  ~MirrorFs() override;

  fs::Capabilities capabilities() const override;
  void init(const fs::KernelRefs* refs) override { refs_ = refs; }
  void forget(fs::Ino ino) override;

  void lookup(const fs::Context&, fs::Ino parent, std::string_view name,
              fs::EntryReply r) override;
  void mknod(const fs::Context&, fs::Ino parent, std::string_view name,
             uint32_t mode, uint32_t rdev, fs::EntryReply r) override;
  void mkdir(const fs::Context&, fs::Ino parent, std::string_view name,
             uint32_t mode, fs::EntryReply r) override;
  void symlink(const fs::Context&, std::string_view target, fs::Ino parent,
               std::string_view name, fs::EntryReply r) override;
  void link(const fs::Context&, fs::Ino ino, fs::Ino newparent,
            std::string_view newname, fs::EntryReply r) override;
  void unlink(const fs::Context&, fs::Ino parent, std::string_view name,
              fs::StatusReply r) override;
  void rmdir(const fs::Context&, fs::Ino parent, std::string_view name,
             fs::StatusReply r) override;
  void rename(const fs::Context&, fs::Ino parent, std::string_view name,
              fs::Ino newparent, std::string_view newname, uint32_t flags,
              fs::StatusReply r) override;

  void getattr(const fs::Context&, fs::Ino ino, const uint64_t* fh,
               fs::AttrReply r) override;
  void setattr(const fs::Context&, fs::Ino ino, const fs::SetAttr& attr,
               fs::AttrReply r) override;
  void readlink(const fs::Context&, fs::Ino ino, fs::DataReply r) override;
  void statfs(const fs::Context&, fs::Ino ino, fs::StatfsReply r) override;

  void setxattr(const fs::Context&, fs::Ino ino, std::string_view name,
                std::span<const std::byte> value, uint32_t flags,
                uint32_t ext_flags, fs::StatusReply r) override;
  void getxattr(const fs::Context&, fs::Ino ino, std::string_view name,
                uint32_t size, fs::XattrReply r) override;
  void listxattr(const fs::Context&, fs::Ino ino, uint32_t size,
                 fs::XattrReply r) override;
  void removexattr(const fs::Context&, fs::Ino ino, std::string_view name,
                   fs::StatusReply r) override;

  void open(const fs::Context&, fs::Ino ino, uint32_t flags,
            fs::OpenReply r) override;
  void create(const fs::Context&, fs::Ino parent, std::string_view name,
              uint32_t mode, uint32_t flags, fs::CreateReply r) override;
  void tmpfile(const fs::Context&, fs::Ino parent, uint32_t mode,
               uint32_t flags, fs::CreateReply r) override;
  void read(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
            uint32_t size, fs::DataReply r) override;
  void write(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
             std::span<const std::byte> data, uint32_t flags,
             fs::WriteReply r) override;
  void release(const fs::Context&, fs::Ino ino, uint64_t fh, uint32_t flags,
               fs::StatusReply r) override;
  void fsync(const fs::Context&, fs::Ino ino, uint64_t fh, bool datasync,
             fs::StatusReply r) override;
  void fallocate(const fs::Context&, fs::Ino ino, uint64_t fh, uint32_t mode,
                 uint64_t offset, uint64_t length, fs::StatusReply r) override;
  void lseek(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
             int whence, fs::LseekReply r) override;
  void copy_file_range(const fs::Context&, fs::Ino ino_in, uint64_t fh_in,
                       uint64_t off_in, fs::Ino ino_out, uint64_t fh_out,
                       uint64_t off_out, uint64_t len, uint32_t flags,
                       fs::WriteReply r) override;

  void opendir(const fs::Context&, fs::Ino ino, uint32_t flags,
               fs::OpenReply r) override;
  void readdir(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
               fs::DirReply r) override;
  void releasedir(const fs::Context&, fs::Ino ino, uint64_t fh,
                  fs::StatusReply r) override;
  void fsyncdir(const fs::Context&, fs::Ino ino, uint64_t fh, bool datasync,
                fs::StatusReply r) override;
  void syncfs(const fs::Context&, fs::StatusReply r) override;

  // For tests: how many inodes the table holds (the root included).
  size_t inode_count() const { return table_.size(); }

 private:
  InodePtr get(fs::Ino ino) const { return table_.get(ino); }
  fs::Attr attr_of(const struct stat& st, fs::Ino ino) const;
  fs::Entry entry_of(const struct stat& st, fs::Ino ino) const;
  // The inode for the backing object `fd` (an O_PATH fd, consumed), live
  // and locked in *lock, with *entry describing it. The caller hands the
  // entry to the kernel before it lets go of the lock.
  Result<InodePtr> acquire(UniqueFd fd, std::unique_lock<std::mutex>* lock,
                           fs::Entry* entry);
  // acquire() for `name` in directory fd `dirfd`.
  Result<InodePtr> acquire_child(int dirfd, std::string_view name,
                                 std::unique_lock<std::mutex>* lock,
                                 fs::Entry* entry);
  // Looks `name` up in `parent` and answers with its entry.
  void reply_child(fs::Ino parent, std::string_view name, fs::EntryReply& r);
  // LOOKUP(ino, "."): how the kernel finds a number from a file handle
  // again after it forgot the inode. A forgotten number is reopened by its
  // remembered backing handle and answered under that same number (the
  // kernel checks it); ESTALE when the object is gone or not remembered.
  void reply_self(fs::Ino ino, fs::EntryReply& r);
  // Takes `i` out of the table when the kernel holds no reference to it.
  // Caller holds i.mu.
  void drop_if_unreferenced(MirrorInode& i);
  // Shares (or opens) `i`'s data fd for one more open; `access` is the
  // open's O_ACCMODE. Caller holds i.mu.
  Result<int> share_data_fd(MirrorInode& i, int access);
  void unshare_data_fd(MirrorInode& i);
  // Opens `i` for one open(2) with `flags`, in the configured mode.
  Result<std::unique_ptr<OpenFile>> open_file(const InodePtr& i,
                                              uint32_t flags);
  fs::OpenInfo open_info(const OpenFile& f) const;
  // create/tmpfile after the backing file was made and opened as `fd`.
  void finish_create(UniqueFd fd, uint32_t flags, fs::CreateReply& r);
  void readdir_entries(DirHandle& h, uint64_t offset, fs::DirReply& r);

  const Options opts_;
  // The server's reference counts; null when driven without a server.
  const fs::KernelRefs* refs_ = nullptr;
  // Root runs the creating calls as the caller (CallerCreds).
  const bool as_caller_;
  InodeTable table_;
  // The backing root opened for reading: the mount fd open_by_handle_at
  // wants (an O_PATH fd is refused). Unset when it cannot be opened; then
  // forgotten numbers are stale.
  UniqueFd handle_mount_;
};

// The OpenFile / DirHandle behind an fh.
inline OpenFile* open_file_of(uint64_t fh) {
  return reinterpret_cast<OpenFile*>(static_cast<uintptr_t>(fh));
}
inline DirHandle* dir_handle_of(uint64_t fh) {
  return reinterpret_cast<DirHandle*>(static_cast<uintptr_t>(fh));
}

// A name from the kernel as a NUL-terminated string (names are at most
// NAME_MAX bytes; longer ones fail with ENAMETOOLONG as the VFS would).
class CName {
 public:
  explicit CName(std::string_view s);
  bool ok() const { return ok_; }
  const char* c_str() const { return buf_; }

 private:
  char buf_[256];
  bool ok_;
};

}  // namespace zest::mirrorfs
