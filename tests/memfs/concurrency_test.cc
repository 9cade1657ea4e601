// memfs under several threads at once, and with replies completed later on
// completion threads (the reply_delay_us option).
#include <fcntl.h>
#include <linux/fs.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "tests/memfs/fake_sink.h"

namespace zest::memfs::test {
namespace {

constexpr fs::Ino R = fs::kRootIno;

TEST(MemFsConcurrency, WritesReadsRenamesOnSharedAndOwnInodes) {
  MemFsHarness h;
  auto shared = h.create(R, "shared");
  ASSERT_TRUE(shared);
  auto d1 = h.mkdir(R, "d1");
  auto d2 = h.mkdir(R, "d2");
  constexpr int kThreads = 6;
  constexpr int kRounds = 300;
  std::vector<fs::Ino> own(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    own[t] = h.create(d1->ino, "own" + std::to_string(t))->ino;
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::string block(4096, static_cast<char>('a' + t));
      for (int k = 0; k < kRounds; ++k) {
        // Own 4 KiB slot of the shared file, and an own file.
        auto w = h.write(shared->ino, uint64_t(t) * 4096, block);
        if (!w || *w != block.size()) ++failures;
        auto r = h.read(shared->ino, uint64_t(t) * 4096, 4096);
        if (!r || *r != block) ++failures;
        if (!h.write(own[t], uint64_t(k) * 100, "0123456789")) ++failures;
        (void)h.getattr(shared->ino);
        // Move the own file back and forth between directories, and swap
        // it with a neighbour's (several inodes locked at once).
        std::string name = "own" + std::to_string(t);
        fs::Ino from = k % 2 ? d2->ino : d1->ino;
        fs::Ino to = k % 2 ? d1->ino : d2->ino;
        if (h.rename(from, name, to, name) != 0) ++failures;
        int other = static_cast<int>(rng() % kThreads);
        (void)h.rename(d1->ino, "own" + std::to_string(other), d2->ino,
                       "own" + std::to_string(t), RENAME_EXCHANGE);
        (void)h.lookup(d1->ino, name);
        (void)h.readdir(d2->ino, 0, k % 3 == 0);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(*h.read(shared->ino, uint64_t(t) * 4096, 4096),
              std::string(4096, static_cast<char>('a' + t)));
    EXPECT_EQ(h.getattr(own[t])->size, uint64_t(kRounds - 1) * 100 + 10);
  }
  // Every own file is in exactly one of the two directories.
  auto n1 = h.list(d1->ino);
  auto n2 = h.list(d2->ino);
  EXPECT_EQ(n1.size() + n2.size(), 4u + kThreads);
}

TEST(MemFsConcurrency, DirectoryRenameStormKeepsTreeConsistent) {
  MemFsHarness h;
  std::vector<fs::Ino> dirs;
  for (int k = 0; k < 6; ++k) dirs.push_back(h.mkdir(R, "d" + std::to_string(k))->ino);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int k = 0; k < 2000; ++k) {
        // Move some dN from anywhere to anywhere; cycles must be refused.
        int a = rng() % 6, b = rng() % 7;
        fs::Ino to = b == 6 ? R : dirs[b];
        std::string name = "d" + std::to_string(a);
        for (fs::Ino from : {R, dirs[0], dirs[1], dirs[2], dirs[3], dirs[4], dirs[5]}) {
          int e = h.rename(from, name, to, name);
          if (e == 0 || e == EINVAL) break;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  // Walk from the root: every directory reachable once, nlink consistent.
  std::vector<fs::Ino> stack{R};
  size_t seen = 0;
  while (!stack.empty()) {
    fs::Ino d = stack.back();
    stack.pop_back();
    ++seen;
    uint32_t subdirs = 0;
    auto listing = h.readdir(d, 2);
    for (auto& e : listing->dir) {
      ++subdirs;
      stack.push_back(e.ino);
      EXPECT_EQ(h.lookup(e.ino, "..")->ino, d);
    }
    EXPECT_EQ(h.getattr(d)->nlink, 2 + subdirs);
  }
  EXPECT_EQ(seen, 7u);
}

TEST(MemFsConcurrency, CreateUnlinkWhileListing) {
  MemFsHarness h;
  auto d = h.mkdir(R, "d");
  for (int k = 0; k < 200; ++k) ASSERT_TRUE(h.create(d->ino, "keep" + std::to_string(k)));
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (int k = 0; !stop; ++k) {
      std::string n = "tmp" + std::to_string(k % 50);
      (void)h.create(d->ino, n);
      (void)h.unlink(d->ino, n);
    }
  });
  for (int round = 0; round < 30; ++round) {
    auto names = h.list(d->ino, round % 2 == 1, 512);
    std::multiset<std::string> ms(names.begin(), names.end());
    for (int k = 0; k < 200; ++k) ASSERT_EQ(ms.count("keep" + std::to_string(k)), 1u);
  }
  stop = true;
  churn.join();
}

// --- async replies ----------------------------------------------------------

TEST(MemFsAsync, RepliesCompleteLaterOnAnotherThread) {
  MemFsHarness h(Options{.reply_delay_us = 2000});
  auto f = h.create(R, "f");
  ASSERT_TRUE(f);
  auto start = std::chrono::steady_clock::now();
  auto w = h.run([&](Call* c) {
    std::string data = "async data";  // gone before the reply: must be copied
    h.fs().write(h.ctx, f->ino, 0, 0, bytes(data), 0, h.reply<fs::WriteReply>(c));
  });
  EXPECT_EQ(w->kind, Call::kWrite);
  EXPECT_EQ(w->written, 10u);
  EXPECT_NE(w->replied_on, std::this_thread::get_id());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::microseconds(2000));
  EXPECT_EQ(*h.read(f->ino, 0, 100), "async data");
  EXPECT_EQ(h.lookup(R, "f")->ino, f->ino);
  EXPECT_EQ(h.getattr(f->ino)->size, 10u);
  auto r = h.run([&](Call* c) { h.fs().read(h.ctx, f->ino, 0, 0, 5, h.reply<fs::DataReply>(c)); });
  EXPECT_NE(r->replied_on, std::this_thread::get_id());
}

TEST(MemFsAsync, InterruptedRequestsAnswerEintr) {
  MemFsHarness h(Options{.reply_delay_us = 20000});
  auto f = h.create(R, "f");
  auto c = std::make_unique<Call>();
  h.fs().write(h.ctx, f->ino, 0, 0, bytes("x"), 0, h.reply<fs::WriteReply>(c.get()));
  {
    std::lock_guard lock(c->mu);
    c->interrupted = true;  // a signal arrived while it waited
  }
  ASSERT_TRUE(c->wait());
  EXPECT_EQ(c->kind, Call::kError);
  EXPECT_EQ(c->err, EINTR);
  EXPECT_EQ(h.getattr(f->ino)->size, 0u);  // nothing was written
}

TEST(MemFsAsync, ShutdownAnswersPendingReplies) {
  MemFsHarness h(Options{.reply_delay_us = 500000});
  std::vector<std::unique_ptr<Call>> calls;
  for (int k = 0; k < 20; ++k) {
    calls.push_back(std::make_unique<Call>());
    h.fs().getattr(h.ctx, R, nullptr, h.reply<fs::AttrReply>(calls.back().get()));
  }
  auto start = std::chrono::steady_clock::now();
  h.reset();  // destroys the MemFs: joins its threads, answers what is queued
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));
  for (auto& c : calls) {
    std::lock_guard lock(c->mu);
    EXPECT_TRUE(c->done);
    EXPECT_EQ(c->completions, 1);
    EXPECT_EQ(c->kind, Call::kAttr);
  }
}

}  // namespace
}  // namespace zest::memfs::test
