#include "memfs/inode.h"

namespace zest::memfs {

timespec now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

Inode::Inode(fs::Ino ino_, uint64_t generation_, uint32_t mode_,
             SpaceBudget* budget)
    : ino(ino_), generation(generation_), type(mode_ & S_IFMT), mode(mode_),
      budget_(budget) {
  atime = mtime = ctime = now();
  if (is_reg()) file = std::make_unique<FileData>(budget);
  if (is_dir()) dir = std::make_unique<Directory>();
}

Inode::~Inode() {
  if (target_charged) budget_->release_pages(1);
  budget_->release_inode();
}

fs::Attr Inode::attr() const {
  fs::Attr a;
  a.ino = ino;
  a.mode = mode;
  a.nlink = nlink;
  a.uid = uid;
  a.gid = gid;
  a.rdev = rdev;
  a.atime = atime;
  a.mtime = mtime;
  a.ctime = ctime;
  a.blksize = kPageSize;
  if (file) {
    a.size = file->size();
    a.blocks = file->allocated_pages() * (kPageSize / 512);
  } else if (dir) {
    a.size = dir->st_size();
  } else if (is_symlink()) {
    a.size = target.size();
    a.blocks = target_charged ? kPageSize / 512 : 0;
  }
  return a;
}

bool Inode::kill_suid_sgid() {
  const uint32_t m = fs::kill_suid_sgid(mode);
  if (m == mode) return false;
  mode = m;
  return true;
}

}  // namespace zest::memfs
