// PmFsHarness: drives pmfs through the recording sink of tests/fs_harness/
// (no kernel), on a pool file in a temporary directory, and can close and
// reopen the pool (remount) to check what persisted.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "pmfs/format.h"
#include "pmfs/fsck.h"
#include "pmfs/pmfs.h"
#include "tests/fs_harness/call_runner.h"
#include "tests/pmem/temp_dir.h"

namespace zest::pmfs::test {

using fs_harness::bytes;
using fs_harness::Call;
using fs_harness::err_of;
using FakeSink = fs_harness::RecordingSink;

// One pool file and the PmFs on it. pmfs answers every request before the
// operation returns, so a call without a reply fails at once.
class PmFsHarness : public fs_harness::CallRunner {
 public:
  explicit PmFsHarness(uint64_t pool_size = 64 << 20,
                       MkfsOptions mkfs_opts = default_mkfs())
      : CallRunner(std::chrono::milliseconds(0)), path_(dir_.file("pool")) {
    std::string why;
    auto r = mkfs(path_, pool_size, mkfs_opts, &why);
    EXPECT_TRUE(r) << why;
    mount();
  }
  // The PmFs goes before the directory that holds its pool.
  ~PmFsHarness() { close(); }
  static MkfsOptions default_mkfs() {
    MkfsOptions o;
    o.root_mode = 01777;
    return o;
  }

  // What mount() and remount() without arguments open the pool with.
  Options mount_options;
  bool mount() { return mount(mount_options); }
  bool remount() { return mount(mount_options); }
  // (Re)opens the pool. False (with why_) when open refuses it.
  bool mount(const Options& o) {
    close();
    sink().drop_all();
    auto r = pmfs::open(path_, o, &why_);
    if (!r) {
      last_open_error_ = r.error().value;
      return false;
    }
    attach(std::move(*r));
    return true;
  }
  // Closes the file system (as at unmount or a crash: pmfs writes nothing
  // on close) and opens the pool again.
  bool remount(const Options& o) { return mount(o); }
  void close() { attach(nullptr); }

  PmFs& pm() { return static_cast<PmFs&>(fs()); }
  const std::string& path() const { return path_; }
  const std::string& why() const { return why_; }
  int last_open_error() const { return last_open_error_; }

  // fsck of the pool as it lies now (read-only).
  std::vector<std::string> fsck_errors() {
    FsckOptions o;
    std::string why;
    auto r = pmfs::fsck(path_, o, &why);
    if (!r) return {"fsck could not run: " + why};
    return r->errors;
  }

  // The value, or its size when the file system answers only that.
  Result<std::string> getxattr(fs::Ino ino, std::string_view name,
                               uint32_t size = 1 << 17) {
    auto c = CallRunner::getxattr(ino, name, size);
    if (c->kind == Call::kData) return c->data;
    if (c->kind == Call::kXattrSize) return std::to_string(c->xattr_size);
    return Errno(c->err);
  }
  Result<std::string> listxattr(fs::Ino ino) {
    auto c = CallRunner::listxattr(ino, 1 << 16);
    if (c->kind == Call::kData) return c->data;
    return Errno(c->err);
  }

 private:
  pmem::testing::TempDir dir_;
  std::string path_;
  std::string why_;
  int last_open_error_ = 0;
};

}  // namespace zest::pmfs::test
