// Step 2 of each pass, for directories: the directory chain and its
// entries. Every chain block must be in the data region, seen once, with a
// valid header owned by this directory (else the chain is cut before it).
// Every entry must fit its block, have a name of 1..255 bytes in the right
// number of slots and a valid checksum, a name without '/' or NUL that is
// not "." or "..", unique in its directory, and name an inode that exists,
// is not the root and is live; its type must be the inode's. Bad entries
// are cleared; the valid ones are recorded (entries_) for connectivity.cc,
// and every chain block is claimed for blocks.cc.
//
// Assumes inodes.cc has classified every inode (Free, Bad or Live, with its
// type), so an entry can be judged by its target, and that dir_head is 0
// or in the data region. Runs in walk_contents's loop, inode by inode,
// after the inode's extents and before its xattr table.
#include <cstddef>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

void Pass::walk_dir(uint64_t dir, uint64_t head) {
  std::unordered_set<uint64_t> visited;
  std::unordered_map<std::string, uint64_t>
      names;  // name -> DirentHeader offset
  uint64_t prev = 0;
  for (uint64_t b = head; b != 0;) {
    DirBlockHeader h{};
    const std::string problem =
        chain_block_problem(b, kDirBlockMagic, dir, visited, &h);
    if (!problem.empty()) {
      rep_.error(fmt::format("directory {}: directory chain block {} {}", dir,
                             b, problem));
      cut_chain(dir, prev, Kind::DirBlock, b);
      break;
    }
    claim(b, 1, dir, prev, Kind::DirBlock);
    for (size_t s = 0; s < kDirSlots;) s += check_dirent(dir, b, s, &names);
    prev = b;
    b = h.next;
  }
}

// Checks the entry starting at `slot`; returns how many slots to advance.
size_t Pass::check_dirent(uint64_t dir, uint64_t b, size_t slot,
                          std::unordered_map<std::string, uint64_t>* names) {
  const uint64_t off = b * kBlockSize + (slot + 1) * kDirSlotSize;
  auto h = view_.get<DirentHeader>(off);
  if (h.nslots == 0) return 1;  // free slot
  ++stats_->dirents_checked;
  const size_t room = kDirSlots - slot;
  // How far a damaged entry reaches: its nslots if that is plausible.
  const size_t span = h.nslots <= room ? h.nslots : 1;
  auto where = [&] {
    return fmt::format("directory {}: block {} slot {}", dir, b, slot);
  };
  std::string problem;
  if (h.nslots > room) {
    problem =
        fmt::format("entry of {} slots does not fit in the block", h.nslots);
  } else if (h.namelen == 0 || h.namelen > 255) {
    problem = fmt::format("name length {} is not 1..255", h.namelen);
  } else if (dirent_slots(h.namelen) != h.nslots) {
    problem = fmt::format("{} slots for a name of {} bytes (needs {})",
                          h.nslots, h.namelen, dirent_slots(h.namelen));
  }
  std::string name;
  if (problem.empty()) {
    name.resize(h.namelen);
    view_.read(off + sizeof(DirentHeader), name.data(), h.namelen);
    DirentHeader zeroed = h;
    zeroed.csum = 0;
    uint32_t c = crc32c(&zeroed, sizeof(zeroed));
    c = crc32c(name.data(), name.size(), c);
    if (c != h.csum) problem = "checksum mismatch";
  }
  if (!problem.empty()) {
    rep_.error(fmt::format("{}: {}", where(), problem));
    clear_dirent(dir, off, span, "corrupt entry");
    return span;
  }
  const std::string q = quote(name);
  if (name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    problem = fmt::format("name {} contains '/' or NUL", q);
  } else if (name == "." || name == "..") {
    problem = fmt::format("stores {} (synthesized, never stored)", q);
  } else if (h.ino == 0 || h.ino > sb_.inode_count) {
    problem = fmt::format("entry {} refers to inode {}, which does not exist",
                          q, h.ino);
  } else if (h.ino == kRootIno) {
    problem = fmt::format("entry {} refers to the root directory", q);
  } else if (info_[h.ino].state == State::Free) {
    problem = fmt::format("entry {} refers to free inode {}", q, h.ino);
  } else if (info_[h.ino].state == State::Bad) {
    problem = fmt::format("entry {} refers to corrupt inode {}", q, h.ino);
  } else if (auto [it, fresh] = names->emplace(name, off); !fresh) {
    problem = fmt::format("duplicate name {} (also at pool offset {:#x})", q,
                          it->second);
  }
  if (!problem.empty()) {
    rep_.error(fmt::format("{}: {}", where(), problem));
    clear_dirent(dir, off, h.nslots, "bad entry " + q);
    return h.nslots;
  }
  const InodeInfo& target = info_[h.ino];
  if (h.type != target.dtype) {
    rep_.error(fmt::format("{}: entry {} has type {} but inode {} is a {}",
                           where(), q, h.type, h.ino, type_name(target.dtype)));
    if (repair_) {
      h.type = target.dtype;
      h.csum = 0;
      uint32_t c = crc32c(&h, sizeof(h));
      h.csum = crc32c(name.data(), name.size(), c);
      view_.write_pool(off, &h, sizeof(h));
      rep_.repair(
          fmt::format("{}: entry {} type set to {}", where(), q, target.dtype));
    }
  }
  entries_.push_back({dir, h.ino, off, h.nslots, true, name});
  return h.nslots;
}

void Pass::clear_dirent(uint64_t dir, uint64_t off, size_t nslots,
                        const std::string& why) {
  if (!repair_) return;
  zero(off, nslots * kDirSlotSize);
  rep_.repair(
      fmt::format("directory {}: {} slots at pool offset {:#x} cleared ({})",
                  dir, nslots, off, why));
}

}  // namespace zest::pmfs::fsck_internal
