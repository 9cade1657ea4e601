// UringQueue: one io_uring through which one worker thread serves one or
// more of the kernel's per-CPU FUSE queues (FUSE over io_uring, protocol
// 7.42+, FUSE_OVER_IO_URING).
//
// The kernel keeps one queue per possible CPU and hands a request to the
// queue of the CPU the caller runs on. Each queue is fed by ring entries: a
// pair of buffers registered once with FUSE_IO_URING_CMD_REGISTER,
//   iov[0] a fuse_uring_req_header: in_out (fuse_in_header in, fuse_out_header
//          back), op_in (the opcode's fixed struct), ring_ent_in_out
//          (commit id, payload size);
//   iov[1] the payload: names and write data in, every reply argument out.
// The command of an entry completes when the kernel has put a request into
// it; the entry then belongs to us until we answer with COMMIT_AND_FETCH,
// which hands the reply over and the entry back in one step. So a reply may
// wait (async) without holding the worker: only the entry stays out.
//
// Every buffer is allocated and registered once, when the queue is made;
// nothing is allocated per request. The ring uses 128-byte SQEs (the
// command area holds fuse_uring_cmd_req) and is created and driven only by
// the thread that serves it (IORING_SETUP_SINGLE_ISSUER, task work deferred
// to our own waits). wake() is the one call any thread may make.
//
// This layer knows bytes and buffers; what a request means is server/'s.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "abi/fuse_abi.h"
#include "base/fd.h"
#include "zest/result.h"

struct io_uring;
struct io_uring_sqe;

namespace zest::transport {

// Whether this kernel can carry FUSE over io_uring.
enum class UringSupport {
  kEnabled,   // /sys/module/fuse/parameters/enable_uring is Y
  kDisabled,  // the parameter exists but is N (root may turn it on)
  kAbsent,    // kernel built without CONFIG_FUSE_IO_URING (or no fuse module)
};
UringSupport uring_support();
// Writes Y to the module parameter (needs root).
Result<void> enable_uring();

// CPUs the kernel counts queues for (num_possible_cpus) and those online.
unsigned possible_cpus();
std::vector<unsigned> online_cpus();

class UringQueue {
 public:
  struct Entry {
    abi::fuse_uring_req_header* header = nullptr;
    std::byte* payload = nullptr;
    size_t payload_size = 0;
    uint16_t qid = 0;
    iovec iov[2]{};
    void* owner = nullptr;  // the server's per-entry state
  };

  // What the worker is told about completions.
  class Handler {
   public:
    virtual ~Handler() = default;
    // An entry's command completed: res 0 means it holds a request; a
    // negative errno means the command failed (-ENOTCONN/-ECONNABORTED/
    // -ENODEV: the connection is gone) and the entry is out of service.
    virtual void on_entry(Entry* e, int res) = 0;
    // Another thread called wake().
    virtual void on_wake() = 0;
  };

  // Makes the ring and the buffers: `depth` entries for each qid in
  // `qids`, each with a payload buffer of `payload_size` bytes. Call on the
  // thread that will serve the queue.
  static Result<std::unique_ptr<UringQueue>> create(int fuse_fd,
                                                    std::span<const uint16_t> qids,
                                                    unsigned depth,
                                                    size_t payload_size);
  ~UringQueue();
  UringQueue(const UringQueue&) = delete;
  UringQueue& operator=(const UringQueue&) = delete;

  std::span<Entry> entries() { return {entries_.data(), entries_.size()}; }

  // Queues REGISTER for every entry (sent by the next run()).
  void register_all();
  // Queues COMMIT_AND_FETCH for an entry whose buffers hold the reply to
  // the request with `commit_id` (ring_ent_in_out.commit_id as received).
  void commit(Entry* e, uint64_t commit_id);
  // Queues a re-REGISTER of an entry whose command was refused with a
  // transient error (EAGAIN, EINTR).
  void reregister(Entry* e);

  // Submits what is queued, then (when `wait`) sleeps until at least one
  // completion, and hands every completion to `h`. Errors are the ring's
  // own (EBADF...), never a request's.
  Result<void> run(Handler& h, bool wait);

  // Any thread: makes the serving thread return from run() and call
  // Handler::on_wake.
  void wake();

  // Commands the kernel holds (registered or committed, not yet
  // completed).
  unsigned in_kernel() const { return in_kernel_; }

 private:
  UringQueue() = default;
  io_uring_sqe* next_sqe();
  void prep_cmd(Entry* e, uint32_t cmd_op, uint64_t commit_id);
  void arm_wake();

  int fuse_fd_ = -1;
  std::unique_ptr<io_uring> ring_;
  bool ring_ready_ = false;
  UniqueFd wake_fd_;
  uint64_t wake_buf_ = 0;
  bool wake_armed_ = false;
  void* region_ = nullptr;  // headers and payloads, one mapping
  size_t region_size_ = 0;
  std::vector<Entry> entries_;
  unsigned in_kernel_ = 0;
};

}  // namespace zest::transport
