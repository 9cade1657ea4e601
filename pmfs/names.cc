// PmFsImpl name operations: creating, linking, removing and renaming
// entries. Each is one transaction holding every inode and entry it
// touches. The rules for names, victims and times are
// zest/fs/posix_rules.h's.
#include <dirent.h>
#include <fcntl.h>

#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "base/log.h"
#include "pmfs/pm_fs.h"

namespace zest::pmfs {
namespace {

constexpr std::byte kZeroEntry[kDirSlotSize * 5] = {};

}  // namespace

DiskInode PmFsImpl::fresh_inode(uint64_t ino, uint32_t mode) const {
  DiskInode d{};
  d.generation = pool_.at<DiskInode>(inode_off(ino))->generation + 1;
  d.flags = kInodeInUse;
  d.mode = mode;
  stamp(d, fs::times_for(fs::TimeOp::Create).inode, now_ts());
  return d;
}

Result<DirIndex::Entry> PmFsImpl::stage_dirent(Inode& p, DiskInode& pd, std::string_view name,
                                               uint64_t ino, uint8_t dtype, Transaction& tx,
                                               uint64_t* new_block) {
  *new_block = 0;
  const uint8_t nslots = static_cast<uint8_t>(dirent_slots(name.size()));
  const DirIndex::Place pl = p.dir->place(nslots);
  uint64_t off;
  if (pl.new_block) {
    // Append a block: initialised and flushed now (the journal's first
    // fence persists it), linked by the transaction.
    auto b = balloc_.alloc_contiguous(1);
    if (!b) return b.error();
    const DirBlockHeader h = make_dir_block_header(p.ino, 0);
    pool_.zero(*b * kBlockSize, kBlockSize);
    pool_.write_nt(*b * kBlockSize, &h, sizeof(h));
    if (p.dir->chain().empty()) {
      pd.dir_head = *b;
    } else {
      const uint64_t last = p.dir->chain().back();
      DirBlockHeader lh = *pool_.at<DirBlockHeader>(last * kBlockSize);
      lh.next = *b;
      lh.csum = 0;
      lh.csum = crc32c(&lh, sizeof(lh));
      tx.put(last * kBlockSize, lh);
    }
    *new_block = *b;
    off = *b * kBlockSize + sizeof(DirBlockHeader);
  } else {
    off = p.dir->entry_offset(pl.idx, pl.slot);
  }
  std::byte buf[kDirSlotSize * 5];
  encode_dirent(name, ino, dtype, buf);
  tx.put(off, buf, nslots * kDirSlotSize);
  return DirIndex::Entry{pl.idx, pl.slot, nslots, dtype, ino};
}

void PmFsImpl::stage_dirent_remove(Inode& p, const DirIndex::Entry& e, Transaction& tx) {
  tx.put(p.dir->entry_offset(e.idx, e.slot), kZeroEntry, e.nslots * kDirSlotSize);
}

void PmFsImpl::stage_dirent_retarget(Inode& p, std::string_view name, const DirIndex::Entry& e,
                                     uint64_t ino, uint8_t dtype, Transaction& tx) {
  std::byte buf[kDirSlotSize * 5];
  encode_dirent(name, ino, dtype, buf);
  tx.put(p.dir->entry_offset(e.idx, e.slot), buf, e.nslots * kDirSlotSize);
}

int PmFsImpl::make_node(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                        const NewNode& n, fs::EntryReply* er, fs::CreateReply* cr) {
  if (int err = fs::check_new_name(name)) return err;
  InodePtr p = get(parent);
  if (!p) return ENOENT;
  if (!p->is_dir()) return ENOTDIR;
  if (!writable()) return EROFS;
  const uint32_t type = n.mode & S_IFMT;

  std::unique_lock plock(p->mu);
  if (p->freed || p->d.nlink == 0) return ENOENT;  // the directory was removed
  if (p->dir->find(name)) return EEXIST;
  const uint64_t ino = ialloc_.take();
  if (!ino) return ENOSPC;
  auto i = std::make_shared<Inode>(ino, type);
  DiskInode d = fresh_inode(ino, n.mode);
  d.uid = ctx.uid;
  d.gid = fs::new_inode_gid(ctx, p->d.mode, p->d.gid);  // setgid directories
  d.mode = fs::inherit_mode(d.mode, p->d.mode);
  d.nlink = type == S_IFDIR ? 2 : 1;
  if (type == S_IFCHR || type == S_IFBLK) d.rdev = n.rdev;

  uint64_t sym_blocks[2] = {0, 0};  // long symlink: chain block, data block
  NewAcls acls;                     // inherited ACLs (acl.cc)
  auto undo = [&](uint64_t new_dir_block) {
    ialloc_.give_back(ino);
    for (uint64_t b : sym_blocks) {
      if (b) balloc_.free(b, 1);
    }
    if (new_dir_block) balloc_.free(new_dir_block, 1);
    for (size_t k = 0; k < acls.n; ++k) undo_xattr(*i, acls.changes[k]);
  };
  if (type == S_IFDIR) {
    d.parent = p->ino;
    i->dir = std::make_unique<DirIndex>();
    i->parent = p->ino;
  } else if (type == S_IFREG) {
    i->ext = std::make_unique<ExtentMap>();
  } else if (type == S_IFLNK) {
    d.size = n.target.size();
    i->target = n.target;
    if (n.target.size() <= kInlineSymlinkMax) {
      std::memcpy(d.inline_data, n.target.data(), n.target.size());
    } else {
      thread_local std::vector<BlockRun> runs;
      runs.clear();
      if (Status s = balloc_.alloc(2, 0, 2, &runs); !s) {
        ialloc_.give_back(ino);
        return ENOSPC;
      }
      sym_blocks[0] = runs[0].start;
      sym_blocks[1] = runs[0].count > 1 ? runs[0].start + 1 : runs[1].start;
      pool_.zero(sym_blocks[1] * kBlockSize, kBlockSize);
      pool_.write_nt(sym_blocks[1] * kBlockSize, n.target.data(), n.target.size());
      ExtentBlockHeader h{};
      h.magic = kExtentBlockMagic;
      h.ino = ino;
      h.csum = crc32c(&h, sizeof(h));
      const DiskExtent x = make_extent(0, sym_blocks[1], 1, 0);
      pool_.zero(sym_blocks[0] * kBlockSize, kBlockSize);
      pool_.write_nt(sym_blocks[0] * kBlockSize, &h, sizeof(h));
      pool_.write_nt(sym_blocks[0] * kBlockSize + sizeof(h), &x, sizeof(x));
      d.extent_head = sym_blocks[0];
      d.blocks = 1;
      i->ext = std::make_unique<ExtentMap>();
      i->ext->add_chain_block(sym_blocks[0]);
      i->ext->set_head(sym_blocks[0]);
      (void)i->ext->load(0, 0, sym_blocks[1], 1, 0);
      i->ext->finish_load();
    }
  }

  Transaction& tx = Transaction::local();
  // The umask, or the directory's default ACL, with the ACLs it passes on.
  if (int err = stage_inherited_acls(ctx, xattr_value(*p, fs::kAclDefaultXattr), *i, d, tx,
                                     &acls)) {
    undo(0);
    return err;
  }
  put_inode(tx, ino, d);
  DiskInode pd = p->d;
  const timespec t = {d.mtime_sec, static_cast<long>(d.mtime_nsec)};
  stamp(pd, fs::times_for(fs::TimeOp::Create).dir, t);
  if (type == S_IFDIR) ++pd.nlink;
  uint64_t new_block = 0;
  auto de = stage_dirent(*p, pd, name, ino, static_cast<uint8_t>(type >> 12), tx, &new_block);
  if (!de) {
    undo(0);
    return de.error().value;
  }
  put_inode(tx, p->ino, pd);
  if (Status s = commit(tx); !s) {
    undo(new_block);
    return s.error().value;
  }
  if (new_block) p->dir->add_block(new_block);
  p->dir->insert(name, *de);
  p->d = pd;
  for (size_t k = 0; k < acls.n; ++k) apply_xattr(*i, acls.changes[k]);
  i->d = d;
  i->open_count = n.opened ? 1 : 0;
  // Locked before it is published (cannot wait: nobody else can reach it),
  // so the reply below counts the kernel's reference before anyone could
  // free it.
  std::unique_lock clock(i->mu);
  table_.insert(i);
  plock.unlock();
  if (er) er->ok(entry_of(*i));
  if (cr) cr->ok(entry_of(*i), open_info());
  return 0;
}

void PmFsImpl::mknod(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                     uint32_t mode, uint32_t rdev, fs::EntryReply r) {
  Result<uint32_t> m = fs::mknod_mode(mode);
  if (!m) return r.error(m.error().value);
  NewNode n;
  n.mode = *m;
  n.rdev = rdev;
  if (int err = make_node(ctx, parent, name, n, &r, nullptr)) r.error(err);
}

void PmFsImpl::mkdir(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                     uint32_t mode, fs::EntryReply r) {
  NewNode n;
  n.mode = fs::mkdir_mode(mode);  // S_ISGID only by inheritance (make_node)
  if (int err = make_node(ctx, parent, name, n, &r, nullptr)) r.error(err);
}

void PmFsImpl::symlink(const fs::Context& ctx, std::string_view target, fs::Ino parent,
                       std::string_view name, fs::EntryReply r) {
  if (target.empty()) return r.error(ENOENT);
  if (target.size() + 1 > kBlockSize) return r.error(ENAMETOOLONG);
  NewNode n;
  n.mode = S_IFLNK | 0777;
  n.target = target;
  if (int err = make_node(ctx, parent, name, n, &r, nullptr)) r.error(err);
}

void PmFsImpl::create(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                      uint32_t mode, uint32_t flags, fs::CreateReply r) {
  NewNode n;
  n.mode = S_IFREG | (mode & 07777);
  n.opened = true;
  const int err = make_node(ctx, parent, name, n, nullptr, &r);
  if (err == 0) return;
  if (err == EEXIST && !(flags & O_EXCL) && !fs::is_dot_name(name)) {
    return open_existing(ctx, parent, name, flags, std::move(r));
  }
  r.error(err);
}

void PmFsImpl::tmpfile(const fs::Context& ctx, fs::Ino parent, uint32_t mode, uint32_t flags,
                       fs::CreateReply r) {
  InodePtr p = get(parent);
  if (!p) return r.error(ENOENT);
  if (!p->is_dir()) return r.error(ENOTDIR);
  if (!writable()) return r.error(EROFS);
  uint32_t pmode, pgid;
  std::vector<std::byte> pdefault;  // the directory's default ACL (acl.cc)
  {
    std::shared_lock lock(p->mu);
    if (p->freed || p->d.nlink == 0) return r.error(ENOENT);
    pmode = p->d.mode;
    pgid = p->d.gid;
    std::span<const std::byte> def = xattr_value(*p, fs::kAclDefaultXattr);
    pdefault.assign(def.begin(), def.end());
  }
  const uint64_t ino = ialloc_.take();
  if (!ino) return r.error(ENOSPC);
  auto i = std::make_shared<Inode>(ino, S_IFREG);
  DiskInode d = fresh_inode(ino, S_IFREG | (mode & 07777));
  d.uid = ctx.uid;
  d.gid = fs::new_inode_gid(ctx, pmode, pgid);
  d.nlink = 0;  // an orphan until linked: the next mount frees it
  Transaction& tx = Transaction::local();
  NewAcls acls;
  if (int err = stage_inherited_acls(ctx, pdefault, *i, d, tx, &acls)) {
    ialloc_.give_back(ino);
    return r.error(err);
  }
  put_inode(tx, ino, d);
  if (Status s = commit(tx); !s) {
    for (size_t k = 0; k < acls.n; ++k) undo_xattr(*i, acls.changes[k]);
    ialloc_.give_back(ino);
    return r.error(s.error().value);
  }
  for (size_t k = 0; k < acls.n; ++k) apply_xattr(*i, acls.changes[k]);
  i->d = d;
  i->ext = std::make_unique<ExtentMap>();
  i->open_count = 1;
  i->linkable = !(flags & O_EXCL);  // O_EXCL: may never get a name
  std::unique_lock lock(i->mu);
  table_.insert(i);
  r.ok(entry_of(*i), open_info(flags));
}

void PmFsImpl::link(const fs::Context&, fs::Ino ino, fs::Ino newparent,
                    std::string_view newname, fs::EntryReply r) {
  if (int err = fs::check_new_name(newname)) return r.error(err);
  InodePtr i = get(ino);
  InodePtr p = get(newparent);
  if (!i || !p) return r.error(ENOENT);
  if (i->is_dir()) return r.error(EPERM);
  if (!p->is_dir()) return r.error(ENOTDIR);
  if (!writable()) return r.error(EROFS);
  InodeLocks locks(p.get(), i.get());
  if (p->freed || p->d.nlink == 0 || i->freed) return r.error(ENOENT);
  if (i->d.nlink == 0 && !i->linkable) return r.error(ENOENT);
  if (i->d.nlink >= kMaxLinks) return r.error(EMLINK);
  if (p->dir->find(newname)) return r.error(EEXIST);
  Transaction& tx = Transaction::local();
  const timespec t = now_ts();
  DiskInode pd = p->d;
  DiskInode id = i->d;
  constexpr fs::OpTimes kTimes = fs::times_for(fs::TimeOp::Link);
  stamp(pd, kTimes.dir, t);
  stamp(id, kTimes.inode, t);
  ++id.nlink;
  uint64_t new_block = 0;
  auto de = stage_dirent(*p, pd, newname, i->ino, static_cast<uint8_t>(i->type >> 12), tx,
                         &new_block);
  if (!de) return r.error(de.error().value);
  put_inode(tx, p->ino, pd);
  put_inode(tx, i->ino, id);
  if (Status s = commit(tx); !s) {
    if (new_block) balloc_.free(new_block, 1);
    return r.error(s.error().value);
  }
  if (new_block) p->dir->add_block(new_block);
  p->dir->insert(newname, *de);
  p->d = pd;
  i->d = id;
  r.ok(entry_of(*i));
}

int PmFsImpl::remove(fs::Ino parent, std::string_view name, bool want_dir) {
  if (int err = fs::check_remove_name(name, want_dir)) return err;
  InodePtr p = get(parent);
  if (!p) return ENOENT;
  if (!p->is_dir()) return ENOTDIR;
  if (!writable()) return EROFS;
  for (;;) {
    uint64_t cino;
    {
      std::shared_lock lock(p->mu);
      const DirIndex::Entry* e = p->dir->find(name);
      if (!e) return ENOENT;
      cino = e->ino;
    }
    InodePtr c = get(cino);
    if (!c) {
      log_error("pmfs: directory {} names inode {}, which is not in the table", parent, cino);
      return EIO;
    }
    InodeLocks locks(p.get(), c.get());
    const DirIndex::Entry* e = p->dir->find(name);
    if (!e || e->ino != cino) continue;  // changed while unlocked
    if (int err = fs::check_victim(want_dir, c->is_dir(), c->is_dir() && c->dir->empty())) {
      return err;
    }
    if (c->d.nlink == 0 || (c->is_dir() && p->d.nlink <= 2)) {
      log_error("pmfs: inode {} has a name but a link count of {}", cino, c->d.nlink);
      return EIO;
    }
    const timespec t = now_ts();
    Transaction& tx = Transaction::local();
    DiskInode pd = p->d, cd = c->d;
    constexpr fs::OpTimes kTimes = fs::times_for(fs::TimeOp::Remove);
    stamp(pd, kTimes.dir, t);
    stamp(cd, kTimes.inode, t);
    if (c->is_dir()) {
      cd.nlink = 0;
      --pd.nlink;
    } else {
      --cd.nlink;
    }
    stage_dirent_remove(*p, *e, tx);
    put_inode(tx, p->ino, pd);
    put_inode(tx, c->ino, cd);
    if (Status s = commit(tx); !s) return s.error().value;
    p->dir->erase(name);
    p->d = pd;
    c->d = cd;
    maybe_free(*c);
    return 0;
  }
}

void PmFsImpl::unlink(const fs::Context&, fs::Ino parent, std::string_view name,
                      fs::StatusReply r) {
  if (int err = remove(parent, name, false)) return r.error(err);
  r.ok();
}

void PmFsImpl::rmdir(const fs::Context&, fs::Ino parent, std::string_view name,
                     fs::StatusReply r) {
  if (int err = remove(parent, name, true)) return r.error(err);
  r.ok();
}

bool PmFsImpl::is_within(const Inode& dir, uint64_t ino) const {
  // Bounded: the tree was checked at mount, but never loop on a bad pointer.
  for (uint64_t steps = 0; steps <= sb_.inode_count; ++steps) {
    if (ino == dir.ino) return true;
    if (ino == kRootIno) return false;
    InodePtr i = get(ino);
    if (!i) return false;
    const uint64_t up = i->parent.load();
    if (up == ino) return false;
    ino = up;
  }
  return true;  // a cycle: refuse the move
}

void PmFsImpl::rename(const fs::Context&, fs::Ino parent, std::string_view name,
                      fs::Ino newparent, std::string_view newname, uint32_t flags,
                      fs::StatusReply r) {
  if (int err = do_rename(parent, name, newparent, newname, flags)) return r.error(err);
  r.ok();
}

int PmFsImpl::do_rename(fs::Ino parent, std::string_view name, fs::Ino newparent,
                        std::string_view newname, uint32_t flags) {
  if (int err = fs::check_rename_request(flags, name, newname)) return err;
  const bool exchange = flags & RENAME_EXCHANGE;
  InodePtr p1 = get(parent);
  InodePtr p2 = get(newparent);
  if (!p1 || !p2) return ENOENT;
  if (!p1->is_dir() || !p2->is_dir()) return ENOTDIR;
  if (!writable()) return EROFS;

  std::unique_lock<std::mutex> topology;
  if (p1 != p2) topology = std::unique_lock(rename_mu_);

  for (;;) {
    uint64_t sino = 0, dino = 0;
    {
      std::shared_lock lock(p1->mu);
      if (const DirIndex::Entry* e = p1->dir->find(name)) sino = e->ino;
    }
    if (!sino) return ENOENT;
    {
      std::shared_lock lock(p2->mu);
      if (const DirIndex::Entry* e = p2->dir->find(newname)) dino = e->ino;
    }
    if (exchange && !dino) return ENOENT;
    InodePtr src = get(sino);
    InodePtr dst = dino ? get(dino) : nullptr;
    if (!src || (dino && !dst)) return EIO;

    InodeLocks locks(p1.get(), p2.get(), src.get(), dst.get());
    const DirIndex::Entry* se = p1->dir->find(name);
    const DirIndex::Entry* de = p2->dir->find(newname);
    if (!se || se->ino != sino || (de ? de->ino : 0) != dino) continue;  // raced
    if (p2->d.nlink == 0) return ENOENT;
    if (src == dst) return 0;  // two names of one inode: nothing to do
    fs::RenameFacts facts;
    facts.flags = flags;
    facts.src_is_dir = src->is_dir();
    facts.dst_exists = dst != nullptr;
    facts.dst_is_dir = dst && dst->is_dir();
    facts.dst_empty = facts.dst_is_dir && dst->dir->empty();
    facts.src_into_itself = p1 != p2 && src->is_dir() && is_within(*src, p2->ino);
    facts.dst_into_itself = p1 != p2 && exchange && dst->is_dir() && is_within(*dst, p1->ino);
    if (int err = fs::check_rename(facts)) return err;
    constexpr fs::OpTimes kTimes = fs::times_for(fs::TimeOp::Rename);

    const timespec t = now_ts();
    Transaction& tx = Transaction::local();
    DiskInode pd1 = p1->d, pd2_own = p2->d;
    DiskInode& pd2 = p1 == p2 ? pd1 : pd2_own;
    DiskInode sd = src->d;
    DiskInode dd = dst ? dst->d : DiskInode{};
    const uint8_t stype = static_cast<uint8_t>(src->type >> 12);
    const uint8_t dtype = dst ? static_cast<uint8_t>(dst->type >> 12) : 0;
    uint64_t new_block = 0;
    DirIndex::Entry added{};
    const DirIndex::Entry se_copy = *se;
    if (exchange) {
      stage_dirent_retarget(*p1, name, *se, dst->ino, dtype, tx);
      stage_dirent_retarget(*p2, newname, *de, src->ino, stype, tx);
      if (p1 != p2) {
        if (src->is_dir()) {
          sd.parent = p2->ino;
          --pd1.nlink;
          ++pd2.nlink;
        }
        if (dst->is_dir()) {
          dd.parent = p1->ino;
          --pd2.nlink;
          ++pd1.nlink;
        }
      }
      stamp(sd, kTimes.inode, t);
      stamp(dd, kTimes.inode, t);
    } else {
      if (dst) {
        stage_dirent_remove(*p1, *se, tx);
        stage_dirent_retarget(*p2, newname, *de, src->ino, stype, tx);
        if (dst->is_dir()) {
          dd.nlink = 0;
          --pd2.nlink;
        } else {
          if (dd.nlink == 0) return EIO;
          --dd.nlink;
        }
        stamp(dd, kTimes.inode, t);
      } else {
        auto ne = stage_dirent(*p2, pd2, newname, src->ino, stype, tx, &new_block);
        if (!ne) return ne.error().value;
        added = *ne;
        stage_dirent_remove(*p1, *se, tx);
      }
      if (src->is_dir() && p1 != p2) {
        sd.parent = p2->ino;
        --pd1.nlink;
        ++pd2.nlink;
      }
      stamp(sd, kTimes.inode, t);
    }
    stamp(pd1, kTimes.dir, t);
    stamp(pd2, kTimes.dir, t);
    put_inode(tx, p1->ino, pd1);
    if (p1 != p2) put_inode(tx, p2->ino, pd2);
    put_inode(tx, src->ino, sd);
    if (dst) put_inode(tx, dst->ino, dd);
    if (Status s = commit(tx); !s) {
      if (new_block) balloc_.free(new_block, 1);
      return s.error().value;
    }
    // DRAM, now that it is durable.
    if (exchange) {
      p1->dir->set_target(name, dst->ino, dtype);
      p2->dir->set_target(newname, src->ino, stype);
    } else if (dst) {
      p1->dir->erase(name);
      p2->dir->set_target(newname, src->ino, stype);
    } else {
      if (new_block) p2->dir->add_block(new_block);
      p2->dir->insert(newname, added);
      p1->dir->erase(name);
    }
    (void)se_copy;
    p1->d = pd1;
    if (p1 != p2) p2->d = pd2;
    src->d = sd;
    src->parent = src->is_dir() ? sd.parent : 0;
    if (dst) {
      dst->d = dd;
      if (dst->is_dir()) dst->parent = dd.parent;
      if (!exchange) maybe_free(*dst);
    }
    return 0;
  }
}

void PmFsImpl::open_existing(const fs::Context& ctx, fs::Ino parent, std::string_view name,
                             uint32_t flags, fs::CreateReply r) {
  InodePtr p = get(parent);
  if (!p) return r.error(ENOENT);
  uint64_t cino = 0;
  {
    std::shared_lock lock(p->mu);
    if (const DirIndex::Entry* e = p->dir->find(name)) cino = e->ino;
  }
  InodePtr c = cino ? get(cino) : nullptr;
  if (!c) return r.error(ENOENT);
  if (c->is_dir()) return r.error(EISDIR);
  std::unique_lock lock(c->mu);
  if (c->freed) return r.error(ENOENT);
  if ((flags & O_TRUNC) && c->is_reg()) {
    if (!writable()) return r.error(EROFS);
    DiskInode extra = c->d;
    stamp(extra, fs::times_for(fs::TimeOp::Truncate).inode, now_ts());
    if (fs::open_trunc_kills_suid(ctx)) extra.mode = fs::kill_suid_sgid(extra.mode);
    if (Status s = truncate_locked(*c, 0, extra); !s) return r.error(s.error().value);
  }
  fs::OpenInfo o = open_info(flags, c.get());
  ++c->open_count;
  r.ok(entry_of(*c), o);
}

}  // namespace zest::pmfs
