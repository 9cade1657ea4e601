// What fsck's checks share (private to pmfs/fsck.cc and pmfs/fsck/): small
// helpers, the checks that run before the passes (superblock.cc,
// journal.cc), and Pass: one pass over the inode table and everything it
// points to, whose steps are defined one file each:
//   1. inodes.cc          inode slots;
//   2. extents.cc         what each live inode points to, inode by inode in
//      directories.cc     one loop (walk_contents, fsck.cc): extent chains,
//      xattrs.cc          directory chains and entries, xattr chains;
//   3. blocks.cc          block ownership across the pool;
//   4. connectivity.cc    the directory tree: links, parents, link counts,
//                         reachability, orphans;
//   5. lost_found.cc      unreachable inodes reconnected under /lost+found;
//   repair.cc             the repair primitives the steps share.
// Pass::run (fsck.cc) fixes the order; each step relies on what the steps
// before it established, and says so at the top of its file.
#pragma once

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pmfs/format.h"
#include "pmfs/fsck.h"
#include "pmfs/fsck/reporter.h"
#include "pmfs/fsck/view.h"
#include "pmfs/layout.h"

namespace zest::pmfs::fsck_internal {

// The largest size of any inode: st_size is an off_t.
constexpr uint64_t kMaxFileSize = uint64_t(INT64_MAX);

template <class T>
uint32_t csum_of(const T& v) {
  T copy = v;
  copy.csum = 0;
  return crc32c(&copy, sizeof(copy));
}

inline bool all_zero(const void* p, size_t len) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < len; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

// A name as it may be printed: printable ASCII kept, the rest escaped, long
// names cut.
inline std::string quote(std::string_view name) {
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : name) {
    if (++n > 64) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out + "'";
}

// DT_* of a mode's file type, 0 when the type is not a valid one.
inline uint8_t dtype_of(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return DT_REG;
    case S_IFDIR:
      return DT_DIR;
    case S_IFLNK:
      return DT_LNK;
    case S_IFCHR:
      return DT_CHR;
    case S_IFBLK:
      return DT_BLK;
    case S_IFIFO:
      return DT_FIFO;
    case S_IFSOCK:
      return DT_SOCK;
    default:
      return 0;
  }
}

// Region of a block number, for messages about pointers that leave the data
// region.
inline std::string region_of(const Superblock& sb, uint64_t block) {
  if (block < 2) return "the superblocks";
  if (block >= sb.journal_start && block < sb.journal_start + sb.journal_blocks)
    return "the journal";
  if (block >= sb.itable_start && block < sb.itable_start + sb.itable_blocks)
    return "the inode table";
  if (block >= sb.total_blocks) return "beyond the end of the pool";
  if (block >= sb.data_start) return "the data region";
  return "reserved blocks";
}

// --- pass 0: superblocks (superblock.cc) and journal (journal.cc) ----------

// Returns the superblock to use, or nothing when neither copy is valid.
std::optional<Superblock> check_superblocks(View& view, bool repair,
                                            Reporter& rep, FsckReport* report);
// Replays a committed, unapplied transaction: into the View's private
// overlay when checking, into the pool when repairing.
void check_journal(View& view, const Superblock& sb, bool repair,
                   Reporter& rep);
// After the repair passes: retires a replayed transaction that repairs have
// since overwritten, so that mount does not replay it over them.
void retire_stale_journal(View& view, const Superblock& sb, Reporter& rep);

// --- one pass over the inodes and everything they point to -----------------

enum class Kind : uint8_t {
  Data,
  ExtentBlock,
  DirBlock,
  XattrTable,
  XattrSlotBlock,
  XattrRecord,
  XattrSlotRecord
};

// A run of blocks some structure claims. `ref` says what points at it, so a
// repair can drop the claim: Data: pool offset of the DiskExtent;
// ExtentBlock/DirBlock/XattrTable/XattrSlotBlock: the previous chain block
// (0: the inode's head); XattrRecord: pool offset of the XattrEntry;
// XattrSlotRecord: pool offset of the slot entry. `parent`, when set, is
// the claim of the block holding that pointer: dropping that one already
// took this claim out of the chain, so this one is not repaired again.
struct Claim {
  uint64_t start;
  uint64_t count;
  uint64_t ino;
  uint64_t ref;
  uint64_t file_block;  // Data only
  Kind kind;
  bool dropped = false;
  size_t parent = SIZE_MAX;
};

enum class State : uint8_t { Free, Bad, Live };

struct InodeInfo {
  State state = State::Free;
  uint8_t dtype = 0;
  uint32_t nlink = 0;
  uint32_t entries = 0;  // valid entries naming this inode, in any directory
  uint32_t subdirs = 0;  // directories: kept entries that name directories
  uint32_t name_entry =
      0;  // directories: index + 1 of the entry kept as its name
  uint64_t parent = 0;
  bool reachable = false;
  bool orphan = false;     // in use, nlink 0, no name: freed, not reconnected
  uint64_t lost_root = 0;  // unreachable: the top of its unreachable subtree
};

struct Entry {
  uint64_t dir;
  uint64_t ino;
  uint64_t off;  // pool offset of the DirentHeader
  uint8_t nslots;
  bool kept = true;
  std::string name;
};

// One pass (see the top of this file for its steps and their files). A
// read-only check makes one; repair makes one per round until a round
// changes nothing (fsck.cc). Repairs are made as errors are found, so each
// step sees the pool, and the bookkeeping below, as the steps before it
// left them.
class Pass {
 public:
  Pass(View& view, const Superblock& sb, bool repair, Reporter& rep,
       FsckReport* stats)
      : view_(view), sb_(sb), repair_(repair), rep_(rep), stats_(stats) {}

  void run();  // fsck.cc
  // Feature bits this pass set in the superblocks (repair).
  uint64_t features_set() const { return features_set_; }

 private:
  struct Live {
    uint64_t ino;
    DiskInode d;
  };

  bool in_data(uint64_t block, uint64_t count = 1) const {
    return block >= sb_.data_start && block < sb_.total_blocks && count >= 1 &&
           count <= sb_.total_blocks - block;
  }
  std::string outside(uint64_t block, uint64_t count) const {
    if (block < sb_.data_start || block >= sb_.total_blocks) {
      return fmt::format("block {} is in {}", block, region_of(sb_, block));
    }
    return fmt::format(
        "blocks {}+{} reach past the end of the pool ({} blocks)", block, count,
        sb_.total_blocks);
  }
  uint64_t ioff(uint64_t ino) const { return inode_offset(sb_, ino); }
  DiskInode read_inode(uint64_t ino) const {
    return view_.get<DiskInode>(ioff(ino));
  }

  // --- repair primitives (repair.cc): each writes and persists through the
  // pool, and only when repairing.
  template <class F>
  void patch_inode(uint64_t ino, F&& change, const std::string& what) {
    if (!repair_) return;
    DiskInode d = read_inode(ino);
    change(d);
    seal(&d);
    view_.write_pool(ioff(ino), &d, sizeof(d));
    rep_.repair(fmt::format("inode {}: {}", ino, what));
  }
  void free_inode(uint64_t ino, const std::string& why);
  void rebuild_root(const std::string& why);
  void zero(uint64_t off, size_t len);
  void cut_chain(uint64_t ino, uint64_t prev, Kind kind, uint64_t block);

  // --- 1. inode slots (inodes.cc) --------------------------------------------
  void scan_inodes();
  void check_inode(uint64_t ino);
  static bool has_extents(const DiskInode& d);
  static const char* type_name(uint8_t dtype);

  // --- 2. what each live inode points to (walk_contents: fsck.cc) ------------
  void walk_contents();
  // What is wrong with chain block `b` of `owner` (empty: nothing), reading
  // its header into *h: outside the data region, seen before (a cycle),
  // bad magic or checksum, or another inode's.
  template <class Header>
  std::string chain_block_problem(uint64_t b, uint32_t magic, uint64_t owner,
                                  std::unordered_set<uint64_t>& visited,
                                  Header* h) {
    if (!in_data(b)) {
      return fmt::format("points outside the data region ({})", outside(b, 1));
    }
    if (!visited.insert(b).second) return "loops back (cycle)";
    *h = view_.get<Header>(b * kBlockSize);
    if (h->magic != magic) return fmt::format("has bad magic {:#x}", h->magic);
    if (h->csum != csum_of(*h)) return "has a bad header checksum";
    if (h->ino != owner) return fmt::format("belongs to inode {}", h->ino);
    return {};
  }

  // extents.cc
  struct FileExtent;
  void walk_extents(const Live& l);
  bool check_symlink_extents(const Live& l, std::vector<FileExtent>& extents,
                             std::vector<bool>& dropped);
  void drop_extent(uint64_t ino, uint64_t off, uint64_t file_block,
                   uint64_t count, const char* why);
  void check_extent(uint64_t ino, uint64_t b, size_t slot, uint64_t off,
                    std::vector<FileExtent>* extents);
  // directories.cc
  void walk_dir(uint64_t dir, uint64_t head);
  size_t check_dirent(uint64_t dir, uint64_t b, size_t slot,
                      std::unordered_map<std::string, uint64_t>* names);
  void clear_dirent(uint64_t dir, uint64_t off, size_t nslots,
                    const std::string& why);
  // xattrs.cc
  void walk_xattrs(uint64_t ino, uint64_t head);
  void check_xattr_table(uint64_t ino, uint64_t table, size_t table_claim,
                         std::unordered_set<std::string>* names);
  size_t check_xattr_slot(uint64_t ino, uint64_t b, size_t slot,
                          size_t block_claim,
                          std::unordered_set<std::string>* names);
  std::string xattr_record_problem(uint64_t block, uint32_t nblocks,
                                   std::string* name, uint32_t* valuelen,
                                   uint64_t* need);
  std::string xattr_name_problem(const std::string& name,
                                 std::unordered_set<std::string>* names);
  void check_xattr_feature();

  // --- 3. block ownership across the pool (blocks.cc) ------------------------
  size_t claim(uint64_t start, uint64_t count, uint64_t ino, uint64_t ref,
               Kind kind, uint64_t file_block = 0);
  std::string owner(const Claim& c) const;
  void drop_claim(const Claim& c);
  void check_ownership();

  // --- 4. the directory tree (connectivity.cc) -------------------------------
  void check_tree();
  void check_links(uint64_t ino);
  bool named(uint64_t ino) const;
  // Calls f(index into entries_) for every entry of directory `dir` found by
  // walk_dir (kept or not).
  template <class F>
  void for_each_entry_of(uint64_t dir, F&& f) {
    auto lo = std::lower_bound(
        by_dir_.begin(), by_dir_.end(), dir,
        [&](size_t i, uint64_t v) { return entries_[i].dir < v; });
    for (auto it = lo; it != by_dir_.end() && entries_[*it].dir == dir; ++it)
      f(*it);
  }
  void mark_reachable(uint64_t from);
  void free_orphans();

  // --- 5. unreachable inodes: reconnected under /lost+found (lost_found.cc) --
  struct LostRoot;
  struct DirSlots;
  class BlockFinder;
  bool is_lost(uint64_t ino) const;
  void handle_unreachable();
  std::vector<LostRoot> find_lost_roots(const std::vector<uint64_t>& lost);
  void reconnect(std::vector<LostRoot>& roots);
  std::optional<DirSlots> open_lost_found(BlockFinder& blocks,
                                          std::string* why);
  void reconnect_one(LostRoot& r, DirSlots& lf,
                     std::unordered_set<std::string>& names,
                     BlockFinder& blocks);
  void flush(DirSlots& s);
  DirSlots load_dir_slots(uint64_t ino);
  std::optional<uint64_t> add_entry(DirSlots& s, std::string_view name,
                                    uint64_t ino, uint8_t dtype,
                                    BlockFinder& blocks);

  View& view_;
  const Superblock& sb_;
  const bool repair_;
  Reporter& rep_;
  FsckReport* stats_;
  bool root_ok_ = false;
  std::vector<InodeInfo> info_;  // by inode number; [0] unused
  std::vector<Live> live_;
  std::vector<Claim> claims_;
  std::vector<Entry> entries_;
  std::vector<size_t> by_dir_;  // indices into entries_, by directory
  bool xattr_chains_ = false;   // slot blocks or chained tables seen
  uint64_t features_set_ = 0;
  std::vector<std::byte> scratch_;  // an xattr record being checked
};

}  // namespace zest::pmfs::fsck_internal
