// The differential random tester: runs one seeded sequence of file-system
// operations on an oracle directory (tmpfs) and on a subject directory (a
// zest mount, or any other server) in lockstep and compares every result.
//
// What is compared: return values, errno, bytes read, readlink targets, xattr
// values and lists, sorted directory listings with d_type, SEEK_DATA /
// SEEK_HOLE offsets, and after every mutating operation the lstat/fstat of the
// affected paths and their parents: type+mode, nlink, uid, gid, rdev, size
// (not for directories, whose size each fs defines freely), st_blocks (regular
// files), inode identity (two names of one oracle inode must be one subject
// inode), times set explicitly by utimensat (exactly), and for mtime/ctime
// whether they changed since the last observation of that inode (a model of
// last-seen times per inode, keyed by the oracle's inode number).
//
// Everything happens below a work directory "w<seed>" on both sides, on a
// namespace of a few names so that collisions and errors are frequent.
// Open file descriptors live in a small table kept in lockstep, so
// operations on open-but-unlinked files are exercised too.
//
// Reproduce a failure: ZEST_DIFFTEST_SEED=<seed> ZEST_DIFFTEST_OPS=<n> with
// tests/mount/difftest_test, or zest-conformance MOUNTPOINT --seed <seed>
// --ops <n> against any mounted file system.
//
// Used by tests/mount/difftest_test.cc and by zest-conformance (the
// conformance kit, docs/conformance.md); it depends on nothing but libc.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace zest::conformance {

struct DiffOptions {
  uint64_t seed = 1;
  int ops = 2000;
  std::string oracle_root;   // a directory on tmpfs
  std::string subject_root;  // a directory served by the subject
  std::string subject_name;  // for reports
  // Compare st_blocks of regular files (tmpfs counts 4 KiB pages).
  bool compare_blocks = true;
  // Compare inode identity across hard links.
  bool compare_inodes = true;
  // The subject's directory times may stay put on link, unlink, rmdir and
  // rename as tmpfs's do (see the tmpfs quirk in difftest.cc): tolerate a
  // change seen on the oracle only, too. zest-conformance sets it (its
  // times.* checks test those updates with the clock moved in between);
  // the zest tests do not, so memfs and pmfs stay held to every change.
  bool subject_multigrain = false;
  // Op kinds (DiffOpName) never to generate, e.g. for a server known not to
  // implement them; comma separated.
  std::string skip_ops;
  // Called before every 50th operation and once at the end with the number
  // of operations done; returning false stops the run (DiffResult::
  // interrupted), e.g. on SIGINT. Unset: no calls.
  std::function<bool(int ops_done)> progress;
};

struct DiffResult {
  bool ok = true;
  bool interrupted = false;  // progress() asked to stop; ok says nothing
  int ops_run = 0;
  std::string
      report;  // on divergence: seed, op index, op, both results, history
  std::vector<int> op_counts;  // per op kind, for coverage reports
  std::vector<int> op_ok;      // per op kind: how many succeeded (oracle)
};

// Runs OPTIONS.ops operations from OPTIONS.seed; stops at the first
// divergence.
DiffResult RunDiffTest(const DiffOptions& options);

// Name of op kind I (index into DiffResult::op_counts).
const char* DiffOpName(size_t i);

}  // namespace zest::conformance
