// pmfs: the crash-consistent persistent-memory file system (docs/architecture.md),
// on the format of docs/format.md.
//
// Every operation that answers success is durable (its transaction
// committed, its data persisted before the commit); metadata operations and
// writes up to 1 MiB are atomic. Reads answer with iovecs straight into the
// pool mapping (no copy in the server).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "zest/result.h"
#include "zest/fs/atime.h"
#include "zest/fs/filesystem.h"
#include "pmem/pool.h"

namespace zest::pmem {
class Recorder;
}

namespace zest::pmfs {

struct Options {
  pmem::Durability durability = pmem::Durability::Auto;
  bool read_only = false;
  // Logs every store into the pool (crash testing); must outlive the PmFs.
  pmem::Recorder* recorder = nullptr;
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  // Test hook: the Nth transaction committed after mount stops after the
  // commit word (durable, not yet applied in place), as if the process died
  // there; later operations fail with EIO. 0: off.
  uint64_t test_halt_after_commits = 0;
  // When reads and directory listings update atime (-o noatime, ...). With
  // lazy, an update stays in DRAM until the inode is next committed, the
  // file is fsync'ed, or the pool is unmounted (docs/guarantees.md).
  fs::AtimePolicy atime;
};

class PmFs : public fs::FileSystem {
 public:
  struct Usage {
    uint64_t total_blocks = 0;  // the data region
    uint64_t free_blocks = 0;
    uint64_t inodes = 0;
    uint64_t free_inodes = 0;
  };
  virtual Usage usage() const = 0;
  // The pool's durability statement (pmem::PoolMap::describe()).
  virtual std::string durability() const = 0;
  // Passes a mark to the recorder, if any ("operation N returned here").
  virtual void mark(uint64_t tag) = 0;
  // The pool, for tests and tools (read access).
  virtual const pmem::PoolMap& pool() const = 0;
};

// Opens and recovers a pool: superblock A/B choice, journal replay, orphan
// inodes freed, DRAM state built. A damaged or foreign pool is refused
// (EINVAL: not a pmfs pool / unsupported; EUCLEAN: damaged) with *why naming
// what is wrong; every pointer, count and length read from the pool is
// checked before use.
Result<std::unique_ptr<PmFs>> open(const std::string& pool_path, const Options& options,
                                   std::string* why);
// The same on an already mapped pool (tests, crash tester).
Result<std::unique_ptr<PmFs>> open(pmem::PoolMap pool, const Options& options,
                                   std::string* why);

}  // namespace zest::pmfs
