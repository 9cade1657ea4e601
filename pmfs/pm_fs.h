// PmFsImpl: the pmfs FileSystem (see pmfs/pmfs.h for what it promises and
// docs/format.md for what it stores).
//
// Structure: an InodeTable (sharded) maps numbers to Inodes, each holding
// its committed DiskInode and DRAM indexes; a BlockAllocator (per-CPU
// ranges) and an InodeAllocator hold free space; the Journal commits one
// transaction per operation.
//
// Lock order (deadlock freedom), as memfs:
//   1. rename_mu_ — only cross-directory renames take it, first. It freezes
//      every directory's `parent`, so the "into its own subtree" check can
//      walk up without inode locks.
//   2. inode locks (Inode::mu) — an operation holds one inode lock, or
//      several taken together by InodeLocks in increasing inode number. To go
//      from a directory to a child, the directory lock is dropped and both
//      are locked in order, re-checking the name. One exception: a new inode
//      is locked while its parent is held, before it is published (nobody
//      else can reach it, so this cannot wait).
//   3. allocator range locks, InodeAllocator, InodeTable shard locks, and
//      last the journal mutex — leaves.
//
// An operation: checks, allocates blocks, writes new data/blocks with
// non-temporal stores, builds its transaction from copies of the DiskInodes
// it changes, commits (the journal's first fence also persists the data),
// then updates DRAM and frees replaced blocks. Before the commit nothing
// visible changed, so every error path just gives back what it allocated.
//
// Entry replies are sent while holding the child's lock (zest/fs/filesystem.h:
// KernelRefs), so freeing an unlinked, closed inode can ask
// refs_->referenced() under that lock and never miss a reference.
//
// Transaction sizes (a record = 16 bytes + payload rounded to 8):
//   write 4 KiB: inode (272) + 1-3 extent slots (48 each) ~ 320-420 bytes;
//   create/mkdir/mknod/symlink: new inode, parent inode, the entry
//     (1-5 slots of 64) and maybe the previous dir block's header: ~ 700;
//   unlink: parent, child, zeroed entry ~ 620; rename: up to 4 inodes and
//   3 entries ~ 2 KiB; setxattr: inode + a slot entry (<= 512), the old
//   one zeroed and maybe the tail block's header ~ 1.4 KiB; freeing an
//   inode: its slot only (272), blocks freed after the commit.
#pragma once

#include <sys/stat.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "zest/fs/posix_acl.h"
#include "zest/fs/posix_rules.h"
#include "pmem/pool.h"
#include "pmfs/allocator.h"
#include "pmfs/inode.h"
#include "pmfs/journal.h"
#include "pmfs/pmfs.h"

namespace zest::pmfs {

inline constexpr uint64_t kMaxFileSize = INT64_MAX;
inline constexpr uint64_t kMaxFileBlocks = (kMaxFileSize >> 12) + 1;  // window end
inline constexpr uint32_t kMaxLinks = 65000;
inline constexpr size_t kMaxIoChunk = 1 << 20;  // one atomic write

timespec now_ts();

// Sets the times `c` names to `t` (zest/fs/posix_rules.h, times_for).
inline void stamp(DiskInode& d, fs::TimeChanges c, const timespec& t) {
  auto set = [&t](int64_t* sec, uint32_t* nsec) {
    *sec = t.tv_sec;
    *nsec = static_cast<uint32_t>(t.tv_nsec);
  };
  if (c.atime) set(&d.atime_sec, &d.atime_nsec);
  if (c.mtime) set(&d.mtime_sec, &d.mtime_nsec);
  if (c.ctime) set(&d.ctime_sec, &d.ctime_nsec);
}

// An iovec array for one read reply; reads up to 1 MiB fit inline, so the
// read path allocates nothing.
class IovecList {
 public:
  static constexpr size_t kInline = 260;
  void push(const void* base, size_t len);
  std::span<const iovec> span() const {
    return heap_.empty() ? std::span<const iovec>(inline_.data(), n_) : std::span<const iovec>(heap_);
  }

 private:
  std::array<iovec, kInline> inline_;
  size_t n_ = 0;
  std::vector<iovec> heap_;
};

class PmFsImpl final : public PmFs, public fs::LayoutProvider {
 public:
  // Mounts (mount.cc). See pmfs::open.
  static Result<std::unique_ptr<PmFsImpl>> mount(pmem::PoolMap pool, const Options& options,
                                                 std::string* why);
  ~PmFsImpl() override;

  // PmFs
  Usage usage() const override;
  std::string durability() const override { return pool_.describe(); }
  void mark(uint64_t tag) override;
  const pmem::PoolMap& pool() const override { return pool_; }
  // Writes this mount's superblock over the copy at `offset` (mount.cc).
  void rewrite_superblock(uint64_t offset) {
    pool_.zero(offset, kBlockSize);
    pool_.write_nt(offset, &sb_, sizeof(sb_));
    pool_.drain();
  }

  // fs::FileSystem
  fs::Capabilities capabilities() const override;
  void init(const fs::KernelRefs* refs) override { refs_ = refs; }
  void forget(fs::Ino ino) override;
  fs::LayoutProvider* layouts() override { return this; }

  // fs::LayoutProvider (layout_ops.cc)
  Result<fs::Layout> map(fs::Ino ino, uint64_t offset, uint64_t length,
                         fs::LayoutIntent intent) override;
  Status commit(fs::Ino ino, uint64_t generation, std::span<const fs::LayoutExtent> extents,
                std::optional<uint64_t> new_size, timespec mtime) override;
  // Deferred frees (pm_fs.cc, release_frees).
  void set_holds(fs::LayoutHolds* holds) override;
  void release_held(fs::Ino ino) override;
  uint64_t deferred_blocks() const override;

  void lookup(const fs::Context&, fs::Ino parent, std::string_view name, fs::EntryReply r) override;
  void mknod(const fs::Context&, fs::Ino parent, std::string_view name, uint32_t mode,
             uint32_t rdev, fs::EntryReply r) override;
  void mkdir(const fs::Context&, fs::Ino parent, std::string_view name, uint32_t mode,
             fs::EntryReply r) override;
  void symlink(const fs::Context&, std::string_view target, fs::Ino parent,
               std::string_view name, fs::EntryReply r) override;
  void link(const fs::Context&, fs::Ino ino, fs::Ino newparent, std::string_view newname,
            fs::EntryReply r) override;
  void unlink(const fs::Context&, fs::Ino parent, std::string_view name,
              fs::StatusReply r) override;
  void rmdir(const fs::Context&, fs::Ino parent, std::string_view name,
             fs::StatusReply r) override;
  void rename(const fs::Context&, fs::Ino parent, std::string_view name, fs::Ino newparent,
              std::string_view newname, uint32_t flags, fs::StatusReply r) override;

  void getattr(const fs::Context&, fs::Ino ino, const uint64_t* fh, fs::AttrReply r) override;
  void setattr(const fs::Context&, fs::Ino ino, const fs::SetAttr& attr,
               fs::AttrReply r) override;
  void readlink(const fs::Context&, fs::Ino ino, fs::DataReply r) override;
  void access(const fs::Context&, fs::Ino ino, uint32_t mask, fs::StatusReply r) override;
  void statfs(const fs::Context&, fs::Ino ino, fs::StatfsReply r) override;

  void setxattr(const fs::Context&, fs::Ino ino, std::string_view name,
                std::span<const std::byte> value, uint32_t flags, uint32_t ext_flags,
                fs::StatusReply r) override;
  void getxattr(const fs::Context&, fs::Ino ino, std::string_view name, uint32_t size,
                fs::XattrReply r) override;
  void listxattr(const fs::Context&, fs::Ino ino, uint32_t size, fs::XattrReply r) override;
  void removexattr(const fs::Context&, fs::Ino ino, std::string_view name,
                   fs::StatusReply r) override;

  void open(const fs::Context&, fs::Ino ino, uint32_t flags, fs::OpenReply r) override;
  void create(const fs::Context&, fs::Ino parent, std::string_view name, uint32_t mode,
              uint32_t flags, fs::CreateReply r) override;
  void tmpfile(const fs::Context&, fs::Ino parent, uint32_t mode, uint32_t flags,
               fs::CreateReply r) override;
  void read(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset, uint32_t size,
            fs::DataReply r) override;
  void write(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
             std::span<const std::byte> data, uint32_t flags, fs::WriteReply r) override;
  void release(const fs::Context&, fs::Ino ino, uint64_t fh, uint32_t flags,
               fs::StatusReply r) override;
  void fsync(const fs::Context&, fs::Ino ino, uint64_t fh, bool datasync,
             fs::StatusReply r) override;
  void fallocate(const fs::Context&, fs::Ino ino, uint64_t fh, uint32_t mode, uint64_t offset,
                 uint64_t length, fs::StatusReply r) override;
  void lseek(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset, int whence,
             fs::LseekReply r) override;
  void copy_file_range(const fs::Context&, fs::Ino ino_in, uint64_t fh_in, uint64_t off_in,
                       fs::Ino ino_out, uint64_t fh_out, uint64_t off_out, uint64_t len,
                       uint32_t flags, fs::WriteReply r) override;

  void opendir(const fs::Context&, fs::Ino ino, uint32_t flags, fs::OpenReply r) override;
  void readdir(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
               fs::DirReply r) override;
  void releasedir(const fs::Context&, fs::Ino ino, uint64_t fh, fs::StatusReply r) override;
  void shutdown(const fs::Context&, uint32_t flags, fs::StatusReply r) override;
  void fsyncdir(const fs::Context&, fs::Ino ino, uint64_t fh, bool datasync,
                fs::StatusReply r) override;
  void syncfs(const fs::Context&, fs::StatusReply r) override { r.ok(); }

 private:
  friend class Loader;
  PmFsImpl(pmem::PoolMap pool, const Options& options, const Superblock& sb);

  // --- helpers (pm_fs.cc) ---
  InodePtr get(uint64_t ino) const { return table_.get(ino); }
  uint64_t inode_off(uint64_t ino) const { return sb_.itable_start * kBlockSize + (ino - 1) * kInodeSize; }
  // Seals `d` and puts it into `tx` at inode `ino`'s slot.
  void put_inode(Transaction& tx, uint64_t ino, DiskInode& d) const;
  // Commits, then gives the transaction's freed blocks back.
  Status commit(Transaction& tx);
  ExtentMap::Env env(uint64_t ino) { return {&pool_, &balloc_, ino}; }
  fs::Attr attr_of(const Inode& i) const;
  fs::Entry entry_of(const Inode& i) const;
  // The open of a new file (existing null), or of `existing`, whose lock
  // the caller holds, before its open_count counts this open.
  fs::OpenInfo open_info(uint32_t open_flags = 0, const Inode* existing = nullptr) const;
  // atime after a READ or READDIR reached us through `fh` (zest/fs/atime.h):
  // a transaction of its own, or with lazytime a DRAM change. Takes i.mu
  // itself; the caller holds no lock of i.
  void note_access(Inode& i, uint64_t fh);
  // lazytime: commits i's atime if only DRAM has it. Caller holds i.mu
  // exclusively.
  void flush_lazy_atime(Inode& i);
  // Frees `i` if nothing refers to it any more. Caller holds i.mu exclusively.
  void maybe_free(Inode& i);
  // Every block `i` owns into tx's free list.
  void collect_blocks(const Inode& i, Transaction& tx) const;
  bool writable() const { return !read_only_; }

  // --- extended attributes (attr_ops.cc; storage: pmfs/xattr_index.h) ---
  // One xattr change staged into a transaction (XattrIndex). A set shows in
  // i.xattrs at once (so a second set staged into the same transaction sees
  // it); undo_xattr rolls back every set staged since the last commit when
  // the commit fails, apply_xattr ends it once it succeeded. A removal is
  // staged alone in its transaction and changes DRAM only in apply_xattr
  // (a failed commit needs no undo).
  struct XattrChange {
    std::string_view name;  // must outlive apply_xattr
    bool remove = false;
    bool replace = false;   // set: the name had a value
    XattrIndex::Removal removal;  // remove: what the transaction frees
  };
  // Stages setting `name` to `value` on `i` (locked exclusively, or not yet
  // published); the old value, if any, is freed after the commit. ENOSPC
  // past the per-inode limits (layout.h) or when the pool is full.
  // nd.xattr_block changes only for an inode's first xattr.
  Result<XattrChange> stage_xattr_set(Inode& i, DiskInode& nd, std::string_view name,
                                      std::span<const std::byte> value, Transaction& tx);
  // Stages removing `name`, which `i` (locked exclusively) has; may change
  // nd.xattr_block (the chain's first block emptied).
  XattrChange stage_xattr_remove(Inode& i, DiskInode& nd, std::string_view name,
                                 Transaction& tx);
  void undo_xattr(Inode& i, const XattrChange& c);
  void apply_xattr(Inode& i, const XattrChange& c);
  // The value of `name` straight from the pool; empty when `i` (locked) has
  // no such xattr.
  std::span<const std::byte> xattr_value(const Inode& i, std::string_view name) const;
  // Sets kIncompatXattrSlots in both superblocks if this pool (made by an
  // older mkfs) lacks it, before the first slot block is written.
  Status enable_xattr_slots();

  // --- POSIX ACLs (acl.cc) ---
  // setxattr / removexattr of an ACL name (zest/fs/posix_acl.h): the xattr, the
  // mode it implies and ctime in one transaction. Caller holds i.mu
  // exclusively.
  int set_acl(const fs::Context& ctx, Inode& i, fs::AclType type,
              std::span<const std::byte> value, uint32_t ext_flags);
  int remove_acl(const fs::Context& ctx, Inode& i, fs::AclType type);
  // chmod to nd.mode: stages i's access ACL rewritten for it (nullopt when
  // i has none). Caller holds i.mu exclusively.
  Result<std::optional<XattrChange>> stage_chmod_acl(Inode& i, const DiskInode& nd,
                                                     Transaction& tx);
  // The same in a transaction of its own (with nd's mode and ctime), for a
  // chmod that comes with a truncation.
  Status commit_chmod_acl(Inode& i, const DiskInode& nd);
  // What a new inode inherits (make_node, tmpfile): at most an access and a
  // default ACL.
  struct NewAcls {
    std::array<XattrChange, 2> changes;
    size_t n = 0;
  };
  // A new inode `i` (not yet published) in a directory whose default ACL is
  // `parent_default` (empty: none): applies ctx.umask or that ACL to d.mode
  // and stages the ACLs `i` inherits into tx (into *acls: undo them if the
  // commit fails, apply them after).
  int stage_inherited_acls(const fs::Context& ctx, std::span<const std::byte> parent_default,
                           Inode& i, DiskInode& d, Transaction& tx, NewAcls* acls);

  // --- names (names.cc) ---
  struct NewNode {
    uint32_t mode = 0;
    uint32_t rdev = 0;
    std::string_view target;  // symlinks
    bool opened = false;      // create: starts with open_count 1
  };
  // Creates, names and replies for a new inode (mknod/mkdir/symlink/create).
  int make_node(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                const NewNode& n, fs::EntryReply* er, fs::CreateReply* cr);
  // Stages a new entry `name` -> (ino, dtype) in directory `p` (locked
  // exclusively): the entry record and, when a block must be appended, its
  // initialisation and link. *new_block gets the appended block (or 0).
  Result<DirIndex::Entry> stage_dirent(Inode& p, DiskInode& pd, std::string_view name,
                                       uint64_t ino, uint8_t dtype, Transaction& tx,
                                       uint64_t* new_block);
  void stage_dirent_remove(Inode& p, const DirIndex::Entry& e, Transaction& tx);
  void stage_dirent_retarget(Inode& p, std::string_view name, const DirIndex::Entry& e,
                             uint64_t ino, uint8_t dtype, Transaction& tx);
  int remove(fs::Ino parent, std::string_view name, bool want_dir);
  int do_rename(fs::Ino parent, std::string_view name, fs::Ino newparent,
                std::string_view newname, uint32_t flags);
  bool is_within(const Inode& dir, uint64_t ino) const;
  void open_existing(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                     uint32_t flags, fs::CreateReply r);
  // A fresh DiskInode for slot `ino`, generation bumped from the free slot.
  DiskInode fresh_inode(uint64_t ino, uint32_t mode) const;

  // --- files (file_ops.cc) ---
  // Writes up to kMaxIoChunk bytes of `data` at `off` in one transaction
  // (size, blocks, times and, with kill_suid, set-id bits updated with it).
  // A small overwrite inside written extents, through the journal
  // (file_ops.cc); nullopt when the range does not qualify.
  std::optional<Result<size_t>> overwrite_journaled(Inode& i, uint64_t off,
                                                    std::span<const std::byte> data, bool kill);
  Result<size_t> write_locked(Inode& i, uint64_t off, std::span<const std::byte> data,
                              bool kill_suid);
  // Truncates (whole operation, several transactions when the file has
  // many extents past the new end). Changes of `extra` (mode, times) ride in
  // the first transaction.
  Status truncate_locked(Inode& i, uint64_t size, const DiskInode& extra);
  // Removes extents at or past block `from` in transactions of bounded size.
  Status trim_tail(Inode& i, uint64_t from);
  // Copies one block's worth of old content + overlay into pool block `dst`.
  void fill_block(const Inode& i, uint64_t fb, uint64_t dst, uint64_t ov_start,
                  uint64_t ov_end, const std::byte* src);
  int do_fallocate(Inode& i, uint32_t mode, uint64_t offset, uint64_t length);
  // Reserve: holes -> new unwritten, everything else kept, times unchanged
  // (map(Write), layout_ops.cc).
  enum class Fill { Allocate, Zero, Punch, Reserve };
  Status fill_window(Inode& i, uint64_t a, uint64_t b, Fill mode, uint64_t offset, uint64_t end,
                     uint64_t new_size);
  // The extents of file blocks [a, b) as a layout (layout_ops.cc). Caller
  // holds i.mu.
  void layout_of(const Inode& i, uint64_t a, uint64_t b, std::vector<fs::LayoutExtent>* out) const;

  const Options opts_;
  pmem::PoolMap pool_;
  const Superblock sb_;
  std::unique_ptr<Journal> journal_;
  BlockAllocator balloc_;
  // Blocks a committed transaction freed, back to balloc_ at once, or, for
  // data of a file whose maps a LayoutHolds says are held, parked in
  // deferred_ until release_held (DRAM only: on the media they are free,
  // so a crash or remount simply has them free).
  void release_frees(const Transaction& tx);
  std::atomic<fs::LayoutHolds*> holds_{nullptr};
  mutable std::mutex deferred_mu_;
  std::unordered_map<uint64_t, std::vector<BlockRun>> deferred_;
  uint64_t deferred_blocks_ = 0;
  InodeAllocator ialloc_;
  InodeTable table_;
  std::mutex rename_mu_;
  const fs::KernelRefs* refs_ = nullptr;
  bool read_only_ = false;
  std::mutex features_mu_;  // enable_xattr_slots; a leaf of the lock order
  std::atomic<bool> xattr_slots_{(sb_.features_incompat & kIncompatXattrSlots) != 0};
};

}  // namespace zest::pmfs
