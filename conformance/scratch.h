// The directories zest-conformance works in: a fresh scratch directory inside
// the file system under test, and its twin on a tmpfs (the oracle).
//
// Both are removed when their owner is destroyed, so a run that fails, or
// is interrupted (SIGINT/SIGTERM end the run between steps, then the
// destructors run), leaves nothing behind. The tmpfs is mounted by us when
// we may (root): in a private mount namespace, so nobody else sees it and
// it disappears with the process even on SIGKILL; otherwise a directory in
// /dev/shm is used.
#pragma once

#include <memory>
#include <string>

namespace zest::conformance {

// Removes PATH and everything under it (symlinks are removed, never
// followed). Best effort: directories are made writable first.
void RemoveTree(const std::string& path);

// A fresh directory PARENT/zest-conformance-XXXXXX (mode 0755), removed
// recursively on destruction.
class ScratchDir {
 public:
  // Null with *why ("<parent>: mkdtemp: Permission denied") on failure.
  static std::unique_ptr<ScratchDir> Create(const std::string& parent,
                                            std::string* why);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  ScratchDir() = default;
  std::string path_;
};

// A tmpfs to compare against, and a scratch directory on it.
class TmpfsOracle {
 public:
  // As root: a new private mount namespace for this process (so call it
  // before starting threads), a tmpfs mounted on a fresh directory in /tmp.
  // Otherwise, or when that is refused: a directory in /dev/shm, which must
  // be a tmpfs. Null with *why on failure.
  static std::unique_ptr<TmpfsOracle> Create(std::string* why);
  ~TmpfsOracle();
  TmpfsOracle(const TmpfsOracle&) = delete;
  TmpfsOracle& operator=(const TmpfsOracle&) = delete;

  // The scratch directory on the tmpfs.
  const std::string& path() const { return scratch_->path(); }
  // "private tmpfs on /tmp/..." or "/dev/shm".
  std::string describe() const;

 private:
  TmpfsOracle() = default;
  std::string mounted_on_;  // our own tmpfs mount, or "" (/dev/shm)
  std::unique_ptr<ScratchDir> scratch_;
};

}  // namespace zest::conformance
