// MirrorFs: directories.
//
// readdir offsets are the backing file system's own d_off cookies (what
// telldir returns): each call seeks the handle's directory fd to the
// offset it was given and reads on with getdents64. On tmpfs (and ext4,
// xfs, btrfs) those cookies stay valid while entries come and go, so a
// listing interrupted by changes neither repeats nor skips survivors.
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "mirrorfs/mirror_fs.h"

namespace zest::mirrorfs {
namespace {

constexpr size_t kDirBufSize = 32 * 1024;

struct LinuxDirent64 {
  ino64_t d_ino;
  off64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

}  // namespace

void MirrorFs::opendir(const fs::Context&, fs::Ino ino, uint32_t,
                       fs::OpenReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  if (!i->is_dir()) return r.error(ENOTDIR);
  auto h = std::make_unique<DirHandle>();
  h->inode = i;
  h->fd.reset(::openat(i->path_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!h->fd) return r.error(errno);
  h->buf.resize(kDirBufSize);
  fs::OpenInfo o;
  o.fh = reinterpret_cast<uintptr_t>(h.release());
  r.ok(o);
}

void MirrorFs::readdir(const fs::Context&, fs::Ino, uint64_t fh,
                       uint64_t offset, fs::DirReply r) {
  DirHandle* h = dir_handle_of(fh);
  std::lock_guard lock(h->mu);
  readdir_entries(*h, offset, r);
  r.ok();
}

void MirrorFs::readdir_entries(DirHandle& h, uint64_t offset, fs::DirReply& r) {
  if (::lseek(h.fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) return;
  const dev_t dev = h.inode->dev;
  for (;;) {
    long n = ::syscall(SYS_getdents64, h.fd.get(), h.buf.data(), h.buf.size());
    if (n <= 0) return;  // end, or an error after some entries: stop here
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<const LinuxDirent64*>(h.buf.data() + pos);
      pos += d->d_reclen;
      std::string_view name(d->d_name);
      const uint64_t next = static_cast<uint64_t>(d->d_off);
      const bool dots = name == "." || name == "..";
      if (!r.plus() || dots) {
        // Our number when the kernel knows the object; the backing one
        // otherwise (plain readdir makes no inodes).
        fs::Ino ino = name == "." ? h.inode->ino : table_.find_backing(dev, d->d_ino);
        if (!ino) ino = d->d_ino;
        if (!r.add(name, ino, d->d_type, next)) return;
        continue;
      }
      std::unique_lock<std::mutex> child_lock;
      fs::Entry e;
      auto child = acquire_child(h.fd.get(), name, &child_lock, &e);
      if (!child) continue;  // gone since getdents: skip it
      if (!r.add(name, e.ino, (e.attr.mode & S_IFMT) >> 12, next, &e)) {
        // Not sent: a new inode made just for this entry must not stay.
        drop_if_unreferenced(**child);
        return;
      }
    }
  }
}

void MirrorFs::releasedir(const fs::Context&, fs::Ino, uint64_t fh,
                          fs::StatusReply r) {
  delete dir_handle_of(fh);
  r.ok();
}

void MirrorFs::fsyncdir(const fs::Context&, fs::Ino, uint64_t fh,
                        bool datasync, fs::StatusReply r) {
  DirHandle* h = dir_handle_of(fh);
  int rc = datasync ? ::fdatasync(h->fd.get()) : ::fsync(h->fd.get());
  if (rc != 0) return r.error(errno);
  r.ok();
}

}  // namespace zest::mirrorfs
