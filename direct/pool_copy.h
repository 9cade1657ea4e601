// Copies into and out of the mapped pool (libzest-direct's data path).
//
// Stores into the pool use non-temporal stores where the CPU has them
// (x86-64: SSE2 movnti/movntdq) and end with a store fence, so that once
// persist() returns they are as durable as pmfs's own stores on the same
// mapping: on real persistent memory, in the persistence domain; on a pool
// file in the page cache, visible to every process and surviving a crash of
// the client (docs/guarantees.md). Other CPUs: memcpy and a fence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#include <immintrin.h>
#endif

namespace zest::direct {

inline void load_from_pool(void* dst, const void* src, size_t n) { std::memcpy(dst, src, n); }

// Non-temporal copy into the pool; persist() must follow.
inline void store_to_pool(void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
  auto* d = static_cast<char*>(dst);
  auto* s = static_cast<const char*>(src);
  // Head up to 16-byte alignment with cached stores, then flushed.
  const size_t head = std::min(n, (16 - (reinterpret_cast<uintptr_t>(d) & 15)) & 15);
  if (head) {
    std::memcpy(d, s, head);
    _mm_clflush(d);
    d += head;
    s += head;
    n -= head;
  }
  while (n >= 64) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 32));
    __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(d), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + 48), e);
    d += 64;
    s += 64;
    n -= 64;
  }
  while (n >= 16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(d),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
    d += 16;
    s += 16;
    n -= 16;
  }
  if (n) {
    std::memcpy(d, s, n);
    _mm_clflush(d);
  }
#else
  // Other CPUs: plain stores, ordered by persist_fence(). Enough for a pool
  // in the page cache; real persistent memory there would also need a
  // cache write-back per line (not done: x86-64 is what zest runs on).
  std::memcpy(dst, src, n);
#endif
}

inline void zero_pool(void* dst, size_t n) {
  static const char zeros[4096] = {};
  auto* d = static_cast<char*>(dst);
  while (n) {
    const size_t k = std::min(n, sizeof(zeros));
    store_to_pool(d, zeros, k);
    d += k;
    n -= k;
  }
}

// Orders every store above before anything after it (and before returning
// to the caller, which is when a write is durable).
inline void persist_fence() {
#if defined(__x86_64__)
  _mm_sfence();
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

}  // namespace zest::direct
