// PmFsImpl core: lifetime, inode bookkeeping, lookup, getattr, directory
// listing, statfs.
#include "pmfs/pm_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "pmem/recorder.h"

namespace zest::pmfs {
namespace {

// Holes in read replies point here: zero, never written (stays in .bss).
alignas(4096) const std::byte g_zeros[kMaxIoChunk] = {};

}  // namespace

const std::byte* zero_area() { return g_zeros; }

timespec now_ts() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

void IovecList::push(const void* base, size_t len) {
  if (len == 0) return;
  iovec* last = nullptr;
  if (!heap_.empty()) {
    last = &heap_.back();
  } else if (n_ > 0) {
    last = &inline_[n_ - 1];
  }
  // Contiguous pieces merge: blocks adjacent in the pool, and runs of holes
  // over the zero area.
  if (last && base != g_zeros &&
      static_cast<const std::byte*>(last->iov_base) + last->iov_len == base) {
    last->iov_len += len;
    return;
  }
  if (last && last->iov_base == g_zeros && base == g_zeros &&
      last->iov_len + len <= sizeof(g_zeros)) {
    last->iov_len += len;
    return;
  }
  iovec v{const_cast<void*>(base), len};
  if (heap_.empty() && n_ < kInline) {
    inline_[n_++] = v;
    return;
  }
  if (heap_.empty()) heap_.assign(inline_.begin(), inline_.begin() + n_);
  heap_.push_back(v);
}

InodeLocks::InodeLocks(Inode* a, Inode* b, Inode* c, Inode* d) {
  for (Inode* i : {a, b, c, d}) {
    if (i && std::find(held_.begin(), held_.begin() + n_, i) == held_.begin() + n_) {
      held_[n_++] = i;
    }
  }
  std::sort(held_.begin(), held_.begin() + n_,
            [](const Inode* x, const Inode* y) { return x->ino < y->ino; });
  for (size_t k = 0; k < n_; ++k) held_[k]->mu.lock();
}

InodeLocks::~InodeLocks() {
  for (size_t k = n_; k > 0; --k) held_[k - 1]->mu.unlock();
}

PmFsImpl::PmFsImpl(pmem::PoolMap pool, const Options& options, const Superblock& sb)
    : opts_(options), pool_(std::move(pool)), sb_(sb) {
  read_only_ = pool_.read_only() || opts_.read_only;
  journal_ = std::make_unique<Journal>(&pool_, sb_.journal_start, sb_.journal_blocks,
                                       sb_.itable_start * kBlockSize);
}

PmFsImpl::~PmFsImpl() {
  // Everything is durable already but lazytime atimes; write those, fence
  // the last in-place apply so a clean unmount leaves nothing to replay,
  // then release DRAM.
  if (writable() && !journal_->halted()) {
    std::vector<InodePtr> lazy;
    table_.for_each([&](const InodePtr& i) {
      if (i->atime_dirty) lazy.push_back(i);
    });
    for (const InodePtr& i : lazy) {
      std::unique_lock lock(i->mu);
      flush_lazy_atime(*i);
    }
    journal_->quiesce();
  }
  table_.clear();
}

void PmFsImpl::shutdown(const fs::Context&, uint32_t flags, fs::StatusReply r) {
  // Everything acknowledged is durable already: the flags only decide
  // whether the last in-place apply is fenced first (it is in the journal
  // either way, and the next mount replays it).
  if (writable() && flags != fs::kShutdownNoLogFlush) journal_->quiesce();
  journal_->halt();
  log_warn("pmfs: shut down on request (FS_IOC_SHUTDOWN): nothing more is written to the "
           "pool; unmount, then mount again to recover");
  r.ok();
}

void PmFsImpl::mark(uint64_t tag) {
  if (pmem::Recorder* r = pool_.recorder()) r->mark(tag);
}

PmFs::Usage PmFsImpl::usage() const {
  Usage u;
  u.total_blocks = balloc_.total_blocks();
  u.free_blocks = balloc_.free_blocks();
  u.inodes = ialloc_.count();
  u.free_inodes = ialloc_.free_count();
  return u;
}

fs::Capabilities PmFsImpl::capabilities() const {
  fs::Capabilities c;
  c.writeback_cache = false;
  c.export_support = true;
  c.kills_suid = true;  // write flag, kKillSuidGid, chown (attr_ops.cc)
  c.sole_writer = true;
  c.posix_acl = true;   // acl.cc
  c.max_write = kMaxIoChunk;
  return c;
}

void PmFsImpl::put_inode(Transaction& tx, uint64_t ino, DiskInode& d) const {
  d.csum = 0;
  d.csum = crc32c(&d, sizeof(d));
  tx.put(inode_off(ino), d);
}

Status PmFsImpl::commit(Transaction& tx) {
  if (!writable()) return Errno(EROFS);
  if (Status s = journal_->commit(tx); !s) return s;
  release_frees(tx);
  return {};
}

void PmFsImpl::release_frees(const Transaction& tx) {
  if (tx.data_ino() != 0) {
    std::lock_guard lock(deferred_mu_);
    fs::LayoutHolds* holds = holds_.load(std::memory_order_acquire);
    if (holds && holds->held(tx.data_ino())) {
      std::vector<BlockRun>& waiting = deferred_[tx.data_ino()];
      for (const BlockRun& r : tx.frees()) {
        waiting.push_back(r);
        deferred_blocks_ += r.count;
      }
      return;
    }
  }
  for (const BlockRun& r : tx.frees()) balloc_.free(r.start, r.count);
}

void PmFsImpl::set_holds(fs::LayoutHolds* holds) {
  holds_.store(holds, std::memory_order_release);
  if (holds) return;
  // Nobody can hold a map any more: everything waiting is free.
  std::lock_guard lock(deferred_mu_);
  for (auto& [ino, runs] : deferred_) balloc_.free(runs);
  deferred_.clear();
  deferred_blocks_ = 0;
}

void PmFsImpl::release_held(fs::Ino ino) {
  std::lock_guard lock(deferred_mu_);
  auto it = deferred_.find(ino);
  if (it == deferred_.end()) return;
  fs::LayoutHolds* holds = holds_.load(std::memory_order_acquire);
  if (holds && holds->held(ino)) return;  // held again since: waits on
  for (const BlockRun& r : it->second) deferred_blocks_ -= r.count;
  balloc_.free(it->second);
  deferred_.erase(it);
}

uint64_t PmFsImpl::deferred_blocks() const {
  std::lock_guard lock(deferred_mu_);
  return deferred_blocks_;
}

fs::Attr PmFsImpl::attr_of(const Inode& i) const {
  const DiskInode& d = i.d;
  fs::Attr a;
  a.ino = i.ino;
  a.mode = d.mode;
  a.nlink = d.nlink;
  a.uid = d.uid;
  a.gid = d.gid;
  a.rdev = d.rdev;
  a.atime = {d.atime_sec, d.atime_nsec};
  a.mtime = {d.mtime_sec, d.mtime_nsec};
  a.ctime = {d.ctime_sec, d.ctime_nsec};
  a.blksize = kBlockSize;
  if (i.is_dir()) {
    a.size = 40 + 20 * (i.dir ? i.dir->size() : 0);  // tmpfs's BOGO_DIRENT_SIZE
  } else {
    a.size = d.size;
    a.blocks = d.blocks * (kBlockSize / 512);
  }
  return a;
}

fs::Entry PmFsImpl::entry_of(const Inode& i) const {
  fs::Entry e;
  e.ino = i.ino;
  e.generation = i.d.generation;
  e.attr = attr_of(i);
  e.entry_timeout = opts_.entry_timeout;
  e.attr_timeout = opts_.attr_timeout;
  return e;
}

fs::OpenInfo PmFsImpl::open_info(uint32_t flags, const Inode* existing) const {
  fs::OpenInfo o;
  if (flags & O_NOATIME) o.fh |= fs::kFhNoAtime;
  o.mode = fs::IoMode::Direct;  // the pool is the only copy
  // A new file has nothing cached.
  o.keep_cache = true;
  if (existing) {
    const DiskInode& d = existing->d;
    o.keep_cache = fs::keep_cache_at_open(opts_.atime, existing->open_count != 0, flags,
                                          {d.atime_sec, d.atime_nsec}, {d.mtime_sec, d.mtime_nsec},
                                          {d.ctime_sec, d.ctime_nsec}, now_ts());
  }
  return o;
}

void PmFsImpl::collect_blocks(const Inode& i, Transaction& tx) const {
  if (i.ext) {
    i.ext->free_all(tx);
    if (i.is_reg()) tx.frees_data_of(i.ino);
  }
  if (i.dir) {
    for (uint64_t b : i.dir->chain()) tx.free_after(b, 1);
  }
  i.xattrs.free_all(tx);
}

void PmFsImpl::maybe_free(Inode& i) {
  if (i.freed || i.d.nlink != 0 || i.open_count != 0 || i.ino == kRootIno) return;
  if (refs_ && refs_->referenced(i.ino)) return;
  if (!writable()) return;
  Transaction& tx = Transaction::local();
  DiskInode d{};
  d.generation = i.d.generation;  // a free slot: all zero but the generation
  tx.put(inode_off(i.ino), d);
  collect_blocks(i, tx);
  if (Status s = commit(tx); !s) {
    // Stays an orphan (nlink 0, in use): the next mount frees it.
    log_error("pmfs: freeing inode {} failed: {}", i.ino, s.error().message());
    return;
  }
  i.freed = true;
  ++i.layout_gen;
  i.d = d;
  if (i.ext) i.ext->reset();
  if (i.dir) i.dir->reset();
  i.xattrs.clear();
  i.target.clear();
  table_.erase(i.ino);
  ialloc_.give_back(i.ino);
}

void PmFsImpl::forget(fs::Ino ino) {
  InodePtr i = get(ino);
  if (!i || ino == kRootIno) return;
  std::unique_lock lock(i->mu);
  maybe_free(*i);
}

// --- lookup / getattr --------------------------------------------------------

void PmFsImpl::lookup(const fs::Context&, fs::Ino parent, std::string_view name,
                      fs::EntryReply r) {
  if (name.size() > fs::kNameMax) return r.error(ENAMETOOLONG);
  InodePtr p = get(parent);
  if (!p) return r.error(ENOENT);
  if (name == "." && !p->is_dir()) {
    // "." of any inode: how the kernel resolves a file handle
    // (open_by_handle_at, NFS export) whose inode it no longer caches.
    std::shared_lock lock(p->mu);
    if (p->freed) return r.error(ENOENT);
    return r.ok(entry_of(*p));
  }
  if (!p->is_dir()) return r.error(ENOTDIR);
  InodePtr child;
  {
    std::shared_lock lock(p->mu);
    if (p->freed) return r.error(ENOENT);
    if (name == ".") {
      child = p;
    } else if (name == "..") {
      child = get(p->parent.load());
    } else if (const DirIndex::Entry* e = p->dir->find(name)) {
      child = get(e->ino);
      if (!child) {
        log_error("pmfs: directory {} names inode {}, which is not in the table", parent, e->ino);
        return r.error(EIO);
      }
    }
  }
  if (!child) return r.error(ENOENT);
  std::shared_lock lock(child->mu);
  if (child->freed) return r.error(ENOENT);
  r.ok(entry_of(*child));
}

void PmFsImpl::getattr(const fs::Context&, fs::Ino ino, const uint64_t*, fs::AttrReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::shared_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  r.ok(attr_of(*i), opts_.attr_timeout);
}

void PmFsImpl::statfs(const fs::Context&, fs::Ino, fs::StatfsReply r) {
  fs::StatFs s;
  s.bsize = s.frsize = kBlockSize;
  s.blocks = balloc_.total_blocks();
  s.bfree = s.bavail = balloc_.free_blocks();
  s.files = ialloc_.count();
  s.ffree = ialloc_.free_count();
  s.namelen = 255;
  r.ok(s);
}

void PmFsImpl::access(const fs::Context& ctx, fs::Ino ino, uint32_t mask, fs::StatusReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::shared_lock lock(i->mu);
  if (i->freed) return r.error(ENOENT);
  mask &= R_OK | W_OK | X_OK;
  if (mask == 0) return r.ok();
  if ((mask & W_OK) && !writable()) return r.error(EROFS);
  const uint32_t mode = i->d.mode;
  if (ctx.uid == 0) {
    if ((mask & X_OK) && !i->is_dir() && !(mode & 0111)) return r.error(EACCES);
    return r.ok();
  }
  uint32_t bits;
  if (ctx.uid == i->d.uid) {
    bits = (mode >> 6) & 7;
  } else if (ctx.gid == i->d.gid) {
    bits = (mode >> 3) & 7;
  } else {
    bits = mode & 7;
  }
  if ((bits & mask) != mask) return r.error(EACCES);
  r.ok();
}

// --- directories ---------------------------------------------------------------

void PmFsImpl::opendir(const fs::Context&, fs::Ino ino, uint32_t, fs::OpenReply r) {
  InodePtr d = get(ino);
  if (!d) return r.error(ENOENT);
  if (!d->is_dir()) return r.error(ENOTDIR);
  std::unique_lock lock(d->mu);
  if (d->freed) return r.error(ENOENT);
  ++d->open_count;
  r.ok(fs::OpenInfo{});
}

void PmFsImpl::releasedir(const fs::Context&, fs::Ino ino, uint64_t, fs::StatusReply r) {
  InodePtr d = get(ino);
  if (!d) return r.error(ENOENT);
  std::unique_lock lock(d->mu);
  if (d->open_count > 0) --d->open_count;
  maybe_free(*d);
  r.ok();
}

void PmFsImpl::fsyncdir(const fs::Context&, fs::Ino, uint64_t, bool, fs::StatusReply r) {
  r.ok();  // every operation is durable when it answers
}

void PmFsImpl::readdir(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
                       fs::DirReply r) {
  InodePtr d = get(ino);
  if (!d) return r.error(ENOENT);
  if (!d->is_dir()) return r.error(ENOTDIR);
  if (offset == 0) note_access(*d, fh);
  {
    std::shared_lock lock(d->mu);
    if (d->freed) return r.error(ENOENT);
    if (offset == 0 && !r.add(".", d->ino, DT_DIR, 1)) return r.ok();
    if (offset <= 1 && !r.add("..", d->parent.load(), DT_DIR, 2)) return r.ok();
  }
  // Entries in cookie order: 2 + chain index * kDirSlots + slot. In plus
  // mode children are locked one at a time with the directory unlocked (lock
  // order), so entries are taken in batches.
  struct Item {
    uint64_t cookie;
    std::string name;
    uint64_t ino;
    uint8_t type;
  };
  thread_local std::vector<Item> batch;
  uint64_t next = std::max<uint64_t>(offset, 2);
  for (;;) {
    size_t n = 0;
    {
      std::shared_lock lock(d->mu);
      const DirIndex& di = *d->dir;
      uint64_t idx = (next - 2) / kDirSlots;
      uint64_t slot = (next - 2) % kDirSlots;
      for (; idx < di.chain().size() && n < 64; ++idx, slot = 0) {
        for (uint64_t m = di.starts(idx) & (~uint64_t{0} << slot); m && n < 64; m &= m - 1) {
          const int s = __builtin_ctzll(m);
          const uint64_t off = di.entry_offset(static_cast<uint32_t>(idx), static_cast<uint8_t>(s));
          const DirentHeader* h = pool_.at<DirentHeader>(off);
          if (n == batch.size()) batch.emplace_back();
          Item& it = batch[n++];
          it.cookie = 2 + idx * kDirSlots + s;
          it.name.assign(reinterpret_cast<const char*>(h) + sizeof(DirentHeader),
                         std::min<size_t>(h->namelen, 255));
          it.ino = h->ino;
          it.type = h->type;
        }
      }
    }
    if (n == 0) return r.ok();
    for (size_t k = 0; k < n; ++k) {
      const Item& it = batch[k];
      if (!r.plus()) {
        if (!r.add(it.name, it.ino, it.type, it.cookie + 1)) return r.ok();
        continue;
      }
      InodePtr c = get(it.ino);
      if (!c) continue;
      std::shared_lock lock(c->mu);
      if (c->freed) continue;  // removed meanwhile
      fs::Entry e = entry_of(*c);
      if (!r.add(it.name, it.ino, it.type, it.cookie + 1, &e)) return r.ok();
    }
    next = batch[n - 1].cookie + 1;
  }
}

}  // namespace zest::pmfs
