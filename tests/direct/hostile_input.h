// Hostile input for the client channel (layout/channel_server.cc): turns
// arbitrary bytes into a sequence of messages and descriptors sent to a
// live server, and checks what comes back. Used by the replay test (seeded
// random inputs against a real pmfs mount, in the default suite) and by the
// libFuzzer target channel_fuzz (ZEST_FUZZ=ON, clang).
//
// Input: a sequence of entries [kind:1][len:1][payload:len]. Kinds:
//   0 raw bytes as one message        4 MAP (lease picked, range from payload)
//   1 a header + payload, any op      5 COMMIT (extents from payload)
//   2 ATTACH (flags from payload)     6 RETURN on the notify socket
//   3 LEASE with a chosen descriptor  7 reconnect
//   8 raw bytes into the mailbox, with a length word of the payload's
//     choice (also past its end)      9 a header + payload, any op, by mailbox
// Invariants: every request gets a reply or the connection closes (no
// hang: replies are awaited 5 s at most), the server answers STATS after
// the input, and a lease is granted only for a descriptor that proves it
// (a file of the mount opened with a covering access mode).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "layout/mailbox.h"
#include "tests/direct/raw_channel.h"

namespace zest::testing {

struct HostileTarget {
  std::function<std::optional<RawChannel>()> connect;
  std::string file_rw;   // a regular file of the mount (opened O_RDWR)
  std::string dir;       // a directory of the mount
  std::string foreign;   // a regular file of another file system
};

class HostileRun {
 public:
  explicit HostileRun(const HostileTarget& t) : t_(t) {}

  // Runs one input; returns "" or what went wrong.
  std::string Run(const uint8_t* data, size_t size) {
    c_ = t_.connect();
    if (!c_) return "cannot connect";
    size_t i = 0;
    while (i + 2 <= size) {
      const uint8_t kind = data[i] % 10, len = data[i + 1];
      i += 2;
      const size_t n = std::min<size_t>(len, size - i);
      std::string why = Step(kind, data + i, n);
      trace_ += "[" + std::to_string(kind) + "/" + std::to_string(n) + " " + step_ + "]";
      if (std::getenv("ZEST_CHANNEL_TRACE"))
        std::fprintf(stderr, "step kind %u len %zu: %s\n", kind, n, why.c_str());
      i += n;
      if (!why.empty()) return why + " after " + trace_.substr(trace_.size() > 600 ? trace_.size() - 600 : 0);
    }
    // The server still works: a fresh client gets STATS.
    auto c = t_.connect();
    cw::StatsOut s{};
    if (!c) return std::string("server stopped answering: connect: ") + std::strerror(errno);
    if (int e = c->Attach(false); e != 0) return "server stopped answering: attach: " + std::to_string(e);
    if (int e = c->Stats(&s); e != 0) return "server stopped answering: stats: " + std::to_string(e);
    return "";
  }

 private:
  // Reads one reply, 5 s at most. -2: the server closed the connection.
  int Reply(std::vector<std::byte>* body) {
    pollfd p{c_->fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return -3;
    const int e = c_->Receive(body);
    return e == -1 ? -2 : e;
  }

  std::string Send(const std::vector<std::byte>& m, const std::vector<int>& fds,
                   std::vector<std::byte>* body, int* err) {
    if (!c_->SendRaw(m.data(), m.size(), fds)) {
      *err = -2;  // closed by the server: allowed, reconnect
      c_ = t_.connect();
      return c_ ? "" : "cannot reconnect";
    }
    *err = Reply(body);
    step_ = "op " + (m.size() >= 4 ? std::to_string(*reinterpret_cast<const uint32_t*>(m.data())) : std::string("?")) +
            " len " + std::to_string(m.size()) + " fds " + std::to_string(fds.size()) + " -> " + std::to_string(*err);
    if (*err == -3) return "no reply within 5 s";
    if (*err == -2) {
      c_ = t_.connect();
      return c_ ? "" : "cannot reconnect";
    }
    return "";
  }

  static std::vector<std::byte> Msg(uint32_t op, const void* body, size_t n, uint64_t seq) {
    std::vector<std::byte> m(sizeof(cw::Request) + n);
    cw::Request h{op, static_cast<uint32_t>(m.size()), seq};
    std::memcpy(m.data(), &h, sizeof(h));
    if (n) std::memcpy(m.data() + sizeof(h), body, n);
    return m;
  }

  template <class T>
  static T Fill(const uint8_t* p, size_t n) {
    T v{};
    std::memcpy(&v, p, std::min(n, sizeof(T)));
    return v;
  }

  std::string Step(uint8_t kind, const uint8_t* p, size_t n) {
    std::vector<std::byte> body;
    int err = 0;
    switch (kind) {
      case 0:
        return Send(std::vector<std::byte>(reinterpret_cast<const std::byte*>(p),
                                           reinterpret_cast<const std::byte*>(p) + n),
                    {}, &body, &err);
      case 1: {
        const uint32_t op = n ? p[0] % 10 : 0;
        return Send(Msg(op, n > 1 ? p + 1 : nullptr, n > 1 ? n - 1 : 0, ++seq_), {}, &body, &err);
      }
      case 2: {
        cw::AttachIn in{n > 1 && p[1] == 0xff ? 99u : cw::kVersion, n ? p[0] & 3u : 1u};
        std::string w = Send(Msg(cw::kAttach, &in, sizeof in, ++seq_), {}, &body, &err);
        if (w.empty() && err == 0) {
          // Keep the notify socket (the second fd) for RETURNs, and map the
          // mailbox (the third).
          notify_.reset();
          if (c_->fds().size() >= 2) notify_.emplace(::dup(c_->fds()[1]));
          Unmap();
          if (c_->fds().size() >= 3) {
            void* p = ::mmap(nullptr, layout::kMailboxBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                             c_->fds()[2], 0);
            if (p != MAP_FAILED) mbox_ = static_cast<layout::MailboxHeader*>(p);
          }
        }
        return w;
      }
      case 3: {
        // LEASE with a descriptor of the payload's choice.
        const uint8_t which = n ? p[0] % 9 : 0;
        cw::LeaseIn in = Fill<cw::LeaseIn>(n > 1 ? p + 1 : p, n > 1 ? n - 1 : 0);
        if (n > 1 && (p[1] & 1)) in.mode = (p[1] >> 1) % 2 ? cw::kWrite : cw::kRead;
        if (n > 1 && (p[1] & 4)) in = {in.mode, 0, 0, ~0ull};
        std::vector<int> fds;
        bool proves_read = false, proves_write = false;
        int a = -1, b = -1;
        switch (which) {
          case 0: a = ::open(t_.file_rw.c_str(), O_RDWR | O_CLOEXEC); proves_read = proves_write = true; break;
          case 1: a = ::open(t_.file_rw.c_str(), O_RDONLY | O_CLOEXEC); proves_read = true; break;
          case 2: a = ::open(t_.file_rw.c_str(), O_WRONLY | O_CLOEXEC); proves_write = true; break;
          case 3: a = ::open(t_.file_rw.c_str(), O_PATH | O_CLOEXEC); break;
          case 4: a = ::open(t_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); break;
          case 5: a = ::open(t_.foreign.c_str(), O_RDWR | O_CLOEXEC); break;
          case 6: {
            int pp[2];
            if (::pipe2(pp, O_CLOEXEC) == 0) {
              a = pp[0];
              b = pp[1];
            }
            break;
          }
          case 7: break;  // no descriptor
          default:        // two proofs at once
            a = ::open(t_.file_rw.c_str(), O_RDWR | O_CLOEXEC);
            b = ::open(t_.file_rw.c_str(), O_RDWR | O_CLOEXEC);
            break;
        }
        if (a >= 0) fds.push_back(a);
        if (b >= 0) fds.push_back(b);
        std::string w = Send(Msg(cw::kLease, &in, n ? sizeof in : 0, ++seq_), fds, &body, &err);
        for (int f : fds) ::close(f);
        if (!w.empty()) return w;
        if (err == 0) {
          const bool entitled =
              fds.size() == 1 && n && (in.mode == cw::kRead ? proves_read : proves_write && in.mode == cw::kWrite);
          if (!entitled) return "a lease was granted without a proof that covers it";
          if (body.size() == sizeof(cw::LeaseOut)) {
            std::memcpy(&last_, body.data(), sizeof last_);
            last_mode_ = in.mode;
          }
        }
        return "";
      }
      case 4: {
        cw::MapIn in = Fill<cw::MapIn>(p, n);
        if (n && (p[0] & 1)) {
          in.lease = last_.id;
          in.ino = last_.ino;
          in.len = in.len % (1u << 20) + 1;
          in.off %= 1u << 24;
        }
        std::string w = Send(Msg(cw::kMap, &in, sizeof in, ++seq_), {}, &body, &err);
        if (w.empty() && err == 0 && in.intent == cw::kIntentWrite && last_mode_ != cw::kWrite &&
            in.lease == last_.id)
          return "a write map under a read lease";
        if (w.empty() && err == 0 && body.size() >= sizeof(cw::MapOut)) {
          cw::MapOut mo;
          std::memcpy(&mo, body.data(), sizeof mo);
          if (mo.count && body.size() >= sizeof mo + sizeof(cw::Extent))
            std::memcpy(&last_extent_, body.data() + sizeof mo, sizeof last_extent_);
        }
        return w;
      }
      case 5: {
        cw::CommitIn in = Fill<cw::CommitIn>(p, n);
        const size_t have = n > sizeof in ? (n - sizeof in) / sizeof(cw::Extent) : 0;
        std::vector<cw::Extent> ext(have);
        if (have) std::memcpy(ext.data(), p + sizeof in, have * sizeof(cw::Extent));
        if (n && (p[0] & 1)) {
          in.lease = last_.id;
          in.ino = last_.ino;
          ext.push_back(last_extent_);
          if (p[0] & 2) ext.back().pool_offset += 4096 * (1 + p[0] / 4);  // someone else's block
        }
        if (!(n && (p[0] & 8))) in.count = static_cast<uint32_t>(ext.size());
        std::vector<std::byte> m = Msg(cw::kCommit, &in, sizeof in, ++seq_);
        const size_t at = m.size();
        m.resize(at + ext.size() * sizeof(cw::Extent));
        if (!ext.empty()) std::memcpy(m.data() + at, ext.data(), ext.size() * sizeof(cw::Extent));
        reinterpret_cast<cw::Request*>(m.data())->len = static_cast<uint32_t>(m.size());
        return Send(m, {}, &body, &err);
      }
      case 6: {
        if (!notify_) return "";
        cw::ReturnIn in = Fill<cw::ReturnIn>(p, n);
        if (n && (p[0] & 1)) in.lease = last_.id;
        std::vector<std::byte> m = Msg(cw::kReturn, &in, n ? sizeof in : 0, 0);
        (void)::send(notify_->fd, m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        return "";
      }
      case 7:
        c_ = t_.connect();
        notify_.reset();
        Unmap();
        return c_ ? "" : "cannot reconnect";
      default: {
        if (!mbox_) return "";
        std::vector<std::byte> m;
        uint32_t len;
        if (kind == 8) {
          m.assign(reinterpret_cast<const std::byte*>(p), reinterpret_cast<const std::byte*>(p) + n);
          len = n >= 4 && (p[0] & 1) ? Fill<uint32_t>(p, n) : static_cast<uint32_t>(n);
        } else {
          const uint32_t op = n ? p[0] % 10 : 0;
          m = Msg(op, n > 1 ? p + 1 : nullptr, n > 1 ? n - 1 : 0, ++seq_);
          len = static_cast<uint32_t>(m.size());
        }
        // The server must answer (or have closed) within 5 s, whatever the
        // mailbox says; it never trusts the length word.
        const uint32_t st = mbox_->state.load();
        if (st == layout::kClosed) return "";
        if (st == layout::kRequest) return "";  // an earlier one unanswered: checked below
        std::memcpy(layout::mailbox_data(mbox_), m.data(), std::min(m.size(), layout::kMailboxData));
        mbox_->len = len;
        if (uint32_t was; !layout::mailbox_post_request(mbox_, &was)) return "";  // closed meanwhile
        const uint32_t got = layout::mailbox_wait(mbox_, layout::kRequest, &mbox_->client_sleeps,
                                                  0, 5'000'000'000ull);
        if (got == layout::kRequest) return "no mailbox reply within 5 s";
        uint32_t expect = layout::kReply;
        mbox_->state.compare_exchange_strong(expect, layout::kIdle);
        layout::futex_wake_all(&mbox_->state);
        return "";
      }
    }
  }

  void Unmap() {
    if (mbox_) ::munmap(mbox_, layout::kMailboxBytes);
    mbox_ = nullptr;
  }

 public:
  ~HostileRun() { Unmap(); }

 private:

  struct Fd {
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
    int fd;
  };

  const HostileTarget& t_;
  std::string trace_, step_;
  std::optional<RawChannel> c_;
  std::optional<Fd> notify_;
  layout::MailboxHeader* mbox_ = nullptr;
  uint64_t seq_ = 0;
  cw::LeaseOut last_{};
  uint32_t last_mode_ = 0;
  cw::Extent last_extent_{};
};

}  // namespace zest::testing
