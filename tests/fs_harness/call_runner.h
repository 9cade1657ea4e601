// CallRunner: typed calls into one fs::FileSystem through a RecordingSink,
// the base of the per-file-system harnesses (tests/memfs/fake_sink.h,
// tests/pmfs/harness.h, tests/mirrorfs/harness.h). A harness makes the file
// system and attach()es it; the runner owns it and the sink.
//
// run() issues one request and waits for its reply: at most the limit the
// harness gave (0 for file systems that always answer before the operation
// returns, so a missing reply fails at once). The helpers return the
// completed Call, or a value / errno for the common cases.
//
// File handles come last and default to 0, for file systems that ignore
// them (memfs, pmfs); a harness whose file system needs them (mirrorfs)
// puts them where its tests expect them.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "zest/result.h"
#include "zest/fs/filesystem.h"
#include "zest/fs/reply.h"
#include "tests/fs_harness/call.h"
#include "tests/fs_harness/recording_sink.h"

namespace zest::fs_harness {

inline std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// The errno of a Result, 0 when it holds a value.
template <class T>
int err_of(const Result<T>& r) {
  return r ? 0 : r.error().value;
}

class CallRunner {
 public:
  CallRunner(const CallRunner&) = delete;
  CallRunner& operator=(const CallRunner&) = delete;

  fs::FileSystem& fs() { return *fs_; }
  RecordingSink& sink() { return sink_; }

  // Runs f(call) and waits for its reply.
  template <class F>
  std::unique_ptr<Call> run(F&& f) {
    auto c = std::make_unique<Call>();
    f(c.get());
    EXPECT_TRUE(c->wait(reply_limit_)) << "no reply";
    return c;
  }
  // Runs f(reply) with a reply of type R and waits for it.
  template <class R, class F>
  std::unique_ptr<Call> run(F&& f) {
    return run([&](Call* c) { f(reply<R>(c)); });
  }
  template <class R>
  R reply(Call* c) {
    return R(&sink_, c);
  }

  static Result<fs::Entry> entry(const Call& c) {
    if (c.kind == Call::kEntry || c.kind == Call::kCreate) return c.entry;
    return Errno(c.err ? c.err : -1);
  }
  static int status(const Call& c) {
    return c.kind == Call::kError ? c.err : 0;
  }

  // --- names ---------------------------------------------------------------
  Result<fs::Entry> lookup(fs::Ino parent, std::string_view name) {
    return entry(*run<fs::EntryReply>(
        [&](auto r) { fs_->lookup(ctx, parent, name, std::move(r)); }));
  }
  Result<fs::Entry> mkdir(fs::Ino parent, std::string_view name,
                          uint32_t mode = 0755) {
    return entry(*run<fs::EntryReply>(
        [&](auto r) { fs_->mkdir(ctx, parent, name, mode, std::move(r)); }));
  }
  Result<fs::Entry> mknod(fs::Ino parent, std::string_view name, uint32_t mode,
                          uint32_t rdev = 0) {
    return entry(*run<fs::EntryReply>([&](auto r) {
      fs_->mknod(ctx, parent, name, mode, rdev, std::move(r));
    }));
  }
  Result<fs::Entry> symlink(std::string_view target, fs::Ino parent,
                            std::string_view name) {
    return entry(*run<fs::EntryReply>([&](auto r) {
      fs_->symlink(ctx, target, parent, name, std::move(r));
    }));
  }
  Result<fs::Entry> link(fs::Ino ino, fs::Ino parent, std::string_view name) {
    return entry(*run<fs::EntryReply>(
        [&](auto r) { fs_->link(ctx, ino, parent, name, std::move(r)); }));
  }
  // create; the file stays open (*open says how) unless open is null, when
  // it is released again: a closed new file.
  Result<fs::Entry> create(fs::Ino parent, std::string_view name,
                           uint32_t mode = 0644,
                           uint32_t flags = O_RDWR | O_CREAT,
                           fs::OpenInfo* open = nullptr) {
    auto c = run<fs::CreateReply>([&](auto r) {
      fs_->create(ctx, parent, name, mode, flags, std::move(r));
    });
    if (c->kind == Call::kCreate) {
      if (open)
        *open = c->open;
      else
        release(c->entry.ino, c->open.fh);
    }
    return entry(*c);
  }
  Result<fs::Entry> create(fs::Ino parent, std::string_view name, uint32_t mode,
                           uint32_t flags, bool keep_open) {
    fs::OpenInfo open;
    return create(parent, name, mode, flags, keep_open ? &open : nullptr);
  }
  Result<fs::Entry> tmpfile(fs::Ino parent, uint32_t mode = 0600,
                            uint32_t flags = O_RDWR) {
    return entry(*run<fs::CreateReply>(
        [&](auto r) { fs_->tmpfile(ctx, parent, mode, flags, std::move(r)); }));
  }
  int unlink(fs::Ino parent, std::string_view name) {
    return status(*run<fs::StatusReply>(
        [&](auto r) { fs_->unlink(ctx, parent, name, std::move(r)); }));
  }
  int rmdir(fs::Ino parent, std::string_view name) {
    return status(*run<fs::StatusReply>(
        [&](auto r) { fs_->rmdir(ctx, parent, name, std::move(r)); }));
  }
  int rename(fs::Ino p, std::string_view n, fs::Ino np, std::string_view nn,
             uint32_t flags = 0) {
    return status(*run<fs::StatusReply>(
        [&](auto r) { fs_->rename(ctx, p, n, np, nn, flags, std::move(r)); }));
  }
  Result<std::string> readlink(fs::Ino ino) {
    return data_of(*run<fs::DataReply>(
        [&](auto r) { fs_->readlink(ctx, ino, std::move(r)); }));
  }
  // The kernel drops every reference it holds on ino and says so.
  void forget(fs::Ino ino) {
    sink_.drop_refs(ino);
    fs_->forget(ino);
  }

  // --- attributes ------------------------------------------------------------
  Result<fs::Attr> getattr(fs::Ino ino) {
    return attr_of(*run<fs::AttrReply>(
        [&](auto r) { fs_->getattr(ctx, ino, nullptr, std::move(r)); }));
  }
  Result<fs::Attr> setattr(fs::Ino ino, const fs::SetAttr& s) {
    return attr_of(*run<fs::AttrReply>(
        [&](auto r) { fs_->setattr(ctx, ino, s, std::move(r)); }));
  }
  Result<fs::Attr> truncate(fs::Ino ino, uint64_t size) {
    fs::SetAttr s;
    s.valid = fs::SetAttr::kSize;
    s.size = size;
    return setattr(ino, s);
  }
  int access(fs::Ino ino, uint32_t mask) {
    return status(*run<fs::StatusReply>(
        [&](auto r) { fs_->access(ctx, ino, mask, std::move(r)); }));
  }
  fs::StatFs statfs() {
    return run<fs::StatfsReply>(
               [&](auto r) { fs_->statfs(ctx, fs::kRootIno, std::move(r)); })
        ->statfs;
  }

  // --- files -----------------------------------------------------------------
  int open(fs::Ino ino, uint32_t flags = O_RDWR) {
    return status(*run<fs::OpenReply>(
        [&](auto r) { fs_->open(ctx, ino, flags, std::move(r)); }));
  }
  int release(fs::Ino ino, uint64_t fh = 0) {
    return status(*run<fs::StatusReply>(
        [&](auto r) { fs_->release(ctx, ino, fh, 0, std::move(r)); }));
  }
  Result<size_t> write(fs::Ino ino, uint64_t off, std::string_view data,
                       uint32_t flags = 0, uint64_t fh = 0) {
    return written_of(*run<fs::WriteReply>([&](auto r) {
      fs_->write(ctx, ino, fh, off, bytes(data), flags, std::move(r));
    }));
  }
  Result<std::string> read(fs::Ino ino, uint64_t off, uint32_t size,
                           uint64_t fh = 0) {
    return data_of(*run<fs::DataReply>(
        [&](auto r) { fs_->read(ctx, ino, fh, off, size, std::move(r)); }));
  }
  int fallocate(fs::Ino ino, uint32_t mode, uint64_t off, uint64_t len,
                uint64_t fh = 0) {
    return status(*run<fs::StatusReply>([&](auto r) {
      fs_->fallocate(ctx, ino, fh, mode, off, len, std::move(r));
    }));
  }
  Result<uint64_t> lseek(fs::Ino ino, uint64_t off, int whence,
                         uint64_t fh = 0) {
    auto c = run<fs::LseekReply>(
        [&](auto r) { fs_->lseek(ctx, ino, fh, off, whence, std::move(r)); });
    if (c->kind == Call::kLseek) return c->offset;
    return Errno(c->err);
  }
  Result<size_t> copy(fs::Ino in, uint64_t off_in, fs::Ino out,
                      uint64_t off_out, uint64_t len, uint32_t flags = 0) {
    return written_of(*run<fs::WriteReply>([&](auto r) {
      fs_->copy_file_range(ctx, in, 0, off_in, out, 0, off_out, len, flags,
                           std::move(r));
    }));
  }

  // --- directories -----------------------------------------------------------
  // One readdir of at most `capacity` bytes from `off`.
  std::unique_ptr<Call> readdir(fs::Ino ino, uint64_t off, bool plus = false,
                                size_t capacity = 4096, uint64_t fh = 0) {
    return run([&](Call* c) {
      c->dir_capacity = capacity;
      fs_->readdir(ctx, ino, fh, off, fs::DirReply(&sink_, c, plus));
    });
  }
  // Every name in a directory ("." and ".." too where the file system lists
  // them), read in calls of `capacity` bytes.
  std::vector<std::string> list(fs::Ino ino, bool plus = false,
                                size_t capacity = 4096, uint64_t fh = 0) {
    std::vector<std::string> names;
    uint64_t off = 0;
    for (;;) {
      auto c = readdir(ino, off, plus, capacity, fh);
      if (c->dir.empty()) break;
      for (auto& d : c->dir) names.push_back(d.name);
      off = c->dir.back().next_off;
    }
    return names;
  }

  // --- extended attributes ---------------------------------------------------
  int setxattr(fs::Ino ino, std::string_view name, std::string_view value,
               uint32_t flags = 0, uint32_t ext_flags = 0) {
    return status(*run<fs::StatusReply>([&](auto r) {
      fs_->setxattr(ctx, ino, name, bytes(value), flags, ext_flags,
                    std::move(r));
    }));
  }
  std::unique_ptr<Call> getxattr(fs::Ino ino, std::string_view name,
                                 uint32_t size) {
    return run<fs::XattrReply>(
        [&](auto r) { fs_->getxattr(ctx, ino, name, size, std::move(r)); });
  }
  std::unique_ptr<Call> listxattr(fs::Ino ino, uint32_t size) {
    return run<fs::XattrReply>(
        [&](auto r) { fs_->listxattr(ctx, ino, size, std::move(r)); });
  }
  int removexattr(fs::Ino ino, std::string_view name) {
    return status(*run<fs::StatusReply>(
        [&](auto r) { fs_->removexattr(ctx, ino, name, std::move(r)); }));
  }

  fs::Context ctx{0, 0, 1};

 protected:
  // `reply_limit`: how long run() waits for a reply.
  explicit CallRunner(std::chrono::milliseconds reply_limit)
      : reply_limit_(reply_limit) {}
  ~CallRunner() = default;

  // Destroys the file system held (it answers what it still holds), then
  // holds `fs`, if any, and connects it to the sink.
  void attach(std::unique_ptr<fs::FileSystem> fs) {
    fs_.reset();
    fs_ = std::move(fs);
    if (fs_) fs_->init(&sink_);
  }

 private:
  static Result<fs::Attr> attr_of(const Call& c) {
    if (c.kind == Call::kAttr) return c.attr;
    return Errno(c.err);
  }
  static Result<size_t> written_of(const Call& c) {
    if (c.kind == Call::kWrite) return c.written;
    return Errno(c.err);
  }
  static Result<std::string> data_of(const Call& c) {
    if (c.kind == Call::kData) return c.data;
    return Errno(c.err);
  }

  std::chrono::milliseconds reply_limit_;
  RecordingSink sink_;  // outlives fs_, which may answer as it goes
  std::unique_ptr<fs::FileSystem> fs_;
};

}  // namespace zest::fs_harness
