// Step 4 of each pass: the directory tree (e2fsck's passes 3 and 4). Each
// directory keeps one name (preferably the entry in the directory its
// parent field names); any other entry naming it is a hard link to a
// directory and is cleared. Then, from the root over the kept entries:
// what is reachable; orphans (in use, nlink 0, no name: legal, mount frees
// them) are freed with their entries; and every reachable inode's link
// count, and every directory's parent field, is checked against the tree.
// What is not reachable goes to lost_found.cc (step 5); what it reconnects
// is checked here once more.
//
// Assumes directories.cc recorded every valid entry (entries_), each naming
// an inode inodes.cc found live, with its type right, and that inodes.cc
// found whether the root is an in-use directory (root_ok_): without one,
// only the hard links to directories are checked, since every verdict on
// reachability or link counts would be noise.
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

void Pass::check_tree() {
  rep_.progress("checking directory tree and link counts");
  // Which entry names each directory: preferably the one in the directory
  // its `parent` field names, else the first found. Any other entry naming
  // a directory is a hard link to a directory, which POSIX forbids.
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    InodeInfo& t = info_[e.ino];
    ++t.entries;
    if (t.dtype == DT_DIR && t.name_entry == 0 && t.parent == e.dir)
      t.name_entry = uint32_t(i + 1);
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    InodeInfo& t = info_[e.ino];
    if (t.dtype != DT_DIR) continue;
    if (t.name_entry == 0) t.name_entry = uint32_t(i + 1);
    if (t.name_entry != i + 1) {
      const Entry& named = entries_[t.name_entry - 1];
      rep_.error(fmt::format(
          "directory {}: entry {} is a second link to directory {} "
          "(already named {} in directory {})",
          e.dir, quote(e.name), e.ino, quote(named.name), named.dir));
      clear_dirent(e.dir, e.off, e.nslots, "hard link to a directory");
      e.kept = false;
      continue;
    }
    ++info_[e.dir].subdirs;
  }

  // Reachability: breadth first from the root over kept entries.
  by_dir_.resize(entries_.size());
  for (size_t i = 0; i < by_dir_.size(); ++i) by_dir_[i] = i;
  std::stable_sort(by_dir_.begin(), by_dir_.end(), [&](size_t a, size_t b) {
    return entries_[a].dir < entries_[b].dir;
  });
  if (root_ok_) mark_reachable(kRootIno);

  // Without a root every link count and reachability verdict would be
  // noise (and repairing by them would destroy the tree): the root is
  // rebuilt first and the next pass decides.
  if (!root_ok_) return;
  free_orphans();
  // Link counts and parents of the tree as it is, then of what is
  // reconnected (reconnection keeps the counts it touches exact, so what
  // is reported is what was wrong before).
  for (const Live& l : live_) {
    const InodeInfo& t = info_[l.ino];
    if (t.state == State::Live && !t.orphan && t.reachable) check_links(l.ino);
  }
  handle_unreachable();
  for (const Live& l : live_) {
    const InodeInfo& t = info_[l.ino];
    if (t.state == State::Live && t.lost_root != 0 && t.reachable)
      check_links(l.ino);
  }
}

// A reachable inode's link count against its names (directories: their
// subdirectories), and a directory's parent against the entry naming it.
void Pass::check_links(uint64_t ino) {
  InodeInfo& t = info_[ino];
  const bool dir = t.dtype == DT_DIR;
  const uint64_t expected = dir ? 2 + uint64_t(t.subdirs) : t.entries;
  if (t.nlink != expected) {
    if (dir) {
      rep_.error(
          fmt::format("directory {}: nlink {} but it has {} subdirectories "
                      "(expected {})",
                      ino, t.nlink, t.subdirs, expected));
    } else {
      rep_.error(
          fmt::format("inode {}: nlink {} but {} directory entries refer to it",
                      ino, t.nlink, t.entries));
    }
    if (expected <= UINT32_MAX) {
      patch_inode(
          ino, [&](DiskInode& x) { x.nlink = uint32_t(expected); },
          fmt::format("nlink set to {}", expected));
      if (repair_) t.nlink = uint32_t(expected);
    }
  }
  if (dir && named(ino)) {
    uint64_t want = ino == kRootIno ? kRootIno : entries_[t.name_entry - 1].dir;
    if (t.parent != want) {
      rep_.error(fmt::format(
          "directory {}: parent {} but {}", ino, t.parent,
          ino == kRootIno ? "the root is its own parent"
                          : fmt::format("it is named in directory {}", want)));
      patch_inode(
          ino, [&](DiskInode& x) { x.parent = want; },
          fmt::format("parent set to {}", want));
      if (repair_) t.parent = want;
    }
  }
}

// Whether a kept entry names the inode (the root always counts as named).
bool Pass::named(uint64_t ino) const {
  const InodeInfo& t = info_[ino];
  if (t.dtype == DT_DIR) return ino == kRootIno || t.name_entry != 0;
  return t.entries > 0;
}

// Marks `from` and everything below it reachable, over kept entries.
void Pass::mark_reachable(uint64_t from) {
  std::vector<uint64_t> queue{from};
  info_[from].reachable = true;
  for (size_t q = 0; q < queue.size(); ++q) {
    for_each_entry_of(queue[q], [&](size_t i) {
      const Entry& e = entries_[i];
      if (!e.kept) return;
      InodeInfo& t = info_[e.ino];
      if (t.reachable) return;
      t.reachable = true;
      if (t.dtype == DT_DIR) queue.push_back(e.ino);
    });
  }
}

// In use, nlink 0 and no name: legal (unlinked while open; mount frees
// it). Freed here, never reconnected. A directory's entries go with it.
void Pass::free_orphans() {
  for (const Live& l : live_) {
    const uint64_t ino = l.ino;
    InodeInfo& t = info_[ino];
    if (t.state != State::Live || ino == kRootIno || t.nlink != 0 || named(ino))
      continue;
    t.orphan = true;
    // rmdir only unlinks an empty directory: an orphan directory with
    // entries is damage (mount refuses it), not a directory still open.
    size_t kept = 0;
    if (t.dtype == DT_DIR) {
      for_each_entry_of(ino, [&](size_t i) { kept += entries_[i].kept; });
    }
    if (kept != 0) {
      rep_.error(fmt::format(
          "directory {}: nlink 0 and no name, but it holds {} entries", ino,
          kept));
    } else {
      rep_.note(fmt::format(
          "inode {}: orphan (in use, nlink 0); mount frees it", ino));
    }
    free_inode(ino, "orphan");
    if (t.dtype != DT_DIR) continue;
    for_each_entry_of(ino, [&](size_t i) {
      Entry& e = entries_[i];
      if (!e.kept) return;
      e.kept = false;
      InodeInfo& c = info_[e.ino];
      if (c.entries > 0) --c.entries;
      if (c.name_entry == i + 1) c.name_entry = 0;
    });
  }
}

}  // namespace zest::pmfs::fsck_internal
