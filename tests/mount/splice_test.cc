// Spliced read replies through a real mount: mirrorfs without passthrough
// answers every read from the backing fd (DataReply::ok_fd) and, with
// splice_min=0, the server splices each one from the backing file to
// /dev/fuse. The server runs with -d and logs "spliced reply" per spliced
// read: the evidence that the path was taken. Over io_uring (the uring.*
// variant) nothing is spliced and the same reads must be exact all the same.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "conformance/difftest.h"
#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

using conformance::DiffOptions;
using conformance::DiffResult;
using conformance::RunDiffTest;

size_t Count(const std::string& log, const std::string& needle) {
  size_t n = 0;
  for (size_t at = log.find(needle); at != std::string::npos;
       at = log.find(needle, at + 1))
    ++n;
  return n;
}

std::string Random(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// What pread(2) on `path` answers for [off, off+len).
std::string PreadPath(const std::string& path, uint64_t off, size_t len,
                      bool direct) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (fd < 0) return "<open: " + std::string(std::strerror(errno)) + ">";
  void* buf = nullptr;
  size_t cap = (len + 4095) / 4096 * 4096 + 4096;
  if (::posix_memalign(&buf, 4096, cap) != 0) return "<no memory>";
  ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(off));
  std::string out =
      n < 0 ? "<pread: " + std::string(std::strerror(errno)) + ">"
            : std::string(static_cast<char*>(buf), static_cast<size_t>(n));
  std::free(buf);
  ::close(fd);
  return out;
}

bool Uring() { return TestTransport() == "uring"; }

class SpliceMountTest : public ::testing::Test {
 protected:
  void Start(const std::string& opts) {
    std::string reason = FuseUnavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (std::getenv("ZEST_TEST_SUBJECT"))
      GTEST_SKIP() << "needs a zest mirrorfs mount";
    std::string err;
    mount_ = ZestMount::Start("mirrorfs", {"-d", "-o", opts}, &err);
    ASSERT_TRUE(mount_) << err;
    backing_ = mount_->source();
  }
  void TearDown() override { mount_.reset(); }

  // Writes `data` to the backing file `name` behind the mount's back.
  void Backing(const std::string& name, const std::string& data,
               off_t size = -1) {
    int fd = ::open((backing_ + "/" + name).c_str(),
                    O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, data.data(), data.size()),
              static_cast<ssize_t>(data.size()));
    if (size >= 0) {
      ASSERT_EQ(::ftruncate(fd, size), 0);
    }
    ::close(fd);
  }
  // Reads through the mount and from the backing file; they must agree.
  void Check(const std::string& name, uint64_t off, size_t len, bool direct) {
    std::string via = PreadPath(mount_->path() + "/" + name, off, len, direct);
    std::string want = PreadPath(backing_ + "/" + name, off, len, false);
    ASSERT_EQ(via.size(), want.size())
        << name << ": " << len << " at " << off << (direct ? " (O_DIRECT)" : "")
        << ": " << via.substr(0, 60);
    ASSERT_TRUE(via == want)
        << name << ": " << len << " at " << off << ": wrong bytes";
  }
  size_t Spliced() { return Count(mount_->ServerStderr(), "spliced reply"); }

  std::unique_ptr<ZestMount> mount_;
  std::string backing_;
};

TEST_F(SpliceMountTest, ReadsOfEverySizeAreTheBackingFilesBytes) {
  Start("nopassthrough,splice_min=0");
  const size_t size = 3 * (1u << 20) + 1234;
  Backing("f", Random(size, 1));
  // Sparse: 2 MiB of hole, 100 KiB of data, then a hole to 5 MiB.
  Backing("sparse", "", 0);
  {
    int fd = ::open((backing_ + "/sparse").c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::string d = Random(100 * 1024, 2);
    ASSERT_EQ(::pwrite(fd, d.data(), d.size(), 2 << 20),
              static_cast<ssize_t>(d.size()));
    ASSERT_EQ(::ftruncate(fd, 5 << 20), 0);
    ::close(fd);
  }
  Backing("empty", "");

  for (bool direct : {true, false}) {
    for (const char* name : {"f", "sparse"}) {
      Check(name, 0, 4096, direct);
      Check(name, 7 * 4096, 4096, direct);
      Check(name, 4096, 65536, direct);
      Check(name, 0, 1u << 20, direct);  // 1 MiB (copied without a large pipe)
      Check(name, 1u << 20, 1020 * 1024,
            direct);  // the most a 1 MiB pipe holds
      Check(name, (2 << 20) - 8192, 131072,
            direct);  // across sparse's data edge
    }
    const size_t last = size & ~size_t{4095};  // the partial last page
    Check("f", last - 8192, 65536, direct);    // across EOF
    Check("f", last, 4096, direct);
    Check("f", last + 8192, 4096, direct);  // past EOF: empty
    Check("empty", 0, 4096, direct);
  }
  // Unaligned offsets and sizes (no O_DIRECT; the file is in direct mode, so
  // each read still reaches the server as asked).
  Check("f", 1, 1, false);
  Check("f", 4095, 2, false);
  Check("f", 12345, 100000, false);
  Check("f", size - 10, 100, false);
  Check("f", 0, 0, false);
  if (Uring()) {
    EXPECT_EQ(Spliced(), 0u) << "a ring entry has no pipe";
  } else {
    EXPECT_GE(Spliced(), 16u) << mount_->ServerStderr().substr(0, 2000);
  }
}

TEST_F(SpliceMountTest, AFileTruncatedBehindTheMountsBackBetweenOpenAndRead) {
  Start("nopassthrough,splice_min=0");
  const std::string data = Random(600000, 3);
  Backing("t", data);
  int fd = ::open((mount_->path() + "/t").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<char> buf(1 << 20);
  ASSERT_EQ(::pread(fd, buf.data(), 131072, 4096), 131072);
  EXPECT_EQ(std::string(buf.data(), 131072), data.substr(4096, 131072));
  // Someone else shortens it after our open: reads see the new end.
  ASSERT_EQ(::truncate((backing_ + "/t").c_str(), 300001), 0);
  ssize_t n = ::pread(fd, buf.data(), 200000, 200000);
  ASSERT_EQ(n, 100001);
  EXPECT_EQ(std::string(buf.data(), 100001), data.substr(200000, 100001));
  n = ::pread(fd, buf.data(), 65536, 400000);
  EXPECT_EQ(n, 0);
  ASSERT_EQ(::truncate((backing_ + "/t").c_str(), 0), 0);
  EXPECT_EQ(::pread(fd, buf.data(), 4096, 0), 0);
  ::close(fd);
  if (!Uring()) {
    EXPECT_GE(Spliced(), 1u);
  }
}

TEST_F(SpliceMountTest, CachedFilesFillThePageCacheFromSplicedReplies) {
  Start("cached,splice_min=0");
  const std::string data = Random(5 * (1u << 20) + 77, 4);
  Backing("c", data);
  // Sequential reads (readahead) and a cold random one.
  std::string all =
      PreadPath(mount_->path() + "/c", 0, data.size() + 4096, false);
  ASSERT_EQ(all.size(), data.size());
  EXPECT_TRUE(all == data);
  int fd = ::open((mount_->path() + "/c").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  char b[5000];
  ASSERT_EQ(::pread(fd, b, sizeof b, 3000000), static_cast<ssize_t>(sizeof b));
  EXPECT_EQ(std::string(b, sizeof b), data.substr(3000000, sizeof b));
  ::close(fd);
  if (!Uring()) {
    EXPECT_GE(Spliced(), 2u);
  }
}

TEST_F(SpliceMountTest, NosplicePathIsNeverSpliced) {
  Start("nopassthrough,nosplice");
  Backing("n", Random(300000, 5));
  Check("n", 0, 131072, true);
  Check("n", 4096, 300000, false);
  EXPECT_EQ(Spliced(), 0u);
}

// Several callers at once: each worker splices through its own pipe, and
// no reply may carry another's bytes.
TEST_F(SpliceMountTest, ConcurrentReadersGetTheirOwnBytes) {
  Start("nopassthrough,splice_min=0");
  const std::string data = Random(4 * (1u << 20), 6);
  Backing("m", data);
  const std::string path = mount_->path() + "/m";
  std::vector<std::thread> threads;
  std::atomic<int> bad{0}, reads{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        ++bad;
        return;
      }
      std::vector<char> buf(1 << 20);
      auto end =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
      while (std::chrono::steady_clock::now() < end) {
        size_t len = 1 + rng() % (1u << (4 + rng() % 17));  // 1 B .. 1 MiB
        uint64_t off = rng() % (data.size() + 8192);
        ssize_t n = ::pread(fd, buf.data(), len, static_cast<off_t>(off));
        std::string want = off < data.size() ? data.substr(off, len) : "";
        if (n != static_cast<ssize_t>(want.size()) ||
            std::memcmp(buf.data(), want.data(), want.size()) != 0)
          ++bad;
        ++reads;
      }
      ::close(fd);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_GT(reads.load(), 100);
  if (!Uring()) {
    EXPECT_GE(Spliced(), 50u);
  }
}

// The differential tester (random operations against tmpfs) with every read
// of mirrorfs spliced: a few seeds, to keep the suite quick.
TEST_F(SpliceMountTest, DiffTestMatchesTmpfs) {
  Start("nopassthrough,splice_min=0");
  TmpfsDir oracle;
  ASSERT_TRUE(oracle.ok());
  for (uint64_t seed : {11, 12, 13}) {
    DiffOptions opt;
    opt.seed = seed;
    opt.ops = 1500;
    opt.oracle_root = oracle.path();
    opt.subject_root = mount_->path();
    opt.subject_name =
        "mirrorfs nopassthrough,splice_min=0 [" + mount_->describe() + "]";
    DiffResult r = RunDiffTest(opt);
    ASSERT_TRUE(r.ok) << r.report;
  }
  if (!Uring()) {
    EXPECT_GE(Spliced(), 1u);
  }
}

}  // namespace
}  // namespace zest::testing
