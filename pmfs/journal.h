// The redo journal (docs/format.md, "Journal"): Transaction collects the
// metadata bytes an operation changes; Journal commits one transaction at a
// time with the three-step protocol and replays the last one at mount.
// A record may target any byte from the inode table on: metadata, and the
// data of small overwrites (pmfs/file_ops.cc, "journaled overwrite").
//
// Invariants:
// - a transaction's records are applied in place only after its commit word
//   is persistent (step 3 after step 2), so nothing of an uncommitted
//   transaction is ever visible in place;
// - a transaction never writes records into blocks it frees (callers free
//   blocks only after commit, and never put records into them), so replaying
//   the last committed transaction after its blocks were reused is harmless;
// - commits are serialized by one mutex, a leaf of the lock order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "zest/result.h"
#include "pmem/pool.h"
#include "pmfs/layout.h"

namespace zest::pmfs {

// A run of pool blocks (to free after a commit, or as allocated).
struct BlockRun {
  uint64_t start = 0;
  uint64_t count = 0;
};

// The DRAM side of one transaction: records already in their journal form
// (JournalRecord, bytes, padding to 8), so commit copies them in one go, and
// the blocks to give back once it committed. Reused per thread (local()):
// capacity is reserved once, so steady-state operations allocate nothing.
class Transaction {
 public:
  Transaction() {
    buf_.reserve(64 * 1024);
    frees_.reserve(256);
  }
  // This thread's transaction, cleared. Operations never nest, so one per
  // thread suffices.
  static Transaction& local();

  void clear() {
    buf_.clear();
    frees_.clear();
    records_ = 0;
    data_ino_ = 0;
  }
  void put(uint64_t dest, const void* src, size_t len);
  template <class T>
  void put(uint64_t dest, const T& value) {
    put(dest, &value, sizeof(T));
  }
  // Blocks returned to the allocator after the commit (never before).
  void free_after(uint64_t start, uint64_t count) {
    if (count) frees_.push_back({start, count});
  }

  // The frees include data blocks of regular file `ino` (which a layout
  // may map: PmFsImpl::commit defers them while the file's maps are held).
  void frees_data_of(uint64_t ino) { data_ino_ = ino; }
  uint64_t data_ino() const { return data_ino_; }

  size_t bytes() const { return buf_.size(); }
  size_t records() const { return records_; }
  bool empty() const { return buf_.empty(); }
  std::span<const std::byte> data() const { return buf_; }
  const std::vector<BlockRun>& frees() const { return frees_; }

 private:
  std::vector<std::byte> buf_;
  std::vector<BlockRun> frees_;
  uint64_t data_ino_ = 0;
  size_t records_ = 0;
};

class Journal {
 public:
  // `start`/`blocks`: the journal region (from a valid superblock).
  // `min_dest`: the first byte records may target (the inode table).
  Journal(pmem::PoolMap* pool, uint64_t start_block, uint64_t blocks, uint64_t min_dest);

  // Mount: checks the header and replays a committed transaction. With a
  // read-only pool, succeeds only if the records are already in place.
  // EUCLEAN/EROFS with *why on a damaged header or records.
  Status recover(std::string* why);

  // Bytes of records a transaction may hold.
  size_t capacity() const { return capacity_; }
  bool fits(const Transaction& tx) const { return tx.bytes() <= capacity_; }

  // Commits `tx` (steps 1-3). ENOSPC if it does not fit (nothing written),
  // EROFS on a read-only pool, EIO once halted (test hook). An empty
  // transaction commits trivially.
  Status commit(const Transaction& tx);

  // Fences the last transaction's in-place apply (commit leaves that to the
  // next commit's step 0). For a clean unmount; not needed for durability.
  void quiesce();

  // Test hook: the `n`th commit from now stops after step 2 (durable but not
  // applied in place), as if the process died there; every later commit
  // fails with EIO. 0 disables.
  void halt_after(uint64_t n) {
    std::lock_guard lock(mu_);
    halt_countdown_ = n;
  }
  // FS_IOC_SHUTDOWN: no commit from now on reaches the pool (EIO). A
  // commit in progress finishes first (it holds the mutex).
  void halt() {
    std::lock_guard lock(mu_);
    halted_ = true;
  }
  bool halted() const {
    std::lock_guard lock(mu_);
    return halted_;
  }
  uint64_t seq() const {
    std::lock_guard lock(mu_);
    return seq_;
  }

 private:
  // Walks the records of `bytes` bytes at `recs`; calls f(dest, src, len)
  // for each. False if a record is malformed or targets outside the
  // metadata area.
  template <class F>
  bool for_each_record(const std::byte* recs, uint64_t bytes, F&& f) const;

  pmem::PoolMap* pool_;
  const uint64_t off_;       // byte offset of the header
  const size_t capacity_;    // bytes of records
  const uint64_t min_dest_;  // first byte a record may target
  mutable std::mutex mu_;
  uint64_t seq_ = 0;
  uint64_t halt_countdown_ = 0;
  bool halted_ = false;
};

}  // namespace zest::pmfs
