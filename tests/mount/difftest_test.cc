// Differential random testing of real mounts against tmpfs (difftest.h).
//
//   default:  5 seeds x 2,000 operations per file system
//   ZEST_SOAK=1:  50 seeds x 20,000
//   ZEST_DIFFTEST_SEED=S [ZEST_DIFFTEST_OPS=N]:  one seed, to reproduce
//   ZEST_DIFFTEST_SUBJECT=/dir:  test a directory another server serves
//     (then the fs parameter only names the run)
//   ZEST_DIFFTEST_SKIP_OPS=fallocate,lseek:  leave op kinds out
//   ZEST_DIFFTEST_NO_BLOCKS=1, ZEST_DIFFTEST_NO_INODES=1:  skip st_blocks /
//     inode-identity comparison (for servers that define them differently)
#include "conformance/difftest.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

using conformance::DiffOpName;
using conformance::DiffOptions;
using conformance::DiffResult;
using conformance::RunDiffTest;

// A file system (and mount arguments) the tester runs against. Later
// transports and file systems add rows here.
struct DiffTarget {
  std::string name;
  std::string fs;
  std::vector<std::string> args;
};

void PrintTo(const DiffTarget& t, std::ostream* os) { *os << t.name; }

const DiffTarget kTargets[] = {
    {"memfs", "memfs", {}},
    {"pmfs", "pmfs", {}},
    {"mirrorfs", "mirrorfs", {}},
};

uint64_t EnvU64(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : dflt;
}

class DiffTest : public ::testing::TestWithParam<DiffTarget> {};

TEST_P(DiffTest, RandomOpsMatchTmpfs) {
  const DiffTarget& target = GetParam();
  std::unique_ptr<SubjectMount> subject;
  if (const char* dir = std::getenv("ZEST_DIFFTEST_SUBJECT")) {
    std::string err;
    subject = ExistingDir::Create(dir, &err);
    ASSERT_TRUE(subject) << err;
  } else {
    std::string reason = FuseUnavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    std::string err;
    subject = StartSubject(target.fs, target.args, &err);
    ASSERT_TRUE(subject) << "cannot start subject: " << err;
  }
  TmpfsDir oracle;
  ASSERT_TRUE(oracle.ok()) << "cannot create a directory in /dev/shm";

  bool soak = std::getenv("ZEST_SOAK") != nullptr;
  std::vector<uint64_t> seeds;
  int ops = soak ? 20000 : 2000;
  if (std::getenv("ZEST_DIFFTEST_SEED")) {
    seeds.push_back(EnvU64("ZEST_DIFFTEST_SEED", 1));
  } else {
    int n = soak ? 50 : 5;
    uint64_t base = EnvU64("ZEST_DIFFTEST_BASE_SEED", 1);
    for (int i = 0; i < n; ++i) seeds.push_back(base + i);
  }
  ops = static_cast<int>(EnvU64("ZEST_DIFFTEST_OPS", ops));

  auto start = std::chrono::steady_clock::now();
  long total = 0;
  std::vector<long> counts, oks;
  for (uint64_t seed : seeds) {
    DiffOptions opt;
    opt.seed = seed;
    opt.ops = ops;
    opt.oracle_root = oracle.path();
    opt.subject_root = subject->path();
    opt.subject_name = target.name + " [" + subject->describe() + "]";
    if (const char* v = std::getenv("ZEST_DIFFTEST_NO_BLOCKS"))
      opt.compare_blocks = !*v;
    if (const char* v = std::getenv("ZEST_DIFFTEST_NO_INODES"))
      opt.compare_inodes = !*v;
    if (const char* v = std::getenv("ZEST_DIFFTEST_SKIP_OPS")) opt.skip_ops = v;
    DiffResult r = RunDiffTest(opt);
    total += r.ops_run;
    counts.resize(r.op_counts.size());
    oks.resize(r.op_counts.size());
    for (size_t i = 0; i < r.op_counts.size(); ++i) {
      counts[i] += r.op_counts[i];
      oks[i] += r.op_ok[i];
    }
    ASSERT_TRUE(r.ok) << r.report;
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::string mix;
  for (size_t i = 0; i < counts.size(); ++i)
    mix += std::string(DiffOpName(i)) + "=" + std::to_string(oks[i]) + "/" +
           std::to_string(counts[i]) + " ";
  std::printf(
      "difftest %s: %ld ops over %zu seeds in %.2f s, no divergence\n"
      "  succeeded/run per op: %s\n",
      target.name.c_str(), total, seeds.size(), secs, mix.c_str());
}

INSTANTIATE_TEST_SUITE_P(Targets, DiffTest, ::testing::ValuesIn(kTargets),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace zest::testing
