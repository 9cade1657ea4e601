#include "pmfs/dir_index.h"

#include <cstring>

namespace zest::pmfs {
namespace {

uint64_t run_mask(uint8_t nslots, uint8_t slot) {
  return ((uint64_t{1} << nslots) - 1) << slot;
}

// First slot of `nslots` consecutive free slots, or -1.
int find_run(uint64_t used, uint8_t nslots) {
  uint64_t r = ~used & DirIndex::kFull;
  for (uint8_t i = 1; i < nslots; ++i) r &= (~used & DirIndex::kFull) >> i;
  return r ? __builtin_ctzll(r) : -1;
}

}  // namespace

size_t encode_dirent(std::string_view name, uint64_t ino, uint8_t type, std::byte* out) {
  const size_t nslots = dirent_slots(name.size());
  std::memset(out, 0, nslots * kDirSlotSize);
  DirentHeader h{};
  h.nslots = static_cast<uint8_t>(nslots);
  h.type = type;
  h.namelen = static_cast<uint16_t>(name.size());
  h.ino = ino;
  std::memcpy(out, &h, sizeof(h));
  std::memcpy(out + sizeof(h), name.data(), name.size());
  h.csum = crc32c(out, sizeof(h) + name.size());
  std::memcpy(out, &h.csum, sizeof(h.csum));
  return nslots;
}

DirBlockHeader make_dir_block_header(uint64_t ino, uint64_t next) {
  DirBlockHeader h{};
  h.magic = kDirBlockMagic;
  h.ino = ino;
  h.next = next;
  h.csum = crc32c(&h, sizeof(h));
  return h;
}

DirIndex::Place DirIndex::place(uint8_t nslots) {
  size_t looked = 0;
  size_t k = candidates_.size();
  while (k > 0 && looked < 4) {
    const uint32_t idx = candidates_[k - 1];
    if (used_[idx] == kFull && k == candidates_.size()) {
      candidates_.pop_back();  // full: no longer a candidate
      is_candidate_[idx] = 0;
      --k;
      continue;
    }
    const int s = find_run(used_[idx], nslots);
    if (s >= 0) return {idx, static_cast<uint8_t>(s), false};
    --k;
    ++looked;
  }
  return {static_cast<uint32_t>(chain_.size()), 0, true};
}

void DirIndex::mark_candidate(uint32_t idx) {
  if (!is_candidate_[idx]) {
    is_candidate_[idx] = 1;
    candidates_.push_back(idx);
  }
}

void DirIndex::add_block(uint64_t block) {
  chain_.push_back(block);
  used_.push_back(0);
  starts_.push_back(0);
  is_candidate_.push_back(0);
  mark_candidate(static_cast<uint32_t>(chain_.size() - 1));
}

bool DirIndex::insert(std::string_view name, const Entry& e) {
  if (e.idx >= chain_.size() || e.slot + e.nslots > kDirSlots) return false;
  const uint64_t m = run_mask(e.nslots, e.slot);
  if (used_[e.idx] & m) return false;
  if (!by_name_.emplace(std::string(name), e).second) return false;
  used_[e.idx] |= m;
  starts_[e.idx] |= uint64_t{1} << e.slot;
  return true;
}

void DirIndex::erase(std::string_view name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return;
  const Entry e = it->second;
  by_name_.erase(it);
  used_[e.idx] &= ~run_mask(e.nslots, e.slot);
  starts_[e.idx] &= ~(uint64_t{1} << e.slot);
  mark_candidate(e.idx);
}

void DirIndex::set_target(std::string_view name, uint64_t ino, uint8_t type) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return;
  it->second.ino = ino;
  it->second.type = type;
}

void DirIndex::reset() {
  by_name_.clear();
  chain_.clear();
  used_.clear();
  starts_.clear();
  candidates_.clear();
  is_candidate_.clear();
}

}  // namespace zest::pmfs
