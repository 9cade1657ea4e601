// Directory: the entries of one directory, with readdir cookies that stay
// valid while entries come and go.
//
// Every entry gets a cookie from a per-directory counter that only grows;
// a listing walks entries in cookie order and resumes at "first cookie >=
// offset". So an entry that stays in the directory is listed exactly once
// however others are inserted (they get larger cookies) or removed (other
// cookies do not move), across any number of readdir calls.
//
// Offsets: 0 is ".", 1 is "..", entries have cookies >= 2; the next_off of
// an entry is its cookie + 1.
//
// Invariants: by_name_ and by_cookie_ hold the same entries; the string_view
// keys of by_name_ point into the names stored in by_cookie_'s nodes (which
// never move); next_cookie_ > every cookie in use.
// Not thread-safe: the directory inode's lock protects it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace zest::memfs {

struct Inode;

class Directory {
 public:
  static constexpr uint64_t kFirstCookie = 2;
  // tmpfs's BOGO_DIRENT_SIZE: st_size is 40 + 20 per entry.
  static constexpr uint64_t kBogoDirentSize = 20;

  struct Slot {
    std::string name;
    std::shared_ptr<Inode> inode;
  };

  Directory() = default;
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  // nullptr when absent.
  const std::shared_ptr<Inode>* find(std::string_view name) const;
  // False (and nothing changes) when the name exists.
  bool insert(std::string_view name, std::shared_ptr<Inode> inode);
  // Points an existing name at another inode, keeping its cookie (rename
  // over an entry, exchange). Returns the inode it pointed at.
  std::shared_ptr<Inode> replace(std::string_view name,
                                 std::shared_ptr<Inode> inode);
  // Returns the removed inode, or nullptr when absent.
  std::shared_ptr<Inode> erase(std::string_view name);

  // Drops every entry (shutdown).
  void clear() {
    by_name_.clear();
    by_cookie_.clear();
  }

  size_t entries() const { return by_name_.size(); }
  bool empty() const { return by_name_.empty(); }
  uint64_t st_size() const { return 2 * kBogoDirentSize + kBogoDirentSize * entries(); }

  // Entries with cookie >= from, in cookie order.
  using const_iterator = std::map<uint64_t, Slot>::const_iterator;
  const_iterator from(uint64_t cookie) const { return by_cookie_.lower_bound(cookie); }
  const_iterator end() const { return by_cookie_.end(); }

 private:
  std::map<uint64_t, Slot> by_cookie_;
  std::unordered_map<std::string_view, uint64_t> by_name_;
  uint64_t next_cookie_ = kFirstCookie;
};

}  // namespace zest::memfs
