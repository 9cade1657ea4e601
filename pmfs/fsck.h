// fsck for pmfs: checks every on-media structure of docs/format.md and every
// cross-reference between them, and optionally repairs what it can.
//
// Written from the format document alone (not from the file system's code),
// so that it checks the specification rather than re-stating one
// implementation's reading of it.
//
// Invariants: fsck never trusts a byte of the pool. Every pointer, length and
// count is bounds-checked before it is used, every chain is walked with a
// visited set, and every structure is copied out of the pool before it is
// interpreted (the pool may be garbage, shared, or being fuzzed).
//
// Read-only checking never writes: a committed-but-unapplied journal
// transaction is replayed into a private overlay of the affected blocks, so
// the rest of the check sees the state recovery would produce.
//
// Repair policy (see fsck.cc and pmfs/fsck/ for the details of each step):
//   - a damaged superblock copy is rewritten from the valid one;
//   - a committed journal transaction is replayed (as mount's recovery does);
//     when later repairs rewrite bytes it holds, it is retired afterwards,
//     so that mount does not replay it over them;
//   - corrupt entries (extent, dirent, xattr) are cleared, corrupt chain
//     blocks are cut off their chain, corrupt inodes are freed;
//   - double-allocated blocks are dropped from the later owner (inode order,
//     then chain order);
//   - link counts, `blocks`, `parent` and dirent types are rewritten from
//     what the directory tree and the extents say; a size past the largest
//     file is cut to the end of the data; a long symlink keeps its one
//     target block only; an xattr entry gets its record's block count;
//   - orphans (in use, nlink 0) are freed (their blocks become free, since
//     the allocator is rebuilt at every mount);
//   - unreachable inodes are reconnected, as e2fsck does: the top of each
//     unreachable subtree is linked into /lost+found (created, 0700 root,
//     when missing) as "#<ino>", and what lies below it comes along under
//     its old names; a cycle of unreachable directories is broken at its
//     lowest-numbered directory. When that is impossible (/lost+found is
//     not a directory; no free inode or block) they are freed, as orphans
//     are. Read-only, the report says what repair would do.
// A repaired pool is one mount (pmfs/mount.cc) accepts: fsck checks at least
// everything mount checks. Every repair names what it changed and what data
// was lost. Repair runs in passes until one changes nothing (a repair can
// expose another error, e.g. freeing a directory drops links to its
// children), then a final read-only pass decides the exit code.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "zest/result.h"

namespace zest::pmfs {

struct FsckOptions {
  bool repair = false;
  // Also send every error and repair through `progress` as it is found.
  bool verbose = false;
  // Phases and progress of long phases ("checking superblocks",
  // "inodes 10000/65536", ...). May be empty.
  std::function<void(const std::string&)> progress;
};

struct FsckReport {
  // Every problem found, each naming the structure ("inode 17: nlink 2 but 1
  // directory entries refer to it"). With repair, errors found by later
  // passes (exposed by earlier repairs) are appended.
  std::vector<std::string> errors;
  // What repair changed, each naming the structure and any data lost.
  std::vector<std::string> repairs;
  // Legal but noteworthy states (orphan inodes, unknown compat features).
  std::vector<std::string> notes;
  // Errors still present at the end (read-only: the same as errors).
  std::vector<std::string> uncorrected;
  uint64_t inodes_checked = 0;   // in-use inodes examined
  uint64_t dirents_checked = 0;  // directory entries examined
  uint64_t extents_checked = 0;  // valid extent entries examined
  uint64_t blocks_in_use = 0;    // data-region blocks referenced by anything
  bool superblock_repaired = false;
  // Nothing could be checked: neither superblock copy is a pmfs superblock.
  bool operational_error = false;

  // fsck(8) convention: 0 clean, 1 errors corrected, 4 errors left
  // uncorrected, 8 operational error.
  int exit_code() const;
};

// Checks (and with options.repair, repairs) the pool at `pool_path`. The
// pool is opened read-only unless repairing. Operational failure (cannot
// open or map) returns the errno, with *why naming the path.
Result<FsckReport> fsck(const std::string& pool_path,
                        const FsckOptions& options, std::string* why);

// Read-only check of an in-memory image (the crash tester and the fuzzer
// use this). Never writes to `image`.
FsckReport fsck_image(std::span<const std::byte> image,
                      const FsckOptions& options = {});

}  // namespace zest::pmfs
