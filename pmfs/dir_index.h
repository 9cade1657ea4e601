// DirIndex: the DRAM index of one directory (docs/format.md, "Directories"):
// name -> entry location in a hash map (O(1) lookup, insert and remove at
// any size), the chain of directory blocks, and per block a bitmap of used
// slots and one of entry starts (readdir walks those in cookie order and
// reads the names from the pool).
//
// Placement keeps a stack of blocks that may have free slots; a new entry
// looks at the top few and otherwise appends a block, so insertion is O(1).
//
// Invariants: every slot not covered by an entry is all zero in the pool
// (removal zeroes the whole entry); by_name_ and the bitmaps describe the
// same entries; entries never move (cookies are stable).
// Not thread-safe: the directory inode's lock protects it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pmfs/layout.h"

namespace zest::pmfs {

class DirIndex {
 public:
  struct Entry {
    uint32_t idx = 0;   // chain index
    uint8_t slot = 0;
    uint8_t nslots = 0;
    uint8_t type = 0;   // DT_*
    uint64_t ino = 0;
  };
  struct Place {
    uint32_t idx;
    uint8_t slot;
    bool new_block;  // idx == chain size: a block must be appended
  };
  static constexpr uint64_t kFull = (uint64_t{1} << kDirSlots) - 1;

  const Entry* find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &it->second;
  }
  size_t size() const { return by_name_.size(); }
  bool empty() const { return by_name_.empty(); }
  const std::vector<uint64_t>& chain() const { return chain_; }
  uint64_t starts(size_t idx) const { return starts_[idx]; }
  uint64_t entry_offset(uint32_t idx, uint8_t slot) const {
    return chain_[idx] * kBlockSize + sizeof(DirBlockHeader) + uint64_t(slot) * kDirSlotSize;
  }

  // Where an entry of `nslots` slots would go.
  Place place(uint8_t nslots);

  // Mount and after-commit changes.
  void add_block(uint64_t block);
  // False if the name exists or the slots are taken.
  bool insert(std::string_view name, const Entry& e);
  void erase(std::string_view name);
  void set_target(std::string_view name, uint64_t ino, uint8_t type);
  // Drops everything (directory freed).
  void reset();

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void mark_candidate(uint32_t idx);

  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> by_name_;
  std::vector<uint64_t> chain_;
  std::vector<uint64_t> used_;
  std::vector<uint64_t> starts_;
  std::vector<uint32_t> candidates_;
  std::vector<uint8_t> is_candidate_;
};

// The bytes of an entry (nslots * 64, zero padded), sealed. Returns nslots.
size_t encode_dirent(std::string_view name, uint64_t ino, uint8_t type, std::byte* out);
DirBlockHeader make_dir_block_header(uint64_t ino, uint64_t next);

}  // namespace zest::pmfs
