// RecordingSink: the server's side of fs::ReplySink for tests. It records
// each reply into the request's Call (the RequestToken points at it) and
// counts the references handed to the "kernel" the way the server does
// (fs::KernelRefs): one per entry sent by lookup, create, mkdir, ... and
// per readdirplus entry other than "." and "..", so inode lifetime can be
// tested.
//
// Replies may come from any thread; each Call is completed under its own
// mutex, the reference counts under the sink's. Data answered from a file
// (reply_data_fd) takes ReplySink's default: read into reply_buffer(), then
// reply_data().
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "zest/fs/filesystem.h"
#include "zest/fs/reply.h"
#include "tests/fs_harness/call.h"

namespace zest::fs_harness {

class RecordingSink : public fs::ReplySink, public fs::KernelRefs {
 public:
  // --- references the "kernel" holds ---------------------------------------
  bool referenced(fs::Ino ino) const override { return refs(ino) > 0; }
  uint64_t refs(fs::Ino ino) const {
    std::lock_guard lock(refs_mu_);
    auto it = refs_.find(ino);
    return it == refs_.end() ? 0 : it->second;
  }
  void add_ref(fs::Ino ino) {
    std::lock_guard lock(refs_mu_);
    ++refs_[ino];
  }
  // The kernel forgets every reference it holds on ino.
  void drop_refs(fs::Ino ino) {
    std::lock_guard lock(refs_mu_);
    refs_.erase(ino);
  }
  // ... on every inode (the connection ended).
  void drop_all() {
    std::lock_guard lock(refs_mu_);
    refs_.clear();
  }

  // --- fs::ReplySink -------------------------------------------------------
  void reply_error(fs::RequestToken t, int err) override {
    finish(t, [&](Call& c) {
      c.kind = err ? Call::kError : Call::kNone;
      c.err = err;
    });
  }
  void reply_entry(fs::RequestToken t, const fs::Entry& e) override {
    add_ref(e.ino);
    record(t, Call::kEntry, &Call::entry, e);
  }
  void reply_create(fs::RequestToken t, const fs::Entry& e,
                    const fs::OpenInfo& o) override {
    add_ref(e.ino);
    finish(t, [&](Call& c) {
      c.kind = Call::kCreate;
      c.entry = e;
      c.open = o;
    });
  }
  void reply_attr(fs::RequestToken t, const fs::Attr& a, double) override {
    record(t, Call::kAttr, &Call::attr, a);
  }
  void reply_open(fs::RequestToken t, const fs::OpenInfo& o) override {
    record(t, Call::kOpen, &Call::open, o);
  }
  void reply_write(fs::RequestToken t, size_t n) override {
    record(t, Call::kWrite, &Call::written, n);
  }
  void reply_data(fs::RequestToken t, std::span<const iovec> iov) override {
    finish(t, [&](Call& c) {
      c.kind = Call::kData;
      c.iov_count = iov.size();
      for (const iovec& v : iov)
        c.data.append(static_cast<const char*>(v.iov_base), v.iov_len);
    });
  }
  void reply_xattr_size(fs::RequestToken t, size_t n) override {
    record(t, Call::kXattrSize, &Call::xattr_size, n);
  }
  void reply_statfs(fs::RequestToken t, const fs::StatFs& s) override {
    record(t, Call::kStatfs, &Call::statfs, s);
  }
  void reply_lseek(fs::RequestToken t, uint64_t off) override {
    record(t, Call::kLseek, &Call::offset, off);
  }
  std::span<std::byte> reply_buffer(fs::RequestToken t, size_t size) override {
    Call& c = call(t);
    c.buffer.resize(size);
    return c.buffer;
  }
  bool dir_add(fs::RequestToken t, std::string_view name, fs::Ino ino,
               uint32_t type, uint64_t next_off,
               const fs::Entry* plus) override {
    Call& c = call(t);
    // Sizes as the kernel's fuse_dirent / fuse_direntplus records.
    size_t rec = (24 + name.size() + 7) & ~size_t{7};
    if (plus) rec += 128;
    if (c.dir_bytes + rec > c.dir_capacity) return false;
    c.dir_bytes += rec;
    Call::DirEnt d{std::string(name), ino, type, next_off};
    if (plus) {
      d.plus = d.has_entry = true;
      d.entry = *plus;
      if (name != "." && name != "..") add_ref(plus->ino);
    }
    c.dir.push_back(std::move(d));
    return true;
  }
  void reply_dir(fs::RequestToken t) override {
    finish(t, [&](Call& c) { c.kind = Call::kDir; });
  }
  bool interrupted(fs::RequestToken t) const override {
    return call(t).interrupted;
  }

 private:
  static Call& call(fs::RequestToken t) { return *static_cast<Call*>(t); }

  // Records the reply and completes the call (wakes its waiters).
  template <class F>
  static void finish(fs::RequestToken t, F&& fill) {
    Call& c = call(t);
    std::lock_guard lock(c.mu);
    if (c.completions > 0) ADD_FAILURE() << "replied twice";
    fill(c);
    ++c.completions;
    c.replied_on = std::this_thread::get_id();
    c.done = true;
    c.cv.notify_all();
  }
  // A reply of one value: completes the call as `kind` with `field` = value.
  template <class T>
  static void record(fs::RequestToken t, Call::Kind kind, T Call::*field,
                     const T& value) {
    finish(t, [&](Call& c) {
      c.kind = kind;
      c.*field = value;
    });
  }

  mutable std::mutex refs_mu_;
  std::map<fs::Ino, uint64_t> refs_;
};

}  // namespace zest::fs_harness
