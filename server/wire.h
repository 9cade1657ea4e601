// Wire: where a request's reply goes. The /dev/fuse channel in production,
// a capture buffer in tests.
#pragma once

#include <sys/uio.h>

#include "base/result.h"
#include "transport/dev_channel.h"

namespace zest::server {

class Wire {
 public:
  virtual ~Wire() = default;
  virtual Result<void> send(const iovec* iov, int count) = 0;
};

class DevWire final : public Wire {
 public:
  explicit DevWire(transport::DevChannel ch) : ch_(std::move(ch)) {}
  Result<void> send(const iovec* iov, int count) override {
    return ch_.send(iov, count);
  }
  transport::DevChannel& channel() { return ch_; }

 private:
  transport::DevChannel ch_;
};

}  // namespace zest::server
