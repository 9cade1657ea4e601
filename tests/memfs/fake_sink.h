// FakeSink: a ReplySink that records what a file system answered, so memfs
// can be driven without a kernel; and MemFsHarness, typed helpers on top.
//
// Each request gets its own Call (the RequestToken points at it). Replies may
// come from any thread (the async option): a Call is complete once `done`,
// and the helpers wait for that.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "fs/filesystem.h"
#include "memfs/memfs.h"

namespace zest::memfs::test {

struct Call {
  enum Kind { kNone, kError, kEntry, kCreate, kAttr, kOpen, kWrite, kData,
              kXattrSize, kStatfs, kLseek, kDir };
  struct DirEnt {
    std::string name;
    fs::Ino ino = 0;
    uint32_t type = 0;
    uint64_t next_off = 0;
    bool has_entry = false;
    fs::Entry entry;
  };

  Kind kind = kNone;
  int err = 0;
  int completions = 0;
  fs::Entry entry;
  fs::OpenInfo open;
  fs::Attr attr;
  size_t written = 0;
  std::string data;
  size_t iov_count = 0;
  size_t xattr_size = 0;
  fs::StatFs statfs;
  uint64_t offset = 0;
  std::vector<DirEnt> dir;
  size_t dir_bytes = 0;
  size_t dir_capacity = 4096;
  std::vector<std::byte> buffer;
  std::atomic<bool> interrupted{false};
  std::thread::id replied_on;

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;

  bool wait(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return done; });
  }
};

// Records replies, and counts the references handed to the "kernel" the way
// the server does (fs::KernelRefs), so inode lifetime can be tested.
class FakeSink : public fs::ReplySink, public fs::KernelRefs {
 public:
  bool referenced(fs::Ino ino) const override {
    std::lock_guard lock(refs_mu_);
    auto it = refs_.find(ino);
    return it != refs_.end() && it->second > 0;
  }
  // The kernel forgets every reference it holds on ino.
  void drop_refs(fs::Ino ino) {
    std::lock_guard lock(refs_mu_);
    refs_.erase(ino);
  }
  void add_ref(fs::Ino ino) {
    std::lock_guard lock(refs_mu_);
    ++refs_[ino];
  }
  void reply_error(fs::RequestToken t, int err) override {
    finish(t, [&](Call& c) {
      c.kind = err ? Call::kError : Call::kNone;
      c.err = err;
    });
  }
  void reply_entry(fs::RequestToken t, const fs::Entry& e) override {
    add_ref(e.ino);
    finish(t, [&](Call& c) { c.kind = Call::kEntry; c.entry = e; });
  }
  void reply_create(fs::RequestToken t, const fs::Entry& e, const fs::OpenInfo& o) override {
    add_ref(e.ino);
    finish(t, [&](Call& c) { c.kind = Call::kCreate; c.entry = e; c.open = o; });
  }
  void reply_attr(fs::RequestToken t, const fs::Attr& a, double) override {
    finish(t, [&](Call& c) { c.kind = Call::kAttr; c.attr = a; });
  }
  void reply_open(fs::RequestToken t, const fs::OpenInfo& o) override {
    finish(t, [&](Call& c) { c.kind = Call::kOpen; c.open = o; });
  }
  void reply_write(fs::RequestToken t, size_t n) override {
    finish(t, [&](Call& c) { c.kind = Call::kWrite; c.written = n; });
  }
  void reply_data(fs::RequestToken t, std::span<const iovec> iov) override {
    finish(t, [&](Call& c) {
      c.kind = Call::kData;
      c.iov_count = iov.size();
      for (const iovec& v : iov) c.data.append(static_cast<const char*>(v.iov_base), v.iov_len);
    });
  }
  void reply_xattr_size(fs::RequestToken t, size_t n) override {
    finish(t, [&](Call& c) { c.kind = Call::kXattrSize; c.xattr_size = n; });
  }
  void reply_statfs(fs::RequestToken t, const fs::StatFs& s) override {
    finish(t, [&](Call& c) { c.kind = Call::kStatfs; c.statfs = s; });
  }
  void reply_lseek(fs::RequestToken t, uint64_t off) override {
    finish(t, [&](Call& c) { c.kind = Call::kLseek; c.offset = off; });
  }
  std::span<std::byte> reply_buffer(fs::RequestToken t, size_t size) override {
    Call& c = *static_cast<Call*>(t);
    c.buffer.resize(size);
    return c.buffer;
  }
  bool dir_add(fs::RequestToken t, std::string_view name, fs::Ino ino, uint32_t type,
               uint64_t next_off, const fs::Entry* plus) override {
    Call& c = *static_cast<Call*>(t);
    // Sizes as the kernel's fuse_dirent / fuse_direntplus records.
    size_t rec = (24 + name.size() + 7) & ~size_t{7};
    if (plus) rec += 128;
    if (c.dir_bytes + rec > c.dir_capacity) return false;
    c.dir_bytes += rec;
    Call::DirEnt d{std::string(name), ino, type, next_off, plus != nullptr, {}};
    if (plus) d.entry = *plus;
    if (plus && name != "." && name != "..") add_ref(plus->ino);
    c.dir.push_back(std::move(d));
    return true;
  }
  void reply_dir(fs::RequestToken t) override {
    finish(t, [&](Call& c) { c.kind = Call::kDir; });
  }
  bool interrupted(fs::RequestToken t) const override {
    return static_cast<Call*>(t)->interrupted;
  }

 private:
  mutable std::mutex refs_mu_;
  std::map<fs::Ino, uint64_t> refs_;

  template <class F>
  void finish(fs::RequestToken t, F&& record) {
    Call& c = *static_cast<Call*>(t);
    std::lock_guard lock(c.mu);
    record(c);
    ++c.completions;
    c.replied_on = std::this_thread::get_id();
    c.done = true;
    c.cv.notify_all();
  }
};

inline std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Typed calls into one MemFs. Each returns the completed Call, or a value /
// errno for the common cases.
class MemFsHarness {
 public:
  explicit MemFsHarness(const Options& o = {}) : fs_(make_memfs(o)) { fs_->init(&sink_); }

  fs::FileSystem& fs() { return *fs_; }
  FakeSink& sink() { return sink_; }
  void reset() { fs_.reset(); }

  // Runs f(call) and waits for its reply.
  template <class F>
  std::unique_ptr<Call> run(F&& f) {
    auto c = std::make_unique<Call>();
    f(c.get());
    EXPECT_TRUE(c->wait()) << "no reply";
    return c;
  }
  template <class R>
  R reply(Call* c) { return R(&sink_, c); }

  static Result<fs::Entry> entry(const Call& c) {
    if (c.kind == Call::kEntry || c.kind == Call::kCreate) return c.entry;
    return Errno(c.err ? c.err : -1);
  }
  static int status(const Call& c) { return c.kind == Call::kError ? c.err : 0; }

  Result<fs::Entry> lookup(fs::Ino parent, std::string_view name) {
    return entry(*run([&](Call* c) { fs_->lookup(ctx, parent, name, reply<fs::EntryReply>(c)); }));
  }
  Result<fs::Entry> mkdir(fs::Ino parent, std::string_view name, uint32_t mode = 0755) {
    return entry(*run([&](Call* c) { fs_->mkdir(ctx, parent, name, mode, reply<fs::EntryReply>(c)); }));
  }
  Result<fs::Entry> mknod(fs::Ino parent, std::string_view name, uint32_t mode, uint32_t rdev = 0) {
    return entry(*run([&](Call* c) { fs_->mknod(ctx, parent, name, mode, rdev, reply<fs::EntryReply>(c)); }));
  }
  Result<fs::Entry> symlink(std::string_view target, fs::Ino parent, std::string_view name) {
    return entry(*run([&](Call* c) { fs_->symlink(ctx, target, parent, name, reply<fs::EntryReply>(c)); }));
  }
  Result<fs::Entry> link(fs::Ino ino, fs::Ino parent, std::string_view name) {
    return entry(*run([&](Call* c) { fs_->link(ctx, ino, parent, name, reply<fs::EntryReply>(c)); }));
  }
  // create + release: a closed new file.
  Result<fs::Entry> create(fs::Ino parent, std::string_view name, uint32_t mode = 0644,
                           uint32_t flags = O_RDWR | O_CREAT, bool keep_open = false) {
    auto c = run([&](Call* c) { fs_->create(ctx, parent, name, mode, flags, reply<fs::CreateReply>(c)); });
    if (c->kind == Call::kCreate && !keep_open) release(c->entry.ino);
    return entry(*c);
  }
  int unlink(fs::Ino parent, std::string_view name) {
    return status(*run([&](Call* c) { fs_->unlink(ctx, parent, name, reply<fs::StatusReply>(c)); }));
  }
  int rmdir(fs::Ino parent, std::string_view name) {
    return status(*run([&](Call* c) { fs_->rmdir(ctx, parent, name, reply<fs::StatusReply>(c)); }));
  }
  int rename(fs::Ino p, std::string_view n, fs::Ino np, std::string_view nn, uint32_t flags = 0) {
    return status(*run([&](Call* c) { fs_->rename(ctx, p, n, np, nn, flags, reply<fs::StatusReply>(c)); }));
  }
  Result<fs::Attr> getattr(fs::Ino ino) {
    auto c = run([&](Call* c) { fs_->getattr(ctx, ino, nullptr, reply<fs::AttrReply>(c)); });
    if (c->kind == Call::kAttr) return c->attr;
    return Errno(c->err);
  }
  Result<fs::Attr> setattr(fs::Ino ino, const fs::SetAttr& s) {
    auto c = run([&](Call* c) { fs_->setattr(ctx, ino, s, reply<fs::AttrReply>(c)); });
    if (c->kind == Call::kAttr) return c->attr;
    return Errno(c->err);
  }
  int open(fs::Ino ino, uint32_t flags = O_RDWR) {
    return status(*run([&](Call* c) { fs_->open(ctx, ino, flags, reply<fs::OpenReply>(c)); }));
  }
  int release(fs::Ino ino) {
    return status(*run([&](Call* c) { fs_->release(ctx, ino, 0, 0, reply<fs::StatusReply>(c)); }));
  }
  void forget(fs::Ino ino) {
    sink_.drop_refs(ino);
    fs_->forget(ino);
  }
  Result<size_t> write(fs::Ino ino, uint64_t off, std::string_view data, uint32_t flags = 0) {
    auto c = run([&](Call* c) { fs_->write(ctx, ino, 0, off, bytes(data), flags, reply<fs::WriteReply>(c)); });
    if (c->kind == Call::kWrite) return c->written;
    return Errno(c->err);
  }
  Result<std::string> read(fs::Ino ino, uint64_t off, uint32_t size) {
    auto c = run([&](Call* c) { fs_->read(ctx, ino, 0, off, size, reply<fs::DataReply>(c)); });
    if (c->kind == Call::kData) return c->data;
    return Errno(c->err);
  }
  int fallocate(fs::Ino ino, uint32_t mode, uint64_t off, uint64_t len) {
    return status(*run([&](Call* c) { fs_->fallocate(ctx, ino, 0, mode, off, len, reply<fs::StatusReply>(c)); }));
  }
  Result<uint64_t> lseek(fs::Ino ino, uint64_t off, int whence) {
    auto c = run([&](Call* c) { fs_->lseek(ctx, ino, 0, off, whence, reply<fs::LseekReply>(c)); });
    if (c->kind == Call::kLseek) return c->offset;
    return Errno(c->err);
  }
  Result<size_t> copy(fs::Ino in, uint64_t off_in, fs::Ino out, uint64_t off_out, uint64_t len,
                      uint32_t flags = 0) {
    auto c = run([&](Call* c) {
      fs_->copy_file_range(ctx, in, 0, off_in, out, 0, off_out, len, flags, reply<fs::WriteReply>(c));
    });
    if (c->kind == Call::kWrite) return c->written;
    return Errno(c->err);
  }
  std::unique_ptr<Call> readdir(fs::Ino ino, uint64_t off, bool plus = false, size_t capacity = 4096) {
    auto c = std::make_unique<Call>();
    c->dir_capacity = capacity;
    fs_->readdir(ctx, ino, 0, off, fs::DirReply(&sink_, c.get(), plus));
    EXPECT_TRUE(c->wait());
    return c;
  }
  // Every name in a directory, read in calls of `capacity` bytes.
  std::vector<std::string> list(fs::Ino ino, bool plus = false, size_t capacity = 4096) {
    std::vector<std::string> names;
    uint64_t off = 0;
    for (;;) {
      auto c = readdir(ino, off, plus, capacity);
      if (c->dir.empty()) break;
      for (auto& d : c->dir) names.push_back(d.name);
      off = c->dir.back().next_off;
    }
    return names;
  }
  int setxattr(fs::Ino ino, std::string_view name, std::string_view value, uint32_t flags = 0) {
    return status(*run([&](Call* c) { fs_->setxattr(ctx, ino, name, bytes(value), flags, reply<fs::StatusReply>(c)); }));
  }
  std::unique_ptr<Call> getxattr(fs::Ino ino, std::string_view name, uint32_t size) {
    return run([&](Call* c) { fs_->getxattr(ctx, ino, name, size, reply<fs::XattrReply>(c)); });
  }
  std::unique_ptr<Call> listxattr(fs::Ino ino, uint32_t size) {
    return run([&](Call* c) { fs_->listxattr(ctx, ino, size, reply<fs::XattrReply>(c)); });
  }
  int removexattr(fs::Ino ino, std::string_view name) {
    return status(*run([&](Call* c) { fs_->removexattr(ctx, ino, name, reply<fs::StatusReply>(c)); }));
  }
  fs::StatFs statfs() {
    return run([&](Call* c) { fs_->statfs(ctx, fs::kRootIno, reply<fs::StatfsReply>(c)); })->statfs;
  }
  int access(fs::Ino ino, uint32_t mask) {
    return status(*run([&](Call* c) { fs_->access(ctx, ino, mask, reply<fs::StatusReply>(c)); }));
  }

  fs::Context ctx{0, 0, 1};

 private:
  FakeSink sink_;
  std::unique_ptr<fs::FileSystem> fs_;
};

// The errno of a Result, 0 when it holds a value.
template <class T>
int err_of(const Result<T>& r) { return r ? 0 : r.error().value; }

}  // namespace zest::memfs::test
