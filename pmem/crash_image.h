// CrashImageBuilder: the pool images a crash could leave, built from a
// Recorder's log and the pool's initial image (the method of pmreorder and
// Chipmunk).
//
// Model (x86 with ADR, i.e. libpmem2's cache-line granularity):
//   - A store is persistent once a flush covering its cache line (flushes
//     write back whole 64-byte lines, so also earlier stores in the line)
//     has been followed by a fence. Until then it is in flight.
//   - An in-flight store may have reached media or not, independently of
//     every other in-flight one, flushed or not (caches evict at will).
//   - Only an aligned 8-byte word is stored atomically: a store that spans
//     several words may be torn into its words (a store of 4 bytes inside
//     one word is not torn).
// CrashModel::flush_required = false models byte granularity (eADR: caches
// are persistent, a fence alone persists every earlier store).
//
// Crash points: each FENCE (the crash happens just before it completes, when
// the set in flight is largest; a crash anywhere between two fences leaves a
// state that is also one of the next fence's) and each MARK (a test's "op N
// returned here"). At point p, the persisted image is the initial image plus
// every store persistent before p, applied in log order; the states are that
// image plus any subset (at word granularity) of the stores in flight,
// applied in log order. Callers that want a crash after the last operation
// too mark() at the end of their run.
//
// Efficiency: the builder keeps one working image and walks the log forward,
// applying stores as they become persistent; a state is produced by applying
// its in-flight stores with an undo log and rolled back after the callback,
// so a state costs what its in-flight stores touch, not the pool size. The
// image hash used for de-duplication is a sum over words, updated for the
// words that change. Going back to an earlier point restarts the walk from
// the initial image (visit points in increasing order).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <unordered_set>
#include <vector>

#include "pmem/recorder.h"

namespace zest::pmem {

struct CrashModel {
  // How much a flush writes back around its range: a cache line.
  uint64_t line = 64;
  // true: a store needs a flush covering it, then a fence (ADR).
  // false: a fence persists every earlier store (eADR, byte granularity).
  bool flush_required = true;
};

// A store in flight at a crash point: a whole STORE entry of the log, or the
// part of one that a partial flush left in a different state from the rest.
struct Store {
  size_t entry = 0;     // index of the STORE in the log
  uint64_t offset = 0;  // pool offset of this part
  uint64_t length = 0;
  bool flushed = false;  // a flush covering it came after it, not yet fenced
};

// The aligned 8-byte words a store touches (how many ways it may tear).
uint64_t word_count(const Store& s);

struct CrashPoint {
  size_t entry = 0;  // index of the FENCE or MARK in the log
  OpKind kind = OpKind::Fence;
  uint64_t tag = 0;  // MARK only
};

using ImageHash = std::array<uint64_t, 2>;

// One state handed to a for_each_state callback. `image` is valid only
// during the callback (it is the builder's working image, rolled back
// afterwards); copy it to keep it.
struct CrashState {
  size_t point = 0;
  std::span<const std::byte> image;
  ImageHash hash{};
  // How the in-flight stores were chosen: "none", "all", "only" (just
  // pending[index]), "without" (all but pending[index]), "exhaustive" (one
  // subset of words of a small set), or "random".
  const char* how = "";
  size_t index = 0;
};

// Hashes of states already produced, to skip identical images (across crash
// points too, when one set is passed to several calls).
class SeenStates {
 public:
  // True if the hash was new.
  bool insert(const ImageHash& h) { return set_.insert(h).second; }
  size_t size() const { return set_.size(); }

 private:
  struct Hasher {
    size_t operator()(const ImageHash& h) const { return h[0] ^ (h[1] << 1); }
  };
  std::unordered_set<ImageHash, Hasher> set_;
};

class CrashImageBuilder {
 public:
  // Callback for for_each_state: return false to stop.
  using StateFn = std::function<bool(const CrashState&)>;

  // `base_image` is the pool when the log began (Recorder::initial_image);
  // every log entry must lie inside it.
  CrashImageBuilder(std::vector<std::byte> base_image, StoreLog log,
                    CrashModel model = {});

  size_t crash_points() const { return points_.size(); }
  const CrashPoint& point(size_t p) const { return points_[p]; }
  const StoreLog& log() const { return log_; }

  // The stores in flight at point p, in log order.
  std::vector<Store> pending(size_t p);

  // The image at point p with pending(p)[i] applied whole where applied[i]
  // (missing entries count as false).
  void build(size_t p, const std::vector<bool>& applied,
             std::vector<std::byte>* out);
  // The same at word granularity: words[i][k] says whether the k-th aligned
  // word of pending(p)[i] (of word_count of them) reached media.
  void build_words(size_t p, const std::vector<std::vector<bool>>& words,
                   std::vector<std::byte>* out);

  // Yields distinct states of point p, in this order: none applied, all
  // applied, each single one applied, each single one omitted, then (if
  // the in-flight stores have few words, at most 16) every subset of their
  // words, else random subsets (stores applied, omitted or torn) until
  // max_states distinct states or the random tries run dry. Skips images
  // whose hash is in *seen (a set local to the call if null) and adds the
  // ones it yields. Returns how many it yielded.
  size_t for_each_state(size_t p, size_t max_states, std::mt19937_64& rng,
                        const StateFn& fn, SeenStates* seen = nullptr);

  // for_each_state over every crash point in order, with one SeenStates.
  // Returns the number of states yielded.
  size_t for_each_crash_state(size_t max_per_point, std::mt19937_64& rng,
                              const StateFn& fn);

 private:
  // A byte range to copy into the working image.
  struct Range {
    uint64_t offset;
    uint64_t length;
    const std::byte* src;
  };
  struct WordSpan {
    uint64_t first;  // word index
    uint64_t end;    // one past the last word
  };

  void seek(size_t p);
  void reset();
  void step(const LogEntry& e);  // applies one entry to the walk
  void persist_ranges(const std::vector<Range>& ranges);
  void apply_merged(const std::vector<Range>& ranges);
  // Applies ranges to the working image, saving what they cover for undo()
  // and updating the hash.
  void apply_with_undo(const std::vector<Range>& ranges);
  void undo();
  void merge_words(const std::vector<Range>& ranges);
  ImageHash hash_words(uint64_t first, uint64_t end) const;
  const std::byte* src_of(const Store& s) const;
  // Adds the ranges for pending_[i] with words selected by `bit(k)`.
  template <class Bit>
  void add_word_ranges(size_t i, Bit bit, std::vector<Range>* out) const;
  bool emit(size_t p, const std::vector<Range>& ranges, const char* how,
            size_t index, SeenStates* seen, const StateFn& fn, size_t* count,
            bool* stop);

  std::vector<std::byte> base_;  // initial image, padded to a word multiple
  size_t image_size_ = 0;        // the unpadded size
  StoreLog log_;
  CrashModel model_;
  std::vector<CrashPoint> points_;
  ImageHash base_hash_{};

  // The walk: work_ holds base_ plus every store persistent before entry
  // cursor_; pending_ the stores in flight there.
  std::vector<std::byte> work_;
  ImageHash hash_{};
  size_t cursor_ = 0;
  std::vector<Store> pending_;

  // Scratch reused for every state (no allocation per state once grown).
  std::vector<WordSpan> spans_;
  std::vector<std::byte> undo_bytes_;
  std::vector<WordSpan> undo_spans_;
  ImageHash undo_hash_{};
  std::vector<Range> ranges_;
  std::vector<Store> scratch_;
};

}  // namespace zest::pmem
