// StateTable: the lease state a client checks with one load per operation
// (docs/layouts.md, "The client channel").
//
// One 64-bit word per slot in a memfd that the server maps read-write and
// hands the client read-only (reopened O_RDONLY, sealed against resizing).
// A word is (generation << 2) | state. The server is the only writer; the
// client keeps the word it was granted and compares: a lease is usable
// while the word still has the generation it was granted with and the state
// is Valid or Recall. The server never trusts the table: its own lease
// records (LeaseManager) decide every commit and map.
//
// Format (also the wire format of the table, docs/layouts.md):
//   word[slot] : uint64, little-endian, naturally aligned, written with
//   release stores, read with acquire loads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "base/fd.h"
#include "zest/result.h"

namespace zest::layout {

enum class SlotState : uint32_t {
  Free = 0,    // no lease
  Valid = 1,   // granted and usable
  Recall = 2,  // usable, but the server asked for it back: commit and return
  Fenced = 3,  // taken away: stop using it, return it, map again
};

constexpr uint64_t slot_word(uint64_t generation, SlotState s) {
  return (generation << 2) | static_cast<uint64_t>(s);
}
constexpr SlotState slot_state(uint64_t word) { return static_cast<SlotState>(word & 3); }
constexpr uint64_t slot_generation(uint64_t word) { return word >> 2; }
// Whether a lease granted as `granted` (a Valid word) may still be used
// when the table reads `now`.
constexpr bool slot_usable(uint64_t granted, uint64_t now) {
  return slot_generation(now) == slot_generation(granted) &&
         (slot_state(now) == SlotState::Valid || slot_state(now) == SlotState::Recall);
}

class StateTable {
 public:
  // A table of `slots` words (all Free, generation 0).
  static Result<StateTable> create(size_t slots);
  StateTable() = default;
  StateTable(StateTable&& o) noexcept;
  StateTable& operator=(StateTable&& o) noexcept;
  ~StateTable();

  size_t slots() const { return slots_; }
  size_t bytes() const { return slots_ * sizeof(uint64_t); }
  // A new read-only descriptor of the table, for the client.
  Result<UniqueFd> reader_fd() const;

  uint64_t load(uint32_t slot) const { return word(slot).load(std::memory_order_acquire); }
  void store(uint32_t slot, uint64_t w) { word(slot).store(w, std::memory_order_release); }

 private:
  std::atomic<uint64_t>& word(uint32_t slot) const { return words_[slot]; }
  UniqueFd fd_;
  std::atomic<uint64_t>* words_ = nullptr;
  size_t slots_ = 0;
};

}  // namespace zest::layout
