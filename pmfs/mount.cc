// Mounting a pmfs: superblock choice, journal replay, and the scan that
// checks every structure and builds the DRAM state (docs/format.md, "Free
// space"). Whatever the bytes, the scan must refuse cleanly: every pointer,
// count and length is checked before it is followed, and a block claimed
// twice (which also catches a cycle in a chain) refuses the pool.
#include <dirent.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "base/log.h"
#include "pmfs/format.h"
#include "pmfs/pm_fs.h"

namespace zest::pmfs {

class Loader {
 public:
  Loader(PmFsImpl& fs, std::string* why) : fs_(fs), sb_(fs.sb_), pool_(fs.pool_), why_(why) {}
  Status run();

 private:
  Status fail(std::string msg) {
    *why_ = std::move(msg);
    return Errno(EUCLEAN);
  }
  bool in_data(uint64_t block, uint64_t count) const {
    return block >= sb_.data_start && block < sb_.total_blocks &&
           count <= sb_.total_blocks - block;
  }
  // Claims [block, block+count) for `what`; refuses a block claimed twice.
  Status claim(uint64_t block, uint64_t count, uint64_t ino, const char* what);
  Status load_inode(uint64_t ino, const DiskInode& d);
  Status load_extents(Inode& i);
  Status load_dir(Inode& i);
  Status load_xattrs(Inode& i);
  Status load_xattr_table(Inode& i, uint64_t t, uint64_t* next);
  Status load_xattr_slots(Inode& i, uint64_t b, uint64_t* next);
  Status load_record(uint64_t ino, uint64_t block, uint32_t nblocks, std::string* name,
                     uint32_t* valuelen);
  Status add_xattr(Inode& i, std::string name, const XattrLoc& loc);
  Status check_links();
  Status free_orphans();
  // Removes what an interrupted truncate left past a file's end.
  Status finish_truncates();

  struct Edge {
    uint64_t parent, child;
    uint8_t type;
  };

  PmFsImpl& fs_;
  const Superblock& sb_;
  pmem::PoolMap& pool_;
  std::string* why_;
  std::vector<uint64_t> used_;
  std::vector<Edge> edges_;
  std::vector<uint64_t> free_inos_;
  std::vector<InodePtr> inodes_;  // in use, by number
};

Status Loader::claim(uint64_t block, uint64_t count, uint64_t ino, const char* what) {
  if (count == 0 || !in_data(block, count)) {
    return fail(fmt::format("inode {}: {} at block {} (+{}) lies outside the data region",
                            ino, what, block, count));
  }
  for (uint64_t b = block; b < block + count; ++b) {
    uint64_t& w = used_[b >> 6];
    const uint64_t bit = uint64_t{1} << (b & 63);
    if (w & bit) {
      return fail(fmt::format("inode {}: {} claims block {}, which is already in use "
                              "(cross-linked or a cycle)", ino, what, b));
    }
    w |= bit;
  }
  return {};
}

Status Loader::load_extents(Inode& i) {
  auto ext = std::make_unique<ExtentMap>();
  uint64_t b = i.d.extent_head;
  uint32_t idx = 0;
  while (b) {
    if (Status s = claim(b, 1, i.ino, "extent block"); !s) return s;
    ExtentBlockHeader h;
    std::memcpy(&h, pool_.at<ExtentBlockHeader>(b * kBlockSize), sizeof(h));
    ExtentBlockHeader c = h;
    c.csum = 0;
    if (h.magic != kExtentBlockMagic || crc32c(&c, sizeof(c)) != h.csum || h.ino != i.ino) {
      return fail(fmt::format("inode {}: extent block {} is damaged (magic, checksum or owner)",
                              i.ino, b));
    }
    ext->add_chain_block(b);
    for (uint32_t s = 0; s < kExtentsPerBlock; ++s) {
      DiskExtent x;
      std::memcpy(&x, pool_.at<DiskExtent>(b * kBlockSize + sizeof(h) + s * sizeof(x)), sizeof(x));
      if (x.flags == 0) continue;
      if ((x.flags & ~(kExtentValid | kExtentUnwritten)) || !(x.flags & kExtentValid) ||
          !extent_csum_ok(x) || x.count == 0 || x.file_block >= kMaxFileBlocks ||
          x.count > kMaxFileBlocks - x.file_block) {
        return fail(fmt::format("inode {}: extent slot {} of block {} is damaged", i.ino, s, b));
      }
      if (Status st = claim(x.pool_block, x.count, i.ino, "extent"); !st) return st;
      if (!ext->load(idx * kExtentsPerBlock + s, x.file_block, x.pool_block, x.count,
                     x.flags & kExtentUnwritten)) {
        return fail(fmt::format("inode {}: extents overlap at file block {}", i.ino,
                                x.file_block));
      }
    }
    b = h.next;
    ++idx;
  }
  ext->set_head(i.d.extent_head);
  ext->finish_load();
  if (ext->blocks() != i.d.blocks) {
    return fail(fmt::format("inode {}: blocks field says {} but its extents map {}", i.ino,
                            i.d.blocks, ext->blocks()));
  }
  i.ext = std::move(ext);
  return {};
}

Status Loader::load_dir(Inode& i) {
  auto dir = std::make_unique<DirIndex>();
  uint64_t b = i.d.dir_head;
  uint32_t idx = 0;
  while (b) {
    if (Status s = claim(b, 1, i.ino, "directory block"); !s) return s;
    DirBlockHeader h;
    std::memcpy(&h, pool_.at<DirBlockHeader>(b * kBlockSize), sizeof(h));
    DirBlockHeader c = h;
    c.csum = 0;
    if (h.magic != kDirBlockMagic || crc32c(&c, sizeof(c)) != h.csum || h.ino != i.ino) {
      return fail(fmt::format("inode {}: directory block {} is damaged (magic, checksum or "
                              "owner)", i.ino, b));
    }
    dir->add_block(b);
    const std::byte* blk = pool_.bytes(b * kBlockSize, kBlockSize).data();
    for (uint32_t s = 0; s < kDirSlots;) {
      const std::byte* at = blk + sizeof(DirBlockHeader) + s * kDirSlotSize;
      DirentHeader e;
      std::memcpy(&e, at, sizeof(e));
      if (e.nslots == 0) {
        ++s;
        continue;
      }
      if (e.namelen == 0 || e.namelen > 255 || dirent_slots(e.namelen) != e.nslots ||
          s + e.nslots > kDirSlots) {
        return fail(fmt::format("inode {}: directory block {} slot {} is damaged", i.ino, b, s));
      }
      thread_local std::byte tmp[kDirSlotSize * 5];
      std::memcpy(tmp, at, sizeof(e) + e.namelen);
      std::memset(tmp, 0, sizeof(uint32_t));
      std::string_view name(reinterpret_cast<const char*>(at) + sizeof(e), e.namelen);
      if (crc32c(tmp, sizeof(e) + e.namelen) != e.csum) {
        return fail(fmt::format("inode {}: directory entry at block {} slot {} fails its "
                                "checksum", i.ino, b, s));
      }
      if (name == "." || name == ".." || name.find('/') != std::string_view::npos ||
          name.find('\0') != std::string_view::npos || e.ino == 0 ||
          e.ino > sb_.inode_count) {
        return fail(fmt::format("inode {}: directory entry at block {} slot {} is invalid",
                                i.ino, b, s));
      }
      DirIndex::Entry de{idx, static_cast<uint8_t>(s), e.nslots, e.type, e.ino};
      if (!dir->insert(name, de)) {
        return fail(fmt::format("inode {}: name \"{}\" appears twice", i.ino, name));
      }
      edges_.push_back({i.ino, e.ino, e.type});
      s += e.nslots;
    }
    b = h.next;
    ++idx;
  }
  i.dir = std::move(dir);
  return {};
}

// A record of `nblocks` blocks at `block`: claimed, exactly the blocks its
// header, name and value fill, checksum and name checked. *name and
// *valuelen get what it holds.
Status Loader::load_record(uint64_t ino, uint64_t block, uint32_t nblocks, std::string* name,
                           uint32_t* valuelen) {
  if (nblocks == 0 || nblocks > kXattrMaxRecordBlocks) {
    return fail(fmt::format("inode {}: xattr record at block {} has {} blocks (1..{})", ino,
                            block, nblocks, kXattrMaxRecordBlocks));
  }
  if (Status s = claim(block, nblocks, ino, "xattr record"); !s) return s;
  const std::byte* rec = pool_.bytes(block * kBlockSize, nblocks * kBlockSize).data();
  XattrRecordHeader rh;
  std::memcpy(&rh, rec, sizeof(rh));
  const uint64_t len = sizeof(rh) + uint64_t(rh.namelen) + rh.valuelen;
  if (rh.namelen == 0 || rh.namelen > 255 || rh.valuelen > kXattrMaxValue ||
      xattr_record_blocks(rh.namelen, rh.valuelen) != nblocks) {
    return fail(fmt::format("inode {}: xattr record at block {} is damaged", ino, block));
  }
  uint32_t crc = crc32c(rec + sizeof(uint32_t), sizeof(rh) - sizeof(uint32_t),
                        crc32c("\0\0\0\0", 4));
  crc = crc32c(rec + sizeof(rh), len - sizeof(rh), crc);
  if (crc != rh.csum) {
    return fail(fmt::format("inode {}: xattr record at block {} fails its checksum", ino, block));
  }
  name->assign(reinterpret_cast<const char*>(rec) + sizeof(rh), rh.namelen);
  *valuelen = rh.valuelen;
  return {};
}

Status Loader::add_xattr(Inode& i, std::string name, const XattrLoc& loc) {
  if (name.find('\0') != std::string::npos) {
    return fail(fmt::format("inode {}: an xattr name in block {} contains NUL", i.ino, loc.block));
  }
  if (i.xattrs.find(name) != i.xattrs.end()) {
    return fail(fmt::format("inode {}: xattr \"{}\" appears twice", i.ino, name));
  }
  if (!i.xattrs.load(std::move(name), loc)) {
    return fail(fmt::format("inode {}: an xattr entry in block {} overlaps another", i.ino,
                            loc.block));
  }
  return {};
}

Status Loader::load_xattr_table(Inode& i, uint64_t t, uint64_t* next) {
  XattrTableHeader h;
  std::memcpy(&h, pool_.at<XattrTableHeader>(t * kBlockSize), sizeof(h));
  XattrTableHeader c = h;
  c.csum = 0;
  if (crc32c(&c, sizeof(c)) != h.csum || h.ino != i.ino) {
    return fail(fmt::format("inode {}: xattr table {} is damaged", i.ino, t));
  }
  *next = h.next;
  i.xattrs.load_block(t, true);
  for (uint32_t k = 0; k < kXattrsPerTable; ++k) {
    XattrEntry e;
    std::memcpy(&e, pool_.at<XattrEntry>(t * kBlockSize + sizeof(h) + k * sizeof(e)), sizeof(e));
    if (e.block == 0) continue;
    XattrEntry ec = e;
    ec.csum = 0;
    if (crc32c(&ec, sizeof(ec)) != e.csum) {
      return fail(fmt::format("inode {}: xattr entry {} is damaged", i.ino, k));
    }
    XattrLoc loc;
    loc.kind = XattrLoc::Kind::Table;
    loc.entry = static_cast<uint16_t>(k);
    loc.block = t;
    loc.record = e.block;
    loc.nblocks = e.nblocks;
    std::string name;
    if (Status s = load_record(i.ino, e.block, e.nblocks, &name, &loc.valuelen); !s) return s;
    if (Status s = add_xattr(i, std::move(name), loc); !s) return s;
  }
  return {};
}

Status Loader::load_xattr_slots(Inode& i, uint64_t b, uint64_t* next) {
  XattrSlotBlockHeader h;
  std::memcpy(&h, pool_.at<XattrSlotBlockHeader>(b * kBlockSize), sizeof(h));
  XattrSlotBlockHeader c = h;
  c.csum = 0;
  if (crc32c(&c, sizeof(c)) != h.csum || h.ino != i.ino) {
    return fail(fmt::format("inode {}: xattr slot block {} is damaged", i.ino, b));
  }
  *next = h.next;
  i.xattrs.load_block(b, false);
  const std::byte* blk = pool_.bytes(b * kBlockSize, kBlockSize).data();
  for (uint32_t s = 0; s < kXattrSlots;) {
    const std::byte* at = blk + sizeof(h) + s * kXattrSlotSize;
    XattrSlotHeader e;
    std::memcpy(&e, at, sizeof(e));
    if (e.nslots == 0) {
      ++s;
      continue;
    }
    const bool rec = e.flags & kXattrSlotRecord;
    const uint64_t len =
        sizeof(e) + (rec ? sizeof(XattrRecordRef) : uint64_t(e.namelen) + e.valuelen);
    if ((e.flags & ~kXattrSlotRecord) || e.namelen == 0 || e.namelen > 255 ||
        e.valuelen > kXattrMaxValue || len > kXattrInlineMax || xattr_slots(len) != e.nslots ||
        s + e.nslots > kXattrSlots) {
      return fail(fmt::format("inode {}: xattr slot block {} slot {} is damaged", i.ino, b, s));
    }
    thread_local std::byte tmp[kXattrInlineMax];
    std::memcpy(tmp, at, len);
    std::memset(tmp, 0, sizeof(uint32_t));
    if (crc32c(tmp, len) != e.csum) {
      return fail(fmt::format("inode {}: xattr entry at block {} slot {} fails its checksum",
                              i.ino, b, s));
    }
    XattrLoc loc;
    loc.slot = static_cast<uint8_t>(s);
    loc.nslots = e.nslots;
    loc.valuelen = e.valuelen;
    loc.block = b;
    std::string name;
    if (rec) {
      XattrRecordRef ref;
      std::memcpy(&ref, at + sizeof(e), sizeof(ref));
      loc.kind = XattrLoc::Kind::Record;
      loc.record = ref.block;
      loc.nblocks = ref.nblocks;
      uint32_t valuelen = 0;
      if (Status st = load_record(i.ino, ref.block, ref.nblocks, &name, &valuelen); !st) return st;
      if (name.size() != e.namelen || valuelen != e.valuelen) {
        return fail(fmt::format("inode {}: xattr entry at block {} slot {} does not match its "
                                "record", i.ino, b, s));
      }
    } else {
      loc.kind = XattrLoc::Kind::Inline;
      name.assign(reinterpret_cast<const char*>(at) + sizeof(e), e.namelen);
    }
    if (Status st = add_xattr(i, std::move(name), loc); !st) return st;
    s += e.nslots;
  }
  return {};
}

// The chain: tables (the only kind, and only one, before
// kIncompatXattrSlots) and slot blocks, each claimed (a cycle claims a block
// twice).
Status Loader::load_xattrs(Inode& i) {
  const bool slots = sb_.features_incompat & kIncompatXattrSlots;
  for (uint64_t b = i.d.xattr_block; b;) {
    if (Status s = claim(b, 1, i.ino, "xattr chain block"); !s) return s;
    uint32_t magic;
    std::memcpy(&magic, pool_.at<std::byte>(b * kBlockSize + sizeof(uint32_t)), sizeof(magic));
    uint64_t next = 0;
    if (magic == kXattrTableMagic) {
      if (Status s = load_xattr_table(i, b, &next); !s) return s;
    } else if (magic == kXattrSlotBlockMagic && slots) {
      if (Status s = load_xattr_slots(i, b, &next); !s) return s;
    } else {
      return fail(fmt::format("inode {}: xattr chain block {} is damaged (magic {:#x}{})", i.ino,
                              b, magic,
                              magic == kXattrSlotBlockMagic
                                  ? ": a slot block, but the superblock lacks kIncompatXattrSlots"
                                  : ""));
    }
    if (next && !slots) {
      return fail(fmt::format("inode {}: xattr table {} links a chain, but the superblock lacks "
                              "kIncompatXattrSlots", i.ino, b));
    }
    b = next;
  }
  i.xattrs.finish_load();
  return {};
}

Status Loader::load_inode(uint64_t ino, const DiskInode& d) {
  if (!checksum_ok(d)) return fail(fmt::format("inode {}: checksum mismatch", ino));
  if (d.flags != kInodeInUse &&
      !(d.flags == (kInodeInUse | kInodeTrimPending) && (d.mode & S_IFMT) == S_IFREG)) {
    return fail(fmt::format("inode {}: unknown flags {:#x}", ino, d.flags));
  }
  const uint32_t type = d.mode & S_IFMT;
  switch (type) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO:
    case S_IFSOCK:
      break;
    default:
      return fail(fmt::format("inode {}: unknown file type in mode {:#o}", ino, d.mode));
  }
  auto i = std::make_shared<Inode>(ino, type);
  i->d = d;
  const bool has_extents = type == S_IFREG || (type == S_IFLNK && d.size > kInlineSymlinkMax);
  if ((!has_extents && (d.extent_head || (type != S_IFLNK && d.blocks))) ||
      (type != S_IFDIR && (d.dir_head || d.parent))) {
    return fail(fmt::format("inode {}: has contents its type cannot have", ino));
  }
  if (d.size > kMaxFileSize) return fail(fmt::format("inode {}: size {} too large", ino, d.size));
  if (type == S_IFDIR) {
    if (d.parent == 0 || d.parent > sb_.inode_count) {
      return fail(fmt::format("inode {}: parent {} out of range", ino, d.parent));
    }
    i->parent = d.parent;
    if (Status s = load_dir(*i); !s) return s;
  } else if (has_extents) {
    if (Status s = load_extents(*i); !s) return s;
    if (type == S_IFLNK) {
      auto it = i->ext->map().begin();
      if (d.size >= kBlockSize || i->ext->map().size() != 1 || it->first != 0 ||
          it->second.count != 1 || it->second.flags) {
        return fail(fmt::format("inode {}: long symlink is damaged", ino));
      }
      i->target.assign(reinterpret_cast<const char*>(
                           pool_.bytes(it->second.pool * kBlockSize, d.size).data()),
                       d.size);
    }
  } else if (type == S_IFLNK) {
    if (d.size == 0 || d.blocks != 0) return fail(fmt::format("inode {}: symlink is damaged", ino));
    i->target.assign(d.inline_data, d.size);
  }
  if (Status s = load_xattrs(*i); !s) return s;
  inodes_[ino] = i;
  return {};
}

Status Loader::check_links() {
  const uint64_t n = sb_.inode_count;
  std::vector<uint32_t> names(n + 1, 0), subdirs(n + 1, 0);
  for (const Edge& e : edges_) {
    const InodePtr& c = inodes_[e.child];
    if (!c) {
      return fail(fmt::format("directory {} names inode {}, which is not in use", e.parent,
                              e.child));
    }
    if (e.type != (c->type >> 12)) {
      return fail(fmt::format("directory {} names inode {} with the wrong type", e.parent,
                              e.child));
    }
    if (e.child == kRootIno) return fail(fmt::format("directory {} names the root", e.parent));
    ++names[e.child];
    if (c->is_dir()) {
      if (c->d.parent != e.parent) {
        return fail(fmt::format("directory {} is named in {} but its parent says {}", e.child,
                                e.parent, c->d.parent));
      }
      ++subdirs[e.parent];
    }
  }
  uint64_t live_dirs = 0;
  for (uint64_t ino = 1; ino <= n; ++ino) {
    const InodePtr& i = inodes_[ino];
    if (!i) continue;
    if (i->is_dir()) {
      const uint32_t want_names = ino == kRootIno ? 0 : (i->d.nlink ? 1 : 0);
      if (names[ino] != want_names ||
          (i->d.nlink && i->d.nlink != 2 + subdirs[ino]) || (!i->d.nlink && !i->dir->empty())) {
        return fail(fmt::format("directory {}: link count {} does not match its {} names and "
                                "{} subdirectories", ino, i->d.nlink, names[ino], subdirs[ino]));
      }
      if (i->d.nlink) ++live_dirs;
    } else if (i->d.nlink != names[ino]) {
      return fail(fmt::format("inode {}: link count {} but {} names", ino, i->d.nlink,
                              names[ino]));
    }
  }
  const InodePtr& root = inodes_[kRootIno];
  if (!root || !root->is_dir() || root->d.nlink == 0 || root->d.parent != kRootIno) {
    return fail("the root directory (inode 1) is missing or damaged");
  }
  // Every live directory must hang from the root (no detached cycles).
  uint64_t reached = 0;
  std::vector<uint64_t> stack{kRootIno};
  while (!stack.empty()) {
    const uint64_t d = stack.back();
    stack.pop_back();
    ++reached;
    const Inode& di = *inodes_[d];
    for (size_t idx = 0; idx < di.dir->chain().size(); ++idx) {
      for (uint64_t m = di.dir->starts(idx); m; m &= m - 1) {
        const int s = __builtin_ctzll(m);
        DirentHeader h;
        std::memcpy(&h, pool_.at<DirentHeader>(di.dir->entry_offset(idx, s)), sizeof(h));
        if (h.type == (S_IFDIR >> 12)) stack.push_back(h.ino);
      }
    }
    if (reached > live_dirs) break;
  }
  if (reached != live_dirs) {
    return fail(fmt::format("{} directories are not reachable from the root",
                            live_dirs > reached ? live_dirs - reached : reached - live_dirs));
  }
  return {};
}

Status Loader::free_orphans() {
  for (uint64_t ino = 1; ino <= sb_.inode_count; ++ino) {
    InodePtr& i = inodes_[ino];
    if (!i || i->d.nlink != 0) continue;
    if (!fs_.writable()) {
      i.reset();  // unreachable; left for a read-write mount to free
      continue;
    }
    Transaction& tx = Transaction::local();
    DiskInode d{};
    d.generation = i->d.generation;
    tx.put(fs_.inode_off(ino), d);
    fs_.collect_blocks(*i, tx);
    if (Status s = fs_.commit(tx); !s) {
      *why_ = fmt::format("freeing orphan inode {} failed", ino);
      return s;
    }
    log_info("pmfs: freed orphan inode {}", ino);
    i.reset();
    free_inos_.push_back(ino);
  }
  return {};
}

Status Loader::finish_truncates() {
  if (!fs_.writable()) return {};  // reads stop at the size either way
  for (uint64_t ino = 1; ino <= sb_.inode_count; ++ino) {
    InodePtr& i = inodes_[ino];
    if (!i || !(i->d.flags & kInodeTrimPending)) continue;
    const uint64_t keep = (i->d.size + kBlockSize - 1) / kBlockSize;
    if (Status s = fs_.trim_tail(*i, keep); !s) {
      *why_ = fmt::format("finishing the interrupted truncate of inode {} failed", ino);
      return s;
    }
    log_info("pmfs: finished the interrupted truncate of inode {}", ino);
  }
  return {};
}

Status Loader::run() {
  used_.assign((sb_.total_blocks + 63) / 64, 0);
  for (uint64_t b = 0; b < sb_.data_start; ++b) used_[b >> 6] |= uint64_t{1} << (b & 63);
  inodes_.assign(sb_.inode_count + 1, nullptr);
  for (uint64_t ino = 1; ino <= sb_.inode_count; ++ino) {
    DiskInode d;
    std::memcpy(&d, pool_.at<DiskInode>(fs_.inode_off(ino)), sizeof(d));
    if (!(d.flags & kInodeInUse)) {
      if (ino == kRootIno) return fail("the root directory (inode 1) is not in use");
      free_inos_.push_back(ino);
      continue;
    }
    if (Status s = load_inode(ino, d); !s) return s;
  }
  if (Status s = check_links(); !s) return s;
  unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  fs_.balloc_.init(sb_.data_start, sb_.total_blocks, used_, std::min(cpus, 64u));
  if (Status s = free_orphans(); !s) return s;
  if (Status s = finish_truncates(); !s) return s;
  for (InodePtr& i : inodes_) {
    if (i) fs_.table_.insert(std::move(i));
  }
  fs_.ialloc_.init(std::move(free_inos_), sb_.inode_count);
  return {};
}

Result<std::unique_ptr<PmFsImpl>> PmFsImpl::mount(pmem::PoolMap pool, const Options& options,
                                                  std::string* why) {
  std::string scratch;
  if (!why) why = &scratch;
  if (pool.size() < 2 * kBlockSize) {
    *why = fmt::format("pool of {} bytes is too small to be a pmfs (truncated?)", pool.size());
    return Errno(EINVAL);
  }
  if (options.recorder && pool.recorder() != options.recorder) pool.set_recorder(options.recorder);
  Superblock sbs[2];
  std::string whys[2];
  bool ok[2];
  for (int k = 0; k < 2; ++k) {
    std::memcpy(&sbs[k], pool.at<Superblock>(k * kBlockSize), sizeof(Superblock));
    ok[k] = superblock_valid(sbs[k], pool.size(), &whys[k]);
  }
  if (!ok[0] && !ok[1]) {
    if (sbs[0].magic != kMagic && sbs[1].magic != kMagic) {
      *why = "not a pmfs pool (bad magic)";
      return Errno(EINVAL);
    }
    *why = fmt::format("both superblocks are invalid: primary: {}; secondary: {}", whys[0],
                       whys[1]);
    const bool newer = (sbs[0].magic == kMagic && sbs[0].version > kVersion && checksum_ok(sbs[0])) ||
                       (sbs[1].magic == kMagic && sbs[1].version > kVersion && checksum_ok(sbs[1]));
    return Errno(newer ? EINVAL : EUCLEAN);
  }
  const int use = ok[0] ? 0 : 1;
  const Superblock sb = sbs[use];
  Options opts = options;
  if (sb.features_ro_compat != 0) opts.read_only = true;
  const bool rewrite_other = !pool.read_only() && !opts.read_only &&
                             std::memcmp(&sbs[0], &sbs[1], sizeof(Superblock)) != 0;
  std::unique_ptr<PmFsImpl> fs(new PmFsImpl(std::move(pool), opts, sb));
  if (Status s = fs->journal_->recover(why); !s) return s.error();
  Loader loader(*fs, why);
  if (Status s = loader.run(); !s) return s.error();
  // Only a superblock that led to a whole, consistent mount may overwrite
  // the other copy: a bad one must never destroy the good backup.
  if (rewrite_other) {
    const uint64_t other = (1 - use) * kBlockSize;
    log_warn("pmfs: rewriting the {} superblock ({})", use ? "primary" : "secondary",
             whys[1 - use].empty() ? "differs" : whys[1 - use]);
    fs->rewrite_superblock(other);
  }
  if (opts.test_halt_after_commits) fs->journal_->halt_after(opts.test_halt_after_commits);
  return fs;
}

Result<std::unique_ptr<PmFs>> open(pmem::PoolMap pool, const Options& options,
                                   std::string* why) {
  auto fs = PmFsImpl::mount(std::move(pool), options, why);
  if (!fs) return fs.error();
  return std::unique_ptr<PmFs>(std::move(*fs));
}

Result<std::unique_ptr<PmFs>> open(const std::string& pool_path, const Options& options,
                                   std::string* why) {
  pmem::OpenOptions po;
  po.durability = options.durability;
  po.read_only = options.read_only;
  po.recorder = options.recorder;
  auto pool = pmem::PoolMap::open(pool_path, po, why);
  if (!pool) return pool.error();
  return open(std::move(*pool), options, why);
}

}  // namespace zest::pmfs
