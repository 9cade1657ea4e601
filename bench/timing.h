// The clock every sample is taken with, the summary of samples, and the
// two references that put the samples in proportion: the timer's own cost
// and the bandwidth of a plain memcpy, measured the same way.
#pragma once

#include <time.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace zest::bench {

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

struct Stats {
  size_t n = 0;
  double median_us = 0, p99_us = 0, mean_us = 0, min_us = 0, max_us = 0;
};

// Summarises latencies in nanoseconds (sorts them in place).
Stats summarize(uint64_t* ns, size_t n);

// Median of back-to-back clock_gettime pairs, in ns: the timer's own cost,
// included in every sample.
double timer_overhead_ns();

// A memcpy of 1 MiB timed one call at a time like the 1 MiB rows, as the
// ceiling of what a read or write that copies its data can reach.
struct CopyBaseline {
  std::string what;  // for the report
  Stats stats;
  double mib_per_s = 0;  // 1 MiB / mean latency, as in the tables
};

// Two baselines, each `warm` unmeasured copies and then `n` measured ones:
// between two 1 MiB buffers (both in the cache), and from a `source_bytes`
// buffer walked 1 MiB at a time into one 1 MiB buffer (a source as large as
// the data file, as the sequential rows read it).
struct CopyBaselines {
  CopyBaseline hot, walk;
};
CopyBaselines measure_memcpy(size_t warm, size_t n, uint64_t source_bytes);

}  // namespace zest::bench
