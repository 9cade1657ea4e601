// Inode: one file, directory, symlink or special file of memfs, with its
// attributes, its contents and its extended attributes.
//
// Locking: `mu` guards every mutable field (shared for reading, exclusive for
// changing), except:
// - `ino`, `generation` and `type` never change;
// - `parent` (directories) is atomic: written under the exclusive lock and
//   MemFs's rename mutex, read under either.
//
// Lifetime: an inode lives in the InodeTable (and is reachable by number)
// until nlink == 0, open_count == 0 and the kernel holds no reference (asked
// of fs::KernelRefs under the exclusive lock); then it is
// marked `freed`, its pages are released and it leaves the table. Holders of
// a shared_ptr check `freed` after locking.
#pragma once

#include <sys/stat.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "zest/fs/posix_rules.h"
#include "zest/fs/types.h"
#include "memfs/directory.h"
#include "memfs/file_data.h"
#include "memfs/space.h"

namespace zest::memfs {

// tmpfs keeps symlink targets shorter than this inline; longer ones take a
// page (st_blocks 8).
inline constexpr size_t kShortSymlinkLen = 128;

timespec now();

struct Inode {
  Inode(fs::Ino ino, uint64_t generation, uint32_t mode, SpaceBudget* budget);
  ~Inode();
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  bool is_dir() const { return type == S_IFDIR; }
  bool is_reg() const { return type == S_IFREG; }
  bool is_symlink() const { return type == S_IFLNK; }

  // The stat(2) view. Caller holds mu (shared is enough).
  fs::Attr attr() const;
  // Sets the times `c` names to `t`; touch(op): what `op` changes in the
  // inode, to now (zest/fs/posix_rules.h, times_for). Caller holds mu
  // exclusively.
  void stamp(fs::TimeChanges c, const timespec& t) { fs::stamp(c, t, &atime, &mtime, &ctime); }
  void touch(fs::TimeOp op) { stamp(fs::times_for(op).inode, now()); }
  // Clears S_ISUID, and S_ISGID when group-executable (fs::kill_suid_sgid).
  // Returns true when the mode changed.
  bool kill_suid_sgid();

  const fs::Ino ino;
  const uint64_t generation;
  const uint32_t type;  // S_IFMT bits

  mutable std::shared_mutex mu;
  uint32_t mode;  // type | permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t rdev = 0;
  uint32_t nlink = 0;
  timespec atime{}, mtime{}, ctime{};

  uint32_t open_count = 0;  // open/create/opendir/tmpfile minus releases
  bool linkable = false;    // O_TMPFILE without O_EXCL: link may revive it
  bool freed = false;       // left the table; no operation may use it
  std::atomic<fs::Ino> parent{0};  // directories: the containing directory

  // Contents, by type.
  std::unique_ptr<FileData> file;  // S_IFREG
  std::unique_ptr<Directory> dir;  // S_IFDIR
  std::string target;              // S_IFLNK
  bool target_charged = false;     // a long target holds a page of budget

  // Extended attributes in descending name order: the order tmpfs lists them.
  std::map<std::string, std::vector<std::byte>, std::greater<>> xattrs;

 private:
  SpaceBudget* budget_;
};

}  // namespace zest::memfs
