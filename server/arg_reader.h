// ArgReader: bounds-checked reading of a request's argument bytes.
//
// Requests are decoded in place from the receive buffer. Fixed structs are
// copied out (memcpy: no alignment assumptions), names are NUL-terminated
// strings returned as views into the buffer. Every read checks the bounds,
// so a short or malformed request fails the read instead of overrunning.
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>

namespace zest::server {

class ArgReader {
 public:
  explicit ArgReader(std::span<const std::byte> a) : a_(a) {}

  // Reads a whole T.
  template <class T>
  bool read(T* out) {
    return read_prefix(out, sizeof(T));
  }
  // Reads at least `min_size` bytes of T (older, shorter versions of a
  // struct); the rest of *out is zero.
  template <class T>
  bool read_prefix(T* out, size_t min_size) {
    size_t n = left() < sizeof(T) ? left() : sizeof(T);
    if (n < min_size) return false;
    *out = T{};
    std::memcpy(static_cast<void*>(out), a_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // Skips exactly n bytes (a struct whose tail we do not use).
  bool skip(size_t n) {
    if (left() < n) return false;
    pos_ += n;
    return true;
  }
  // A NUL-terminated name; the view excludes the NUL.
  bool name(std::string_view* out) {
    const std::byte* start = a_.data() + pos_;
    const void* nul = std::memchr(start, 0, left());
    if (!nul) return false;
    size_t len = static_cast<const std::byte*>(nul) - start;
    *out = std::string_view(reinterpret_cast<const char*>(start), len);
    pos_ += len + 1;
    return true;
  }
  bool bytes(size_t n, std::span<const std::byte>* out) {
    if (left() < n) return false;
    *out = a_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  size_t left() const { return a_.size() - pos_; }

 private:
  std::span<const std::byte> a_;
  size_t pos_ = 0;
};

}  // namespace zest::server
