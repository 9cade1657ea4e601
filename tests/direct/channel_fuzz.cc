// libFuzzer target for the client channel (ZEST_FUZZ=ON, clang): the same
// hostile inputs as hostile_test.cc, against a ChannelServer in this
// process over a pmfs pool in /dev/shm. The "mount" whose files prove
// leases is a tmpfs directory here (its st_dev plays the mount's), so the
// protocol, the proof checks and the lease manager are all exercised; the
// provider answers ENOENT for those inodes.
//   cmake -DZEST_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang ..
//   make channel_fuzz && ./tests/direct/channel_fuzz -max_total_time=600
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "layout/channel_server.h"
#include "pmfs/format.h"
#include "pmfs/pmfs.h"
#include "tests/direct/hostile_input.h"

namespace {

struct Env {
  std::string dir;
  std::unique_ptr<zest::pmfs::PmFs> fs;
  std::unique_ptr<zest::layout::ChannelServer> server;
  zest::testing::HostileTarget target;
};

Env* Setup() {
  auto* e = new Env;
  char tmpl[] = "/dev/shm/zest-chfuzz-XXXXXX";
  if (!::mkdtemp(tmpl)) std::abort();
  e->dir = tmpl;
  const std::string pool = e->dir + "/pool";
  std::string why;
  if (!zest::pmfs::mkfs(pool, 64 << 20, {}, &why)) {
    std::fprintf(stderr, "mkfs: %s\n", why.c_str());
    std::abort();
  }
  auto fs = zest::pmfs::open(pool, {}, &why);
  if (!fs) std::abort();
  e->fs = std::move(*fs);
  ::mkdir((e->dir + "/mnt").c_str(), 0755);
  ::mkdir((e->dir + "/mnt/dir").c_str(), 0755);
  e->target.file_rw = e->dir + "/mnt/file";
  e->target.dir = e->dir + "/mnt/dir";
  e->target.foreign = "/proc/self/status";
  ::close(::open(e->target.file_rw.c_str(), O_RDWR | O_CREAT, 0644));
  struct stat st;
  ::stat((e->dir + "/mnt").c_str(), &st);
  zest::layout::ChannelOptions o;
  o.pool_path = pool;
  o.pool_size = 64 << 20;
  o.fs_dev = st.st_dev;
  o.socket_path = e->dir + "/channel";
  o.recall_timeout = std::chrono::milliseconds(5);
  auto s = zest::layout::ChannelServer::start(*e->fs->layouts(), o, nullptr, &why);
  if (!s) std::abort();
  e->server = std::move(*s);
  const std::string sock = o.socket_path;
  e->target.connect = [sock] { return zest::testing::RawChannel::Connect("", sock); };
  // The pool and the socket go when the fuzzer exits (the server's threads
  // may still hold them: only the names are removed).
  static std::string dir = e->dir;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Env* env = Setup();
  zest::testing::HostileRun run(env->target);
  const std::string why = run.Run(data, size);
  if (!why.empty()) {
    std::fprintf(stderr, "channel_fuzz: %s\n", why.c_str());
    if (std::getenv("CHANNEL_FUZZ_GDB")) {
      const std::string cmd = "gdb -p " + std::to_string(::getpid()) +
                              " -batch -ex 'thread apply all bt' > /tmp/channel_fuzz_bt.txt 2>&1; ls -l /proc/" +
                              std::to_string(::getpid()) + "/fd >> /tmp/channel_fuzz_bt.txt; ss -xpa | grep channel_fuzz >> /tmp/channel_fuzz_bt.txt";
      (void)!std::system(cmd.c_str());
    }
    std::abort();
  }
  return 0;
}
