// fsck: a clean tree passes; each corruption class is found, named, and
// (where repairable) repaired so that a second run is clean.
#include "pmfs/fsck.h"

#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "pmem/pool.h"
#include "pmfs/fuzz/sample_image.h"
#include "pmfs/pmfs.h"
#include "tests/pmem/temp_dir.h"
#include "tests/pmfs/harness.h"

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

size_t count_of(const std::vector<std::string>& list, const std::string& what) {
  return std::count_if(list.begin(), list.end(), [&](const std::string& s) {
    return s.find(what) != std::string::npos;
  });
}

// A pool opened with pmfs::open and read through the FileSystem API (pmfs
// replies synchronously): what a mount of a repaired pool shows.
class Mounted {
 public:
  explicit Mounted(const std::string& path) {
    auto r = pmfs::open(path, {}, &why_);
    if (!r) return;
    fs_ = std::move(*r);
    fs_->init(&sink_);
  }
  bool ok() const { return fs_ != nullptr; }
  const std::string& why() const { return why_; }

  Result<fs::Entry> lookup(fs::Ino parent, std::string_view name) {
    test::Call c;
    fs_->lookup(ctx_, parent, name, fs::EntryReply(&sink_, &c));
    return entry(c);
  }
  // An absolute path, one lookup per component.
  Result<fs::Entry> walk(std::string_view path) {
    Result<fs::Entry> e = getattr(kRootIno);
    while (e && !path.empty()) {
      const size_t start = path.find_first_not_of('/');
      if (start == std::string_view::npos) break;
      path.remove_prefix(start);
      const std::string_view name = path.substr(0, path.find('/'));
      path.remove_prefix(name.size());
      e = lookup(e->ino, name);
    }
    return e;
  }
  Result<fs::Entry> getattr(fs::Ino ino) {
    test::Call c;
    fs_->getattr(ctx_, ino, nullptr, fs::AttrReply(&sink_, &c));
    if (c.kind != test::Call::kAttr) return Errno(c.err ? c.err : EIO);
    return fs::Entry{ino, 0, c.attr};
  }
  Result<fs::Entry> mkdir(fs::Ino parent, std::string_view name,
                          uint32_t mode) {
    test::Call c;
    fs_->mkdir(ctx_, parent, name, mode, fs::EntryReply(&sink_, &c));
    return entry(c);
  }
  std::string read(fs::Ino ino) {
    test::Call c;
    fs_->read(ctx_, ino, 0, 0, 1 << 20, fs::DataReply(&sink_, &c));
    return c.kind == test::Call::kData ? c.data : "(error)";
  }
  std::string readlink(fs::Ino ino) {
    test::Call c;
    fs_->readlink(ctx_, ino, fs::DataReply(&sink_, &c));
    return c.kind == test::Call::kData ? c.data : "(error)";
  }
  std::string getxattr(fs::Ino ino, std::string_view name) {
    test::Call c;
    fs_->getxattr(ctx_, ino, name, 1 << 17, fs::XattrReply(&sink_, &c));
    return c.kind == test::Call::kData ? c.data : "(error)";
  }
  // The names in a directory, "." and ".." left out.
  std::vector<std::string> list(fs::Ino dir) {
    std::vector<std::string> names;
    uint64_t off = 0;
    for (int guard = 0; guard < 1000; ++guard) {
      test::Call c;
      fs_->readdir(ctx_, dir, 0, off, fs::DirReply(&sink_, &c, false));
      if (c.dir.empty()) break;
      for (const auto& d : c.dir) {
        if (d.name != "." && d.name != "..") names.push_back(d.name);
      }
      off = c.dir.back().next_off;
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  static Result<fs::Entry> entry(const test::Call& c) {
    if (c.kind == test::Call::kEntry) return c.entry;
    return Errno(c.err ? c.err : EIO);
  }

  fs::Context ctx_{0, 0, 1};
  std::string why_;
  test::FakeSink sink_;
  std::unique_ptr<PmFs> fs_;
};

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

  // The pool at path_ (after a repair) mounts.
  void expect_mounts() {
    Mounted m(path_);
    EXPECT_TRUE(m.ok()) << m.why();
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

  // Removes an entry the way unlink would (its slots zeroed) but leaves
  // every link count alone: its target becomes unreachable.
  void drop_entry(uint64_t dir, std::string_view name) {
    const uint64_t off = b_->dirent_offset(dir, name);
    ASSERT_NE(off, 0u) << name;
    auto h = b_->get<DirentHeader>(off);
    std::vector<std::byte> z(h.nslots * kDirSlotSize);
    b_->write(off, z.data(), z.size());
  }
  // A file's bytes as the image holds them, through its extents.
  std::string file_bytes(uint64_t ino) const {
    const DiskInode d = b_->inode(ino);
    std::string out(d.size, '\0');
    for (size_t i = 0;; ++i) {
      const uint64_t off = b_->extent_offset(ino, i);
      if (off == 0) break;
      const auto e = b_->get<DiskExtent>(off);
      for (uint64_t k = 0; k < e.count; ++k) {
        const uint64_t pos = (e.file_block + k) * kBlockSize;
        if (pos >= out.size()) break;
        b_->read((e.pool_block + k) * kBlockSize, out.data() + pos,
                 std::min<uint64_t>(kBlockSize, out.size() - pos));
      }
    }
    return out;
  }
  // Replaces the image with a pool file's bytes (after pmfs changed it).
  void load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(b_->image().data()),
            static_cast<std::streamsize>(b_->image().size()));
    ASSERT_TRUE(in) << path;
  }
  // The unreachable inodes: the read-only check reports them (exit 4, no
  // repair), repair reconnects or frees them (exit 1), then the pool is
  // clean. Returns the read-only and the repair reports.
  std::pair<FsckReport, FsckReport> check_and_repair() {
    FsckReport r = check();
    EXPECT_EQ(r.exit_code(), 4) << dump(r);
    EXPECT_TRUE(r.repairs.empty()) << dump(r);
    FsckReport fixed = run_on_file(true);
    EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
    FsckReport again = run_on_file(false);
    EXPECT_EQ(again.exit_code(), 0) << dump(again);
    EXPECT_TRUE(again.errors.empty()) << dump(again);
    return {r, fixed};
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

// --- what mount refuses: repair must leave a pool that mounts --------------
// Each of these was a pool fsck --repair called clean and mount refused
// (found by repair_mount_test.cc).

TEST_F(FsckTest, ExtentHeadOutsideTheDataRegionResetsBlocks) {
  edit_inode(f_, [](DiskInode& d) { d.extent_head = 3; });  // the journal
  expect_repairable("extent_head 3 points outside the data region");
  load(path_);
  EXPECT_EQ(b().inode(f_).blocks, 0u);
  expect_mounts();
}

TEST_F(FsckTest, ExtentChainHeadDroppedAsSharedResetsBlocks) {
  // f's first extent maps g's extent chain block (g is the later owner):
  // g's chain is cut at its head by the ownership check, after its blocks
  // were counted; the next pass, with no chain left, counts them again.
  ASSERT_LT(f_, g_);
  const uint64_t head = b().inode(g_).extent_head;
  const uint64_t off = b().extent_offset(f_, 0);
  auto e = b().get<DiskExtent>(off);
  e.pool_block = head;
  sample::seal_extent(&e);
  b().write(off, &e, sizeof(e));
  expect_repairable("are claimed twice");
  load(path_);
  EXPECT_EQ(b().inode(g_).extent_head, 0u);
  EXPECT_EQ(b().inode(g_).blocks, 0u);
  expect_mounts();
}

TEST_F(FsckTest, DirectoryOwnsNoBlocks) {
  edit_inode(d_, [](DiskInode& d) { d.blocks = 3; });
  expect_repairable(fmt::format("inode {}: directory owns 3 blocks", d_));
  expect_mounts();
}

TEST_F(FsckTest, InlineSymlinkOwnsNoBlocks) {
  edit_inode(s_, [](DiskInode& d) { d.blocks = 1; });
  expect_repairable(fmt::format("inode {}: inline symlink owns 1 blocks", s_));
  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  EXPECT_EQ(m.readlink(s_), "d/g");
}

TEST_F(FsckTest, FileSizeBeyondTheLargestFile) {
  const std::string before = file_bytes(f_);
  edit_inode(f_, [](DiskInode& d) { d.size = uint64_t(1) << 63; });
  edit_inode(p_, [](DiskInode& d) { d.size = ~uint64_t(0); });
  FsckReport r = check();
  EXPECT_TRUE(mentions(
      r.errors, fmt::format("inode {}: size 9223372036854775808 exceeds", f_)))
      << dump(r);
  expect_repairable(
      fmt::format("inode {}: size 18446744073709551615 exceeds", p_));
  load(path_);
  EXPECT_EQ(b().inode(f_).size, 4 * kBlockSize);  // the end of its data
  EXPECT_EQ(b().inode(p_).size, 0u);
  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  const std::string now = m.read(f_);
  ASSERT_EQ(now.size(), 4 * kBlockSize);
  EXPECT_TRUE(now.compare(0, before.size(), before) == 0);  // the data is kept
}

// A long symlink built by hand: `count` blocks at file block 0.
uint64_t long_symlink(ImageBuilder& b, std::string_view name,
                      const std::string& target, uint32_t count,
                      uint32_t flags = kExtentValid) {
  const uint64_t ino = b.new_inode(S_IFLNK | 0777);
  const uint64_t pb = b.alloc(count);
  b.write(pb * kBlockSize, target.data(), target.size());
  b.add_extent(ino, 0, pb, count, flags);
  DiskInode d = b.inode(ino);
  d.nlink = 1;
  d.size = target.size();
  b.put_inode(ino, d);
  b.add_dirent(kRootIno, name, ino, DT_LNK);
  return ino;
}

TEST_F(FsckTest, LongSymlinkMapsOneBlock) {
  const std::string target(300, 't');
  const uint64_t l = long_symlink(b(), "long", target, 1);
  b().add_extent(l, 7, b().alloc(2), 2);
  expect_repairable(fmt::format(
      "inode {}: symlink maps file blocks 7+2 besides its target block", l));
  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  EXPECT_EQ(m.readlink(l), target);
}

TEST_F(FsckTest, LongSymlinkTargetExtentIsShortened) {
  const std::string target(3000, 'u');
  const uint64_t l = long_symlink(b(), "long", target, 3);
  expect_repairable(
      fmt::format("inode {}: symlink target extent maps 3 blocks, not 1", l));
  load(path_);
  EXPECT_EQ(b().inode(l).blocks, 1u);
  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  EXPECT_EQ(m.readlink(l), target);
}

TEST_F(FsckTest, LongSymlinkUnwrittenIsFreed) {
  const uint64_t l = long_symlink(b(), "long", std::string(500, 'w'), 1,
                                  kExtentValid | kExtentUnwritten);
  expect_repairable(fmt::format(
      "inode {}: symlink target of 500 bytes is not mapped by a written extent",
      l));
  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  EXPECT_FALSE(m.lookup(kRootIno, "long").ok());
}

TEST_F(FsckTest, XattrEntryLongerThanItsRecord) {
  b().set_xattr(g_, "user.short", "v");
  b().alloc(2);  // the two blocks after the record: nobody else's
  const uint64_t off = b().xattr_entry_offset(g_, 0);
  auto e = b().get<XattrEntry>(off);
  e.nblocks = 3;
  sample::seal_xattr_entry(&e);
  b().write(off, &e, sizeof(e));
  expect_repairable(
      fmt::format("record 'user.short' fills 1 blocks but the entry says 3"));
  load(path_);
  EXPECT_EQ(b().get<XattrEntry>(off).nblocks, 1u);
  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  EXPECT_EQ(m.getxattr(g_, "user.short"), "v");
}

// A repair of bytes the journal's last transaction also holds: mount would
// replay the transaction over the repair, so repair retires it.
TEST_F(FsckTest, RepairIsNotUndoneByTheJournal) {
  edit_inode(f_, [](DiskInode& d) { d.nlink = 5; });
  const DiskInode d = b().inode(f_);
  std::vector<std::byte> bytes(sizeof(d));
  std::memcpy(bytes.data(), &d, sizeof(d));
  b().journal_commit({{ioff(f_), bytes}}, true);
  expect_repairable(
      fmt::format("inode {}: nlink 5 but 1 directory entries", f_));
  FsckReport again = run_on_file(false);
  EXPECT_TRUE(again.notes.empty()) << dump(again);  // nothing left to replay
  expect_mounts();
  load(path_);
  EXPECT_EQ(b().inode(f_).nlink, 1u);
}

TEST_F(FsckTest, OrphanDirectoryWithEntriesIsAnError) {
  // An unnamed directory with nlink 0 is an orphan only when empty.
  const uint64_t x = b().mkdir(kRootIno, "x");
  b().link(x, "h", f_);
  drop_entry(kRootIno, "x");
  edit_inode(x, [](DiskInode& d) { d.nlink = 0; });
  edit_inode(kRootIno, [](DiskInode& d) { d.nlink -= 1; });
  expect_repairable(fmt::format(
      "directory {}: nlink 0 and no name, but it holds 1 entries", x));
  expect_mounts();
}

// --- unreachable inodes: reconnected under /lost+found ---------------------

std::string unreachable(uint64_t ino, uint32_t nlink) {
  return fmt::format(
      "inode {}: in use with nlink {} but not reachable from the root", ino,
      nlink);
}

TEST_F(FsckTest, ReconnectsUnreachableFile) {
  const std::string data = file_bytes(f_);
  ASSERT_EQ(data.size(), 4 * kBlockSize - 100);
  drop_entry(kRootIno, "f");
  auto [r, fixed] = check_and_repair();
  EXPECT_TRUE(mentions(
      r.errors,
      fmt::format(
          "{}; would be reconnected to /lost+found (as /lost+found/#{})",
          unreachable(f_, 1), f_)))
      << dump(r);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: reconnected as /lost+found/#{} (regular file, {} "
                  "bytes)",
                  f_, f_, data.size())))
      << dump(fixed);
  EXPECT_FALSE(mentions(fixed.repairs, "freed")) << dump(fixed);

  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  auto e = m.walk(fmt::format("/lost+found/#{}", f_));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->ino, f_);
  EXPECT_EQ(e->attr.nlink, 1u);
  EXPECT_EQ(e->attr.size, data.size());
  EXPECT_EQ(m.read(f_), data);
  EXPECT_EQ(m.getxattr(f_, "user.one"), "1");
  EXPECT_EQ(m.getxattr(f_, "user.two"), std::string(6000, 'z'));
  EXPECT_EQ(m.lookup(kRootIno, "f").error(), Errno(ENOENT));
}

TEST_F(FsckTest, CreatesLostFoundWhenMissing) {
  drop_entry(kRootIno, "s");  // the symlink s -> d/g
  auto [r, fixed] = check_and_repair();
  // Inodes 1..7 are taken: /lost+found is the first free one.
  EXPECT_TRUE(mentions(
      fixed.repairs,
      "/lost+found: created as inode 8 (directory, mode 0700, owner root)"))
      << dump(fixed);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: reconnected as /lost+found/#{} (symlink, 3 bytes)",
                  s_, s_)))
      << dump(fixed);

  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  auto lf = m.lookup(kRootIno, "lost+found");
  ASSERT_TRUE(lf.ok());
  EXPECT_EQ(lf->ino, 8u);
  EXPECT_EQ(lf->attr.mode, uint32_t(S_IFDIR | 0700));
  EXPECT_EQ(lf->attr.uid, 0u);
  EXPECT_EQ(lf->attr.gid, 0u);
  EXPECT_EQ(lf->attr.nlink, 2u);
  EXPECT_EQ(m.getattr(kRootIno)->attr.nlink, 4u);  // ., d, lost+found
  EXPECT_EQ(m.list(lf->ino), std::vector<std::string>{fmt::format("#{}", s_)});
  EXPECT_EQ(m.readlink(s_), "d/g");
}

TEST_F(FsckTest, ReconnectsOnlyTheTopOfAnUnreachableDirectory) {
  const std::string data = file_bytes(g_);
  drop_entry(kRootIno, "d");  // d holds the file g and the directory e
  auto [r, fixed] = check_and_repair();
  EXPECT_TRUE(mentions(
      r.errors,
      fmt::format(
          "{}; would be reconnected to /lost+found (as /lost+found/#{})",
          unreachable(d_, 3), d_)))
      << dump(r);
  for (auto [ino, nlink] : {std::pair{g_, 1u}, std::pair{e_, 2u}}) {
    EXPECT_TRUE(
        mentions(r.errors,
                 fmt::format("{}; would be reconnected to /lost+found with its "
                             "unreachable ancestor, directory {}",
                             unreachable(ino, nlink), d_)))
        << dump(r);
  }
  EXPECT_EQ(count_of(fixed.repairs, "reconnected as"), 1u) << dump(fixed);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: reconnected as /lost+found/#{} (directory, 0 "
                  "bytes)",
                  d_, d_)))
      << dump(fixed);
  // The root lost d: reported as it was found, before /lost+found was added.
  const std::string root_nlink =
      "directory 1: nlink 3 but it has 0 subdirectories (expected 2)";
  EXPECT_TRUE(mentions(r.errors, root_nlink)) << dump(r);
  EXPECT_TRUE(mentions(fixed.errors, root_nlink)) << dump(fixed);

  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  auto lf = m.lookup(kRootIno, "lost+found");
  ASSERT_TRUE(lf.ok());
  EXPECT_EQ(lf->attr.nlink, 3u);
  EXPECT_EQ(m.list(lf->ino), std::vector<std::string>{fmt::format("#{}", d_)});
  auto d = m.walk(fmt::format("/lost+found/#{}", d_));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->ino, d_);
  EXPECT_EQ(d->attr.nlink, 3u);
  EXPECT_EQ(m.list(d_), (std::vector<std::string>{"e", "g"}));
  auto g = m.walk(fmt::format("/lost+found/#{}/g", d_));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->ino, g_);
  EXPECT_EQ(m.read(g_), data);
  EXPECT_EQ(m.walk(fmt::format("/lost+found/#{}/e", d_))->ino, e_);
  // The symlink s -> d/g now dangles, as it would after a rename of d.
  EXPECT_EQ(m.lookup(kRootIno, "d").error(), Errno(ENOENT));
}

TEST_F(FsckTest, ReconnectsOneDirectoryOfAnUnreachableCycle) {
  // x and y name each other and nothing reachable names either; y holds a
  // file z.
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
  uint64_t z = b().create_file(y, "z", 2);
  const std::string data = file_bytes(z);
  auto [r, fixed] = check_and_repair();
  // The cycle is broken at its lowest-numbered directory.
  EXPECT_TRUE(mentions(
      r.errors, fmt::format("{}; would be reconnected to /lost+found (as "
                            "/lost+found/#{})",
                            unreachable(x, 3), x)))
      << dump(r);
  EXPECT_TRUE(mentions(
      r.errors, fmt::format("{}; would be reconnected to /lost+found "
                            "with its unreachable ancestor, directory {}",
                            unreachable(z, 1), x)))
      << dump(r);
  EXPECT_EQ(count_of(fixed.repairs, "reconnected as"), 1u) << dump(fixed);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: reconnected as /lost+found/#{} (directory, 0 "
                  "bytes; its entry 'x' in unreachable directory {}, which "
                  "closed a cycle, removed)",
                  x, x, y)))
      << dump(fixed);
  // y's link count followed the removal: only the unreachable inodes are
  // errors.
  EXPECT_EQ(fixed.errors.size(), 3u) << dump(fixed);

  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  auto zz = m.walk(fmt::format("/lost+found/#{}/y/z", x));
  ASSERT_TRUE(zz.ok());
  EXPECT_EQ(zz->ino, z);
  EXPECT_EQ(m.read(z), data);
  EXPECT_EQ(m.getattr(x)->attr.nlink, 3u);
  EXPECT_EQ(m.getattr(y)->attr.nlink, 2u);
  EXPECT_EQ(m.lookup(y, "x").error(), Errno(ENOENT));
}

TEST_F(FsckTest, ReconnectsADirectoryThatNamesItself) {
  // A cycle of one: x's only name is an entry in x itself.
  uint64_t x = b().new_inode(S_IFDIR | 0755);
  edit_inode(x, [&](DiskInode& d) {
    d.nlink = 3;
    d.parent = x;
  });
  b().add_dirent(x, "self", x, DT_DIR);
  uint64_t w = b().create_file(x, "w", 1);
  const std::string data = file_bytes(w);
  auto [r, fixed] = check_and_repair();
  EXPECT_EQ(count_of(fixed.repairs, "reconnected as"), 1u) << dump(fixed);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: reconnected as /lost+found/#{} (directory, 0 "
                  "bytes; its entry 'self' in unreachable directory {}",
                  x, x, x)))
      << dump(fixed);
  // The removal kept x's link count exact: nothing else to repair.
  EXPECT_EQ(fixed.errors.size(), 2u) << dump(fixed);  // x and w unreachable

  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  EXPECT_EQ(m.walk(fmt::format("/lost+found/#{}/w", x))->ino, w);
  EXPECT_EQ(m.read(w), data);
  EXPECT_EQ(m.lookup(x, "self").error(), Errno(ENOENT));
  EXPECT_EQ(m.getattr(x)->attr.nlink, 2u);
}

TEST_F(FsckTest, LostRootDirectoryBlockIsReconnectedNotFreed) {
  // The root's only directory block fails its checksum: the chain is cut at
  // its head and every top-level name is gone. What they named is kept.
  const std::string f_data = file_bytes(f_);
  const std::string g_data = file_bytes(g_);
  flip(b().inode(kRootIno).dir_head * kBlockSize +
       offsetof(DirBlockHeader, ino));
  auto [r, fixed] = check_and_repair();
  EXPECT_FALSE(mentions(fixed.repairs, "freed")) << dump(fixed);
  EXPECT_EQ(count_of(fixed.repairs, "reconnected as"), 4u) << dump(fixed);

  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  auto lf = m.lookup(kRootIno, "lost+found");
  ASSERT_TRUE(lf.ok());
  EXPECT_EQ(m.list(kRootIno), std::vector<std::string>{"lost+found"});
  EXPECT_EQ(m.list(lf->ino),
            (std::vector<std::string>{
                fmt::format("#{}", d_), fmt::format("#{}", f_),
                fmt::format("#{}", s_), fmt::format("#{}", p_)}));
  EXPECT_EQ(m.read(m.walk(fmt::format("/lost+found/#{}", f_))->ino), f_data);
  EXPECT_EQ(m.read(m.walk(fmt::format("/lost+found/#{}/g", d_))->ino), g_data);
  EXPECT_EQ(m.getxattr(f_, "user.one"), "1");
}

TEST_F(FsckTest, UsesAnExistingLostFound) {
  const std::string data = file_bytes(f_);
  // lost+found made by pmfs itself, already holding the name "#<f>".
  path_ = dir_.file("premade");
  std::string why;
  ASSERT_TRUE(b().save(path_, &why).ok()) << why;
  uint64_t lf = 0;
  {
    Mounted m(path_);
    ASSERT_TRUE(m.ok()) << m.why();
    auto made = m.mkdir(kRootIno, "lost+found", 0700);
    ASSERT_TRUE(made.ok());
    lf = made->ino;
    ASSERT_TRUE(m.mkdir(lf, fmt::format("#{}", f_), 0755).ok());
  }
  load(path_);
  drop_entry(kRootIno, "f");
  auto [r, fixed] = check_and_repair();
  EXPECT_TRUE(mentions(
      r.errors, fmt::format("{}; would be reconnected to /lost+found (as "
                            "/lost+found/#{}.1)",
                            unreachable(f_, 1), f_)))
      << dump(r);
  EXPECT_FALSE(mentions(fixed.repairs, "/lost+found: created")) << dump(fixed);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: reconnected as /lost+found/#{}.1", f_, f_)))
      << dump(fixed);

  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  EXPECT_EQ(m.walk("/lost+found")->ino, lf);
  auto e = m.walk(fmt::format("/lost+found/#{}.1", f_));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->ino, f_);
  EXPECT_EQ(m.read(f_), data);
}

TEST_F(FsckTest, LostFoundNotADirectoryFallsBackToFreeing) {
  b().mkfifo(kRootIno, "lost+found");
  drop_entry(kRootIno, "f");
  auto [r, fixed] = check_and_repair();
  EXPECT_TRUE(mentions(r.errors,
                       "would be freed (/lost+found (inode 8) is "
                       "not a directory)"))
      << dump(r);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: freed (unreachable; /lost+found (inode 8) is not "
                  "a directory); data lost: {} bytes",
                  f_, 4 * kBlockSize - 100)))
      << dump(fixed);
}

TEST_F(FsckTest, NoFreeInodeFallsBackToFreeing) {
  // Inodes 1..7 are taken; fill the rest of the table with named fifos.
  for (uint64_t ino = 8; ino <= b().sb().inode_count; ++ino)
    b().mkfifo(kRootIno, fmt::format("fifo{}", ino));
  drop_entry(kRootIno, "f");
  auto [r, fixed] = check_and_repair();
  EXPECT_TRUE(mentions(
      r.errors, fmt::format("{}; would be freed (no free inode to create "
                            "/lost+found)",
                            unreachable(f_, 1))))
      << dump(r);
  EXPECT_TRUE(mentions(
      fixed.notes,
      "unreachable inodes cannot be reconnected: no free inode to create "
      "/lost+found; they are freed"))
      << dump(fixed);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: freed (unreachable; no free inode to create "
                  "/lost+found); data lost: {} bytes",
                  f_, 4 * kBlockSize - 100)))
      << dump(fixed);
  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
  EXPECT_EQ(m.lookup(kRootIno, "lost+found").error(), Errno(ENOENT));
}

TEST_F(FsckTest, NoFreeBlockFallsBackToFreeing) {
  // One file takes every free data block (and one for its extent block).
  FsckReport before = fsck_image(b().image());
  const uint64_t free_blocks =
      b().sb().total_blocks - b().sb().data_start - before.blocks_in_use;
  ASSERT_GT(free_blocks, 2u);
  b().create_file(kRootIno, "big", uint32_t(free_blocks - 1));
  ASSERT_EQ(fsck_image(b().image()).blocks_in_use,
            b().sb().total_blocks - b().sb().data_start);
  drop_entry(kRootIno, "f");
  auto [r, fixed] = check_and_repair();
  EXPECT_TRUE(mentions(r.errors,
                       "would be freed (no free block for another "
                       "entry in /lost+found)"))
      << dump(r);
  EXPECT_TRUE(mentions(
      fixed.repairs,
      fmt::format("inode {}: freed (unreachable; no free block for another "
                  "entry in /lost+found)",
                  f_)))
      << dump(fixed);
  Mounted m(path_);
  ASSERT_TRUE(m.ok()) << m.why();
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
