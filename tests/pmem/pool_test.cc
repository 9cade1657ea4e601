#include "pmem/pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/pmem/temp_dir.h"

namespace zest::pmem {
namespace {

using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

TEST(PoolMap, CreateMapsSparseFileOnPageCacheAtCacheLineGranularity) {
  TempDir dir;
  std::string why;
  auto pool = PoolMap::create(dir.file("pool"), 4 * kMiB, &why);
  ASSERT_TRUE(pool.ok()) << why;
  EXPECT_EQ(pool->size(), 4 * kMiB);
  EXPECT_EQ(pool->path(), dir.file("pool"));
  EXPECT_NE(pool->base(), nullptr);
  EXPECT_FALSE(pool->is_real_pmem());  // a temporary directory is not DAX
  EXPECT_EQ(pool->granularity(), Granularity::CacheLine);
  EXPECT_STREQ(pool->mode(), "cache-line");
  EXPECT_EQ(pool->describe(),
            "cache-line on page cache: survives a crash of the server "
            "process, not a power cut");
  // Sparse: nothing allocated yet.
  struct stat st;
  ASSERT_EQ(::stat(dir.file("pool").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 4 * kMiB);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 4 * kMiB);
  // Fresh pools read as zeros.
  EXPECT_EQ(*pool->at<uint64_t>(4 * kMiB - 8), 0u);
}

TEST(PoolMap, CreateRefusesExistingFile) {
  TempDir dir;
  std::string why;
  { ASSERT_TRUE(PoolMap::create(dir.file("pool"), kMiB, &why).ok()) << why; }
  auto again = PoolMap::create(dir.file("pool"), kMiB, &why);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error(), Errno(EEXIST));
  EXPECT_NE(why.find("already exists"), std::string::npos) << why;
  EXPECT_NE(why.find(dir.file("pool")), std::string::npos) << why;
}

TEST(PoolMap, CreateRefusesBadSize) {
  TempDir dir;
  std::string why;
  auto pool = PoolMap::create(dir.file("pool"), 5000, &why);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.error(), Errno(EINVAL));
  EXPECT_NE(why.find("4 KiB"), std::string::npos) << why;
  EXPECT_NE(::access(dir.file("pool").c_str(), F_OK), 0);  // nothing left
  EXPECT_FALSE(PoolMap::create(dir.file("pool"), 0, &why).ok());
}

TEST(PoolMap, OpenErrorsNameThePath) {
  TempDir dir;
  std::string why;
  auto missing = PoolMap::open(dir.file("missing"), {}, &why);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), Errno(ENOENT));
  EXPECT_NE(why.find(dir.file("missing")), std::string::npos) << why;

  auto directory = PoolMap::open(dir.path(), {}, &why);
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.error(), Errno(EISDIR));
  EXPECT_NE(why.find(dir.path()), std::string::npos) << why;

  std::string empty = dir.file("empty");
  { UniqueFd fd(::open(empty.c_str(), O_CREAT | O_WRONLY, 0600)); }
  auto e = PoolMap::open(empty, {}, &why);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error(), Errno(EINVAL));
  EXPECT_NE(why.find("not a pool"), std::string::npos) << why;

  auto null = PoolMap::open("/dev/null", {}, &why);  // a char device, not dax
  ASSERT_FALSE(null.ok());
  EXPECT_NE(why.find("/dev/null"), std::string::npos) << why;
}

TEST(PoolMap, RefusesPoolInUse) {
  TempDir dir;
  std::string why;
  auto first = PoolMap::create(dir.file("pool"), kMiB, &why);
  ASSERT_TRUE(first.ok()) << why;
  // flock is per open file: a second open, even in this process, is refused.
  auto second = PoolMap::open(dir.file("pool"), {}, &why);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error(), Errno(EBUSY));
  EXPECT_NE(why.find("pool is in use by another process"), std::string::npos)
      << why;
  OpenOptions ro;
  ro.read_only = true;
  EXPECT_FALSE(PoolMap::open(dir.file("pool"), ro, &why).ok());
  // Without the lock (a client under the owner's leases) it maps.
  OpenOptions unlocked;
  unlocked.read_only = true;
  unlocked.lock = false;
  EXPECT_TRUE(PoolMap::open(dir.file("pool"), unlocked, &why).ok()) << why;
  // Closing releases the lock.
  { PoolMap gone = std::move(*first); }
  EXPECT_TRUE(PoolMap::open(dir.file("pool"), {}, &why).ok()) << why;
}

TEST(PoolMap, ReadersShareTheLock) {
  TempDir dir;
  std::string why;
  { ASSERT_TRUE(PoolMap::create(dir.file("pool"), kMiB, &why).ok()) << why; }
  OpenOptions ro;
  ro.read_only = true;
  auto a = PoolMap::open(dir.file("pool"), ro, &why);
  ASSERT_TRUE(a.ok()) << why;
  auto b = PoolMap::open(dir.file("pool"), ro, &why);
  ASSERT_TRUE(b.ok()) << why;
  EXPECT_TRUE(b->read_only());
  EXPECT_FALSE(PoolMap::open(dir.file("pool"), {}, &why).ok());
}

TEST(PoolMap, PersistedDataReadsBackAfterReopen) {
  TempDir dir;
  std::string why;
  std::vector<char> big(10000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  {
    auto pool = PoolMap::create(dir.file("pool"), kMiB, &why);
    ASSERT_TRUE(pool.ok()) << why;
    pool->write(100, "hello", 5);
    pool->flush(100, 5);
    pool->write_nt(4096, big.data(), big.size());
    pool->store_u64(64, 0x1122334455667788ull);
    pool->flush(64, 8);
    pool->drain();
    pool->write(20000, "x", 1);
    pool->zero(4096 + 100, 50);
    pool->persist(20000, 1);
    PoolStats s = pool->stats();
    EXPECT_EQ(s.stores, 5u);
    EXPECT_EQ(s.bytes_written, 5u + big.size() + 8 + 1 + 50);
    EXPECT_EQ(s.flushes, 3u);
    EXPECT_EQ(s.fences, 2u);
    pool->reset_stats();
    EXPECT_EQ(pool->stats().stores, 0u);
  }
  auto pool = PoolMap::open(dir.file("pool"), {}, &why);
  ASSERT_TRUE(pool.ok()) << why;
  EXPECT_EQ(std::memcmp(pool->bytes(100, 5).data(), "hello", 5), 0);
  EXPECT_EQ(*pool->at<uint64_t>(64), 0x1122334455667788ull);
  EXPECT_EQ(*pool->at<char>(20000), 'x');
  auto data = pool->bytes(4096, big.size());
  for (size_t i = 0; i < big.size(); ++i) {
    char want = (i >= 100 && i < 150) ? 0 : big[i];
    ASSERT_EQ(static_cast<char>(data[i]), want) << i;
  }
}

TEST(PoolMap, PageDurabilityUsesMsync) {
  TempDir dir;
  std::string why;
  OpenOptions o;
  o.durability = Durability::Page;
  auto pool = PoolMap::create(dir.file("pool"), kMiB, &why, o);
  ASSERT_TRUE(pool.ok()) << why;
  EXPECT_EQ(pool->granularity(), Granularity::Page);
  EXPECT_STREQ(pool->mode(), "page");
  EXPECT_EQ(pool->describe(),
            "page (msync): survives a power cut on a real disk, slower");
  pool->write(5000, "abc", 3);
  pool->persist(5000, 3);
  pool->write_nt(9000, "def", 3);
  pool->drain();
  EXPECT_EQ(std::memcmp(pool->bytes(9000, 3).data(), "def", 3), 0);

  OpenOptions cl;
  cl.durability = Durability::CacheLine;
  { PoolMap closed = std::move(*pool); }
  auto again = PoolMap::open(dir.file("pool"), cl, &why);
  ASSERT_TRUE(again.ok()) << why;
  EXPECT_EQ(again->granularity(), Granularity::CacheLine);
  EXPECT_EQ(std::memcmp(again->bytes(5000, 3).data(), "abc", 3), 0);
}

TEST(PoolMap, ForcedGranularityLeavesEnvironmentAsItWas) {
  TempDir dir;
  std::string why;
  ::unsetenv("PMEM2_FORCE_GRANULARITY");
  {
    auto pool = PoolMap::create(dir.file("a"), kMiB, &why);
    ASSERT_TRUE(pool.ok()) << why;
    EXPECT_EQ(std::getenv("PMEM2_FORCE_GRANULARITY"), nullptr);
  }
  // A value set by someone else neither fools the detection (the page cache
  // is not reported as pmem) nor is lost.
  ::setenv("PMEM2_FORCE_GRANULARITY", "BYTE", 1);
  {
    auto pool = PoolMap::create(dir.file("b"), kMiB, &why);
    ASSERT_TRUE(pool.ok()) << why;
    EXPECT_FALSE(pool->is_real_pmem());
    EXPECT_EQ(pool->granularity(), Granularity::CacheLine);
    ASSERT_NE(std::getenv("PMEM2_FORCE_GRANULARITY"), nullptr);
    EXPECT_STREQ(std::getenv("PMEM2_FORCE_GRANULARITY"), "BYTE");
  }
  ::unsetenv("PMEM2_FORCE_GRANULARITY");
}

TEST(PoolMap, MoveKeepsTheMapping) {
  TempDir dir;
  std::string why;
  auto pool = PoolMap::create(dir.file("pool"), kMiB, &why);
  ASSERT_TRUE(pool.ok()) << why;
  pool->write(0, "z", 1);
  const std::byte* base = pool->base();
  PoolMap moved = std::move(*pool);
  EXPECT_EQ(moved.base(), base);
  EXPECT_EQ(pool->base(), nullptr);
  EXPECT_EQ(*moved.at<char>(0), 'z');
  PoolMap assigned = std::move(moved);
  EXPECT_EQ(assigned.base(), base);
}

TEST(PoolMap, ParsesDurability) {
  Durability d;
  EXPECT_TRUE(parse_durability("page", &d));
  EXPECT_EQ(d, Durability::Page);
  EXPECT_TRUE(parse_durability("cache-line", &d));
  EXPECT_EQ(d, Durability::CacheLine);
  EXPECT_TRUE(parse_durability("auto", &d));
  EXPECT_EQ(d, Durability::Auto);
  EXPECT_FALSE(parse_durability("fast", &d));
  EXPECT_STREQ(to_string(Durability::Page), "page");
  EXPECT_STREQ(to_string(Granularity::CacheLine), "cache-line");
}

using PoolMapDeathTest = ::testing::Test;

TEST_F(PoolMapDeathTest, OutOfRangeAccessAborts) {
  // "fast": the child forks from here and dies; a re-run of the test body
  // ("threadsafe") would make a temporary directory nobody removes.
  GTEST_FLAG_SET(death_test_style, "fast");
  TempDir dir;
  std::string why;
  auto pool = PoolMap::create(dir.file("pool"), kMiB, &why);
  ASSERT_TRUE(pool.ok()) << why;
  char buf[16] = {};
  EXPECT_DEATH(pool->write(kMiB - 8, buf, 16), "outside pool");
  EXPECT_DEATH(pool->flush(kMiB, 1), "outside pool");
  EXPECT_DEATH(pool->at<uint64_t>(~uint64_t{0} - 2), "outside pool");
  EXPECT_DEATH(pool->store_u64(12, 1), "unaligned");
}

TEST_F(PoolMapDeathTest, WriteToReadOnlyPoolAborts) {
  // "fast": the child forks from here and dies; a re-run of the test body
  // ("threadsafe") would make a temporary directory nobody removes.
  GTEST_FLAG_SET(death_test_style, "fast");
  TempDir dir;
  std::string why;
  { ASSERT_TRUE(PoolMap::create(dir.file("pool"), kMiB, &why).ok()) << why; }
  OpenOptions ro;
  ro.read_only = true;
  auto pool = PoolMap::open(dir.file("pool"), ro, &why);
  ASSERT_TRUE(pool.ok()) << why;
  EXPECT_EQ(*pool->at<uint64_t>(0), 0u);
  EXPECT_DEATH(pool->write(0, "a", 1), "read-only");
}

}  // namespace
}  // namespace zest::pmem
