#include "pmem/recorder.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "pmem/pool.h"
#include "tests/pmem/temp_dir.h"

namespace zest::pmem {
namespace {

using testing::TempDir;

std::string as_string(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// The scripted sequence both tests below check.
void run_script(PoolMap& pool, Recorder& rec) {
  pool.write(0, "abcd", 4);
  pool.store_u64(8, 0x0102030405060708ull);
  pool.flush(0, 16);
  pool.drain();
  std::string big(100, 'n');
  pool.write_nt(64, big.data(), big.size());
  pool.zero(256, 64);
  pool.persist(0, 8);
  rec.mark(7);
}

void expect_script_log(const StoreLog& log) {
  const auto& e = log.entries();
  ASSERT_EQ(e.size(), 11u);
  EXPECT_EQ(e[0].kind, OpKind::Store);
  EXPECT_EQ(e[0].offset, 0u);
  EXPECT_EQ(e[0].length, 4u);
  EXPECT_EQ(as_string(log.bytes(e[0])), "abcd");
  EXPECT_EQ(e[1].kind, OpKind::Store);
  EXPECT_EQ(e[1].offset, 8u);
  EXPECT_EQ(e[1].length, 8u);
  uint64_t v;
  std::memcpy(&v, log.bytes(e[1]).data(), 8);
  EXPECT_EQ(v, 0x0102030405060708ull);
  EXPECT_EQ(e[2].kind, OpKind::Flush);
  EXPECT_EQ(e[2].offset, 0u);
  EXPECT_EQ(e[2].length, 16u);
  EXPECT_EQ(e[3].kind, OpKind::Fence);
  // write_nt: STORE then FLUSH of the same range, no fence.
  EXPECT_EQ(e[4].kind, OpKind::Store);
  EXPECT_EQ(e[4].offset, 64u);
  EXPECT_EQ(as_string(log.bytes(e[4])), std::string(100, 'n'));
  EXPECT_EQ(e[5].kind, OpKind::Flush);
  EXPECT_EQ(e[5].offset, 64u);
  EXPECT_EQ(e[5].length, 100u);
  // zero: STORE of zeros then FLUSH.
  EXPECT_EQ(e[6].kind, OpKind::Store);
  EXPECT_EQ(e[6].offset, 256u);
  EXPECT_EQ(as_string(log.bytes(e[6])), std::string(64, '\0'));
  EXPECT_EQ(e[7].kind, OpKind::Flush);
  EXPECT_EQ(e[7].offset, 256u);
  // persist: FLUSH then FENCE.
  EXPECT_EQ(e[8].kind, OpKind::Flush);
  EXPECT_EQ(e[8].offset, 0u);
  EXPECT_EQ(e[8].length, 8u);
  EXPECT_EQ(e[9].kind, OpKind::Fence);
  EXPECT_EQ(e[10].kind, OpKind::Mark);
  EXPECT_EQ(e[10].tag, 7u);
}

TEST(Recorder, LogsTheExactSequence) {
  TempDir dir;
  std::string why;
  Recorder rec;
  OpenOptions o;
  o.recorder = &rec;
  auto pool = PoolMap::create(dir.file("pool"), 1 << 20, &why, o);
  ASSERT_TRUE(pool.ok()) << why;
  EXPECT_EQ(pool->recorder(), &rec);
  run_script(*pool, rec);
  expect_script_log(rec.log());
  EXPECT_EQ(rec.entry_count(), 11u);
  EXPECT_EQ(rec.initial_image(), std::vector<std::byte>(1 << 20));
}

TEST(Recorder, SnapshotsThePoolWhenAttached) {
  TempDir dir;
  std::string why;
  auto pool = PoolMap::create(dir.file("pool"), 1 << 16, &why);
  ASSERT_TRUE(pool.ok()) << why;
  pool->write(10, "before", 6);  // not recorded
  Recorder rec;
  pool->set_recorder(&rec);
  pool->write(20, "after", 5);
  auto image = rec.initial_image();
  ASSERT_EQ(image.size(), 1u << 16);
  EXPECT_EQ(std::memcmp(image.data() + 10, "before", 6), 0);
  EXPECT_EQ(image[20], std::byte{0});
  ASSERT_EQ(rec.entry_count(), 1u);
  // restart: forget the log, snapshot anew.
  rec.restart();
  EXPECT_EQ(rec.entry_count(), 0u);
  EXPECT_EQ(std::memcmp(rec.initial_image().data() + 20, "after", 5), 0);
  pool->set_recorder(nullptr);
  pool->write(30, "x", 1);
  EXPECT_EQ(rec.entry_count(), 0u);
}

TEST(Recorder, StreamsToAFileThatReadsBack) {
  TempDir dir;
  std::string why;
  std::string log_path = dir.file("log");
  Recorder rec;  // outlives the pool it is attached to
  auto pool = PoolMap::create(dir.file("pool"), 1 << 16, &why);
  ASSERT_TRUE(pool.ok()) << why;
  pool->write(1000, "seed", 4);
  ASSERT_TRUE(rec.stream_to(log_path, &why).ok()) << why;
  pool->set_recorder(&rec);
  run_script(*pool, rec);

  std::vector<std::byte> image;
  auto log = read_log_file(log_path, &image, &why);
  ASSERT_TRUE(log.ok()) << why;
  expect_script_log(*log);
  EXPECT_EQ(image, rec.initial_image());
  EXPECT_EQ(std::memcmp(image.data() + 1000, "seed", 4), 0);

  // A record cut short (the recorder was killed mid-write) is dropped.
  struct stat st;
  ASSERT_EQ(::stat(log_path.c_str(), &st), 0);
  ASSERT_EQ(::truncate(log_path.c_str(), st.st_size - 3), 0);
  auto cut = read_log_file(log_path, &image, &why);
  ASSERT_TRUE(cut.ok()) << why;
  EXPECT_EQ(cut->size(), 10u);

  // Not a log.
  auto bad = read_log_file(dir.file("pool"), &image, &why);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(why.find("not a zest recorder log"), std::string::npos) << why;
  auto missing = read_log_file(dir.file("none"), &image, &why);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), Errno(ENOENT));
}

TEST(Recorder, ThreadsAppendWholeEntries) {
  TempDir dir;
  std::string why;
  Recorder rec;
  OpenOptions o;
  o.recorder = &rec;
  auto pool = PoolMap::create(dir.file("pool"), 1 << 20, &why, o);
  ASSERT_TRUE(pool.ok()) << why;
  constexpr int kThreads = 4, kOps = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        uint64_t off = (static_cast<uint64_t>(t) * kOps + i) * 64;
        uint64_t v = off + 1;
        pool->write(off, &v, 8);
        pool->persist(off, 8);
      }
    });
  }
  for (auto& th : threads) th.join();
  StoreLog log = rec.log();
  ASSERT_EQ(log.size(), static_cast<size_t>(kThreads * kOps * 3));
  size_t stores = 0;
  for (const auto& e : log.entries()) {
    if (e.kind != OpKind::Store) continue;
    ++stores;
    uint64_t v;
    std::memcpy(&v, log.bytes(e).data(), 8);
    EXPECT_EQ(v, e.offset + 1);
  }
  EXPECT_EQ(stores, static_cast<size_t>(kThreads * kOps));
}

}  // namespace
}  // namespace zest::pmem
