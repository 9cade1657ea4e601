// MirrorHarness: drives MirrorFs without a kernel, on a fresh backing
// directory in /dev/shm, through the recording sink of tests/fs_harness/.
// MirrorFs answers every request before the operation returns, so a call
// without a reply fails at once. Its file handles matter, so the calls on
// open files take them right after the inode.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mirrorfs/mirror_fs.h"
#include "mirrorfs/mirrorfs.h"
#include "tests/fs_harness/call_runner.h"

namespace zest::mirrorfs::test {

using fs_harness::bytes;
using fs_harness::Call;
using fs_harness::err_of;
using RecordingSink = fs_harness::RecordingSink;

// Number of open fds of this process.
inline int open_fd_count() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n - 1;  // the one opendir holds
}

class MirrorHarness : public fs_harness::CallRunner {
 public:
  explicit MirrorHarness(fs::IoMode mode = fs::IoMode::Passthrough)
      : CallRunner(std::chrono::milliseconds(0)) {
    char tmpl[] = "/dev/shm/zest-mirrorfs-test-XXXXXX";
    EXPECT_NE(::mkdtemp(tmpl), nullptr);
    backing_ = tmpl;
    ::chmod(backing_.c_str(), 01777);
    Options o;
    o.source = backing_;
    o.io_mode = mode;
    std::string why;
    auto made = make_mirrorfs(o, &why);
    EXPECT_TRUE(made) << why;
    attach(std::move(*made));
  }
  ~MirrorHarness() {
    attach(nullptr);
    std::string cmd = "rm -rf '" + backing_ + "'";
    EXPECT_EQ(::system(cmd.c_str()), 0);
  }

  MirrorFs& mirror() { return static_cast<MirrorFs&>(fs()); }
  // A path in the backing directory.
  std::string B(const std::string& rel) const { return backing_ + "/" + rel; }

  Result<fs::OpenInfo> open(fs::Ino i, uint32_t flags = O_RDWR) {
    auto c = run<fs::OpenReply>(
        [&](auto r) { fs().open(ctx, i, flags, std::move(r)); });
    if (c->kind == Call::kOpen) return c->open;
    return Errno(c->err);
  }
  Result<size_t> write(fs::Ino i, uint64_t fh, uint64_t off,
                       std::string_view d) {
    return CallRunner::write(i, off, d, 0, fh);
  }
  Result<std::string> read(fs::Ino i, uint64_t fh, uint64_t off,
                           uint32_t size) {
    return CallRunner::read(i, off, size, fh);
  }
  Result<uint64_t> lseek(fs::Ino i, uint64_t fh, uint64_t off, int whence) {
    return CallRunner::lseek(i, off, whence, fh);
  }
  int fallocate(fs::Ino i, uint64_t fh, uint32_t mode, uint64_t off,
                uint64_t len) {
    return CallRunner::fallocate(i, mode, off, len, fh);
  }
  uint64_t opendir(fs::Ino i) {
    auto c = run<fs::OpenReply>(
        [&](auto r) { fs().opendir(ctx, i, 0, std::move(r)); });
    EXPECT_EQ(c->kind, Call::kOpen);
    return c->open.fh;
  }
  void releasedir(fs::Ino i, uint64_t fh) {
    run<fs::StatusReply>(
        [&](auto r) { fs().releasedir(ctx, i, fh, std::move(r)); });
  }
  std::unique_ptr<Call> readdir(fs::Ino i, uint64_t fh, uint64_t off, bool plus,
                                size_t capacity = 4096) {
    return CallRunner::readdir(i, off, plus, capacity, fh);
  }
  // Every name other than . and .., read in calls of `capacity` bytes.
  std::vector<std::string> list(fs::Ino i, bool plus = false,
                                size_t capacity = 4096) {
    uint64_t fh = opendir(i);
    std::vector<std::string> names = CallRunner::list(i, plus, capacity, fh);
    releasedir(i, fh);
    std::erase_if(names,
                  [](const std::string& n) { return n == "." || n == ".."; });
    return names;
  }

 private:
  std::string backing_;
};

}  // namespace zest::mirrorfs::test
