// PmFsHarness: drives pmfs through a recording fake ReplySink (no kernel),
// on a pool file in a temporary directory, and can close and reopen the
// pool (remount) to check what persisted.
//
// The FakeSink follows tests/memfs/fake_sink.h: one Call per request, and
// the kernel's references counted as the server does (fs::KernelRefs).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "fs/filesystem.h"
#include "pmfs/format.h"
#include "pmfs/fsck.h"
#include "pmfs/pmfs.h"
#include "tests/pmem/temp_dir.h"

namespace zest::pmfs::test {

struct Call {
  enum Kind { kNone, kError, kEntry, kCreate, kAttr, kOpen, kWrite, kData, kXattrSize,
              kStatfs, kLseek, kDir };
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
  bool done = false;
};

class FakeSink : public fs::ReplySink, public fs::KernelRefs {
 public:
  bool referenced(fs::Ino ino) const override {
    std::lock_guard lock(mu_);
    auto it = refs_.find(ino);
    return it != refs_.end() && it->second > 0;
  }
  void drop_refs(fs::Ino ino) {
    std::lock_guard lock(mu_);
    refs_.erase(ino);
  }
  void drop_all() {
    std::lock_guard lock(mu_);
    refs_.clear();
  }
  void add_ref(fs::Ino ino) {
    std::lock_guard lock(mu_);
    ++refs_[ino];
  }
  void reply_error(fs::RequestToken t, int err) override {
    Call& c = call(t);
    c.kind = err ? Call::kError : Call::kNone;
    c.err = err;
  }
  void reply_entry(fs::RequestToken t, const fs::Entry& e) override {
    add_ref(e.ino);
    Call& c = call(t);
    c.kind = Call::kEntry;
    c.entry = e;
  }
  void reply_create(fs::RequestToken t, const fs::Entry& e, const fs::OpenInfo& o) override {
    add_ref(e.ino);
    Call& c = call(t);
    c.kind = Call::kCreate;
    c.entry = e;
    c.open = o;
  }
  void reply_attr(fs::RequestToken t, const fs::Attr& a, double) override {
    Call& c = call(t);
    c.kind = Call::kAttr;
    c.attr = a;
  }
  void reply_open(fs::RequestToken t, const fs::OpenInfo& o) override {
    Call& c = call(t);
    c.kind = Call::kOpen;
    c.open = o;
  }
  void reply_write(fs::RequestToken t, size_t n) override {
    Call& c = call(t);
    c.kind = Call::kWrite;
    c.written = n;
  }
  void reply_data(fs::RequestToken t, std::span<const iovec> iov) override {
    Call& c = call(t);
    c.kind = Call::kData;
    c.iov_count = iov.size();
    for (const iovec& v : iov) c.data.append(static_cast<const char*>(v.iov_base), v.iov_len);
  }
  void reply_xattr_size(fs::RequestToken t, size_t n) override {
    Call& c = call(t);
    c.kind = Call::kXattrSize;
    c.xattr_size = n;
  }
  void reply_statfs(fs::RequestToken t, const fs::StatFs& s) override {
    Call& c = call(t);
    c.kind = Call::kStatfs;
    c.statfs = s;
  }
  void reply_lseek(fs::RequestToken t, uint64_t off) override {
    Call& c = call(t);
    c.kind = Call::kLseek;
    c.offset = off;
  }
  std::span<std::byte> reply_buffer(fs::RequestToken t, size_t size) override {
    Call& c = *static_cast<Call*>(t);
    c.buffer.resize(size);
    return c.buffer;
  }
  bool dir_add(fs::RequestToken t, std::string_view name, fs::Ino ino, uint32_t type,
               uint64_t next_off, const fs::Entry* plus) override {
    Call& c = *static_cast<Call*>(t);
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
  void reply_dir(fs::RequestToken t) override { call(t).kind = Call::kDir; }
  bool interrupted(fs::RequestToken) const override { return false; }

 private:
  static Call& call(fs::RequestToken t) {
    Call& c = *static_cast<Call*>(t);
    EXPECT_FALSE(c.done) << "replied twice";
    c.done = true;
    return c;
  }
  mutable std::mutex mu_;
  std::map<fs::Ino, uint64_t> refs_;
};

inline std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

template <class T>
int err_of(const Result<T>& r) {
  return r ? 0 : r.error().value;
}

// One pool file and the PmFs on it. Replies are synchronous in pmfs.
class PmFsHarness {
 public:
  explicit PmFsHarness(uint64_t pool_size = 64 << 20, MkfsOptions mkfs_opts = default_mkfs())
      : path_(dir_.file("pool")) {
    std::string why;
    auto r = mkfs(path_, pool_size, mkfs_opts, &why);
    EXPECT_TRUE(r) << why;
    mount();
  }
  static MkfsOptions default_mkfs() {
    MkfsOptions o;
    o.root_mode = 01777;
    return o;
  }

  // (Re)opens the pool. False (with why_) when open refuses it.
  bool mount(const Options& o = {}) {
    fs_.reset();
    sink_.drop_all();
    auto r = pmfs::open(path_, o, &why_);
    if (!r) {
      last_open_error_ = r.error().value;
      return false;
    }
    fs_ = std::move(*r);
    fs_->init(&sink_);
    return true;
  }
  // Closes the file system (as at unmount or a crash: pmfs writes nothing
  // on close) and opens the pool again.
  bool remount(const Options& o = {}) { return mount(o); }
  void close() { fs_.reset(); }

  PmFs& pm() { return *fs_; }
  fs::FileSystem& fs() { return *fs_; }
  FakeSink& sink() { return sink_; }
  const std::string& path() const { return path_; }
  const std::string& why() const { return why_; }
  int last_open_error() const { return last_open_error_; }

  // fsck of the pool as it lies now (read-only).
  std::vector<std::string> fsck_errors() {
    FsckOptions o;
    std::string why;
    auto r = pmfs::fsck(path_, o, &why);
    if (!r) return {"fsck could not run: " + why};
    std::vector<std::string> all = r->errors;
    return all;
  }

  template <class F>
  std::unique_ptr<Call> run(F&& f) {
    auto c = std::make_unique<Call>();
    f(c.get());
    EXPECT_TRUE(c->done) << "no reply";
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
  Result<fs::Entry> create(fs::Ino parent, std::string_view name, uint32_t mode = 0644,
                           uint32_t flags = O_RDWR | O_CREAT, bool keep_open = false) {
    auto c = run([&](Call* c) { fs_->create(ctx, parent, name, mode, flags, reply<fs::CreateReply>(c)); });
    if (c->kind == Call::kCreate && !keep_open) release(c->entry.ino);
    return entry(*c);
  }
  Result<fs::Entry> tmpfile(fs::Ino parent, uint32_t mode = 0600, uint32_t flags = O_RDWR) {
    return entry(*run([&](Call* c) { fs_->tmpfile(ctx, parent, mode, flags, reply<fs::CreateReply>(c)); }));
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
  Result<fs::Attr> truncate(fs::Ino ino, uint64_t size) {
    fs::SetAttr s;
    s.valid = fs::SetAttr::kSize;
    s.size = size;
    return setattr(ino, s);
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
  Result<std::string> readlink(fs::Ino ino) {
    auto c = run([&](Call* c) { fs_->readlink(ctx, ino, reply<fs::DataReply>(c)); });
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
  Result<size_t> copy(fs::Ino in, uint64_t off_in, fs::Ino out, uint64_t off_out, uint64_t len) {
    auto c = run([&](Call* c) {
      fs_->copy_file_range(ctx, in, 0, off_in, out, 0, off_out, len, 0, reply<fs::WriteReply>(c));
    });
    if (c->kind == Call::kWrite) return c->written;
    return Errno(c->err);
  }
  std::unique_ptr<Call> readdir(fs::Ino ino, uint64_t off, bool plus = false, size_t capacity = 4096) {
    auto c = std::make_unique<Call>();
    c->dir_capacity = capacity;
    fs_->readdir(ctx, ino, 0, off, fs::DirReply(&sink_, c.get(), plus));
    EXPECT_TRUE(c->done);
    return c;
  }
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
  Result<std::string> getxattr(fs::Ino ino, std::string_view name, uint32_t size = 1 << 17) {
    auto c = run([&](Call* c) { fs_->getxattr(ctx, ino, name, size, reply<fs::XattrReply>(c)); });
    if (c->kind == Call::kData) return c->data;
    if (c->kind == Call::kXattrSize) return std::to_string(c->xattr_size);
    return Errno(c->err);
  }
  Result<std::string> listxattr(fs::Ino ino) {
    auto c = run([&](Call* c) { fs_->listxattr(ctx, ino, 1 << 16, reply<fs::XattrReply>(c)); });
    if (c->kind == Call::kData) return c->data;
    return Errno(c->err);
  }
  int removexattr(fs::Ino ino, std::string_view name) {
    return status(*run([&](Call* c) { fs_->removexattr(ctx, ino, name, reply<fs::StatusReply>(c)); }));
  }
  fs::StatFs statfs() {
    return run([&](Call* c) { fs_->statfs(ctx, fs::kRootIno, reply<fs::StatfsReply>(c)); })->statfs;
  }

  fs::Context ctx{0, 0, 1};

 private:
  pmem::testing::TempDir dir_;
  std::string path_;
  std::string why_;
  int last_open_error_ = 0;
  FakeSink sink_;
  std::unique_ptr<PmFs> fs_;
};

}  // namespace zest::pmfs::test
