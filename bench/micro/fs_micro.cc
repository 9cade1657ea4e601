// In-process micro-benchmarks of the file systems, without the kernel: the
// cost of one operation inside memfs and pmfs, so a regression in a file
// system's own path shows here even when FUSE round trips hide it.
//
//   build/bench/micro/zest-micro [--benchmark_filter=Write]
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "zest/fs/filesystem.h"
#include "memfs/memfs.h"
#include "pmfs/format.h"
#include "pmfs/pmfs.h"

namespace {

using namespace zest;

// Answers go nowhere; only what a benchmark needs is kept (the last entry,
// the last error).
class NullSink final : public fs::ReplySink {
 public:
  void reply_error(fs::RequestToken, int err) override { last_error = err; }
  void reply_entry(fs::RequestToken, const fs::Entry& e) override { entry = e; last_error = 0; }
  void reply_create(fs::RequestToken, const fs::Entry& e, const fs::OpenInfo& o) override {
    entry = e;
    open = o;
    last_error = 0;
  }
  void reply_attr(fs::RequestToken, const fs::Attr&, double) override { last_error = 0; }
  void reply_open(fs::RequestToken, const fs::OpenInfo& o) override { open = o; last_error = 0; }
  void reply_write(fs::RequestToken, size_t n) override { written = n; last_error = 0; }
  void reply_data(fs::RequestToken, std::span<const iovec> iov) override {
    size_t n = 0;
    for (auto& v : iov) n += v.iov_len;
    benchmark::DoNotOptimize(n);
    last_error = 0;
  }
  void reply_xattr_size(fs::RequestToken, size_t) override {}
  void reply_statfs(fs::RequestToken, const fs::StatFs&) override {}
  void reply_lseek(fs::RequestToken, uint64_t) override {}
  std::span<std::byte> reply_buffer(fs::RequestToken, size_t n) override {
    buf.resize(n);
    return buf;
  }
  bool dir_add(fs::RequestToken, std::string_view, fs::Ino, uint32_t, uint64_t,
               const fs::Entry*) override { return true; }
  void reply_dir(fs::RequestToken) override {}
  bool interrupted(fs::RequestToken) const override { return false; }

  int last_error = 0;
  fs::Entry entry;
  fs::OpenInfo open;
  size_t written = 0;
  std::vector<std::byte> buf;
};

// A file system with one 64 MiB file, ready for 4 KiB I/O.
struct Fixture {
  std::unique_ptr<fs::FileSystem> fs;
  std::string pool;
  NullSink sink;
  fs::Ino ino = 0;
  uint64_t fh = 0;
  static constexpr uint64_t kFileSize = 64ull << 20;

  explicit Fixture(bool pmfs) {
    if (pmfs) {
      pool = "/dev/shm/zest-micro-" + std::to_string(::getpid()) + ".pool";
      ::unlink(pool.c_str());
      std::string why;
      pmfs::MkfsOptions mo;
      if (!pmfs::mkfs(pool, 512ull << 20, mo, &why)) std::abort();
      auto p = pmfs::open(pool, {}, &why);
      if (!p) std::abort();
      fs = std::move(*p);
    } else {
      fs = memfs::make_memfs({});
    }
    fs->init(nullptr);
    fs::Context ctx;
    fs->create(ctx, fs::kRootIno, "data", S_IFREG | 0644, O_RDWR, fs::CreateReply(&sink, nullptr));
    ino = sink.entry.ino;
    fh = sink.open.fh;
    std::vector<std::byte> chunk(1 << 20, std::byte{7});
    for (uint64_t off = 0; off < kFileSize; off += chunk.size())
      fs->write(ctx, ino, fh, off, chunk, 0, fs::WriteReply(&sink, nullptr));
  }
  ~Fixture() {
    fs.reset();
    if (!pool.empty()) ::unlink(pool.c_str());
  }
};

void Write4k(benchmark::State& state, bool pmfs) {
  Fixture f(pmfs);
  std::vector<std::byte> data(4096, std::byte{1});
  std::mt19937_64 rng(1);
  fs::Context ctx;
  for (auto _ : state) {
    uint64_t off = (rng() % (Fixture::kFileSize / 4096)) * 4096;
    f.fs->write(ctx, f.ino, f.fh, off, data, 0, fs::WriteReply(&f.sink, nullptr));
  }
  if (f.sink.written != 4096) state.SkipWithError("write failed");
}

void Read4k(benchmark::State& state, bool pmfs) {
  Fixture f(pmfs);
  std::mt19937_64 rng(1);
  fs::Context ctx;
  for (auto _ : state) {
    uint64_t off = (rng() % (Fixture::kFileSize / 4096)) * 4096;
    f.fs->read(ctx, f.ino, f.fh, off, 4096, fs::DataReply(&f.sink, nullptr));
  }
  if (f.sink.last_error) state.SkipWithError("read failed");
}

void CreateUnlink(benchmark::State& state, bool pmfs) {
  Fixture f(pmfs);
  fs::Context ctx;
  for (auto _ : state) {
    f.fs->create(ctx, fs::kRootIno, "tmp", S_IFREG | 0644, O_RDWR, fs::CreateReply(&f.sink, nullptr));
    fs::Ino ino = f.sink.entry.ino;
    f.fs->release(ctx, ino, f.sink.open.fh, 0, fs::StatusReply(&f.sink, nullptr));
    f.fs->unlink(ctx, fs::kRootIno, "tmp", fs::StatusReply(&f.sink, nullptr));
    f.fs->forget(ino);
  }
  if (f.sink.last_error) state.SkipWithError("create/unlink failed");
}

BENCHMARK_CAPTURE(Write4k, memfs, false);
BENCHMARK_CAPTURE(Write4k, pmfs, true);
BENCHMARK_CAPTURE(Read4k, memfs, false);
BENCHMARK_CAPTURE(Read4k, pmfs, true);
BENCHMARK_CAPTURE(CreateUnlink, memfs, false);
BENCHMARK_CAPTURE(CreateUnlink, pmfs, true);

}  // namespace

BENCHMARK_MAIN();
