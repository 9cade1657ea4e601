// fsck and mount on xattr chains (docs/format.md, "Extended attributes"):
// slot blocks, record references and tables chained by `next`. Each
// corruption is found, repair leaves a pool that a second check calls
// clean and that pmfs mounts, with the attributes that were not damaged
// still readable; and a pool of the format before kIncompatXattrSlots
// mounts as it is and gets the feature when it first needs it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "pmfs/format.h"
#include "pmfs/fsck.h"
#include "pmfs/fuzz/sample_image.h"
#include "pmfs/layout.h"
#include "tests/pmem/temp_dir.h"
#include "tests/pmfs/harness.h"

namespace zest::pmfs {
namespace {

using sample::ImageBuilder;

constexpr uint64_t kPool = 4 << 20;

std::string dump(const FsckReport& r) {
  std::string s;
  for (const auto& e : r.errors) s += "  error: " + e + "\n";
  for (const auto& e : r.repairs) s += "  repair: " + e + "\n";
  for (const auto& e : r.uncorrected) s += "  uncorrected: " + e + "\n";
  return s;
}

bool mentions(const std::vector<std::string>& list, const std::string& what) {
  for (const auto& s : list) {
    if (s.find(what) != std::string::npos) return true;
  }
  return false;
}

std::string small(int k) { return fmt::format("user.a{:03}", k); }
std::string small_value(int k) { return fmt::format("value{:03}", k); }

// /f: 4 blocks, a table entry and a slot entry chained after the table;
// /g: 100 small attributes (two slot blocks) and two record-backed ones.
class XattrFsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MkfsOptions o;
    o.journal_blocks = 16;
    std::string why;
    auto b = ImageBuilder::create(kPool, o, &why);
    ASSERT_TRUE(b.ok()) << why;
    b_.emplace(std::move(*b));
    f_ = b_->create_file(kRootIno, "f", 4, 2);
    g_ = b_->create_file(kRootIno, "g", 1);
    b_->set_xattr(f_, "user.old", "in a table");
    b_->add_xattr_slot(f_, "user.new", "in a slot block");
    for (int k = 0; k < 100; ++k)
      b_->add_xattr_slot(g_, small(k), small_value(k));
    b_->add_xattr_slot(g_, "user.rec", std::string(5000, 'r'));
    b_->add_xattr_slot(g_, "user.rec2", std::string(2000, 's'));
  }

  ImageBuilder& b() { return *b_; }
  std::vector<uint64_t> chain(uint64_t ino) const {
    return b_->xattr_chain(ino);
  }

  // Saves the image as a new pool file and checks it read-only.
  FsckReport check() {
    path_ = dir_.file(fmt::format("pool{}", n_++));
    std::string why;
    EXPECT_TRUE(b_->save(path_, &why).ok()) << why;
    auto r = fsck(path_, {}, &why);
    EXPECT_TRUE(r.ok()) << why;
    return r.ok() ? *r : FsckReport{};
  }
  FsckReport run_on_file(bool repair) {
    std::string why;
    FsckOptions o;
    o.repair = repair;
    auto r = fsck(path_, o, &why);
    EXPECT_TRUE(r.ok()) << why;
    return r.ok() ? *r : FsckReport{};
  }
  // The read-only check finds `error`; mount refuses the pool; repair
  // corrects everything; a second check is clean; the pool mounts.
  void expect_repairable(const std::string& error) {
    FsckReport r = check();
    EXPECT_EQ(r.exit_code(), 4) << dump(r);
    EXPECT_TRUE(mentions(r.errors, error)) << "wanted '" << error << "' in\n"
                                           << dump(r);
    std::string why;
    EXPECT_FALSE(pmfs::open(path_, {}, &why))
        << "mount accepted a pool fsck calls damaged";
    FsckReport fixed = run_on_file(true);
    EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
    FsckReport again = run_on_file(false);
    EXPECT_EQ(again.exit_code(), 0) << dump(again);
    mount_repaired();
  }
  // Mounts the pool at path_ through a harness (its own mkfs is replaced).
  void mount_repaired() {
    h_.emplace(kPool);
    h_->close();
    std::ifstream in(path_, std::ios::binary);
    std::vector<char> bytes(kPool);
    in.read(bytes.data(), std::streamsize(bytes.size()));
    std::ofstream out(h_->path(), std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    out.close();
    ASSERT_TRUE(h_->mount()) << h_->why();
  }
  test::PmFsHarness& h() { return *h_; }

  void rewrite_slot_header(uint64_t block, uint64_t next) {
    auto sh = b().get<XattrSlotBlockHeader>(block * kBlockSize);
    sh.next = next;
    sh.csum = 0;
    sh.csum = crc32c(&sh, sizeof(sh));
    b().write(block * kBlockSize, &sh, sizeof(sh));
  }
  void flip(uint64_t off) {
    auto v = b().get<uint8_t>(off);
    v ^= 0x10;
    b().write(off, &v, 1);
  }
  // Sets (or clears) kIncompatXattrSlots in both superblocks.
  void set_feature(bool on) {
    Superblock sb = b().get<Superblock>(0);
    if (on) {
      sb.features_incompat |= kIncompatXattrSlots;
    } else {
      sb.features_incompat &= ~kIncompatXattrSlots;
    }
    seal(&sb);
    b().write(0, &sb, sizeof(sb));
    b().write(kBlockSize, &sb, sizeof(sb));
  }

  pmem::testing::TempDir dir_;
  std::optional<ImageBuilder> b_;
  std::optional<test::PmFsHarness> h_;
  std::string path_;
  int n_ = 0;
  uint64_t f_ = 0, g_ = 0;
};

TEST_F(XattrFsckTest, ChainsAreCleanAndMount) {
  ASSERT_EQ(chain(g_).size(), 2u);
  ASSERT_EQ(chain(f_).size(), 2u);  // the table, then a slot block
  FsckReport r = check();
  EXPECT_EQ(r.exit_code(), 0) << dump(r);
  mount_repaired();
  EXPECT_EQ(*h().getxattr(f_, "user.old"), "in a table");
  EXPECT_EQ(*h().getxattr(f_, "user.new"), "in a slot block");
  for (int k = 0; k < 100; ++k)
    EXPECT_EQ(*h().getxattr(g_, small(k)), small_value(k));
  EXPECT_EQ(*h().getxattr(g_, "user.rec"), std::string(5000, 'r'));
  EXPECT_EQ(*h().getxattr(g_, "user.rec2"), std::string(2000, 's'));
}

TEST_F(XattrFsckTest, SlotBlockHeaderChecksum) {
  const uint64_t second = chain(g_)[1];
  flip(second * kBlockSize + offsetof(XattrSlotBlockHeader, reserved));
  expect_repairable(fmt::format(
      "inode {}: xattr chain block {} has a bad header checksum", g_, second));
  // The first block's attributes survive; the cut block's are gone.
  EXPECT_EQ(*h().getxattr(g_, small(0)), small_value(0));
  EXPECT_FALSE(h().getxattr(g_, small(99)));
}

TEST_F(XattrFsckTest, SlotEntryChecksum) {
  const uint64_t off = b().xattr_slot_offset(g_, small(7));
  flip(off + sizeof(XattrSlotHeader) + small(7).size() + 2);  // in the value
  expect_repairable(
      fmt::format("inode {}: xattr slot block {} slot 7: checksum mismatch", g_,
                  off / kBlockSize));
  EXPECT_FALSE(h().getxattr(g_, small(7)));
  EXPECT_EQ(*h().getxattr(g_, small(8)), small_value(8));
  // The repaired block takes new entries where the damaged one was.
  EXPECT_EQ(h().setxattr(g_, "user.after", "x"), 0);
  ASSERT_TRUE(h().remount()) << h().why();
  EXPECT_EQ(*h().getxattr(g_, "user.after"), "x");
}

TEST_F(XattrFsckTest, ChainCycle) {
  const std::vector<uint64_t> c = chain(g_);
  rewrite_slot_header(c[1], c[0]);
  expect_repairable(fmt::format(
      "inode {}: xattr chain block {} loops back (cycle)", g_, c[0]));
  EXPECT_EQ(*h().getxattr(g_, small(99)), small_value(99));
  EXPECT_EQ(*h().getxattr(g_, "user.rec"), std::string(5000, 'r'));
}

TEST_F(XattrFsckTest, ChainBlockOutsideTheDataRegion) {
  rewrite_slot_header(chain(g_)[1], b().sb().journal_start + 1);
  expect_repairable("points outside the data region (block");
}

TEST_F(XattrFsckTest, RecordOutsideTheDataRegion) {
  const uint64_t off = b().xattr_slot_offset(g_, "user.rec");
  auto ref = b().get<XattrRecordRef>(off + sizeof(XattrSlotHeader));
  ref.block = b().sb().journal_start;
  b().write(off + sizeof(XattrSlotHeader), &ref, sizeof(ref));
  std::vector<std::byte> bytes(sizeof(XattrSlotHeader) + sizeof(ref));
  b().read(off, bytes.data(), bytes.size());
  sample::seal_xattr_slot(bytes.data(), bytes.size());
  b().write(off, bytes.data(), bytes.size());
  expect_repairable("record block " + std::to_string(ref.block) +
                    " is in the journal");
  EXPECT_FALSE(h().getxattr(g_, "user.rec"));
  EXPECT_EQ(*h().getxattr(g_, "user.rec2"), std::string(2000, 's'));
}

// A record that is also /f's data: /f (the earlier inode) keeps the block,
// the attribute's entry is cleared.
TEST_F(XattrFsckTest, RecordSharedWithFileData) {
  const uint64_t off = b().xattr_slot_offset(g_, "user.rec2");
  auto ref = b().get<XattrRecordRef>(off + sizeof(XattrSlotHeader));
  const auto fe = b().get<DiskExtent>(b().extent_offset(f_, 0));
  // Copy the record over f's first data block, then point the entry there:
  // a valid record in a block claimed twice.
  std::vector<std::byte> rec(kBlockSize);
  b().read(ref.block * kBlockSize, rec.data(), rec.size());
  b().write(fe.pool_block * kBlockSize, rec.data(), rec.size());
  ref.block = fe.pool_block;
  b().write(off + sizeof(XattrSlotHeader), &ref, sizeof(ref));
  std::vector<std::byte> bytes(sizeof(XattrSlotHeader) + sizeof(ref));
  b().read(off, bytes.data(), bytes.size());
  sample::seal_xattr_slot(bytes.data(), bytes.size());
  b().write(off, bytes.data(), bytes.size());
  expect_repairable(
      fmt::format("claimed twice: by inode {} data (file blocks 0+2) and by "
                  "inode {} xattr record",
                  f_, g_));
  EXPECT_FALSE(h().getxattr(g_, "user.rec2"));
  EXPECT_EQ(*h().getxattr(g_, "user.rec"), std::string(5000, 'r'));
  EXPECT_TRUE(h().read(f_, 0, 4096));
}

// A slot block that is also /f's data: the chain is cut before it; the
// block stays /f's.
TEST_F(XattrFsckTest, SlotBlockSharedWithFileData) {
  const uint64_t second = chain(g_)[1];
  const uint64_t eoff = b().extent_offset(f_, 1);
  auto e = b().get<DiskExtent>(eoff);
  e.pool_block = second;
  e.count = 1;
  sample::seal_extent(&e);
  b().write(eoff, &e, sizeof(e));
  DiskInode d = b().inode(f_);
  d.blocks -= 1;
  d.size = 3 * kBlockSize;
  b().put_inode(f_, d);
  expect_repairable(
      fmt::format("claimed twice: by inode {} data (file blocks 2+1) and by "
                  "inode {} xattr slot block",
                  f_, g_));
  EXPECT_EQ(*h().getxattr(g_, small(0)), small_value(0));
  EXPECT_FALSE(h().getxattr(g_, small(99)));
}

TEST_F(XattrFsckTest, SlotEntryDisagreesWithItsRecord) {
  const uint64_t off = b().xattr_slot_offset(g_, "user.rec");
  auto sh = b().get<XattrSlotHeader>(off);
  sh.valuelen = 4999;
  b().write(off, &sh, sizeof(sh));
  std::vector<std::byte> bytes(sizeof(sh) + sizeof(XattrRecordRef));
  b().read(off, bytes.data(), bytes.size());
  sample::seal_xattr_slot(bytes.data(), bytes.size());
  b().write(off, bytes.data(), bytes.size());
  expect_repairable(
      "entry says a name of 8 and a value of 4999 bytes, its record 8 and "
      "5000");
}

TEST_F(XattrFsckTest, DuplicateNameAcrossTheChain) {
  b().add_xattr_slot(g_, small(3), "again");
  expect_repairable(fmt::format("duplicate name '{}'", small(3)));
}

// Slot blocks in a pool whose superblocks lack kIncompatXattrSlots: mount
// refuses it (older zest would not see them); repair sets the feature.
TEST_F(XattrFsckTest, FeatureMissing) {
  set_feature(false);
  expect_repairable("lack the kIncompatXattrSlots feature");
  EXPECT_EQ(*h().getxattr(g_, small(50)), small_value(50));
  h().close();
  std::ifstream in(h().path(), std::ios::binary);
  Superblock sb[2];
  in.read(reinterpret_cast<char*>(&sb[0]), sizeof(Superblock));
  in.seekg(kBlockSize);
  in.read(reinterpret_cast<char*>(&sb[1]), sizeof(Superblock));
  EXPECT_TRUE(sb[0].features_incompat & kIncompatXattrSlots);
  EXPECT_TRUE(sb[1].features_incompat & kIncompatXattrSlots);
}

// pmfs turns kIncompatXattrSlots on by writing superblock A, then B. A
// crash in between leaves A with the feature and B without: a state pmfs
// makes itself, so fsck notes it (no error), repair copies A over B, and
// the pool mounts either way.
TEST_F(XattrFsckTest, InterruptedFeatureUpgradeIsNotAnError) {
  Superblock old_b = b().get<Superblock>(0);
  old_b.features_incompat &= ~kIncompatXattrSlots;
  seal(&old_b);
  b().write(kBlockSize, &old_b, sizeof(old_b));
  FsckReport r = check();
  EXPECT_EQ(r.exit_code(), 0) << dump(r);
  ASSERT_FALSE(r.notes.empty());
  bool noted = false;
  for (const auto& n : r.notes) noted |= n.find("feature upgrade interrupted") != std::string::npos;
  EXPECT_TRUE(noted) << dump(r);
  // Anything else that differs is still an error.
  Superblock other = old_b;
  other.features_compat |= 1;
  seal(&other);
  b().write(kBlockSize, &other, sizeof(other));
  EXPECT_NE(check().exit_code(), 0);
  b().write(kBlockSize, &old_b, sizeof(old_b));
  EXPECT_EQ(check().exit_code(), 0);
  FsckReport fixed = run_on_file(true);
  EXPECT_EQ(fixed.exit_code(), 1) << dump(fixed);
  EXPECT_EQ(run_on_file(false).exit_code(), 0);
  mount_repaired();
  EXPECT_EQ(*h().getxattr(g_, small(7)), small_value(7));
}

// A pool made before kIncompatXattrSlots (one table per inode, `next` zero,
// the feature clear) mounts unconverted; the first setxattr sets the
// feature in both superblocks and chains a slot block after the table;
// replacing and removing table entries works, and the chain empties to
// nothing.
TEST(XattrUpgradeTest, OldPoolGetsTheFeatureOnFirstUse) {
  std::string why;
  auto b = ImageBuilder::create(kPool, {.journal_blocks = 16}, &why);
  ASSERT_TRUE(b.ok()) << why;
  const uint64_t f = b->create_file(kRootIno, "f", 1);
  b->set_xattr(f, "user.one", "1");
  b->set_xattr(f, "user.two", std::string(3000, '2'));
  Superblock sb = b->get<Superblock>(0);
  sb.features_incompat = 0;
  seal(&sb);
  b->write(0, &sb, sizeof(sb));
  b->write(kBlockSize, &sb, sizeof(sb));
  EXPECT_EQ(fsck_image(b->image()).exit_code(), 0);

  test::PmFsHarness h(kPool);
  h.close();
  {
    std::ofstream out(h.path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(b->image().data()),
              std::streamsize(b->image().size()));
  }
  auto features = [&] {
    std::ifstream in(h.path(), std::ios::binary);
    Superblock s[2];
    in.read(reinterpret_cast<char*>(&s[0]), sizeof(Superblock));
    in.seekg(kBlockSize);
    in.read(reinterpret_cast<char*>(&s[1]), sizeof(Superblock));
    EXPECT_EQ(s[0].features_incompat, s[1].features_incompat);
    return s[0].features_incompat;
  };
  ASSERT_TRUE(h.mount()) << h.why();
  EXPECT_EQ(*h.getxattr(f, "user.one"), "1");
  h.close();
  EXPECT_EQ(features(), 0u);  // mounting alone changes nothing
  ASSERT_TRUE(h.mount()) << h.why();
  const uint64_t free0 = h.statfs().bfree;
  ASSERT_EQ(h.setxattr(f, "user.three", "3"), 0);
  EXPECT_EQ(features(), kIncompatXattrSlots);
  ASSERT_EQ(h.setxattr(f, "user.one", "one, now in a slot block"), 0);
  ASSERT_TRUE(h.remount()) << h.why();
  EXPECT_EQ(*h.getxattr(f, "user.one"), "one, now in a slot block");
  EXPECT_EQ(*h.getxattr(f, "user.two"), std::string(3000, '2'));
  EXPECT_EQ(*h.getxattr(f, "user.three"), "3");
  h.close();
  EXPECT_TRUE(h.fsck_errors().empty());
  ASSERT_TRUE(h.mount()) << h.why();
  for (const char* n : {"user.one", "user.two", "user.three"})
    ASSERT_EQ(h.removexattr(f, n), 0);
  // The table and both its records, then the slot block: all given back.
  EXPECT_EQ(h.statfs().bfree, free0 + 3);
  ASSERT_TRUE(h.remount()) << h.why();
  EXPECT_EQ(*h.listxattr(f), "");
  h.close();
  EXPECT_TRUE(h.fsck_errors().empty());
}

}  // namespace
}  // namespace zest::pmfs
