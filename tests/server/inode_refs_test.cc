#include "server/inode_refs.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace zest::server {
namespace {

TEST(InodeRefs, CountsAndDrops) {
  InodeRefs r;
  r.add(5);
  r.add(5, 2);
  EXPECT_EQ(r.count(5), 3u);
  EXPECT_FALSE(r.drop(5, 2));
  EXPECT_EQ(r.count(5), 1u);
  EXPECT_TRUE(r.drop(5, 1));
  EXPECT_EQ(r.count(5), 0u);
}

TEST(InodeRefs, OverDropClampsAndReportsZero) {
  InodeRefs r;
  r.add(9);
  EXPECT_TRUE(r.drop(9, 100));
  EXPECT_TRUE(r.drop(9, 1));  // unknown inode: nothing held
}

TEST(InodeRefs, ClearReturnsHeld) {
  InodeRefs r;
  r.add(1);
  r.add(2);
  r.add(3);
  EXPECT_TRUE(r.drop(2, 1));
  auto left = r.clear();
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(r.count(1), 0u);
}

TEST(InodeRefs, ConcurrentAddDropBalances) {
  InodeRefs r;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&r] {
      for (uint64_t i = 0; i < 20000; ++i) r.add(i % 97);
      for (uint64_t i = 0; i < 20000; ++i) r.drop(i % 97, 1);
    });
  for (auto& t : ts) t.join();
  for (uint64_t i = 0; i < 97; ++i) EXPECT_EQ(r.count(i), 0u) << i;
}

}  // namespace
}  // namespace zest::server
