#include "memfs/page_tree.h"

#include <algorithm>
#include <new>

namespace zest::memfs {

PageTree::~PageTree() {
  if (root_) free_nodes(root_, height_ - 1);
}

void PageTree::free_nodes(Node* n, unsigned level) {
  if (level > 0) {
    for (uintptr_t s : n->slot) {
      if (s) free_nodes(reinterpret_cast<Node*>(s), level - 1);
    }
  }
  delete n;
}

uintptr_t PageTree::get(uint64_t index) const {
  if (index >= capacity()) return 0;
  const Node* n = root_;
  for (unsigned level = height_ - 1;; --level) {
    const uintptr_t s = n->slot[(index >> (kBits * level)) & (kFanout - 1)];
    if (level == 0 || !s) return s;
    n = reinterpret_cast<const Node*>(s);
  }
}

bool PageTree::set(uint64_t index, uintptr_t value) {
  // Grow until the tree covers `index`; the old root becomes slot 0.
  while (index >= capacity()) {
    if (!root_) {
      ++height_;
      continue;
    }
    Node* top = new (std::nothrow) Node;
    if (!top) return false;
    top->slot[0] = reinterpret_cast<uintptr_t>(root_);
    top->count = 1;
    root_ = top;
    ++height_;
  }
  if (!root_) {
    root_ = new (std::nothrow) Node;
    if (!root_) {
      height_ = 0;
      return false;
    }
  }
  Node* n = root_;
  for (unsigned level = height_ - 1; level > 0; --level) {
    uintptr_t& s = n->slot[(index >> (kBits * level)) & (kFanout - 1)];
    if (!s) {
      Node* c = new (std::nothrow) Node;
      if (!c) return false;  // nodes made above stay, empty: harmless
      s = reinterpret_cast<uintptr_t>(c);
      ++n->count;
    }
    n = reinterpret_cast<Node*>(s);
  }
  uintptr_t& leaf = n->slot[index & (kFanout - 1)];
  if (!leaf) ++n->count;
  leaf = value;
  return true;
}

uint64_t PageTree::find(uint64_t start, uint64_t end, bool want_data,
                        bool (*is_data)(uintptr_t)) const {
  if (start >= end) return end;
  if (!root_) return want_data ? end : start;
  uint64_t r = find_in(root_, height_ - 1, 0, start, end, want_data, is_data);
  if (r != end || want_data) return r;
  // Everything the tree covers in range is data; past it is a hole.
  const uint64_t cap = capacity();
  return cap < end ? std::max(start, cap) : end;
}

uint64_t PageTree::find_in(const Node* n, unsigned level, uint64_t base,
                           uint64_t start, uint64_t end, bool want_data,
                           bool (*is_data)(uintptr_t)) const {
  const uint64_t s = span(level);
  unsigned k = start > base ? static_cast<unsigned>((start - base) / s) : 0;
  for (; k < kFanout; ++k) {
    const uint64_t b = base + k * s;
    if (b >= end) break;
    const uintptr_t v = n->slot[k];
    if (!v) {
      if (!want_data) return std::max(start, b);
      continue;
    }
    if (level == 0) {
      if (is_data(v) == want_data) return std::max(start, b);
      continue;
    }
    uint64_t r = find_in(reinterpret_cast<const Node*>(v), level - 1, b, start,
                         end, want_data, is_data);
    if (r != end) return r;
  }
  return end;
}

}  // namespace zest::memfs
