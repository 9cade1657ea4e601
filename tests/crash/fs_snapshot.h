// FsSnapshot: the logical state of a whole file system as a user sees it
// through the fs::FileSystem API (the crash tester's oracle).
//
// Every name reachable from the root, keyed by path, with the inode's type,
// permissions, owner, size, st_blocks, link count, the three timestamps,
// the content (a hash of a regular file's bytes, a symlink's target) and
// the extended attributes (name -> hash of the value). Inode numbers are
// recorded too: recovery must bring back the same inodes, not copies.
//
// Taking a snapshot adds no kernel references (readdir without plus and
// getattr by inode, never lookup), so it does not change which unlinked
// inodes the file system may free, and it stores nothing into the pool.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "zest/fs/filesystem.h"
#include "tests/pmfs/harness.h"

namespace zest::crash {

struct NodeState {
  fs::Ino ino = 0;
  uint32_t mode = 0;
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t rdev = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;
  int64_t atime_sec = 0, mtime_sec = 0, ctime_sec = 0;
  int64_t atime_nsec = 0, mtime_nsec = 0, ctime_nsec = 0;
  uint64_t content = 0;  // regular file: hash of the bytes
  std::string target;    // symlink
  std::map<std::string, uint64_t> xattrs;

  bool operator==(const NodeState&) const = default;
};

struct FsSnapshot {
  // "/" is the root; "/a/b" a name in directory "/a".
  std::map<std::string, NodeState> nodes;
  // Set when the snapshot could not be taken whole (an operation failed);
  // such a snapshot never equals another.
  std::string error;

  bool operator==(const FsSnapshot& o) const {
    return error.empty() && o.error.empty() && nodes == o.nodes;
  }
};

// A 64-bit hash of bytes (word at a time; fast enough for whole pools).
uint64_t hash_bytes(const void* data, size_t len, uint64_t seed = 0);

// Walks the tree of `fs` (already init()ed with `sink`).
FsSnapshot take_snapshot(fs::FileSystem& fs, pmfs::test::FakeSink& sink);

// One line per difference (at most `max_lines`, then a count), `a` and `b`
// named by the labels.
std::string diff(const FsSnapshot& a, const char* a_label, const FsSnapshot& b,
                 const char* b_label, size_t max_lines = 12);

// One line describing a node (for reports).
std::string describe(const NodeState& n);

}  // namespace zest::crash
