// CrashWorkload: a multi-threaded workload on a mounted pmfs that records
// every operation the file system acknowledged, and checks a remount of the
// pool against that record after the server was killed.
//
// Each thread owns a directory (tN, with a subdirectory tN/sub) and a few
// file slots in it, so every slot's history is sequential: a list of
// acknowledged operations and at most one operation in flight when the
// server died. A slot's state is (which name it has, or none; its bytes;
// its one xattr). After the crash, a slot must be in its acknowledged state
// or, if an operation was in flight, in the state that operation would
// have produced: wholly, never a mix (writes up to 1 MiB are atomic, as are
// all metadata operations: docs/guarantees.md).
//
// Written bytes are derived from (file id, write version, offset), so a
// mismatch says which write's bytes are where.
//
// Ops: create (O_EXCL), pwrite (with an optional fsync), rename between the
// directory and its subdirectory, unlink, truncate, setxattr, removexattr.
// Until the kill, every operation must succeed; an error before the kill is
// a failure of its own (not an "in flight" op).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace zest::pcrash {

struct WorkloadOptions {
  int threads = 4;
  int slots = 4;              // files per thread
  bool big_writes = false;    // only 1 MiB writes into pre-filled 4 MiB files
  uint64_t seed = 1;
};

// The state of one file slot as the oracle knows it.
struct SlotState {
  bool exists = false;
  std::string name;  // relative to the mount root
  uint64_t id = 0;   // a new id per create: recreated files differ
  std::vector<uint8_t> bytes;
  bool has_xattr = false;
  std::string xattr;
};

struct VerifyResult {
  uint64_t acknowledged = 0;     // acknowledged ops whose effects were checked
  uint64_t in_flight = 0;        // ops in flight at the kill
  uint64_t in_flight_done = 0;   // ... found wholly applied
  uint64_t in_flight_absent = 0; // ... found wholly not applied
  std::vector<std::string> violations;
};

class CrashWorkload {
 public:
  CrashWorkload(std::string root, const WorkloadOptions& options);
  ~CrashWorkload();
  CrashWorkload(const CrashWorkload&) = delete;
  CrashWorkload& operator=(const CrashWorkload&) = delete;

  // Creates the directories (and, for big_writes, the pre-filled files)
  // before the clock starts; false with *error on failure.
  bool Prepare(std::string* error);
  // Starts the threads; they run until the first failure of an operation.
  void Start();
  // Call just before killing the server: from then on a failure is expected.
  void MarkKilled() { killed_.store(true); }
  // Stops the threads (they end at the first failure after the kill, or
  // at once if the server is still up) and joins them.
  void Join();
  uint64_t Acknowledged() const;

  // Checks the file system mounted at `root` (a remount of the same pool).
  VerifyResult Verify(const std::string& root) const;

 private:
  struct Thread;
  std::string root_;
  WorkloadOptions options_;
  std::atomic<bool> killed_{false};
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<Thread>> threads_;
};

}  // namespace zest::pcrash
