// fsck for pmfs. fsck.h states what it promises and the repair policy; this
// file is organised as the check runs:
//   1. superblocks (pick the valid copy, compare the other);
//   2. the journal (a committed, unapplied transaction is replayed: into a
//      private overlay when checking, into the pool when repairing);
//   3. one or more passes over the inode table and everything it points to
//      (Pass): inode slots, extent chains, directory chains, xattr tables,
//      block ownership across the pool, then the directory tree (links,
//      parents, link counts, reachability), and unreachable inodes
//      reconnected under /lost+found.
// Nothing is read in place: every structure is copied out of the View and
// checked there, so a concurrent or malicious writer cannot change it
// between check and use, and unaligned garbage is harmless.
#include "pmfs/fsck.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "pmem/pool.h"
#include "pmfs/format.h"
#include "pmfs/layout.h"

namespace zest::pmfs {

int FsckReport::exit_code() const {
  if (operational_error) return 8;
  if (!uncorrected.empty()) return 4;
  if (!repairs.empty()) return 1;
  return 0;
}

namespace {

// More messages than this are counted, not stored (a pool of garbage would
// otherwise produce one per slot).
constexpr size_t kMaxMessages = 10000;
// Repair passes before giving up on reaching a fixed point.
constexpr int kMaxRepairPasses = 8;
// File block numbers whose byte offsets still fit in off_t.
constexpr uint64_t kMaxFileBlocks = (uint64_t(1) << 63) / kBlockSize;
// The largest size of any inode: st_size is an off_t.
constexpr uint64_t kMaxFileSize = uint64_t(INT64_MAX);
// Linux refuses longer symlink targets (PATH_MAX including the NUL).
constexpr uint64_t kMaxSymlinkSize = 4095;
constexpr uint64_t kMaxXattrRecord =
    sizeof(XattrRecordHeader) + 255 + kXattrMaxValue;
constexpr uint64_t kMaxXattrBlocks =
    (kMaxXattrRecord + kBlockSize - 1) / kBlockSize;

template <class T>
uint32_t csum_of(const T& v) {
  T copy = v;
  copy.csum = 0;
  return crc32c(&copy, sizeof(copy));
}

bool all_zero(const void* p, size_t len) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < len; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

// A name as it may be printed: printable ASCII kept, the rest escaped, long
// names cut.
std::string quote(std::string_view name) {
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
uint8_t dtype_of(uint32_t mode) {
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

// The bytes fsck reads: the pool or image, plus a private copy-on-write
// overlay of whole blocks (read-only journal replay), plus, when repairing,
// the PoolMap that every repair is written and persisted through.
class View {
 public:
  View(const std::byte* base, uint64_t size, pmem::PoolMap* pool)
      : base_(base), size_(size), pool_(pool) {}

  uint64_t size() const { return size_; }
  bool fits(uint64_t off, uint64_t len) const {
    return off <= size_ && len <= size_ - off;
  }
  bool writable() const { return pool_ != nullptr && !pool_->read_only(); }

  // Copies [off, off + len) out; bytes outside the pool read as zero (callers
  // check bounds first; this is the last line of defence).
  void read(uint64_t off, void* dst, size_t len) const {
    auto* out = static_cast<std::byte*>(dst);
    if (!fits(off, len)) {
      std::memset(out, 0, len);
      if (off >= size_) return;
      len = size_ - off;
    }
    if (overlay_.empty()) {
      std::memcpy(out, base_ + off, len);
      return;
    }
    while (len > 0) {
      uint64_t block = off / kBlockSize;
      uint64_t in = off % kBlockSize;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, kBlockSize - in));
      auto it = overlay_.find(block);
      const std::byte* src =
          it != overlay_.end() ? it->second->data() + in : base_ + off;
      std::memcpy(out, src, n);
      out += n;
      off += n;
      len -= n;
    }
  }
  template <class T>
  T get(uint64_t off) const {
    T v;
    read(off, &v, sizeof(v));
    return v;
  }

  // Stores into the private overlay only (the pool is never touched).
  void write_private(uint64_t off, const void* src, size_t len) {
    if (!fits(off, len)) return;
    auto* in = static_cast<const std::byte*>(src);
    while (len > 0) {
      uint64_t block = off / kBlockSize;
      uint64_t at = off % kBlockSize;
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, kBlockSize - at));
      auto& copy = overlay_[block];
      if (!copy) {
        copy = std::make_unique<std::array<std::byte, kBlockSize>>();
        uint64_t start = block * kBlockSize;
        size_t have =
            static_cast<size_t>(std::min<uint64_t>(kBlockSize, size_ - start));
        std::memcpy(copy->data(), base_ + start, have);
      }
      std::memcpy(copy->data() + at, in, n);
      in += n;
      off += n;
      len -= n;
    }
  }

  // Stores into the pool, persistently. Only called when writable().
  void write_pool(uint64_t off, const void* src, size_t len) {
    if (!writable() || !fits(off, len)) return;
    pool_->write(off, src, len);
    pool_->persist(off, len);
  }

 private:
  const std::byte* base_;
  uint64_t size_;
  pmem::PoolMap* pool_;
  std::unordered_map<uint64_t,
                     std::unique_ptr<std::array<std::byte, kBlockSize>>>
      overlay_;
};

// Collects messages into the report: errors (deduplicated, so that a repair
// pass that meets an error again does not repeat it), repairs and notes,
// with the cap, and echoes them when verbose.
class Reporter {
 public:
  Reporter(FsckReport* report, const FsckOptions& options)
      : report_(report), options_(options), errors_(&report->errors) {}

  // From now on errors go to `out` (the final verification pass uses
  // report->uncorrected).
  void send_errors_to(std::vector<std::string>* out) {
    finish();
    errors_ = out;
    seen_.clear();
  }

  void error(std::string msg) {
    if (!seen_.insert(msg).second) return;
    if (errors_->size() >= kMaxMessages) {
      ++dropped_;
      return;
    }
    if (options_.verbose) progress("error: " + msg);
    errors_->push_back(std::move(msg));
  }
  void repair(std::string msg) {
    if (options_.verbose) progress("repair: " + msg);
    if (report_->repairs.size() < kMaxMessages)
      report_->repairs.push_back(std::move(msg));
    ++repairs_made_;
  }
  void note(std::string msg) {
    if (options_.verbose) progress("note: " + msg);
    if (report_->notes.size() < kMaxMessages)
      report_->notes.push_back(std::move(msg));
  }
  void progress(const std::string& msg) const {
    if (options_.progress) options_.progress(msg);
  }
  uint64_t repairs_made() const { return repairs_made_; }

  // Appends the count of errors that did not fit.
  void finish() {
    if (dropped_ > 0) {
      errors_->push_back(fmt::format("... and {} more errors", dropped_));
      dropped_ = 0;
    }
  }

 private:
  FsckReport* report_;
  const FsckOptions& options_;
  std::vector<std::string>* errors_;
  std::unordered_set<std::string> seen_;
  uint64_t dropped_ = 0;
  uint64_t repairs_made_ = 0;
};

// Region of a block number, for messages about pointers that leave the data
// region.
std::string region_of(const Superblock& sb, uint64_t block) {
  if (block < 2) return "the superblocks";
  if (block >= sb.journal_start && block < sb.journal_start + sb.journal_blocks)
    return "the journal";
  if (block >= sb.itable_start && block < sb.itable_start + sb.itable_blocks)
    return "the inode table";
  if (block >= sb.total_blocks) return "beyond the end of the pool";
  if (block >= sb.data_start) return "the data region";
  return "reserved blocks";
}

// superblock_valid() plus checks that its sums do not wrap (a checksummed
// but hostile superblock could otherwise place the journal at 2^64 - 5).
bool geometry_sane(const Superblock& sb, std::string* why) {
  uint64_t total = sb.total_blocks;
  bool ok = sb.journal_start < total &&
            sb.journal_blocks <= total - sb.journal_start &&
            sb.itable_start < total &&
            sb.itable_blocks <= total - sb.itable_start &&
            sb.data_start <= total &&
            sb.inode_count / kInodesPerBlock == sb.itable_blocks;
  if (!ok) *why = "superblock geometry overflows the pool";
  return ok;
}

// --- superblocks ------------------------------------------------------------

// Returns the superblock to use, or nothing when neither copy is valid.
std::optional<Superblock> check_superblocks(View& view, bool repair,
                                            Reporter& rep, FsckReport* report) {
  rep.progress("checking superblocks");
  if (view.size() < 2 * kBlockSize) {
    rep.error(fmt::format(
        "pool of {} bytes is too small to hold two superblocks", view.size()));
    report->operational_error = true;
    return std::nullopt;
  }
  Superblock copy[2];
  bool valid[2];
  std::string why[2];
  for (int i = 0; i < 2; ++i) {
    copy[i] = view.get<Superblock>(i * kBlockSize);
    valid[i] = superblock_valid(copy[i], view.size(), &why[i]) &&
               geometry_sane(copy[i], &why[i]);
  }
  const char* names[2] = {"superblock A (block 0)", "superblock B (block 1)"};
  if (!valid[0] && !valid[1]) {
    rep.error(fmt::format("no valid superblock: {}: {}; {}: {}", names[0],
                          why[0], names[1], why[1]));
    // Neither copy even has the magic: this is not a pmfs pool at all.
    if (copy[0].magic != kMagic && copy[1].magic != kMagic)
      report->operational_error = true;
    return std::nullopt;
  }
  int good = valid[0] ? 0 : 1;
  const Superblock& sb = copy[good];

  std::array<std::byte, kBlockSize> block;
  for (int i = 0; i < 2; ++i) {
    std::string problem;
    if (!valid[i]) {
      problem = why[i];
    } else if (std::memcmp(&copy[i], &sb, sizeof(sb)) != 0) {
      problem = fmt::format("differs from {}", names[good]);
    } else {
      view.read(i * kBlockSize, block.data(), kBlockSize);
      if (!all_zero(block.data() + sizeof(Superblock),
                    kBlockSize - sizeof(Superblock))) {
        problem = "bytes after the superblock are not zero";
      }
    }
    if (problem.empty()) continue;
    rep.error(fmt::format("{}: {}", names[i], problem));
    if (repair) {
      block.fill(std::byte{0});
      std::memcpy(block.data(), &sb, sizeof(sb));
      view.write_pool(i * kBlockSize, block.data(), kBlockSize);
      report->superblock_repaired = true;
      rep.repair(fmt::format("{}: rewritten from {}", names[i], names[good]));
    }
  }
  if (sb.features_compat != 0) {
    rep.note(fmt::format("unknown compatible features {:#x} (ignored)",
                         sb.features_compat));
  }
  if (sb.features_ro_compat != 0) {
    rep.note(fmt::format(
        "unknown read-only-compatible features {:#x}: structures they add "
        "are not checked, and repair is disabled",
        sb.features_ro_compat));
  }
  return sb;
}

// --- journal ----------------------------------------------------------------

struct Record {
  uint64_t dest;
  uint64_t data_off;  // offset of the record's bytes in Transaction::records
  uint32_t len;
};

// The transaction the journal holds, as recovery reads it.
struct Transaction {
  enum class State : uint8_t {
    BadMagic,   // the header is not a journal header
    None,       // empty, or never committed (commit != seq)
    Torn,       // committed but fails its length or checksum: ignored
    Malformed,  // checksum holds but the records do not parse: refused
    Valid,
  };
  State state = State::None;
  JournalHeader h{};
  std::string problem;  // Torn, Malformed
  std::vector<std::byte> records;
  std::vector<Record> list;  // Valid

  const std::byte* bytes_of(const Record& r) const {
    return records.data() + r.data_off;
  }
};

Transaction read_transaction(const View& view, const Superblock& sb) {
  Transaction t;
  const uint64_t joff = journal_offset(sb);
  const uint64_t capacity =
      sb.journal_blocks * kBlockSize - sizeof(JournalHeader);
  JournalHeader& h = t.h;
  h = view.get<JournalHeader>(joff);
  if (h.magic != kJournalMagic) {
    t.state = Transaction::State::BadMagic;
    return t;
  }
  // seq 0 is the empty journal mkfs writes; commit != seq is a transaction
  // that never committed (recovery ignores it, and so does fsck).
  if (h.seq == 0 || h.commit != h.seq) return t;
  // A header or records that do not add up are a transaction torn by a
  // crash while it was being written: it never committed, and recovery
  // ignores it. A transaction whose checksum holds but whose records are
  // malformed is damage.
  if (h.bytes > capacity || h.bytes % 8 != 0) {
    t.state = Transaction::State::Torn;
    t.problem = fmt::format("claims {} bytes of records (the journal holds {})",
                            h.bytes, capacity);
    return t;
  }
  // Checksum over (seq, bytes), then the record bytes, chained.
  t.records.resize(static_cast<size_t>(h.bytes));
  view.read(joff + sizeof(JournalHeader), t.records.data(), t.records.size());
  const uint64_t covered[2] = {h.seq, h.bytes};
  uint32_t c = crc32c(covered, sizeof(covered));
  c = crc32c(t.records.data(), t.records.size(), c);
  if (c != h.csum) {
    t.state = Transaction::State::Torn;
    t.problem = "fails its checksum";
    return t;
  }
  t.state = Transaction::State::Malformed;
  uint64_t pos = 0;
  while (pos < h.bytes) {
    if (h.bytes - pos < sizeof(JournalRecord)) {
      t.problem = fmt::format("has a truncated record header at byte {}", pos);
      return t;
    }
    JournalRecord r;
    std::memcpy(&r, t.records.data() + pos, sizeof(r));
    uint64_t padded = (uint64_t(r.len) + 7) & ~uint64_t(7);
    if (r.len == 0 || padded > h.bytes - pos - sizeof(r)) {
      t.problem =
          fmt::format("has a record at byte {} of bad length {}", pos, r.len);
      return t;
    }
    // Journaled bytes are metadata: inode table or data region, never the
    // superblocks or the journal itself.
    if (r.dest < sb.itable_start * kBlockSize || !view.fits(r.dest, r.len)) {
      t.problem = fmt::format(
          "has a record for pool offset {:#x} (+{}) outside the inode table "
          "and data region",
          r.dest, r.len);
      return t;
    }
    t.list.push_back({r.dest, pos + sizeof(r), r.len});
    pos += sizeof(r) + padded;
  }
  t.state = Transaction::State::Valid;
  return t;
}

// Whether every record of a valid transaction is in place.
bool applied(const View& view, const Transaction& t) {
  std::vector<std::byte> cur;
  for (const Record& r : t.list) {
    cur.resize(r.len);
    view.read(r.dest, cur.data(), r.len);
    if (std::memcmp(cur.data(), t.bytes_of(r), r.len) != 0) return false;
  }
  return true;
}

// Ends a committed transaction: commit no longer equals seq, so recovery
// takes the journal as empty (seq stays, so numbering goes on).
void retire(View& view, const Superblock& sb) {
  view.write_pool(journal_offset(sb) + offsetof(JournalHeader, commit),
                  "\0\0\0\0\0\0\0\0", 8);
}

void check_journal(View& view, const Superblock& sb, bool repair,
                   Reporter& rep) {
  rep.progress("checking journal");
  const Transaction t = read_transaction(view, sb);
  const JournalHeader& h = t.h;
  switch (t.state) {
    case Transaction::State::BadMagic:
      rep.error(fmt::format("journal (block {}): bad magic {:#x}",
                            sb.journal_start, h.magic));
      if (repair) {
        JournalHeader empty{};
        empty.magic = kJournalMagic;
        view.write_pool(journal_offset(sb), &empty, sizeof(empty));
        rep.repair(
            "journal: header rewritten empty (any transaction in it is "
            "discarded)");
      }
      return;
    case Transaction::State::None:
      return;
    case Transaction::State::Torn:
      rep.note(fmt::format(
          "journal: transaction {} {}: torn by a crash while being written, "
          "never committed; ignored",
          h.seq, t.problem));
      return;
    case Transaction::State::Malformed:
      rep.error(fmt::format(
          "journal: committed transaction {} {}; recovery refuses the pool",
          h.seq, t.problem));
      if (repair) {
        retire(view, sb);
        rep.repair(
            fmt::format("journal: committed transaction {} discarded", h.seq));
      }
      return;
    case Transaction::State::Valid:
      break;
  }
  if (applied(view, t)) return;
  // Normal after a crash: mount replays it. Checked as replayed.
  rep.note(fmt::format(
      "journal holds a committed transaction; replay needed (seq {}, {} "
      "records)",
      h.seq, t.list.size()));
  for (const Record& r : t.list) {
    if (repair) {
      view.write_pool(r.dest, t.bytes_of(r), r.len);
    } else {
      view.write_private(r.dest, t.bytes_of(r), r.len);
    }
  }
  if (repair)
    rep.repair(
        fmt::format("journal: replayed committed transaction {}", h.seq));
}

// After the repair passes. The committed transaction was replayed before
// them, so records that no longer match the pool hold bytes a repair has
// rewritten since (an inode the last operation wrote, say): mount would
// replay them and undo the repair, so the transaction is retired.
void retire_stale_journal(View& view, const Superblock& sb, Reporter& rep) {
  const Transaction t = read_transaction(view, sb);
  if (t.state != Transaction::State::Valid || applied(view, t)) return;
  retire(view, sb);
  rep.repair(fmt::format(
      "journal: committed transaction {} retired (already replayed; repairs "
      "since rewrote bytes it holds, which replaying it again would undo)",
      t.h.seq));
}

// --- one pass over the inodes and everything they point to -------------------

enum class Kind : uint8_t {
  Data,
  ExtentBlock,
  DirBlock,
  XattrTable,
  XattrRecord
};

// A run of blocks some structure claims. `ref` says what points at it, so a
// repair can drop the claim: Data: pool offset of the DiskExtent;
// ExtentBlock/DirBlock: the previous chain block (0: the inode's head);
// XattrTable: unused; XattrRecord: pool offset of the XattrEntry.
struct Claim {
  uint64_t start;
  uint64_t count;
  uint64_t ino;
  uint64_t ref;
  uint64_t file_block;  // Data only
  Kind kind;
  bool dropped = false;
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

class Pass {
 public:
  Pass(View& view, const Superblock& sb, bool repair, Reporter& rep,
       FsckReport* stats)
      : view_(view), sb_(sb), repair_(repair), rep_(rep), stats_(stats) {}

  void run() {
    scan_inodes();
    walk_contents();
    check_ownership();
    check_tree();
  }

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

  // --- repair primitives: each writes and persists through the pool --------
  template <class F>
  void patch_inode(uint64_t ino, F&& change, const std::string& what) {
    if (!repair_) return;
    DiskInode d = read_inode(ino);
    change(d);
    seal(&d);
    view_.write_pool(ioff(ino), &d, sizeof(d));
    rep_.repair(fmt::format("inode {}: {}", ino, what));
  }
  // Frees an inode slot: all zero but the generation (so (ino, generation)
  // stays unique when the slot is taken again). Its blocks become free: the
  // allocator is rebuilt from the live inodes at every mount.
  void free_inode(uint64_t ino, const std::string& why) {
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
  void rebuild_root(const std::string& why) {
    DiskInode old = read_inode(kRootIno);
    DiskInode r{};
    r.flags = kInodeInUse;
    r.mode =
        S_IFDIR | ((old.mode & S_IFMT) == S_IFDIR ? old.mode & 07777 : 0755);
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

  void zero(uint64_t off, size_t len) {
    std::array<std::byte, kBlockSize> z{};
    view_.write_pool(off, z.data(), std::min<size_t>(len, kBlockSize));
  }
  // Ends a chain before `block`: `prev` == 0 clears the inode's head field.
  void cut_chain(uint64_t ino, uint64_t prev, Kind kind, uint64_t block) {
    if (!repair_) return;
    const char* what = kind == Kind::ExtentBlock ? "extent" : "directory";
    if (prev == 0) {
      patch_inode(
          ino,
          [&](DiskInode& d) {
            if (kind == Kind::ExtentBlock) {
              d.extent_head = 0;
            } else {
              d.dir_head = 0;
            }
          },
          fmt::format("{} chain cleared at its head (block {}); everything it "
                      "mapped is lost",
                      what, block));
      return;
    }
    // Both chain headers keep `next` at the same offset.
    static_assert(offsetof(ExtentBlockHeader, next) ==
                  offsetof(DirBlockHeader, next));
    uint64_t hoff = prev * kBlockSize;
    if (kind == Kind::ExtentBlock) {
      auto h = view_.get<ExtentBlockHeader>(hoff);
      h.next = 0;
      h.csum = csum_of(h);
      view_.write_pool(hoff, &h, sizeof(h));
    } else {
      auto h = view_.get<DirBlockHeader>(hoff);
      h.next = 0;
      h.csum = csum_of(h);
      view_.write_pool(hoff, &h, sizeof(h));
    }
    rep_.repair(fmt::format(
        "inode {}: {} chain cut after block {} (block {} and the rest of "
        "the chain dropped)",
        ino, what, prev, block));
  }

  // --- 1. inode slots ------------------------------------------------------
  void scan_inodes() {
    const uint64_t count = sb_.inode_count;
    info_.assign(count + 1, InodeInfo{});
    const uint64_t step = std::max<uint64_t>(16384, count / 16);
    for (uint64_t ino = 1; ino <= count; ++ino) {
      if (ino % step == 0)
        rep_.progress(fmt::format("inodes {}/{}", ino, count));
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

  void check_inode(uint64_t ino) {
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
      rep_.error(fmt::format("inode {}: mode {:#o} is not a valid file type",
                             ino, d.mode));
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
      rep_.error(fmt::format("inode {}: unknown flags {:#x}", ino,
                             d.flags & ~known));
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
        problem =
            fmt::format("{} {} set on a {}", name, field, type_name(dtype));
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
    pointer(d.xattr_block, true, "xattr_block",
            offsetof(DiskInode, xattr_block));

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
        problem = fmt::format("symlink target of {} bytes has no extent chain",
                              d.size);
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
  static bool has_extents(const DiskInode& d) {
    const uint32_t type = d.mode & S_IFMT;
    return type == S_IFREG || (type == S_IFLNK && d.size > kInlineSymlinkMax);
  }

  static const char* type_name(uint8_t dtype) {
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

  // --- 2. what each live inode points to ----------------------------------
  void walk_contents() {
    rep_.progress("checking extents, directories and xattrs");
    uint64_t done = 0;
    const uint64_t step = std::max<uint64_t>(16384, live_.size() / 16);
    for (const Live& l : live_) {
      if (++done % step == 0) {
        rep_.progress(fmt::format("contents {}/{}", done, live_.size()));
      }
      if (info_[l.ino].state != State::Live) continue;
      // Also without a chain: `blocks` and the size are checked there.
      if (has_extents(l.d)) walk_extents(l);
      if (info_[l.ino].state != State::Live) continue;
      if (l.d.dir_head != 0) walk_dir(l.ino, l.d.dir_head);
      if (l.d.xattr_block != 0) walk_xattrs(l.ino, l.d.xattr_block);
    }
  }

  struct FileExtent {
    uint64_t file_block;
    uint64_t count;
    uint64_t off;
    size_t claim;
    bool unwritten;
  };

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

  void walk_extents(const Live& l) {
    const uint64_t ino = l.ino;
    const size_t first_claim = claims_.size();
    std::vector<FileExtent> extents;
    std::unordered_set<uint64_t> visited;
    uint64_t prev = 0;
    for (uint64_t b = l.d.extent_head; b != 0;) {
      ExtentBlockHeader h{};
      const std::string problem =
          chain_block_problem(b, kExtentBlockMagic, ino, visited, &h);
      if (!problem.empty()) {
        rep_.error(
            fmt::format("inode {}: extent chain block {} {}", ino, b, problem));
        cut_chain(ino, prev, Kind::ExtentBlock, b);
        break;
      }
      claim(b, 1, ino, prev, Kind::ExtentBlock);
      for (size_t i = 0; i < kExtentsPerBlock; ++i) {
        uint64_t off =
            b * kBlockSize + sizeof(ExtentBlockHeader) + i * sizeof(DiskExtent);
        check_extent(ino, b, i, off, &extents);
      }
      prev = b;
      b = h.next;
    }

    // No two extents of one file map the same file block: the later one in
    // chain order is dropped.
    std::vector<size_t> order(extents.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return extents[a].file_block < extents[b].file_block ||
             (extents[a].file_block == extents[b].file_block && a < b);
    });
    std::vector<bool> dropped(extents.size(), false);
    size_t reach = SIZE_MAX;  // the extent reaching furthest so far
    for (size_t k : order) {
      const FileExtent& e = extents[k];
      if (reach != SIZE_MAX) {
        const FileExtent& r = extents[reach];
        if (e.file_block < r.file_block + r.count) {
          size_t victim = std::max(k, reach);
          size_t keep = std::min(k, reach);
          rep_.error(fmt::format(
              "inode {}: extents overlap: file blocks {}+{} and {}+{}", ino,
              extents[keep].file_block, extents[keep].count,
              extents[victim].file_block, extents[victim].count));
          drop_extent(ino, extents[victim].off, extents[victim].file_block,
                      extents[victim].count,
                      "overlaps another extent of the file");
          dropped[victim] = true;
          claims_[extents[victim].claim].dropped = true;
          if (victim == reach) reach = k;
          continue;
        }
      }
      if (reach == SIZE_MAX ||
          e.file_block + e.count >
              extents[reach].file_block + extents[reach].count) {
        reach = k;
      }
    }
    if ((l.d.mode & S_IFMT) == S_IFLNK &&
        !check_symlink_extents(l, extents, dropped)) {
      // Freed: what it claimed must not cost another owner its blocks.
      for (size_t c = first_claim; c < claims_.size(); ++c)
        claims_[c].dropped = true;
      return;
    }
    uint64_t blocks = 0;
    uint64_t data_end = 0;  // past the last written block
    for (size_t i = 0; i < extents.size(); ++i) {
      if (dropped[i]) continue;
      blocks += extents[i].count;
      if (!extents[i].unwritten)
        data_end = std::max(data_end, extents[i].file_block + extents[i].count);
    }
    if (blocks != l.d.blocks) {
      rep_.error(fmt::format("inode {}: blocks {} but its extents map {}", ino,
                             l.d.blocks, blocks));
      patch_inode(
          ino, [&](DiskInode& x) { x.blocks = blocks; },
          fmt::format("blocks set to {}", blocks));
    }
    if ((l.d.mode & S_IFMT) == S_IFREG && l.d.size > kMaxFileSize) {
      // data_end <= kMaxFileBlocks, so this cannot wrap.
      const uint64_t size = std::min(data_end * kBlockSize, kMaxFileSize);
      rep_.error(fmt::format("inode {}: size {} exceeds the largest file ({})",
                             ino, l.d.size, kMaxFileSize));
      patch_inode(
          ino, [&](DiskInode& x) { x.size = size; },
          fmt::format("size set to {} (the end of its last written block)",
                      size));
    }
  }

  // A long symlink's target (at most 4095 bytes) lives in one block: the
  // file maps exactly one written block, at file block 0, as mount reads
  // it. Other extents are dropped and a longer target extent is shortened;
  // without a target block the symlink is freed (false).
  bool check_symlink_extents(const Live& l, std::vector<FileExtent>& extents,
                             std::vector<bool>& dropped) {
    const uint64_t ino = l.ino;
    size_t target = SIZE_MAX;
    for (size_t i = 0; i < extents.size() && target == SIZE_MAX; ++i) {
      if (!dropped[i] && extents[i].file_block == 0 && !extents[i].unwritten)
        target = i;
    }
    if (target == SIZE_MAX) {
      rep_.error(fmt::format(
          "inode {}: symlink target of {} bytes is not mapped by a written "
          "extent at file block 0",
          ino, l.d.size));
      info_[ino].state = State::Bad;
      free_inode(ino, "unreadable symlink");
      return false;
    }
    for (size_t i = 0; i < extents.size(); ++i) {
      if (i == target || dropped[i]) continue;
      const FileExtent& e = extents[i];
      rep_.error(fmt::format(
          "inode {}: symlink maps file blocks {}+{} besides its target block",
          ino, e.file_block, e.count));
      drop_extent(ino, e.off, e.file_block, e.count,
                  "a symlink maps one block");
      dropped[i] = true;
      claims_[e.claim].dropped = true;
    }
    FileExtent& t = extents[target];
    if (t.count != 1) {
      rep_.error(
          fmt::format("inode {}: symlink target extent maps {} blocks, not 1",
                      ino, t.count));
      if (repair_) {
        auto x = view_.get<DiskExtent>(t.off);
        x.count = 1;
        x.csum = csum_of(x);
        view_.write_pool(t.off, &x, sizeof(x));
        rep_.repair(fmt::format(
            "inode {}: symlink target extent shortened to 1 block (pool "
            "blocks {}+{} freed)",
            ino, x.pool_block + 1, t.count - 1));
        claims_[t.claim].count = 1;
      }
      t.count = 1;
    }
    return true;
  }

  void drop_extent(uint64_t ino, uint64_t off, uint64_t file_block,
                   uint64_t count, const char* why) {
    if (!repair_) return;
    zero(off, sizeof(DiskExtent));
    rep_.repair(fmt::format(
        "inode {}: extent for file blocks {}+{} cleared ({}); its data is "
        "lost",
        ino, file_block, count, why));
  }

  void check_extent(uint64_t ino, uint64_t b, size_t slot, uint64_t off,
                    std::vector<FileExtent>* extents) {
    auto e = view_.get<DiskExtent>(off);
    std::string problem;
    if (e.flags == 0) {
      if (all_zero(&e, sizeof(e))) return;
      problem = "free slot is not clear";
    } else if (e.csum != csum_of(e)) {
      problem = "checksum mismatch";
    } else if ((e.flags & ~(kExtentValid | kExtentUnwritten)) ||
               !(e.flags & kExtentValid)) {
      problem = fmt::format("bad flags {:#x}", e.flags);
    } else if (e.count == 0) {
      problem = "count 0";
    } else if (!in_data(e.pool_block, e.count)) {
      problem = fmt::format("maps pool blocks outside the data region ({})",
                            outside(e.pool_block, e.count));
    } else if (e.file_block >= kMaxFileBlocks ||
               e.count > kMaxFileBlocks - e.file_block) {
      problem = fmt::format("file blocks {}+{} exceed the largest file",
                            e.file_block, e.count);
    }
    if (!problem.empty()) {
      rep_.error(fmt::format("inode {}: extent block {} slot {}: {}", ino, b,
                             slot, problem));
      drop_extent(ino, off, e.file_block, e.count, "corrupt");
      return;
    }
    ++stats_->extents_checked;
    size_t c = claim(e.pool_block, e.count, ino, off, Kind::Data, e.file_block);
    extents->push_back(
        {e.file_block, e.count, off, c, (e.flags & kExtentUnwritten) != 0});
  }

  void walk_dir(uint64_t dir, uint64_t head) {
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
  size_t check_dirent(uint64_t dir, uint64_t b, size_t slot,
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
                             where(), q, h.type, h.ino,
                             type_name(target.dtype)));
      if (repair_) {
        h.type = target.dtype;
        h.csum = 0;
        uint32_t c = crc32c(&h, sizeof(h));
        h.csum = crc32c(name.data(), name.size(), c);
        view_.write_pool(off, &h, sizeof(h));
        rep_.repair(fmt::format("{}: entry {} type set to {}", where(), q,
                                target.dtype));
      }
    }
    entries_.push_back({dir, h.ino, off, h.nslots, true, name});
    return h.nslots;
  }

  void clear_dirent(uint64_t dir, uint64_t off, size_t nslots,
                    const std::string& why) {
    if (!repair_) return;
    zero(off, nslots * kDirSlotSize);
    rep_.repair(
        fmt::format("directory {}: {} slots at pool offset {:#x} cleared ({})",
                    dir, nslots, off, why));
  }

  void walk_xattrs(uint64_t ino, uint64_t table) {
    auto clear_table = [&](const std::string& problem) {
      rep_.error(fmt::format("inode {}: xattr table block {} {}", ino, table,
                             problem));
      patch_inode(
          ino, [](DiskInode& x) { x.xattr_block = 0; },
          "xattr_block cleared; all its extended attributes are lost");
    };
    auto h = view_.get<XattrTableHeader>(table * kBlockSize);
    if (h.magic != kXattrTableMagic)
      return clear_table(fmt::format("has bad magic {:#x}", h.magic));
    if (h.csum != csum_of(h)) return clear_table("has a bad header checksum");
    if (h.ino != ino)
      return clear_table(fmt::format("belongs to inode {}", h.ino));
    claim(table, 1, ino, 0, Kind::XattrTable);

    std::unordered_set<std::string> names;
    std::vector<std::byte> record;
    for (size_t i = 0; i < kXattrsPerTable; ++i) {
      uint64_t off = table * kBlockSize + sizeof(XattrTableHeader) +
                     i * sizeof(XattrEntry);
      auto e = view_.get<XattrEntry>(off);
      std::string problem;
      std::string name;
      uint64_t need = e.nblocks;  // blocks the record fills
      if (e.block == 0) {
        if (all_zero(&e, sizeof(e))) continue;
        problem = "free entry is not clear";
      } else if (e.csum != csum_of(e)) {
        problem = "checksum mismatch";
      } else if (e.nblocks == 0 || e.nblocks > kMaxXattrBlocks) {
        problem = fmt::format("record of {} blocks (1..{} allowed)", e.nblocks,
                              kMaxXattrBlocks);
      } else if (!in_data(e.block, e.nblocks)) {
        problem = fmt::format("record {}", outside(e.block, e.nblocks));
      } else {
        auto r = view_.get<XattrRecordHeader>(e.block * kBlockSize);
        uint64_t len = sizeof(r) + uint64_t(r.namelen) + r.valuelen;
        if (r.namelen == 0 || r.namelen > 255) {
          problem =
              fmt::format("record name length {} is not 1..255", r.namelen);
        } else if (r.valuelen > kXattrMaxValue) {
          problem = fmt::format("record value length {} exceeds {}", r.valuelen,
                                kXattrMaxValue);
        } else if (len > uint64_t(e.nblocks) * kBlockSize) {
          problem = fmt::format("record of {} bytes does not fit its {} blocks",
                                len, e.nblocks);
        } else {
          need = (len + kBlockSize - 1) / kBlockSize;
          record.resize(static_cast<size_t>(len));
          view_.read(e.block * kBlockSize, record.data(), record.size());
          std::memset(record.data(), 0,
                      sizeof(uint32_t));  // csum taken as zero
          name.assign(reinterpret_cast<const char*>(record.data()) + sizeof(r),
                      r.namelen);
          if (crc32c(record.data(), record.size()) != r.csum) {
            problem = "record checksum mismatch";
          } else if (name.find('\0') != std::string::npos) {
            problem = fmt::format("record name {} contains NUL", quote(name));
          } else if (!names.insert(name).second) {
            problem = fmt::format("duplicate name {}", quote(name));
          }
        }
      }
      if (!problem.empty()) {
        rep_.error(fmt::format("inode {}: xattr table block {} entry {}: {}",
                               ino, table, i, problem));
        if (repair_) {
          zero(off, sizeof(XattrEntry));
          rep_.repair(fmt::format(
              "inode {}: xattr entry {} cleared{}", ino, i,
              name.empty() ? "" : " (attribute " + quote(name) + " lost)"));
        }
        continue;
      }
      // A record takes exactly the blocks it fills (mount checks this):
      // an intact record with a longer entry gets the entry shortened.
      if (need != e.nblocks) {
        rep_.error(fmt::format(
            "inode {}: xattr table block {} entry {}: record {} fills {} "
            "blocks but the entry says {}",
            ino, table, i, quote(name), need, e.nblocks));
        if (repair_) {
          rep_.repair(fmt::format(
              "inode {}: xattr entry {} set to the {} blocks of its record "
              "(blocks {}+{} freed)",
              ino, i, need, e.block + need, e.nblocks - need));
          e.nblocks = static_cast<uint32_t>(need);
          e.csum = csum_of(e);
          view_.write_pool(off, &e, sizeof(e));
        }
      }
      claim(e.block, e.nblocks, ino, off, Kind::XattrRecord);
    }
  }

  // --- 3. block ownership across the pool ---------------------------------
  size_t claim(uint64_t start, uint64_t count, uint64_t ino, uint64_t ref,
               Kind kind, uint64_t file_block = 0) {
    claims_.push_back({start, count, ino, ref, file_block, kind});
    return claims_.size() - 1;
  }

  std::string owner(const Claim& c) const {
    switch (c.kind) {
      case Kind::Data:
        return fmt::format("inode {} data (file blocks {}+{})", c.ino,
                           c.file_block, c.count);
      case Kind::ExtentBlock:
        return fmt::format("inode {} extent block", c.ino);
      case Kind::DirBlock:
        return fmt::format("directory {} directory block", c.ino);
      case Kind::XattrTable:
        return fmt::format("inode {} xattr table", c.ino);
      case Kind::XattrRecord:
        return fmt::format("inode {} xattr record", c.ino);
    }
    return "?";
  }

  void drop_claim(const Claim& c) {
    if (!repair_) return;
    switch (c.kind) {
      case Kind::Data:
        drop_extent(c.ino, c.ref, c.file_block, c.count,
                    "blocks owned by another structure");
        break;
      case Kind::ExtentBlock:
      case Kind::DirBlock:
        cut_chain(c.ino, c.ref, c.kind, c.start);
        break;
      case Kind::XattrTable:
        patch_inode(
            c.ino, [](DiskInode& x) { x.xattr_block = 0; },
            "xattr table shared with another structure: xattr_block cleared, "
            "all its "
            "extended attributes are lost");
        break;
      case Kind::XattrRecord:
        zero(c.ref, sizeof(XattrEntry));
        rep_.repair(fmt::format(
            "inode {}: xattr record at block {} shared with another "
            "structure: entry cleared, attribute lost",
            c.ino, c.start));
        break;
    }
  }

  // Claims are made in inode order, then chain order, so a higher index is
  // the later owner: it is the one dropped.
  void check_ownership() {
    rep_.progress("checking block ownership");
    std::vector<size_t> order;
    order.reserve(claims_.size());
    for (size_t i = 0; i < claims_.size(); ++i) {
      if (!claims_[i].dropped) order.push_back(i);
    }
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return claims_[a].start < claims_[b].start ||
             (claims_[a].start == claims_[b].start && a < b);
    });
    size_t reach = SIZE_MAX;  // the claim reaching furthest so far
    uint64_t covered_to = 0;  // blocks_in_use counts the union
    uint64_t in_use = 0;
    for (size_t k : order) {
      const Claim& c = claims_[k];
      uint64_t end = c.start + c.count;
      if (end > covered_to) {
        in_use += end - std::max(c.start, covered_to);
        covered_to = end;
      }
      if (reach != SIZE_MAX &&
          c.start < claims_[reach].start + claims_[reach].count) {
        const Claim& r = claims_[reach];
        uint64_t lo = c.start;
        uint64_t hi = std::min(end, r.start + r.count);
        size_t first = std::min(k, reach), later = std::max(k, reach);
        rep_.error(
            fmt::format("blocks {}+{} are claimed twice: by {} and by {}", lo,
                        hi - lo, owner(claims_[first]), owner(claims_[later])));
        drop_claim(claims_[later]);
        claims_[later].dropped = true;
        if (later == reach) reach = k;
        continue;
      }
      if (reach == SIZE_MAX ||
          end > claims_[reach].start + claims_[reach].count)
        reach = k;
    }
    stats_->blocks_in_use = in_use;
  }

  // --- 4. the directory tree ----------------------------------------------
  void check_tree() {
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
      if (t.state == State::Live && !t.orphan && t.reachable)
        check_links(l.ino);
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
  void check_links(uint64_t ino) {
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
        rep_.error(fmt::format(
            "inode {}: nlink {} but {} directory entries refer to it", ino,
            t.nlink, t.entries));
      }
      if (expected <= UINT32_MAX) {
        patch_inode(
            ino, [&](DiskInode& x) { x.nlink = uint32_t(expected); },
            fmt::format("nlink set to {}", expected));
        if (repair_) t.nlink = uint32_t(expected);
      }
    }
    if (dir && named(ino)) {
      uint64_t want =
          ino == kRootIno ? kRootIno : entries_[t.name_entry - 1].dir;
      if (t.parent != want) {
        rep_.error(fmt::format(
            "directory {}: parent {} but {}", ino, t.parent,
            ino == kRootIno
                ? "the root is its own parent"
                : fmt::format("it is named in directory {}", want)));
        patch_inode(
            ino, [&](DiskInode& x) { x.parent = want; },
            fmt::format("parent set to {}", want));
        if (repair_) t.parent = want;
      }
    }
  }

  // Whether a kept entry names the inode (the root always counts as named).
  bool named(uint64_t ino) const {
    const InodeInfo& t = info_[ino];
    if (t.dtype == DT_DIR) return ino == kRootIno || t.name_entry != 0;
    return t.entries > 0;
  }

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

  // Marks `from` and everything below it reachable, over kept entries.
  void mark_reachable(uint64_t from) {
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
  void free_orphans() {
    for (const Live& l : live_) {
      const uint64_t ino = l.ino;
      InodeInfo& t = info_[ino];
      if (t.state != State::Live || ino == kRootIno || t.nlink != 0 ||
          named(ino))
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

  // --- 5. unreachable inodes: reconnected under /lost+found ---------------
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

  struct LostRoot {
    uint64_t ino;
    std::string path;     // where it was (or would be) reconnected
    std::string failure;  // why it could not be, when path is empty
  };

  // The free slots of one directory's chain, loaded from the pool, and its
  // inode, for adding entries.
  struct DirSlots {
    uint64_t ino = 0;
    DiskInode d{};
    std::vector<uint64_t> blocks;
    std::vector<uint64_t> used;  // per block, bit s: slot s is taken
    size_t first_open = 0;       // blocks before it are full
    bool dirty = false;          // d changed since it was written
  };
  static constexpr uint64_t kAllSlots = (uint64_t(1) << kDirSlots) - 1;

  // Data blocks no structure claims, lowest first. Conservative: a dropped
  // claim still counts as used (its blocks may be another owner's).
  class BlockFinder {
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

  bool is_lost(uint64_t ino) const {
    const InodeInfo& t = info_[ino];
    return ino != kRootIno && t.state == State::Live && !t.reachable &&
           !t.orphan;
  }

  void handle_unreachable() {
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
  std::vector<LostRoot> find_lost_roots(const std::vector<uint64_t>& lost) {
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
  void reconnect(std::vector<LostRoot>& roots) {
    BlockFinder blocks(claims_, sb_);
    std::string why;
    std::optional<DirSlots> lf = open_lost_found(blocks, &why);
    if (!lf) {
      for (LostRoot& r : roots) r.failure = why;
      if (repair_) {
        rep_.note(fmt::format(
            "unreachable inodes cannot be reconnected: {}; they are freed",
            why));
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
  std::optional<DirSlots> open_lost_found(BlockFinder& blocks,
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

  void reconnect_one(LostRoot& r, DirSlots& lf,
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

  static void bump_nlink(uint32_t* n) {
    if (*n < UINT32_MAX) ++*n;
  }
  static timespec now_ts() {
    timespec t{};
    clock_gettime(CLOCK_REALTIME, &t);
    return t;
  }
  static void touch(DiskInode* d, const timespec& t) {
    d->mtime_sec = d->ctime_sec = t.tv_sec;
    d->mtime_nsec = d->ctime_nsec = static_cast<uint32_t>(t.tv_nsec);
  }

  // Writes a directory's inode when it changed (repair only).
  void flush(DirSlots& s) {
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
  DirSlots load_dir_slots(uint64_t ino) {
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
  std::optional<uint64_t> add_entry(DirSlots& s, std::string_view name,
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
};

void reset_stats(FsckReport* r) {
  r->inodes_checked = r->dirents_checked = r->extents_checked =
      r->blocks_in_use = 0;
}

FsckReport run(View& view, const FsckOptions& options, bool repair) {
  FsckReport report;
  Reporter rep(&report, options);
  auto sb = check_superblocks(view, repair, rep, &report);
  if (sb && repair && sb->features_ro_compat != 0) repair = false;
  if (sb) {
    check_journal(view, *sb, repair, rep);
    if (!repair) {
      rep.progress("pass 1");
      Pass(view, *sb, false, rep, &report).run();
    } else {
      // Repair until a pass changes nothing, then check once more without
      // repairing: what that finds is left uncorrected.
      for (int pass = 1; pass <= kMaxRepairPasses; ++pass) {
        rep.progress(fmt::format("pass {} (repairing)", pass));
        uint64_t before = rep.repairs_made();
        reset_stats(&report);
        Pass(view, *sb, true, rep, &report).run();
        if (rep.repairs_made() == before) break;
      }
      retire_stale_journal(view, *sb, rep);
      rep.send_errors_to(&report.uncorrected);
      rep.progress("verifying");
      reset_stats(&report);
      FsckReport scratch;
      if (check_superblocks(view, false, rep, &scratch)) {
        check_journal(view, *sb, false, rep);
        Pass(view, *sb, false, rep, &report).run();
      }
      rep.finish();
      return report;
    }
  }
  rep.finish();
  report.uncorrected = report.errors;
  return report;
}

}  // namespace

Result<FsckReport> fsck(const std::string& pool_path,
                        const FsckOptions& options, std::string* why) {
  pmem::OpenOptions open;
  open.read_only = !options.repair;
  auto pool = pmem::PoolMap::open(pool_path, open, why);
  if (!pool) return pool.error();  // *why names the path
  View view(pool->base(), pool->size(), options.repair ? &*pool : nullptr);
  return run(view, options, options.repair);
}

FsckReport fsck_image(std::span<const std::byte> image,
                      const FsckOptions& options) {
  View view(image.data(), image.size(), nullptr);
  return run(view, options, false);
}

}  // namespace zest::pmfs
