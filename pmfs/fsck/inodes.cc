// Step 1 of each pass (Pass::run, fsck.cc): the inode table, slot by slot.
// A free slot must be clear (all zero but its generation). An in-use slot
// must have a valid checksum and file type (the root: a directory), known
// flags and mode bits, pointers that its type may have and that lie in the
// data region, a parent field only when it is a directory, a usable symlink
// target, no `blocks` when it has no extents, and a size that is an off_t.
// Corrupt inodes are marked Bad (and freed when repairing); the rest are
// recorded as live (live_, info_: type, nlink, parent) for the steps after
// this one, and whether the root is an in-use directory (root_ok_).
//
// Assumes a valid superblock (superblock.cc: the table lies inside the
// pool) and the journal replayed (journal.cc).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

namespace {

// Linux refuses longer symlink targets (PATH_MAX including the NUL).
constexpr uint64_t kMaxSymlinkSize = 4095;

}  // namespace

void Pass::scan_inodes() {
  const uint64_t count = sb_.inode_count;
  info_.assign(count + 1, InodeInfo{});
  const uint64_t step = std::max<uint64_t>(16384, count / 16);
  for (uint64_t ino = 1; ino <= count; ++ino) {
    if (ino % step == 0) rep_.progress(fmt::format("inodes {}/{}", ino, count));
    check_inode(ino);
  }
  rep_.progress(fmt::format("inodes {}/{}", count, count));
  const InodeInfo& root = info_[kRootIno];
  root_ok_ = root.state == State::Live && root.dtype == DT_DIR;
  if (!root_ok_) {
    rep_.error(
        "inode 1 (root): not an in-use directory; the tree cannot be checked "
        "for "
        "reachability");
  }
}

void Pass::check_inode(uint64_t ino) {
  DiskInode d = read_inode(ino);
  InodeInfo& in = info_[ino];
  if (!(d.flags & kInodeInUse)) {
    DiskInode rest = d;
    rest.generation = 0;
    rest.csum = 0;
    // A free slot is all zero but the generation; its checksum may be
    // zero or sealed (the format leaves this open).
    if (!all_zero(&rest, sizeof(rest)) ||
        (d.csum != 0 && d.csum != csum_of(d))) {
      rep_.error(fmt::format(
          "inode {}: free slot is not clear (flags {:#x}, mode {:#o})", ino,
          d.flags, d.mode));
      if (repair_ && ino != kRootIno) {
        DiskInode cleared{};
        cleared.generation = d.generation;
        view_.write_pool(ioff(ino), &cleared, sizeof(cleared));
        rep_.repair(fmt::format("inode {}: free slot cleared", ino));
      }
    }
    if (ino == kRootIno && repair_) rebuild_root("its slot was free");
    return;
  }
  if (!checksum_ok(d)) {
    rep_.error(fmt::format("inode {}: checksum mismatch", ino));
    in.state = State::Bad;
    free_inode(ino, "corrupt");
    return;
  }
  uint8_t dtype = dtype_of(d.mode);
  if (dtype == 0) {
    rep_.error(fmt::format("inode {}: mode {:#o} is not a valid file type", ino,
                           d.mode));
    in.state = State::Bad;
    free_inode(ino, "invalid file type");
    return;
  }
  if (ino == kRootIno && dtype != DT_DIR) {
    rep_.error(
        fmt::format("inode 1 (root): mode {:#o} is not a directory", d.mode));
    in.state = State::Bad;
    free_inode(ino, "not a directory");
    return;
  }
  ++stats_->inodes_checked;
  // kInodeTrimPending: a truncate still removing extents past the end;
  // mount finishes it (a regular file's only other valid flag).
  const uint32_t known =
      kInodeInUse | (dtype == DT_REG ? kInodeTrimPending : 0u);
  if (d.flags & ~known) {
    rep_.error(
        fmt::format("inode {}: unknown flags {:#x}", ino, d.flags & ~known));
    patch_inode(
        ino, [known](DiskInode& x) { x.flags &= known; },
        "unknown flags cleared");
    d.flags &= known;
  } else if (d.flags & kInodeTrimPending) {
    rep_.note(fmt::format(
        "inode {}: an interrupted truncate left extents past its end; "
        "mount removes them",
        ino));
  }
  if (d.mode & ~uint32_t(S_IFMT | 07777)) {
    rep_.error(fmt::format(
        "inode {}: mode {:#o} has bits outside type and permissions", ino,
        d.mode));
    patch_inode(
        ino, [](DiskInode& x) { x.mode &= S_IFMT | 07777; },
        "stray mode bits cleared");
  }

  // Pointers: each kind only where the type allows it, and inside the
  // data region.
  bool wants_extents = dtype == DT_REG || dtype == DT_LNK;
  bool wants_dir = dtype == DT_DIR;
  auto pointer = [&](uint64_t& field, bool allowed, const char* name,
                     size_t field_off) {
    if (field == 0) return;
    std::string problem;
    if (!allowed) {
      problem = fmt::format("{} {} set on a {}", name, field, type_name(dtype));
    } else if (!in_data(field)) {
      problem = fmt::format("{} {} points outside the data region ({})", name,
                            field, outside(field, 1));
    } else {
      return;
    }
    rep_.error(fmt::format("inode {}: {}", ino, problem));
    patch_inode(
        ino,
        [&](DiskInode& x) {
          std::memset(reinterpret_cast<char*>(&x) + field_off, 0,
                      sizeof(uint64_t));
        },
        fmt::format("{} cleared (what it pointed to is lost)", name));
    field = 0;
  };
  pointer(d.extent_head, wants_extents, "extent_head",
          offsetof(DiskInode, extent_head));
  pointer(d.dir_head, wants_dir, "dir_head", offsetof(DiskInode, dir_head));
  pointer(d.xattr_block, true, "xattr_block", offsetof(DiskInode, xattr_block));

  if (dtype != DT_DIR && d.parent != 0) {
    // Only directories have a parent field; mount refuses anything else.
    rep_.error(fmt::format("inode {}: parent {} set on a {}", ino, d.parent,
                           type_name(dtype)));
    patch_inode(
        ino, [](DiskInode& x) { x.parent = 0; }, "parent cleared");
    d.parent = 0;
  }
  if (dtype == DT_DIR && ino != kRootIno &&
      (d.parent == 0 || d.parent > sb_.inode_count)) {
    // Reported again (and repaired) by the tree check when the directory
    // is named; an unnamed one is unreachable anyway.
    rep_.error(fmt::format("directory {}: parent {} is not an inode number",
                           ino, d.parent));
  }
  if (dtype == DT_LNK) {
    std::string problem;
    if (d.size == 0 || d.size > kMaxSymlinkSize) {
      problem = fmt::format("symlink target length {} is not 1..{}", d.size,
                            kMaxSymlinkSize);
    } else if (d.size <= kInlineSymlinkMax) {
      if (std::memchr(d.inline_data, 0, d.size) != nullptr) {
        problem = "inline symlink target contains a NUL byte";
      } else if (d.extent_head != 0) {
        problem = fmt::format(
            "inline symlink of {} bytes also has an extent chain", d.size);
      }
    } else if (d.extent_head == 0) {
      problem =
          fmt::format("symlink target of {} bytes has no extent chain", d.size);
    }
    if (!problem.empty()) {
      rep_.error(fmt::format("inode {}: {}", ino, problem));
      in.state = State::Bad;
      free_inode(ino, "unusable symlink");
      return;
    }
  }
  // `blocks` counts what the extents map; whatever has none owns none
  // (a directory's chain blocks are not counted). Files with extents are
  // counted when their chain is walked, also when they have no chain.
  if (!has_extents(d) && d.blocks != 0) {
    rep_.error(fmt::format("inode {}: {}{} owns {} blocks", ino,
                           dtype == DT_LNK ? "inline " : "", type_name(dtype),
                           d.blocks));
    patch_inode(
        ino, [](DiskInode& x) { x.blocks = 0; }, "blocks set to 0");
    d.blocks = 0;
  }
  // Sizes are off_t. A regular file's is set from its extents when they
  // are walked; symlinks were checked above.
  if (dtype != DT_REG && dtype != DT_LNK && d.size > kMaxFileSize) {
    rep_.error(fmt::format("inode {}: size {} exceeds the largest file ({})",
                           ino, d.size, kMaxFileSize));
    patch_inode(
        ino, [](DiskInode& x) { x.size = 0; }, "size set to 0");
    d.size = 0;
  }
  in.state = State::Live;
  in.dtype = dtype;
  in.nlink = d.nlink;
  in.parent = d.parent;
  live_.push_back({ino, d});
}

// Whether the inode's data is mapped by extents: regular files, and
// symlinks whose target does not fit inline.
bool Pass::has_extents(const DiskInode& d) {
  const uint32_t type = d.mode & S_IFMT;
  return type == S_IFREG || (type == S_IFLNK && d.size > kInlineSymlinkMax);
}

const char* Pass::type_name(uint8_t dtype) {
  switch (dtype) {
    case DT_REG:
      return "regular file";
    case DT_DIR:
      return "directory";
    case DT_LNK:
      return "symlink";
    case DT_CHR:
      return "character device";
    case DT_BLK:
      return "block device";
    case DT_FIFO:
      return "fifo";
    case DT_SOCK:
      return "socket";
    default:
      return "file";
  }
}

}  // namespace zest::pmfs::fsck_internal
