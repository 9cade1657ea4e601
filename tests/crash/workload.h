// RecordedRun: a pmfs pool in recorder mode plus the oracle of what every
// completed operation left; RandomWorkload: a seeded random mix of
// operations on one.
//
// The recorder is attached when the freshly formatted pool is opened, so its
// initial image is mkfs's output. mark(k) is logged when k operations have
// returned (mark 0 before the first): the crash checker reads "between mark
// k and mark k+1" as "operation k in flight".
//
// The harness's fake sink counts kernel references like the server does;
// the workload forgets every inode an operation answered with right away
// (as the kernel does when it drops a dentry), so unlink frees at once unless
// the file is held open. Open files are modelled explicitly (create/open
// keep a handle, close releases it), which is how orphans arise.
#pragma once

#include <sched.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "pmem/recorder.h"
#include "pmfs/format.h"
#include "tests/crash/crash_checker.h"
#include "tests/crash/fs_snapshot.h"
#include "tests/pmfs/harness.h"

namespace zest::crash {

class RecordedRun {
 public:
  RecordedRun(std::string name, uint64_t seed, uint64_t pool_size,
              pmfs::MkfsOptions mkfs);
  ~RecordedRun();

  pmfs::test::PmFsHarness& h() { return *h_; }
  const pmem::Recorder& recorder() const { return recorder_; }
  const OracleRun& oracle() const { return oracle_; }
  uint64_t pool_size() const { return pool_size_; }
  // The state after the operations so far.
  const FsSnapshot& current() const { return oracle_.states.back(); }

  // Runs one operation: `f` performs it and returns how it went (appended to
  // the description); then the mark, and the snapshot of the result.
  void op(std::string description, const std::function<std::string()>& f);

  // Drops the kernel's references to `ino` (as after a dentry is dropped).
  void forget(fs::Ino ino) { h_->forget(ino); }
  // The recording runs pinned to one CPU (for a reproducible layout); call
  // once the operations are done, to check on every CPU again.
  void unpin();

 private:
  // Declared first: the recorder must outlive the file system.
  pmem::Recorder recorder_;
  uint64_t pool_size_;
  std::unique_ptr<pmfs::test::PmFsHarness> h_;
  OracleRun oracle_;
  cpu_set_t saved_affinity_{};
  bool pinned_ = false;
};

struct WorkloadOptions {
  size_t ops = 150;
  uint64_t max_write = 256 << 10;
};

// Runs `options.ops` random operations on `run`.
void random_workload(RecordedRun& run, std::mt19937_64& rng,
                     const WorkloadOptions& options);

// Many xattrs on one new file /x, one operation each: small ones set until
// they fill several slot blocks, then replaced across kinds (a larger
// value in the same block or another, a record of whole blocks, back to a
// small one), a run of them removed (emptying a block in the middle of the
// chain), new ones set, and finally all removed (the chain freed).
void xattr_workload(RecordedRun& run, std::mt19937_64& rng);

// A human-readable errno name ("ENOENT"), or "ok" for 0.
std::string errno_name(int err);

// Fills `out` with `n` bytes derived from `seed` (distinct per write).
void fill_pattern(std::string* out, size_t n, uint64_t seed);

}  // namespace zest::crash
