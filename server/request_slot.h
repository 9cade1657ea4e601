// RequestSlot: the server's state for one request in flight.
//
// A worker owns one slot at a time and reuses it for every request it
// serves synchronously, so the common path allocates nothing. When a file
// system keeps the reply to answer later (async), the slot is detached: the
// worker takes another from the session's pool and the completing thread
// returns this one after sending. `state` decides who recycles it.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "zest/fs/reply.h"

namespace zest::server {

class Wire;

struct RequestSlot {
  enum State : int { kActive = 0, kDetached = 1, kCompleted = 2 };
  static constexpr int kMaxIov = 1024;  // UIO_MAXIOV

  std::atomic<uint64_t> unique{0};
  // Set by INTERRUPT to the unique it targets; matches only while `unique`
  // is that request, so a recycled slot is never seen as interrupted.
  std::atomic<uint64_t> interrupted_unique{0};
  std::atomic<int> state{kActive};
  uint32_t opcode = 0;
  uint64_t nodeid = 0;
  Wire* wire = nullptr;
  // Largest payload the kernel accepts for this reply (read size etc.).
  size_t max_out = 0;
  bool plus = false;  // READDIRPLUS
  // OPEN/CREATE/TMPFILE: the open(2) flags, so that the reply can choose
  // the kernel I/O mode that keeps the file coherent (encode_open).
  uint32_t open_flags = 0;
  // IOCTL: the command, and room for the fuse_ioctl_out that precedes the
  // reply's data.
  uint32_t ioctl_cmd = 0;
  alignas(8) std::byte ioctl_out[16];

  // Reply::on_interrupt: what to call when INTERRUPT targets this request.
  // Armed by the file system, disarmed when the reply is sent; intr_mu
  // orders arming against the interrupt (and interrupted_unique is set
  // under it), intr_armed spares the lock for the requests that never arm.
  std::mutex intr_mu;
  std::atomic<bool> intr_armed{false};
  fs::InterruptFn intr_fn = nullptr;
  void* intr_ctx = nullptr;
  uint64_t intr_cookie = 0;

  // Reply scratch (read buffers, directory listings), allocated on first use
  // and kept for the life of the slot.
  std::unique_ptr<std::byte[]> out;
  size_t out_cap = 0;
  size_t out_used = 0;
  // Inodes counted by readdirplus entries of this reply, undone if the
  // reply cannot be delivered.
  std::vector<uint64_t> counted;
  iovec iov[kMaxIov + 1];
};

}  // namespace zest::server
