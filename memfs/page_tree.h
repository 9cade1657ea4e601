// PageTree: a radix tree from page index to a tagged page pointer, the index
// of a sparse file's pages (the role the page cache's xarray plays in tmpfs).
//
// Each node has 64 slots; a tree of height h covers indices [0, 64^h). The
// tree grows in height as larger indices are set, so a page at 1 TiB costs
// five small nodes, not memory proportional to the offset. Lookup is
// O(height) <= 9 array steps for any 63-bit file offset.
//
// Values are opaque non-zero uintptr_t (FileData stores a 4 KiB-aligned page
// address with flag bits in the low bits); 0 means "no page". The tree owns
// its nodes, never the pages: erase_range() hands each removed value to the
// caller, who frees it.
//
// Invariants: every node's count == its number of non-zero slots; nodes that
// become empty through erase_range are freed at once (only a failed node
// allocation in set() can leave an empty one behind, which is harmless);
// height == 0 iff root == nullptr.
// Not thread-safe: the owning inode's lock protects it.
#pragma once

#include <array>
#include <cstdint>

namespace zest::memfs {

class PageTree {
 public:
  static constexpr unsigned kBits = 6;
  static constexpr unsigned kFanout = 1u << kBits;
  static constexpr uint64_t kEnd = UINT64_MAX;

  PageTree() = default;
  PageTree(const PageTree&) = delete;
  PageTree& operator=(const PageTree&) = delete;
  ~PageTree();  // frees nodes only; call erase_range first to free pages

  // The value at `index`, or 0.
  uintptr_t get(uint64_t index) const;
  // Sets a non-zero value at `index`, growing the tree as needed. Returns
  // false only when a node allocation fails (nothing changed then).
  bool set(uint64_t index, uintptr_t value);

  // Removes every value with index in [first, last), calling
  // fn(index, value) for each, in increasing index order. Skips empty
  // subtrees, so erasing a huge sparse range costs only what is present.
  template <class F>
  void erase_range(uint64_t first, uint64_t last, F&& fn) {
    if (!root_ || first >= last) return;
    if (erase_in(root_, height_ - 1, 0, first, last, fn)) {
      delete root_;
      root_ = nullptr;
      height_ = 0;
    }
  }

  // Calls fn(index, uintptr_t& value) for every present value in
  // [first, last); fn may change the value but must keep it non-zero.
  template <class F>
  void for_each(uint64_t first, uint64_t last, F&& fn) {
    if (root_ && first < last) each_in(root_, height_ - 1, 0, first, last, fn);
  }

  // The first index in [start, end) whose value v satisfies
  // (v != 0 && is_data(v)) == want_data; `end` if there is none.
  uint64_t find(uint64_t start, uint64_t end, bool want_data,
                bool (*is_data)(uintptr_t)) const;

  bool empty() const { return root_ == nullptr; }

 private:
  struct Node {
    std::array<uintptr_t, kFanout> slot{};
    uint32_t count = 0;
  };

  // Number of indices one slot covers at `level` (0 = leaf nodes).
  static uint64_t span(unsigned level) { return uint64_t{1} << (kBits * level); }
  // Number of indices the whole tree covers (saturates at kEnd).
  uint64_t capacity() const {
    if (height_ == 0) return 0;
    return height_ >= 11 ? kEnd : uint64_t{1} << (kBits * height_);
  }
  static void free_nodes(Node* n, unsigned level);
  uint64_t find_in(const Node* n, unsigned level, uint64_t base, uint64_t start,
                   uint64_t end, bool want_data,
                   bool (*is_data)(uintptr_t)) const;

  // Returns true when `n` became empty (the caller frees it).
  template <class F>
  static bool erase_in(Node* n, unsigned level, uint64_t base, uint64_t first,
                       uint64_t last, F& fn) {
    const uint64_t s = span(level);
    unsigned k = first > base ? static_cast<unsigned>((first - base) / s) : 0;
    for (; k < kFanout; ++k) {
      const uint64_t b = base + k * s;
      if (b >= last) break;
      if (!n->slot[k]) continue;
      if (level == 0) {
        fn(b, n->slot[k]);
        n->slot[k] = 0;
        --n->count;
      } else {
        Node* c = reinterpret_cast<Node*>(n->slot[k]);
        if (erase_in(c, level - 1, b, first, last, fn)) {
          delete c;
          n->slot[k] = 0;
          --n->count;
        }
      }
    }
    return n->count == 0;
  }

  template <class F>
  static void each_in(Node* n, unsigned level, uint64_t base, uint64_t first,
                      uint64_t last, F& fn) {
    const uint64_t s = span(level);
    unsigned k = first > base ? static_cast<unsigned>((first - base) / s) : 0;
    for (; k < kFanout; ++k) {
      const uint64_t b = base + k * s;
      if (b >= last) break;
      if (!n->slot[k]) continue;
      if (level == 0) {
        fn(b, n->slot[k]);
      } else {
        each_in(reinterpret_cast<Node*>(n->slot[k]), level - 1, b, first, last,
                fn);
      }
    }
  }

  Node* root_ = nullptr;
  unsigned height_ = 0;
};

}  // namespace zest::memfs
