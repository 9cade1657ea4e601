// Several threads on shared directories and files: no deadlock, no lost
// update, and a pool that fsck finds clean and that mounts to the same tree.
#include <fcntl.h>
#include <linux/fs.h>

#include <thread>

#include "tests/pmfs/harness.h"

namespace zest::pmfs::test {
namespace {

TEST(ConcurrencyTest, SharedDirectoriesStayConsistent) {
  PmFsHarness h(128 << 20);
  auto a = h.mkdir(fs::kRootIno, "a");
  auto b = h.mkdir(fs::kRootIno, "b");
  auto shared = h.create(fs::kRootIno, "shared");
  ASSERT_TRUE(a && b && shared);
  constexpr int kThreads = 4, kOps = 1500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kOps; ++k) {
        const std::string n = "t" + std::to_string(t) + "-" + std::to_string(k);
        auto e = h.create(k % 2 ? a->ino : b->ino, n);
        if (!e) continue;
        (void)h.write(e->ino, k * 100, std::string(5000, 'a' + t));
        (void)h.write(shared->ino, (t * kOps + k) * 16, std::string(16, 'A' + t));
        // Cross-directory renames in both directions (rename_mu_ + 4 locks).
        (void)h.rename(k % 2 ? a->ino : b->ino, n, k % 2 ? b->ino : a->ino, n + "r");
        if (k % 3 == 0) (void)h.link(e->ino, a->ino, n + "l");
        if (k % 4 == 0) {
          (void)h.unlink(k % 2 ? b->ino : a->ino, n + "r");
          h.forget(e->ino);
        }
        if (k % 50 == 0) (void)h.list(k % 2 ? a->ino : b->ino, true);
        if (k % 97 == 0) {
          (void)h.rename(fs::kRootIno, "a", fs::kRootIno, "b", RENAME_EXCHANGE);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  // Every thread's slice of the shared file holds its own bytes.
  auto data = h.read(shared->ino, 0, kThreads * kOps * 16);
  ASSERT_TRUE(data);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(data->substr(t * kOps * 16, 16), std::string(16, 'A' + t));
  }
  const size_t na = h.list(a->ino).size(), nb = h.list(b->ino).size();
  const auto sf = h.statfs();
  ASSERT_TRUE(h.remount()) << h.why();
  EXPECT_EQ(h.list(a->ino).size(), na);
  EXPECT_EQ(h.list(b->ino).size(), nb);
  EXPECT_LE(sf.bfree, h.statfs().bfree);  // orphans (still referenced) freed now
  h.close();
  auto errors = h.fsck_errors();
  EXPECT_TRUE(errors.empty()) << errors[0];
}

}  // namespace
}  // namespace zest::pmfs::test
