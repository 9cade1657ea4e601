// The repair primitives every step of a pass shares: freeing an inode (the
// root is rebuilt instead), zeroing bytes, cutting a chain short. Each
// writes and persists through the View, only when repairing, and reports
// what it changed and what data was lost. patch_inode, a template, is in
// passes.h; repairs that belong to one structure (an extent, a directory
// entry, an xattr entry) are with its check.
//
// Assumes only what its callers checked: the inode number is in the table,
// and a chain block being cut after (`prev`) is a valid block of that chain.
#include <algorithm>
#include <array>
#include <cstddef>
#include <string>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

// Frees an inode slot: all zero but the generation (so (ino, generation)
// stays unique when the slot is taken again). Its blocks become free: the
// allocator is rebuilt from the live inodes at every mount.
void Pass::free_inode(uint64_t ino, const std::string& why) {
  if (!repair_) return;
  if (ino == kRootIno) return rebuild_root(why);
  DiskInode d = read_inode(ino);
  DiskInode cleared{};
  cleared.generation = d.generation;
  view_.write_pool(ioff(ino), &cleared, sizeof(cleared));
  if (ino < info_.size()) info_[ino].state = State::Free;
  rep_.repair(
      fmt::format("inode {}: freed ({}); data lost: {} bytes, {} blocks", ino,
                  why, d.size, d.blocks));
}

// The root is never freed: it is rebuilt as a directory, keeping its
// directory chain when the chain's first block says it belongs to inode 1
// (the next pass checks the chain like any other). Without the chain, the
// whole tree becomes unreachable and is freed.
void Pass::rebuild_root(const std::string& why) {
  DiskInode old = read_inode(kRootIno);
  DiskInode r{};
  r.flags = kInodeInUse;
  r.mode = S_IFDIR | ((old.mode & S_IFMT) == S_IFDIR ? old.mode & 07777 : 0755);
  r.nlink = 2;
  r.uid = old.uid;
  r.gid = old.gid;
  r.generation = old.generation != 0 ? old.generation : 1;
  r.atime_sec = old.atime_sec;
  r.mtime_sec = old.mtime_sec;
  r.ctime_sec = old.ctime_sec;
  r.parent = kRootIno;
  if (in_data(old.dir_head)) {
    auto h = view_.get<DirBlockHeader>(old.dir_head * kBlockSize);
    if (h.magic == kDirBlockMagic && h.csum == csum_of(h) &&
        h.ino == kRootIno) {
      r.dir_head = old.dir_head;
    }
  }
  seal(&r);
  view_.write_pool(ioff(kRootIno), &r, sizeof(r));
  rep_.repair(fmt::format(
      "inode 1 (root): rebuilt as a directory ({}); {}", why,
      r.dir_head != 0
          ? fmt::format("kept its directory chain at block {}", r.dir_head)
          : std::string("its entries are lost")));
}

void Pass::zero(uint64_t off, size_t len) {
  std::array<std::byte, kBlockSize> z{};
  view_.write_pool(off, z.data(), std::min<size_t>(len, kBlockSize));
}

// Ends a chain before `block`: `prev` == 0 clears the inode's head field.
// Any xattr kind stands for the xattr chain (whose blocks are tables and
// slot blocks).
void Pass::cut_chain(uint64_t ino, uint64_t prev, Kind kind, uint64_t block) {
  if (!repair_) return;
  const bool xattr = kind == Kind::XattrTable || kind == Kind::XattrSlotBlock;
  const char* what = kind == Kind::ExtentBlock ? "extent"
                     : xattr                   ? "xattr"
                                               : "directory";
  if (prev == 0) {
    patch_inode(
        ino,
        [&](DiskInode& d) {
          if (kind == Kind::ExtentBlock) {
            d.extent_head = 0;
          } else if (xattr) {
            d.xattr_block = 0;
          } else {
            d.dir_head = 0;
          }
        },
        fmt::format("{} chain cleared at its head (block {}); everything it "
                    "{} is lost",
                    what, block, xattr ? "held" : "mapped"));
    return;
  }
  // Every chain header keeps `next` at the same offset.
  static_assert(offsetof(ExtentBlockHeader, next) ==
                offsetof(DirBlockHeader, next));
  static_assert(offsetof(XattrTableHeader, next) ==
                offsetof(DirBlockHeader, next));
  static_assert(offsetof(XattrSlotBlockHeader, next) ==
                offsetof(DirBlockHeader, next));
  uint64_t hoff = prev * kBlockSize;
  auto relink = [&](auto h) {
    h.next = 0;
    h.csum = csum_of(h);
    view_.write_pool(hoff, &h, sizeof(h));
  };
  if (kind == Kind::ExtentBlock) {
    relink(view_.get<ExtentBlockHeader>(hoff));
  } else if (!xattr) {
    relink(view_.get<DirBlockHeader>(hoff));
  } else if (view_.get<uint32_t>(hoff + sizeof(uint32_t)) == kXattrTableMagic) {
    relink(view_.get<XattrTableHeader>(hoff));
  } else {
    relink(view_.get<XattrSlotBlockHeader>(hoff));
  }
  rep_.repair(fmt::format(
      "inode {}: {} chain cut after block {} (block {} and the rest of "
      "the chain dropped)",
      ino, what, prev, block));
}

}  // namespace zest::pmfs::fsck_internal
