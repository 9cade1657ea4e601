// libzest-direct on a real pmfs mount: data served from the pool, coherence
// with the kernel path both ways, truncate under a reader's lease, fencing
// of a stopped client, a killed client and a killed server, and who gets
// the pool (docs/direct.md, docs/guarantees.md "Direct access").
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "direct/zest_direct.h"
#include "tests/direct/raw_channel.h"
#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string Pattern(char c, size_t n) { return std::string(n, c); }

std::string KernelRead(const std::string& path, size_t n, off_t off) {
  std::string s(n, '\0');
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "open failed";
  ssize_t r = ::pread(fd, s.data(), n, off);
  ::close(fd);
  s.resize(r < 0 ? 0 : static_cast<size_t>(r));
  return s;
}

bool KernelWrite(const std::string& path, const std::string& data, off_t off, int flags = 0) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | flags, 0644);
  if (fd < 0) return false;
  bool ok = ::pwrite(fd, data.data(), data.size(), off) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

// Waits for a child; its exit code, or 100 + signal.
int Reap(pid_t pid) {
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

class DirectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = FuseUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    std::string err;
    mount_ = ZestMount::Start("pmfs", {}, &err);
    ASSERT_TRUE(mount_) << err;
    mp_ = mount_->path();
    d_ = zest_direct_attach(mp_.c_str(), 0);
    ASSERT_NE(d_, nullptr) << std::strerror(errno);
    // As root the pool is always ours: no direct access is a failure.
    ASSERT_TRUE(zest_direct_is_direct(d_))
        << "no direct access on " << mp_ << "; server: " << mount_->ServerStderr();
  }
  void TearDown() override {
    if (d_) zest_direct_detach(d_);
    d_ = nullptr;
  }
  std::string P(const std::string& name) const { return mp_ + "/" + name; }
  zest_direct_stats Stats() const {
    zest_direct_stats s{};
    zest_direct_get_stats(d_, &s);
    return s;
  }
  cw::StatsOut ServerStats() {
    cw::StatsOut s{};
    auto c = RawChannel::Connect(mp_);
    EXPECT_TRUE(c);
    if (!c) return s;
    EXPECT_EQ(c->Attach(false), 0);
    EXPECT_EQ(c->Stats(&s), 0);
    return s;
  }

  std::unique_ptr<ZestMount> mount_;
  std::string mp_;
  zest_direct* d_ = nullptr;
};

TEST_F(DirectTest, ReadsAndWritesGoToThePool) {
  int h = zest_open(d_, "f", O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(h, 0);
  const std::string a = Pattern('a', 10000);
  ASSERT_EQ(zest_pwrite(d_, h, a.data(), a.size(), 0), 10000);    // allocating
  ASSERT_EQ(zest_pwrite(d_, h, "hello", 5, 4000), 5);              // in place
  ASSERT_EQ(zest_pwrite(d_, h, "tail", 4, 20000), 4);              // past the end: a hole
  std::string want = a;
  want.replace(4000, 5, "hello");
  want.resize(20000, '\0');
  want += "tail";
  std::string got(30000, 'x');
  ASSERT_EQ(zest_pread(d_, h, got.data(), got.size(), 0), 20004);
  got.resize(20004);
  EXPECT_EQ(got, want);
  // The kernel path sees it all, size included.
  EXPECT_EQ(KernelRead(P("f"), 30000, 0), want);
  struct stat st;
  ASSERT_EQ(::stat(P("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 20004);
  ASSERT_EQ(zest_fstat(d_, h, &st), 0);
  EXPECT_EQ(st.st_size, 20004);
  const zest_direct_stats s = Stats();
  EXPECT_GE(s.direct_writes, 3u);
  EXPECT_GE(s.direct_reads, 1u);
  EXPECT_EQ(s.kernel_reads + s.kernel_writes, 0u);
  EXPECT_EQ(zest_close(d_, h), 0);
}

TEST_F(DirectTest, KernelWritesAreSeenAtOnceAndRecallTheLease) {
  ASSERT_TRUE(KernelWrite(P("f"), Pattern('k', 8192), 0));
  int h = zest_open(d_, "f", O_RDWR, 0);
  ASSERT_GE(h, 0);
  char b[8192];
  ASSERT_EQ(zest_pread(d_, h, b, sizeof b, 0), 8192);
  EXPECT_EQ(std::string(b, 4), "kkkk");
  for (int i = 0; i < 50; ++i) {
    const std::string k = "kernel" + std::to_string(i);
    ASSERT_TRUE(KernelWrite(P("f"), k, 100 * i));
    ASSERT_EQ(zest_pread(d_, h, b, k.size(), 100 * i), static_cast<ssize_t>(k.size()));
    ASSERT_EQ(std::string(b, k.size()), k) << "round " << i;
    const std::string dv = "direct" + std::to_string(i);
    ASSERT_EQ(zest_pwrite(d_, h, dv.data(), dv.size(), 5000 + 50 * i), static_cast<ssize_t>(dv.size()));
    ASSERT_EQ(KernelRead(P("f"), dv.size(), 5000 + 50 * i), dv) << "round " << i;
  }
  EXPECT_GE(Stats().recalls, 1u);
  EXPECT_EQ(ServerStats().fenced, 0u);  // answered in time, every time
  zest_close(d_, h);
}

TEST_F(DirectTest, AppendsGrowTheFileForEveryone) {
  int h = zest_open(d_, "log", O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(h, 0);
  std::string all;
  for (int i = 0; i < 300; ++i) {
    std::string rec = "record " + std::to_string(i) + "\n";
    ASSERT_EQ(zest_pwrite(d_, h, rec.data(), rec.size(), all.size()), static_cast<ssize_t>(rec.size()));
    all += rec;
    if (i % 37 == 0) {
      struct stat st;
      ASSERT_EQ(::stat(P("log").c_str(), &st), 0);
      ASSERT_EQ(static_cast<size_t>(st.st_size), all.size());
    }
  }
  EXPECT_EQ(KernelRead(P("log"), all.size() + 10, 0), all);
  zest_close(d_, h);
}

TEST_F(DirectTest, OverwriteTimesReachTheFileSystemAtFsync) {
  int h = zest_open(d_, "f", O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(h, 0);
  ASSERT_EQ(zest_pwrite(d_, h, "0123456789", 10, 0), 10);
  struct stat before, after;
  ASSERT_EQ(::stat(P("f").c_str(), &before), 0);
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(zest_pwrite(d_, h, "abc", 3, 2), 3);  // in place
  ASSERT_EQ(zest_fsync(d_, h), 0);
  ASSERT_EQ(::stat(P("f").c_str(), &after), 0);
  EXPECT_TRUE(after.st_mtim.tv_sec > before.st_mtim.tv_sec ||
              (after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
               after.st_mtim.tv_nsec > before.st_mtim.tv_nsec));
  zest_close(d_, h);
}

// A reader holding a lease while the kernel path truncates the file and
// other files reuse the blocks: it sees the new size, zeros or the file's
// own bytes, never another file's.
TEST_F(DirectTest, TruncateUnderALeaseNeverShowsAnotherFilesData) {
  const size_t n = 64 * 1024;
  ASSERT_TRUE(KernelWrite(P("a"), Pattern('A', n), 0));
  int h = zest_open(d_, "a", O_RDONLY, 0);
  ASSERT_GE(h, 0);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::thread reader([&] {
    std::vector<char> b(n);
    while (!stop) {
      const ssize_t r = zest_pread(d_, h, b.data(), n, 0);
      if (r < 0) {
        ++bad;
        continue;
      }
      for (ssize_t i = 0; i < r; ++i)
        if (b[i] != 'A' && b[i] != 0) {
          ++bad;
          break;
        }
      ++reads;
    }
  });
  std::vector<char> whole(n + 1);
  for (int round = 0; round < 40; ++round) {
    // The kernel's rewrite of the last round is seen at once, whole.
    ASSERT_EQ(zest_pread(d_, h, whole.data(), whole.size(), 0), static_cast<ssize_t>(n));
    ASSERT_EQ(std::string(whole.data(), n), Pattern('A', n)) << "round " << round;
    ASSERT_EQ(::truncate(P("a").c_str(), 0), 0);
    // Other files take the freed blocks (unless they wait, deferred).
    for (int j = 0; j < 4; ++j)
      ASSERT_TRUE(KernelWrite(P("b" + std::to_string(j)), Pattern('B', n), 0, O_TRUNC));
    char b[16];
    const ssize_t r = zest_pread(d_, h, b, sizeof b, 0);
    EXPECT_EQ(r, 0) << "round " << round << ": the reader must see the new size";
    ASSERT_TRUE(KernelWrite(P("a"), Pattern('A', n), 0));
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_GE(Stats().recalls, 1u);
  zest_close(d_, h);
}

// A client stopped (SIGSTOP) while holding a write lease: a truncate
// through the mount completes within the deadline, the client is fenced,
// and once resumed it reads the right bytes and its writes land.
TEST_F(DirectTest, AStoppedClientIsFencedAndRecovers) {
  ASSERT_TRUE(KernelWrite(P("f"), Pattern('c', 16384), 0));
  int go[2], ready[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(ready), 0);
  zest_direct_detach(d_);  // the child attaches on its own
  d_ = nullptr;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    zest_direct* d = zest_direct_attach(mp_.c_str(), 0);
    if (!d || !zest_direct_is_direct(d)) _exit(10);
    int h = zest_open(d, P("f").c_str(), O_RDWR, 0);
    char b[16384];
    if (h < 0 || zest_pread(d, h, b, sizeof b, 0) != 16384 || b[0] != 'c') _exit(11);
    (void)!::write(ready[1], "r", 1);
    char c;
    if (::read(go[0], &c, 1) != 1) _exit(12);
    // Resumed: the file is 8192 bytes of 'p' now.
    const ssize_t r = zest_pread(d, h, b, sizeof b, 0);
    if (r != 8192) _exit(13);
    for (int i = 0; i < 8192; ++i)
      if (b[i] != 'p') _exit(14);
    if (zest_pwrite(d, h, "child", 5, 0) != 5) _exit(15);
    zest_close(d, h);
    zest_direct_detach(d);
    _exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  // Stopped for real (every thread, its listener too) before the truncate.
  int wst = 0;
  ASSERT_EQ(::waitpid(pid, &wst, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(wst));
  const auto t0 = Clock::now();
  ASSERT_EQ(::truncate(P("f").c_str(), 0), 0);
  const auto took = Clock::now() - t0;
  // The deadline is 100 ms; never the client's pace (generous margin).
  EXPECT_LT(took, 3s);
  EXPECT_GE(ServerStats().fenced, 1u);
  ASSERT_TRUE(KernelWrite(P("f"), Pattern('p', 8192), 0));
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  EXPECT_EQ(Reap(pid), 0);
  EXPECT_EQ(KernelRead(P("f"), 5, 0), "child");
  for (int f : {go[0], go[1], ready[0], ready[1]}) ::close(f);
}

TEST_F(DirectTest, AKilledClientLosesItsLeasesAtOnce) {
  ASSERT_TRUE(KernelWrite(P("f"), Pattern('x', 4096), 0));
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    zest_direct* d = zest_direct_attach(mp_.c_str(), 0);
    int h = d ? zest_open(d, P("f").c_str(), O_RDWR, 0) : -1;
    if (h < 0 || zest_pwrite(d, h, "y", 1, 0) != 1) _exit(10);
    (void)!::write(ready[1], "r", 1);
    for (;;) {
      zest_pwrite(d, h, "y", 1, 1);  // busy in the middle of writing
    }
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_GE(ServerStats().active, 1u);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_EQ(Reap(pid), 100 + SIGKILL);
  // Released when its socket closed: no recall, no fence needed.
  cw::StatsOut s{};
  for (auto t0 = Clock::now(); Clock::now() - t0 < 5s; std::this_thread::sleep_for(10ms)) {
    s = ServerStats();
    if (s.active == 0) break;
  }
  EXPECT_EQ(s.active, 0u);
  EXPECT_EQ(s.fenced, 0u);
  ASSERT_TRUE(KernelWrite(P("f"), "z", 0));
  EXPECT_EQ(KernelRead(P("f"), 2, 0), "zy");
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_F(DirectTest, AKilledServerMakesCallsFailNotHang) {
  int h = zest_open(d_, "f", O_RDWR | O_CREAT, 0644);
  ASSERT_GE(h, 0);
  ASSERT_EQ(zest_pwrite(d_, h, "data", 4, 0), 4);
  // A killed server cannot remove its channel socket: the test does.
  struct stat mst;
  ASSERT_EQ(::stat(mp_.c_str(), &mst), 0);
  std::vector<std::string> sockets;
  for (const std::string& dir : layout::channel_dirs())
    sockets.push_back(dir + "/" + layout::channel_name(mst.st_dev));
  ASSERT_EQ(::kill(mount_->pid(), SIGKILL), 0);
  const auto t0 = Clock::now();
  char b[8];
  ssize_t r = 0;
  // Once the channel is seen closed, nothing is served from the pool.
  for (int i = 0; i < 1000 && r >= 0; ++i) {
    r = zest_pread(d_, h, b, 4, 0);
    if (r >= 0) std::this_thread::sleep_for(5ms);
  }
  EXPECT_LT(r, 0);
  EXPECT_LT(Clock::now() - t0, 10s);
  zest_close(d_, h);
  // What a direct write acknowledged is in the pool: a new server on the
  // same pool (after recovery) has it.
  zest_direct_detach(d_);
  d_ = nullptr;
  std::string err, report;
  mount_->Unmount(&report);  // the server is gone already: clears the mount
  for (const std::string& p : sockets) ::unlink(p.c_str());
  ASSERT_TRUE(mount_->Restart(&err)) << err;
  EXPECT_EQ(KernelRead(P("f"), 4, 0), "data");
}

// kill -9 of a client in the middle of allocating writes: every write it
// saw acknowledged is there after a remount, and fsck finds the pool clean.
TEST_F(DirectTest, AKilledWriterLosesNothingAcknowledged) {
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(acks[0]);
    zest_direct* d = zest_direct_attach(mp_.c_str(), 0);
    int h = d ? zest_open(d, P("log").c_str(), O_RDWR | O_CREAT, 0644) : -1;
    if (h < 0) _exit(10);
    char rec[1000];
    for (uint32_t i = 0;; ++i) {
      std::memset(rec, 'a' + i % 26, sizeof rec);
      std::memcpy(rec, &i, sizeof i);
      if (zest_pwrite(d, h, rec, sizeof rec, uint64_t(i) * sizeof rec) != sizeof rec) _exit(11);
      if (::write(acks[1], &i, sizeof i) != sizeof i) _exit(12);
    }
  }
  ::close(acks[1]);
  uint32_t last = 0, got;
  bool any = false;
  const auto t0 = Clock::now();
  while (Clock::now() - t0 < 300ms && ::read(acks[0], &got, sizeof got) == sizeof got) {
    last = got;
    any = true;
  }
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  Reap(pid);
  while (::read(acks[0], &got, sizeof got) == sizeof got) last = got;
  ::close(acks[0]);
  ASSERT_TRUE(any);
  zest_direct_detach(d_);
  d_ = nullptr;
  std::string err;
  ASSERT_TRUE(mount_->Restart(&err)) << err;
  const std::string all = KernelRead(P("log"), (last + 2) * 1000, 0);
  ASSERT_GE(all.size(), (last + 1) * 1000u);
  for (uint32_t i = 0; i <= last; ++i) {
    uint32_t v;
    std::memcpy(&v, all.data() + i * 1000, sizeof v);
    ASSERT_EQ(v, i) << "record " << i << " of " << last;
    ASSERT_EQ(all[i * 1000 + 999], static_cast<char>('a' + i % 26)) << "record " << i;
  }
  const std::string pool = mount_->source();
  std::string report;
  ASSERT_TRUE(mount_->Unmount(&report)) << report;
  const std::string cmd = std::string(ZEST_BINARY) + " fsck " + pool + " > /dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

// zest_direct_map: raw pool addresses for a device or copy engine, a
// commit, and the recall callback when the kernel path needs the range.
TEST_F(DirectTest, MapHandsOutPoolRangesAndCallsBackOnRecall) {
  int h = zest_open(d_, "dev", O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(h, 0);
  struct Seen {
    std::atomic<int> calls{0};
    std::atomic<int> handle{-1};
  } seen;
  zest_extent ext[8];
  const int n = zest_direct_map(
      d_, h, 0, 3 * 4096, ZEST_MAP_WRITE,
      [](void* arg, int handle) {
        auto* s = static_cast<Seen*>(arg);
        s->handle = handle;
        ++s->calls;
      },
      &seen, ext, 8);
  ASSERT_GE(n, 1);
  uint64_t covered = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(ext[i].state, ZEST_EXTENT_UNWRITTEN) << i;  // allocated, reads as zeros
    ASSERT_NE(ext[i].addr, nullptr);
    covered += ext[i].length;
  }
  ASSERT_GE(covered, 3 * 4096u);
  // Before the commit the file is empty for everyone.
  EXPECT_EQ(KernelRead(P("dev"), 10, 0), "");
  // "The device" stores through the addresses, then commits.
  std::string want;
  for (int i = 0; i < n && want.size() < 3 * 4096; ++i) {
    const std::string part(std::min<uint64_t>(ext[i].length, 3 * 4096 - want.size()), char('0' + i));
    std::memcpy(ext[i].addr, part.data(), part.size());
    want += part;
  }
  ASSERT_EQ(zest_direct_commit(d_, h, 0, 3 * 4096), 0);
  struct stat st;
  ASSERT_EQ(::stat(P("dev").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 3 * 4096);
  EXPECT_EQ(seen.calls.load(), 0);
  // The kernel path reads there (a write map excludes it): the callback
  // runs first, then the kernel reads what the device stored.
  EXPECT_EQ(KernelRead(P("dev"), 4 * 4096, 0), want);
  EXPECT_EQ(seen.calls.load(), 1);
  EXPECT_EQ(seen.handle.load(), h);
  ASSERT_TRUE(KernelWrite(P("dev"), "kernel", 0));
  EXPECT_EQ(KernelRead(P("dev"), 6, 0), "kernel");
  EXPECT_EQ(zest_direct_commit(d_, h, 0, 4096), -1);  // the map is gone
  EXPECT_EQ(errno, ESTALE);
  EXPECT_EQ(zest_direct_unmap(d_, h), 0);
  EXPECT_EQ(zest_close(d_, h), 0);
}

// Who gets the pool: a user who cannot open the pool file gets none and
// works through the kernel; a user trusted through the pool's group gets it,
// and its leases still need fds the kernel let it open.
TEST_F(DirectTest, OnlyPeersThatCouldOpenThePoolGetIt) {
  const std::string pool = mount_->source();
  ASSERT_EQ(::chmod(pool.c_str(), 0660), 0);
  ASSERT_EQ(::chown(pool.c_str(), 0, 4242), 0);
  ASSERT_TRUE(KernelWrite(P("public"), "public data", 0));
  ASSERT_EQ(::chmod(P("public").c_str(), 0644), 0);
  ASSERT_TRUE(KernelWrite(P("secret"), "secret", 0));
  ASSERT_EQ(::chmod(P("secret").c_str(), 0600), 0);
  auto run_as = [&](uid_t uid, std::vector<gid_t> groups, auto body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(uid) != 0 ||
          ::setuid(uid) != 0)
        _exit(90);
      _exit(body());
    }
    return Reap(pid);
  };
  // uid 1001, no pool group: no pool, kernel path only, still works.
  EXPECT_EQ(run_as(1001, {}, [&] {
              zest_direct* d = zest_direct_attach(mp_.c_str(), 0);
              if (!d) return 10;
              if (zest_direct_is_direct(d)) return 11;
              int h = zest_open(d, P("public").c_str(), O_RDONLY, 0);
              char b[32] = {};
              if (h < 0 || zest_pread(d, h, b, sizeof b, 0) != 11) return 12;
              if (std::string(b) != "public data") return 13;
              if (zest_open(d, P("secret").c_str(), O_RDONLY, 0) >= 0 || errno != EACCES) return 14;
              zest_direct_stats s{};
              zest_direct_get_stats(d, &s);
              if (s.direct_reads != 0 || s.kernel_reads != 1) return 15;
              zest_direct_detach(d);
              return 0;
            }),
            0);
  // uid 1002 in the pool's group: the pool, read-write; still only leases
  // the kernel's permission checks allow.
  EXPECT_EQ(run_as(1002, {4242}, [&] {
              zest_direct* d = zest_direct_attach(mp_.c_str(), 0);
              if (!d || !zest_direct_is_direct(d)) return 20;
              int h = zest_open(d, P("public").c_str(), O_RDONLY, 0);
              char b[32] = {};
              if (h < 0 || zest_pread(d, h, b, sizeof b, 0) != 11) return 21;
              zest_direct_stats s{};
              zest_direct_get_stats(d, &s);
              if (s.direct_reads != 1) return 22;
              if (zest_pwrite(d, h, "x", 1, 0) >= 0 || errno != EBADF) return 23;
              if (zest_open(d, P("secret").c_str(), O_RDONLY, 0) >= 0 || errno != EACCES) return 24;
              if (zest_open(d, P("public").c_str(), O_RDWR, 0) >= 0 || errno != EACCES) return 25;
              // The raw channel: a read-only fd buys no write lease.
              auto c = RawChannel::Connect(mp_);
              if (!c || c->Attach(true) != 0) return 26;
              int fd = ::open(P("public").c_str(), O_RDONLY);
              cw::LeaseIn w{cw::kWrite, 0, 0, ~0ull};
              if (c->Call(cw::kLease, w, nullptr, {fd}) != EBADF) return 27;
              cw::LeaseIn r{cw::kRead, 0, 0, ~0ull};
              std::vector<std::byte> body;
              if (c->Call(cw::kLease, r, &body, {fd}) != 0) return 28;
              cw::LeaseOut lo;
              std::memcpy(&lo, body.data(), sizeof lo);
              cw::MapIn mi{lo.id, lo.ino, 0, 4096, cw::kIntentWrite, 0};
              if (c->Call(cw::kMap, mi) != EACCES) return 29;
              ::close(fd);
              zest_direct_detach(d);
              return 0;
            }),
            0);
  EXPECT_EQ(KernelRead(P("public"), 11, 0), "public data");
}

}  // namespace
}  // namespace zest::testing
