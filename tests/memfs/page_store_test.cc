// The sparse page store on its own: PageTree and FileData.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "memfs/file_data.h"
#include "memfs/page_tree.h"

namespace zest::memfs {
namespace {

bool always(uintptr_t) { return true; }

TEST(PageTree, SetGetEraseAcrossHeights) {
  PageTree t;
  EXPECT_EQ(t.get(0), 0u);
  EXPECT_TRUE(t.set(5, 0x1000));
  EXPECT_TRUE(t.set(uint64_t{1} << 40, 0x2000));  // grows to height 7
  EXPECT_EQ(t.get(5), 0x1000u);
  EXPECT_EQ(t.get(uint64_t{1} << 40), 0x2000u);
  EXPECT_EQ(t.get(6), 0u);
  EXPECT_EQ(t.find(0, PageTree::kEnd, true, always), 5u);
  EXPECT_EQ(t.find(6, PageTree::kEnd, true, always), uint64_t{1} << 40);
  EXPECT_EQ(t.find(5, PageTree::kEnd, false, always), 6u);
  int erased = 0;
  t.erase_range(0, PageTree::kEnd, [&](uint64_t, uintptr_t) { ++erased; });
  EXPECT_EQ(erased, 2);
  EXPECT_TRUE(t.empty());
}

TEST(PageTree, FindHoleAfterFullLeaf) {
  PageTree t;
  for (uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(t.set(i, 0x1000 * (i + 1)));
  EXPECT_EQ(t.find(0, PageTree::kEnd, false, always), 200u);
  EXPECT_EQ(t.find(0, 100, false, always), 100u);  // none in range
  t.erase_range(64, 128, [](uint64_t, uintptr_t) {});
  EXPECT_EQ(t.find(10, PageTree::kEnd, false, always), 64u);
  EXPECT_EQ(t.find(64, PageTree::kEnd, true, always), 128u);
  t.erase_range(0, PageTree::kEnd, [](uint64_t, uintptr_t) {});
}

class FileDataTest : public ::testing::Test {
 protected:
  SpaceBudget budget_{1 << 18, 100};
  FileData f_{&budget_};

  std::string read(uint64_t off, size_t len) {
    IovecList iov;
    f_.read(off, len, iov);
    std::string s;
    for (const iovec& v : iov.span()) s.append(static_cast<const char*>(v.iov_base), v.iov_len);
    return s;
  }
  void write(uint64_t off, std::string_view s) {
    auto n = f_.write(off, {reinterpret_cast<const std::byte*>(s.data()), s.size()});
    ASSERT_TRUE(n);
    ASSERT_EQ(*n, s.size());
  }
};

TEST_F(FileDataTest, SparseWriteAtOneTebibyteAllocatesOnePage) {
  write(uint64_t{1} << 40, "x");
  EXPECT_EQ(f_.size(), (uint64_t{1} << 40) + 1);
  EXPECT_EQ(f_.allocated_pages(), 1u);
  EXPECT_EQ(budget_.used_pages(), 1u);
  EXPECT_EQ(read((uint64_t{1} << 40) - 2, 10), std::string("\0\0x", 3));
  ASSERT_TRUE(f_.truncate(0));
  EXPECT_EQ(budget_.used_pages(), 0u);
}

TEST_F(FileDataTest, ZerosAllocateAndHolesShareOneIovec) {
  write(0, std::string(10, '\0'));
  EXPECT_EQ(f_.allocated_pages(), 1u);
  ASSERT_TRUE(f_.truncate(1 << 20));
  IovecList iov;
  f_.read(0, 1 << 20, iov);
  EXPECT_EQ(iov.bytes(), 1u << 20);
  EXPECT_EQ(iov.span().size(), 2u);  // the page, then one run of holes
}

TEST_F(FileDataTest, ShrinkZeroesTailSoRegrowReadsZeros) {
  write(0, std::string(100, 'a'));
  ASSERT_TRUE(f_.truncate(10));
  ASSERT_TRUE(f_.truncate(100));
  EXPECT_EQ(read(0, 100), std::string(10, 'a') + std::string(90, '\0'));
}

TEST_F(FileDataTest, AllocateIsAllOrNothing) {
  SpaceBudget small(4, 10);
  FileData g(&small);
  ASSERT_TRUE(g.write(4096, std::span<const std::byte>(reinterpret_cast<const std::byte*>("y"), 1)));
  Status s = g.allocate(0, 10 * 4096, false);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().value, ENOSPC);
  EXPECT_EQ(g.allocated_pages(), 1u);  // only the page written before
  EXPECT_EQ(small.used_pages(), 1u);
  EXPECT_EQ(g.size(), 4097u);
}

TEST_F(FileDataTest, WriteStopsAtCapacityWithShortCount) {
  SpaceBudget small(2, 10);
  FileData g(&small);
  std::string big(3 * 4096, 'z');
  auto n = g.write(0, {reinterpret_cast<const std::byte*>(big.data()), big.size()});
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 2u * 4096);
  auto m = g.write(3 * 4096, {reinterpret_cast<const std::byte*>(big.data()), 1});
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().value, ENOSPC);
}

// 64 MiB written and read back a MiB at a time, each read handing out one
// iovec per page (no copy). How fast is the benchmarks' business
// (bench/), not a unit test's.
TEST_F(FileDataTest, SequentialMebibytesReadWithoutCopy) {
  std::string mib(1 << 20, 'q');
  for (int k = 0; k < 64; ++k) {
    auto n = f_.write(uint64_t(k) << 20, {reinterpret_cast<const std::byte*>(mib.data()), mib.size()});
    ASSERT_TRUE(n);
    IovecList iov;
    f_.read(uint64_t(k) << 20, 1 << 20, iov);
    ASSERT_EQ(iov.bytes(), 1u << 20);
    ASSERT_EQ(iov.span().size(), 256u);  // one iovec per page, no copy
  }
  EXPECT_EQ(f_.size(), uint64_t(64) << 20);
}

}  // namespace
}  // namespace zest::memfs
