// MemFs core: lifetime, inode bookkeeping, lookup and directory listing.
#include "memfs/mem_fs.h"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "memfs/acl.h"

namespace zest::memfs {

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

MemFs::MemFs(const Options& options)
    : opts_(options),
      generation_(static_cast<uint64_t>(now().tv_sec) * 1000000000u +
                  static_cast<uint64_t>(now().tv_nsec)),
      budget_((options.capacity_bytes + kPageSize - 1) / kPageSize,
              options.max_inodes),
      table_(fs::kRootIno + 1) {
  (void)budget_.charge_inode();  // the root, released by its destructor
  auto root = std::make_shared<Inode>(fs::kRootIno, generation_,
                                      S_IFDIR | (opts_.root_mode & 07777), &budget_);
  root->uid = opts_.root_uid;
  root->gid = opts_.root_gid;
  root->nlink = 2;
  root->parent = fs::kRootIno;
  table_.insert(std::move(root));
  if (opts_.reply_delay_us) {
    pool_ = std::make_unique<CompletionPool>(
        2, std::chrono::microseconds(opts_.reply_delay_us));
  }
}

MemFs::~MemFs() {
  if (pool_) pool_->shutdown();  // answers what is still queued
  table_.clear();
}

std::unique_ptr<fs::FileSystem> make_memfs(const Options& options) {
  return std::make_unique<MemFs>(options);
}

fs::Capabilities MemFs::capabilities() const {
  fs::Capabilities c;
  c.writeback_cache = opts_.writeback_cache;
  c.export_support = true;
  c.kills_suid = true;  // write flag, kKillSuidGid, chown (attr_ops.cc)
  c.sole_writer = true;
  c.posix_acl = true;   // memfs/acl.h
  return c;
}

void MemFs::destroy() {
  if (pool_) pool_->shutdown();
}

InodePtr MemFs::new_inode(uint32_t mode) {
  if (!budget_.charge_inode()) return nullptr;
  return std::make_shared<Inode>(table_.allocate_ino(), generation_, mode, &budget_);
}

fs::Entry MemFs::entry_of(Inode& i) {
  fs::Entry e;
  e.ino = i.ino;
  e.generation = i.generation;
  e.attr = i.attr();
  e.entry_timeout = opts_.entry_timeout;
  e.attr_timeout = opts_.attr_timeout;
  return e;
}

fs::OpenInfo MemFs::open_info(uint32_t flags, const Inode* existing) const {
  fs::OpenInfo o;
  if (flags & O_NOATIME) o.fh |= fs::kFhNoAtime;
  o.mode = opts_.io_mode;
  // A new file has nothing cached.
  o.keep_cache = !existing || fs::keep_cache_at_open(opts_.atime, existing->open_count != 0,
                                                     flags, existing->atime, existing->mtime,
                                                     existing->ctime, now());
  return o;
}

void MemFs::maybe_free(Inode& i) {
  if (i.freed || i.nlink != 0 || i.open_count != 0 || i.ino == fs::kRootIno) return;
  if (refs_ && refs_->referenced(i.ino)) return;
  i.freed = true;
  if (i.file) i.file->clear();  // give the space back now, for statfs
  table_.erase(i.ino);
}

void MemFs::init_owner(const fs::Context& ctx, const Inode& parent, Inode& i) {
  i.uid = ctx.uid;
  i.gid = fs::new_inode_gid(ctx, parent.mode, parent.gid);  // setgid directories
  i.mode = fs::inherit_mode(i.mode, parent.mode);
  inherit_acls(ctx, parent, i);  // the umask, or the parent's default ACL
}

void MemFs::forget(fs::Ino ino) {
  InodePtr i = get(ino);
  if (!i || ino == fs::kRootIno) return;
  std::unique_lock lock(i->mu);
  maybe_free(*i);
}

// --- lookup ---------------------------------------------------------------

void MemFs::lookup(const fs::Context&, fs::Ino parent, std::string_view name,
                   fs::EntryReply r) {
  if (!pool_) return do_lookup(parent, name, std::move(r));
  pool_->post([this, parent, n = std::string(name), r = std::move(r)]() mutable {
    if (r.interrupted()) return r.error(EINTR);
    do_lookup(parent, n, std::move(r));
  });
}

void MemFs::do_lookup(fs::Ino parent, std::string_view name, fs::EntryReply r) {
  if (name.size() > fs::kNameMax) return r.error(ENAMETOOLONG);
  InodePtr p = get(parent);
  if (!p) return r.error(ENOENT);
  InodePtr child;
  {
    std::shared_lock lock(p->mu);
    // "." of any inode: how the kernel resolves a file handle
    // (open_by_handle_at, NFS export) whose inode it no longer caches.
    if (name == "." && !p->freed) return r.ok(entry_of(*p));
    if (!p->is_dir()) return r.error(ENOTDIR);
    if (name == ".") {
      child = p;
    } else if (name == "..") {
      child = get(p->parent.load());
    } else if (const InodePtr* c = p->dir->find(name)) {
      child = *c;
    }
  }
  if (!child) return r.error(ENOENT);
  std::shared_lock lock(child->mu);
  if (child->freed) return r.error(ENOENT);  // removed since
  r.ok(entry_of(*child));
}

// --- getattr --------------------------------------------------------------

void MemFs::getattr(const fs::Context&, fs::Ino ino, const uint64_t*,
                    fs::AttrReply r) {
  if (!pool_) return do_getattr(ino, std::move(r));
  pool_->post([this, ino, r = std::move(r)]() mutable {
    if (r.interrupted()) return r.error(EINTR);
    do_getattr(ino, std::move(r));
  });
}

void MemFs::do_getattr(fs::Ino ino, fs::AttrReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::shared_lock lock(i->mu);
  r.ok(i->attr(), opts_.attr_timeout);
}

// --- directories ------------------------------------------------------------

void MemFs::opendir(const fs::Context&, fs::Ino ino, uint32_t flags, fs::OpenReply r) {
  InodePtr d = get(ino);
  if (!d) return r.error(ENOENT);
  if (!d->is_dir()) return r.error(ENOTDIR);
  std::unique_lock lock(d->mu);
  ++d->open_count;
  fs::OpenInfo o;
  if (flags & O_NOATIME) o.fh |= fs::kFhNoAtime;
  r.ok(o);
}

void MemFs::releasedir(const fs::Context&, fs::Ino ino, uint64_t,
                       fs::StatusReply r) {
  InodePtr d = get(ino);
  if (!d) return r.error(ENOENT);
  std::unique_lock lock(d->mu);
  if (d->open_count > 0) --d->open_count;
  maybe_free(*d);
  r.ok();
}

void MemFs::fsyncdir(const fs::Context&, fs::Ino, uint64_t, bool,
                     fs::StatusReply r) {
  r.ok();
}

void MemFs::readdir(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t offset,
                    fs::DirReply r) {
  InodePtr d = get(ino);
  if (!d) return r.error(ENOENT);
  if (!d->is_dir()) return r.error(ENOTDIR);
  note_access(*d, fh);
  if (r.plus()) {
    readdir_plus(*d, offset, r);
    return r.ok();
  }
  std::shared_lock lock(d->mu);
  if (offset == 0 && !r.add(".", d->ino, DT_DIR, 1)) return r.ok();
  if (offset <= 1 && !r.add("..", d->parent.load(), DT_DIR, 2)) return r.ok();
  for (auto it = d->dir->from(std::max(offset, Directory::kFirstCookie));
       it != d->dir->end(); ++it) {
    // ino and type never change: no child lock needed.
    const Inode& c = *it->second.inode;
    if (!r.add(it->second.name, c.ino, c.type >> 12, it->first + 1)) break;
  }
  r.ok();
}

void MemFs::readdir_plus(Inode& d, uint64_t offset, fs::DirReply& r) {
  // Children are locked one at a time with the directory unlocked (see the
  // lock order), so entries are taken from the directory in batches.
  struct Item {
    uint64_t cookie;
    std::string name;
    InodePtr inode;
  };
  std::vector<Item> batch;
  uint64_t next = std::max(offset, Directory::kFirstCookie);
  {
    std::shared_lock lock(d.mu);
    if (offset == 0 && !r.add(".", d.ino, DT_DIR, 1)) return;
    if (offset <= 1 && !r.add("..", d.parent.load(), DT_DIR, 2)) return;
  }
  for (;;) {
    batch.clear();
    {
      std::shared_lock lock(d.mu);
      for (auto it = d.dir->from(next); it != d.dir->end() && batch.size() < 64; ++it) {
        batch.push_back({it->first, it->second.name, it->second.inode});
      }
    }
    if (batch.empty()) return;
    for (Item& item : batch) {
      Inode& c = *item.inode;
      std::shared_lock lock(c.mu);
      if (c.freed) continue;  // removed meanwhile
      fs::Entry e;
      e.ino = c.ino;
      e.generation = c.generation;
      e.attr = c.attr();
      e.entry_timeout = opts_.entry_timeout;
      e.attr_timeout = opts_.attr_timeout;
      if (!r.add(item.name, c.ino, c.type >> 12, item.cookie + 1, &e)) return;
    }
    next = batch.back().cookie + 1;
  }
}

}  // namespace zest::memfs
