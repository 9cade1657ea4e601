// MirrorInode and InodeTable: the inodes mirrorfs has handed to the kernel.
//
// A MirrorInode stands for one backing object, named by an O_PATH fd that
// it owns, and is found again by the object's (st_dev, st_ino): every hard
// link of a file is one inode. Holding the O_PATH fd keeps the backing
// object alive, so its (dev, ino) cannot be reused by the backing file
// system while the inode is in the table.
//
// Inode numbers are ours (a counter, never reused; the root is 1), not the
// backing st_ino: the mount may span nothing but one backing file system,
// but numbers must stay unique across the life of the mount.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "base/fd.h"
#include "zest/fs/types.h"

namespace zest::mirrorfs {

// "/proc/self/fd/N": how calls that take no fd reach an O_PATH object.
class ProcPath {
 public:
  explicit ProcPath(int fd);
  const char* c_str() const { return buf_; }

 private:
  char buf_[32];
};

struct MirrorInode {
  MirrorInode(fs::Ino ino, const struct stat& st, UniqueFd path_fd)
      : ino(ino),
        dev(st.st_dev),
        backing_ino(st.st_ino),
        type(st.st_mode & S_IFMT),
        path_fd(std::move(path_fd)) {}

  const fs::Ino ino;
  const dev_t dev;
  const ino_t backing_ino;
  const uint32_t type;     // S_IFMT bits; an object never changes type
  const UniqueFd path_fd;  // O_PATH | O_NOFOLLOW

  bool is_dir() const { return type == S_IFDIR; }
  bool is_reg() const { return type == S_IFREG; }
  ProcPath proc() const { return ProcPath(path_fd.get()); }

  // Guards everything below, and is held while an entry for this inode is
  // handed to the kernel (see zest/fs/filesystem.h: forget checks under it).
  std::mutex mu;
  // Set once forget took the inode out of the table; a lookup that finds
  // it dead looks again.
  bool dead = false;
  // The backing file's data fd, shared by every open that uses it (all
  // passthrough opens: the kernel wants one backing file per inode), and
  // how many opens hold it. Closed when the last of them is released.
  UniqueFd data_fd;
  int data_access = -1;  // O_RDWR, O_RDONLY or O_WRONLY
  uint32_t data_users = 0;
};

using InodePtr = std::shared_ptr<MirrorInode>;

class InodeTable {
 public:
  // The table starts with the root: `root_fd` (O_PATH) described by `st`.
  InodeTable(const struct stat& st, UniqueFd root_fd);

  InodePtr get(fs::Ino ino) const;
  // Our number for a backing (dev, ino), or 0 when it has no inode.
  fs::Ino find_backing(dev_t dev, ino_t ino) const;
  // The inode of the object `st` describes; when there is none, a new one
  // is made that takes over *fd (*fd is left alone otherwise).
  InodePtr find_or_insert(const struct stat& st, UniqueFd* fd);
  // Takes `i` out of the table. Caller holds i.mu and has set i.dead.
  void erase(const MirrorInode& i);
  size_t size() const;

 private:
  struct Key {
    dev_t dev;
    ino_t ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<uint64_t>()(uint64_t(k.ino) * 0x9e3779b97f4a7c15ull ^
                                   uint64_t(k.dev));
    }
  };

  // A leaf lock: nothing else is taken while it is held.
  mutable std::mutex mu_;
  std::unordered_map<fs::Ino, InodePtr> by_ino_;
  std::unordered_map<Key, fs::Ino, KeyHash> by_backing_;
  fs::Ino next_ino_ = fs::kRootIno + 1;
};

}  // namespace zest::mirrorfs
