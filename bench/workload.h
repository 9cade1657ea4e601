// Workload: the measured operations, run against one directory (the root of
// one target). Each operation is timed one call at a time with
// clock_gettime(CLOCK_MONOTONIC) around the call(s); the loops touch only
// memory prepared beforehand (buffer, offsets, file names, sample array),
// so nothing is allocated while measuring. The 4-thread rows start their
// threads before each batch's timed part. The calls are system calls, or
// libzest-direct's for the direct target (file_api.h).
#pragma once

#include <sched.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "bench/file_api.h"
#include "bench/ops.h"
#include "bench/outcome.h"
#include "bench/timing.h"

namespace zest::bench {

struct WorkloadConfig {
  // Defaults: a few minutes for every target on 2 cores.
  size_t iterations = 100000;    // measured calls, small operations
  size_t warmup = 5000;          // unmeasured calls before them
  size_t big_iterations = 5000;  // measured 1 MiB calls
  size_t big_warmup = 200;
  size_t sync_iterations = 2000;  // measured persistence calls
  size_t sync_warmup = 100;
  size_t rounds = 20;  // batches per target and operation (interleaved)
  uint64_t file_size = 64 << 20;  // the data file read and written

  size_t measured(Size s) const {
    return s == Size::kSmall ? iterations
           : s == Size::kBig ? big_iterations
                             : sync_iterations;
  }
  size_t warm(Size s) const {
    return s == Size::kSmall ? warmup
           : s == Size::kBig ? big_warmup
                             : sync_warmup;
  }
  // Rounds actually run: no empty batches.
  size_t rounds_for(Size s) const {
    return std::max<size_t>(1, std::min(rounds, measured(s)));
  }
  // Measured calls in round r; they add up to measured(s).
  size_t batch_calls(Size s, size_t r) const {
    size_t n = measured(s), k = rounds_for(s);
    return n / k + (r < n % k ? 1 : 0);
  }
  // Unmeasured calls before each batch: the warm-up, spread over rounds.
  size_t batch_warm(Size s) const {
    size_t k = rounds_for(s);
    return (warm(s) + k - 1) / k;
  }
  // Calls one target makes for an operation, warm-up included.
  size_t total_calls(Size s) const {
    return rounds_for(s) * batch_warm(s) + measured(s);
  }
};

struct Measurement {
  bool ok = false;
  bool skipped = false;  // not applicable to this target: no table row
  std::string reason;    // why not ok
  Stats stats;
  // Calls per second: 1 / mean latency for one thread; calls / wall time
  // of the measured part of the batches for several.
  double ops_per_s = 0;
  double mib_per_s = 0;  // bytes per call * ops_per_s; 0 for metadata
};

// One target's files and measurement state. An operation is measured as a
// phase: begin(), then batch() once per round (the driver interleaves the
// targets' batches, see rounds.h), then result(). Setup (files, fds, the
// untimed fsync of the data file) happens in prepare() and begin(), never
// in a batch. Setup and cleanup are system calls on the mount whatever the
// API; the calls of the phases go through the workload's FileApi.
class Workload {
 public:
  // Creates the files the operations use under `root` (which must exist):
  // a file_size data file, a file to stat, a file to append to and a
  // directory for creates. With `direct`, the phases call libzest-direct
  // attached to `root`, once it has read the data file back from the pool
  // (a check of the library, and the pool's pages mapped, as the other
  // targets' page caches are warm).
  static Outcome<std::unique_ptr<Workload>> prepare(const std::string& root,
                                                    const WorkloadConfig& cfg,
                                                    bool direct = false);
  ~Workload();  // removes exactly the files it created
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  // Starts measuring phase_of(op): opens what its calls use.
  Outcome<void> begin(Op op);
  // `warm` unmeasured calls, then `n` measured ones, appended to this
  // phase's samples. After a failure, later batches do nothing. Returns
  // false on failure.
  bool batch(size_t warm, size_t n);
  // The phase's result for `op` (kCreate and kUnlink for their phase);
  // closes what begin() opened.
  Measurement result(Op op);
  // The reason of the last failed batch.
  const std::string& failure() const { return failed_.reason; }
  // What the API counted over the run (libzest-direct's counters), or
  // empty for system calls.
  std::string api_summary();

 private:
  struct LoopEnd {
    bool ok = true;
    size_t index = 0;  // the failing call
    int err = 0;       // its errno; 0 for a short transfer
  };
  Workload(std::string root, const WorkloadConfig& cfg);
  template <class Call>
  LoopEnd timed_loop(size_t first, size_t count, size_t skip, uint64_t* out,
                     Call&& call);
  Measurement summary(Op op, uint64_t* samples, size_t n);
  Measurement fail(const std::string& what, const LoopEnd& end);
  Outcome<void> check_direct_reads();
  template <class Files>
  LoopEnd data_batch(Files& io, size_t warm, size_t n);
  template <class Files>
  LoopEnd threaded_batch(Files& io, size_t warm, size_t n);
  template <class Files>
  void create_batch(Files& io, size_t warm, size_t n);
  std::string call_name() const;  // the call of this phase, for messages
  const char* name(size_t i) const { return &names_[i * kNameSize]; }

  static constexpr size_t kNameSize = 16;
  // Files created before they are unlinked again (see create_batch).
  static constexpr size_t kRound = 4096;

  std::string root_, data_path_, create_dir_;
  // Relative to root_.
  const char* const data_name_ = "data";
  const char* const stat_name_ = "stat-target";
  const char* const append_name_ = "append";
  const char* const create_dir_name_ = "creates";
  WorkloadConfig cfg_;
  std::unique_ptr<char, void (*)(void*)> buf_{nullptr, nullptr};
  std::vector<uint64_t> samples_;
  std::vector<uint64_t> unlink_samples_;
  std::vector<uint64_t> offsets_;  // random 4 KiB-aligned, fixed seed
  std::vector<char> names_;        // names for creates, one per call
  // The driver's CPU mask before --cpu pinned the measuring thread: the
  // threads of the multi-threaded rows run on it.
  cpu_set_t affinity_;
  bool has_affinity_ = false;
  UniqueFd root_fd_, create_dir_fd_;
  bool append_created_ = false;
  size_t created_ = 0;  // names [unlinked_, created_) exist
  size_t unlinked_ = 0;
  // Declared after the fds it uses and before the handles it closes.
  std::optional<FileApi> api_;

  // The phase being measured.
  Op phase_ = Op::kRandRead4K;
  OpenFile data_fd_;
  std::array<OpenFile, kIoThreads> thread_fds_;  // multi-threaded phases
  zest_direct_stats phase_start_{};  // libzest-direct's counters at begin()
  uint64_t wall_ns_ = 0;  // measured wall time, multi-threaded phases
  size_t next_call_ = 0;  // index of the next call (offsets, names)
  size_t measured_ = 0;   // samples recorded so far
  Measurement failed_;    // set when a batch failed (ok == false, reason)
  bool has_failed_ = false;
  Measurement unlink_failed_;
};

}  // namespace zest::bench
