// The client channel under hostile input (tests/direct/hostile_input.h):
// seeded random message sequences against a real pmfs mount, the replay of
// the channel fuzzer. The server must answer or close, never crash or hang,
// never grant a lease a descriptor does not prove, never commit blocks the
// file does not own: the pool is fsck-clean afterwards.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "tests/direct/hostile_input.h"
#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

// Inputs biased towards well-formed messages, so that they get past the
// first checks: kinds 2-6 mostly, with payloads of the right sizes.
std::vector<uint8_t> MakeInput(std::mt19937_64& rng) {
  std::vector<uint8_t> in;
  const int steps = 4 + static_cast<int>(rng() % 40);
  for (int s = 0; s < steps; ++s) {
    uint8_t kind = static_cast<uint8_t>(rng() % 10);
    if (s == 0 && rng() % 4) kind = 2;
    size_t len;
    switch (kind) {
      case 3: len = 1 + sizeof(cw::LeaseIn); break;
      case 4: len = sizeof(cw::MapIn); break;
      case 5: len = sizeof(cw::CommitIn) + (rng() % 3) * sizeof(cw::Extent); break;
      case 6: len = sizeof(cw::ReturnIn); break;
      case 9: len = 1 + sizeof(cw::MapIn) + (rng() % 2) * sizeof(cw::Extent); break;
      default: len = rng() % 64;
    }
    in.push_back(kind);
    in.push_back(static_cast<uint8_t>(len));
    for (size_t i = 0; i < len; ++i) in.push_back(static_cast<uint8_t>(rng()));
  }
  return in;
}

TEST(ChannelHostileInput, RandomMessagesAreRefusedNotObeyed) {
  if (std::string why = FuseUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  std::string err;
  auto m = ZestMount::Start("pmfs", {}, &err);
  ASSERT_TRUE(m) << err;
  const std::string mp = m->path();
  TmpfsDir other;
  ASSERT_TRUE(other.ok());
  HostileTarget t;
  t.connect = [&] { return RawChannel::Connect(mp); };
  t.file_rw = mp + "/file";
  t.dir = mp + "/dir";
  t.foreign = other.path() + "/foreign";
  {
    int fd = ::open(t.file_rw.c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    std::string data(64 * 1024, 'd');
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
    ASSERT_EQ(::mkdir(t.dir.c_str(), 0755), 0);
    fd = ::open(t.foreign.c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ::close(fd);
    // A neighbour whose blocks hostile commits may name.
    fd = ::open((mp + "/neighbour").c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, std::string(64 * 1024, 'n').data(), 64 * 1024), 64 * 1024);
    ::close(fd);
  }
  const int inputs = std::getenv("ZEST_SOAK") ? 20000 : 1000;
  const uint64_t seed = std::getenv("ZEST_CHANNEL_SEED") ? std::strtoull(std::getenv("ZEST_CHANNEL_SEED"), nullptr, 10) : 1;
  std::mt19937_64 rng(seed);
  for (int i = 0; i < inputs; ++i) {
    std::vector<uint8_t> in = MakeInput(rng);
    HostileRun run(t);
    const std::string why = run.Run(in.data(), in.size());
    ASSERT_EQ(why, "") << "input " << i << " of seed " << seed;
  }
  // The inputs got deep: leases were granted (to proofs) and taken back.
  {
    auto c = RawChannel::Connect(mp);
    ASSERT_TRUE(c);
    ASSERT_EQ(c->Attach(false), 0);
    cw::StatsOut st{};
    ASSERT_EQ(c->Stats(&st), 0);
    EXPECT_GT(st.granted, 10u);
    EXPECT_EQ(st.active, 0u);  // every client is gone, so are its leases
  }
  // The files are intact: nothing was committed into them from outside.
  std::string buf(64 * 1024, '\0');
  int fd = ::open((mp + "/neighbour").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), 64 * 1024);
  ::close(fd);
  EXPECT_EQ(buf, std::string(64 * 1024, 'n'));
  const std::string pool = m->source();
  std::string report;
  ASSERT_TRUE(m->Unmount(&report)) << report;
  const std::string cmd = std::string(ZEST_BINARY) + " fsck " + pool + " > /dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "fsck of " << pool;
}

}  // namespace
}  // namespace zest::testing
