// XattrIndex: the DRAM side of one inode's extended attributes
// (docs/format.md, "Extended attributes"): name -> where the attribute
// lives, in descending name order (as tmpfs lists them), and a mirror of
// the inode's chain of xattr blocks: per block its neighbours, its used
// slots (slot blocks) and how many entries it holds, and a stack of slot
// blocks that may have room, so placing an entry costs O(1) at any count.
//
// Changes are staged into a transaction (every byte they change in place
// goes into it; new records and slot blocks are written beforehand) and
// finished once it committed:
// - stage_set changes the DRAM state at once, logging how to undo it, so
//   that further sets staged into the same transaction (a new inode's two
//   inherited ACLs) see it; finish() ends it after the commit, rollback()
//   undoes every set staged since the last finish and frees the blocks they
//   allocated. A set never frees a chain block and never changes the head
//   of a non-empty chain (new slot blocks are appended at the tail), so it
//   changes nd.xattr_block only for an inode's first attribute.
// - stage_remove changes nothing in DRAM; apply_remove() does, after the
//   commit, what the returned Removal says. A removal is staged alone in its
//   transaction (so it never frees a block the transaction writes into):
//   it frees the emptied chain block, or with the last attribute the whole
//   chain.
//
// Invariants: every slot not covered by an entry is zero in the pool (a
// removal zeroes its whole entry); the map and the per-block state describe
// the same entries; head/tail and the neighbour links mirror the pool's
// chain. Not thread-safe: the owning inode's lock protects it (held
// exclusively from stage to finish/rollback/apply_remove).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "zest/result.h"
#include "pmem/pool.h"
#include "pmfs/allocator.h"
#include "pmfs/journal.h"
#include "pmfs/layout.h"

namespace zest::pmfs {

// Where one attribute lives.
struct XattrLoc {
  enum class Kind : uint8_t {
    Inline,  // name and value in a slot-block entry
    Record,  // a slot-block entry refers to a record
    Table,   // an XattrTable entry refers to a record
  };
  Kind kind = Kind::Inline;
  uint8_t slot = 0;    // Inline, Record: first slot of the entry in `block`
  uint8_t nslots = 0;  // Inline, Record
  uint16_t entry = 0;  // Table: index of the entry in `block`
  uint32_t valuelen = 0;
  uint64_t block = 0;   // the chain block holding the entry
  uint64_t record = 0;  // Record, Table: first block of the record
  uint32_t nblocks = 0;
  bool has_record() const { return kind != Kind::Inline; }
};

class XattrIndex {
 public:
  using Map = std::map<std::string, XattrLoc, std::greater<>>;
  struct Env {
    pmem::PoolMap* pool;
    BlockAllocator* alloc;
    uint64_t ino;
  };
  // What a staged removal frees, for apply_remove.
  struct Removal {
    bool chain = false;     // the last attribute: the whole chain
    uint64_t unlinked = 0;  // the chain block it emptied (0: none)
  };

  // --- reading (find/begin/end also serve fs::reply_xattr_list) ---
  Map::const_iterator find(std::string_view name) const {
    return map_.find(name);
  }
  Map::const_iterator begin() const { return map_.begin(); }
  Map::const_iterator end() const { return map_.end(); }
  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  uint64_t bytes() const { return bytes_; }  // names and values
  size_t chain_blocks() const { return blocks_.size(); }
  // Pool offset of the value of the attribute at `it`.
  static uint64_t value_offset(Map::const_iterator it);

  // --- mount: the chain's blocks in chain order, then their entries ---
  void load_block(uint64_t block, bool table);
  // False when the name is taken or the slots overlap another entry.
  bool load(std::string name, const XattrLoc& loc);
  void finish_load();

  // --- changing ---
  // Stages setting `name` (a valid xattr name) to `value` (at most
  // kXattrMaxValue bytes). ENOSPC past kXattrMaxCount / kXattrMaxBytes or
  // when no block is free; nothing is left staged then.
  Status stage_set(const Env& env, DiskInode& nd, std::string_view name,
                   std::span<const std::byte> value, Transaction& tx);
  void finish();
  void rollback(BlockAllocator& alloc);
  // Stages removing `name`, which must exist.
  Removal stage_remove(const Env& env, DiskInode& nd, std::string_view name,
                       Transaction& tx);
  void apply_remove(std::string_view name, const Removal& r);
  // Every block (chain and records) into tx's free list (inode freed).
  void free_all(Transaction& tx) const;
  void clear();

 private:
  struct Block {
    uint64_t prev = 0, next = 0;  // chain neighbours, 0 = none
    uint64_t used = 0;            // slot blocks: bit s = slot s in use
    uint32_t entries = 0;         // entries the block holds
    bool table = false;
    bool cand = false;  // on cand_
  };
  struct Undo {
    enum class What : uint8_t { Block, NameAdded, NameLoc } what;
    uint64_t block = 0;
    std::optional<Block> before;  // Block: nullopt = it did not exist
    Map::iterator it;             // NameAdded, NameLoc
    XattrLoc loc;                 // NameLoc
  };

  // A place for an entry of `nslots`: {block, slot}; block 0 = none.
  std::pair<uint64_t, int> place(uint8_t nslots);
  void mark_candidate(uint64_t b);
  void drop_candidate(uint64_t b);
  void save(uint64_t b);  // logs blocks_[b] before a change
  void erase_block(uint64_t b);
  // Puts chain block `b`'s header, with `next`, into tx.
  void stage_next(const Env& env, uint64_t b, uint64_t next,
                  Transaction& tx) const;

  Map map_;
  std::unordered_map<uint64_t, Block> blocks_;
  std::vector<uint64_t> cand_;  // slot blocks that may have free slots
  uint64_t head_ = 0, tail_ = 0;
  uint64_t bytes_ = 0;
  // Sets staged since the last finish: how to undo them, what they
  // allocated, and the scalars before the first.
  size_t open_ = 0;
  std::vector<Undo> log_;
  std::vector<BlockRun> fresh_;
  uint64_t saved_head_ = 0, saved_tail_ = 0, saved_bytes_ = 0;
};

// A sealed slot-block header.
XattrSlotBlockHeader make_xattr_slot_block_header(uint64_t ino, uint64_t next);

}  // namespace zest::pmfs
