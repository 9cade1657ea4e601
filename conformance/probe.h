// Probe: what one conformance check sees of one file system.
//
// A check (check.h) is a scenario written once against a Probe: it makes
// files under probe.root(), calls the system, and records what it observed
// as labelled lines ("open f O_CREAT|O_EXCL" -> "ok", "lstat f" -> "reg
// 0640 nlink=1 size=5"). The runner plays the scenario on the tmpfs oracle
// and on the file system under test, each with a Probe of its own, and
// compares the two transcripts line by line: the first line that differs is
// the failure ("expected X (tmpfs), got Y").
//
// So a check never states what POSIX says; tmpfs does. It records only what
// is deterministic: no inode numbers (identity relations instead), no fd
// numbers, no raw timestamps (whether one changed, or times set
// explicitly), no st_blocks (relations such as "fewer than 1 MiB
// allocated"), no directory sizes.
//
// A feature a file system may lack (xattrs, fallocate, O_TMPFILE) is probed
// with Feature(): "unsupported" on both sides passes, on the file system
// under test only, the check is skipped, saying why.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "base/fd.h"

namespace zest::conformance {

class Probe {
 public:
  struct Line {
    std::string label;
    std::string value;
    bool feature = false;  // from Feature(): decides SKIP, not FAIL
    bool operator==(const Line& o) const {
      return label == o.label && value == o.value;
    }
  };

  // Fields of Stat().
  enum StatField : unsigned {
    kType = 1,
    kPerm = 2,  // the 07777 bits
    kNlink = 4,
    kOwner = 8,  // uid and gid
    kSize = 16,  // never for directories: each file system defines theirs
    kRdev = 32,
    kDefault = kType | kPerm | kNlink | kOwner | kSize,
  };

  explicit Probe(std::string root) : root_(std::move(root)) {}

  // The check's own empty directory (absolute).
  const std::string& root() const { return root_; }
  // ROOT/REL; REL "" is ROOT.
  std::string P(const std::string& rel) const {
    return rel.empty() ? root_ : root_ + "/" + rel;
  }

  // --- recording --------------------------------------------------------
  void Note(const std::string& label, const std::string& value);
  // A system call's result: "ok" (rc >= 0) or "errno ENAME". Returns
  // rc >= 0, so a check can stop when a step it relies on failed.
  bool Ok(const std::string& label, long rc);
  // As Ok, but the value of rc is part of the record ("= 4096").
  long Ret(const std::string& label, long rc);
  // open(P(rel)), recorded as Ok.
  UniqueFd Open(const std::string& label, const std::string& rel, int flags,
                mode_t mode = 0644);
  // lstat(P(rel)) / fstat(fd), the FIELDS recorded ("reg 0640 nlink=1").
  void Stat(const std::string& rel, unsigned fields = kDefault);
  void Fstat(const std::string& label, int fd, unsigned fields = kDefault);
  // Bytes (file contents, listings): compared exactly, shown shortened.
  void Data(const std::string& label, const std::string& bytes);
  // Whether a feature works: rc >= 0 records "supported"; rc < 0 with an
  // errno that says "not implemented" (EOPNOTSUPP, ENOSYS, ENOTTY, ENODEV)
  // records "unsupported (ENAME)" and returns false; any other errno is a
  // plain result ("errno ENAME") and returns false.
  bool Feature(const std::string& name, long rc);

  const std::vector<Line>& lines() const { return lines_; }

  // --- helpers that record nothing --------------------------------------
  // lstat; a zeroed struct with st_mode 0 when it fails.
  struct stat Lstat(const std::string& rel) const;
  // Runs FN in a child process as uid/gid UID (no supplementary groups);
  // returns what FN returned (an errno, 0 for success), 255 when the child
  // could not become UID.
  int AsUser(uid_t uid, const std::function<int()>& fn) const;
  // Sleeps long enough for a coarse clock to move (timestamp checks).
  static void Tick();

 private:
  std::string root_;
  std::vector<Line> lines_;
};

// Timestamps of one path, for "did it change" records.
struct Times {
  timespec atime{}, mtime{}, ctime{};
};
Times TimesOf(const Probe& p, const std::string& rel);
// "mtime changed, ctime same" (atime too when WITH_ATIME).
std::string TimeChanges(const Times& before, const Times& after,
                        bool with_atime = false);

// File-content helpers for checks.
std::string Pattern(size_t n, unsigned seed);
std::string ReadAt(int fd, size_t n, off_t off);
bool WriteAll(int fd, const std::string& d, off_t off);
// The names in DIR (without . and ..), sorted; "errno ENAME" on failure.
std::vector<std::string> ListDir(const std::string& dir);
std::string ErrnoName(int e);
// "a b c" from a list.
std::string Join(const std::vector<std::string>& v);

}  // namespace zest::conformance
