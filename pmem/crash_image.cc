#include "pmem/crash_image.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace zest::pmem {

namespace {

constexpr size_t kExhaustiveWords = 16;

uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The contribution of word `w` holding `v` to an image hash. An image's hash
// is the sum over its words, so changing a word changes it by a difference.
ImageHash word_hash(uint64_t w, uint64_t v) {
  uint64_t k = mix64(w);
  return {mix64(v ^ k), mix64(v + (k ^ 0x5851f42d4c957f2dull))};
}

uint64_t load_word(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

[[noreturn]] void die(const std::string& text) {
  std::fprintf(stderr, "crash_image: %s\n", text.c_str());
  std::abort();
}

}  // namespace

uint64_t word_count(const Store& s) {
  if (s.length == 0) return 0;
  return (s.offset + s.length + 7) / 8 - s.offset / 8;
}

CrashImageBuilder::CrashImageBuilder(std::vector<std::byte> base_image,
                                     StoreLog log, CrashModel model)
    : base_(std::move(base_image)), log_(std::move(log)), model_(model) {
  image_size_ = base_.size();
  base_.resize((image_size_ + 7) / 8 * 8, std::byte{0});
  if (model_.line == 0 || (model_.line & (model_.line - 1)) != 0) {
    die("cache line size must be a power of two");
  }
  const auto& entries = log_.entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    const LogEntry& e = entries[i];
    if ((e.kind == OpKind::Store || e.kind == OpKind::Flush) &&
        (e.length > image_size_ || e.offset > image_size_ - e.length)) {
      die("log entry " + std::to_string(i) + " [" + std::to_string(e.offset) +
          ", +" + std::to_string(e.length) + ") lies outside the image of " +
          std::to_string(image_size_) + " bytes");
    }
    if (e.kind == OpKind::Fence || e.kind == OpKind::Mark) {
      points_.push_back({i, e.kind, e.tag});
    }
  }
  base_hash_ = hash_words(0, base_.size() / 8);  // work_ is still empty
  reset();
}

ImageHash CrashImageBuilder::hash_words(uint64_t first, uint64_t end) const {
  // Hashes words of work_ when it is set up, of base_ before that.
  const std::vector<std::byte>& img = work_.empty() ? base_ : work_;
  ImageHash h{0, 0};
  for (uint64_t w = first; w < end; ++w) {
    ImageHash c = word_hash(w, load_word(img.data() + w * 8));
    h[0] += c[0];
    h[1] += c[1];
  }
  return h;
}

void CrashImageBuilder::reset() {
  work_ = base_;
  hash_ = base_hash_;
  cursor_ = 0;
  pending_.clear();
}

const std::byte* CrashImageBuilder::src_of(const Store& s) const {
  const LogEntry& e = log_.entries()[s.entry];
  return log_.bytes(e).data() + (s.offset - e.offset);
}

void CrashImageBuilder::seek(size_t p) {
  if (p >= points_.size()) {
    die("crash point " + std::to_string(p) + " out of range (" +
        std::to_string(points_.size()) + " points)");
  }
  size_t target = points_[p].entry;  // stop just before this entry
  if (target < cursor_) reset();
  const auto& entries = log_.entries();
  while (cursor_ < target) step(entries[cursor_++]);
}

void CrashImageBuilder::step(const LogEntry& e) {
  switch (e.kind) {
    case OpKind::Store:
      if (e.length > 0) {
        pending_.push_back({static_cast<size_t>(&e - log_.entries().data()),
                            e.offset, e.length, false});
      }
      break;
    case OpKind::Flush: {
      if (!model_.flush_required || e.length == 0) break;
      // A flush writes back whole lines, with every earlier store in them.
      uint64_t lo = e.offset & ~(model_.line - 1);
      uint64_t hi =
          (e.offset + e.length + model_.line - 1) & ~(model_.line - 1);
      std::vector<Store>& next = scratch_;
      next.clear();
      for (const Store& s : pending_) {
        uint64_t s_end = s.offset + s.length;
        if (s.flushed || s_end <= lo || s.offset >= hi) {
          next.push_back(s);
          continue;
        }
        // Split into the part before the lines, inside them, after them.
        uint64_t in_lo = std::max(s.offset, lo), in_hi = std::min(s_end, hi);
        if (s.offset < in_lo) {
          next.push_back({s.entry, s.offset, in_lo - s.offset, false});
        }
        next.push_back({s.entry, in_lo, in_hi - in_lo, true});
        if (in_hi < s_end)
          next.push_back({s.entry, in_hi, s_end - in_hi, false});
      }
      pending_.swap(next);
      break;
    }
    case OpKind::Fence: {
      ranges_.clear();
      size_t kept = 0;
      for (const Store& s : pending_) {
        if (s.flushed || !model_.flush_required) {
          ranges_.push_back({s.offset, s.length, src_of(s)});
        } else {
          pending_[kept++] = s;
        }
      }
      pending_.resize(kept);
      persist_ranges(ranges_);
      break;
    }
    case OpKind::Mark:
      break;
  }
}

// Sorts the words `ranges` touch into disjoint spans in spans_.
void CrashImageBuilder::merge_words(const std::vector<Range>& ranges) {
  spans_.clear();
  for (const Range& r : ranges) {
    if (r.length == 0) continue;
    spans_.push_back({r.offset / 8, (r.offset + r.length + 7) / 8});
  }
  std::sort(
      spans_.begin(), spans_.end(),
      [](const WordSpan& a, const WordSpan& b) { return a.first < b.first; });
  size_t n = 0;
  for (const WordSpan& s : spans_) {
    if (n > 0 && s.first <= spans_[n - 1].end) {
      spans_[n - 1].end = std::max(spans_[n - 1].end, s.end);
    } else {
      spans_[n++] = s;
    }
  }
  spans_.resize(n);
}

void CrashImageBuilder::persist_ranges(const std::vector<Range>& ranges) {
  merge_words(ranges);
  apply_merged(ranges);
}

// Copies `ranges` into the working image; spans_ holds their merged words.
void CrashImageBuilder::apply_merged(const std::vector<Range>& ranges) {
  for (const WordSpan& s : spans_) {
    ImageHash old = hash_words(s.first, s.end);
    hash_[0] -= old[0];
    hash_[1] -= old[1];
  }
  for (const Range& r : ranges) {
    std::memcpy(work_.data() + r.offset, r.src, r.length);
  }
  for (const WordSpan& s : spans_) {
    ImageHash now = hash_words(s.first, s.end);
    hash_[0] += now[0];
    hash_[1] += now[1];
  }
}

void CrashImageBuilder::apply_with_undo(const std::vector<Range>& ranges) {
  undo_hash_ = hash_;
  merge_words(ranges);
  undo_spans_ = spans_;
  undo_bytes_.clear();
  for (const WordSpan& s : spans_) {
    undo_bytes_.insert(undo_bytes_.end(), work_.begin() + s.first * 8,
                       work_.begin() + s.end * 8);
  }
  apply_merged(ranges);
}

void CrashImageBuilder::undo() {
  size_t pos = 0;
  for (const WordSpan& s : undo_spans_) {
    size_t n = (s.end - s.first) * 8;
    std::memcpy(work_.data() + s.first * 8, undo_bytes_.data() + pos, n);
    pos += n;
  }
  hash_ = undo_hash_;
  undo_spans_.clear();
}

std::vector<Store> CrashImageBuilder::pending(size_t p) {
  seek(p);
  return pending_;
}

template <class Bit>
void CrashImageBuilder::add_word_ranges(size_t i, Bit bit,
                                        std::vector<Range>* out) const {
  const Store& s = pending_[i];
  const std::byte* src = src_of(s);
  uint64_t end = s.offset + s.length;
  uint64_t words = word_count(s);
  uint64_t run_lo = 0;
  bool in_run = false;
  for (uint64_t k = 0; k <= words; ++k) {
    bool on = k < words && bit(k);
    // Byte range of word k clipped to the store.
    uint64_t lo = std::max(s.offset, (s.offset / 8 + k) * 8);
    if (on && !in_run) {
      run_lo = lo;
      in_run = true;
    } else if (!on && in_run) {
      uint64_t hi = std::min(end, (s.offset / 8 + k) * 8);
      out->push_back({run_lo, hi - run_lo, src + (run_lo - s.offset)});
      in_run = false;
    }
  }
}

void CrashImageBuilder::build(size_t p, const std::vector<bool>& applied,
                              std::vector<std::byte>* out) {
  seek(p);
  ranges_.clear();
  for (size_t i = 0; i < pending_.size(); ++i) {
    if (i < applied.size() && applied[i]) {
      const Store& s = pending_[i];
      ranges_.push_back({s.offset, s.length, src_of(s)});
    }
  }
  apply_with_undo(ranges_);
  out->assign(work_.begin(), work_.begin() + image_size_);
  undo();
}

void CrashImageBuilder::build_words(size_t p,
                                    const std::vector<std::vector<bool>>& words,
                                    std::vector<std::byte>* out) {
  seek(p);
  ranges_.clear();
  for (size_t i = 0; i < pending_.size() && i < words.size(); ++i) {
    const std::vector<bool>& w = words[i];
    add_word_ranges(
        i, [&](uint64_t k) { return k < w.size() && w[k]; }, &ranges_);
  }
  apply_with_undo(ranges_);
  out->assign(work_.begin(), work_.begin() + image_size_);
  undo();
}

bool CrashImageBuilder::emit(size_t p, const std::vector<Range>& ranges,
                             const char* how, size_t index, SeenStates* seen,
                             const StateFn& fn, size_t* count, bool* stop) {
  apply_with_undo(ranges);
  bool fresh = seen->insert(hash_);
  if (fresh) {
    CrashState st;
    st.point = p;
    st.image = {work_.data(), image_size_};
    st.hash = hash_;
    st.how = how;
    st.index = index;
    ++*count;
    if (!fn(st)) *stop = true;
  }
  undo();
  return fresh;
}

size_t CrashImageBuilder::for_each_state(size_t p, size_t max_states,
                                         std::mt19937_64& rng,
                                         const StateFn& fn, SeenStates* seen) {
  seek(p);
  SeenStates local;
  if (seen == nullptr) seen = &local;
  size_t count = 0;
  bool stop = false;
  const size_t n = pending_.size();
  auto done = [&] { return stop || count >= max_states; };
  std::vector<Range> ranges;
  auto whole = [&](size_t i) {
    const Store& s = pending_[i];
    ranges.push_back({s.offset, s.length, src_of(s)});
  };

  // None applied: the persisted image.
  ranges.clear();
  if (!done()) emit(p, ranges, "none", 0, seen, fn, &count, &stop);
  // All applied.
  if (!done() && n > 0) {
    ranges.clear();
    for (size_t i = 0; i < n; ++i) whole(i);
    emit(p, ranges, "all", 0, seen, fn, &count, &stop);
  }
  // Each single one applied.
  for (size_t i = 0; i < n && !done(); ++i) {
    ranges.clear();
    whole(i);
    emit(p, ranges, "only", i, seen, fn, &count, &stop);
  }
  // Each single one omitted.
  for (size_t i = 0; i < n && !done(); ++i) {
    ranges.clear();
    for (size_t j = 0; j < n; ++j) {
      if (j != i) whole(j);
    }
    emit(p, ranges, "without", i, seen, fn, &count, &stop);
  }
  if (done() || n == 0) return count;

  uint64_t total_words = 0;
  for (const Store& s : pending_) total_words += word_count(s);

  if (total_words <= kExhaustiveWords) {
    // Every subset of the in-flight words, in log order.
    for (uint64_t mask = 0; mask < (uint64_t{1} << total_words) && !done();
         ++mask) {
      ranges.clear();
      uint64_t shift = 0;
      for (size_t i = 0; i < n; ++i) {
        add_word_ranges(
            i, [&](uint64_t k) { return (mask >> (shift + k)) & 1; }, &ranges);
        shift += word_count(pending_[i]);
      }
      emit(p, ranges, "exhaustive", 0, seen, fn, &count, &stop);
    }
    return count;
  }

  // Random subsets: each store omitted, applied, or (if it has several
  // words) torn at random. Give up after many tries in a row that only
  // found images already seen.
  const size_t max_dry = 256 + 4 * max_states;
  size_t dry = 0;
  while (!done() && dry < max_dry) {
    ranges.clear();
    uint64_t bits = 0;
    int left = 0;
    auto coin = [&]() -> uint64_t {
      if (left == 0) {
        bits = rng();
        left = 64;
      }
      --left;
      uint64_t b = bits & 1;
      bits >>= 1;
      return b;
    };
    for (size_t i = 0; i < n; ++i) {
      uint64_t pick = rng() % 4;
      if (pick == 0) continue;  // omitted
      if (pick == 3 && word_count(pending_[i]) > 1) {
        add_word_ranges(
            i, [&](uint64_t) { return coin() != 0; }, &ranges);
      } else if (pick != 3 || (rng() & 1)) {
        whole(i);
      }
    }
    if (emit(p, ranges, "random", 0, seen, fn, &count, &stop)) {
      dry = 0;
    } else {
      ++dry;
    }
  }
  return count;
}

size_t CrashImageBuilder::for_each_crash_state(size_t max_per_point,
                                               std::mt19937_64& rng,
                                               const StateFn& fn) {
  SeenStates seen;
  size_t total = 0;
  bool stop = false;
  for (size_t p = 0; p < points_.size() && !stop; ++p) {
    total += for_each_state(
        p, max_per_point, rng,
        [&](const CrashState& st) {
          if (!fn(st)) stop = true;
          return !stop;
        },
        &seen);
  }
  return total;
}

}  // namespace zest::pmem
