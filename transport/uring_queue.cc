#include "transport/uring_queue.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace zest::transport {

namespace {

constexpr const char* kEnableParam = "/sys/module/fuse/parameters/enable_uring";
constexpr uint64_t kWakeTag = 1;  // user_data of the eventfd read
constexpr size_t kPage = 4096;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Parses a CPU list such as "0-3,8,10-11".
std::vector<unsigned> parse_cpu_list(const std::string& s) {
  std::vector<unsigned> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (part.empty() || part == "\n") continue;
    unsigned a = 0, b = 0;
    size_t dash = part.find('-');
    try {
      a = static_cast<unsigned>(std::stoul(part.substr(0, dash)));
      b = dash == std::string::npos ? a : static_cast<unsigned>(std::stoul(part.substr(dash + 1)));
    } catch (...) {
      continue;
    }
    for (unsigned c = a; c <= b; ++c) out.push_back(c);
  }
  return out;
}

std::vector<unsigned> read_cpu_list(const char* path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return parse_cpu_list(s);
}

}  // namespace

UringSupport uring_support() {
  std::ifstream f(kEnableParam);
  if (!f) return UringSupport::kAbsent;
  char c = 0;
  f >> c;
  return (c == 'Y' || c == 'y' || c == '1') ? UringSupport::kEnabled : UringSupport::kDisabled;
}

Result<void> enable_uring() {
  UniqueFd fd(::open(kEnableParam, O_WRONLY | O_CLOEXEC));
  if (!fd) return last_errno();
  if (::write(fd.get(), "Y", 1) != 1) return last_errno();
  return {};
}

unsigned possible_cpus() {
  // The kernel makes num_possible_cpus() queues; the highest possible CPU
  // number + 1 is the same on every system we know (possible CPUs are
  // contiguous from 0).
  std::vector<unsigned> cpus = read_cpu_list("/sys/devices/system/cpu/possible");
  unsigned n = 0;
  for (unsigned c : cpus) n = std::max(n, c + 1);
  if (n == 0) n = static_cast<unsigned>(std::max(1L, ::sysconf(_SC_NPROCESSORS_CONF)));
  return n;
}

std::vector<unsigned> online_cpus() {
  std::vector<unsigned> cpus = read_cpu_list("/sys/devices/system/cpu/online");
  if (cpus.empty()) {
    long n = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
    for (long i = 0; i < n; ++i) cpus.push_back(static_cast<unsigned>(i));
  }
  return cpus;
}

Result<std::unique_ptr<UringQueue>> UringQueue::create(int fuse_fd,
                                                       std::span<const uint16_t> qids,
                                                       unsigned depth,
                                                       size_t payload_size) {
  std::unique_ptr<UringQueue> q(new UringQueue());
  q->fuse_fd_ = fuse_fd;
  const size_t count = qids.size() * depth;
  if (count == 0) return Errno(EINVAL);

  // One mapping: the headers first (a page-aligned block), then one
  // page-aligned payload buffer per entry. Pages are faulted in by first
  // use, so a deep queue costs address space, not memory, until it is busy.
  payload_size = round_up(payload_size, kPage);
  size_t headers = round_up(count * sizeof(abi::fuse_uring_req_header), kPage);
  q->region_size_ = headers + count * payload_size;
  void* p = ::mmap(nullptr, q->region_size_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return last_errno();
  q->region_ = p;
  auto* base = static_cast<std::byte*>(p);
  q->entries_.resize(count);
  for (size_t i = 0; i < count; ++i) {
    Entry& e = q->entries_[i];
    e.header = reinterpret_cast<abi::fuse_uring_req_header*>(base) + i;
    e.payload = base + headers + i * payload_size;
    e.payload_size = payload_size;
    e.qid = qids[i / depth];
    e.iov[0] = {e.header, sizeof(abi::fuse_uring_req_header)};
    e.iov[1] = {e.payload, payload_size};
  }

  q->wake_fd_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!q->wake_fd_) return last_errno();

  // One SQE per entry plus the eventfd read; every entry has at most one
  // command outstanding, so neither queue can overflow.
  unsigned sq = static_cast<unsigned>(count + 1);
  q->ring_ = std::make_unique<io_uring>();
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE |
                 IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  params.cq_entries = sq * 2;
  int r = io_uring_queue_init_params(sq, q->ring_.get(), &params);
  if (r == -EINVAL) {
    // Older kernel: without the task-run refinements.
    params = {};
    params.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
    params.cq_entries = sq * 2;
    r = io_uring_queue_init_params(sq, q->ring_.get(), &params);
  }
  if (r < 0) return Errno(-r);
  q->ring_ready_ = true;
  return q;
}

UringQueue::~UringQueue() {
  if (ring_ready_) io_uring_queue_exit(ring_.get());
  if (region_) ::munmap(region_, region_size_);
}

io_uring_sqe* UringQueue::next_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (!sqe) {
    // Cannot happen with one SQE per entry; flush and retry regardless.
    io_uring_submit(ring_.get());
    sqe = io_uring_get_sqe(ring_.get());
  }
  return sqe;
}

void UringQueue::prep_cmd(Entry* e, uint32_t cmd_op, uint64_t commit_id) {
  io_uring_sqe* sqe = next_sqe();
  if (!sqe) return;
  std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));  // SQE128: both halves
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = fuse_fd_;
  sqe->cmd_op = cmd_op;
  if (cmd_op == abi::FUSE_IO_URING_CMD_REGISTER) {
    sqe->addr = reinterpret_cast<uint64_t>(e->iov);
    sqe->len = 2;
  }
  abi::fuse_uring_cmd_req req{};
  req.qid = e->qid;
  req.commit_id = commit_id;
  std::memcpy(sqe->cmd, &req, sizeof(req));
  io_uring_sqe_set_data(sqe, e);
  ++in_kernel_;
}

void UringQueue::register_all() {
  for (Entry& e : entries_) prep_cmd(&e, abi::FUSE_IO_URING_CMD_REGISTER, 0);
  arm_wake();
}

void UringQueue::reregister(Entry* e) { prep_cmd(e, abi::FUSE_IO_URING_CMD_REGISTER, 0); }

void UringQueue::commit(Entry* e, uint64_t commit_id) {
  prep_cmd(e, abi::FUSE_IO_URING_CMD_COMMIT_AND_FETCH, commit_id);
}

void UringQueue::arm_wake() {
  if (wake_armed_) return;
  io_uring_sqe* sqe = next_sqe();
  if (!sqe) return;
  std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_buf_, sizeof(wake_buf_), 0);
  io_uring_sqe_set_data64(sqe, kWakeTag);
  wake_armed_ = true;
}

void UringQueue::wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

Result<void> UringQueue::run(Handler& h, bool wait) {
  int r = wait ? io_uring_submit_and_wait(ring_.get(), 1)
               : io_uring_submit_and_get_events(ring_.get());
  if (r < 0 && r != -EINTR && r != -ETIME && r != -EAGAIN && r != -EBUSY)
    return Errno(-r);
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe;
  bool woken = false;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    ++seen;
    if (cqe->user_data == kWakeTag) {
      wake_armed_ = false;
      woken = true;
      continue;
    }
    --in_kernel_;
    h.on_entry(static_cast<Entry*>(io_uring_cqe_get_data(cqe)), cqe->res);
  }
  io_uring_cq_advance(ring_.get(), seen);
  if (woken) {
    arm_wake();
    h.on_wake();
  }
  return {};
}

}  // namespace zest::transport
