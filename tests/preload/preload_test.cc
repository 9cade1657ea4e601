// Unmodified programs under libzest-preload (`zest run`) on a pmfs mount,
// and the same runs on tmpfs: same results (docs/preload.md). Each run on
// pmfs also checks, from ZEST_PRELOAD_DEBUG's report, that its calls went
// direct. Programs that are not installed are skipped with a message.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <string>

#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

struct Ran {
  int status = -1;
  std::string out, err;
};

// Runs `cmd` with sh -c, stdout and stderr captured.
Ran Shell(const std::string& cmd) {
  TmpfsDir tmp;
  const std::string o = tmp.path() + "/out", e = tmp.path() + "/err";
  Ran r;
  r.status = std::system(("(" + cmd + ") >" + o + " 2>" + e).c_str());
  std::ifstream fo(o), fe(e);
  r.out.assign(std::istreambuf_iterator<char>(fo), {});
  r.err.assign(std::istreambuf_iterator<char>(fe), {});
  return r;
}

bool Have(const std::string& prog) { return Shell("command -v " + prog).status == 0; }

// The direct calls ZEST_PRELOAD_DEBUG reported, summed over processes.
long DirectCalls(const std::string& err) {
  static const std::regex re("zest-preload\\[[0-9]+\\]: ([0-9]+) calls direct");
  long n = 0;
  for (std::sregex_iterator it(err.begin(), err.end(), re), end; it != end; ++it)
    n += std::stol((*it)[1]);
  return n;
}

class PreloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = FuseUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    std::string err;
    mount_ = ZestMount::Start("pmfs", {}, &err);
    ASSERT_TRUE(mount_) << err;
    ASSERT_TRUE(oracle_.ok());
    zest_ = std::string(ZEST_BINARY) + " run ";
  }
  // The same shell command on tmpfs (plain) and on pmfs (under the shim),
  // with D standing for the directory; both outputs must be equal.
  void Same(const std::string& cmd, bool expect_direct = true) {
    auto subst = [&](const std::string& dir) { return std::regex_replace(cmd, std::regex("\\bD/"), dir + "/"); };
    const Ran a = Shell(subst(oracle_.path()));
    const Ran b = Shell("export ZEST_PRELOAD_DEBUG=1; " + subst(mount_->path()));
    EXPECT_EQ(a.status, b.status) << cmd << "\n" << b.err;
    EXPECT_EQ(a.out, b.out) << cmd;
    if (expect_direct) {
      EXPECT_GT(DirectCalls(b.err), 0) << cmd << ": nothing went direct\n" << b.err;
    }
  }
  std::string Z() const { return zest_; }

  std::unique_ptr<ZestMount> mount_;
  TmpfsDir oracle_;
  TmpfsDir scratch_;
  std::string zest_;
};

void RandomFile(const std::string& path, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary) << s;
}

TEST_F(PreloadTest, Coreutils) {
  const std::string src = scratch_.path() + "/src.bin";
  RandomFile(src, 5 * 1024 * 1024 + 123, 1);
  Same(Z() + "cp " + src + " D/a && " + Z() + "cat D/a | sha256sum");
  Same(Z() + "dd if=D/a of=D/b bs=64k status=none && " + Z() + "sha256sum < D/b");
  Same(Z() + "dd if=" + src + " of=D/c bs=4k seek=3 count=100 conv=notrunc status=none && " + Z() +
       "sha256sum D/c | cut -c1-64");
  Same(Z() + "truncate -s 777 D/a && " + Z() + "truncate -s +5000 D/a && stat -c %s D/a && " +
       Z() + "cat D/a | sha256sum");
  Same(Z() + "sh -c 'echo hello >> D/log; echo world >> D/log' && " + Z() + "cat D/log", false);
}

TEST_F(PreloadTest, TarCreateAndExtract) {
  if (!Have("tar")) GTEST_SKIP() << "tar is not installed";
  const std::string tree = scratch_.path() + "/tree";
  ASSERT_EQ(::mkdir(tree.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((tree + "/sub").c_str(), 0755), 0);
  const size_t sizes[] = {0, 1, 4095, 4096, 4097, 65536, 1 << 20, (3 << 20) + 7, 9 << 20};
  int i = 0;
  for (size_t n : sizes) {
    RandomFile(tree + (i % 2 ? "/sub/f" : "/f") + std::to_string(i), n, n + 7);
    ++i;
  }
  Same(Z() + "tar cf D/a.tar -C " + tree + " . && " + Z() + "tar tvf D/a.tar | awk '{print $3, $6}' | sort");
  Same("mkdir D/x && " + Z() + "tar xf D/a.tar -C D/x && diff -r " + tree + " D/x && echo same");
}

TEST_F(PreloadTest, Sqlite) {
  if (!Have("sqlite3")) GTEST_SKIP() << "sqlite3 is not installed";
  std::string sql = "create table t(id integer primary key, k text, v blob);";
  for (int txn = 0; txn < 30; ++txn) {
    sql += "begin;";
    for (int j = 0; j < 20; ++j)
      sql += "insert into t(k, v) values('k" + std::to_string(txn * 20 + j) + "', randomblob(" +
             std::to_string(100 + (txn * 37 + j * 11) % 3000) + "));";
    sql += txn % 3 == 0 ? "rollback;" : "commit;";
  }
  sql += "delete from t where id % 7 = 0; vacuum;";
  const std::string script = scratch_.path() + "/w.sql";
  std::ofstream(script) << sql;
  Same(Z() + "sqlite3 D/db < " + script + " && " + Z() +
       "sqlite3 D/db 'pragma integrity_check; select count(*), sum(length(v)) > 0 from t;'");
}

TEST_F(PreloadTest, FioVerify) {
  if (!Have("fio")) GTEST_SKIP() << "fio is not installed";
  for (const char* rw : {"randwrite", "write"}) {
    const std::string cmd = "export ZEST_PRELOAD_DEBUG=1; " + Z() + "fio --name=v --directory=" + mount_->path() +
                            " --size=8m --bs=4k --rw=" + rw +
                            " --ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 "
                            "--thread --output-format=terse";
    const Ran r = Shell(cmd);
    EXPECT_EQ(r.status, 0) << cmd << "\n" << r.out << r.err;
    EXPECT_GT(DirectCalls(r.err), 0) << r.err;
  }
}

TEST_F(PreloadTest, ForkExecAndThreads) {
  const std::string helper = PRELOAD_HELPER;
  Same(Z() + helper + " forkexec D/fe");
  Same(Z() + helper + " threads D/th");
  Same(Z() + helper + " mtime D/mt");
}

}  // namespace
}  // namespace zest::testing
