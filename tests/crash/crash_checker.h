// CrashChecker: recovers every crash state a recorded run allows and checks
// it against the run's oracle.
//
// Input: a Recorder attached to the pool from the freshly formatted image
// on, with mark(k) logged when k operations had returned (mark 0 before the
// first), and the oracle: the logical snapshot after each operation
// (states[k] = after k operations).
//
// For each crash point of pmem::CrashImageBuilder (every fence and mark),
// in log order, and up to max_states_per_point distinct states there (none,
// all, each alone, all but each, then word subsets or random torn subsets),
// the checker:
//   1. fscks the crash image as it lies (read-only; fsck overlays a
//      committed journal transaction and reports only "replay needed" for
//      it, which is accepted; anything else is a violation);
//   2. writes it into a scratch pool file (in /dev/shm when there is one)
//      and opens it with pmfs::open, which recovers (journal replay, orphans
//      freed) -- a refusal is a violation: every crash image must mount;
//   3. snapshots the recovered tree; at mark k it must equal states[k], at a
//      fence while operation k was in flight states[k] or states[k+1]
//      (operations are atomic and durable when they return);
//   4. closes it and fscks the recovered pool: clean, and its counts agree
//      with the file system's (no leaked blocks or inodes after recovery);
//   5. on every Nth state, records that recovery and, if it stored anything,
//      crashes it too: each of those images must recover as in 2-4.
//
// De-duplication: equal images are checked once per oracle window (the
// run of crash points that allow the same snapshots), never across windows,
// so an image that is legal at one point cannot hide the same image being
// wrong at a later one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "pmem/recorder.h"
#include "tests/crash/fs_snapshot.h"

namespace zest::crash {

struct OracleRun {
  std::string name;  // e.g. "random seed 7"
  uint64_t seed = 0;
  std::vector<FsSnapshot> states;  // states[k]: after k operations
  std::vector<std::string> ops;    // ops[k]: what operation k was
};

struct CheckOptions {
  size_t max_states_per_point = 12;
  uint64_t rng_seed = 1;
  // Reports printed in full (all violations are counted).
  size_t max_reports = 3;
  // Where to save the image of the first violation ("" : $TMPDIR or /tmp).
  std::string keep_dir;
  // Off for runs whose violations are expected (the checker's self-test),
  // so a passing suite leaves no files behind.
  bool save_image = true;
  // Every Nth state (0: never), recovery itself is recorded and, if it
  // stored anything (a replay, orphans freed), crashed at each of its
  // fences with up to recovery_states_per_point states; each must recover
  // (again) to an allowed state.
  size_t recovery_crash_every = 8;
  size_t recovery_states_per_point = 4;
};

struct CheckStats {
  size_t runs = 0;
  size_t ops = 0;
  size_t points = 0;
  size_t states = 0;    // states recovered and checked
  size_t distinct = 0;  // distinct images among them (across all windows)
  size_t violations = 0;
  size_t orphan_states = 0;  // states whose crash image held an orphan inode
  size_t replay_states = 0;  // states with a committed, unapplied transaction
  size_t recoveries_crashed = 0;     // recoveries that stored and were crashed
  size_t recovery_states = 0;        // states of crashed recoveries checked
  double seconds = 0;
  // Where the time went.
  double t_fsck_crash = 0, t_mount = 0, t_snapshot = 0, t_fsck_recovered = 0,
         t_other = 0;

  CheckStats& operator+=(const CheckStats& o);
  // "3 runs, 600 ops, 1,234 crash points, 12,345 states (12,001 distinct
  // images), 0 violations, 12.3 s".
  std::string summary() const;
  std::string timing() const;
  // One line per kind of violation with its count.
  std::string violation_kinds() const;
  std::map<std::string, size_t> kinds;  // violation kind -> count
};

class CrashChecker {
 public:
  explicit CrashChecker(uint64_t pool_size);
  ~CrashChecker();
  CrashChecker(const CrashChecker&) = delete;
  CrashChecker& operator=(const CrashChecker&) = delete;

  // Checks every crash state of the recorded run; appends a full report of
  // each of the first max_reports violations to *reports.
  CheckStats check(const pmem::Recorder& recorder, const OracleRun& oracle,
                   const CheckOptions& options,
                   std::vector<std::string>* reports);

  const std::string& scratch_path() const { return path_; }

 private:
  // Makes the scratch pool file hold `image` (its size is the pool size).
  bool load(std::span<const std::byte> image);
  // Steps 2-4 for one image; "" when all is well, else what is wrong.
  // With `recorder`, recovery's stores are recorded.
  std::string recover_and_check(std::span<const std::byte> image,
                                const OracleRun& oracle, size_t lo, size_t hi,
                                const CheckOptions& options,
                                pmem::Recorder* recorder, CheckStats* st,
                                FsSnapshot* got);
  // Crashes a recorded recovery at each of its crash points.
  std::string check_recovery_crashes(const pmem::Recorder& recorder,
                                     const OracleRun& oracle, size_t lo,
                                     size_t hi, const CheckOptions& options,
                                     std::mt19937_64& rng, CheckStats* st);

  uint64_t pool_size_;
  std::string path_;
  int fd_ = -1;
  const std::byte* view_ = nullptr;  // read-only shared mapping of path_
  std::vector<std::byte> patched_;   // scratch for a patched crash image
  uint64_t journal_off_ = 0;
};

// 1234567 -> "1,234,567".
std::string with_commas(uint64_t n);

}  // namespace zest::crash
