// What the server's raw-protocol tests share: requests built byte by byte
// (Req) and a wire that captures the replies (CaptureWire), so a Session
// can be driven without a kernel.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "abi/fuse_abi.h"
#include "server/wire.h"
#include "zest/result.h"

namespace zest::server::testing {

using Bytes = std::vector<std::byte>;

class CaptureWire final : public Wire {
 public:
  Result<void> send(const iovec* iov, int count) override {
    Bytes b;
    for (int i = 0; i < count; ++i) {
      auto* p = static_cast<const std::byte*>(iov[i].iov_base);
      b.insert(b.end(), p, p + iov[i].iov_len);
    }
    std::lock_guard lock(mu);
    replies.push_back(std::move(b));
    cv.notify_all();
    if (fail_next) {
      fail_next = false;
      return Errno(ENOENT);
    }
    return {};
  }
  // The oldest reply, waiting up to 5 s for one; empty when none came.
  Bytes wait_one() {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return !replies.empty(); });
    return pop_locked();
  }
  // The oldest reply, or empty when there is none now.
  Bytes take() {
    std::lock_guard lock(mu);
    return pop_locked();
  }
  size_t pending() {
    std::lock_guard lock(mu);
    return replies.size();
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Bytes> replies;
  bool fail_next = false;  // the next send fails as if the kernel dropped it

 private:
  Bytes pop_locked() {
    if (replies.empty()) return {};
    Bytes b = std::move(replies.front());
    replies.erase(replies.begin());
    return b;
  }
};

class Req {
 public:
  Req(uint32_t opcode, uint64_t nodeid, uint64_t unique) {
    h_.opcode = opcode;
    h_.nodeid = nodeid;
    h_.unique = unique;
  }
  template <class T>
  Req& arg(const T& v) {
    auto* p = reinterpret_cast<const std::byte*>(&v);
    body_.insert(body_.end(), p, p + sizeof(T));
    return *this;
  }
  Req& name(std::string_view s, bool nul = true) {
    auto* p = reinterpret_cast<const std::byte*>(s.data());
    body_.insert(body_.end(), p, p + s.size());
    if (nul) body_.push_back(std::byte{0});
    return *this;
  }
  // Extension bytes: counted in total_extlen.
  Req& ext(const Bytes& e) {
    body_.insert(body_.end(), e.begin(), e.end());
    h_.total_extlen = static_cast<uint16_t>(e.size() / 8);
    return *this;
  }
  Req& pid(uint32_t p) {
    h_.pid = p;
    return *this;
  }
  // The request; len_delta makes its header lie about its length.
  Bytes bytes(int len_delta = 0) const {
    abi::fuse_in_header h = h_;
    h.len = static_cast<uint32_t>(sizeof(h) + body_.size() + len_delta);
    Bytes b(sizeof(h));
    std::memcpy(b.data(), &h, sizeof(h));
    b.insert(b.end(), body_.begin(), body_.end());
    return b;
  }

 private:
  abi::fuse_in_header h_{};
  Bytes body_;
};

}  // namespace zest::server::testing
