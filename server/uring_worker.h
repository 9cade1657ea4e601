// UringWorker: one thread serving one or more of the kernel's per-CPU FUSE
// queues through a transport::UringQueue.
//
// The worker is pinned to the CPUs of its queues (the kernel puts a request
// on the queue of the caller's CPU, so the worker that answers runs where
// the caller waits). With fewer workers than queues a worker owns several
// queues: its one ring holds the entries of all of them, so one wait covers
// every queue it serves.
//
// Each ring entry has an EntryWire, the Wire its request's reply is written
// to. A reply is encoded straight into the entry's buffers (fuse_out_header
// into in_out, every reply argument into the payload, payload_sz set) and
// the entry is committed with COMMIT_AND_FETCH, which also takes the next
// request. A reply completed later from another thread (async) is handed
// back to the worker (a lock-free list and an eventfd the ring reads), since
// only the worker submits to its ring: the worker never waits for one.
//
// Argument lifetime: names and write data are views into the entry's
// payload, which is also where the reply goes. The file system may keep
// using them until its call returns, so a reply sent during the call, for
// a request that has arguments in the payload, is staged in a small
// per-entry buffer and moved into place once the call has returned.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <span>
#include <vector>

#include "abi/fuse_abi.h"
#include "server/session.h"
#include "server/wire.h"
#include "transport/uring_queue.h"

namespace zest::server {

// The parts of a request received in a ring entry.
struct RingRequest {
  abi::fuse_in_header h{};
  std::span<const std::byte> op_in;    // the opcode's fixed struct
  std::span<const std::byte> payload;  // names, write data
  uint64_t commit_id = 0;
};

// Splits a ring entry into a request. Returns nullptr, or why the sizes do
// not add up (the header is still filled in, so the request can be
// answered EIO).
const char* decode_ring_request(const abi::fuse_uring_req_header& hdr,
                                std::span<const std::byte> payload_buf,
                                RingRequest* out);

// Writes a reply (iov[0] the fuse_out_header, iov[1..] its arguments) into
// an entry's header and payload. A payload that does not fit turns into an
// EIO reply. Copies nothing that already lies at the payload's start.
void encode_ring_reply(const iovec* iov, int count, abi::fuse_uring_req_header* hdr,
                       std::span<std::byte> payload_buf);

class UringWorker final : private transport::UringQueue::Handler {
 public:
  UringWorker(Session& session, int fuse_fd, std::vector<uint16_t> qids,
              std::vector<unsigned> cpus, unsigned depth, size_t payload_size);
  ~UringWorker() override;

  // The thread body. Reports on `started` once the entries are registered
  // (or why not), then serves until the connection is gone.
  void run(std::promise<Result<void>>* started);

  // The connection is gone (the /dev/fuse reader saw ENODEV): exit once no
  // command is left in the kernel, even if async replies are outstanding.
  void stop();

 private:
  class EntryWire;

  void on_entry(transport::UringQueue::Entry* e, int res) override;
  void on_wake() override;
  // Hands a replied entry back to the kernel (any thread).
  void commit(EntryWire* w);

  Session& session_;
  const int fuse_fd_;
  const std::vector<uint16_t> qids_;
  const std::vector<unsigned> cpus_;
  const unsigned depth_;
  const size_t payload_size_;

  std::unique_ptr<transport::UringQueue> queue_;
  std::vector<std::unique_ptr<EntryWire>> wires_;
  Session::Worker worker_{nullptr};
  std::atomic<EntryWire*> ready_{nullptr};  // replied from other threads
  std::atomic<bool> stop_{false};
  std::atomic<bool> ring_live_{false};
  unsigned held_ = 0;  // entries in our hands (request being served)
  bool starting_ = true;
  int register_error_ = 0;
};

}  // namespace zest::server
