// MirrorHarness: drives MirrorFs without a kernel, on a fresh backing
// directory in /dev/shm, through a ReplySink that records each answer and
// counts the references handed to the "kernel" as the server does.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "fs/filesystem.h"
#include "mirrorfs/mirror_fs.h"
#include "mirrorfs/mirrorfs.h"

namespace zest::mirrorfs::test {

// One request and what it was answered (replies here are synchronous).
struct Call {
  enum Kind { kNone, kError, kEntry, kCreate, kAttr, kOpen, kWrite, kData,
              kXattrSize, kStatfs, kLseek, kDir };
  struct DirEnt {
    std::string name;
    fs::Ino ino = 0;
    uint32_t type = 0;
    uint64_t next_off = 0;
    bool plus = false;
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
  size_t xattr_size = 0;
  fs::StatFs statfs;
  uint64_t offset = 0;
  std::vector<DirEnt> dir;
  size_t dir_bytes = 0;
  size_t dir_capacity = 4096;
  std::vector<std::byte> buffer;
};

class RecordingSink : public fs::ReplySink, public fs::KernelRefs {
 public:
  bool referenced(fs::Ino ino) const override {
    std::lock_guard l(mu_);
    auto it = refs_.find(ino);
    return it != refs_.end() && it->second > 0;
  }
  uint64_t refs(fs::Ino ino) const {
    std::lock_guard l(mu_);
    auto it = refs_.find(ino);
    return it == refs_.end() ? 0 : it->second;
  }
  void drop_refs(fs::Ino ino) {
    std::lock_guard l(mu_);
    refs_.erase(ino);
  }
  void reply_error(fs::RequestToken t, int err) override {
    done(t).kind = err ? Call::kError : Call::kNone;
    call(t).err = err;
  }
  void reply_entry(fs::RequestToken t, const fs::Entry& e) override {
    add_ref(e.ino);
    done(t).kind = Call::kEntry;
    call(t).entry = e;
  }
  void reply_create(fs::RequestToken t, const fs::Entry& e,
                    const fs::OpenInfo& o) override {
    add_ref(e.ino);
    done(t).kind = Call::kCreate;
    call(t).entry = e;
    call(t).open = o;
  }
  void reply_attr(fs::RequestToken t, const fs::Attr& a, double) override {
    done(t).kind = Call::kAttr;
    call(t).attr = a;
  }
  void reply_open(fs::RequestToken t, const fs::OpenInfo& o) override {
    done(t).kind = Call::kOpen;
    call(t).open = o;
  }
  void reply_write(fs::RequestToken t, size_t n) override {
    done(t).kind = Call::kWrite;
    call(t).written = n;
  }
  void reply_data(fs::RequestToken t, std::span<const iovec> iov) override {
    done(t).kind = Call::kData;
    for (const iovec& v : iov)
      call(t).data.append(static_cast<const char*>(v.iov_base), v.iov_len);
  }
  void reply_xattr_size(fs::RequestToken t, size_t n) override {
    done(t).kind = Call::kXattrSize;
    call(t).xattr_size = n;
  }
  void reply_statfs(fs::RequestToken t, const fs::StatFs& s) override {
    done(t).kind = Call::kStatfs;
    call(t).statfs = s;
  }
  void reply_lseek(fs::RequestToken t, uint64_t off) override {
    done(t).kind = Call::kLseek;
    call(t).offset = off;
  }
  std::span<std::byte> reply_buffer(fs::RequestToken t, size_t size) override {
    call(t).buffer.resize(size);
    return call(t).buffer;
  }
  bool dir_add(fs::RequestToken t, std::string_view name, fs::Ino ino,
               uint32_t type, uint64_t next_off, const fs::Entry* plus) override {
    Call& c = call(t);
    size_t rec = (24 + name.size() + 7) & ~size_t{7};
    if (plus) rec += 128;
    if (c.dir_bytes + rec > c.dir_capacity) return false;
    c.dir_bytes += rec;
    Call::DirEnt d{std::string(name), ino, type, next_off, plus != nullptr, {}};
    if (plus) {
      d.entry = *plus;
      add_ref(plus->ino);
    }
    c.dir.push_back(std::move(d));
    return true;
  }
  void reply_dir(fs::RequestToken t) override { done(t).kind = Call::kDir; }
  bool interrupted(fs::RequestToken) const override { return false; }

 private:
  static Call& call(fs::RequestToken t) { return *static_cast<Call*>(t); }
  static Call& done(fs::RequestToken t) {
    ++call(t).completions;
    return call(t);
  }
  void add_ref(fs::Ino ino) {
    std::lock_guard l(mu_);
    ++refs_[ino];
  }
  mutable std::mutex mu_;
  std::map<fs::Ino, uint64_t> refs_;
};

inline std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

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

class MirrorHarness {
 public:
  explicit MirrorHarness(fs::IoMode mode = fs::IoMode::Passthrough) {
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
    fs_ = std::move(*made);
    fs_->init(&sink_);
  }
  ~MirrorHarness() {
    fs_.reset();
    std::string cmd = "rm -rf '" + backing_ + "'";
    EXPECT_EQ(::system(cmd.c_str()), 0);
  }

  fs::FileSystem& fs() { return *fs_; }
  MirrorFs& mirror() { return static_cast<MirrorFs&>(*fs_); }
  RecordingSink& sink() { return sink_; }
  // A path in the backing directory.
  std::string B(const std::string& rel) const { return backing_ + "/" + rel; }

  template <class R, class F>
  std::unique_ptr<Call> run(F&& f) {
    auto c = std::make_unique<Call>();
    f(R(&sink_, c.get()));
    EXPECT_EQ(c->completions, 1);
    return c;
  }
  static Result<fs::Entry> entry(const Call& c) {
    if (c.kind == Call::kEntry || c.kind == Call::kCreate) return c.entry;
    return Errno(c.err ? c.err : -1);
  }
  static int status(const Call& c) { return c.kind == Call::kError ? c.err : 0; }

  Result<fs::Entry> lookup(fs::Ino p, std::string_view n) {
    return entry(*run<fs::EntryReply>([&](auto r) { fs_->lookup(ctx, p, n, std::move(r)); }));
  }
  Result<fs::Entry> mkdir(fs::Ino p, std::string_view n, uint32_t mode = 0755) {
    return entry(*run<fs::EntryReply>([&](auto r) { fs_->mkdir(ctx, p, n, mode, std::move(r)); }));
  }
  Result<fs::Entry> mknod(fs::Ino p, std::string_view n, uint32_t mode, uint32_t rdev = 0) {
    return entry(*run<fs::EntryReply>([&](auto r) { fs_->mknod(ctx, p, n, mode, rdev, std::move(r)); }));
  }
  Result<fs::Entry> symlink(std::string_view t, fs::Ino p, std::string_view n) {
    return entry(*run<fs::EntryReply>([&](auto r) { fs_->symlink(ctx, t, p, n, std::move(r)); }));
  }
  Result<fs::Entry> link(fs::Ino i, fs::Ino p, std::string_view n) {
    return entry(*run<fs::EntryReply>([&](auto r) { fs_->link(ctx, i, p, n, std::move(r)); }));
  }
  // create; the open stays open (its fh in *fh) unless fh is null.
  Result<fs::Entry> create(fs::Ino p, std::string_view n, uint32_t mode = 0644,
                           uint32_t flags = O_RDWR | O_CREAT, fs::OpenInfo* open = nullptr) {
    auto c = run<fs::CreateReply>([&](auto r) { fs_->create(ctx, p, n, mode, flags, std::move(r)); });
    if (c->kind == Call::kCreate) {
      if (open) *open = c->open;
      else release(c->entry.ino, c->open.fh);
    }
    return entry(*c);
  }
  Result<fs::OpenInfo> open(fs::Ino i, uint32_t flags = O_RDWR) {
    auto c = run<fs::OpenReply>([&](auto r) { fs_->open(ctx, i, flags, std::move(r)); });
    if (c->kind == Call::kOpen) return c->open;
    return Errno(c->err);
  }
  int release(fs::Ino i, uint64_t fh) {
    return status(*run<fs::StatusReply>([&](auto r) { fs_->release(ctx, i, fh, 0, std::move(r)); }));
  }
  int unlink(fs::Ino p, std::string_view n) {
    return status(*run<fs::StatusReply>([&](auto r) { fs_->unlink(ctx, p, n, std::move(r)); }));
  }
  int rmdir(fs::Ino p, std::string_view n) {
    return status(*run<fs::StatusReply>([&](auto r) { fs_->rmdir(ctx, p, n, std::move(r)); }));
  }
  int rename(fs::Ino p, std::string_view n, fs::Ino np, std::string_view nn, uint32_t flags = 0) {
    return status(*run<fs::StatusReply>([&](auto r) { fs_->rename(ctx, p, n, np, nn, flags, std::move(r)); }));
  }
  Result<fs::Attr> getattr(fs::Ino i) {
    auto c = run<fs::AttrReply>([&](auto r) { fs_->getattr(ctx, i, nullptr, std::move(r)); });
    if (c->kind == Call::kAttr) return c->attr;
    return Errno(c->err);
  }
  Result<fs::Attr> setattr(fs::Ino i, const fs::SetAttr& s) {
    auto c = run<fs::AttrReply>([&](auto r) { fs_->setattr(ctx, i, s, std::move(r)); });
    if (c->kind == Call::kAttr) return c->attr;
    return Errno(c->err);
  }
  Result<std::string> readlink(fs::Ino i) {
    auto c = run<fs::DataReply>([&](auto r) { fs_->readlink(ctx, i, std::move(r)); });
    if (c->kind == Call::kData) return c->data;
    return Errno(c->err);
  }
  Result<size_t> write(fs::Ino i, uint64_t fh, uint64_t off, std::string_view d) {
    auto c = run<fs::WriteReply>([&](auto r) { fs_->write(ctx, i, fh, off, bytes(d), 0, std::move(r)); });
    if (c->kind == Call::kWrite) return c->written;
    return Errno(c->err);
  }
  Result<std::string> read(fs::Ino i, uint64_t fh, uint64_t off, uint32_t size) {
    auto c = run<fs::DataReply>([&](auto r) { fs_->read(ctx, i, fh, off, size, std::move(r)); });
    if (c->kind == Call::kData) return c->data;
    return Errno(c->err);
  }
  Result<uint64_t> lseek(fs::Ino i, uint64_t fh, uint64_t off, int whence) {
    auto c = run<fs::LseekReply>([&](auto r) { fs_->lseek(ctx, i, fh, off, whence, std::move(r)); });
    if (c->kind == Call::kLseek) return c->offset;
    return Errno(c->err);
  }
  int fallocate(fs::Ino i, uint64_t fh, uint32_t mode, uint64_t off, uint64_t len) {
    return status(*run<fs::StatusReply>([&](auto r) { fs_->fallocate(ctx, i, fh, mode, off, len, std::move(r)); }));
  }
  uint64_t opendir(fs::Ino i) {
    auto c = run<fs::OpenReply>([&](auto r) { fs_->opendir(ctx, i, 0, std::move(r)); });
    EXPECT_EQ(c->kind, Call::kOpen);
    return c->open.fh;
  }
  void releasedir(fs::Ino i, uint64_t fh) {
    run<fs::StatusReply>([&](auto r) { fs_->releasedir(ctx, i, fh, std::move(r)); });
  }
  std::unique_ptr<Call> readdir(fs::Ino i, uint64_t fh, uint64_t off, bool plus,
                                size_t capacity = 4096) {
    auto c = std::make_unique<Call>();
    c->dir_capacity = capacity;
    fs_->readdir(ctx, i, fh, off, fs::DirReply(&sink_, c.get(), plus));
    EXPECT_EQ(c->completions, 1);
    return c;
  }
  // Every name other than . and .., read in calls of `capacity` bytes.
  std::vector<std::string> list(fs::Ino i, bool plus = false, size_t capacity = 4096) {
    uint64_t fh = opendir(i);
    std::vector<std::string> names;
    uint64_t off = 0;
    for (;;) {
      auto c = readdir(i, fh, off, plus, capacity);
      if (c->dir.empty()) break;
      for (auto& d : c->dir)
        if (d.name != "." && d.name != "..") names.push_back(d.name);
      off = c->dir.back().next_off;
    }
    releasedir(i, fh);
    return names;
  }
  int setxattr(fs::Ino i, std::string_view n, std::string_view v, uint32_t flags = 0) {
    return status(*run<fs::StatusReply>([&](auto r) { fs_->setxattr(ctx, i, n, bytes(v), flags, std::move(r)); }));
  }
  std::unique_ptr<Call> getxattr(fs::Ino i, std::string_view n, uint32_t size) {
    return run<fs::XattrReply>([&](auto r) { fs_->getxattr(ctx, i, n, size, std::move(r)); });
  }
  std::unique_ptr<Call> listxattr(fs::Ino i, uint32_t size) {
    return run<fs::XattrReply>([&](auto r) { fs_->listxattr(ctx, i, size, std::move(r)); });
  }
  void forget(fs::Ino i) {
    sink_.drop_refs(i);
    fs_->forget(i);
  }

  fs::Context ctx{0, 0, 1};

 private:
  std::string backing_;
  RecordingSink sink_;
  std::unique_ptr<fs::FileSystem> fs_;
};

template <class T>
int err_of(const Result<T>& r) { return r ? 0 : r.error().value; }

}  // namespace zest::mirrorfs::test
