#include "layout/channel_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "base/log.h"
#include "layout/channel_path.h"
#include "layout/channel_wire.h"
#include "layout/recv_polled.h"
#include "layout/mailbox.h"

namespace zest::layout {

namespace {

constexpr int kMaxFdsIn = 4;  // also the most a reply carries
// How long a client's request threads poll for the next request before
// they sleep (a client doing I/O sends the next one within microseconds).
constexpr uint64_t kSpinNs = 50'000;

// The mailbox thread answers into the client's mailbox, the request thread
// on the socket: Conn::reply looks here to know which (each thread is one
// client's, for its whole life).
thread_local MailboxHeader* t_mailbox = nullptr;

// One received message and the descriptors that came with it.
struct Message {
  std::vector<std::byte> bytes;
  std::vector<UniqueFd> fds;
  bool truncated = false;
};

// 0 bytes: the peer closed (or the socket was shut down).
Result<size_t> receive(int fd, Message* m, uint64_t spin_ns = 0) {
  m->bytes.resize(wire::kMaxMessage);
  m->fds.clear();
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFdsIn)];
  iovec iov{m->bytes.data(), m->bytes.size()};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  h.msg_control = cbuf;
  h.msg_controllen = sizeof(cbuf);
  const ssize_t n = recvmsg_polled(fd, &h, MSG_CMSG_CLOEXEC, spin_ns);
  if (n < 0) return last_errno();
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      m->fds.emplace_back(f);  // closed with the message unless taken
    }
  }
  // MSG_CTRUNC: fds beyond the buffer were closed by the kernel.
  m->truncated = (h.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  m->bytes.resize(static_cast<size_t>(n));
  return static_cast<size_t>(n);
}

Result<void> send_msg(int fd, const void* data, size_t len, std::span<const int> fds,
                      int flags = 0) {
  iovec iov{const_cast<void*>(data), len};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFdsIn)];
  if (!fds.empty()) {
    h.msg_control = cbuf;
    h.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd, &h, MSG_NOSIGNAL | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return last_errno();
  return {};
}

// Opens `path` with the peer's file-system identity, in a thread of its
// own (fsuid, fsgid and groups are per thread for the raw system calls; a
// non-zero fsuid drops the file capabilities, as for the peer itself).
Result<UniqueFd> open_as_peer(const ucred& peer, const std::vector<gid_t>& groups,
                              const std::string& path, int flags) {
  Result<UniqueFd> out = Errno(EIO);
  std::thread t([&] {
    if (::geteuid() == 0) {
      if (::syscall(SYS_setgroups, groups.size(), groups.data()) != 0 ||
          (::syscall(SYS_setfsgid, peer.gid), ::syscall(SYS_setfsgid, -1) != static_cast<long>(peer.gid)) ||
          (::syscall(SYS_setfsuid, peer.uid), ::syscall(SYS_setfsuid, -1) != static_cast<long>(peer.uid))) {
        out = Errno(EPERM);
        return;
      }
    } else if (peer.uid != ::geteuid()) {
      // Not root: we cannot take another identity; only our own user.
      out = Errno(EACCES);
      return;
    }
    int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    out = fd < 0 ? Result<UniqueFd>(last_errno()) : Result<UniqueFd>(UniqueFd(fd));
  });
  t.join();
  return out;
}

template <class T>
bool take(const Message& m, size_t* pos, T* out) {
  if (m.bytes.size() - *pos < sizeof(T)) return false;
  std::memcpy(out, m.bytes.data() + *pos, sizeof(T));
  *pos += sizeof(T);
  return true;
}

}  // namespace

// One client: its sockets, its state table, its threads.
struct ChannelServer::Conn final : LeaseClient {
  ChannelServer* srv = nullptr;
  UniqueFd req;     // the accepted connection
  UniqueFd notify;  // our end of the notify socket pair
  StateTable table;
  LeaseManager::ClientId id = 0;
  bool attached = false;
  ucred peer{};
  std::vector<gid_t> groups;
  uint32_t pool = wire::kPoolNone;
  std::thread req_thread, notify_thread, mbox_thread;
  std::atomic<bool> done{false};
  UniqueFd mbox_fd;
  MailboxHeader* mbox = nullptr;
  std::atomic<bool> stopping{false};

  ~Conn() {
    if (mbox) ::munmap(mbox, kMailboxBytes);
  }

  void recall(uint64_t lease) override {
    wire::Request h{wire::kRecall, sizeof(h) + sizeof(wire::RecallOut), 0};
    std::byte buf[sizeof(h) + sizeof(wire::RecallOut)];
    wire::RecallOut r{lease};
    std::memcpy(buf, &h, sizeof(h));
    std::memcpy(buf + sizeof(h), &r, sizeof(r));
    // Never blocks: a client that lets its socket fill is fenced instead.
    (void)send_msg(notify.get(), buf, sizeof(buf), {}, MSG_DONTWAIT);
  }

  void reply(uint64_t seq, int err, const void* body = nullptr, size_t len = 0,
             std::span<const int> fds = {}) {
    if (MailboxHeader* mb = t_mailbox) {
      wire::Reply r{err, static_cast<uint32_t>(sizeof(r) + len), seq};
      if (sizeof(r) + len > kMailboxData || !fds.empty()) r = {EPROTO, sizeof(r), seq}, len = 0;
      std::memcpy(mailbox_data(mb), &r, sizeof(r));
      if (len) std::memcpy(mailbox_data(mb) + sizeof(r), body, len);
      mb->len = r.len;
      mailbox_post(mb, kReply, &mb->client_sleeps);
      return;
    }
    std::vector<std::byte> out(sizeof(wire::Reply) + len);
    wire::Reply r{err, static_cast<uint32_t>(out.size()), seq};
    std::memcpy(out.data(), &r, sizeof(r));
    if (len) std::memcpy(out.data() + sizeof(r), body, len);
    (void)send_msg(req.get(), out.data(), out.size(), fds);
  }

  Status give_back(const wire::ReturnIn& in);
  void serve_requests();
  void serve_notify();
  void serve_mailbox();
  void handle(const Message& m);
  void do_attach(uint64_t seq, const Message& m);
  void do_lease(uint64_t seq, const Message& m, const wire::LeaseIn& in);
  void do_map(uint64_t seq, const wire::MapIn& in);
  void do_commit(uint64_t seq, const Message& m, const wire::CommitIn& in);
};

Status ChannelServer::Conn::give_back(const wire::ReturnIn& in) {
  if ((in.flags & wire::kReturnSetMtime) && in.mtime_nsec < 1000000000u) {
    // The mtime of in-place overwrites; refused like any commit when the
    // lease was fenced or the layout moved (the overwrites raced a change
    // that set the times itself).
    Status s = srv->leases_->commit(id, in.lease, in.ino, in.generation, {}, std::nullopt,
                                    {static_cast<time_t>(in.mtime_sec),
                                     static_cast<long>(in.mtime_nsec)});
    if (s && srv->invalidate_) srv->invalidate_(in.ino, -1, 0);
  }
  return srv->leases_->release(id, in.lease);
}

void ChannelServer::Conn::serve_requests() {
  Message m;
  for (;;) {
    auto n = receive(req.get(), &m, kSpinNs);
    if (!n || *n == 0) break;
    handle(m);
  }
  if (attached) srv->leases_->detach(id);  // every lease, at once
  attached = false;
  // The peer sees the end now, not when the connection is reaped (an
  // empty message reads as the end on a SOCK_SEQPACKET socket, too).
  ::shutdown(req.get(), SHUT_RDWR);
  ::shutdown(notify.get(), SHUT_RDWR);
  stopping.store(true);
  if (mbox) {
    mbox->state.store(kClosed, std::memory_order_seq_cst);
    futex_wake_all(&mbox->state);
  }
  done.store(true);
}

void ChannelServer::Conn::serve_mailbox() {
  t_mailbox = mbox;
  Message m;
  for (;;) {
    if (stopping.load()) return;
    uint32_t st = mbox->state.load(std::memory_order_acquire);
    if (st == kClosed) return;
    if (st != kRequest) {
      // Poll, then sleep; wake up now and then to see whether we stop.
      mailbox_wait(mbox, st, &mbox->server_sleeps, kSpinNs, 100'000'000);
      continue;
    }
    // Only a private copy is parsed: the client may scribble meanwhile.
    const size_t len = std::min<size_t>(mbox->len, kMailboxData);
    m.bytes.assign(mailbox_data(mbox), mailbox_data(mbox) + len);
    m.fds.clear();
    m.truncated = mbox->len > kMailboxData;
    wire::Request h{};
    if (len >= sizeof(h)) std::memcpy(&h, m.bytes.data(), sizeof(h));
    // Requests that carry descriptors come by the socket only.
    if (len >= sizeof(h) && (h.op == wire::kAttach || h.op == wire::kLease))
      reply(h.seq, EPROTO);
    else
      handle(m);
  }
}

void ChannelServer::Conn::serve_notify() {
  Message m;
  for (;;) {
    auto n = receive(notify.get(), &m);
    if (!n || *n == 0) break;
    wire::Request h;
    wire::ReturnIn in;
    size_t pos = 0;
    if (!take(m, &pos, &h) || h.op != wire::kReturn || h.len != m.bytes.size() ||
        !take(m, &pos, &in) || pos != m.bytes.size())
      continue;  // nothing else may come this way; ignored
    (void)give_back(in);
  }
}

void ChannelServer::Conn::handle(const Message& m) {
  wire::Request h{};
  size_t pos = 0;
  if (!take(m, &pos, &h)) return reply(0, EPROTO);
  if (m.truncated || h.len != m.bytes.size()) return reply(h.seq, EPROTO);
  if (h.op == wire::kAttach) return do_attach(h.seq, m);
  if (!attached) return reply(h.seq, EPROTO);
  switch (h.op) {
    case wire::kLease: {
      wire::LeaseIn in;
      if (!take(m, &pos, &in) || pos != m.bytes.size() || m.fds.size() != 1)
        return reply(h.seq, EPROTO);
      return do_lease(h.seq, m, in);
    }
    case wire::kMap: {
      wire::MapIn in;
      if (!take(m, &pos, &in) || pos != m.bytes.size() || !m.fds.empty())
        return reply(h.seq, EPROTO);
      return do_map(h.seq, in);
    }
    case wire::kCommit: {
      wire::CommitIn in;
      if (!take(m, &pos, &in) || in.count > wire::kMaxExtents ||
          m.bytes.size() - pos != size_t(in.count) * sizeof(wire::Extent) || !m.fds.empty())
        return reply(h.seq, EPROTO);
      return do_commit(h.seq, m, in);
    }
    case wire::kReturn: {
      wire::ReturnIn in;
      if (!take(m, &pos, &in) || pos != m.bytes.size() || !m.fds.empty())
        return reply(h.seq, EPROTO);
      Status s = give_back(in);
      return reply(h.seq, s ? 0 : s.error().value);
    }
    case wire::kStats: {
      if (pos != m.bytes.size()) return reply(h.seq, EPROTO);
      const LeaseStats st = srv->leases_->stats();
      wire::StatsOut o{st.granted, st.returned, st.recalled, st.fenced, st.active, st.zombies};
      return reply(h.seq, 0, &o, sizeof(o));
    }
    default:
      return reply(h.seq, EPROTO);
  }
}

void ChannelServer::Conn::do_attach(uint64_t seq, const Message& m) {
  wire::AttachIn in;
  size_t pos = sizeof(wire::Request);
  if (attached) return reply(seq, EISCONN);
  if (!take(m, &pos, &in) || pos != m.bytes.size() || !m.fds.empty()) return reply(seq, EPROTO);
  if (in.version != wire::kVersion) return reply(seq, EPROTO);
  const ChannelOptions& o = srv->opts_;
  auto t = StateTable::create(o.table_slots);
  if (!t) return reply(seq, t.error().value);
  table = std::move(*t);
  auto reader = table.reader_fd();
  if (!reader) return reply(seq, reader.error().value);
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
    return reply(seq, errno);
  mbox_fd.reset(::memfd_create("zest-mailbox", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mbox_fd || ::ftruncate(mbox_fd.get(), kMailboxBytes) != 0 ||
      ::fcntl(mbox_fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    ::close(sp[0]);
    ::close(sp[1]);
    return reply(seq, errno ? errno : EIO);
  }
  void* mb = ::mmap(nullptr, kMailboxBytes, PROT_READ | PROT_WRITE, MAP_SHARED, mbox_fd.get(), 0);
  if (mb == MAP_FAILED) {
    ::close(sp[0]);
    ::close(sp[1]);
    return reply(seq, errno);
  }
  mbox = static_cast<MailboxHeader*>(mb);
  notify.reset(sp[0]);
  UniqueFd theirs(sp[1]);
  // The pool, as the peer could open it: read-write if asked and allowed,
  // else read-only, else nothing (the kernel mount still serves it).
  UniqueFd poolfd;
  pool = wire::kPoolNone;
  if (in.flags & wire::kAttachWantWrite) {
    if (auto f = open_as_peer(peer, groups, o.pool_path, O_RDWR); f) {
      poolfd = std::move(*f);
      pool = wire::kPoolWrite;
    }
  }
  if (!poolfd) {
    if (auto f = open_as_peer(peer, groups, o.pool_path, O_RDONLY); f) {
      poolfd = std::move(*f);
      pool = wire::kPoolRead;
    }
  }
  wire::AttachOut out{};
  out.version = wire::kVersion;
  out.pool_access = pool;
  out.pool_size = o.pool_size;
  out.block_size = o.block_size;
  out.table_slots = o.table_slots;
  out.persist = o.persist_msync ? 1 : 0;
  out.recall_timeout_ms = static_cast<uint32_t>(o.recall_timeout.count());
  out.fs_dev = o.fs_dev;
  id = srv->leases_->attach(this, &table);
  attached = true;
  notify_thread = std::thread([this] { serve_notify(); });
  mbox_thread = std::thread([this] { serve_mailbox(); });
  std::vector<int> fds{reader->get(), theirs.get(), mbox_fd.get()};
  if (poolfd) fds.push_back(poolfd.get());
  reply(seq, 0, &out, sizeof(out), fds);
}

void ChannelServer::Conn::do_lease(uint64_t seq, const Message& m, const wire::LeaseIn& in) {
  if (in.mode != wire::kRead && in.mode != wire::kWrite) return reply(seq, EINVAL);
  if (pool == wire::kPoolNone) return reply(seq, EACCES);
  if (in.mode == wire::kWrite && pool != wire::kPoolWrite) return reply(seq, EACCES);
  // The proof: a file of this mount, opened for what the lease allows.
  const int fd = m.fds[0].get();
  struct stat st;
  if (::fstat(fd, &st) != 0) return reply(seq, EBADF);
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || (fl & O_PATH)) return reply(seq, EBADF);
  if (st.st_dev != srv->opts_.fs_dev) return reply(seq, EXDEV);
  if (!S_ISREG(st.st_mode)) return reply(seq, S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
  const int acc = fl & O_ACCMODE;
  if (in.mode == wire::kRead && acc == O_WRONLY) return reply(seq, EBADF);
  if (in.mode == wire::kWrite && acc == O_RDONLY) return reply(seq, EBADF);
  if (in.len == 0) return reply(seq, EINVAL);
  const fs::Ino ino = st.st_ino;
  auto g = srv->leases_->acquire(id, ino, in.off, in.len,
                                 in.mode == wire::kWrite ? LeaseMode::Write : LeaseMode::Read);
  if (!g) return reply(seq, g.error().value);
  // A write lease: pages the kernel cached would go stale under direct
  // stores; drop them (kernel reads now come to us and recall first).
  if (in.mode == wire::kWrite && srv->invalidate_) srv->invalidate_(ino, 0, 0);
  wire::LeaseOut out{g->id, g->word, ino, g->slot, 0};
  reply(seq, 0, &out, sizeof(out));
}

void ChannelServer::Conn::do_map(uint64_t seq, const wire::MapIn& in) {
  if (in.intent != wire::kIntentRead && in.intent != wire::kIntentWrite)
    return reply(seq, EINVAL);
  auto l = srv->leases_->map(id, in.lease, in.ino, in.off, in.len,
                             in.intent == wire::kIntentWrite ? fs::LayoutIntent::Write
                                                             : fs::LayoutIntent::Read);
  if (!l) return reply(seq, l.error().value);
  const size_t n = std::min<size_t>(l->extents.size(), wire::kMaxExtents);
  std::vector<std::byte> body(sizeof(wire::MapOut) + n * sizeof(wire::Extent));
  wire::MapOut mo{l->generation, l->file_size, static_cast<uint32_t>(n), 0};
  std::memcpy(body.data(), &mo, sizeof(mo));
  for (size_t i = 0; i < n; ++i) {
    const fs::LayoutExtent& e = l->extents[i];
    using S = fs::LayoutExtent::State;
    wire::Extent w{e.offset, e.length, e.pool_offset,
                   e.state == S::Written     ? wire::kWritten
                   : e.state == S::Unwritten ? wire::kUnwritten
                                             : wire::kHole,
                   0};
    std::memcpy(body.data() + sizeof(mo) + i * sizeof(w), &w, sizeof(w));
  }
  reply(seq, 0, body.data(), body.size());
}

void ChannelServer::Conn::do_commit(uint64_t seq, const Message& m, const wire::CommitIn& in) {
  std::vector<fs::LayoutExtent> ext(in.count);
  size_t pos = sizeof(wire::Request) + sizeof(wire::CommitIn);
  uint64_t lo = ~0ull, hi = 0;
  for (uint32_t i = 0; i < in.count; ++i) {
    wire::Extent w;
    take(m, &pos, &w);
    ext[i] = {w.offset, w.length, w.pool_offset, fs::LayoutExtent::State::Written};
    lo = std::min(lo, w.offset);
    if (w.length <= ~0ull - w.offset) hi = std::max(hi, w.offset + w.length);
  }
  std::optional<uint64_t> size;
  if (in.new_size != wire::kNoSize) size = in.new_size;
  Status s = srv->leases_->commit(id, in.lease, in.ino, in.generation, ext, size,
                                  {static_cast<time_t>(in.mtime_sec), static_cast<long>(in.mtime_nsec)});
  if (s && srv->invalidate_) {
    // Size and times changed; pages the kernel read as zeros are data now.
    if (in.count)
      srv->invalidate_(in.ino, static_cast<int64_t>(lo), static_cast<int64_t>(hi - lo));
    else
      srv->invalidate_(in.ino, -1, 0);
  }
  reply(seq, s ? 0 : s.error().value);
}

ChannelServer::ChannelServer(fs::LayoutProvider& provider, ChannelOptions options,
                             Invalidate invalidate)
    : opts_(std::move(options)),
      invalidate_(std::move(invalidate)),
      leases_(std::make_unique<LeaseManager>(provider, LeaseOptions{opts_.recall_timeout})),
      gate_(leases_.get()) {}

Result<std::unique_ptr<ChannelServer>> ChannelServer::start(fs::LayoutProvider& provider,
                                                            ChannelOptions options,
                                                            Invalidate invalidate,
                                                            std::string* why) {
  if (options.table_slots == 0 || options.table_slots > 65536) {
    *why = "table_slots out of range";
    return Errno(EINVAL);
  }
  std::unique_ptr<ChannelServer> s(
      new ChannelServer(provider, std::move(options), std::move(invalidate)));
  ChannelOptions& o = s->opts_;
  if (o.socket_path.empty()) {
    for (const std::string& d : channel_dirs()) {
      std::error_code ec;
      std::filesystem::create_directories(d, ec);
      if (!ec && ::access(d.c_str(), W_OK | X_OK) == 0) {
        o.socket_path = d + "/" + channel_name(o.fs_dev);
        break;
      }
    }
    if (o.socket_path.empty()) {
      *why = "no writable runtime directory for the channel socket (/run/zest, $XDG_RUNTIME_DIR)";
      return Errno(EACCES);
    }
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (o.socket_path.size() >= sizeof(addr.sun_path)) {
    *why = o.socket_path + ": path too long for a Unix socket";
    return Errno(ENAMETOOLONG);
  }
  std::memcpy(addr.sun_path, o.socket_path.c_str(), o.socket_path.size() + 1);
  s->listen_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s->listen_) return last_errno();
  // A socket left by a server that died on a mount with the same device
  // number is stale: this mount is the only one with that number now.
  struct stat st;
  if (::lstat(o.socket_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(o.socket_path.c_str());
  if (::bind(s->listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    *why = o.socket_path + ": bind: " + std::strerror(e);
    return Errno(e);
  }
  ::chmod(o.socket_path.c_str(), 0666);  // anyone may ask; every request is checked
  struct stat bound;
  if (::lstat(o.socket_path.c_str(), &bound) == 0) s->socket_ino_ = bound.st_ino;
  if (::listen(s->listen_.get(), 64) != 0) return last_errno();
  s->stop_.reset(::eventfd(0, EFD_CLOEXEC));
  if (!s->stop_) return last_errno();
  s->acceptor_ = std::thread([p = s.get()] { p->accept_loop(); });
  return s;
}

void ChannelServer::accept_loop() {
  for (;;) {
    pollfd p[2] = {{listen_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log_error("zest channel: poll: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents) return;
    UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) continue;
    reap(false);
    {
      std::lock_guard lock(mu_);
      if (conns_.size() >= opts_.max_clients) continue;  // closed: the client sees EOF
    }
    auto conn = std::make_unique<Conn>();
    conn->srv = this;
    socklen_t len = sizeof(conn->peer);
    if (::getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &conn->peer, &len) != 0) continue;
    // The supplementary groups the kernel captured at connect.
    std::vector<gid_t> g(64);
    for (;;) {
      socklen_t gl = static_cast<socklen_t>(g.size() * sizeof(gid_t));
      if (::getsockopt(c.get(), SOL_SOCKET, SO_PEERGROUPS, g.data(), &gl) == 0) {
        g.resize(gl / sizeof(gid_t));
        break;
      }
      if (errno != ERANGE || g.size() > 65536) {
        g.clear();
        break;
      }
      g.resize(gl / sizeof(gid_t) + 1);
    }
    conn->groups = std::move(g);
    // A client that stops reading must not stall a reply forever.
    timeval tv{5, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    conn->req = std::move(c);
    Conn* raw = conn.get();
    {
      std::lock_guard lock(mu_);
      conns_.push_back(std::move(conn));
    }
    raw->req_thread = std::thread([raw] { raw->serve_requests(); });
  }
}

void ChannelServer::reap(bool all) {
  std::list<std::unique_ptr<Conn>> gone;
  {
    std::lock_guard lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (all || (*it)->done.load()) {
        gone.push_back(std::move(*it));
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : gone) {
    ::shutdown(c->req.get(), SHUT_RDWR);
    if (c->req_thread.joinable()) c->req_thread.join();
    if (c->notify) ::shutdown(c->notify.get(), SHUT_RDWR);
    if (c->notify_thread.joinable()) c->notify_thread.join();
    c->stopping.store(true);
    if (c->mbox) futex_wake_all(&c->mbox->state);
    if (c->mbox_thread.joinable()) c->mbox_thread.join();
  }
}

size_t ChannelServer::clients() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& c : conns_) n += !c->done.load();
  return n;
}

ChannelServer::~ChannelServer() {
  uint64_t one = 1;
  if (stop_) (void)!::write(stop_.get(), &one, sizeof(one));
  if (acceptor_.joinable()) acceptor_.join();
  reap(true);
  // Only our own socket: once the mount is gone, its device number (and so
  // the path) may already belong to the next mount's channel.
  struct stat st;
  if (::lstat(opts_.socket_path.c_str(), &st) == 0 && st.st_ino == socket_ino_)
    ::unlink(opts_.socket_path.c_str());
}

}  // namespace zest::layout
