// Process-crash test for pmfs (docs/guarantees.md, "What is tested"): kill -9
// the server at random points of a multi-threaded workload, check the pool
// with `zest fsck`, remount, and find every acknowledged operation's effect,
// and every operation that was in flight either wholly there or wholly not.
//
//   pcrash_test                      20 rounds (ZEST_SOAK=1: 200)
//   ZEST_PCRASH_SEED=N pcrash_test   another seed (rounds use N, N+1, ...)
//
// Also: a second mount of a pool in use, and mounts of files that are not
// pmfs pools, are refused with a message naming the pool.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>

#include "tests/mount/zest_mount.h"
#include "tests/pcrash/crash_workload.h"
#include "tests/pcrash/pool_mount.h"

namespace zest::pcrash {
namespace {

bool Soak() {
  const char* s = std::getenv("ZEST_SOAK");
  return s && std::string(s) == "1";
}

uint64_t BaseSeed() {
  const char* s = std::getenv("ZEST_PCRASH_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 1;
}

#define SKIP_WITHOUT_FUSE()                                             \
  do {                                                                  \
    std::string why_ = ::zest::testing::FuseUnavailableReason();        \
    if (!why_.empty()) GTEST_SKIP() << why_;                            \
  } while (0)

struct Totals {
  int rounds = 0;
  uint64_t acknowledged = 0, in_flight = 0, done = 0, absent = 0, violations = 0;
};

// One round: mkfs, mount, workload, SIGKILL after `kill_after`, fsck,
// remount, verify, unmount, fsck. Failures are reported with the seed.
void Round(uint64_t seed, const WorkloadOptions& base, std::chrono::microseconds kill_after,
           Totals* totals) {
  SCOPED_TRACE("seed " + std::to_string(seed) + ", kill after " +
               std::to_string(kill_after.count()) + " us");
  std::string err;
  auto pool = Pool::Make("256M", &err);
  ASSERT_TRUE(pool) << err;

  WorkloadOptions wo = base;
  wo.seed = seed;
  auto mount = PoolMount::Start(pool->path(), &err);
  ASSERT_TRUE(mount) << err;
  CrashWorkload work(mount->path(), wo);
  ASSERT_TRUE(work.Prepare(&err)) << err;
  work.Start();
  std::this_thread::sleep_for(kill_after);
  const std::string stderr_before = mount->ServerStderr();
  work.MarkKilled();
  mount->Kill();
  work.Join();
  mount->DetachDead();
  mount.reset();

  ToolRun fsck1 = RunZest({"fsck", pool->path()});
  EXPECT_TRUE(fsck1.exited(0)) << "fsck after the kill: " << fsck1.describe() << "\n"
                               << fsck1.output;

  auto again = PoolMount::Start(pool->path(), &err);
  ASSERT_TRUE(again) << "remount after the kill: " << err;
  VerifyResult v = work.Verify(again->path());
  for (const auto& x : v.violations) ADD_FAILURE() << x;
  std::string report;
  EXPECT_TRUE(again->Unmount(&report)) << report << "\n" << again->ServerStderr();
  again.reset();

  ToolRun fsck2 = RunZest({"fsck", pool->path()});
  EXPECT_TRUE(fsck2.exited(0)) << "fsck after the remount: " << fsck2.describe() << "\n"
                               << fsck2.output;
  if (!v.violations.empty()) std::fprintf(stderr, "server stderr:\n%s\n", stderr_before.c_str());

  ++totals->rounds;
  totals->acknowledged += v.acknowledged;
  totals->in_flight += v.in_flight;
  totals->done += v.in_flight_done;
  totals->absent += v.in_flight_absent;
  totals->violations += v.violations.size() + !fsck1.exited(0) + !fsck2.exited(0);
}

void PrintTotals(const char* what, const Totals& t) {
  std::printf(
      "pcrash%s: %d rounds, %llu acknowledged ops verified, %llu in-flight ops seen "
      "whole-or-absent (%llu whole, %llu absent), %llu violations\n",
      what, t.rounds, (unsigned long long)t.acknowledged,
      (unsigned long long)(t.done + t.absent), (unsigned long long)t.done,
      (unsigned long long)t.absent, (unsigned long long)t.violations);
}

TEST(ProcessCrash, KillAtRandomPointsKeepsAcknowledgedOps) {
  SKIP_WITHOUT_FUSE();
  const int rounds = Soak() ? 200 : 20;
  const uint64_t base = BaseSeed();
  Totals totals;
  for (int i = 0; i < rounds && !HasFatalFailure(); ++i) {
    const uint64_t seed = base + uint64_t(i);
    std::mt19937_64 rng(seed);
    // Early kills catch the first transactions, later ones a busy journal.
    const auto kill_after = std::chrono::microseconds(2000 + rng() % 250000);
    WorkloadOptions wo;
    wo.threads = 4;
    wo.slots = 4;
    Round(seed, wo, kill_after, &totals);
  }
  PrintTotals("", totals);
  EXPECT_GT(totals.acknowledged, uint64_t(rounds));
}

// Many 1 MiB writes in flight when the kill lands: each must be there
// wholly or not at all (docs/guarantees.md: one request, one transaction).
TEST(ProcessCrash, LargeWritesInFlightAreAtomic) {
  SKIP_WITHOUT_FUSE();
  const int rounds = Soak() ? 40 : 5;
  const uint64_t base = BaseSeed() + 100000;
  Totals totals;
  for (int i = 0; i < rounds && !HasFatalFailure(); ++i) {
    const uint64_t seed = base + uint64_t(i);
    std::mt19937_64 rng(seed);
    WorkloadOptions wo;
    wo.threads = 8;
    wo.slots = 1;
    wo.big_writes = true;
    Round(seed, wo, std::chrono::microseconds(20000 + rng() % 150000), &totals);
  }
  PrintTotals(" (1 MiB writes)", totals);
  EXPECT_GT(totals.in_flight, 0u) << "no write was in flight at any kill";
}

// The oracle itself: with no kill, a changed byte, a lost name and a stray
// name must each be reported (a checker that passes everything proves
// nothing).
TEST(ProcessCrash, OracleReportsTampering) {
  SKIP_WITHOUT_FUSE();
  std::string err;
  auto pool = Pool::Make("64M", &err);
  ASSERT_TRUE(pool) << err;
  auto mount = PoolMount::Start(pool->path(), &err);
  ASSERT_TRUE(mount) << err;
  WorkloadOptions wo;
  wo.threads = 2;
  wo.slots = 2;
  CrashWorkload work(mount->path(), wo);
  ASSERT_TRUE(work.Prepare(&err)) << err;
  work.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  work.Join();
  VerifyResult clean = work.Verify(mount->path());
  EXPECT_TRUE(clean.violations.empty()) << clean.violations.front();
  EXPECT_EQ(clean.in_flight, 0u);
  ASSERT_GT(clean.acknowledged, 0u);

  // Tamper: flip a byte of every non-empty slot file, add a stray name.
  int flipped = 0;
  for (const char* name : {"t0/f0", "t0/f1", "t0/sub/f0.r", "t0/sub/f1.r", "t1/f0", "t1/f1",
                           "t1/sub/f0.r", "t1/sub/f1.r"}) {
    const std::string p = mount->path() + "/" + name;
    int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    char c;
    if (::pread(fd, &c, 1, 0) == 1) {
      c = char(~c);
      flipped += ::pwrite(fd, &c, 1, 0) == 1;
    }
    ::close(fd);
  }
  int stray = ::open((mount->path() + "/t1/sub/stray").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC,
                     0644);
  ASSERT_GE(stray, 0);
  ::close(stray);
  VerifyResult bad = work.Verify(mount->path());
  EXPECT_GE(bad.violations.size(), size_t(flipped) + 1);
  bool saw_stray = false;
  for (const auto& v : bad.violations) saw_stray |= v.find("stray") != std::string::npos;
  EXPECT_TRUE(saw_stray);
  std::string report;
  EXPECT_TRUE(mount->Unmount(&report)) << report;
}

TEST(PoolRefusal, SecondMountOfAPoolInUseIsRefused) {
  SKIP_WITHOUT_FUSE();
  std::string err;
  auto pool = Pool::Make("64M", &err);
  ASSERT_TRUE(pool) << err;
  auto first = PoolMount::Start(pool->path(), &err);
  ASSERT_TRUE(first) << err;

  char tmpl[] = "/tmp/zest-pcrash-second-XXXXXX";
  ASSERT_TRUE(::mkdtemp(tmpl));
  const std::string second = tmpl;
  ToolRun r = RunZest({"mount", "-f", "--fs", "pmfs", pool->path(), second},
                      std::chrono::seconds(10));
  const bool mounted = !testing::MountTypeAt(second).empty();
  if (mounted) ::umount2(second.c_str(), MNT_DETACH);
  ::rmdir(second.c_str());
  EXPECT_FALSE(mounted) << "a second server mounted a pool in use";
  EXPECT_TRUE(r.status >= 0 && !r.exited(0)) << r.describe() << ": " << r.output;
  EXPECT_NE(r.output.find(pool->path()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
  // fsck of a mounted pool is refused the same way, not run on a live pool.
  ToolRun f = RunZest({"fsck", pool->path()});
  EXPECT_FALSE(f.exited(0)) << f.output;
  EXPECT_NE(f.output.find(pool->path()), std::string::npos) << f.output;

  // The first mount is unharmed.
  const std::string file = first->path() + "/still-here";
  int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(::write(fd, "ok", 2), 2);
  ::close(fd);
  std::string report;
  EXPECT_TRUE(first->Unmount(&report)) << report;
}

TEST(PoolRefusal, GarbageAndForeignFilesAreRefused) {
  SKIP_WITHOUT_FUSE();
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;  // a part of the expected message
  };
  std::mt19937_64 rng(7);
  std::string noise(1 << 20, '\0');
  for (auto& c : noise) c = char(rng());
  std::string zeros(1 << 20, '\0');
  std::string elf = "\x7f" "ELF" + std::string((64 << 10) - 4, '\x01');
  const Case cases[] = {
      {"random bytes", noise, "not a pmfs pool"},
      {"zeros", zeros, "not a pmfs pool"},
      {"an ELF-like header", elf, "not a pmfs pool"},
      {"a short text file", "hello, world\n", "not a positive multiple of 4 KiB"},
      {"an empty file", "", "not a positive multiple of 4 KiB"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    char path[] = "/dev/shm/zest-pcrash-foreign-XXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, c.bytes.data(), c.bytes.size()), ssize_t(c.bytes.size()));
    ::close(fd);
    char tmpl[] = "/tmp/zest-pcrash-foreign-mnt-XXXXXX";
    ASSERT_TRUE(::mkdtemp(tmpl));
    ToolRun r = RunZest({"mount", "-f", "--fs", "pmfs", path, tmpl}, std::chrono::seconds(10));
    const bool mounted = !testing::MountTypeAt(tmpl).empty();
    if (mounted) ::umount2(tmpl, MNT_DETACH);
    ToolRun f = RunZest({"fsck", path});
    // Nothing was written into the foreign file.
    std::string after;
    {
      FILE* in = std::fopen(path, "rb");
      char buf[65536];
      size_t n;
      while (in && (n = std::fread(buf, 1, sizeof buf, in)) > 0) after.append(buf, n);
      if (in) std::fclose(in);
    }
    ::rmdir(tmpl);
    ::unlink(path);
    EXPECT_FALSE(mounted);
    EXPECT_TRUE(r.status >= 0 && !r.exited(0)) << r.describe() << ": " << r.output;
    EXPECT_NE(r.output.find(path), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << r.output;
    EXPECT_TRUE(f.exited(8)) << "fsck: " << f.describe() << ": " << f.output;
    EXPECT_NE(f.output.find(path), std::string::npos) << f.output;
    EXPECT_TRUE(after == c.bytes) << "the refused file was modified";
  }
}

}  // namespace
}  // namespace zest::pcrash
