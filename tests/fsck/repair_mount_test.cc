// Random damage, repair, mount: whatever the damage, `fsck --repair` (run
// until it repairs nothing more) must leave a pool that a read-only fsck
// calls clean, that pmfs mounts, and in which everything still reachable
// can be listed and read.
//
// The pools are built through pmfs itself (tests/pmfs/harness.h), so they
// hold what the file system really writes: files of several sizes,
// fragmented ones with more extents than one chain block holds, holes,
// fallocated (unwritten) ranges, short and long symlinks, nested and large
// directories, hard links, small and large xattrs (one inode with a chain
// of xattr slot blocks), devices, fifos, sockets,
// an orphan, and a committed journal transaction. Each round copies one of
// them, damages it (fields of inodes, extent blocks, directory blocks, xattr
// slot blocks and their entries, tables and records, long symlink blocks, the
// journal, one superblock copy, set to values chosen to reach checks: bit
// flips, small and huge numbers, numbers of blocks and inodes in use; whole
// structures zeroed or copied over others; half the time with every checksum
// resealed afterwards, as the fuzz replay drivers do, so the damage reaches the
// checks behind the checksums), and repairs, checks, mounts and walks it. A
// third of the rounds then damage the repaired pool again (up to four
// generations).
//
// Rounds are seeded deterministically; a failing round prints its seed.
//   FsckRepairMountTest.*   kDefaultRounds rounds (about 5 s)
//   ZEST_SOAK=1             kSoakRounds rounds (a few minutes)
//   ZEST_REPAIR_SEED=S      only round S, printing the fsck reports
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/fd.h"
#include "base/log.h"
#include "pmfs/format.h"
#include "pmfs/fsck.h"
#include "pmfs/fuzz/sample_image.h"
#include "pmfs/layout.h"
#include "tests/pmfs/harness.h"

namespace zest::pmfs {
namespace {

constexpr int kDefaultRounds = 600;
constexpr int kSoakRounds = 20000;
constexpr int kBasePools = 4;  // round seed % kBasePools picks the pool
constexpr uint64_t kPoolSize = 4 << 20;
// fsck --repair runs before the pool must be settled.
constexpr int kMaxRepairRuns = 6;
// What the walk reads of a file: its first kReadHead bytes and its last
// kReadTail (a repaired size may be huge and sparse).
constexpr uint64_t kReadHead = 2 << 20;
constexpr uint64_t kReadTail = 64 << 10;
constexpr uint32_t kReadChunk = 1 << 20;
constexpr size_t kMaxListed = 20000;  // entries per directory

bool soak() {
  const char* s = std::getenv("ZEST_SOAK");
  return s && *s && std::string(s) != "0";
}

std::string dump(const FsckReport& r) {
  std::string s;
  for (const auto& e : r.errors) s += "    error: " + e + "\n";
  for (const auto& e : r.repairs) s += "    repair: " + e + "\n";
  for (const auto& e : r.uncorrected) s += "    uncorrected: " + e + "\n";
  return s;
}

// A message with its numbers replaced by '#', so failures group by kind.
std::string shape(const std::string& msg) {
  std::string out;
  for (char c : msg) {
    if (c >= '0' && c <= '9') {
      if (out.empty() || out.back() != '#') out += '#';
    } else {
      out += c;
    }
  }
  return out;
}

// File contents: never a structure's magic (bytes are letters).
std::string pattern(uint64_t seed, size_t len) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i)
    s[i] = char('a' + (seed * 131 + i * 7 + i / 4096) % 26);
  return s;
}

// --- building a pool through pmfs --------------------------------------------

class TreeBuilder {
 public:
  TreeBuilder(test::PmFsHarness& h, uint64_t seed) : h_(h), rng_(seed) {}

  void build() {
    dirs_.push_back(fs::kRootIno);
    for (int i = 0; i < 6; ++i) {
      auto d = h_.mkdir(pick_dir(), fmt::format("dir{}", i), 0755);
      ASSERT_TRUE(d.ok());
      dirs_.push_back(d->ino);
    }
    // A directory of several blocks (63 slots each), with long names too.
    auto big = h_.mkdir(fs::kRootIno, "big", 0755);
    ASSERT_TRUE(big.ok());
    dirs_.push_back(big->ino);
    const int entries = 90 + int(rng_() % 60);
    for (int i = 0; i < entries; ++i) {
      const size_t len = i % 9 == 0 ? 100 + rng_() % 150 : 8 + rng_() % 30;
      std::string name =
          fmt::format("e{}-", i) + std::string(len, char('a' + i % 26));
      auto f = h_.create(big->ino, name);
      ASSERT_TRUE(f.ok()) << name;
      files_.push_back(f->ino);
    }
    for (int i = 0; i < 14; ++i) make_file(i);
    for (int i = 0; i < 6; ++i) {
      const size_t len =
          i % 2 ? 1 + rng_() % kInlineSymlinkMax
                : kInlineSymlinkMax + 1 + rng_() % (4095 - kInlineSymlinkMax);
      std::string target = pattern(rng_(), len);
      ASSERT_TRUE(h_.symlink(target, pick_dir(), fmt::format("sym{}", i)).ok());
    }
    const uint32_t nodes[] = {S_IFCHR | 0644, S_IFBLK | 0600, S_IFIFO | 0644,
                              S_IFSOCK | 0755};
    for (int i = 0; i < 4; ++i) {
      auto n = h_.mknod(pick_dir(), fmt::format("node{}", i), nodes[i],
                        makedev(1 + i, 3));
      ASSERT_TRUE(n.ok());
      if (i == 0) (void)h_.setxattr(n->ino, "trusted.dev", "x");
    }
    // Hard links, some across directories.
    for (int i = 0; i < 5; ++i) {
      const fs::Ino f = files_[rng_() % files_.size()];
      (void)h_.link(f, pick_dir(), fmt::format("link{}", i));
    }
    // Xattrs on files and directories, small and large (up to 64 KiB, a
    // record of 17 blocks).
    for (int i = 0; i < 10; ++i) {
      const fs::Ino ino = i % 3 == 0 ? dirs_[rng_() % dirs_.size()]
                                     : files_[rng_() % files_.size()];
      const size_t len =
          i % 4 == 0 ? 4096 + rng_() % (kXattrMaxValue - 4096) : rng_() % 200;
      ASSERT_EQ(
          h_.setxattr(ino, fmt::format("user.x{}", i), pattern(rng_(), len)),
          0);
    }
    // One inode with many: a chain of slot blocks, small entries (some
    // replaced by larger ones, some removed) and record references.
    const fs::Ino many = files_[rng_() % files_.size()];
    const int nattrs = 150 + int(rng_() % 100);
    for (int i = 0; i < nattrs; ++i) {
      const size_t len = i % 25 == 0 ? 600 + rng_() % 6000 : rng_() % 40;
      ASSERT_EQ(
          h_.setxattr(many, fmt::format("user.m{}", i), pattern(rng_(), len)),
          0);
    }
    for (int i = 0; i < nattrs; i += 7) {
      if (i % 2) {
        ASSERT_EQ(h_.removexattr(many, fmt::format("user.m{}", i)), 0);
      } else {
        ASSERT_EQ(
            h_.setxattr(many, fmt::format("user.m{}", i), pattern(rng_(), 300)),
            0);
      }
    }
    // Changes that leave free slots and freed blocks behind.
    ASSERT_EQ(h_.unlink(big->ino, h_.list(big->ino)[5]), 0);
    (void)h_.rename(fs::kRootIno, "f1", dirs_[1], "f1-moved");
    auto gone = h_.mkdir(dirs_[2], "gone", 0700);
    ASSERT_TRUE(gone.ok());
    ASSERT_EQ(h_.rmdir(dirs_[2], "gone"), 0);
    // An orphan: unlinked while open; the pool is closed with it open.
    auto orphan =
        h_.create(fs::kRootIno, "orphan", 0644, O_RDWR | O_CREAT, true);
    ASSERT_TRUE(orphan.ok());
    ASSERT_TRUE(h_.write(orphan->ino, 0, pattern(7, 10000)).ok());
    ASSERT_EQ(h_.unlink(fs::kRootIno, "orphan"), 0);
    // The last transaction stays committed in the journal.
    ASSERT_TRUE(h_.write(files_.back(), 0, pattern(9, 100)).ok());
  }

 private:
  fs::Ino pick_dir() { return dirs_[rng_() % dirs_.size()]; }

  void write(fs::Ino ino, uint64_t off, size_t len) {
    ASSERT_TRUE(h_.write(ino, off, pattern(ino + off, len)).ok())
        << off << "+" << len;
  }

  void make_file(int i) {
    auto f =
        h_.create(i < 4 ? fs::kRootIno : pick_dir(), fmt::format("f{}", i));
    ASSERT_TRUE(f.ok());
    const fs::Ino ino = f->ino;
    files_.push_back(ino);
    switch (i % 7) {
      case 0:  // empty
        break;
      case 1:  // under a block
        write(ino, 0, 1 + rng_() % 4000);
        break;
      case 2:  // several blocks, then a copy-on-write overwrite inside
        write(ino, 0, (3 + rng_() % 60) * kBlockSize + rng_() % 4096);
        write(ino, kBlockSize + 100, 20000);
        break;
      case 3:  // fragmented: every other block, more extents than a chain
               // block holds
      {
        const uint64_t blocks = 2 * (100 + rng_() % 60);
        for (uint64_t b = 0; b < blocks; b += 2)
          write(ino, b * kBlockSize, kBlockSize);
        break;
      }
      case 4:  // sparse: data far apart, holes between
        write(ino, 0, 5000);
        write(ino, (1000 + rng_() % 5000) * kBlockSize, 3000);
        write(ino, (1ull << 30) + rng_() % 4096, 100);
        break;
      case 5:  // fallocated ranges: unwritten, beyond the size, punched
        write(ino, 0, 3 * kBlockSize);
        ASSERT_EQ(h_.fallocate(ino, 0, 8 * kBlockSize, 16 * kBlockSize), 0);
        ASSERT_EQ(h_.fallocate(ino, FALLOC_FL_KEEP_SIZE, 30 * kBlockSize,
                               8 * kBlockSize),
                  0);
        write(ino, 10 * kBlockSize, 100);
        ASSERT_EQ(h_.fallocate(ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               kBlockSize, kBlockSize),
                  0);
        break;
      case 6:  // grown and shrunk
        write(ino, 0, 40 * kBlockSize);
        ASSERT_TRUE(h_.truncate(ino, 12345).ok());
        ASSERT_TRUE(h_.truncate(ino, 200000).ok());
        break;
    }
  }

  test::PmFsHarness& h_;
  std::mt19937_64 rng_;
  std::vector<fs::Ino> dirs_;
  std::vector<fs::Ino> files_;
};

std::vector<std::byte> read_pool(const std::string& path) {
  std::vector<std::byte> out(kPoolSize);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_TRUE(fd) << path;
  if (!fd) return {};
  EXPECT_EQ(::pread(fd.get(), out.data(), out.size(), 0), ssize_t(out.size()));
  return out;
}

bool write_pool(const std::string& path, const std::vector<std::byte>& image) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  return fd && ::pwrite(fd.get(), image.data(), image.size(), 0) ==
                   ssize_t(image.size());
}

// --- where damage can land ---------------------------------------------------

// A field of a structure: its offset inside the structure and its width.
struct Field {
  uint32_t off;
  uint32_t width;
};

enum class Where : uint8_t {
  Inode,
  FreeInode,
  ExtentHeader,
  Extent,
  DirHeader,
  Dirent,
  XattrHeader,
  XattrEntry,
  XattrRecord,
  XattrSlotHeader,
  XattrSlot,
  SymlinkBlock,
  JournalHeader,
  JournalRecords,
  Superblock,
};

struct Target {
  Where where;
  uint64_t off;  // pool offset of the structure
  uint64_t len;  // its length (for byte damage)
};

const std::vector<Field>& fields_of(Where w) {
  static const std::map<Where, std::vector<Field>> table = {
      {Where::Inode,
       {{offsetof(DiskInode, flags), 4},
        {offsetof(DiskInode, mode), 4},
        {offsetof(DiskInode, nlink), 4},
        {offsetof(DiskInode, rdev), 4},
        {offsetof(DiskInode, size), 8},
        {offsetof(DiskInode, blocks), 8},
        {offsetof(DiskInode, extent_head), 8},
        {offsetof(DiskInode, dir_head), 8},
        {offsetof(DiskInode, xattr_block), 8},
        {offsetof(DiskInode, parent), 8},
        {offsetof(DiskInode, inline_data), 8},
        {offsetof(DiskInode, generation), 8}}},
      {Where::FreeInode,
       {{offsetof(DiskInode, flags), 4}, {offsetof(DiskInode, mode), 4}}},
      {Where::ExtentHeader,
       {{offsetof(ExtentBlockHeader, magic), 4},
        {offsetof(ExtentBlockHeader, ino), 8},
        {offsetof(ExtentBlockHeader, next), 8}}},
      {Where::Extent,
       {{offsetof(DiskExtent, file_block), 8},
        {offsetof(DiskExtent, pool_block), 8},
        {offsetof(DiskExtent, count), 4},
        {offsetof(DiskExtent, flags), 4}}},
      {Where::DirHeader,
       {{offsetof(DirBlockHeader, magic), 4},
        {offsetof(DirBlockHeader, ino), 8},
        {offsetof(DirBlockHeader, next), 8}}},
      {Where::Dirent,
       {{offsetof(DirentHeader, nslots), 1},
        {offsetof(DirentHeader, type), 1},
        {offsetof(DirentHeader, namelen), 2},
        {offsetof(DirentHeader, ino), 8},
        {sizeof(DirentHeader), 1},
        {sizeof(DirentHeader) + 1, 2}}},
      {Where::XattrHeader,
       {{offsetof(XattrTableHeader, magic), 4},
        {offsetof(XattrTableHeader, ino), 8}}},
      {Where::XattrEntry,
       {{offsetof(XattrEntry, block), 8}, {offsetof(XattrEntry, nblocks), 4}}},
      {Where::XattrRecord,
       {{offsetof(XattrRecordHeader, namelen), 2},
        {offsetof(XattrRecordHeader, valuelen), 4},
        {sizeof(XattrRecordHeader), 1}}},
      {Where::XattrSlotHeader,
       {{offsetof(XattrSlotBlockHeader, magic), 4},
        {offsetof(XattrSlotBlockHeader, ino), 8},
        {offsetof(XattrSlotBlockHeader, next), 8}}},
      {Where::XattrSlot,
       {{offsetof(XattrSlotHeader, nslots), 1},
        {offsetof(XattrSlotHeader, flags), 1},
        {offsetof(XattrSlotHeader, namelen), 2},
        {offsetof(XattrSlotHeader, valuelen), 4},
        {sizeof(XattrSlotHeader), 8},        // name, or the record's block
        {sizeof(XattrSlotHeader) + 8, 4}}},  // name, or its nblocks
      {Where::SymlinkBlock, {{0, 1}, {100, 8}}},
      {Where::JournalHeader,
       {{offsetof(JournalHeader, magic), 8},
        {offsetof(JournalHeader, commit), 8},
        {offsetof(JournalHeader, seq), 8},
        {offsetof(JournalHeader, bytes), 8}}},
      {Where::JournalRecords,
       {{offsetof(JournalRecord, dest), 8},
        {offsetof(JournalRecord, len), 4},
        {sizeof(JournalRecord), 8}}},
      {Where::Superblock,
       {{offsetof(Superblock, total_blocks), 8},
        {offsetof(Superblock, journal_start), 8},
        {offsetof(Superblock, inode_count), 8},
        {offsetof(Superblock, features_compat), 8},
        {offsetof(Superblock, label), 4}}},
  };
  return table.at(w);
}

// Finds every structure of a pool pmfs built (a valid pool: no checks
// beyond bounds and a step limit).
class TargetMap {
 public:
  explicit TargetMap(const std::vector<std::byte>& img) : img_(img) {
    std::memcpy(&sb_, img.data(), sizeof(sb_));
    add(Where::Superblock, 0, sizeof(Superblock));
    add(Where::Superblock, kBlockSize, sizeof(Superblock));
    const uint64_t joff = journal_offset(sb_);
    const auto jh = get<JournalHeader>(joff);
    add(Where::JournalHeader, joff, sizeof(JournalHeader));
    for (uint64_t pos = 0;
         pos + sizeof(JournalRecord) <= jh.bytes && pos < kBlockSize * 4;) {
      const auto r = get<JournalRecord>(joff + sizeof(JournalHeader) + pos);
      add(Where::JournalRecords, joff + sizeof(JournalHeader) + pos,
          sizeof(JournalRecord) + 8);
      pos += sizeof(JournalRecord) + ((uint64_t(r.len) + 7) & ~uint64_t(7));
    }
    int free_seen = 0;
    for (uint64_t ino = 1; ino <= sb_.inode_count; ++ino) {
      const uint64_t off = inode_offset(sb_, ino);
      const auto d = get<DiskInode>(off);
      if (!(d.flags & kInodeInUse)) {
        if (free_seen++ < 8) add(Where::FreeInode, off, kInodeSize);
        continue;
      }
      add(Where::Inode, off, kInodeSize);
      inodes_.push_back(ino);
      chain(d.extent_head, Where::ExtentHeader, [&](uint64_t b) {
        for (size_t s = 0; s < kExtentsPerBlock; ++s) {
          const uint64_t eo = b * kBlockSize + sizeof(ExtentBlockHeader) +
                              s * sizeof(DiskExtent);
          const auto x = get<DiskExtent>(eo);
          if (x.flags == 0) continue;
          add(Where::Extent, eo, sizeof(DiskExtent));
          if ((d.mode & S_IFMT) == S_IFLNK)
            add(Where::SymlinkBlock, x.pool_block * kBlockSize, d.size);
        }
      });
      chain(d.dir_head, Where::DirHeader, [&](uint64_t b) {
        for (size_t s = 0; s < kDirSlots;) {
          const uint64_t eo = b * kBlockSize + (s + 1) * kDirSlotSize;
          const auto e = get<DirentHeader>(eo);
          if (e.nslots == 0) {
            ++s;
            continue;
          }
          add(Where::Dirent, eo, e.nslots * kDirSlotSize);
          s += e.nslots;
        }
      });
      // The xattr chain: tables and slot blocks (`next` at the same
      // offset in both).
      std::unordered_set<uint64_t> xseen;
      for (uint64_t b = d.xattr_block;
           b != 0 && b < sb_.total_blocks && xseen.insert(b).second;
           b = get<XattrSlotBlockHeader>(b * kBlockSize).next) {
        const uint64_t t = b * kBlockSize;
        if (get<uint32_t>(t + 4) == kXattrSlotBlockMagic) {
          add(Where::XattrSlotHeader, t, sizeof(XattrSlotBlockHeader));
          for (size_t s = 0; s < kXattrSlots;) {
            const uint64_t eo = t + (s + 1) * kXattrSlotSize;
            const auto e = get<XattrSlotHeader>(eo);
            if (e.nslots == 0) {
              ++s;
              continue;
            }
            add(Where::XattrSlot, eo, e.nslots * kXattrSlotSize);
            if (e.flags & kXattrSlotRecord) {
              const auto ref = get<XattrRecordRef>(eo + sizeof(e));
              add(Where::XattrRecord, ref.block * kBlockSize,
                  sizeof(XattrRecordHeader) + 8);
            }
            s += e.nslots;
          }
          continue;
        }
        add(Where::XattrHeader, t, sizeof(XattrTableHeader));
        for (size_t k = 0; k < kXattrsPerTable; ++k) {
          const uint64_t eo =
              t + sizeof(XattrTableHeader) + k * sizeof(XattrEntry);
          const auto e = get<XattrEntry>(eo);
          if (e.block == 0) continue;
          add(Where::XattrEntry, eo, sizeof(XattrEntry));
          add(Where::XattrRecord, e.block * kBlockSize,
              sizeof(XattrRecordHeader) + 8);
        }
      }
    }
  }

  const Superblock& sb() const { return sb_; }
  const std::vector<Target>& all() const { return targets_; }
  // In-use inode numbers and metadata block numbers: values that make
  // cross-links, shared blocks and wrong names.
  const std::vector<uint64_t>& inodes() const { return inodes_; }
  const std::vector<uint64_t>& blocks() const { return blocks_; }

 private:
  template <class T>
  T get(uint64_t off) const {
    T v{};
    if (off <= img_.size() && sizeof(T) <= img_.size() - off)
      std::memcpy(&v, img_.data() + off, sizeof(T));
    return v;
  }
  void add(Where w, uint64_t off, uint64_t len) {
    if (off >= img_.size() || len > img_.size() - off) return;
    targets_.push_back({w, off, len});
    if (off / kBlockSize >= sb_.data_start && off % kBlockSize == 0)
      blocks_.push_back(off / kBlockSize);
  }
  template <class F>
  void chain(uint64_t head, Where header, F&& each) {
    std::unordered_set<uint64_t> seen;
    for (uint64_t b = head; b != 0 && b < sb_.total_blocks &&
                            seen.insert(b).second && seen.size() < 1000;) {
      add(header, b * kBlockSize, 32);
      each(b);
      // `next` lies at the same offset in both kinds of chain block.
      b = get<ExtentBlockHeader>(b * kBlockSize).next;
    }
  }

  const std::vector<std::byte>& img_;  // read while constructing only
  Superblock sb_{};
  std::vector<Target> targets_;
  std::vector<uint64_t> inodes_;
  std::vector<uint64_t> blocks_;
};

// --- damage ------------------------------------------------------------------

class Damager {
 public:
  Damager(const TargetMap& map, std::vector<std::byte>& img,
          std::mt19937_64& rng)
      : map_(map), img_(img), rng_(rng) {}

  // 1 to 8 patches (mostly 1 to 3), then, half the time, every checksum
  // resealed. Returns a description of what was done.
  std::string run() {
    std::string what;
    const int patches = 1 + int(rng_() % (rng_() % 4 == 0 ? 8 : 3));
    bool touched_sb = false;
    for (int p = 0; p < patches; ++p) {
      Target t = map_.all()[rng_() % map_.all().size()];
      if (t.where == Where::Superblock) {
        // One copy at most: two bad copies are not a pmfs pool any more.
        if (touched_sb || rng_() % 4 != 0) continue;
        touched_sb = true;
      }
      what += patch(t) + "; ";
    }
    if (rng_() % 2 == 0) {
      sample::reseal(img_);
      what += "resealed";
    }
    return what;
  }

 private:
  uint64_t value(uint64_t cur, uint32_t width) {
    const uint64_t data_start = map_.sb().data_start;
    const uint64_t total = map_.sb().total_blocks;
    switch (rng_() % 11) {
      case 0:
        return cur ^ (uint64_t(1) << (rng_() % (width * 8)));
      case 1:
        return rng_() % 4;
      case 2:
        return cur + 1 + rng_() % 3;
      case 3:
        return cur - 1 - rng_() % 3;
      case 4:
        return data_start + rng_() % (total - data_start);  // some block
      case 5:
        return 1 + rng_() % 300;  // some inode
      case 6: {
        const uint64_t huge[] = {
            uint64_t(1) << 63,   ~uint64_t(0),
            uint64_t(INT64_MAX), (uint64_t(1) << 63) + 4096,
            uint64_t(1) << 51,   (uint64_t(1) << 51) - 1,
            uint64_t(UINT32_MAX)};
        return huge[rng_() % std::size(huge)];
      }
      case 7:
        return 0;
      case 8:  // a block some structure uses
        if (!map_.blocks().empty())
          return map_.blocks()[rng_() % map_.blocks().size()];
        return 0;
      case 9:  // an inode in use
        return map_.inodes()[rng_() % map_.inodes().size()];
      default:
        return rng_();
    }
  }

  std::string patch(const Target& t) {
    const auto& fields = fields_of(t.where);
    const unsigned kind = rng_() % 12;
    if (kind == 0 && t.where != Where::Superblock) {
      // Another structure of the same kind copied over this one: shared
      // blocks, duplicate names, a second owner.
      std::vector<const Target*> same;
      for (const Target& o : map_.all()) {
        if (o.where == t.where && o.off != t.off && o.len == t.len)
          same.push_back(&o);
      }
      if (same.empty()) return "none";
      const Target& from = *same[rng_() % same.size()];
      std::memmove(img_.data() + t.off, img_.data() + from.off, t.len);
      return fmt::format("{} copied over {} ({} bytes)", from.off, t.off,
                         t.len);
    }
    if (kind == 1 && t.where != Where::Superblock) {
      std::memset(img_.data() + t.off, 0,
                  std::min<uint64_t>(t.len, kInodeSize));
      return fmt::format("{} zeroed", t.off);
    }
    if (kind != 2 || t.where == Where::SymlinkBlock) {
      // A field, set to a value chosen to reach a check.
      const Field f = fields[rng_() % fields.size()];
      if (f.off + f.width > t.len && t.where != Where::SymlinkBlock)
        return "none";
      const uint64_t off = t.off + f.off;
      if (off + f.width > img_.size()) return "none";
      uint64_t cur = 0;
      std::memcpy(&cur, img_.data() + off, f.width);
      const uint64_t v = value(cur, f.width);
      std::memcpy(img_.data() + off, &v, f.width);
      return fmt::format("{}+{} ({} bytes) = {:#x}", t.off, f.off, f.width, v);
    }
    // Raw bytes anywhere in the structure.
    const uint64_t off = t.off + rng_() % t.len;
    const size_t n = std::min<uint64_t>(1 + rng_() % 8, img_.size() - off);
    for (size_t i = 0; i < n; ++i) img_[off + i] = std::byte(uint8_t(rng_()));
    return fmt::format("{} ({} random bytes)", off, n);
  }

  const TargetMap& map_;
  std::vector<std::byte>& img_;
  std::mt19937_64& rng_;
};

// --- after the repair: everything reachable can be listed and read -----------

class Walker {
 public:
  explicit Walker(test::PmFsHarness& h) : h_(h) {}

  // Empty when everything reachable answered; else what did not.
  std::string run() {
    std::vector<fs::Ino> dirs{fs::kRootIno};
    std::set<fs::Ino> seen{fs::kRootIno};
    if (!h_.getattr(fs::kRootIno).ok()) return "getattr of the root failed";
    while (!dirs.empty()) {
      const fs::Ino d = dirs.back();
      dirs.pop_back();
      std::vector<std::string> names;
      if (std::string e = list(d, &names); !e.empty()) return e;
      for (const std::string& name : names) {
        auto e = h_.lookup(d, name);
        if (!e.ok())
          return fmt::format("lookup of '{}' in directory {} failed: errno {}",
                             name, d, test::err_of(e));
        const fs::Ino ino = e->ino;
        auto a = h_.getattr(ino);
        if (!a.ok()) return fmt::format("getattr of inode {} failed", ino);
        if (std::string x = xattrs(ino); !x.empty()) return x;
        if (!seen.insert(ino).second) continue;
        const uint32_t mode = a->mode;
        if (S_ISDIR(mode)) dirs.push_back(ino);
        if (S_ISREG(mode)) {
          if (std::string r = read_file(ino, a->size); !r.empty()) return r;
        }
        if (S_ISLNK(mode)) {
          auto t = h_.readlink(ino);
          if (!t.ok() || t->size() != a->size) {
            return fmt::format("readlink of inode {} failed or is not {} bytes",
                               ino, a->size);
          }
        }
      }
    }
    return {};
  }

 private:
  std::string list(fs::Ino d, std::vector<std::string>* names) {
    uint64_t off = 0;
    std::set<uint64_t> offsets{0};
    for (;;) {
      auto c = h_.readdir(d, off);
      if (c->kind != test::Call::kDir)
        return fmt::format("readdir of directory {} failed: errno {}", d,
                           c->err);
      if (c->dir.empty()) return {};
      for (const auto& e : c->dir) {
        if (e.name != "." && e.name != "..") names->push_back(e.name);
      }
      off = c->dir.back().next_off;
      if (!offsets.insert(off).second || names->size() > kMaxListed) {
        return fmt::format("readdir of directory {} does not end", d);
      }
    }
  }

  std::string read_range(fs::Ino ino, uint64_t from, uint64_t to) {
    for (uint64_t off = from; off < to;) {
      const uint32_t want = uint32_t(std::min<uint64_t>(kReadChunk, to - off));
      auto r = h_.read(ino, off, want);
      if (!r.ok())
        return fmt::format("read of inode {} at {} failed: errno {}", ino, off,
                           test::err_of(r));
      if (r->size() != want) {
        return fmt::format("read of inode {} at {} answered {} bytes, not {}",
                           ino, off, r->size(), want);
      }
      off += want;
    }
    return {};
  }

  std::string read_file(fs::Ino ino, uint64_t size) {
    if (std::string r = read_range(ino, 0, std::min(size, kReadHead));
        !r.empty())
      return r;
    if (size > kReadHead)
      return read_range(ino, std::max(kReadHead, size - kReadTail), size);
    return {};
  }

  std::string xattrs(fs::Ino ino) {
    auto l = h_.listxattr(ino);
    if (!l.ok())
      return fmt::format("listxattr of inode {} failed: errno {}", ino,
                         test::err_of(l));
    std::string_view all = *l;
    while (!all.empty()) {
      const size_t nul = all.find('\0');
      const std::string name(all.substr(0, nul));
      all = nul == std::string_view::npos ? std::string_view()
                                          : all.substr(nul + 1);
      auto v = h_.getxattr(ino, name);
      // A damaged but intact-looking name may lie outside the namespaces
      // the file system serves, or be one this type of file cannot have
      // (user.* on a device): pmfs refuses those by rule, and that is no
      // sign of damage.
      const int err = test::err_of(v);
      if (err == EOPNOTSUPP || err == EINVAL || err == ERANGE ||
          err == ENODATA || err == EPERM) {
        continue;
      }
      if (!v.ok())
        return fmt::format("getxattr '{}' of inode {} failed: errno {}", name,
                           ino, test::err_of(v));
    }
    return {};
  }

  test::PmFsHarness& h_;
};

// --- the rounds --------------------------------------------------------------

class FsckRepairMountTest : public ::testing::Test {
 protected:
  // Mount logs every orphan it frees and every superblock it rewrites.
  static void SetUpTestSuite() {
    saved_level_ = log_level();
    set_log_level(LogLevel::Error);
  }
  static void TearDownTestSuite() { set_log_level(saved_level_); }

  void SetUp() override {
    for (int i = 0; i < kBasePools; ++i) {
      test::PmFsHarness h(kPoolSize, mkfs_options());
      TreeBuilder(h, 1000 + i).build();
      if (HasFatalFailure()) return;
      h.close();
      bases_.push_back(read_pool(h.path()));
      // The pool as built is clean and mounts: otherwise every verdict
      // below is noise.
      std::string why;
      auto r = fsck(h.path(), {}, &why);
      ASSERT_TRUE(r.ok()) << why;
      ASSERT_EQ(r->exit_code(), 0) << "base pool " << i << "\n" << dump(*r);
    }
    for (const auto& b : bases_) maps_.emplace_back(b);
  }

  static MkfsOptions mkfs_options() {
    MkfsOptions o = test::PmFsHarness::default_mkfs();
    o.journal_blocks = 64;
    return o;
  }

  // One round; empty when it passed, else what failed (the first line
  // names the class, for the summary). A third of the rounds that pass
  // damage the repaired (and mounted) pool again, and so on: pools that
  // fsck wrote, with a /lost+found, get damaged too.
  std::string round(test::PmFsHarness& h, uint64_t seed, bool verbose) {
    std::mt19937_64 rng(seed);
    const size_t base = seed % kBasePools;
    std::vector<std::byte> img = bases_[base];
    std::optional<TargetMap> again;
    std::string log;
    for (int gen = 1;; ++gen) {
      const TargetMap& map = gen == 1 ? maps_[base] : again.emplace(img);
      log += fmt::format("  generation {} damage: {}\n", gen,
                         Damager(map, img, rng).run());
      h.close();
      if (!write_pool(h.path(), img)) return "cannot write the pool file";
      if (std::string fail = repair_and_mount(h, &log); !fail.empty())
        return fail;
      if (gen == 4 || rng() % 3 != 0) break;
      img = read_pool(h.path());
    }
    if (verbose) std::cout << log;
    return {};
  }

  // Repairs the pool until fsck repairs nothing more, then checks it,
  // mounts it and walks it. `log` collects the fsck reports.
  static std::string repair_and_mount(test::PmFsHarness& h, std::string* log) {
    FsckOptions repair;
    repair.repair = true;
    bool settled = false;
    for (int run = 0; run < kMaxRepairRuns && !settled; ++run) {
      std::string why;
      auto r = fsck(h.path(), repair, &why);
      if (!r.ok()) return "fsck --repair could not run: " + why;
      if (r->exit_code() == 8)
        return "fsck --repair: operational error\n" + *log + dump(*r);
      *log += fmt::format("  repair run {} (exit {}):\n{}", run + 1,
                          r->exit_code(), dump(*r));
      settled = r->repairs.empty();
    }
    if (!settled) return "fsck --repair does not settle\n" + *log;

    std::string why;
    auto check = fsck(h.path(), {}, &why);
    if (!check.ok()) return "fsck could not run: " + why;
    if (check->exit_code() != 0) {
      return fmt::format("fsck after repair: {}\n",
                         check->errors.empty() ? "?" : check->errors[0]) +
             *log + dump(*check);
    }
    if (!h.mount())
      return fmt::format("mount refuses the repaired pool: {}\n", h.why()) +
             *log;
    const std::string walk = Walker(h).run();
    h.close();
    if (!walk.empty()) return fmt::format("walk: {}\n", walk) + *log;
    // Mount (orphans freed, truncates finished) keeps a clean pool clean.
    auto after = fsck(h.path(), {}, &why);
    if (!after.ok()) return "fsck could not run: " + why;
    if (after->exit_code() != 0) {
      return fmt::format("fsck after mount and walk: {}\n",
                         after->errors.empty() ? "?" : after->errors[0]) +
             *log + dump(*after);
    }
    return {};
  }

  static inline LogLevel saved_level_ = LogLevel::Info;
  std::vector<std::vector<std::byte>> bases_;
  std::vector<TargetMap> maps_;
};

TEST_F(FsckRepairMountTest, RepairedPoolsAreCleanAndMount) {
  test::PmFsHarness h(kPoolSize, mkfs_options());
  if (const char* only = std::getenv("ZEST_REPAIR_SEED"); only && *only) {
    const uint64_t seed = std::strtoull(only, nullptr, 10);
    const std::string fail = round(h, seed, true);
    EXPECT_TRUE(fail.empty()) << "seed " << seed << ": " << fail;
    return;
  }
  const int rounds = soak() ? kSoakRounds : kDefaultRounds;
  // Failures by shape: how many, and the first seed.
  std::map<std::string, std::pair<int, uint64_t>> classes;
  int failed = 0;
  for (int i = 0; i < rounds; ++i) {
    const uint64_t seed = uint64_t(i);
    const std::string fail = round(h, seed, false);
    if (fail.empty()) continue;
    ++failed;
    auto& c = classes[shape(fail.substr(0, fail.find('\n')))];
    if (c.first++ == 0) c.second = seed;
    if (failed <= 5) {
      ADD_FAILURE() << "seed " << seed << " (ZEST_REPAIR_SEED=" << seed
                    << " repeats it): " << fail;
    }
  }
  std::string summary;
  for (const auto& [what, c] : classes) {
    summary +=
        fmt::format("  {} x{} (first seed {})\n", what, c.first, c.second);
  }
  EXPECT_EQ(failed, 0) << failed << " of " << rounds << " rounds failed:\n"
                       << summary;
  std::cout << fmt::format("{} rounds, {} failed\n{}", rounds, failed, summary);
}

}  // namespace
}  // namespace zest::pmfs
