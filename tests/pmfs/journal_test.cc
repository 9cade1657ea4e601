// The journal alone: commit applies, a committed transaction replays, a
// torn one is ignored, damage is refused, capacity is enforced.
#include "pmfs/journal.h"

#include <gtest/gtest.h>

#include <cstring>

#include "pmem/pool.h"
#include "tests/pmem/temp_dir.h"

namespace zest::pmfs::test {
namespace {

constexpr uint64_t kJStart = 2, kJBlocks = 4;
constexpr uint64_t kMeta = (kJStart + kJBlocks) * kBlockSize;  // records may target from here

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    auto p = pmem::PoolMap::create(dir_.file("pool"), 1 << 20, &why);
    ASSERT_TRUE(p) << why;
    pool_ = std::make_unique<pmem::PoolMap>(std::move(*p));
    JournalHeader h{};
    h.magic = kJournalMagic;
    pool_->write_nt(kJStart * kBlockSize, &h, sizeof(h));
    pool_->drain();
  }
  std::string at(uint64_t off, size_t n) {
    auto b = pool_->bytes(off, n);
    return std::string(reinterpret_cast<const char*>(b.data()), n);
  }
  Journal journal() { return Journal(pool_.get(), kJStart, kJBlocks, kMeta); }

  pmem::testing::TempDir dir_;
  std::unique_ptr<pmem::PoolMap> pool_;
};

TEST_F(JournalTest, CommitAppliesAndRecoverIsIdempotent) {
  Journal j = journal();
  std::string why;
  ASSERT_TRUE(j.recover(&why)) << why;
  Transaction& tx = Transaction::local();
  tx.put(kMeta + 100, "hello", 5);
  tx.put(kMeta + 5000, "world!!!!", 9);
  tx.free_after(77, 3);
  ASSERT_TRUE(j.commit(tx));
  EXPECT_EQ(at(kMeta + 100, 5), "hello");
  EXPECT_EQ(at(kMeta + 5000, 9), "world!!!!");
  EXPECT_EQ(j.seq(), 1u);
  Journal j2 = journal();
  ASSERT_TRUE(j2.recover(&why)) << why;
  EXPECT_EQ(j2.seq(), 1u);
  EXPECT_EQ(at(kMeta + 100, 5), "hello");
}

TEST_F(JournalTest, HaltedCommitIsReplayed) {
  Journal j = journal();
  j.halt_after(1);
  Transaction& tx = Transaction::local();
  tx.put(kMeta + 64, "replayed", 8);
  ASSERT_TRUE(j.commit(tx));
  EXPECT_NE(at(kMeta + 64, 8), "replayed");  // not applied in place
  EXPECT_EQ(j.commit(tx).error().value, EIO);
  Journal j2 = journal();
  std::string why;
  ASSERT_TRUE(j2.recover(&why)) << why;
  EXPECT_EQ(at(kMeta + 64, 8), "replayed");
}

TEST_F(JournalTest, TornOrUncommittedIsIgnored) {
  Journal j = journal();
  j.halt_after(1);  // committed, then "crashed" before applying
  Transaction& tx = Transaction::local();
  tx.put(kMeta, "abc", 3);
  ASSERT_TRUE(j.commit(tx));
  // A record byte that did not reach the media (torn): the checksum fails,
  // the transaction never committed, nothing is replayed.
  const uint64_t rec = kJStart * kBlockSize + 64 + 16;
  const char good = *reinterpret_cast<const char*>(pool_->bytes(rec, 1).data());
  const char bad = 'X';
  pool_->write(rec, &bad, 1);
  std::string why;
  Journal j2 = journal();
  ASSERT_TRUE(j2.recover(&why)) << why;
  EXPECT_NE(at(kMeta, 3), "abc");
  // Whole again: replayed.
  pool_->write(rec, &good, 1);
  Journal j3 = journal();
  ASSERT_TRUE(j3.recover(&why)) << why;
  EXPECT_EQ(at(kMeta, 3), "abc");
  // A commit word that does not match seq: not committed either.
  pool_->store_u64(kJStart * kBlockSize + 8, 0);
  Journal j4 = journal();
  ASSERT_TRUE(j4.recover(&why));
  // Bad magic: the journal itself is damaged.
  pool_->zero(kJStart * kBlockSize, 8);
  Journal j5 = journal();
  EXPECT_FALSE(j5.recover(&why));
  EXPECT_NE(why.find("journal"), std::string::npos);
}

TEST_F(JournalTest, TooLargeIsEnospcBeforeWriting) {
  Journal j = journal();
  Transaction& tx = Transaction::local();
  std::string big(kJBlocks * kBlockSize, 'z');
  tx.put(kMeta, big.data(), big.size());
  EXPECT_FALSE(j.fits(tx));
  EXPECT_EQ(j.commit(tx).error().value, ENOSPC);
  EXPECT_EQ(j.seq(), 0u);
  EXPECT_NE(at(kMeta, 4), "zzzz");
}

}  // namespace
}  // namespace zest::pmfs::test
