// MemFs: the memfs FileSystem (see memfs/memfs.h for what it promises).
//
// Structure: an InodeTable (sharded) maps numbers to Inodes; directories
// hold their children by shared_ptr, children hold their parent by number.
// A SpaceBudget counts pages and inodes for statfs and ENOSPC.
//
// Lock order (deadlock freedom):
//   1. rename_mu_ — only cross-directory renames take it, first. It freezes
//      the directory tree's shape (every directory's `parent`), so the
//      "into its own subtree" check can walk up without inode locks.
//   2. inode locks (Inode::mu) — an operation holds either one inode lock,
//      or several taken together by InodeLocks in increasing inode number.
//      Nobody takes an inode lock while holding another one otherwise: to go
//      from a directory to a child (lookup, unlink, rename), the directory
//      lock is dropped and both are then locked in order, re-checking that
//      the name still leads to the same inode.
//   3. InodeTable shard locks and the CompletionPool's queue lock — leaves.
//
// Invariants:
// - a directory's nlink is 2 + its subdirectories; every other inode's
//   nlink is the number of names it has;
// - an inode is in the table iff it is not freed; it is freed (once) when
//   nlink == 0, open_count == 0 and the kernel holds no reference
//   (maybe_free, always under the inode's exclusive lock);
// - inode numbers are never reused (see InodeTable).
//
// Times: creation, writes, truncation, fallocate, link, unlink, rename,
// chmod/chown and xattr changes update mtime/ctime as tmpfs does. READ and
// READDIR update atime as the mount's policy says (Options::atime,
// zest/fs/atime.h: relatime by default); reads the kernel answers from its page
// cache never reach memfs.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string_view>

#include "zest/fs/filesystem.h"
#include "memfs/completion_pool.h"
#include "memfs/inode.h"
#include "memfs/inode_table.h"
#include "memfs/memfs.h"
#include "memfs/space.h"

namespace zest::memfs {

using InodePtr = std::shared_ptr<Inode>;

// Exclusive locks on up to four inodes, taken in increasing inode number
// (nullptrs and repeats are skipped), released on destruction.
class InodeLocks {
 public:
  InodeLocks(Inode* a, Inode* b, Inode* c = nullptr, Inode* d = nullptr);
  ~InodeLocks();
  InodeLocks(const InodeLocks&) = delete;
  InodeLocks& operator=(const InodeLocks&) = delete;

 private:
  std::array<Inode*, 4> held_{};
  size_t n_ = 0;
};

class MemFs final : public fs::FileSystem {
 public:
  explicit MemFs(const Options& options);
  ~MemFs() override;

  fs::Capabilities capabilities() const override;
  void init(const fs::KernelRefs* refs) override { refs_ = refs; }
  void destroy() override;
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
  void access(const fs::Context&, fs::Ino ino, uint32_t mask,
              fs::StatusReply r) override;
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

 private:
  InodePtr get(fs::Ino ino) const { return table_.get(ino); }
  // A new, unlinked inode charged to the budget; nullptr when out of inodes.
  InodePtr new_inode(uint32_t mode);
  // The Entry for `i`, recording that the kernel now holds a reference.
  // Caller holds i.mu (shared is enough).
  fs::Entry entry_of(Inode& i);
  // The open of a new file (existing null), or of `existing`, whose lock
  // the caller holds, before its open_count counts this open.
  fs::OpenInfo open_info(uint32_t open_flags = 0, const Inode* existing = nullptr) const;
  // Frees `i` if nothing refers to it any more. Caller holds i.mu exclusively.
  void maybe_free(Inode& i);
  // Fills in owner, group and the setgid bit for a new inode in `parent`,
  // and applies the umask or the parent's default ACL (memfs/acl.h).
  static void init_owner(const fs::Context& ctx, const Inode& parent, Inode& i);
  // Creates and names a new inode (mknod/mkdir/symlink/create). On success
  // *entry is filled; the inode starts with open_count = `opened`.
  Result<InodePtr> make_node(const fs::Context& ctx, fs::Ino parent,
                             std::string_view name, uint32_t mode,
                             uint32_t rdev, std::string_view target,
                             bool opened, fs::Entry* entry);
  // unlink (want_dir false) and rmdir (true).
  int remove(fs::Ino parent, std::string_view name, bool want_dir);
  int do_rename(fs::Ino parent, std::string_view name, fs::Ino newparent,
                std::string_view newname, uint32_t flags);
  // True when `ino` is `dir` or below it. Caller holds rename_mu_.
  bool is_within(const Inode& dir, fs::Ino ino) const;
  // Opens an existing file for create() without O_EXCL.
  void open_existing(fs::Ino parent, std::string_view name, uint32_t flags,
                     const fs::Context& ctx, fs::CreateReply r);
  void readdir_plus(Inode& d, uint64_t offset, fs::DirReply& r);

  // The operations that reply_delay_us defers, run now or on the pool.
  void do_lookup(fs::Ino parent, std::string_view name, fs::EntryReply r);
  void do_getattr(fs::Ino ino, fs::AttrReply r);
  void do_read(fs::Ino ino, uint64_t fh, uint64_t offset, uint32_t size, fs::DataReply r);
  // atime after a READ or READDIR reached us through `fh` (zest/fs/atime.h).
  // Takes i.mu itself; the caller holds no lock of i.
  void note_access(Inode& i, uint64_t fh);
  void do_write(fs::Ino ino, uint64_t offset, std::span<const std::byte> data,
                uint32_t flags, fs::WriteReply r);

  const Options opts_;
  // The server's reference counts; null when driven without a server.
  const fs::KernelRefs* refs_ = nullptr;
  const uint64_t generation_;
  SpaceBudget budget_;  // outlives every inode (declared before table_)
  InodeTable table_;
  std::mutex rename_mu_;
  std::unique_ptr<CompletionPool> pool_;  // only with reply_delay_us
};

}  // namespace zest::memfs
