// MemFs name operations: creating, linking, removing and renaming entries.
// The rules for names, victims and times are zest/fs/posix_rules.h's.
#include <mutex>
#include <shared_mutex>

#include "zest/fs/posix_rules.h"
#include "memfs/mem_fs.h"

namespace zest::memfs {

Result<InodePtr> MemFs::make_node(const fs::Context& ctx, fs::Ino parent,
                                  std::string_view name, uint32_t mode,
                                  uint32_t rdev, std::string_view target,
                                  bool opened, fs::Entry* entry) {
  if (int err = fs::check_new_name(name)) return Errno(err);
  InodePtr p = get(parent);
  if (!p) return Errno(ENOENT);
  if (!p->is_dir()) return Errno(ENOTDIR);
  InodePtr i = new_inode(mode);
  if (!i) return Errno(ENOSPC);
  if (i->is_symlink()) {
    if (target.size() >= kShortSymlinkLen) {
      if (!budget_.charge_pages(1)) return Errno(ENOSPC);
      i->target_charged = true;
    }
    i->target = target;
  }
  if ((i->type == S_IFCHR || i->type == S_IFBLK)) i->rdev = rdev;
  i->nlink = i->is_dir() ? 2 : 1;
  i->open_count = opened ? 1 : 0;

  std::unique_lock lock(p->mu);
  if (p->nlink == 0) return Errno(ENOENT);  // the directory was removed
  init_owner(ctx, *p, *i);
  if (i->is_dir()) i->parent = p->ino;
  const timespec t = now();
  constexpr fs::OpTimes kTimes = fs::times_for(fs::TimeOp::Create);
  i->stamp(kTimes.inode, t);
  // Not visible yet: no lock needed to read it.
  *entry = entry_of(*i);
  if (!p->dir->insert(name, i)) return Errno(EEXIST);
  if (i->is_dir()) ++p->nlink;
  p->stamp(kTimes.dir, t);
  table_.insert(i);
  return i;
}

void MemFs::mknod(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                  uint32_t mode, uint32_t rdev, fs::EntryReply r) {
  Result<uint32_t> m = fs::mknod_mode(mode);
  if (!m) return r.error(m.error().value);
  fs::Entry e;
  auto res = make_node(ctx, parent, name, *m, rdev, {}, false, &e);
  if (!res) return r.error(res.error().value);
  r.ok(e);
}

void MemFs::mkdir(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                  uint32_t mode, fs::EntryReply r) {
  // S_ISGID only by inheritance (init_owner).
  fs::Entry e;
  auto res = make_node(ctx, parent, name, fs::mkdir_mode(mode), 0, {}, false, &e);
  if (!res) return r.error(res.error().value);
  r.ok(e);
}

void MemFs::symlink(const fs::Context& ctx, std::string_view target,
                    fs::Ino parent, std::string_view name, fs::EntryReply r) {
  if (target.empty()) return r.error(ENOENT);
  if (target.size() + 1 > kPageSize) return r.error(ENAMETOOLONG);
  fs::Entry e;
  auto res = make_node(ctx, parent, name, S_IFLNK | 0777, 0, target, false, &e);
  if (!res) return r.error(res.error().value);
  r.ok(e);
}

void MemFs::link(const fs::Context&, fs::Ino ino, fs::Ino newparent,
                 std::string_view newname, fs::EntryReply r) {
  if (int err = fs::check_new_name(newname)) return r.error(err);
  InodePtr i = get(ino);
  InodePtr p = get(newparent);
  if (!i || !p) return r.error(ENOENT);
  if (i->is_dir()) return r.error(EPERM);
  if (!p->is_dir()) return r.error(ENOTDIR);
  InodeLocks locks(p.get(), i.get());
  if (p->nlink == 0 || i->freed) return r.error(ENOENT);
  // An unlinked file stays dead, unless it is an O_TMPFILE one.
  if (i->nlink == 0 && !i->linkable) return r.error(ENOENT);
  if (!p->dir->insert(newname, i)) return r.error(EEXIST);
  ++i->nlink;
  const timespec t = now();
  constexpr fs::OpTimes kTimes = fs::times_for(fs::TimeOp::Link);
  i->stamp(kTimes.inode, t);
  p->stamp(kTimes.dir, t);
  r.ok(entry_of(*i));
}

int MemFs::remove(fs::Ino parent, std::string_view name, bool want_dir) {
  if (int err = fs::check_remove_name(name, want_dir)) return err;
  InodePtr p = get(parent);
  if (!p) return ENOENT;
  if (!p->is_dir()) return ENOTDIR;
  for (;;) {
    InodePtr c;
    {
      std::shared_lock lock(p->mu);
      const InodePtr* found = p->dir->find(name);
      if (!found) return ENOENT;
      c = *found;
    }
    InodeLocks locks(p.get(), c.get());
    const InodePtr* found = p->dir->find(name);
    if (!found || *found != c) continue;  // changed while unlocked
    if (int err = fs::check_victim(want_dir, c->is_dir(), c->is_dir() && c->dir->empty())) {
      return err;
    }
    p->dir->erase(name);
    const timespec t = now();
    if (c->is_dir()) {
      c->nlink = 0;
      --p->nlink;
    } else {
      --c->nlink;
    }
    constexpr fs::OpTimes kTimes = fs::times_for(fs::TimeOp::Remove);
    c->stamp(kTimes.inode, t);
    p->stamp(kTimes.dir, t);
    maybe_free(*c);
    return 0;
  }
}

void MemFs::unlink(const fs::Context&, fs::Ino parent, std::string_view name,
                   fs::StatusReply r) {
  if (int err = remove(parent, name, false)) return r.error(err);
  r.ok();
}

void MemFs::rmdir(const fs::Context&, fs::Ino parent, std::string_view name,
                  fs::StatusReply r) {
  if (int err = remove(parent, name, true)) return r.error(err);
  r.ok();
}

bool MemFs::is_within(const Inode& dir, fs::Ino ino) const {
  for (;;) {
    if (ino == dir.ino) return true;
    if (ino == fs::kRootIno) return false;
    InodePtr i = get(ino);
    if (!i) return false;
    const fs::Ino up = i->parent.load();
    if (up == ino) return false;
    ino = up;
  }
}

void MemFs::rename(const fs::Context&, fs::Ino parent, std::string_view name,
                   fs::Ino newparent, std::string_view newname, uint32_t flags,
                   fs::StatusReply r) {
  if (int err = do_rename(parent, name, newparent, newname, flags)) {
    return r.error(err);
  }
  r.ok();
}

int MemFs::do_rename(fs::Ino parent, std::string_view name, fs::Ino newparent,
                     std::string_view newname, uint32_t flags) {
  if (int err = fs::check_rename_request(flags, name, newname)) return err;
  const bool exchange = flags & RENAME_EXCHANGE;
  InodePtr p1 = get(parent);
  InodePtr p2 = get(newparent);
  if (!p1 || !p2) return ENOENT;
  if (!p1->is_dir() || !p2->is_dir()) return ENOTDIR;

  // Moving between directories can change the tree's shape: serialize those
  // (lock order step 1) so the subtree check below stays true until done.
  std::unique_lock<std::mutex> topology;
  if (p1 != p2) topology = std::unique_lock(rename_mu_);

  for (;;) {
    InodePtr src, dst;
    {
      std::shared_lock lock(p1->mu);
      if (const InodePtr* f = p1->dir->find(name)) src = *f;
    }
    if (!src) return ENOENT;
    {
      std::shared_lock lock(p2->mu);
      if (const InodePtr* f = p2->dir->find(newname)) dst = *f;
    }
    if (exchange && !dst) return ENOENT;

    InodeLocks locks(p1.get(), p2.get(), src.get(), dst.get());
    const InodePtr* s = p1->dir->find(name);
    const InodePtr* d = p2->dir->find(newname);
    if (!s || *s != src || (d ? *d : nullptr) != dst) continue;  // raced
    if (p2->nlink == 0) return ENOENT;
    if (src == dst) return 0;  // two names of one inode: nothing to do
    fs::RenameFacts facts;
    facts.flags = flags;
    facts.src_is_dir = src->is_dir();
    facts.dst_exists = dst != nullptr;
    facts.dst_is_dir = dst && dst->is_dir();
    facts.dst_empty = facts.dst_is_dir && dst->dir->empty();
    // A directory may not move into its own subtree.
    facts.src_into_itself = p1 != p2 && src->is_dir() && is_within(*src, p2->ino);
    facts.dst_into_itself = p1 != p2 && exchange && dst->is_dir() && is_within(*dst, p1->ino);
    if (int err = fs::check_rename(facts)) return err;
    const timespec t = now();
    constexpr fs::OpTimes kTimes = fs::times_for(fs::TimeOp::Rename);
    if (exchange) {
      p1->dir->replace(name, dst);
      p2->dir->replace(newname, src);
      if (p1 != p2) {
        if (src->is_dir()) {
          src->parent = p2->ino;
          --p1->nlink;
          ++p2->nlink;
        }
        if (dst->is_dir()) {
          dst->parent = p1->ino;
          --p2->nlink;
          ++p1->nlink;
        }
      }
      src->stamp(kTimes.inode, t);
      dst->stamp(kTimes.inode, t);
    } else {
      if (dst) {
        p1->dir->erase(name);
        p2->dir->replace(newname, src);
        if (dst->is_dir()) {
          dst->nlink = 0;
          --p2->nlink;
        } else {
          --dst->nlink;
        }
        dst->stamp(kTimes.inode, t);
      } else {
        p1->dir->erase(name);
        p2->dir->insert(newname, src);
      }
      if (src->is_dir() && p1 != p2) {
        src->parent = p2->ino;
        --p1->nlink;
        ++p2->nlink;
      }
      src->stamp(kTimes.inode, t);
      if (dst) maybe_free(*dst);
    }
    p1->stamp(kTimes.dir, t);
    p2->stamp(kTimes.dir, t);
    return 0;
  }
}

}  // namespace zest::memfs
