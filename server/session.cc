#include "server/session.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <utility>

#include "abi/opcode_name.h"
#include "base/fd.h"
#include "base/log.h"
#include "server/encode.h"
#include "server/uring_worker.h"
#include "transport/uring_queue.h"

namespace zest::server {

Session::Session(fs::FileSystem& fs, SessionOptions opts)
    : fs_(fs), opts_(opts) {}

Session::~Session() = default;

// ---------------------------------------------------------------------------
// Slots

RequestSlot* Session::acquire_slot() {
  std::lock_guard lock(slots_mu_);
  if (!free_slots_.empty()) {
    RequestSlot* s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  all_slots_.push_back(std::make_unique<RequestSlot>());
  all_slots_.back()->counted.reserve(64);
  return all_slots_.back().get();
}

void Session::recycle_slot(RequestSlot* slot) {
  std::lock_guard lock(slots_mu_);
  free_slots_.push_back(slot);
}

size_t Session::slots_in_use() const {
  std::lock_guard lock(slots_mu_);
  return all_slots_.size() - free_slots_.size();
}

void Session::release_worker(Worker& w) {
  if (w.slot_) recycle_slot(w.slot_);
  w.slot_ = nullptr;
}

void Session::ensure_out(RequestSlot* slot, size_t size) {
  if (slot->out_cap >= size) return;
  // Sized once for the largest reply, so a slot allocates at most once.
  size_t cap = std::max(size, kRequestBufferSize);
  slot->out.reset(new std::byte[cap]);
  slot->out_cap = cap;
}

// ---------------------------------------------------------------------------
// Processing one request

void Session::process(Worker& w, std::span<const std::byte> request) {
  abi::fuse_in_header h;
  if (request.size() < sizeof(h)) {
    // Without a header there is no unique to answer to.
    uint64_t n = malformed_.fetch_add(1) + 1;
    if (n <= 10 || n % 1000 == 0)
      log_warn("dropping a request of {} bytes (shorter than its header)",
               request.size());
    return;
  }
  std::memcpy(&h, request.data(), sizeof(h));
  const char* why = h.len != request.size()
                        ? "length in header does not match the bytes read"
                        : nullptr;
  process(w, w.wire_, h, ArgReader(request.subspan(sizeof(h))), why);
}

void Session::process(Worker& w, Wire* wire, const abi::fuse_in_header& h,
                      ArgReader args, const char* malformed_why) {
  if (!w.slot_) w.slot_ = acquire_slot();
  RequestSlot* s = w.slot_;
  s->unique.store(h.unique, std::memory_order_relaxed);
  s->opcode = h.opcode;
  s->nodeid = h.nodeid;
  s->wire = wire;
  s->max_out = 0;
  s->out_used = 0;
  s->plus = false;
  s->counted.clear();
  s->state.store(RequestSlot::kActive, std::memory_order_relaxed);

  if (opts_.debug)
    log_debug("request unique={} {} (opcode {}) nodeid={} len={}", h.unique,
              abi::opcode_name(h.opcode),
              h.opcode, h.nodeid, h.len);

  if (malformed_why) {
    malformed(s, malformed_why);
  } else {
    // A file system that throws must not take the server down: the reply
    // object it held was dropped while unwinding, which answers EIO.
    try {
      dispatch(s, h, args);
    } catch (const std::exception& e) {
      log_error("file system threw in {} (opcode {}, nodeid {}): {}; answered EIO",
                abi::opcode_name(h.opcode), h.opcode, h.nodeid, e.what());
    } catch (...) {
      log_error("file system threw in {} (opcode {}, nodeid {}); answered EIO",
                abi::opcode_name(h.opcode), h.opcode, h.nodeid);
    }
  }

  // Whoever comes second recycles: if the reply was already sent, the
  // worker keeps the slot; otherwise the completing thread will return it.
  int prev = s->state.exchange(RequestSlot::kDetached, std::memory_order_acq_rel);
  if (prev == RequestSlot::kCompleted) {
    s->state.store(RequestSlot::kActive, std::memory_order_relaxed);
  } else {
    w.slot_ = acquire_slot();
  }
}

void Session::malformed(RequestSlot* slot, const char* what) {
  uint64_t n = malformed_.fetch_add(1) + 1;
  if (n <= 10 || n % 1000 == 0)
    log_warn("malformed request (opcode {}, unique {}): {}; answered EIO",
             slot->opcode, slot->unique.load(), what);
  finish(slot, EIO, nullptr, 0);
}

void Session::complete(RequestSlot* slot) {
  if (slot->intr_armed.load(std::memory_order_acquire)) {
    std::lock_guard lock(slot->intr_mu);
    slot->intr_fn = nullptr;
    slot->intr_armed.store(false, std::memory_order_relaxed);
  }
  int prev = slot->state.exchange(RequestSlot::kCompleted, std::memory_order_acq_rel);
  if (prev == RequestSlot::kDetached) {
    slot->state.store(RequestSlot::kActive, std::memory_order_relaxed);
    recycle_slot(slot);
  }
}

Result<void> Session::send_reply(RequestSlot* slot, int err,
                                 const iovec* payload, int count) {
  abi::fuse_out_header oh{};
  size_t len = sizeof(oh);
  iovec* iov = slot->iov;
  int n = 1;
  if (err == 0) {
    for (int i = 0; i < count && n <= RequestSlot::kMaxIov; ++i) {
      if (payload[i].iov_len == 0) continue;
      iov[n++] = payload[i];
      len += payload[i].iov_len;
    }
  }
  oh.len = static_cast<uint32_t>(len);
  oh.error = -err;
  oh.unique = slot->unique.load(std::memory_order_relaxed);
  iov[0] = {&oh, sizeof(oh)};
  return slot->wire->send(iov, n);
}

void Session::finish(RequestSlot* slot, int err, const iovec* payload,
                     int count) {
  sent(slot, send_reply(slot, err, payload, count));
}

void Session::sent(RequestSlot* slot, const Result<void>& r) {
  if (!r && r.error().value != ENOENT && r.error().value != ENODEV)
    log_warn("reply to request {} (opcode {}) failed: {}",
             slot->unique.load(), slot->opcode, r.error().message());
  complete(slot);
}

// ---------------------------------------------------------------------------
// fs::ReplySink

namespace {
RequestSlot* slot_of(fs::RequestToken t) { return static_cast<RequestSlot*>(t); }
}  // namespace

void Session::reply_error(fs::RequestToken t, int err) {
  if (err < 0) err = -err;
  if (err > 4095) err = EIO;
  RequestSlot* s = slot_of(t);
  if (err == 0 && s->opcode == abi::FUSE_IOCTL) {
    // An ioctl answered with a status: a fuse_ioctl_out and no data.
    if (s->ioctl_cmd == fs::kIocShutdown) {
      shut_down_.store(true);
      log_warn("the file system was shut down (FS_IOC_SHUTDOWN): every request fails with EIO "
               "until it is unmounted");
    }
    return reply_data(t, {});
  }
  finish(s, err, nullptr, 0);
}

void Session::reply_entry(fs::RequestToken t, const fs::Entry& e) {
  RequestSlot* s = slot_of(t);
  abi::fuse_entry_out out;
  encode_entry(e, &out);
  // Counted before sending: the kernel can only forget what it received.
  if (e.ino) refs_.add(e.ino);
  iovec v{&out, sizeof(out)};
  auto r = send_reply(s, 0, &v, 1);
  if (!r && e.ino && refs_.drop(e.ino, 1)) fs_.forget(e.ino);
  complete(s);
}

void Session::reply_create(fs::RequestToken t, const fs::Entry& e,
                           const fs::OpenInfo& o) {
  RequestSlot* s = slot_of(t);
  struct {
    abi::fuse_entry_out entry;
    abi::fuse_open_out open;
  } out;
  static_assert(sizeof(out) == sizeof(abi::fuse_entry_out) + sizeof(abi::fuse_open_out));
  encode_entry(e, &out.entry);
  int32_t backing = backing_for(e.ino, o);
  encode_open(o, &out.open, backing, s->open_flags, neg_.always_direct);
  if (e.ino) refs_.add(e.ino);
  iovec v{&out, sizeof(out)};
  auto r = send_reply(s, 0, &v, 1);
  if (!r && backing) passthrough_.release(e.ino, o.fh);
  if (!r && e.ino && refs_.drop(e.ino, 1)) fs_.forget(e.ino);
  // If the kernel never got the open file it will never release it: do it
  // here, with the answer going nowhere.
  if (!r) fs_.release(fs::Context{}, e.ino, o.fh, 0, fs::StatusReply(&discard_, nullptr));
  complete(s);
}

void Session::reply_attr(fs::RequestToken t, const fs::Attr& a, double timeout) {
  abi::fuse_attr_out out{};
  encode_timeout(timeout, &out.attr_valid, &out.attr_valid_nsec);
  encode_attr(a, &out.attr);
  iovec v{&out, sizeof(out)};
  finish(slot_of(t), 0, &v, 1);
}

void Session::reply_open(fs::RequestToken t, const fs::OpenInfo& o) {
  RequestSlot* s = slot_of(t);
  abi::fuse_open_out out;
  // OPENDIR never passes through.
  int32_t backing = s->opcode == abi::FUSE_OPEN ? backing_for(s->nodeid, o) : 0;
  // OPENDIR: the flags only matter for regular files.
  encode_open(o, &out, backing, s->opcode == abi::FUSE_OPEN ? s->open_flags : 0,
              neg_.always_direct);
  iovec v{&out, sizeof(out)};
  auto r = send_reply(s, 0, &v, 1);
  if (!r && backing) passthrough_.release(s->nodeid, o.fh);
  complete(s);
}

int32_t Session::backing_for(uint64_t ino, const fs::OpenInfo& o) {
  if (o.mode != fs::IoMode::Passthrough) return 0;
  const char* why = nullptr;
  std::string err;
  if (!(neg_.flags & abi::FUSE_PASSTHROUGH)) {
    why = "the kernel did not agree to FUSE_PASSTHROUGH";
  } else {
    auto id = passthrough_.open(ino, o.fh, o.backing_fd);
    if (id) return *id;
    err = id.error().message();
    why = "registering the backing file failed: ";
  }
  if (!passthrough_warned_.exchange(true))
    log_warn("passthrough open of inode {}: {}{}; serving such opens itself", ino,
             why, err);
  return 0;
}

void Session::reply_write(fs::RequestToken t, size_t written) {
  RequestSlot* s = slot_of(t);
  if (s->opcode == abi::FUSE_COPY_FILE_RANGE_64) {
    abi::fuse_copy_file_range_out out{};
    out.bytes_copied = written;
    iovec v{&out, sizeof(out)};
    finish(s, 0, &v, 1);
    return;
  }
  abi::fuse_write_out out{};
  out.size = static_cast<uint32_t>(std::min<size_t>(written, UINT32_MAX));
  iovec v{&out, sizeof(out)};
  finish(s, 0, &v, 1);
}

void Session::reply_data(fs::RequestToken t, std::span<const iovec> data) {
  RequestSlot* s = slot_of(t);
  // Clip to what the kernel asked for: a longer reply would be refused.
  size_t budget = s->max_out;
  iovec* clipped = s->iov + 1;  // send_reply copies from here into iov[1..]
  int n = 0;
  if (s->opcode == abi::FUSE_IOCTL) {
    // The data follows a fuse_ioctl_out (result 0, no retry).
    abi::fuse_ioctl_out out{};
    static_assert(sizeof(out) == sizeof(s->ioctl_out));
    std::memcpy(s->ioctl_out, &out, sizeof(out));
    clipped[n++] = {s->ioctl_out, sizeof(out)};
  }
  for (const iovec& v : data) {
    if (budget == 0 || n == RequestSlot::kMaxIov) break;
    size_t take = std::min(budget, v.iov_len);
    clipped[n++] = {v.iov_base, take};
    budget -= take;
  }
  if ((s->opcode == abi::FUSE_GETXATTR || s->opcode == abi::FUSE_LISTXATTR) &&
      budget == 0) {
    size_t total = 0;
    for (const iovec& v : data) total += v.iov_len;
    if (total > s->max_out) {
      finish(s, ERANGE, nullptr, 0);
      return;
    }
  }
  // send_reply copies payload[i] into iov[i+1]; with payload == iov+1 the
  // copy is in place.
  finish(s, 0, clipped, n);
}

void Session::reply_data_fd(fs::RequestToken t, int fd, uint64_t off,
                            size_t len) {
  RequestSlot* s = slot_of(t);
  len = std::min(len, s->max_out);
  // Splicing costs a system call more than copying and only pays for itself
  // on large replies (neg_.splice_min); anything but a READ goes through
  // reply_data's checks (xattr ERANGE).
  if (!neg_.splice || len == 0 || len < neg_.splice_min ||
      s->opcode != abi::FUSE_READ)
    return fs::ReplySink::reply_data_fd(t, fd, off, len);
  // A reply the file turns out too short for is rebuilt in the slot's
  // buffer (sized once for the largest reply: no allocation per request).
  ensure_out(s, sizeof(abi::fuse_out_header) + len);
  abi::fuse_out_header oh{};
  oh.unique = s->unique.load(std::memory_order_relaxed);
  auto r = s->wire->send_file(oh, fd, off, len, {s->out.get(), s->out_cap});
  if (r && *r == FileSend::kSpliced) {
    spliced_.fetch_add(1, std::memory_order_relaxed);
    if (opts_.debug) log_debug("spliced reply unique={} len={}", oh.unique, len);
  } else if (r) {
    splice_fallbacks_.fetch_add(1, std::memory_order_relaxed);
    // Nothing sent (pipe busy, range too large, file not spliceable):
    // read it as without splicing.
    if (*r == FileSend::kNotSent)
      return fs::ReplySink::reply_data_fd(t, fd, off, len);
  }
  sent(s, r ? Result<void>() : Result<void>(r.error()));
}

void Session::reply_xattr_size(fs::RequestToken t, size_t size) {
  abi::fuse_getxattr_out out{};
  out.size = static_cast<uint32_t>(size);
  iovec v{&out, sizeof(out)};
  finish(slot_of(t), 0, &v, 1);
}

void Session::reply_statfs(fs::RequestToken t, const fs::StatFs& st) {
  abi::fuse_statfs_out out{};
  out.st.blocks = st.blocks;
  out.st.bfree = st.bfree;
  out.st.bavail = st.bavail;
  out.st.files = st.files;
  out.st.ffree = st.ffree;
  out.st.bsize = st.bsize;
  out.st.namelen = st.namelen;
  out.st.frsize = st.frsize;
  iovec v{&out, sizeof(out)};
  finish(slot_of(t), 0, &v, 1);
}

void Session::reply_lseek(fs::RequestToken t, uint64_t offset) {
  abi::fuse_lseek_out out{};
  out.offset = offset;
  iovec v{&out, sizeof(out)};
  finish(slot_of(t), 0, &v, 1);
}

std::span<std::byte> Session::reply_buffer(fs::RequestToken t, size_t size) {
  RequestSlot* s = slot_of(t);
  ensure_out(s, size);
  return {s->out.get(), size};
}

bool Session::dir_add(fs::RequestToken t, std::string_view name, fs::Ino ino,
                      uint32_t type, uint64_t next_off, const fs::Entry* plus) {
  RequestSlot* s = slot_of(t);
  ensure_out(s, s->max_out);
  size_t need = s->plus ? abi::fuse_direntplus_size(name.size())
                        : abi::fuse_dirent_size(name.size());
  if (s->out_used + need > s->max_out) return false;
  std::byte* p = s->out.get() + s->out_used;
  std::memset(p, 0, need);
  abi::fuse_dirent d{};
  d.ino = ino;
  d.off = next_off;
  d.namelen = static_cast<uint32_t>(name.size());
  d.type = type;
  if (s->plus) {
    abi::fuse_entry_out eo{};
    // "." and ".." never take a reference in the kernel; nor may we count one.
    bool dots = name == "." || name == "..";
    if (plus && !dots && plus->ino) {
      encode_entry(*plus, &eo);
      refs_.add(plus->ino);
      s->counted.push_back(plus->ino);
    }
    std::memcpy(p, &eo, sizeof(eo));
    p += sizeof(eo);
  }
  std::memcpy(p, &d, sizeof(d));
  std::memcpy(p + sizeof(d), name.data(), name.size());
  s->out_used += need;
  return true;
}

void Session::reply_dir(fs::RequestToken t) {
  RequestSlot* s = slot_of(t);
  iovec v{s->out.get(), s->out_used};
  auto r = send_reply(s, 0, &v, s->out_used ? 1 : 0);
  if (!r) {
    for (uint64_t ino : s->counted)
      if (refs_.drop(ino, 1)) fs_.forget(ino);
  }
  complete(s);
}

bool Session::interrupted(fs::RequestToken t) const {
  RequestSlot* s = slot_of(t);
  uint64_t u = s->unique.load(std::memory_order_relaxed);
  return s->interrupted_unique.load(std::memory_order_relaxed) == u;
}

bool Session::on_interrupt(fs::RequestToken t, fs::InterruptFn fn, void* ctx,
                           uint64_t cookie) {
  RequestSlot* s = slot_of(t);
  std::lock_guard lock(s->intr_mu);
  if (s->interrupted_unique.load(std::memory_order_relaxed) ==
      s->unique.load(std::memory_order_relaxed))
    return false;
  s->intr_fn = fn;
  s->intr_ctx = ctx;
  s->intr_cookie = cookie;
  s->intr_armed.store(true, std::memory_order_release);
  return true;
}

void Session::handle_interrupt(ArgReader a) {
  abi::fuse_interrupt_in in;
  if (!a.read(&in)) return;
  fs::InterruptFn fn = nullptr;
  void* ctx = nullptr;
  uint64_t cookie = 0;
  {
    std::lock_guard lock(slots_mu_);
    for (auto& s : all_slots_) {
      if (s->unique.load(std::memory_order_relaxed) != in.unique) continue;
      std::lock_guard intr(s->intr_mu);
      s->interrupted_unique.store(in.unique, std::memory_order_relaxed);
      if (s->intr_fn) {
        fn = std::exchange(s->intr_fn, nullptr);
        ctx = s->intr_ctx;
        cookie = s->intr_cookie;
      }
      break;
    }
  }
  // Without any lock of ours: the file system answers the parked request
  // from here (EINTR), which recycles its slot. If it was answered
  // meanwhile, the file system finds no request under `cookie`.
  if (fn) fn(ctx, cookie);
  // Not found: the request was already answered (or is being answered right
  // now); nothing to do. The interrupt needs no reply.
}

void Session::reply_lock(fs::RequestToken t, const fs::Lock& l) {
  abi::fuse_lk_out out{};
  out.lk.start = l.start;
  out.lk.end = l.end;
  out.lk.type = l.type;
  out.lk.pid = l.pid;
  iovec v{&out, sizeof(out)};
  finish(slot_of(t), 0, &v, 1);
}

void Session::reply_poll(fs::RequestToken t, uint32_t revents) {
  abi::fuse_poll_out out{};
  out.revents = revents;
  iovec v{&out, sizeof(out)};
  finish(slot_of(t), 0, &v, 1);
}

void Session::reply_bmap(fs::RequestToken t, uint64_t block) {
  abi::fuse_bmap_out out{};
  out.block = block;
  iovec v{&out, sizeof(out)};
  finish(slot_of(t), 0, &v, 1);
}

void Session::reply_statx(fs::RequestToken t, const fs::StatxAttr& a, double timeout) {
  abi::fuse_statx_out out{};
  encode_timeout(timeout, &out.attr_valid, &out.attr_valid_nsec);
  encode_statx(a, &out.stat);
  iovec v{&out, sizeof(out)};
  finish(slot_of(t), 0, &v, 1);
}

void Session::handle_forget(uint64_t ino, uint64_t n) {
  if (refs_.drop(ino, n)) fs_.forget(ino);
}

// ---------------------------------------------------------------------------
// Serving a mount

void Session::worker_loop(Worker* w, std::span<std::byte> buf, ReaderGate& gate,
                          bool start_parked) {
  auto* dev = static_cast<DevWire*>(w->wire());
  const int fd = dev->channel().fd();
  if (opts_.spin_ns) (void)dev->channel().set_nonblocking();
  if (!start_parked || gate.park()) {
    for (;;) {
      gate.enter_read();
      auto n = dev->channel().receive(buf, opts_.spin_ns);
      gate.leave_read();
      if (!n) {
        if (n.error().value != ENODEV)
          log_error("reading /dev/fuse failed: {}", n.error().message());
        break;
      }
      gate.after_receive(fd);
      process(*w, buf.first(*n));
      if (!gate.before_next_read(fd)) break;
    }
  }
  // Whoever leaves first takes the others along: the connection is gone.
  gate.stop();
  release_worker(*w);
}

namespace {

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n)
      : p(static_cast<std::byte*>(std::aligned_alloc(4096, n))), size(n) {}
  ~AlignedBuffer() { std::free(p); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  std::span<std::byte> span() { return {p, size}; }
  std::byte* p;
  size_t size;
};

// Aborts the connection through the fuse control file system, which wakes
// every reader with ENODEV even while a lazy unmount waits for open files.
bool abort_connection(dev_t dev) {
  const char* dir = "/sys/fs/fuse/connections";
  std::string path = std::string(dir) + "/" + std::to_string(minor(dev)) + "/abort";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  bool mounted_here = false;
  if (!fd && errno == ENOENT) {
    // fusectl is often not mounted; as root we can mount it for the abort
    // and take it away again afterwards, leaving the system as it was.
    mounted_here = ::mount("fusectl", dir, "fusectl", 0, nullptr) == 0;
    fd.reset(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  }
  const bool aborted = fd && ::write(fd.get(), "1", 1) == 1;
  fd.reset();
  if (mounted_here) ::umount2(dir, MNT_DETACH);
  return aborted;
}

}  // namespace

Result<void> Session::start_ring(int fuse_fd,
                                std::vector<std::unique_ptr<UringWorker>>* workers,
                                std::vector<std::thread>* threads,
                                std::atomic<unsigned>* running) {
  // The kernel has one queue per possible CPU and will not use the ring
  // until every queue has an entry. Queue q goes to worker q % W; a worker
  // is pinned to the online CPUs among its queues'.
  const unsigned queues = transport::possible_cpus();
  std::vector<unsigned> online = transport::online_cpus();
  unsigned nworkers = opts_.threads ? opts_.threads : static_cast<unsigned>(online.size());
  nworkers = std::clamp(nworkers, 1u, queues);
  // The kernel's payload bound: max(8 KiB, max_write, max_pages pages).
  size_t pages = (neg_.flags & abi::FUSE_MAX_PAGES) ? neg_.max_pages : 32;
  size_t payload = std::max<size_t>({8192, neg_.max_write, pages * 4096}) + 4096;
  unsigned depth = std::max(1u, opts_.uring_depth);

  std::vector<std::future<Result<void>>> started;
  std::vector<std::unique_ptr<std::promise<Result<void>>>> promises;
  for (unsigned i = 0; i < nworkers; ++i) {
    std::vector<uint16_t> qids;
    std::vector<unsigned> cpus;
    for (unsigned q = i; q < queues; q += nworkers) {
      qids.push_back(static_cast<uint16_t>(q));
      if (std::find(online.begin(), online.end(), q) != online.end()) cpus.push_back(q);
    }
    workers->push_back(std::make_unique<UringWorker>(*this, fuse_fd, std::move(qids),
                                                     std::move(cpus), depth, payload));
    promises.push_back(std::make_unique<std::promise<Result<void>>>());
    started.push_back(promises.back()->get_future());
    running->fetch_add(1);
    threads->emplace_back([w = workers->back().get(), p = promises.back().get(), running] {
      w->run(p);
      running->fetch_sub(1);
    });
  }
  Result<void> result;
  for (auto& f : started) {
    Result<void> r = f.get();
    if (!r && result) result = r;
  }
  if (result)
    log_info("serving through io_uring: {} queues, {} worker{}, {} entries per queue",
             queues, nworkers, nworkers == 1 ? "" : "s", depth);
  return result;
}

Result<void> Session::serve(transport::FuseMount& mount) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  unsigned threads = opts_.threads;
  if (threads == 0) threads = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));

  DevWire master(transport::DevChannel::borrow(mount.fd()));
  notify_fd_.store(mount.fd());
  struct ClearNotify {
    std::atomic<int>& fd;
    ~ClearNotify() { fd.store(-1); }
  } clear_notify{notify_fd_};
  Worker first(&master);
  AlignedBuffer first_buf(kRequestBufferSize);

  if (!passthrough_.has_control()) {
    dev_backing_ = std::make_unique<DevBackingControl>(mount.fd());
    passthrough_.set_control(dev_backing_.get());
  }

  // INIT comes first, on the mount's own fd.
  while (!initialized_.load()) {
    auto n = master.channel().receive(first_buf.span());
    if (!n) {
      release_worker(first);
      return n.error();
    }
    process(first, first_buf.span().first(*n));
  }

  // The connection's device number, for an emergency abort. (Never stat
  // the mountpoint here: no worker would be there to answer.)
  dev_t conn_dev = mount.device();

  // io_uring, when agreed at INIT: the ring workers serve the requests and
  // one /dev/fuse reader stays for what the ring does not carry (forgets,
  // interrupts). If the ring cannot be set up the kernel carries on through
  // /dev/fuse, and so do we.
  std::vector<std::unique_ptr<UringWorker>> ring_workers;
  std::vector<std::thread> ring_threads;
  std::atomic<unsigned> ring_running{0};
  bool ring = false;
  if (neg_.uring) {
    auto r = start_ring(mount.fd(), &ring_workers, &ring_threads, &ring_running);
    ring = r.ok();
    if (!r && opts_.transport == Transport::kUring) {
      log_error("{}: setting up FUSE over io_uring failed: {}", mount.mountpoint(),
                r.error().message());
    } else if (!r) {
      log_warn("setting up FUSE over io_uring failed ({}); serving through /dev/fuse",
               r.error().message());
    }
  } else if (opts_.transport == Transport::kUring) {
    log_error("{}: the kernel did not offer FUSE over io_uring at INIT",
              mount.mountpoint());
  } else if (opts_.transport == Transport::kAuto) {
    log_info("the kernel did not offer FUSE over io_uring; serving through /dev/fuse");
  }
  if (!ring && opts_.transport == Transport::kUring) {
    mount.unmount();
    for (auto& w : ring_workers) w->stop();
    for (auto& t : ring_threads) t.join();
    release_worker(first);
    return Errno(EPROTONOSUPPORT);
  }
  if (ring && opts_.transport == Transport::kAuto)
    log_info("serving through FUSE over io_uring ({} ring worker{})", ring_workers.size(),
             ring_workers.size() == 1 ? "" : "s");
  if (ring) threads = 1;
  if (!ring && opts_.transport != Transport::kDev)
    log_info("serving through /dev/fuse with {} worker{}", threads, threads == 1 ? "" : "s");

  std::vector<std::unique_ptr<DevWire>> wires;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> pool;
  std::atomic<unsigned> running{0};
  ReaderGate gate;
  auto start = [&](Worker* w, std::unique_ptr<AlignedBuffer> buf, bool parked) {
    running.fetch_add(1);
    pool.emplace_back([this, w, b = std::move(buf), &running, &gate, parked]() mutable {
      worker_loop(w, b->span(), gate, parked);
      running.fetch_sub(1);
    });
  };
  start(&first, std::make_unique<AlignedBuffer>(kRequestBufferSize), false);
  for (unsigned i = 1; i < threads; ++i) {
    auto ch = transport::DevChannel::clone_from(mount.fd());
    if (!ch) {
      log_warn("cloning /dev/fuse for worker {} failed ({}); serving with {}",
               i, ch.error().message(), i);
      break;
    }
    wires.push_back(std::make_unique<DevWire>(std::move(*ch)));
    workers.push_back(std::make_unique<Worker>(wires.back().get()));
    start(workers.back().get(), std::make_unique<AlignedBuffer>(kRequestBufferSize), true);
  }

  // First stop signal: lazy unmount, which ends the connection as soon as
  // no file is open. If files stay open for a second, or a second signal
  // comes, abort the connection (open files then see ENOTCONN).
  int signals_seen = 0;
  int ticks_since_signal = 0;
  bool aborted = false;
  bool ring_stopped = false;
  while (running.load() > 0 || ring_running.load() > 0) {
    if (running.load() == 0 && !ring_stopped) {
      // The /dev/fuse readers saw the connection end: the ring workers
      // leave as soon as the kernel has handed back their entries.
      for (auto& w : ring_workers) w->stop();
      ring_stopped = true;
    }
    timespec timeout{0, 100 * 1000 * 1000};
    int sig = ::sigtimedwait(&stop_signals, nullptr, &timeout);
    if (sig < 0) {
      if (signals_seen && !aborted && ++ticks_since_signal >= 10) {
        log_info("{}: files still open; aborting the connection", mount.mountpoint());
        aborted = abort_connection(conn_dev);
      }
      continue;
    }
    if (++signals_seen == 1) {
      log_info("signal {}: unmounting {}", sig, mount.mountpoint());
      mount.unmount();
    } else if (!abort_connection(conn_dev)) {
      log_error("cannot abort the FUSE connection; exiting at once");
      std::_Exit(1);
    } else {
      aborted = true;
    }
  }
  for (auto& t : pool) t.join();
  for (auto& w : ring_workers) w->stop();
  for (auto& t : ring_threads) t.join();
  passthrough_.clear();
  if (opts_.debug && (spliced_.load() || splice_fallbacks_.load()))
    log_debug("read replies from files: {} spliced, {} copied", spliced_.load(),
              splice_fallbacks_.load());

  // The kernel is gone: it holds no references any more, and answers no
  // retrieve.
  fail_retrieves();
  for (uint64_t ino : refs_.clear()) fs_.forget(ino);
  if (!destroyed_.exchange(true)) fs_.destroy();
  return {};
}


// ---------------------------------------------------------------------------
// Notifications (fs::Notifier)

Result<void> Session::notify(abi::fuse_notify_code code, iovec* parts, int count) {
  const int fd = notify_fd_.load();
  if (fd < 0 || !initialized_.load() || destroyed_.load()) return Errno(ENOTCONN);
  abi::fuse_out_header oh{};
  size_t len = sizeof(oh);
  iovec iov[4];
  iov[0] = {&oh, sizeof(oh)};
  for (int i = 0; i < count; ++i) {
    iov[i + 1] = parts[i];
    len += parts[i].iov_len;
  }
  oh.len = static_cast<uint32_t>(len);
  oh.error = static_cast<int32_t>(code);
  oh.unique = 0;
  ssize_t n;
  do {
    n = ::writev(fd, iov, count + 1);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == ENODEV ? Errno(ENOTCONN) : last_errno();
  return {};
}

Result<void> Session::notify_inval_inode(fs::Ino ino, int64_t off, int64_t len) {
  abi::fuse_notify_inval_inode_out body{};
  body.ino = ino;
  body.off = off;
  body.len = len;
  iovec v{&body, sizeof(body)};
  return notify(abi::FUSE_NOTIFY_INVAL_INODE, &v, 1);
}

Result<void> Session::inval_entry(fs::Ino parent, std::string_view name) {
  abi::fuse_notify_inval_entry_out body{};
  body.parent = parent;
  body.namelen = static_cast<uint32_t>(name.size());
  char nul = 0;
  iovec v[3] = {{&body, sizeof(body)}, {const_cast<char*>(name.data()), name.size()}, {&nul, 1}};
  return notify(abi::FUSE_NOTIFY_INVAL_ENTRY, v, 3);
}

Result<void> Session::delete_entry(fs::Ino parent, fs::Ino child, std::string_view name) {
  abi::fuse_notify_delete_out body{};
  body.parent = parent;
  body.child = child;
  body.namelen = static_cast<uint32_t>(name.size());
  char nul = 0;
  iovec v[3] = {{&body, sizeof(body)}, {const_cast<char*>(name.data()), name.size()}, {&nul, 1}};
  return notify(abi::FUSE_NOTIFY_DELETE, v, 3);
}

Result<void> Session::store(fs::Ino ino, uint64_t offset, std::span<const std::byte> data) {
  if (data.size() > UINT32_MAX - 4096) return Errno(EINVAL);
  abi::fuse_notify_store_out body{};
  body.nodeid = ino;
  body.offset = offset;
  body.size = static_cast<uint32_t>(data.size());
  iovec v[2] = {{&body, sizeof(body)}, {const_cast<std::byte*>(data.data()), data.size()}};
  return notify(abi::FUSE_NOTIFY_STORE, v, data.empty() ? 1 : 2);
}

Result<void> Session::retrieve(fs::Ino ino, uint64_t offset, uint32_t size,
                               RetrieveDone done) {
  abi::fuse_notify_retrieve_out body{};
  {
    std::lock_guard lock(retrieve_mu_);
    body.notify_unique = next_retrieve_++;
    retrieves_.emplace(body.notify_unique, std::move(done));
  }
  body.nodeid = ino;
  body.offset = offset;
  body.size = size;
  iovec v{&body, sizeof(body)};
  auto r = notify(abi::FUSE_NOTIFY_RETRIEVE, &v, 1);
  if (!r) {
    // The kernel will not answer: forget the callback (never called).
    std::lock_guard lock(retrieve_mu_);
    retrieves_.erase(body.notify_unique);
  }
  return r;
}

void Session::handle_notify_reply(const abi::fuse_in_header& h, ArgReader a) {
  RetrieveDone done;
  {
    std::lock_guard lock(retrieve_mu_);
    auto it = retrieves_.find(h.unique);
    if (it == retrieves_.end()) return;  // not ours (or answered twice)
    done = std::move(it->second);
    retrieves_.erase(it);
  }
  abi::fuse_notify_retrieve_in in;
  std::span<const std::byte> data;
  if (!a.read(&in) || !a.bytes(in.size, &data)) {
    malformed_.fetch_add(1);
    return done(Errno(EIO));
  }
  done(data);
}

void Session::fail_retrieves() {
  std::unordered_map<uint64_t, RetrieveDone> left;
  {
    std::lock_guard lock(retrieve_mu_);
    left.swap(retrieves_);
  }
  for (auto& [unique, done] : left) done(Errno(ENOTCONN));
}

Result<void> Session::poll_wakeup(uint64_t kh) {
  abi::fuse_notify_poll_wakeup_out body{};
  body.kh = kh;
  iovec v{&body, sizeof(body)};
  return notify(abi::FUSE_NOTIFY_POLL, &v, 1);
}

}  // namespace zest::server
