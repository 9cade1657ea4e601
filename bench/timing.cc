#include "bench/timing.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace zest::bench {
namespace {

constexpr size_t kCopy = 1 << 20;

using Buffer = std::unique_ptr<char, void (*)(void*)>;

Buffer aligned_buffer(size_t bytes) {
  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, bytes) != 0) mem = nullptr;
  if (mem != nullptr) std::memset(mem, 0x5a, bytes);  // faulted in
  return Buffer(static_cast<char*>(mem), &std::free);
}

// `warm` + `n` copies of 1 MiB into dst, the i-th from src + src_off(i).
template <class SourceOffset>
CopyBaseline time_copies(const char* what, char* dst, const char* src,
                         size_t warm, size_t n, SourceOffset src_off) {
  CopyBaseline b;
  b.what = what;
  std::vector<uint64_t> ns(n);
  for (size_t i = 0; i < warm + n; ++i) {
    const uint64_t t0 = now_ns();
    std::memcpy(dst, src + src_off(i), kCopy);
    // The copy has an observer: it cannot be dropped or moved out.
    asm volatile("" : : "r"(dst) : "memory");
    const uint64_t t1 = now_ns();
    if (i >= warm) ns[i - warm] = t1 - t0;
  }
  b.stats = summarize(ns.data(), n);
  if (b.stats.mean_us > 0) b.mib_per_s = 1e6 / b.stats.mean_us;
  return b;
}

}  // namespace

Stats summarize(uint64_t* ns, size_t n) {
  Stats s;
  s.n = n;
  if (n == 0) return s;
  std::sort(ns, ns + n);
  // Nearest-rank percentiles.
  auto rank = [&](double p) {
    size_t r = size_t(std::ceil(p * double(n)));
    return double(ns[std::clamp<size_t>(r, 1, n) - 1]) / 1000.0;
  };
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += double(ns[i]);
  s.median_us = rank(0.5);
  s.p99_us = rank(0.99);
  s.mean_us = sum / double(n) / 1000.0;
  s.min_us = double(ns[0]) / 1000.0;
  s.max_us = double(ns[n - 1]) / 1000.0;
  return s;
}

double timer_overhead_ns() {
  constexpr size_t n = 10001;
  std::vector<uint64_t> d(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t a = now_ns();
    uint64_t b = now_ns();
    d[i] = b - a;
  }
  std::nth_element(d.begin(), d.begin() + n / 2, d.end());
  return double(d[n / 2]);
}

CopyBaselines measure_memcpy(size_t warm, size_t n, uint64_t source_bytes) {
  CopyBaselines out;
  const uint64_t pieces = std::max<uint64_t>(1, source_bytes / kCopy);
  Buffer dst = aligned_buffer(kCopy);
  Buffer src = aligned_buffer(kCopy);
  Buffer big = aligned_buffer(size_t(pieces * kCopy));
  if (!dst || !src || !big) return out;  // n == 0: reported as missing
  out.hot = time_copies("1 MiB memcpy between two 1 MiB buffers", dst.get(),
                        src.get(), warm, n, [](size_t) { return size_t(0); });
  out.walk = time_copies(
      fmt::format("1 MiB memcpy from a {} MiB buffer walked in order (as "
                  "the 1 MiB rows walk the data file)",
                  pieces)
          .c_str(),
      dst.get(), big.get(), warm, n,
      [&](size_t i) { return size_t(i % pieces) * kCopy; });
  return out;
}

}  // namespace zest::bench
