// ExtentMap: one file's extents (docs/format.md, "Extents"), in DRAM as an
// ordered map file block -> extent, mirroring the chain of extent blocks.
//
// Changes are made in two steps, so an operation changes nothing before its
// transaction commits: stage() computes the new extents of a window of file
// blocks, puts the extent-slot records into the transaction (and the blocks
// the window no longer uses into its free list), and records the DRAM
// changes in an Edit; apply() makes them after the commit, abort() drops
// them (freeing any chain block stage() allocated).
//
// Extents that end up file- and pool-contiguous with the same flags are
// merged, so appending to a file keeps one extent per contiguous run.
// Slot ids: chain index * kExtentsPerBlock + slot, chain index in DRAM order
// (new chain blocks are prepended in the pool, appended here; the pool's
// order does not matter for extents).
//
// Not thread-safe: the owning inode's lock protects it (exclusive from
// stage to apply/abort).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "zest/result.h"
#include "pmem/pool.h"
#include "pmfs/allocator.h"
#include "pmfs/journal.h"

namespace zest::pmfs {

// A run of file blocks mapped to pool blocks; flags 0 (written) or
// kExtentUnwritten.
struct Mapping {
  uint64_t file = 0;
  uint64_t pool = 0;
  uint64_t count = 0;
  uint32_t flags = 0;
};

class ExtentMap {
 public:
  struct Ext {
    uint64_t pool;
    uint64_t count;
    uint32_t flags;
    uint32_t slot;
    uint64_t end(uint64_t file) const { return file + count; }
  };
  using Map = std::map<uint64_t, Ext>;

  struct Edit {
    Edit() {
      olds.reserve(64);
      pieces.reserve(300);
      inserts.reserve(300);
      erase.reserve(64);
      freed_slots.reserve(64);
    }
    void clear(uint64_t head) {
      olds.clear();
      pieces.clear();
      inserts.clear();
      erase.clear();
      freed_slots.clear();
      extra_free.clear();
      new_chain.clear();
      taken = 0;
      blocks_delta = 0;
      new_head = head;
    }
    std::vector<std::pair<uint64_t, Ext>> olds;
    std::vector<Mapping> pieces;
    std::vector<std::pair<uint64_t, Ext>> inserts;
    std::vector<uint64_t> erase;
    std::vector<uint32_t> freed_slots;
    std::vector<uint32_t> extra_free;  // slots of new chain blocks, unused
    std::vector<uint64_t> new_chain;
    size_t taken = 0;  // slots taken from the top of free_slots_
    int64_t blocks_delta = 0;
    uint64_t new_head = 0;
    // This thread's Edit (operations do not nest).
    static Edit& local(uint64_t head);
  };

  struct Env {
    pmem::PoolMap* pool;
    BlockAllocator* alloc;
    uint64_t ino;
  };

  // --- mount ---
  // Appends a chain block (pool order) whose slots then load().
  void add_chain_block(uint64_t block) { chain_.push_back(block); }
  void set_head(uint64_t head) { head_ = head; }
  // False when the extent overlaps one already loaded.
  bool load(uint32_t slot, uint64_t file, uint64_t pool, uint64_t count, uint32_t flags);
  // Builds the free-slot stack from the slots load() did not fill.
  void finish_load();

  // --- reading ---
  const Map& map() const { return map_; }
  uint64_t blocks() const { return blocks_; }
  uint64_t head() const { return head_; }
  const std::vector<uint64_t>& chain() const { return chain_; }
  // The extent containing `fb`, else the first one after it.
  Map::const_iterator from(uint64_t fb) const;
  // The extent containing `fb`, or end().
  Map::const_iterator containing(uint64_t fb) const;
  // Number of extents overlapping [a, b).
  size_t count_in(uint64_t a, uint64_t b, size_t stop_at) const;

  // --- changing ---
  // Replaces file blocks [a, b) by `maps` (sorted by file block, inside
  // [a, b); the rest of the window becomes a hole). Blocks of old extents
  // in the window that `maps` does not keep at the same place are freed
  // after the commit (tx.free_after). ENOSPC when a new chain block cannot
  // be allocated (the Edit must then be aborted).
  Status stage(Edit& e, uint64_t a, uint64_t b, std::span<const Mapping> maps, const Env& env,
               Transaction& tx);
  void apply(Edit& e);
  void abort(Edit& e, BlockAllocator& alloc);
  // Everything the file owns (data and chain blocks) into tx's free list.
  void free_all(Transaction& tx) const;
  // Forget everything (after a committed free_all).
  void reset();

 private:
  uint64_t slot_offset(uint32_t slot, const Edit& e) const;
  Result<uint32_t> take_slot(Edit& e, const Env& env);

  Map map_;
  std::vector<uint64_t> chain_;
  std::vector<uint32_t> free_slots_;
  uint64_t blocks_ = 0;
  uint64_t head_ = 0;
};

// A sealed DiskExtent for a mapping.
DiskExtent make_extent(uint64_t file, uint64_t pool, uint64_t count, uint32_t flags);
bool extent_csum_ok(const DiskExtent& e);

}  // namespace zest::pmfs
