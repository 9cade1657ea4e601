// Wire: where a request's reply goes. The /dev/fuse channel in production,
// a capture buffer in tests.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "abi/fuse_abi.h"
#include "base/log.h"
#include "zest/result.h"
#include "transport/dev_channel.h"

namespace zest::server {

// What Wire::send_file did with a reply.
enum class FileSend {
  kSpliced,  // sent; the data went from the file to the kernel in a pipe
  kCopied,   // sent; the file had less than asked (its end), so the reply
             // was rebuilt from the pipe through user space
  kNotSent,  // nothing sent: this wire cannot, or not now; copy instead
};

class Wire {
 public:
  virtual ~Wire() = default;
  virtual Result<void> send(const iovec* iov, int count) = 0;
  // Sends `oh` (its len is set here) followed by `len` bytes of file `fd`
  // at `off`, fewer at the file's end. `spill` (sizeof(oh) + len bytes)
  // is where a reply that must be rebuilt is copied. An error means the
  // reply was tried and failed (as send()); kNotSent, that nothing was
  // sent and the caller should copy the data itself. This default: never.
  virtual Result<FileSend> send_file(abi::fuse_out_header /*oh*/, int /*fd*/,
                                     uint64_t /*off*/, size_t /*len*/,
                                     std::span<std::byte> /*spill*/) {
    return FileSend::kNotSent;
  }
};

// A worker's /dev/fuse channel, with the pipe its spliced replies go
// through (made on the first one, kept for the worker's life).
class DevWire final : public Wire {
 public:
  explicit DevWire(transport::DevChannel ch) : ch_(std::move(ch)) {}
  Result<void> send(const iovec* iov, int count) override {
    return ch_.send(iov, count);
  }
  Result<FileSend> send_file(abi::fuse_out_header oh, int fd, uint64_t off,
                             size_t len, std::span<std::byte> spill) override;
  transport::DevChannel& channel() { return ch_; }

 private:
  transport::DevChannel ch_;
  // The pipe has one user at a time: the worker, or a thread completing
  // an async reply. Whoever finds it taken copies instead of waiting.
  std::atomic_flag pipe_busy_;
  std::optional<transport::SplicePipe> pipe_;
  bool pipe_failed_ = false;  // could not make one: never try again
};

inline Result<FileSend> DevWire::send_file(abi::fuse_out_header oh, int fd,
                                           uint64_t off, size_t len,
                                           std::span<std::byte> spill) {
  if (pipe_busy_.test_and_set(std::memory_order_acquire))
    return FileSend::kNotSent;
  struct Release {
    std::atomic_flag& f;
    ~Release() { f.clear(std::memory_order_release); }
  } release{pipe_busy_};
  if (!pipe_) {
    if (pipe_failed_) return FileSend::kNotSent;
    auto p = transport::SplicePipe::create();
    if (!p) {
      pipe_failed_ = true;
      log_warn("cannot make a pipe for spliced replies ({}); copying instead",
               p.error().message());
      return FileSend::kNotSent;
    }
    pipe_.emplace(std::move(*p));
  }
  transport::SplicePipe& pipe = *pipe_;
  if (!pipe.fits(sizeof(oh), off, len)) return FileSend::kNotSent;

  // The header goes in first, saying the whole length; if the file then
  // has less, the reply is rebuilt below with the length it really has.
  oh.len = static_cast<uint32_t>(sizeof(oh) + len);
  Result<size_t> got = Errno(EIO);
  if (auto put = pipe.put(&oh, sizeof(oh)); put) got = pipe.fill(fd, off, len);
  if (!got) {
    // Nothing sent: the caller reads the file itself (and so answers with
    // the errno a read gives, if the file is at fault).
    (void)pipe.clear();
    return FileSend::kNotSent;
  }
  if (*got < len) {
    const size_t n = sizeof(oh) + *got;
    if (spill.size() < n || !pipe.take(spill.data(), n)) {
      (void)pipe.clear();
      return FileSend::kNotSent;
    }
    oh.len = static_cast<uint32_t>(n);
    iovec v[2] = {{&oh, sizeof(oh)}, {spill.data() + sizeof(oh), *got}};
    auto r = ch_.send(v, *got ? 2 : 1);
    if (!r) return r.error();
    return FileSend::kCopied;
  }
  auto r = ch_.send(pipe);
  if (!r) return r.error();
  return FileSend::kSpliced;
}

}  // namespace zest::server
