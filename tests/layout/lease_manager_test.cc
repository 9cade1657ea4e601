// LeaseManager (layout/lease_manager.h) against a provider that records
// what it is asked: sharing and exclusion, recall answered in time, fencing
// of a holder that does not answer, zombies holding deferred frees, detach,
// the kernel path's guards, and a full state table.
#include "layout/lease_manager.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace zest::layout {
namespace {

using namespace std::chrono_literals;

class FakeProvider final : public fs::LayoutProvider {
 public:
  Result<fs::Layout> map(fs::Ino, uint64_t off, uint64_t len, fs::LayoutIntent) override {
    ++maps;
    fs::Layout l;
    l.generation = gen;
    l.extents.push_back({off, len, 4096 * 100, fs::LayoutExtent::State::Written});
    return l;
  }
  Status commit(fs::Ino, uint64_t g, std::span<const fs::LayoutExtent>, std::optional<uint64_t>,
                timespec) override {
    if (g != gen) return Errno(ESTALE);
    ++commits;
    return {};
  }
  void set_holds(fs::LayoutHolds* h) override { holds = h; }
  void release_held(fs::Ino ino) override {
    std::lock_guard l(mu);
    released.push_back(ino);
  }
  uint64_t deferred_blocks() const override { return 0; }

  std::vector<fs::Ino> released_now() {
    std::lock_guard l(mu);
    return released;
  }

  fs::LayoutHolds* holds = nullptr;
  uint64_t gen = 7;
  int maps = 0, commits = 0;
  std::mutex mu;
  std::vector<fs::Ino> released;
};

// A client whose recall handler the test chooses.
struct TestClient final : LeaseClient {
  std::function<void(uint64_t)> on_recall;
  std::atomic<int> recalls{0};
  void recall(uint64_t id) override {
    ++recalls;
    if (on_recall) on_recall(id);
  }
};

struct Fixture : ::testing::Test {
  FakeProvider p;
  std::unique_ptr<LeaseManager> m;
  StateTable ta, tb;
  TestClient ca, cb;
  LeaseManager::ClientId a = 0, b = 0;

  void SetUp() override {
    m = std::make_unique<LeaseManager>(p, LeaseOptions{50ms});
    ta = StateTable::create(4).value();
    tb = StateTable::create(4).value();
    a = m->attach(&ca, &ta);
    b = m->attach(&cb, &tb);
  }
  void TearDown() override {
    if (m) {
      m->detach(a);
      m->detach(b);
    }
  }
};

using LeaseManagerTest = Fixture;

TEST_F(LeaseManagerTest, InstallsItselfAsTheProvidersHolds) {
  EXPECT_EQ(p.holds, m.get());
  m.reset();
  EXPECT_EQ(p.holds, nullptr);
}

TEST_F(LeaseManagerTest, ReadLeasesAreShared) {
  auto x = m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Read);
  auto y = m->acquire(b, 5, 0, LeaseManager::kToEnd, LeaseMode::Read);
  ASSERT_TRUE(x && y);
  EXPECT_EQ(ca.recalls + cb.recalls, 0);
  EXPECT_EQ(slot_state(ta.load(x->slot)), SlotState::Valid);
  EXPECT_TRUE(slot_usable(x->word, ta.load(x->slot)));
  EXPECT_TRUE(slot_usable(y->word, tb.load(y->slot)));
  EXPECT_TRUE(m->held(5));
  EXPECT_FALSE(m->held(6));
}

TEST_F(LeaseManagerTest, AWriteLeaseRecallsOthersAndTheyReturnInTime) {
  auto x = m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Read);
  ASSERT_TRUE(x);
  // a answers the recall from another thread, as a client's listener does.
  std::thread answer;
  ca.on_recall = [&](uint64_t id) {
    answer = std::thread([&, id] { EXPECT_TRUE(m->release(a, id)); });
  };
  auto y = m->acquire(b, 5, 0, 4096, LeaseMode::Write);
  ASSERT_TRUE(y);
  answer.join();
  EXPECT_EQ(ca.recalls, 1);
  const LeaseStats s = m->stats();
  EXPECT_EQ(s.fenced, 0u);
  EXPECT_EQ(s.active, 1u);
  EXPECT_FALSE(slot_usable(x->word, ta.load(x->slot)));
}

TEST_F(LeaseManagerTest, OneClientsOwnLeasesConflictToo) {
  // Each open file of a client caches its own map and size.
  auto x = m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Read);
  ASSERT_TRUE(x);
  std::thread answer;
  ca.on_recall = [&](uint64_t id) {
    answer = std::thread([&, id] { EXPECT_TRUE(m->release(a, id)); });
  };
  auto y = m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Write);
  ASSERT_TRUE(y);
  answer.join();
  EXPECT_EQ(ca.recalls, 1);
  EXPECT_FALSE(slot_usable(x->word, ta.load(x->slot)));
  EXPECT_EQ(m->stats().fenced, 0u);
}

TEST_F(LeaseManagerTest, DisjointRangesDoNotConflict) {
  auto x = m->acquire(a, 5, 0, 4096, LeaseMode::Write);
  auto y = m->acquire(b, 5, 4096, 4096, LeaseMode::Write);
  ASSERT_TRUE(x && y);
  EXPECT_EQ(ca.recalls + cb.recalls, 0);
}

TEST_F(LeaseManagerTest, AHolderThatDoesNotAnswerIsFencedAndStaysHeld) {
  auto x = m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Write);
  ASSERT_TRUE(x);
  const auto t0 = std::chrono::steady_clock::now();
  auto y = m->acquire(b, 5, 0, LeaseManager::kToEnd, LeaseMode::Write);
  ASSERT_TRUE(y);
  // Bounded by the deadline (50 ms), never by the client; generous margin.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(slot_state(ta.load(x->slot)), SlotState::Fenced);
  EXPECT_FALSE(slot_usable(x->word, ta.load(x->slot)));
  // The fenced holder's commits and maps are refused.
  EXPECT_EQ(m->commit(a, x->id, 5, p.gen, {}, std::nullopt, {}).error(), Errno(ESTALE));
  EXPECT_EQ(m->map(a, x->id, 5, 0, 4096, fs::LayoutIntent::Read).error(), Errno(ESTALE));
  EXPECT_TRUE(m->commit(b, y->id, 5, p.gen, {}, std::nullopt, {}));
  // b returns its lease; the zombie still holds the file.
  ASSERT_TRUE(m->release(b, y->id));
  EXPECT_TRUE(m->held(5));
  EXPECT_TRUE(p.released_now().empty());
  // a finally returns the fenced lease: the file is free, deferred blocks go.
  ASSERT_TRUE(m->release(a, x->id));
  EXPECT_FALSE(m->held(5));
  EXPECT_EQ(p.released_now(), std::vector<fs::Ino>{5});
  EXPECT_EQ(m->stats().fenced, 1u);
}

TEST_F(LeaseManagerTest, DetachReleasesEverythingAtOnce) {
  ASSERT_TRUE(m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Write));
  ASSERT_TRUE(m->acquire(a, 9, 0, LeaseManager::kToEnd, LeaseMode::Read));
  m->detach(a);
  EXPECT_FALSE(m->held(5));
  EXPECT_FALSE(m->held(9));
  EXPECT_FALSE(m->any_active());
  // b gets a write lease at once: nobody to recall.
  ASSERT_TRUE(m->acquire(b, 5, 0, LeaseManager::kToEnd, LeaseMode::Write));
  EXPECT_EQ(ca.recalls, 0);
}

TEST_F(LeaseManagerTest, ChecksRangeModeAndOwner) {
  auto r = m->acquire(a, 5, 4096, 8192, LeaseMode::Read);
  ASSERT_TRUE(r);
  EXPECT_TRUE(m->check(a, r->id, 5, 4096, 8192, LeaseMode::Read));
  EXPECT_EQ(m->check(a, r->id, 5, 0, 4096, LeaseMode::Read).error(), Errno(EINVAL));
  EXPECT_EQ(m->check(a, r->id, 5, 4096, 4096, LeaseMode::Write).error(), Errno(EACCES));
  EXPECT_EQ(m->check(a, r->id, 6, 4096, 4096, LeaseMode::Read).error(), Errno(EINVAL));
  EXPECT_EQ(m->check(b, r->id, 5, 4096, 4096, LeaseMode::Read).error(), Errno(ESTALE));
  EXPECT_EQ(m->map(a, r->id, 5, 4096, 4096, fs::LayoutIntent::Write).error(), Errno(EACCES));
  EXPECT_EQ(m->commit(a, r->id, 5, p.gen, {}, std::nullopt, {}).error(), Errno(EACCES));
  EXPECT_EQ(m->release(b, r->id).error(), Errno(ENOENT));
  auto w = m->acquire(a, 6, 0, 8192, LeaseMode::Write);
  ASSERT_TRUE(w);
  const fs::LayoutExtent outside{8192, 4096, 4096, fs::LayoutExtent::State::Unwritten};
  EXPECT_EQ(m->commit(a, w->id, 6, p.gen, {&outside, 1}, std::nullopt, {}).error(), Errno(EINVAL));
  EXPECT_EQ(m->commit(a, w->id, 6, p.gen, {}, 8192 + 1, {}).error(), Errno(EINVAL));
  EXPECT_EQ(p.commits, 0);
}

TEST_F(LeaseManagerTest, TheTableBoundsLeasesPerClient) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(m->acquire(a, 10 + i, 0, 1, LeaseMode::Read));
  EXPECT_EQ(m->acquire(a, 20, 0, 1, LeaseMode::Read).error(), Errno(ENOLCK));
  EXPECT_TRUE(m->acquire(b, 20, 0, 1, LeaseMode::Read));
}

TEST_F(LeaseManagerTest, KernelPathFastWithoutLeasesAndRecallsWithThem) {
  EXPECT_FALSE(m->any_active());
  {
    auto g = m->enter(5, 0, 4096, LeaseMode::Write);
    EXPECT_TRUE(g.engaged());
  }
  auto x = m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Read);
  ASSERT_TRUE(x);
  // A kernel read does not disturb a read lease; a kernel write recalls it.
  { auto g = m->enter(5, 0, 4096, LeaseMode::Read); }
  EXPECT_EQ(ca.recalls, 0);
  std::thread answer;
  ca.on_recall = [&](uint64_t id) { answer = std::thread([&, id] { (void)m->release(a, id); }); };
  { auto g = m->enter(5, 0, 4096, LeaseMode::Write); }
  answer.join();
  EXPECT_EQ(ca.recalls, 1);
  EXPECT_FALSE(slot_usable(x->word, ta.load(x->slot)));
  EXPECT_EQ(m->stats().fenced, 0u);
}

TEST_F(LeaseManagerTest, GrantsWaitForAGuardToEnd) {
  std::atomic<bool> granted{false};
  auto g = std::make_unique<LeaseManager::Guard>(m->recall(5, 0, LeaseManager::kToEnd, LeaseMode::Write));
  std::thread t([&] {
    auto x = m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Read);
    EXPECT_TRUE(x);
    granted = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(granted.load());
  g.reset();
  t.join();
  EXPECT_TRUE(granted.load());
}

TEST_F(LeaseManagerTest, AGrantWaitsForKernelOperationsInFlight) {
  // A kernel write passed the fast test before any lease existed; a grant
  // that starts meanwhile must not map until it ended.
  auto g = std::make_unique<LeaseManager::Guard>(m->enter(5, 0, 4096, LeaseMode::Write));
  std::atomic<bool> granted{false};
  std::thread t([&] {
    EXPECT_TRUE(m->acquire(a, 5, 0, LeaseManager::kToEnd, LeaseMode::Read));
    granted = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(granted.load());
  g.reset();
  t.join();
  EXPECT_TRUE(granted.load());
}

}  // namespace
}  // namespace zest::layout
