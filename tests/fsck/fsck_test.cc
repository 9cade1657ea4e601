// fsck: a clean tree passes; each corruption class is found, named, and
// (where repairable) repaired so that a second run is clean.
#include "pmfs/fsck.h"

#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "pmem/pool.h"
#include "pmfs/fuzz/sample_image.h"
#include "tests/pmem/temp_dir.h"

namespace zest::pmfs {
namespace {

using sample::ImageBuilder;

std::string dump(const FsckReport& r) {
  std::string s;
  for (const auto& e : r.errors) s += "  error: " + e + "\n";
  for (const auto& e : r.repairs) s += "  repair: " + e + "\n";
  for (const auto& e : r.notes) s += "  note: " + e + "\n";
  for (const auto& e : r.uncorrected) s += "  uncorrected: " + e + "\n";
  return s;
}

bool mentions(const std::vector<std::string>& list, const std::string& what) {
  for (const auto& s : list) {
    if (s.find(what) != std::string::npos) return true;
  }
  return false;
}

// A small tree:  /d/g (1 block), /f (4 blocks, 2 extents, 2 xattrs),
// /s -> "d/g", /d/e (empty dir), /p (fifo).
class FsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MkfsOptions o;
    o.journal_blocks = 16;
    std::string why;
    auto b = ImageBuilder::create(4 << 20, o, &why);
    ASSERT_TRUE(b.ok()) << why;
    b_.emplace(std::move(*b));
    d_ = b_->mkdir(kRootIno, "d");
    f_ = b_->create_file(kRootIno, "f", 4, 2);
    g_ = b_->create_file(d_, "g", 1);
    e_ = b_->mkdir(d_, "e");
    s_ = b_->symlink(kRootIno, "s", "d/g");
    p_ = b_->mkfifo(kRootIno, "p");
    b_->set_xattr(f_, "user.one", "1");
    b_->set_xattr(f_, "user.two", std::string(6000, 'z'));
  }

  ImageBuilder& b() { return *b_; }

  // Saves the image as a new pool file and checks it read-only.
  FsckReport check() {
    path_ = dir_.file(fmt::format("pool{}", n_++));
    std::string why;
    EXPECT_TRUE(b_->save(path_, &why).ok()) << why;
    // The in-memory entry point and the file one agree.
    FsckReport mem = fsck_image(b_->image());
    auto r = fsck(path_, {}, &why);
    EXPECT_TRUE(r.ok()) << why;
    EXPECT_EQ(mem.errors, r->errors);
    return *r;
  }
  FsckReport run_on_file(bool repair) {
    std::string why;
    FsckOptions o;
    o.repair = repair;
    auto r = fsck(path_, o, &why);
    EXPECT_TRUE(r.ok()) << why;
    return r.ok() ? *r : FsckReport{};
  }

  // The common shape of a corruption test: the read-only check finds
  // `error`; repair corrects everything; a second check is clean.
  void expect_repairable(const std::string& error) {
    FsckReport r = check();
    EXPECT_EQ(r.exit_code(), 4) << dump(r);
    EXPECT_TRUE(mentions(r.errors, error)) << "wanted '" << error << "' in\n"
                                           << dump(r);
    FsckReport fixed = run_on_file(true);
    EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
    EXPECT_FALSE(fixed.repairs.empty());
    FsckReport again = run_on_file(false);
    EXPECT_EQ(again.exit_code(), 0) << dump(again);
  }

  uint64_t ioff(uint64_t ino) { return b_->inode_off(ino); }
  template <class F>
  void edit_inode(uint64_t ino, F&& f) {
    DiskInode d = b_->inode(ino);
    f(d);
    b_->put_inode(ino, d);
  }
  void flip(uint64_t off) {
    auto v = b_->get<uint8_t>(off);
    v ^= 0x10;
    b_->write(off, &v, 1);
  }

  pmem::testing::TempDir dir_;
  std::optional<ImageBuilder> b_;
  std::string path_;
  int n_ = 0;
  uint64_t d_ = 0, f_ = 0, g_ = 0, e_ = 0, s_ = 0, p_ = 0;
};

TEST_F(FsckTest, CleanTreePasses) {
  std::vector<std::string> progress;
  std::string why;
  path_ = dir_.file("clean");
  ASSERT_TRUE(b().save(path_, &why).ok()) << why;
  FsckOptions o;
  o.progress = [&](const std::string& p) { progress.push_back(p); };
  auto r = fsck(path_, o, &why);
  ASSERT_TRUE(r.ok()) << why;
  EXPECT_EQ(r->exit_code(), 0) << dump(*r);
  EXPECT_TRUE(r->errors.empty());
  EXPECT_EQ(r->inodes_checked, 7u);
  EXPECT_EQ(r->dirents_checked, 6u);
  EXPECT_EQ(r->extents_checked, 3u);  // f: 2, g: 1 (s is inline)
  // 2 dir blocks (root, d), data 4 + 1, extent blocks 2, xattr table + 1 + 2.
  EXPECT_EQ(r->blocks_in_use, 2u + 5u + 2u + 1u + 1u + 2u);
  EXPECT_TRUE(mentions(progress, "checking superblocks"));
  EXPECT_TRUE(mentions(progress, "inodes "));
  // Repair on a clean pool changes nothing.
  o.repair = true;
  auto rr = fsck(path_, o, &why);
  ASSERT_TRUE(rr.ok()) << why;
  EXPECT_EQ(rr->exit_code(), 0) << dump(*rr);
}

TEST_F(FsckTest, FreshMkfsIsClean) {
  std::string why;
  auto fresh = ImageBuilder::create(1 << 20, {.journal_blocks = 4}, &why);
  ASSERT_TRUE(fresh.ok()) << why;
  FsckReport r = fsck_image(fresh->image());
  EXPECT_EQ(r.exit_code(), 0) << dump(r);
}

TEST_F(FsckTest, NotAPool) {
  std::vector<std::byte> zeros(1 << 20);
  FsckReport r = fsck_image(zeros);
  EXPECT_EQ(r.exit_code(), 8) << dump(r);
  std::string why;
  auto missing = fsck(dir_.file("missing"), {}, &why);
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(why.find("missing"), std::string::npos) << why;
}

TEST_F(FsckTest, PoolInUseIsAnOperationalError) {
  path_ = dir_.file("busy");
  std::string why;
  ASSERT_TRUE(b().save(path_, &why).ok()) << why;
  auto held =
      pmem::PoolMap::open(path_, {}, &why);  // exclusive, as a server holds it
  ASSERT_TRUE(held.ok()) << why;
  auto r = fsck(path_, {}, &why);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), Errno(EBUSY));
  EXPECT_NE(why.find("in use"), std::string::npos) << why;
}

TEST_F(FsckTest, BadSuperblockA) {
  flip(offsetof(Superblock, label));
  FsckReport r = check();
  EXPECT_TRUE(mentions(r.errors,
                       "superblock A (block 0): superblock checksum mismatch"))
      << dump(r);
  FsckReport fixed = run_on_file(true);
  EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
  EXPECT_TRUE(fixed.superblock_repaired);
  EXPECT_EQ(run_on_file(false).exit_code(), 0);
}

TEST_F(FsckTest, BadSuperblockB) {
  flip(kBlockSize + offsetof(Superblock, uuid));
  expect_repairable("superblock B (block 1)");
}

TEST_F(FsckTest, BothSuperblocksBad) {
  flip(offsetof(Superblock, label));
  flip(kBlockSize + offsetof(Superblock, label));
  FsckReport r = check();
  EXPECT_EQ(r.exit_code(), 4) << dump(r);
  EXPECT_TRUE(mentions(r.errors, "no valid superblock")) << dump(r);
  FsckReport fixed = run_on_file(true);
  EXPECT_EQ(fixed.exit_code(), 4) << dump(fixed);
}

TEST_F(FsckTest, InodeChecksum) {
  flip(ioff(g_) + offsetof(DiskInode, size));
  expect_repairable(fmt::format("inode {}: checksum mismatch", g_));
}

TEST_F(FsckTest, BadMode) {
  edit_inode(g_, [](DiskInode& d) { d.mode = 0170644; });
  expect_repairable(
      fmt::format("inode {}: mode 0170644 is not a valid file type", g_));
}

TEST_F(FsckTest, ExtentOutOfRange) {
  uint64_t off = b().extent_offset(f_, 1);
  auto e = b().get<DiskExtent>(off);
  e.pool_block = b().sb().journal_start + 1;
  sample::seal_extent(&e);
  b().write(off, &e, sizeof(e));
  expect_repairable("is in the journal");
}

TEST_F(FsckTest, ExtentPastTheEnd) {
  uint64_t off = b().extent_offset(g_, 0);
  auto e = b().get<DiskExtent>(off);
  e.count = 0xfffffff0u;
  sample::seal_extent(&e);
  b().write(off, &e, sizeof(e));
  expect_repairable("reach past the end of the pool");
}

TEST_F(FsckTest, OverlappingExtents) {
  uint64_t pb = b().alloc(2);
  b().add_extent(f_, 1, pb, 2);  // f maps file blocks 0..3 already
  expect_repairable(fmt::format("inode {}: extents overlap", f_));
}

TEST_F(FsckTest, DoubleAllocationAcrossFiles) {
  auto fe = b().get<DiskExtent>(b().extent_offset(f_, 0));
  b().add_extent(g_, 10, fe.pool_block, 1);
  FsckReport r = check();
  EXPECT_TRUE(mentions(
      r.errors, fmt::format("claimed twice: by inode {} data (file blocks 0+2) "
                            "and by inode {} data (file blocks 10+1)",
                            f_, g_)))
      << dump(r);
  FsckReport fixed = run_on_file(true);
  EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
  EXPECT_EQ(run_on_file(false).exit_code(), 0);
  // The earlier owner keeps its data.
  FsckReport after = run_on_file(false);
  EXPECT_EQ(after.extents_checked, 3u);
}

TEST_F(FsckTest, MetadataBlockSharedWithData) {
  // g's data extent points at f's first extent block.
  uint64_t fchain = b().inode(f_).extent_head;
  uint64_t off = b().extent_offset(g_, 0);
  auto e = b().get<DiskExtent>(off);
  e.pool_block = fchain;
  sample::seal_extent(&e);
  b().write(off, &e, sizeof(e));
  expect_repairable("claimed twice");
}

TEST_F(FsckTest, DirentToFreeInode) {
  b().add_dirent(kRootIno, "ghost", 100, DT_REG);
  expect_repairable("entry 'ghost' refers to free inode 100");
}

TEST_F(FsckTest, DirentTypeMismatch) {
  uint64_t off = b().dirent_offset(kRootIno, "f");
  auto h = b().get<DirentHeader>(off);
  h.type = DT_DIR;
  h.csum = sample::dirent_csum(h, "f");
  b().write(off, &h, sizeof(h));
  expect_repairable("entry 'f' has type 4");
}

TEST_F(FsckTest, BadDirentName) {
  uint64_t off = b().dirent_offset(kRootIno, "f");
  auto h = b().get<DirentHeader>(off);
  char slash = '/';
  b().write(off + sizeof(h), &slash, 1);
  h.csum = sample::dirent_csum(h, "/");
  b().write(off, &h, sizeof(h));
  expect_repairable("contains '/' or NUL");
}

TEST_F(FsckTest, WrongNlink) {
  edit_inode(f_, [](DiskInode& d) { d.nlink = 2; });
  expect_repairable(
      fmt::format("inode {}: nlink 2 but 1 directory entries refer to it", f_));
}

TEST_F(FsckTest, WrongDirectoryNlink) {
  edit_inode(d_, [](DiskInode& d) { d.nlink = 2; });
  expect_repairable(
      fmt::format("directory {}: nlink 2 but it has 1 subdirectories", d_));
}

TEST_F(FsckTest, WrongParent) {
  edit_inode(e_, [](DiskInode& d) { d.parent = kRootIno; });
  expect_repairable(fmt::format(
      "directory {}: parent 1 but it is named in directory {}", e_, d_));
}

TEST_F(FsckTest, UnreachableInode) {
  uint64_t lost = b().new_inode(S_IFREG | 0644);
  edit_inode(lost, [](DiskInode& d) { d.nlink = 1; });
  expect_repairable(
      fmt::format("inode {}: in use with nlink 1 but not reachable", lost));
}

TEST_F(FsckTest, UnreachableDirectoryCycle) {
  // Two directories naming each other, neither reachable from the root.
  uint64_t x = b().new_inode(S_IFDIR | 0755);
  uint64_t y = b().new_inode(S_IFDIR | 0755);
  edit_inode(x, [&](DiskInode& d) {
    d.nlink = 3;
    d.parent = y;
  });
  edit_inode(y, [&](DiskInode& d) {
    d.nlink = 3;
    d.parent = x;
  });
  b().add_dirent(x, "y", y, DT_DIR);
  b().add_dirent(y, "x", x, DT_DIR);
  expect_repairable("not reachable from the root");
}

TEST_F(FsckTest, OrphanIsLegal) {
  uint64_t orphan = b().new_inode(S_IFREG | 0644);  // nlink 0, no entry
  FsckReport r = check();
  EXPECT_EQ(r.exit_code(), 0) << dump(r);
  EXPECT_TRUE(mentions(r.notes, fmt::format("inode {}: orphan", orphan)))
      << dump(r);
  FsckReport fixed = run_on_file(true);
  EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
  EXPECT_TRUE(
      mentions(fixed.repairs, fmt::format("inode {}: freed (orphan)", orphan)));
  FsckReport again = run_on_file(false);
  EXPECT_EQ(again.exit_code(), 0);
  EXPECT_TRUE(again.notes.empty()) << dump(again);
}

TEST_F(FsckTest, DirChainCycle) {
  // Fill d past one block so its chain has two, then point the second back
  // at the first.
  for (int i = 0; i < 70; ++i)
    b().add_dirent(d_, fmt::format("n{:02}", i), g_, DT_REG);
  edit_inode(g_, [](DiskInode& d) { d.nlink = 71; });
  uint64_t first = b().inode(d_).dir_head;
  uint64_t second = b().get<DirBlockHeader>(first * kBlockSize).next;
  ASSERT_NE(second, 0u);
  auto h = b().get<DirBlockHeader>(second * kBlockSize);
  h.next = first;
  h.csum = 0;
  h.csum = crc32c(&h, sizeof(h));
  b().write(second * kBlockSize, &h, sizeof(h));
  FsckReport r = check();
  EXPECT_TRUE(mentions(
      r.errors, fmt::format("directory {}: directory chain block {} loops back",
                            d_, first)))
      << dump(r);
  FsckReport fixed = run_on_file(true);
  EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
  EXPECT_EQ(run_on_file(false).exit_code(), 0);
}

TEST_F(FsckTest, ExtentChainCycle) {
  uint64_t head = b().inode(f_).extent_head;
  auto h = b().get<ExtentBlockHeader>(head * kBlockSize);
  h.next = head;
  h.csum = 0;
  h.csum = crc32c(&h, sizeof(h));
  b().write(head * kBlockSize, &h, sizeof(h));
  expect_repairable("loops back (cycle)");
}

TEST_F(FsckTest, DuplicateNames) {
  b().link(kRootIno, "f", g_);  // a second "f" in the root
  expect_repairable("duplicate name 'f'");
}

TEST_F(FsckTest, DirectoryHardLink) {
  b().add_dirent(kRootIno, "e-again", e_, DT_DIR);
  expect_repairable(fmt::format("is a second link to directory {}", e_));
}

TEST_F(FsckTest, XattrRecordChecksum) {
  auto entry = b().get<XattrEntry>(b().xattr_entry_offset(f_, 1));
  flip(entry.block * kBlockSize + sizeof(XattrRecordHeader) + 9 +
       5000);  // inside the value
  expect_repairable("record checksum mismatch");
}

TEST_F(FsckTest, XattrEntryOutOfRange) {
  uint64_t off = b().xattr_entry_offset(f_, 0);
  auto e = b().get<XattrEntry>(off);
  e.block = b().sb().total_blocks - 1;
  e.nblocks = 5;
  sample::seal_xattr_entry(&e);
  b().write(off, &e, sizeof(e));
  expect_repairable("reach past the end of the pool");
}

TEST_F(FsckTest, CommittedJournalNotApplied) {
  // A transaction that adds a hard link "f2": the entry is already in place
  // (dirents are journaled too, but we apply that part), f's new nlink only
  // lives in the journal. Before replay nlink is wrong; after, consistent.
  b().add_dirent(kRootIno, "f2", f_, DT_REG);
  DiskInode d = b().inode(f_);
  d.nlink = 2;
  seal(&d);
  std::vector<std::byte> bytes(sizeof(d));
  std::memcpy(bytes.data(), &d, sizeof(d));
  b().journal_commit({{ioff(f_), bytes}}, /*apply=*/false);
  // Normal after a crash (mount replays it): a note, not an error.
  FsckReport r = check();
  EXPECT_EQ(r.exit_code(), 0) << dump(r);
  EXPECT_TRUE(mentions(r.notes,
                       "journal holds a committed transaction; replay needed"));
  // The rest was checked as recovery would leave it: no nlink error.
  EXPECT_EQ(r.errors.size(), 0u) << dump(r);
  FsckReport fixed = run_on_file(true);
  EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
  EXPECT_EQ(run_on_file(false).exit_code(), 0);
}

TEST_F(FsckTest, CommittedJournalAppliedIsClean) {
  DiskInode d = b().inode(f_);
  d.mtime_sec += 5;
  seal(&d);
  std::vector<std::byte> bytes(sizeof(d));
  std::memcpy(bytes.data(), &d, sizeof(d));
  b().journal_commit({{ioff(f_), bytes}}, /*apply=*/true);
  EXPECT_EQ(check().exit_code(), 0);
}

TEST_F(FsckTest, TornJournalTransactionIsIgnored) {
  // Records that do not match the header's checksum are what a crash while
  // writing a transaction leaves: it never committed, recovery ignores it,
  // and its changes are nowhere in place.
  std::vector<std::byte> bytes(8, std::byte{1});
  b().journal_commit({{ioff(f_) + offsetof(DiskInode, size), bytes}}, false);
  flip(journal_offset(b().sb()) + sizeof(JournalHeader) +
       sizeof(JournalRecord));
  FsckReport r = check();
  EXPECT_EQ(r.exit_code(), 0) << dump(r);
  EXPECT_TRUE(mentions(r.notes, "fails its checksum")) << dump(r);
  EXPECT_TRUE(mentions(r.notes, "never committed")) << dump(r);
}

TEST_F(FsckTest, LongSymlinkUnmapped) {
  uint64_t l = b().symlink(kRootIno, "long", std::string(200, 'q'));
  uint64_t off = b().extent_offset(l, 0);
  std::vector<std::byte> z(sizeof(DiskExtent));
  b().write(off, z.data(), z.size());
  expect_repairable("is not mapped");
}

TEST_F(FsckTest, FreeSlotNotClear) {
  uint64_t slot = ioff(200);
  uint32_t junk = 0x1234;
  b().write(slot + offsetof(DiskInode, mode), &junk, sizeof(junk));
  expect_repairable("inode 200: free slot is not clear");
}

// Random damage to the inode table and metadata blocks: never a crash, and
// repair always ends with a pool the next check calls clean.
TEST_F(FsckTest, RepairConvergesOnRandomDamage) {
  std::mt19937_64 rng(7);
  auto ranges = b().metadata_ranges();
  const auto pristine = b().image();
  // ZEST_FSCK_ROUNDS=N runs more rounds (the default keeps ctest quick).
  const char* env = std::getenv("ZEST_FSCK_ROUNDS");
  const int rounds = env ? std::atoi(env) : 40;
  for (int round = 0; round < rounds; ++round) {
    b().image() = pristine;
    std::vector<uint8_t> input{uint8_t(round % 2)};
    for (int p = 0; p < 1 + round % 5; ++p) {
      auto [start, len] =
          ranges[2 + rng() % (ranges.size() - 2)];  // not the superblocks
      uint32_t off = uint32_t(start + rng() % len);
      for (int i = 0; i < 4; ++i) input.push_back(uint8_t(off >> (8 * i)));
      input.push_back(2);
      input.push_back(uint8_t(rng()));
      input.push_back(uint8_t(rng()));
    }
    sample::apply_patches(b().image(), input);
    check();
    FsckReport fixed = run_on_file(true);
    EXPECT_NE(fixed.exit_code(), 8);
    FsckReport again = run_on_file(false);
    EXPECT_EQ(again.exit_code(), 0) << "round " << round << "\n"
                                    << dump(fixed) << dump(again);
  }
}

}  // namespace
}  // namespace zest::pmfs
