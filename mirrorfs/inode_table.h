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
//
// File handles (NFS export): the kernel may keep one of our numbers in a
// file handle after it forgot the inode, and later ask for it again
// (LOOKUP(number, ".")), expecting that very number back. So the table
// remembers, for each number it handed out, the backing object's own file
// handle (name_to_handle_at on the backing file system, which carries the
// object's generation), even after the inode left the table: a remembered
// number is put back for its object when the kernel asks for it by number
// (open_by_handle_at) or when a lookup by name finds the object again. One
// object therefore has one number for the life of the mount, and a number
// never names another object: a backing (dev, ino) reused for a new object
// gives a different handle, and the old record is dropped. The records of
// objects the kernel forgot are kept in least-recently-forgotten order and
// capped (Options::forgotten_handles); a number past the cap is stale.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
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

// A backing object's file handle on its file system (name_to_handle_at):
// it names the object for good, generation included. Handles longer than
// kMaxBytes (none on tmpfs: 12 bytes, ext4: 8, xfs: 8-12, btrfs: 20) are
// not kept, and such objects' numbers go stale once the kernel forgets them.
struct BackingHandle {
  static constexpr size_t kMaxBytes = 24;
  int type = 0;
  uint32_t size = 0;                         // bytes used of `bytes`
  std::array<unsigned char, kMaxBytes> bytes{};  // the rest stay zero

  bool operator==(const BackingHandle&) const = default;
  // The handle of `fd` (any fd, O_PATH too); nullopt where its file system
  // has none or it is longer than kMaxBytes.
  static std::optional<BackingHandle> of(int fd);
  // open_by_handle_at(mount_fd, this, flags): -1 and errno on failure.
  int open(int mount_fd, int flags) const;
};

// What the table remembers of a number it handed out, live or not.
struct RememberedObject {
  dev_t dev;
  ino_t ino;
  BackingHandle handle;
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
  // It remembers the handles of at most `max_forgotten` objects the kernel
  // forgot; handles are only kept for objects on the root's file system
  // (st_dev), the one open_by_handle_at is given.
  InodeTable(const struct stat& st, UniqueFd root_fd, size_t max_forgotten);

  InodePtr get(fs::Ino ino) const;
  // Our number for a backing (dev, ino), or 0 when it has none (live or
  // remembered).
  fs::Ino find_backing(dev_t dev, ino_t ino) const;
  // The inode of the object `st` describes (*fd, an O_PATH fd of it); when
  // none is live, one is made that takes over *fd (*fd is left alone
  // otherwise), under the object's remembered number when its handle is
  // the one remembered, else under a new number.
  InodePtr find_or_insert(const struct stat& st, UniqueFd* fd);
  // What is remembered of `ino`, when it is not live.
  std::optional<RememberedObject> forgotten(fs::Ino ino) const;
  // Puts the forgotten `ino` back for the object `st` describes (*fd, opened
  // by its remembered handle; taken over when an inode is made). Answers
  // the live inode, or null when `ino` is no longer remembered or `st` is
  // not its object.
  InodePtr revive(fs::Ino ino, const struct stat& st, UniqueFd* fd);
  // Forgets what is remembered of `ino` (its handle went stale), unless it
  // is live.
  void drop_forgotten(fs::Ino ino);
  // Takes `i` out of the table. Caller holds i.mu and has set i.dead. Its
  // handle stays remembered unless `gone` (the object has no links left).
  void erase(const MirrorInode& i, bool gone);
  size_t size() const;
  // How many numbers are remembered, live or not (for tests).
  size_t remembered() const;

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

  struct Record {
    RememberedObject object;
    // Its place in forgotten_ while the number is not live; end() while
    // it is.
    std::list<fs::Ino>::iterator lru;
  };

  InodePtr make_live(fs::Ino ino, const struct stat& st, UniqueFd* fd);
  void drop_record(std::unordered_map<fs::Ino, Record>::iterator it);

  // A leaf lock: nothing else is taken while it is held.
  mutable std::mutex mu_;
  const dev_t handle_dev_;  // handles are kept for objects on this dev only
  const size_t max_forgotten_;
  // The live inodes.
  std::unordered_map<fs::Ino, InodePtr> by_ino_;
  // (dev, ino) -> number, for every live inode and every remembered one.
  std::unordered_map<Key, fs::Ino, KeyHash> by_backing_;
  // Every number handed out whose object had a handle, live or not.
  std::unordered_map<fs::Ino, Record> records_;
  // The remembered numbers that are not live, least recently forgotten
  // first: the first to go past max_forgotten_.
  std::list<fs::Ino> forgotten_;
  fs::Ino next_ino_ = fs::kRootIno + 1;
};

}  // namespace zest::mirrorfs
