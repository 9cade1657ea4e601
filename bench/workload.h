// Workload: the measured operations, run against one directory (the root of
// one target). Each operation is timed one call at a time with
// clock_gettime(CLOCK_MONOTONIC) around the system call(s); the loops touch
// only memory prepared beforehand (buffer, offsets, file names, sample
// array), so nothing is allocated while measuring. The 4-thread rows start
// their threads before each batch's timed part.
#pragma once

#include <sched.h>

#include <algorithm>
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
  // Latency suite.
  kNoop,  // fgetxattr of a name the file does not have: ENODATA
  kRandRead4K,
  kRandRead4K4T,  // the same from kIoThreads threads at once
  kRandWrite4K,
  kRandWrite4K4T,
  kStatx,
  kCreate,
  kUnlink,
  kSeqRead1M,
  kSeqWrite1M,
  // Persistence suite.
  kSyncWrite4K,     // pwrite + fsync
  kDurableWrite4K,  // pwrite alone (targets durable on return)
  kSyncCreate,      // open O_CREAT|O_EXCL + fsync + close + fsync(dir)
  kDurableCreate,   // open O_CREAT|O_EXCL + close (targets durable on return)
};

// Which iteration counts an operation uses.
enum class Size { kSmall, kBig, kSync };

// Threads of the multi-threaded rows: each has its own fd of the data file
// and one call in flight, and they take the calls of a batch from one shared
// counter.
inline constexpr unsigned kIoThreads = 4;

// The extended attribute the no-op row asks for; no file has it.
inline constexpr const char* kNoopXattr = "user.zest.noop";

struct OpInfo {
  Op op;
  const char* id;     // for --ops and JSON
  const char* title;  // for the table
  size_t bytes;       // bytes moved per call; 0 for metadata operations
  Size size;
  // Measured only on targets whose operations are durable on return.
  bool durable_only = false;
  // Ratios divide by the base target's median of this operation: the
  // durable-on-return rows compare with what the others need to be durable.
  Op ratio_op = op;
  // Threads making calls at once (each one call in flight).
  unsigned threads = 1;
  // For a multi-threaded row: the one-thread row of the same call, which
  // its scaling (ops/s with `threads` threads / ops/s with one) divides by.
  Op single_op = op;
  // What the row measures, printed under a table that has it; may be null.
  const char* note = nullptr;
};

// Every operation of each suite, in table order.
const std::vector<OpInfo>& latency_ops();
const std::vector<OpInfo>& persistence_ops();
const OpInfo& op_info(Op op);

// create and unlink are measured together (every round creates files and
// unlinks them again), so they are one phase, named by kCreate.
inline Op phase_of(Op op) { return op == Op::kUnlink ? Op::kCreate : op; }

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

struct Stats {
  size_t n = 0;
  double median_us = 0, p99_us = 0, mean_us = 0, min_us = 0, max_us = 0;
};

// Summarises latencies in nanoseconds (sorts them in place).
Stats summarize(uint64_t* ns, size_t n);

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
// in a batch.
class Workload {
 public:
  // Creates the files the operations use under `root` (which must exist):
  // a file_size data file, a file to stat, and a directory for creates.
  static Outcome<std::unique_ptr<Workload>> prepare(const std::string& root,
                                                    const WorkloadConfig& cfg);
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
  LoopEnd data_batch(size_t warm, size_t n);
  LoopEnd threaded_batch(size_t warm, size_t n);
  void create_batch(size_t warm, size_t n);
  std::string call_name() const;  // the call of this phase, for messages
  const char* name(size_t i) const { return &names_[i * kNameSize]; }

  static constexpr size_t kNameSize = 16;
  // Files created before they are unlinked again (see create_batch).
  static constexpr size_t kRound = 4096;

  std::string root_, data_path_, stat_name_, create_dir_;
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
  size_t created_ = 0;  // names [unlinked_, created_) exist
  size_t unlinked_ = 0;

  // The phase being measured.
  Op phase_ = Op::kRandRead4K;
  UniqueFd data_fd_;
  std::array<UniqueFd, kIoThreads> thread_fds_;  // multi-threaded phases
  uint64_t wall_ns_ = 0;  // measured wall time, multi-threaded phases
  size_t next_call_ = 0;  // index of the next call (offsets, names)
  size_t measured_ = 0;   // samples recorded so far
  Measurement failed_;    // set when a batch failed (ok == false, reason)
  bool has_failed_ = false;
  Measurement unlink_failed_;
};

// Median of back-to-back clock_gettime pairs, in ns: the timer's own cost,
// included in every sample.
double timer_overhead_ns();

}  // namespace zest::bench
