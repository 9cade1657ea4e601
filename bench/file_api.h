// How the workload makes its calls on a target: one of two APIs, chosen
// per target when the workload is prepared and fixed for the run.
//
//   SysFiles     system calls on the mount, for every target but `direct`:
//                exactly the calls the rows have always measured (openat,
//                pread, statx, ... on the root's and the create directory's
//                fds).
//   DirectFiles  libzest-direct (direct/zest_direct.h) attached to the
//                mount, for `direct`: reads and writes go to the mapped
//                pool under leases, everything else through the mount
//                inside the library.
//
// Both have the same members, and the workload's loops are templates over
// them (FileApi::visit picks one per batch, not per call), so each call
// inlines to the one underneath: a row of a system-call target runs the same
// code as before there was a choice, with no indirect call in what is timed.
//
// A handle is what the API's open returned (a kernel fd, or a
// libzest-direct handle); an OpenFile closes it through the API that made
// it. Paths are relative to the target's root, and the `name` of create and
// unlink is a name in the create directory. Members return what the call
// underneath returns, with errno set on failure.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "bench/ops.h"
#include "bench/outcome.h"
#include "direct/zest_direct.h"

namespace zest::bench {

class SysFiles {
 public:
  // The fds stay the caller's and must outlive this.
  SysFiles(int root_fd, int create_dir_fd)
      : root_(root_fd), create_dir_(create_dir_fd) {}

  int open(const char* path, int flags) {
    return ::openat(root_, path, flags | O_CLOEXEC);
  }
  int close(int h) { return ::close(h); }
  ssize_t pread(int h, void* buf, size_t n, off_t off) {
    return ::pread(h, buf, n, off);
  }
  ssize_t pwrite(int h, const void* buf, size_t n, off_t off) {
    return ::pwrite(h, buf, n, off);
  }
  int fsync(int h) { return ::fsync(h); }
  int ftruncate(int h, off_t size) { return ::ftruncate(h, size); }
  int fstat(int h, struct stat* st) { return ::fstat(h, st); }
  int stat(const char* path, struct stat* st) {
    return ::fstatat(root_, path, st, 0);
  }
  int statx_sync(const char* path, struct statx* stx) {
    return ::statx(root_, path, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, stx);
  }
  ssize_t fgetxattr(int h, const char* name, void* value, size_t size) {
    return ::fgetxattr(h, name, value, size);
  }
  int create(const char* name) {
    return ::openat(create_dir_, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
                    0644);
  }
  int unlink(const char* name) { return ::unlinkat(create_dir_, name, 0); }
  int fsync_create_dir() { return ::fsync(create_dir_); }

  // Why this API cannot make the calls of `op`, or nullptr.
  static const char* cannot(Op) { return nullptr; }

 private:
  int root_;
  int create_dir_;
};

class DirectFiles {
 public:
  // zest_direct_attach(mountpoint, 0), refused unless zest_direct_is_direct
  // says reads and writes will go to the pool: this API never stands in
  // for the kernel path. `create_dir` (relative to the mount) must exist.
  static Outcome<DirectFiles> attach(const std::string& mountpoint,
                                     const std::string& create_dir);

  int open(const char* path, int flags) {
    return zest_open(d_.get(), path, flags, 0);
  }
  int close(int h) { return zest_close(d_.get(), h); }
  ssize_t pread(int h, void* buf, size_t n, off_t off) {
    return zest_pread(d_.get(), h, buf, n, off);
  }
  ssize_t pwrite(int h, const void* buf, size_t n, off_t off) {
    return zest_pwrite(d_.get(), h, buf, n, off);
  }
  int fsync(int h) { return zest_fsync(d_.get(), h); }
  int ftruncate(int h, off_t size) { return zest_ftruncate(d_.get(), h, size); }
  int fstat(int h, struct stat* st) { return zest_fstat(d_.get(), h, st); }
  int stat(const char* path, struct stat* st) {
    return zest_stat(d_.get(), path, st);
  }
  // Not in the library (cannot() says so; the rows are n/a).
  int statx_sync(const char*, struct statx*) { return unsupported(); }
  ssize_t fgetxattr(int, const char*, void*, size_t) { return unsupported(); }
  // The library takes paths only: the name is joined to the create
  // directory's path in a buffer of ours (no allocation; one thread at a
  // time, as the create rows are measured).
  int create(const char* name) {
    return zest_open(d_.get(), in_create_dir(name), O_CREAT | O_EXCL | O_WRONLY,
                     0644);
  }
  int unlink(const char* name) {
    return zest_unlink(d_.get(), in_create_dir(name));
  }
  int fsync_create_dir() { return zest_fsync(d_.get(), create_dir_h_); }

  static const char* cannot(Op op);

  zest_direct_stats stats() const {
    zest_direct_stats s{};
    zest_direct_get_stats(d_.get(), &s);
    return s;
  }

 private:
  struct Detach {
    void operator()(zest_direct* d) const { zest_direct_detach(d); }
  };
  explicit DirectFiles(zest_direct* d) : d_(d) {}
  static int unsupported() {
    errno = ENOTSUP;
    return -1;
  }
  const char* in_create_dir(const char* name);

  // Detaching closes every handle still open, create_dir_h_ included.
  std::unique_ptr<zest_direct, Detach> d_;
  int create_dir_h_ = -1;
  std::array<char, 256> path_{};  // the create directory's path, then '/'
  size_t prefix_ = 0;
};

// The API of one workload.
class FileApi {
 public:
  explicit FileApi(SysFiles s) : v_(std::move(s)) {}
  explicit FileApi(DirectFiles d) : v_(std::move(d)) {}

  // Calls f(SysFiles&) or f(DirectFiles&).
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), v_);
  }
  DirectFiles* direct() { return std::get_if<DirectFiles>(&v_); }
  const char* cannot(Op op) const {
    return std::holds_alternative<DirectFiles>(v_) ? DirectFiles::cannot(op)
                                                   : SysFiles::cannot(op);
  }
  int open(const char* path, int flags) {
    return visit([&](auto& io) { return io.open(path, flags); });
  }
  int close(int h) {
    return visit([&](auto& io) { return io.close(h); });
  }

 private:
  std::variant<SysFiles, DirectFiles> v_;
};

// A handle of a FileApi, closed through it when the guard goes; the
// FileApi must outlive it.
class OpenFile {
 public:
  OpenFile() = default;
  OpenFile(FileApi& api, int h) : api_(&api), h_(h) {}
  OpenFile(OpenFile&& o) noexcept : api_(o.api_), h_(std::exchange(o.h_, -1)) {}
  OpenFile& operator=(OpenFile&& o) noexcept {
    if (this != &o) {
      reset();
      api_ = o.api_;
      h_ = std::exchange(o.h_, -1);
    }
    return *this;
  }
  ~OpenFile() { reset(); }

  int get() const { return h_; }
  explicit operator bool() const { return h_ >= 0; }
  void reset() {
    if (h_ >= 0) api_->close(std::exchange(h_, -1));
  }

 private:
  FileApi* api_ = nullptr;
  int h_ = -1;
};

// Empty when libzest-direct served the `calls` calls of `op` made between
// the two snapshots from the pool: some direct and at most 1% through the
// kernel; otherwise why the row must not be reported under the direct
// label, with the counts.
std::string check_served_directly(Op op, const zest_direct_stats& before,
                                  const zest_direct_stats& after, size_t calls);

// The counters, for the report.
std::string describe(const zest_direct_stats& s);

}  // namespace zest::bench
