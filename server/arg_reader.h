// ArgReader: bounds-checked reading of a request's argument bytes.
//
// Requests are decoded in place from the receive buffer. Fixed structs are
// copied out (memcpy: no alignment assumptions), names are NUL-terminated
// strings returned as views into the buffer. Every read checks the bounds,
// so a short or malformed request fails the read instead of overrunning.
//
// The arguments may come in two segments, read one after the other: over
// /dev/fuse everything is in one buffer; over io_uring the opcode's fixed
// struct is in the entry header's op_in and the rest (names, write data) in
// the payload buffer. A struct may straddle the two (it is copied anyway);
// a name or a byte view must lie inside one segment, so views never copy.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>

namespace zest::server {

class ArgReader {
 public:
  explicit ArgReader(std::span<const std::byte> a,
                     std::span<const std::byte> b = {})
      : seg_{a, b} {
    if (seg_[0].empty()) next_segment();
  }

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
    copy_out(reinterpret_cast<std::byte*>(out), n);
    return true;
  }
  // Skips exactly n bytes (a struct whose tail we do not use).
  bool skip(size_t n) {
    if (left() < n) return false;
    while (n) {
      size_t take = std::min(n, here());
      advance(take);
      n -= take;
    }
    return true;
  }
  // A NUL-terminated name; the view excludes the NUL.
  bool name(std::string_view* out) {
    if (cur_ >= 2) return false;
    const std::byte* start = seg_[cur_].data() + pos_;
    const void* nul = std::memchr(start, 0, here());
    if (!nul) return false;
    size_t len = static_cast<const std::byte*>(nul) - start;
    *out = std::string_view(reinterpret_cast<const char*>(start), len);
    advance(len + 1);
    return true;
  }
  bool bytes(size_t n, std::span<const std::byte>* out) {
    if (n == 0) {
      *out = {};
      return true;
    }
    if (here() < n) return false;
    *out = seg_[cur_].subspan(pos_, n);
    advance(n);
    return true;
  }
  size_t left() const {
    size_t n = here();
    if (cur_ == 0) n += seg_[1].size();
    return n;
  }

 private:
  // Bytes left in the current segment.
  size_t here() const { return cur_ < 2 ? seg_[cur_].size() - pos_ : 0; }
  void advance(size_t n) {
    pos_ += n;
    if (pos_ == seg_[cur_].size()) next_segment();
  }
  void next_segment() {
    while (cur_ < 2 && pos_ == seg_[cur_].size()) {
      ++cur_;
      pos_ = 0;
    }
  }
  void copy_out(std::byte* dst, size_t n) {
    while (n) {
      size_t take = std::min(n, here());
      std::memcpy(dst, seg_[cur_].data() + pos_, take);
      dst += take;
      n -= take;
      advance(take);
    }
  }

  std::span<const std::byte> seg_[2];
  size_t cur_ = 0;
  size_t pos_ = 0;
};

}  // namespace zest::server
