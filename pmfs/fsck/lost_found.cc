// Step 5 of each pass: unreachable inodes, reconnected under /lost+found.
//
// An unreachable inode has passed every check above (anything corrupt was
// freed or repaired earlier in this pass), so its data is worth keeping:
// the top of each unreachable subtree is linked into /lost+found as
// "#<ino>" (as e2fsck does), and everything below it comes back with it,
// under its old names. /lost+found is created when missing. When that is
// impossible (it is not a directory; no free inode or block) the
// unreachable inodes are freed, as before, and the loss is reported.
//
// Read-only, the same plan is made on copies of the bookkeeping (no byte
// is written) so the report can say what repair would do.
//
// Assumes connectivity.cc (step 4) has marked what is reachable from a
// valid root and freed the orphans, so what is left unreachable is live and
// named only by unreachable directories; and that claims_ (step 2) covers
// every block in use, so a block no claim covers is free to become a new
// directory block.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

namespace {

constexpr uint64_t kAllSlots = (uint64_t(1) << kDirSlots) - 1;

void bump_nlink(uint32_t* n) {
  if (*n < UINT32_MAX) ++*n;
}

timespec now_ts() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

void touch(DiskInode* d, const timespec& t) {
  d->mtime_sec = d->ctime_sec = t.tv_sec;
  d->mtime_nsec = d->ctime_nsec = static_cast<uint32_t>(t.tv_nsec);
}

}  // namespace

struct Pass::LostRoot {
  uint64_t ino;
  std::string path;     // where it was (or would be) reconnected
  std::string failure;  // why it could not be, when path is empty
};

// The free slots of one directory's chain, loaded from the pool, and its
// inode, for adding entries.
struct Pass::DirSlots {
  uint64_t ino = 0;
  DiskInode d{};
  std::vector<uint64_t> blocks;
  std::vector<uint64_t> used;  // per block, bit s: slot s is taken
  size_t first_open = 0;       // blocks before it are full
  bool dirty = false;          // d changed since it was written
};

// Data blocks no structure claims, lowest first. Conservative: a dropped
// claim still counts as used (its blocks may be another owner's).
class Pass::BlockFinder {
 public:
  BlockFinder(const std::vector<Claim>& claims, const Superblock& sb)
      : next_(sb.data_start), end_(sb.total_blocks) {
    spans_.reserve(claims.size());
    for (const Claim& c : claims)
      spans_.push_back({c.start, c.start + c.count});
    std::sort(spans_.begin(), spans_.end());
  }
  std::optional<uint64_t> take() {
    while (next_ < end_) {
      while (i_ < spans_.size() && spans_[i_].second <= next_) ++i_;
      if (i_ < spans_.size() && spans_[i_].first <= next_) {
        next_ = spans_[i_].second;
        continue;
      }
      return next_++;
    }
    return std::nullopt;
  }

 private:
  std::vector<std::pair<uint64_t, uint64_t>> spans_;  // [start, end)
  size_t i_ = 0;
  uint64_t next_;
  uint64_t end_;
};

bool Pass::is_lost(uint64_t ino) const {
  const InodeInfo& t = info_[ino];
  return ino != kRootIno && t.state == State::Live && !t.reachable && !t.orphan;
}

void Pass::handle_unreachable() {
  std::vector<uint64_t> lost;
  for (const Live& l : live_) {
    if (is_lost(l.ino)) lost.push_back(l.ino);
  }
  if (lost.empty()) return;
  auto unreachable = [&](uint64_t ino) {
    return fmt::format(
        "inode {}: in use with nlink {} but not reachable from the root", ino,
        info_[ino].nlink);
  };
  if (repair_) {
    for (uint64_t ino : lost) rep_.error(unreachable(ino));
  }
  std::vector<LostRoot> roots = find_lost_roots(lost);
  std::unordered_map<uint64_t, size_t> root_of;
  for (size_t i = 0; i < roots.size(); ++i) root_of[roots[i].ino] = i;

  if (!repair_) {
    // Plan on copies: what the rest of this pass sees stays as it is.
    const std::vector<InodeInfo> info = info_;
    const std::vector<Entry> entries = entries_;
    reconnect(roots);
    info_ = info;
    entries_ = entries;
    for (uint64_t ino : lost) {
      const LostRoot& r = roots[root_of.at(info_[ino].lost_root)];
      std::string verdict;
      if (r.ino == ino) {
        verdict =
            r.path.empty()
                ? fmt::format("would be freed ({})", r.failure)
                : fmt::format("would be reconnected to /lost+found (as {})",
                              r.path);
      } else {
        verdict = r.path.empty()
                      ? fmt::format(
                            "would be freed with its unreachable ancestor, "
                            "directory {} ({})",
                            r.ino, r.failure)
                      : fmt::format(
                            "would be reconnected to /lost+found with its "
                            "unreachable ancestor, directory {}",
                            r.ino);
      }
      rep_.error(unreachable(ino) + "; " + verdict);
    }
    return;
  }

  reconnect(roots);
  for (const LostRoot& r : roots) {
    if (!r.path.empty()) mark_reachable(r.ino);
  }
  for (uint64_t ino : lost) {
    if (info_[ino].reachable) continue;
    const LostRoot& r = roots[root_of.at(info_[ino].lost_root)];
    // Reconnected roots reach their whole subtree; anything left is freed
    // only when its root could not be reconnected (else the next pass
    // looks at it again).
    if (r.path.empty())
      free_inode(ino, fmt::format("unreachable; {}", r.failure));
  }
}

// The unreachable roots: unreachable inodes that no kept entry of another
// unreachable directory names, then, for what hangs from a cycle of
// unreachable directories, the lowest-numbered directory of the cycle
// (its entry in the cycle is dropped when it is reconnected). Sets
// lost_root of every unreachable inode. Each step marks at least one more
// inode, so this ends after at most lost.size() steps.
std::vector<Pass::LostRoot> Pass::find_lost_roots(
    const std::vector<uint64_t>& lost) {
  std::vector<LostRoot> roots;
  auto cover = [&](uint64_t root) {
    roots.push_back({root, {}, {}});
    info_[root].lost_root = root;
    std::vector<uint64_t> stack{root};
    while (!stack.empty()) {
      const uint64_t d = stack.back();
      stack.pop_back();
      if (info_[d].dtype != DT_DIR) continue;
      for_each_entry_of(d, [&](size_t i) {
        const Entry& e = entries_[i];
        if (!e.kept || !is_lost(e.ino) || info_[e.ino].lost_root != 0) return;
        info_[e.ino].lost_root = root;
        stack.push_back(e.ino);
      });
    }
  };
  for (uint64_t ino : lost) {
    if (!named(ino)) cover(ino);
  }
  // Everything still uncovered is named by an unreachable directory that
  // is itself named by one, and so on: following the names upwards ends in
  // a cycle.
  std::unordered_map<uint64_t, size_t> namer;  // inode -> a kept entry
  std::unordered_set<uint64_t> seen;
  for (uint64_t ino : lost) {
    if (info_[ino].lost_root != 0) continue;
    if (namer.empty()) {
      for (size_t i = 0; i < entries_.size(); ++i) {
        const Entry& e = entries_[i];
        if (e.kept && is_lost(e.ino)) namer.emplace(e.ino, i);
      }
    }
    auto up = [&](uint64_t x) -> uint64_t {
      auto it = namer.find(x);
      return it == namer.end() ? 0 : entries_[it->second].dir;
    };
    seen.clear();
    uint64_t cur = ino;
    bool cycle = false;
    for (;;) {
      if (!seen.insert(cur).second) {
        cycle = true;
        break;
      }
      const uint64_t p = up(cur);
      if (p == 0 || !is_lost(p) || info_[p].lost_root != 0) break;
      cur = p;
    }
    uint64_t pick = cur;
    if (cycle) {
      // Every member of the cycle has a namer; the walk is bounded by the
      // members seen.
      size_t steps = 0;
      for (uint64_t c = up(cur); c != 0 && c != cur && steps <= seen.size();
           c = up(c), ++steps)
        pick = std::min(pick, c);
    }
    cover(pick);
    if (info_[ino].lost_root == 0) cover(ino);  // defensive: always progress
  }
  return roots;
}

// Links every root into /lost+found (writing only when repairing); sets
// each root's path, or its failure.
void Pass::reconnect(std::vector<LostRoot>& roots) {
  BlockFinder blocks(claims_, sb_);
  std::string why;
  std::optional<DirSlots> lf = open_lost_found(blocks, &why);
  if (!lf) {
    for (LostRoot& r : roots) r.failure = why;
    if (repair_) {
      rep_.note(fmt::format(
          "unreachable inodes cannot be reconnected: {}; they are freed", why));
    }
    return;
  }
  std::unordered_set<std::string> names;
  for (const Entry& e : entries_) {
    if (e.dir == lf->ino) names.insert(e.name);
  }
  for (LostRoot& r : roots) reconnect_one(r, *lf, names, blocks);
  flush(*lf);
}

// /lost+found, found in the root or created there.
std::optional<Pass::DirSlots> Pass::open_lost_found(BlockFinder& blocks,
                                                    std::string* why) {
  static constexpr std::string_view kName = "lost+found";
  for (const Entry& e : entries_) {
    if (e.dir != kRootIno || !e.kept || e.name != kName) continue;
    const InodeInfo& t = info_[e.ino];
    if (t.state != State::Live || t.dtype != DT_DIR) {
      *why = fmt::format("/lost+found (inode {}) is not a directory", e.ino);
      return std::nullopt;
    }
    return load_dir_slots(e.ino);
  }
  // A slot free at the scan that nothing names, or an orphan's (freed by
  // now when repairing).
  uint64_t ino = 0;
  for (uint64_t i = kRootIno + 1; i < info_.size() && ino == 0; ++i) {
    const InodeInfo& t = info_[i];
    if ((t.state == State::Free && t.entries == 0) || t.orphan) ino = i;
  }
  if (ino == 0) {
    *why = "no free inode to create /lost+found";
    return std::nullopt;
  }
  DirSlots root = load_dir_slots(kRootIno);
  auto off = add_entry(root, kName, ino, DT_DIR, blocks);
  if (!off) {
    *why = "no free block to add /lost+found to the root directory";
    return std::nullopt;
  }
  const timespec now = now_ts();
  DirSlots lf;
  lf.ino = ino;
  lf.d.flags = kInodeInUse;
  lf.d.mode = S_IFDIR | 0700;
  lf.d.nlink = 2;
  lf.d.generation = read_inode(ino).generation + 1;
  if (lf.d.generation == 0) lf.d.generation = 1;
  lf.d.atime_sec = lf.d.mtime_sec = lf.d.ctime_sec = now.tv_sec;
  lf.d.atime_nsec = lf.d.mtime_nsec = lf.d.ctime_nsec =
      static_cast<uint32_t>(now.tv_nsec);
  lf.d.parent = kRootIno;
  lf.dirty = true;
  flush(lf);
  bump_nlink(&root.d.nlink);
  touch(&root.d, now);
  root.dirty = true;
  flush(root);

  entries_.push_back({kRootIno, ino, *off, 1, true, std::string(kName)});
  InodeInfo& t = info_[ino];
  t = InodeInfo{};
  t.state = State::Live;
  t.dtype = DT_DIR;
  t.nlink = 2;
  t.entries = 1;
  t.name_entry = uint32_t(entries_.size());
  t.parent = kRootIno;
  t.reachable = true;
  ++info_[kRootIno].subdirs;
  bump_nlink(&info_[kRootIno].nlink);
  if (repair_) {
    rep_.repair(fmt::format(
        "/lost+found: created as inode {} (directory, mode 0700, owner root)",
        ino));
  }
  return lf;
}

void Pass::reconnect_one(LostRoot& r, DirSlots& lf,
                         std::unordered_set<std::string>& names,
                         BlockFinder& blocks) {
  std::string name = fmt::format("#{}", r.ino);
  for (int k = 1; names.count(name) != 0; ++k) {
    if (k > 1000) {
      r.failure = "no free name for it in /lost+found";
      return;
    }
    name = fmt::format("#{}.{}", r.ino, k);
  }
  InodeInfo& t = info_[r.ino];
  auto off = add_entry(lf, name, r.ino, t.dtype, blocks);
  if (!off) {
    r.failure = "no free block for another entry in /lost+found";
    return;
  }
  names.insert(name);
  std::string dropped;
  if (t.dtype == DT_DIR && t.name_entry != 0) {
    // A directory has one name: its entry in the cycle it closed goes.
    // Its directory loses a subdirectory: one link less.
    Entry& e = entries_[t.name_entry - 1];
    InodeInfo& from = info_[e.dir];
    if (repair_) {
      zero(e.off, e.nslots * kDirSlotSize);
      DiskInode fd = read_inode(e.dir);
      if (fd.nlink > 0) --fd.nlink;
      seal(&fd);
      view_.write_pool(ioff(e.dir), &fd, sizeof(fd));
    }
    e.kept = false;
    if (from.subdirs > 0) --from.subdirs;
    if (from.nlink > 0) --from.nlink;
    if (t.entries > 0) --t.entries;
    dropped = fmt::format(
        "; its entry {} in unreachable directory {}, which closed a cycle, "
        "removed",
        quote(e.name), e.dir);
  }
  // Read after the cut: a directory whose entry names itself is a cycle
  // of one, and the cut wrote this inode.
  DiskInode d = read_inode(r.ino);
  entries_.push_back(
      {lf.ino, r.ino, *off, uint8_t(dirent_slots(name.size())), true, name});
  ++t.entries;
  uint64_t nlink = t.entries;
  if (t.dtype == DT_DIR) {
    t.name_entry = uint32_t(entries_.size());
    nlink = 2 + uint64_t(t.subdirs);
    d.parent = lf.ino;
    t.parent = lf.ino;
    ++info_[lf.ino].subdirs;
    bump_nlink(&info_[lf.ino].nlink);
    bump_nlink(&lf.d.nlink);
  }
  d.nlink = uint32_t(std::min<uint64_t>(nlink, UINT32_MAX));
  t.nlink = d.nlink;
  touch(&lf.d, now_ts());
  lf.dirty = true;
  r.path = "/lost+found/" + name;
  if (repair_) {
    seal(&d);
    view_.write_pool(ioff(r.ino), &d, sizeof(d));
    rep_.repair(fmt::format("inode {}: reconnected as {} ({}, {} bytes{})",
                            r.ino, r.path, type_name(t.dtype), d.size,
                            dropped));
  }
}

// Writes a directory's inode when it changed (repair only).
void Pass::flush(DirSlots& s) {
  if (repair_ && s.dirty) {
    seal(&s.d);
    view_.write_pool(ioff(s.ino), &s.d, sizeof(s.d));
  }
  s.dirty = false;
}

// Reads a directory's chain as it lies now (this pass's repairs done): a
// slot is taken when an entry header covers it, as mount reads it. Stops
// at the first block that is not a valid block of this directory (only
// possible read-only: repair has cut the chain there).
Pass::DirSlots Pass::load_dir_slots(uint64_t ino) {
  DirSlots s;
  s.ino = ino;
  s.d = read_inode(ino);
  std::unordered_set<uint64_t> visited;
  for (uint64_t b = s.d.dir_head;
       b != 0 && in_data(b) && visited.insert(b).second;) {
    auto h = view_.get<DirBlockHeader>(b * kBlockSize);
    if (h.magic != kDirBlockMagic || h.csum != csum_of(h) || h.ino != ino)
      break;
    uint64_t used = 0;
    for (size_t slot = 0; slot < kDirSlots;) {
      auto e =
          view_.get<DirentHeader>(b * kBlockSize + (slot + 1) * kDirSlotSize);
      if (e.nslots == 0) {
        ++slot;
        continue;
      }
      const size_t n = std::min<size_t>(e.nslots, kDirSlots - slot);
      used |= ((uint64_t(1) << n) - 1) << slot;
      slot += n;
    }
    s.blocks.push_back(b);
    s.used.push_back(used);
    b = h.next;
  }
  return s;
}

// Adds an entry to a directory, appending a block (zeroed, header sealed)
// when no block has room. Returns the pool offset of its DirentHeader, or
// nothing when no block is free. Writes only when repairing.
std::optional<uint64_t> Pass::add_entry(DirSlots& s, std::string_view name,
                                        uint64_t ino, uint8_t dtype,
                                        BlockFinder& blocks) {
  const size_t need = dirent_slots(name.size());
  const uint64_t mask = (uint64_t(1) << need) - 1;
  size_t idx = s.blocks.size();
  size_t slot = 0;
  for (size_t i = s.first_open; i < s.blocks.size() && idx == s.blocks.size();
       ++i) {
    if (i == s.first_open && s.used[i] == kAllSlots) {
      ++s.first_open;
      continue;
    }
    for (size_t k = 0; k + need <= kDirSlots; ++k) {
      if ((s.used[i] & (mask << k)) == 0) {
        idx = i;
        slot = k;
        break;
      }
    }
  }
  if (idx == s.blocks.size()) {
    auto b = blocks.take();
    if (!b) return std::nullopt;
    if (repair_) {
      zero(*b * kBlockSize, kBlockSize);
      DirBlockHeader h{};
      h.magic = kDirBlockMagic;
      h.ino = s.ino;
      h.csum = csum_of(h);
      view_.write_pool(*b * kBlockSize, &h, sizeof(h));
    }
    if (s.blocks.empty()) {
      s.d.dir_head = *b;
      s.dirty = true;
      flush(s);
    } else if (repair_) {
      const uint64_t last = s.blocks.back() * kBlockSize;
      auto lh = view_.get<DirBlockHeader>(last);
      lh.next = *b;
      lh.csum = csum_of(lh);
      view_.write_pool(last, &lh, sizeof(lh));
    }
    s.blocks.push_back(*b);
    s.used.push_back(0);
  }
  const uint64_t off = s.blocks[idx] * kBlockSize + (slot + 1) * kDirSlotSize;
  if (repair_) {
    std::array<std::byte, kDirSlotSize * 5> buf{};
    DirentHeader h{};
    h.nslots = static_cast<uint8_t>(need);
    h.type = dtype;
    h.namelen = static_cast<uint16_t>(name.size());
    h.ino = ino;
    std::memcpy(buf.data(), &h, sizeof(h));
    std::memcpy(buf.data() + sizeof(h), name.data(), name.size());
    h.csum = crc32c(buf.data(), sizeof(h) + name.size());
    std::memcpy(buf.data(), &h.csum, sizeof(h.csum));
    view_.write_pool(off, buf.data(), need * kDirSlotSize);
  }
  s.used[idx] |= mask << slot;
  return off;
}

}  // namespace zest::pmfs::fsck_internal
