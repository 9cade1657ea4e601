#include "direct/channel_client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "layout/channel_path.h"
#include "layout/recv_polled.h"

namespace zest::direct {

namespace w = layout::wire;

namespace {

// A reply slower than this means a stopped server: fail, never hang.
constexpr int kReplyTimeoutSec = 10;
// How long a request polls for its reply before sleeping in recv.
constexpr uint64_t kSpinNs = 50'000;

Result<size_t> recv_with_fds(int fd, std::vector<std::byte>* buf, std::vector<UniqueFd>* fds, uint64_t spin_ns = 0) {
  buf->resize(w::kMaxMessage);
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
  iovec iov{buf->data(), buf->size()};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  h.msg_control = cbuf;
  h.msg_controllen = sizeof(cbuf);
  const ssize_t n = layout::recvmsg_polled(fd, &h, MSG_CMSG_CLOEXEC, spin_ns);
  if (n < 0) return last_errno();
  if (fds) fds->clear();
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (fds)
        fds->emplace_back(f);
      else
        ::close(f);
    }
  }
  buf->resize(static_cast<size_t>(n));
  return static_cast<size_t>(n);
}

Result<void> send_with_fd(int sock, const void* p, size_t len, int fd) {
  iovec iov{const_cast<void*>(p), len};
  msghdr h{};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    h.msg_control = cbuf;
    h.msg_controllen = sizeof(cbuf);
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &h, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return last_errno();
  return {};
}

}  // namespace

ChannelClient::~ChannelClient() {
  if (notify_) ::shutdown(notify_.get(), SHUT_RDWR);
  if (listener_.joinable()) listener_.join();
  if (mbox_) ::munmap(mbox_, layout::kMailboxBytes);
}

Result<void> ChannelClient::attach(dev_t dev, bool want_write, OnRecall on_recall,
                                   OnLost on_lost) {
  on_recall_ = std::move(on_recall);
  on_lost_ = std::move(on_lost);
  int last = ENOENT;
  for (const std::string& dir : layout::channel_dirs()) {
    const std::string path = dir + "/" + layout::channel_name(dev);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof(a.sun_path)) continue;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!s) return last_errno();
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      last = errno;
      continue;
    }
    req_ = std::move(s);
    break;
  }
  if (!req_) return Errno(last);
  timeval tv{kReplyTimeoutSec, 0};
  ::setsockopt(req_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(req_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

  struct {
    w::Request h;
    w::AttachIn in;
  } msg{{w::kAttach, sizeof(msg), seq_atomic_.fetch_add(1) + 1},
         {w::kVersion, want_write ? w::kAttachWantWrite : 0u}};
  if (auto r = send_with_fd(req_.get(), &msg, sizeof(msg), -1); !r) return r.error();
  std::vector<std::byte> buf;
  std::vector<UniqueFd> fds;
  auto n = recv_with_fds(req_.get(), &buf, &fds);
  if (!n) return n.error();
  w::Reply rh;
  if (*n < sizeof(rh)) return Errno(EPROTO);
  std::memcpy(&rh, buf.data(), sizeof(rh));
  if (rh.error) return Errno(rh.error);
  if (*n != sizeof(rh) + sizeof(info_) || fds.size() < 2) return Errno(EPROTO);
  std::memcpy(&info_, buf.data() + sizeof(rh), sizeof(info_));
  if (info_.version != w::kVersion) return Errno(EPROTO);
  if (fds.size() < 3) return Errno(EPROTO);
  table_ = std::move(fds[0]);
  notify_ = std::move(fds[1]);
  mbox_fd_ = std::move(fds[2]);
  if (info_.pool_access != w::kPoolNone) {
    if (fds.size() != 4) return Errno(EPROTO);
    pool_ = std::move(fds[3]);
  }
  void* mb = ::mmap(nullptr, layout::kMailboxBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                    mbox_fd_.get(), 0);
  if (mb != MAP_FAILED) mbox_ = static_cast<layout::MailboxHeader*>(mb);
  listener_ = std::thread([this] { listen(); });
  return {};
}

void ChannelClient::listen() {
  std::vector<std::byte> buf;
  for (;;) {
    auto n = recv_with_fds(notify_.get(), &buf, nullptr);
    if (!n || *n == 0) break;
    w::Request h;
    w::RecallOut r;
    if (*n != sizeof(h) + sizeof(r)) continue;
    std::memcpy(&h, buf.data(), sizeof(h));
    std::memcpy(&r, buf.data() + sizeof(h), sizeof(r));
    if (h.op != w::kRecall) continue;
    if (on_recall_)
      on_recall_(r.lease);
    else
      give_back(w::ReturnIn{r.lease, 0, 0, 0, 0, 0});
  }
  lost_.store(true, std::memory_order_release);
  if (mbox_) {
    // Nobody will answer: a request waiting in the mailbox ends now.
    mbox_->state.store(layout::kClosed, std::memory_order_seq_cst);
    layout::futex_wake_all(&mbox_->state);
  }
  if (on_lost_) on_lost_();
}

void ChannelClient::give_back(const w::ReturnIn& r) {
  struct {
    w::Request h;
    w::ReturnIn in;
  } msg{{w::kReturn, sizeof(msg), 0}, r};
  (void)send_with_fd(notify_.get(), &msg, sizeof(msg), -1);
}

Result<void> ChannelClient::call_mailbox(std::span<const std::byte> msg, uint64_t seq,
                                         std::vector<std::byte>* body) {
  using namespace layout;
  std::lock_guard lock(mbox_mu_);
  if (mbox_->state.load() == kClosed) return Errno(ENOTCONN);
  std::memcpy(mailbox_data(mbox_), msg.data(), msg.size());
  mbox_->len = static_cast<uint32_t>(msg.size());
  if (uint32_t was; !mailbox_post_request(mbox_, &was))
    return Errno(was == kClosed ? ENOTCONN : EPROTO);
  const uint32_t st = mailbox_wait(mbox_, kRequest, &mbox_->client_sleeps, kSpinNs,
                                   uint64_t(kReplyTimeoutSec) * 1000000000u);
  if (st == kClosed) return Errno(ENOTCONN);
  if (st != kReply) {
    lost_.store(true);  // a stopped server: fail, never hang
    return Errno(ETIMEDOUT);
  }
  const uint32_t n = std::min<uint32_t>(mbox_->len, kMailboxData);
  w::Reply rh{};
  if (n >= sizeof(rh)) std::memcpy(&rh, mailbox_data(mbox_), sizeof(rh));
  if (n >= sizeof(rh) && body) body->assign(mailbox_data(mbox_) + sizeof(rh), mailbox_data(mbox_) + n);
  // Consumed: back to Idle, unless the server closed meanwhile.
  uint32_t expect = kReply;
  if (mbox_->state.compare_exchange_strong(expect, kIdle) && mbox_->server_sleeps.load())
    futex_wake_all(&mbox_->state);
  if (n < sizeof(rh) || rh.seq != seq || rh.len != n) return Errno(EPROTO);
  if (rh.error) return Errno(rh.error);
  return {};
}

Result<void> ChannelClient::call(uint32_t op, std::span<const std::byte> in, int fd,
                                 std::vector<std::byte>* body) {
  if (lost()) return Errno(ENOTCONN);
  std::vector<std::byte> msg(sizeof(w::Request) + in.size());
  const uint64_t seq = seq_atomic_.fetch_add(1) + 1;
  w::Request h{op, static_cast<uint32_t>(msg.size()), seq};
  std::memcpy(msg.data(), &h, sizeof(h));
  if (!in.empty()) std::memcpy(msg.data() + sizeof(h), in.data(), in.size());
  if (mbox_ && fd < 0 && op != w::kAttach && op != w::kLease && msg.size() <= layout::kMailboxData)
    return call_mailbox(msg, seq, body);
  std::lock_guard lock(req_mu_);
  if (auto r = send_with_fd(req_.get(), msg.data(), msg.size(), fd); !r)
    return Errno(r.error().value == EPIPE ? ENOTCONN : r.error().value);
  std::vector<std::byte> buf;
  auto n = recv_with_fds(req_.get(), &buf, nullptr, kSpinNs);
  if (!n) {
    const int e = n.error().value;
    lost_.store(true);  // the stream of replies is out of step now
    return Errno(e == EAGAIN || e == EWOULDBLOCK ? ETIMEDOUT : e);
  }
  if (*n == 0) {
    lost_.store(true);
    return Errno(ENOTCONN);
  }
  w::Reply rh;
  if (*n < sizeof(rh)) return Errno(EPROTO);
  std::memcpy(&rh, buf.data(), sizeof(rh));
  if (rh.seq != seq || rh.len != *n) return Errno(EPROTO);
  if (rh.error) return Errno(rh.error);
  if (body) body->assign(buf.begin() + sizeof(rh), buf.end());
  return {};
}

}  // namespace zest::direct
