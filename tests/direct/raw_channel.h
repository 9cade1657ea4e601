// A bare client of a mount's channel (layout/channel_wire.h) for tests:
// sends exactly the bytes and descriptors a test chooses, so that hostile
// and malformed requests can be sent, and reads replies and recalls.
#pragma once

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "layout/channel_path.h"
#include "layout/channel_wire.h"

namespace zest::testing {

namespace cw = layout::wire;

class RawChannel {
 public:
  // Connects to the channel of the mount at `mountpoint` (or of the socket
  // at `socket_path` when given).
  static std::optional<RawChannel> Connect(const std::string& mountpoint,
                                           const std::string& socket_path = "") {
    std::string path = socket_path;
    if (path.empty()) {
      struct stat st;
      if (::stat(mountpoint.c_str(), &st) != 0) return std::nullopt;
      for (const std::string& d : layout::channel_dirs()) {
        std::string p = d + "/" + layout::channel_name(st.st_dev);
        if (::access(p.c_str(), F_OK) == 0) {
          path = p;
          break;
        }
      }
    }
    if (path.empty()) return std::nullopt;
    RawChannel c;
    c.fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (::connect(c.fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return std::nullopt;
    timeval tv{10, 0};
    ::setsockopt(c.fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return c;
  }
  RawChannel() = default;
  RawChannel(RawChannel&& o) noexcept { *this = std::move(o); }
  RawChannel& operator=(RawChannel&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(fds_, o.fds_);
    return *this;
  }
  ~RawChannel() {
    if (fd_ >= 0) ::close(fd_);
    for (int f : fds_) ::close(f);
  }
  int fd() const { return fd_; }
  // Descriptors the last reply carried (owned here).
  const std::vector<int>& fds() const { return fds_; }

  // Sends raw bytes with descriptors; false if the socket refused.
  bool SendRaw(const void* p, size_t n, const std::vector<int>& fds = {}) {
    iovec iov{const_cast<void*>(p), n};
    msghdr h{};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    std::vector<char> cbuf(CMSG_SPACE(sizeof(int) * (fds.empty() ? 1 : fds.size())));
    if (!fds.empty()) {
      h.msg_control = cbuf.data();
      h.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return ::sendmsg(fd_, &h, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
  }
  // Receives one reply: its errno (or -1 when nothing came) and body.
  int Receive(std::vector<std::byte>* body = nullptr) {
    for (int f : fds_) ::close(f);
    fds_.clear();
    std::vector<std::byte> buf(cw::kMaxMessage);
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    iovec iov{buf.data(), buf.size()};
    msghdr h{};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = cbuf;
    h.msg_controllen = sizeof(cbuf);
    const ssize_t n = ::recvmsg(fd_, &h, MSG_CMSG_CLOEXEC);
    if (n < static_cast<ssize_t>(sizeof(cw::Reply))) return -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
      const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; ++i) {
        int f;
        std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds_.push_back(f);
      }
    }
    cw::Reply r;
    std::memcpy(&r, buf.data(), sizeof(r));
    if (body) body->assign(buf.begin() + sizeof(r), buf.begin() + n);
    return r.error;
  }
  // One well-formed request; returns the reply's errno (-1: no reply).
  template <class T>
  int Call(uint32_t op, const T& in, std::vector<std::byte>* body = nullptr,
           const std::vector<int>& fds = {}, const std::vector<std::byte>& tail = {}) {
    std::vector<std::byte> m(sizeof(cw::Request) + sizeof(T) + tail.size());
    cw::Request h{op, static_cast<uint32_t>(m.size()), ++seq_};
    std::memcpy(m.data(), &h, sizeof(h));
    std::memcpy(m.data() + sizeof(h), &in, sizeof(T));
    if (!tail.empty()) std::memcpy(m.data() + sizeof(h) + sizeof(T), tail.data(), tail.size());
    if (!SendRaw(m.data(), m.size(), fds)) return -1;
    return Receive(body);
  }
  int Attach(bool write, cw::AttachOut* out = nullptr) {
    std::vector<std::byte> b;
    const int e = Call(cw::kAttach, cw::AttachIn{cw::kVersion, write ? cw::kAttachWantWrite : 0u}, &b);
    if (e == 0 && out && b.size() == sizeof(*out)) std::memcpy(out, b.data(), sizeof(*out));
    return e;
  }
  int Stats(cw::StatsOut* out) {
    std::vector<std::byte> m(sizeof(cw::Request));
    cw::Request h{cw::kStats, static_cast<uint32_t>(m.size()), ++seq_};
    std::memcpy(m.data(), &h, sizeof(h));
    if (!SendRaw(m.data(), m.size())) return -1;
    std::vector<std::byte> b;
    const int e = Receive(&b);
    if (e == 0 && b.size() == sizeof(*out)) std::memcpy(out, b.data(), sizeof(*out));
    return e;
  }

 private:
  int fd_ = -1;
  uint64_t seq_ = 0;
  std::vector<int> fds_;
};

}  // namespace zest::testing
