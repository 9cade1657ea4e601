#include "server/uring_worker.h"

#include <pthread.h>
#include <sched.h>

#include <cstdio>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace zest::server {

namespace {

// Staging for replies sent while the file system still runs (see the
// header): every fixed reply struct fits, and so do small data replies.
constexpr size_t kStageSize = 4096;

thread_local UringWorker* tls_worker = nullptr;

bool connection_gone(int res) {
  return res == -ENOTCONN || res == -ECONNABORTED || res == -ENODEV;
}

}  // namespace

const char* decode_ring_request(const abi::fuse_uring_req_header& hdr,
                                std::span<const std::byte> payload_buf,
                                RingRequest* out) {
  std::memcpy(&out->h, hdr.in_out, sizeof(out->h));
  const abi::fuse_uring_ent_in_out& io = hdr.ring_ent_in_out;
  out->commit_id = io.commit_id;
  out->op_in = {};
  out->payload = {};
  // h.len counts the header and every argument; the payload holds all but
  // the first argument, which is in op_in.
  size_t len = out->h.len;
  size_t payload = io.payload_sz;
  if (payload > payload_buf.size()) return "payload size beyond the buffer";
  if (len < sizeof(abi::fuse_in_header) + payload)
    return "length in header shorter than the payload";
  size_t op = len - sizeof(abi::fuse_in_header) - payload;
  if (op > sizeof(hdr.op_in)) return "fixed argument larger than op_in";
  out->op_in = {reinterpret_cast<const std::byte*>(hdr.op_in), op};
  out->payload = payload_buf.first(payload);
  return nullptr;
}

void encode_ring_reply(const iovec* iov, int count, abi::fuse_uring_req_header* hdr,
                       std::span<std::byte> payload_buf) {
  abi::fuse_out_header oh{};
  if (count > 0) std::memcpy(&oh, iov[0].iov_base, std::min(sizeof(oh), iov[0].iov_len));
  size_t total = 0;
  for (int i = 1; i < count; ++i) total += iov[i].iov_len;
  if (total > payload_buf.size()) {
    log_warn("reply of {} bytes to request {} does not fit the ring entry; answered EIO",
             total, oh.unique);
    oh.error = -EIO;
    total = 0;
  } else {
    size_t at = 0;
    for (int i = 1; i < count; ++i) {
      // A reply built in place (the file system filled the payload) is
      // not copied onto itself.
      if (iov[i].iov_base != payload_buf.data() + at)
        std::memmove(payload_buf.data() + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
  }
  oh.len = static_cast<uint32_t>(sizeof(oh) + total);
  std::memcpy(hdr->in_out, &oh, sizeof(oh));
  hdr->ring_ent_in_out.payload_sz = static_cast<uint32_t>(total);
}

// ---------------------------------------------------------------------------

class UringWorker::EntryWire final : public Wire {
 public:
  enum : int { kReplied = 1, kDispatched = 2 };

  EntryWire(UringWorker* w, transport::UringQueue::Entry* e)
      : worker(w), entry(e), stage(new std::byte[kStageSize]) {}

  // Called once per request, with whatever the session sends.
  Result<void> send(const iovec* iov, int count) override {
    bool during_call = !(phase.load(std::memory_order_acquire) & kDispatched);
    size_t total = 0;
    for (int i = 0; i < count; ++i) total += iov[i].iov_len;
    if (during_call && args_in_payload && total <= kStageSize) {
      size_t at = 0;
      for (int i = 0; i < count; ++i) {
        std::memcpy(stage.get() + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
      }
      stage_len = total;
      staged = true;
    } else {
      encode_ring_reply(iov, count, entry->header,
                        {entry->payload, entry->payload_size});
    }
    int prev = phase.fetch_or(kReplied, std::memory_order_acq_rel);
    if (prev & kDispatched) worker->commit(this);
    return {};
  }

  // The file system's call returned.
  void dispatched() {
    int prev = phase.fetch_or(kDispatched, std::memory_order_acq_rel);
    if (prev & kReplied) worker->commit(this);
  }

  // Moves a staged reply into the entry.
  void unstage() {
    if (!staged) return;
    staged = false;
    size_t oh = std::min(stage_len, sizeof(abi::fuse_out_header));
    iovec v[2] = {{stage.get(), oh}, {stage.get() + oh, stage_len - oh}};
    encode_ring_reply(v, 2, entry->header, {entry->payload, entry->payload_size});
  }

  UringWorker* worker;
  transport::UringQueue::Entry* entry;
  uint64_t commit_id = 0;
  bool args_in_payload = false;
  std::atomic<int> phase{0};
  std::unique_ptr<std::byte[]> stage;
  size_t stage_len = 0;
  bool staged = false;
  EntryWire* next_ready = nullptr;
};

UringWorker::UringWorker(Session& session, int fuse_fd, std::vector<uint16_t> qids,
                         std::vector<unsigned> cpus, unsigned depth, size_t payload_size)
    : session_(session),
      fuse_fd_(fuse_fd),
      qids_(std::move(qids)),
      cpus_(std::move(cpus)),
      depth_(depth),
      payload_size_(payload_size) {}

UringWorker::~UringWorker() = default;

void UringWorker::stop() {
  stop_.store(true, std::memory_order_release);
  if (ring_live_.load(std::memory_order_acquire)) queue_->wake();
}

void UringWorker::commit(EntryWire* w) {
  if (tls_worker == this) {
    w->unstage();
    queue_->commit(w->entry, w->commit_id);
    --held_;
    return;
  }
  // Another thread: hand it to the worker, which alone submits.
  EntryWire* head = ready_.load(std::memory_order_relaxed);
  do {
    w->next_ready = head;
  } while (!ready_.compare_exchange_weak(head, w, std::memory_order_release,
                                         std::memory_order_relaxed));
  queue_->wake();
}

void UringWorker::on_wake() {
  EntryWire* w = ready_.exchange(nullptr, std::memory_order_acquire);
  while (w) {
    EntryWire* next = w->next_ready;
    w->unstage();
    queue_->commit(w->entry, w->commit_id);
    --held_;
    w = next;
  }
}

void UringWorker::on_entry(transport::UringQueue::Entry* e, int res) {
  auto* w = static_cast<EntryWire*>(e->owner);
  if (res == -EAGAIN || res == -EINTR) {
    queue_->reregister(e);
    return;
  }
  if (res < 0) {
    // The entry is out of service: the connection ended, or the kernel
    // refused the command.
    if (starting_ && !register_error_) register_error_ = -res;
    if (!connection_gone(res) && !starting_)
      log_warn("io_uring: a ring command of queue {} failed: {}", e->qid,
               std::strerror(-res));
    return;
  }
  ++held_;
  RingRequest req;
  const char* why = decode_ring_request(*e->header, {e->payload, e->payload_size}, &req);
  w->commit_id = req.commit_id;
  w->args_in_payload = !req.payload.empty();
  w->staged = false;
  w->phase.store(0, std::memory_order_relaxed);
  session_.process(worker_, w, req.h, ArgReader(req.op_in, req.payload), why);
  w->dispatched();
}

void UringWorker::run(std::promise<Result<void>>* started) {
  tls_worker = this;
  {
    char name[32];
    std::snprintf(name, sizeof(name), "zest-ring%u", qids_.empty() ? 0u : unsigned(qids_[0]) % 100000u);
    name[15] = 0;
    ::pthread_setname_np(::pthread_self(), name);
  }
  if (!cpus_.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned c : cpus_) CPU_SET(c, &set);
    if (::sched_setaffinity(0, sizeof(set), &set) != 0)
      log_warn("io_uring worker: pinning to its CPUs failed: {}", std::strerror(errno));
  }
  auto q = transport::UringQueue::create(fuse_fd_, qids_, depth_, payload_size_);
  if (!q) {
    started->set_value(q.error());
    return;
  }
  queue_ = std::move(*q);
  for (auto& e : queue_->entries()) {
    wires_.push_back(std::make_unique<EntryWire>(this, &e));
    e.owner = wires_.back().get();
  }
  ring_live_.store(true, std::memory_order_release);
  queue_->register_all();
  // Refusals of REGISTER (io_uring disabled, bad sizes) complete at once.
  auto r = queue_->run(*this, false);
  starting_ = false;
  if (!r) {
    started->set_value(r.error());
    return;
  }
  if (register_error_) {
    started->set_value(Errno(register_error_));
    // The kernel falls back to /dev/fuse for everything; entries that did
    // register stay idle until the connection ends.
  } else {
    started->set_value(Result<void>());
  }

  for (;;) {
    if (queue_->in_kernel() == 0 &&
        (held_ == 0 || stop_.load(std::memory_order_acquire)))
      break;
    if (stop_.load(std::memory_order_acquire) && register_error_) break;
    auto rr = queue_->run(*this, true);
    if (!rr) {
      log_error("io_uring: waiting for requests failed: {}", rr.error().message());
      break;
    }
  }
  session_.release_worker(worker_);
  tls_worker = nullptr;
}

}  // namespace zest::server
