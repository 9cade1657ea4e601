// Extended attributes at scale (docs/format.md, "Extended attributes"):
// thousands of small attributes packed into slot blocks, values moving
// between slot entries and records, the per-inode limits, listxattr past
// the kernel's 64 KiB, space given back, failed commits leaving no trace,
// and the DRAM index's rollback of several sets staged in one transaction.
#include <fmt/format.h>

#include <set>
#include <string>
#include <vector>

#include "pmfs/allocator.h"
#include "pmfs/format.h"
#include "pmfs/journal.h"
#include "pmfs/xattr_index.h"
#include "tests/pmem/temp_dir.h"
#include "tests/pmfs/harness.h"

namespace zest::pmfs::test {
namespace {

constexpr uint32_t kXattrListMax = 65536;  // XATTR_LIST_MAX

std::string name_of(int k) { return fmt::format("user.attr{:05}", k); }
std::string value_of(int k) { return fmt::format("v{:07}", k); }  // 8 bytes

std::set<std::string> split_names(const std::string& list) {
  std::set<std::string> out;
  for (size_t p = 0; p < list.size();) {
    const size_t e = list.find('\0', p);
    if (e == std::string::npos) break;
    out.insert(list.substr(p, e - p));
    p = e + 1;
  }
  return out;
}

std::string fsck_report(PmFsHarness& h) {
  h.close();
  std::string out;
  for (const auto& e : h.fsck_errors()) out += e + "\n";
  EXPECT_TRUE(h.mount()) << h.why();
  return out;
}

// 10,000 attributes like a conformance suite sets them: set, listed, read
// back after a remount, replaced across kinds, removed, and every block
// given back.
TEST(XattrTest, TenThousandSmallAttributes) {
  PmFsHarness h;
  auto f = h.create(fs::kRootIno, "f");
  ASSERT_TRUE(f);
  const fs::Ino ino = f->ino;
  const uint64_t free0 = h.statfs().bfree;
  constexpr int kN = 10000;
  for (int k = 1; k <= kN; ++k)
    ASSERT_EQ(h.setxattr(ino, name_of(k), value_of(k)), 0) << k;
  // Packed, 63 to a slot block: about 160 blocks, not 10,000.
  EXPECT_LE(free0 - h.statfs().bfree, uint64_t(kN + 62) / 63 + 1);

  // The list is 150,000 bytes: its size, then all of it with a large enough
  // buffer; the kernel's 64 KiB buffer gets ERANGE (which the VFS answers
  // as E2BIG, as for any file system whose list outgrows XATTR_LIST_MAX).
  const size_t list_len = size_t(kN) * (name_of(1).size() + 1);
  auto size = h.CallRunner::listxattr(ino, 0);
  ASSERT_EQ(size->kind, Call::kXattrSize);
  EXPECT_EQ(size->xattr_size, list_len);
  auto all = h.CallRunner::listxattr(ino, 1 << 20);
  ASSERT_EQ(all->kind, Call::kData) << all->err;
  EXPECT_EQ(all->data.size(), list_len);
  const std::set<std::string> names = split_names(all->data);
  EXPECT_EQ(names.size(), size_t(kN));
  EXPECT_TRUE(names.count(name_of(1)) && names.count(name_of(kN)));
  auto small = h.CallRunner::listxattr(ino, kXattrListMax);
  EXPECT_EQ(small->err, ERANGE);
  EXPECT_EQ(*h.getxattr(ino, name_of(4321)), value_of(4321));

  // Replaces: a larger value in its slot block, a record, and back.
  ASSERT_EQ(h.setxattr(ino, name_of(1), std::string(300, 'a')), 0);
  ASSERT_EQ(h.setxattr(ino, name_of(2), std::string(5000, 'b')), 0);
  ASSERT_EQ(h.setxattr(ino, name_of(3), std::string(65536, 'c')), 0);
  ASSERT_EQ(h.setxattr(ino, name_of(3), value_of(3)), 0);
  EXPECT_EQ(*h.getxattr(ino, name_of(2)), std::string(5000, 'b'));

  ASSERT_TRUE(h.remount()) << h.why();
  EXPECT_EQ(*h.getxattr(ino, name_of(1)), std::string(300, 'a'));
  EXPECT_EQ(*h.getxattr(ino, name_of(2)), std::string(5000, 'b'));
  for (int k = 3; k <= kN; ++k)
    ASSERT_EQ(*h.getxattr(ino, name_of(k)), value_of(k)) << k;
  EXPECT_EQ(fsck_report(h), "");

  for (int k = 1; k <= kN; ++k)
    ASSERT_EQ(h.removexattr(ino, name_of(k)), 0) << k;
  EXPECT_EQ(h.statfs().bfree, free0);
  EXPECT_EQ(h.CallRunner::listxattr(ino, 0)->xattr_size, 0u);
  ASSERT_TRUE(h.remount()) << h.why();
  EXPECT_EQ(h.statfs().bfree, free0);
  EXPECT_EQ(fsck_report(h), "");
}

// Removing every attribute of one slot block in the middle of the chain
// unlinks and frees that block; so does emptying the first one.
TEST(XattrTest, EmptiedSlotBlocksAreFreed) {
  PmFsHarness h;
  auto f = h.create(fs::kRootIno, "f");
  ASSERT_TRUE(f);
  const uint64_t free0 = h.statfs().bfree;
  // 200-byte values: 4 slots each, 15 to a block; 45 fill three blocks.
  auto v = [](int k) { return std::string(200, char('a' + k % 26)); };
  for (int k = 0; k < 45; ++k)
    ASSERT_EQ(h.setxattr(f->ino, name_of(k), v(k)), 0);
  EXPECT_EQ(free0 - h.statfs().bfree, 3u);
  for (int k = 15; k < 30; ++k) ASSERT_EQ(h.removexattr(f->ino, name_of(k)), 0);
  EXPECT_EQ(free0 - h.statfs().bfree, 2u);
  for (int k = 0; k < 15; ++k) ASSERT_EQ(h.removexattr(f->ino, name_of(k)), 0);
  EXPECT_EQ(free0 - h.statfs().bfree, 1u);
  ASSERT_TRUE(h.remount()) << h.why();
  EXPECT_EQ(free0 - h.statfs().bfree, 1u);
  for (int k = 30; k < 45; ++k)
    EXPECT_EQ(*h.getxattr(f->ino, name_of(k)), v(k));
  EXPECT_EQ(fsck_report(h), "");
  // And a freed inode gives back its chain and records.
  ASSERT_EQ(h.setxattr(f->ino, "user.rec", std::string(9000, 'r')), 0);
  ASSERT_EQ(h.unlink(fs::kRootIno, "f"), 0);
  h.forget(f->ino);
  EXPECT_EQ(h.statfs().bfree, free0 + 0);
}

// The per-inode limits (layout.h) answer ENOSPC, as ext4 and xfs do when an
// inode's attributes are full; replacing within them still works.
TEST(XattrTest, LimitsAnswerEnospc) {
  PmFsHarness h(96 << 20);
  auto f = h.create(fs::kRootIno, "many");
  ASSERT_TRUE(f);
  for (size_t k = 0; k < kXattrMaxCount; ++k) {
    ASSERT_EQ(h.setxattr(f->ino, fmt::format("user.{}", k), ""), 0) << k;
  }
  EXPECT_EQ(h.setxattr(f->ino, "user.one-more", ""), ENOSPC);
  EXPECT_EQ(h.setxattr(f->ino, "user.7", "replaced"), 0);
  ASSERT_EQ(h.removexattr(f->ino, "user.8"), 0);
  EXPECT_EQ(h.setxattr(f->ino, "user.one-more", ""), 0);

  auto g = h.create(fs::kRootIno, "big");
  ASSERT_TRUE(g);
  const std::string big(kXattrMaxValue, 'x');
  size_t k = 0;
  int err = 0;
  for (; k < 1000 &&
         (err = h.setxattr(g->ino, fmt::format("user.{:03}", k), big)) == 0;
       ++k) {
  }
  EXPECT_EQ(err, ENOSPC);
  EXPECT_EQ(k, kXattrMaxBytes / (big.size() + 8));
  ASSERT_TRUE(h.remount()) << h.why();
  EXPECT_EQ(*h.getxattr(g->ino, "user.000"), big);
  EXPECT_EQ(*h.getxattr(f->ino, "user.7"), "replaced");
  EXPECT_EQ(fsck_report(h), "");
}

// A commit that fails (the journal halted after the first one) leaves the
// attributes, the listing and the free space as they were.
TEST(XattrTest, FailedCommitLeavesNoTrace) {
  PmFsHarness h;
  auto f = h.create(fs::kRootIno, "f");
  ASSERT_TRUE(f);
  for (int k = 0; k < 100; ++k)
    ASSERT_EQ(h.setxattr(f->ino, name_of(k), value_of(k)), 0);
  Options o;
  o.test_halt_after_commits = 1;
  ASSERT_TRUE(h.remount(o)) << h.why();
  ASSERT_EQ(h.setxattr(f->ino, "user.last", "committed"), 0);  // then halted
  const uint64_t free_before = h.statfs().bfree;
  const std::string list_before = *h.listxattr(f->ino);
  EXPECT_EQ(h.setxattr(f->ino, name_of(5), std::string(3000, 'x')), EIO);
  EXPECT_EQ(h.setxattr(f->ino, name_of(6), std::string(400, 'y')), EIO);
  EXPECT_EQ(h.setxattr(f->ino, "user.new", "n"), EIO);
  EXPECT_EQ(h.removexattr(f->ino, name_of(7)), EIO);
  EXPECT_EQ(h.statfs().bfree, free_before);
  EXPECT_EQ(*h.listxattr(f->ino), list_before);
  EXPECT_EQ(*h.getxattr(f->ino, name_of(5)), value_of(5));
  EXPECT_EQ(*h.getxattr(f->ino, name_of(6)), value_of(6));
  EXPECT_EQ(*h.getxattr(f->ino, name_of(7)), value_of(7));
  ASSERT_TRUE(h.remount()) << h.why();
  EXPECT_EQ(*h.getxattr(f->ino, "user.last"), "committed");
  EXPECT_EQ(*h.listxattr(f->ino), list_before);
  EXPECT_EQ(fsck_report(h), "");
}

// The DRAM index on its own: sets staged into one transaction see each
// other (a new inode's inherited ACLs), and rolling them back, in any
// order and more than once, restores the index and frees what they took.
TEST(XattrIndexTest, RollbackUndoesEverySetOfTheTransaction) {
  pmem::testing::TempDir dir;
  const std::string path = dir.file("pool");
  std::string why;
  ASSERT_TRUE(mkfs(path, 4 << 20, {}, &why)) << why;
  auto pool = pmem::PoolMap::open(path, {}, &why);
  ASSERT_TRUE(pool) << why;
  const Superblock sb = *pool->at<Superblock>(0);
  std::vector<uint64_t> used((sb.total_blocks + 63) / 64, 0);
  for (uint64_t b = 0; b < sb.data_start; ++b)
    used[b / 64] |= uint64_t{1} << (b % 64);
  BlockAllocator alloc;
  alloc.init(sb.data_start, sb.total_blocks, used, 1);
  const uint64_t free0 = alloc.free_blocks();
  const XattrIndex::Env env{&*pool, &alloc, 7};
  auto bytes = [](const std::string& s) { return std::as_bytes(std::span(s)); };

  XattrIndex x;
  DiskInode nd{};
  Transaction tx;
  const std::string a(28, 'a'), b(600, 'b');
  ASSERT_TRUE(x.stage_set(env, nd, "system.posix_acl_access", bytes(a), tx));
  ASSERT_TRUE(x.stage_set(env, nd, "system.posix_acl_default", bytes(b), tx));
  EXPECT_EQ(x.size(), 2u);
  EXPECT_EQ(x.chain_blocks(), 1u);  // the second went into the first's block
  EXPECT_NE(nd.xattr_block, 0u);
  EXPECT_EQ(alloc.free_blocks(), free0 - 2);  // the slot block and a record
  x.rollback(alloc);
  x.rollback(alloc);
  EXPECT_TRUE(x.empty());
  EXPECT_EQ(x.chain_blocks(), 0u);
  EXPECT_EQ(alloc.free_blocks(), free0);

  // A committed state, then a window of replaces and new names (one of
  // them filling a new block) rolled back.
  nd = {};
  for (int k = 0; k < 63; ++k) {
    tx.clear();
    ASSERT_TRUE(x.stage_set(env, nd, name_of(k), bytes(value_of(k)), tx));
    x.finish();
  }
  const uint64_t head = nd.xattr_block;
  const uint64_t free1 = alloc.free_blocks();
  const XattrLoc loc5 = x.find(name_of(5))->second;
  tx.clear();
  ASSERT_TRUE(x.stage_set(env, nd, name_of(5), bytes(b), tx));
  ASSERT_TRUE(x.stage_set(env, nd, "user.new", bytes(a), tx));
  ASSERT_TRUE(
      x.stage_set(env, nd, name_of(6), bytes(std::string(450, 'z')), tx));
  EXPECT_EQ(x.chain_blocks(), 2u);
  EXPECT_EQ(nd.xattr_block, head);  // appended at the tail, never a new head
  x.rollback(alloc);
  EXPECT_EQ(x.size(), 63u);
  EXPECT_EQ(x.chain_blocks(), 1u);
  EXPECT_EQ(x.find("user.new"), x.end());
  EXPECT_EQ(x.find(name_of(5))->second.kind, loc5.kind);
  EXPECT_EQ(x.find(name_of(5))->second.slot, loc5.slot);
  EXPECT_EQ(alloc.free_blocks(), free1);
  // The rolled-back state takes new sets as before.
  tx.clear();
  ASSERT_TRUE(x.stage_set(env, nd, "user.new", bytes(a), tx));
  x.finish();
  EXPECT_EQ(x.chain_blocks(), 2u);
  EXPECT_EQ(x.bytes(), 63 * (name_of(0).size() + 8) + 8 + a.size());
}

}  // namespace
}  // namespace zest::pmfs::test
