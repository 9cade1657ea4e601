// Passthrough bookkeeping: the kernel's backing ids (FUSE_PASSTHROUGH,
// Linux 6.9+).
//
// A file system answers open/create with IoMode::Passthrough and a backing
// fd; the server registers that fd with the kernel (FUSE_DEV_IOC_BACKING_OPEN)
// and answers FOPEN_PASSTHROUGH with the id it got, after which the kernel
// reads and writes the backing file itself. The kernel wants every
// passthrough open of one inode to use the same backing file, so the table
// keeps ONE id per inode while any passthrough open of it exists, counted
// per (inode, fh) open, and closes it (FUSE_DEV_IOC_BACKING_CLOSE) on the
// last RELEASE. Open files keep their own reference in the kernel, so
// closing the id never disturbs them.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "zest/result.h"

namespace zest::server {

// The two ioctls, behind an interface so tests can fake the kernel.
class BackingControl {
 public:
  virtual ~BackingControl() = default;
  // Registers `fd`; returns the backing id.
  virtual Result<int32_t> open(int fd) = 0;
  virtual void close(int32_t id) = 0;
};

// The real one, on a /dev/fuse fd of the connection.
class DevBackingControl final : public BackingControl {
 public:
  explicit DevBackingControl(int fuse_fd) : fd_(fuse_fd) {}
  Result<int32_t> open(int fd) override;
  void close(int32_t id) override;

 private:
  int fd_;
};

// One registered backing id; closed when destroyed.
class BackingId {
 public:
  BackingId() = default;
  BackingId(BackingControl* ctl, int32_t id) : ctl_(ctl), id_(id) {}
  BackingId(BackingId&& o) noexcept
      : ctl_(std::exchange(o.ctl_, nullptr)), id_(std::exchange(o.id_, 0)) {}
  BackingId& operator=(BackingId&& o) noexcept {
    if (this != &o) {
      reset();
      ctl_ = std::exchange(o.ctl_, nullptr);
      id_ = std::exchange(o.id_, 0);
    }
    return *this;
  }
  BackingId(const BackingId&) = delete;
  BackingId& operator=(const BackingId&) = delete;
  ~BackingId() { reset(); }

  int32_t id() const { return id_; }
  void reset() {
    if (ctl_) ctl_->close(id_);
    ctl_ = nullptr;
    id_ = 0;
  }

 private:
  BackingControl* ctl_ = nullptr;
  int32_t id_ = 0;
};

class PassthroughTable {
 public:
  explicit PassthroughTable(BackingControl* ctl = nullptr) : ctl_(ctl) {}
  void set_control(BackingControl* ctl) { ctl_ = ctl; }
  bool has_control() const { return ctl_ != nullptr; }

  // A passthrough open of `ino` answered with handle `fh` and backing file
  // `fd`: the id to answer with (the inode's, registering `fd` if it has
  // none yet). An error means: answer without passthrough.
  Result<int32_t> open(uint64_t ino, uint64_t fh, int fd);
  // RELEASE of (ino, fh), or an open reply the kernel never took. Opens
  // that were not passthrough are ignored. Closes the id with the inode's
  // last passthrough open.
  void release(uint64_t ino, uint64_t fh);

  // For tests and statistics.
  size_t inodes() const;
  int32_t id_of(uint64_t ino) const;
  // Drops every id (the connection is gone).
  void clear();

 private:
  struct Inode {
    BackingId id;
    uint64_t opens = 0;
  };
  mutable std::mutex mu_;
  BackingControl* ctl_;
  std::unordered_map<uint64_t, Inode> inodes_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> opens_;  // (ino, fh) -> count
};

}  // namespace zest::server
