// The differential tester for libzest-direct: seeded sequences of the calls
// it serves (open, close, pread/pwrite and the v variants, ftruncate,
// fallocate, fsync, fstat, stat, unlink, rename), interleaved with writes
// through the kernel mount, run on tmpfs with system calls (the oracle)
// and on a pmfs mount through libzest-direct, in lockstep. Every return
// value, errno, byte read and size must agree. st_blocks is not compared:
// appends preallocate (docs/direct.md).
//   ZEST_DIRECT_SEED=<seed> ZEST_DIRECT_OPS=<n> to reproduce.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "direct/zest_direct.h"
#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

constexpr int kSlots = 4;
const char* const kNames[] = {"a", "b", "c"};

struct Outcome {
  long long rc = 0;
  int err = 0;
  std::string data;
  bool operator==(const Outcome& o) const = default;
};

std::string Show(const Outcome& o) {
  std::ostringstream s;
  s << "rc=" << o.rc << " errno=" << o.err << " bytes=" << o.data.size();
  return s.str();
}

class Runner {
 public:
  Runner(std::string oracle, std::string mount, zest_direct* d)
      : o_(std::move(oracle)), m_(std::move(mount)), d_(d) {
    for (int i = 0; i < kSlots; ++i) ofd_[i] = zh_[i] = -1;
  }
  ~Runner() {
    for (int i = 0; i < kSlots; ++i) {
      if (ofd_[i] >= 0) ::close(ofd_[i]);
      if (zh_[i] >= 0) zest_close(d_, zh_[i]);
    }
  }

  // One random operation; "" or the divergence.
  std::string Step(std::mt19937_64& rng, int index) {
    const int op = static_cast<int>(rng() % 100);
    const int slot = static_cast<int>(rng() % kSlots);
    const std::string name = kNames[rng() % 3];
    const uint64_t B = 4096;
    auto offset = [&] {
      switch (rng() % 4) {
        case 0: return rng() % (4 * B);
        case 1: return (rng() % 64) * B;
        case 2: return rng() % (256 * 1024);
        default: return rng() % (64 * B) + (rng() % 2 ? 0 : B - 1);
      }
    };
    auto length = [&] {
      switch (rng() % 4) {
        case 0: return 1 + rng() % 100;
        case 1: return B;
        case 2: return 1 + rng() % (64 * 1024);
        default: return (1 + rng() % 8) * B;
      }
    };
    Outcome a, b;
    std::string what;
    if (op < 10) {
      static const int kFlags[] = {O_RDWR | O_CREAT, O_RDWR, O_RDONLY, O_RDWR | O_CREAT | O_TRUNC,
                                   O_WRONLY | O_CREAT};
      const int fl = kFlags[rng() % 5];
      what = "open " + name + " flags " + std::to_string(fl) + " slot " + std::to_string(slot);
      if (ofd_[slot] >= 0) {
        ::close(ofd_[slot]);
        zest_close(d_, zh_[slot]);
        ofd_[slot] = zh_[slot] = -1;
      }
      ofd_[slot] = ::open((o_ + "/" + name).c_str(), fl, 0644);
      a = {ofd_[slot] >= 0 ? 0 : -1, ofd_[slot] >= 0 ? 0 : errno, ""};
      zh_[slot] = zest_open(d_, (m_ + "/" + name).c_str(), fl, 0644);
      b = {zh_[slot] >= 0 ? 0 : -1, zh_[slot] >= 0 ? 0 : errno, ""};
    } else if (ofd_[slot] < 0 && op < 80) {
      return "";  // nothing open there: a later step opens it
    } else if (op < 14) {
      what = "close slot " + std::to_string(slot);
      a = {::close(ofd_[slot]), 0, ""};
      b = {zest_close(d_, zh_[slot]), 0, ""};
      ofd_[slot] = zh_[slot] = -1;
    } else if (op < 40) {
      const uint64_t off = offset(), len = length();
      std::string data(len, '\0');
      for (auto& c : data) c = static_cast<char>('a' + rng() % 26);
      what = "pwrite slot " + std::to_string(slot) + " off " + std::to_string(off) + " len " + std::to_string(len);
      a = Io(::pwrite(ofd_[slot], data.data(), len, off));
      b = Io(zest_pwrite(d_, zh_[slot], data.data(), len, off));
    } else if (op < 60) {
      const uint64_t off = offset(), len = length();
      what = "pread slot " + std::to_string(slot) + " off " + std::to_string(off) + " len " + std::to_string(len);
      std::string x(len, '\0'), y(len, '\0');
      a = Io(::pread(ofd_[slot], x.data(), len, off));
      b = Io(zest_pread(d_, zh_[slot], y.data(), len, off));
      if (a.rc > 0) a.data = x.substr(0, a.rc);
      if (b.rc > 0) b.data = y.substr(0, b.rc);
    } else if (op < 64) {
      const uint64_t off = offset();
      std::string p1(1 + rng() % 5000, 'p'), p2(1 + rng() % 5000, 'q');
      iovec iv[2] = {{p1.data(), p1.size()}, {p2.data(), p2.size()}};
      what = "pwritev slot " + std::to_string(slot) + " off " + std::to_string(off);
      a = Io(::pwritev(ofd_[slot], iv, 2, off));
      b = Io(zest_pwritev(d_, zh_[slot], iv, 2, off));
    } else if (op < 67) {
      const uint64_t off = offset();
      std::string x1(3000, 0), x2(7000, 0), y1(3000, 0), y2(7000, 0);
      iovec xv[2] = {{x1.data(), x1.size()}, {x2.data(), x2.size()}};
      iovec yv[2] = {{y1.data(), y1.size()}, {y2.data(), y2.size()}};
      what = "preadv slot " + std::to_string(slot) + " off " + std::to_string(off);
      a = Io(::preadv(ofd_[slot], xv, 2, off));
      b = Io(zest_preadv(d_, zh_[slot], yv, 2, off));
      if (a.rc > 0) a.data = (x1 + x2).substr(0, a.rc);
      if (b.rc > 0) b.data = (y1 + y2).substr(0, b.rc);
    } else if (op < 72) {
      const uint64_t size = rng() % 3 ? offset() : 0;
      what = "ftruncate slot " + std::to_string(slot) + " to " + std::to_string(size);
      a = Io(::ftruncate(ofd_[slot], size));
      b = Io(zest_ftruncate(d_, zh_[slot], size));
    } else if (op < 75) {
      // (tmpfs has no FALLOC_FL_ZERO_RANGE: not compared)
      static const int kModes[] = {0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE};
      const int mode = kModes[rng() % 3];
      const uint64_t off = offset(), len = length();
      what = "fallocate slot " + std::to_string(slot) + " mode " + std::to_string(mode) + " " +
             std::to_string(off) + "+" + std::to_string(len);
      a = Io(::fallocate(ofd_[slot], mode, off, len));
      b = Io(zest_fallocate(d_, zh_[slot], mode, off, len));
    } else if (op < 77) {
      what = "fsync slot " + std::to_string(slot);
      a = Io(::fsync(ofd_[slot]));
      b = Io(zest_fsync(d_, zh_[slot]));
    } else if (op < 80) {
      what = "fstat slot " + std::to_string(slot);
      struct stat x{}, y{};
      a = Io(::fstat(ofd_[slot], &x));
      b = Io(zest_fstat(d_, zh_[slot], &y));
      if (a.rc == 0) a.data = std::to_string(x.st_size) + " " + std::to_string(x.st_mode);
      if (b.rc == 0) b.data = std::to_string(y.st_size) + " " + std::to_string(y.st_mode);
    } else if (op < 85) {
      what = "unlink " + name;
      a = Io(::unlink((o_ + "/" + name).c_str()));
      b = Io(zest_unlink(d_, (m_ + "/" + name).c_str()));
    } else if (op < 89) {
      const std::string to = kNames[rng() % 3];
      what = "rename " + name + " " + to;
      a = Io(::rename((o_ + "/" + name).c_str(), (o_ + "/" + to).c_str()));
      b = Io(zest_rename(d_, (m_ + "/" + name).c_str(), (m_ + "/" + to).c_str()));
    } else {
      // Through the kernel on both sides: the mount's own path, so direct
      // and kernel writers meet on the same file.
      const uint64_t off = offset(), len = length();
      std::string data(len, static_cast<char>('A' + rng() % 26));
      what = "kernel pwrite " + name + " off " + std::to_string(off) + " len " + std::to_string(len);
      a = KernelWrite(o_ + "/" + name, data, off);
      b = KernelWrite(m_ + "/" + name, data, off);
    }
    if (std::getenv("ZEST_DIRECT_TRACE"))
      std::fprintf(stderr, "%d %s -> %s | %s\n", index, what.c_str(), Show(a).c_str(), Show(b).c_str());
    if (!(a == b))
      return "op " + std::to_string(index) + ": " + what + "\n  tmpfs: " + Show(a) +
             "\n  zest-direct: " + Show(b) + (a.data != b.data && a.rc == b.rc ? " (bytes differ)" : "");
    // After each step: every name has the same size and type on both sides.
    for (const char* n : kNames) {
      struct stat x{}, y{};
      const int rx = ::stat((o_ + "/" + n).c_str(), &x), ry = zest_stat(d_, (m_ + "/" + n).c_str(), &y);
      if (rx != ry || (rx == 0 && (x.st_size != y.st_size || (x.st_mode & S_IFMT) != (y.st_mode & S_IFMT))))
        return "op " + std::to_string(index) + ": " + what + "\n  then " + n + ": tmpfs size " +
               std::to_string(rx ? -1 : x.st_size) + ", zest-direct size " + std::to_string(ry ? -1 : y.st_size);
    }
    return "";
  }

 private:
  static Outcome Io(long long r) { return {r < 0 ? -1 : r, r < 0 ? errno : 0, ""}; }
  static Outcome KernelWrite(const std::string& path, const std::string& data, uint64_t off) {
    int fd = ::open(path.c_str(), O_WRONLY);
    if (fd < 0) return {-1, errno, ""};
    Outcome o = Io(::pwrite(fd, data.data(), data.size(), off));
    ::close(fd);
    return o;
  }

  std::string o_, m_;
  zest_direct* d_;
  int ofd_[kSlots];
  int zh_[kSlots];
};

TEST(DirectDiffTest, LockstepWithTmpfs) {
  if (std::string why = FuseUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  std::string err;
  auto m = ZestMount::Start("pmfs", {}, &err);
  ASSERT_TRUE(m) << err;
  zest_direct* d = zest_direct_attach(m->path().c_str(), 0);
  ASSERT_NE(d, nullptr);
  if (!zest_direct_is_direct(d)) {
    zest_direct_detach(d);
    FAIL() << "no direct access on " << m->path() << "; server: " << m->ServerStderr();
  }
  TmpfsDir oracle;
  ASSERT_TRUE(oracle.ok());
  const char* seed_env = std::getenv("ZEST_DIRECT_SEED");
  const char* ops_env = std::getenv("ZEST_DIRECT_OPS");
  const int ops = ops_env ? std::atoi(ops_env) : std::getenv("ZEST_SOAK") ? 50000 : 3000;
  std::vector<uint64_t> seeds = {1, 2, 3};
  if (seed_env) seeds = {std::strtoull(seed_env, nullptr, 10)};
  for (uint64_t seed : seeds) {
    const std::string od = oracle.path() + "/s" + std::to_string(seed);
    const std::string md = m->path() + "/s" + std::to_string(seed);
    ASSERT_EQ(::mkdir(od.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(md.c_str(), 0755), 0);
    std::mt19937_64 rng(seed);
    Runner r(od, md, d);
    for (int i = 0; i < ops; ++i) {
      const std::string why = r.Step(rng, i);
      ASSERT_EQ(why, "") << "seed " << seed << " (ZEST_DIRECT_SEED=" << seed
                         << " ZEST_DIRECT_OPS=" << i + 1 << ")";
    }
  }
  zest_direct_stats s{};
  zest_direct_get_stats(d, &s);
  // The data calls really went to the pool.
  EXPECT_GT(s.direct_reads, s.kernel_reads);
  EXPECT_GT(s.direct_writes, s.kernel_writes);
  zest_direct_detach(d);
}

}  // namespace
}  // namespace zest::testing
