// Workload: the measured operations, run against one directory (the root of
// one target). Each operation is timed one call at a time with
// clock_gettime(CLOCK_MONOTONIC) around the system call(s); the loops touch
// only memory prepared beforehand (buffer, offsets, file names, sample
// array), so nothing is allocated while measuring.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "bench/outcome.h"

namespace zest::bench {

enum class Op {
  kRandRead4K,
  kRandWrite4K,
  kStatx,
  kCreate,
  kUnlink,
  kSeqRead1M,
  kSeqWrite1M,
};

struct OpInfo {
  Op op;
  const char* id;     // for --ops and JSON
  const char* title;  // for the table
  size_t bytes;       // bytes moved per call; 0 for metadata operations
  bool big;           // uses --big-iterations
};

// Every operation, in table order.
const std::array<OpInfo, 7>& all_ops();

struct WorkloadConfig {
  // Defaults: about 1-2 minutes for all three targets on 2 cores.
  size_t iterations = 100000;    // measured calls, small operations
  size_t warmup = 5000;          // unmeasured calls before them
  size_t big_iterations = 5000;  // measured 1 MiB calls
  size_t big_warmup = 200;
  uint64_t file_size = 64 << 20;  // the data file read and written
};

struct Stats {
  size_t n = 0;
  double median_us = 0, p99_us = 0, mean_us = 0, min_us = 0, max_us = 0;
};

// Summarises latencies in nanoseconds (sorts them in place).
Stats summarize(uint64_t* ns, size_t n);

struct Measurement {
  bool ok = false;
  std::string reason;  // why not ok
  Stats stats;
  double mib_per_s = 0;  // bytes per call / mean latency; 0 for metadata
};

class Workload {
 public:
  // Creates the files the operations use under `root` (which must exist):
  // a file_size data file, a file to stat, and a directory for creates.
  static Outcome<std::unique_ptr<Workload>> prepare(const std::string& root,
                                                    const WorkloadConfig& cfg);
  ~Workload();  // removes exactly the files it created
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  Measurement run(Op op);

 private:
  struct LoopEnd {
    bool ok = true;
    size_t index = 0;  // the failing call
    int err = 0;       // its errno; 0 for a short transfer
  };
  Workload(std::string root, const WorkloadConfig& cfg);
  template <class Call>
  LoopEnd timed_loop(size_t first, size_t count, size_t warm, uint64_t* out,
                     Call&& call);
  Measurement finish(const OpInfo& info, uint64_t* samples, size_t n);
  Measurement fail(const std::string& what, const LoopEnd& end);
  Measurement data_op(const OpInfo& info);
  void create_unlink_pass();
  const char* name(size_t i) const { return &names_[i * kNameSize]; }

  static constexpr size_t kNameSize = 16;
  // Files created before they are unlinked again (see create_unlink_pass).
  static constexpr size_t kRound = 4096;

  std::string root_, data_path_, stat_name_, create_dir_;
  WorkloadConfig cfg_;
  std::unique_ptr<char, void (*)(void*)> buf_{nullptr, nullptr};
  std::vector<uint64_t> samples_;
  std::vector<uint64_t> unlink_samples_;
  std::vector<uint64_t> offsets_;  // random 4 KiB-aligned, fixed seed
  std::vector<char> names_;        // warmup + iterations names for creates
  UniqueFd root_fd_, create_dir_fd_;
  size_t created_ = 0;  // names [unlinked_, created_) exist
  size_t unlinked_ = 0;
  bool create_unlink_done_ = false;
  Measurement create_result_, unlink_result_;
};

// Median of back-to-back clock_gettime pairs, in ns: the timer's own cost,
// included in every sample.
double timer_overhead_ns();

}  // namespace zest::bench
