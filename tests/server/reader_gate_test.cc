#include "server/reader_gate.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "base/fd.h"

namespace zest::server {
namespace {

// A pipe stands in for /dev/fuse: readable means "a request is queued".
struct Pipe {
  Pipe() {
    int p[2];
    EXPECT_EQ(::pipe(p), 0);
    r.reset(p[0]);
    w.reset(p[1]);
  }
  UniqueFd r, w;
};

TEST(ReaderGate, KeepsReadingWhenNobodyElseReads) {
  ReaderGate g;
  Pipe p;
  EXPECT_TRUE(g.before_next_read(p.r.get()));
}

TEST(ReaderGate, WakesAParkedWorkerOnBacklog) {
  ReaderGate g;
  Pipe p;
  std::atomic<bool> woke{false};
  std::thread parked([&] {
    if (g.park()) woke = true;
  });
  g.after_receive(p.r.get());  // nothing queued: nobody woken
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(woke.load());
  ASSERT_EQ(::write(p.w.get(), "x", 1), 1);  // a request waits
  g.after_receive(p.r.get());
  parked.join();
  EXPECT_TRUE(woke.load());
}

TEST(ReaderGate, ParksWhenAnotherReadsAndNothingWaits) {
  ReaderGate g;
  Pipe p;
  g.enter_read();  // someone else is in read()
  std::atomic<int> result{-1};
  std::thread t([&] { result = g.before_next_read(p.r.get()) ? 1 : 0; });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(result.load(), -1);  // parked
  g.stop();
  t.join();
  EXPECT_EQ(result.load(), 0);  // released by stop, told to leave
  g.leave_read();
}

TEST(ReaderGate, DoesNotParkWithABacklog) {
  ReaderGate g;
  Pipe p;
  g.enter_read();
  ASSERT_EQ(::write(p.w.get(), "x", 1), 1);
  EXPECT_TRUE(g.before_next_read(p.r.get()));
  g.leave_read();
}

}  // namespace
}  // namespace zest::server
