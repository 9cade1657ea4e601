// MirrorFs: lifetime, lookup and the name operations.
#include "mirrorfs/mirror_fs.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "mirrorfs/caller_creds.h"

namespace zest::mirrorfs {

namespace {

// Looks at an object's times before link/unlink/rmdir/rename. tmpfs sets the
// parent directory's mtime/ctime from the *child's* new ctime there, and
// with multigrain timestamps (6.13) that stamp is only fine-grained when
// someone looked at the child's ctime since its last change; else a change
// within the same clock tick leaves the directory's times as they were. A
// caller looking through the mount reads times the kernel cached from us,
// so the backing file system never learns they were looked at; stat here
// stands in for that (a few hundred ns on tmpfs).
void note_times_seen(int dirfd, const char* name, int flags) {
  struct stat st;
  (void)::fstatat(dirfd, name, &st, flags | AT_SYMLINK_NOFOLLOW);
}

// A directory whose entries an operation changes: after the change, its
// mtime and ctime must have moved. tmpfs stamps the parent of link/unlink/rmdir/
// rename with the *child's* new ctime, which with multigrain timestamps is
// the coarse clock's floor, and that floor can be the very stamp the
// parent already carries (when the parent's was the last fine-grained
// stamp taken); the change is then invisible. A caller through the mount
// would see a directory that changed without its mtime moving, so we stamp
// it again (the stat just before makes that stamp fine-grained).
class DirChange {
 public:
  explicit DirChange(int dirfd) : fd_(dirfd) {
    have_ = ::fstatat(fd_, "", &before_, AT_EMPTY_PATH) == 0;
  }
  void done() const {
    struct stat after;
    if (!have_ || ::fstatat(fd_, "", &after, AT_EMPTY_PATH) != 0) return;
    auto moved = [](const timespec& a, const timespec& b) {
      return a.tv_sec != b.tv_sec || a.tv_nsec != b.tv_nsec;
    };
    if (moved(after.st_mtim, before_.st_mtim) &&
        moved(after.st_ctim, before_.st_ctim))
      return;
    timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    (void)::utimensat(fd_, "", ts, AT_EMPTY_PATH);
  }

 private:
  int fd_;
  bool have_;
  struct stat before_;
};

}  // namespace

CName::CName(std::string_view s) : ok_(s.size() < sizeof buf_) {
  size_t n = ok_ ? s.size() : 0;
  std::memcpy(buf_, s.data(), n);
  buf_[n] = '\0';
}

Result<std::unique_ptr<fs::FileSystem>> make_mirrorfs(const Options& options,
                                                      std::string* why) {
  if (options.source.empty()) {
    *why = "mirrorfs needs a backing directory: zest mount --fs mirrorfs DIR MOUNTPOINT";
    return Errno(EINVAL);
  }
  UniqueFd root(::open(options.source.c_str(),
                       O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    Errno e = last_errno();
    *why = fmt::format("{}: {}", options.source, e.message());
    return e;
  }
  struct stat st;
  if (::fstatat(root.get(), "", &st, AT_EMPTY_PATH) != 0) {
    Errno e = last_errno();
    *why = fmt::format("{}: stat: {}", options.source, e.message());
    return e;
  }
  return std::unique_ptr<fs::FileSystem>(
      new MirrorFs(options, st, std::move(root)));
}

MirrorFs::MirrorFs(const Options& options, const struct stat& root_st,
                   UniqueFd root)
    : opts_(options),
      as_caller_(::geteuid() == 0),
      table_(root_st, std::move(root), options.forgotten_handles) {
  handle_mount_.reset(::openat(get(fs::kRootIno)->path_fd.get(), ".",
                               O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

MirrorFs::~MirrorFs() = default;

fs::Capabilities MirrorFs::capabilities() const {
  fs::Capabilities c;
  c.writeback_cache = false;  // passthrough and writeback do not mix
  c.splice_write = opts_.splice;
  c.splice_min = opts_.splice_min;
  return c;
}

fs::Attr MirrorFs::attr_of(const struct stat& st, fs::Ino ino) const {
  fs::Attr a;
  a.ino = ino;
  a.size = static_cast<uint64_t>(st.st_size);
  a.blocks = static_cast<uint64_t>(st.st_blocks);
  a.atime = st.st_atim;
  a.mtime = st.st_mtim;
  a.ctime = st.st_ctim;
  a.mode = st.st_mode;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = static_cast<uint32_t>(st.st_rdev);
  a.blksize = static_cast<uint32_t>(st.st_blksize);
  return a;
}

fs::Entry MirrorFs::entry_of(const struct stat& st, fs::Ino ino) const {
  fs::Entry e;
  e.ino = ino;
  e.generation = 0;  // numbers are never reused
  e.attr = attr_of(st, ino);
  e.entry_timeout = opts_.entry_timeout;
  e.attr_timeout = opts_.attr_timeout;
  return e;
}

Result<InodePtr> MirrorFs::acquire(UniqueFd fd,
                                   std::unique_lock<std::mutex>* lock,
                                   fs::Entry* entry) {
  for (;;) {
    struct stat st;
    if (::fstatat(fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return last_errno();
    InodePtr i = table_.find_or_insert(st, &fd);
    std::unique_lock l(i->mu);
    if (!i->dead) {
      *entry = entry_of(st, i->ino);
      *lock = std::move(l);
      return i;
    }
    // A forget took it out meanwhile: look again (with our own fd, or a
    // copy of the one the dead inode took over).
    if (!fd) fd.reset(::fcntl(i->path_fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd) return last_errno();
  }
}

Result<InodePtr> MirrorFs::acquire_child(int dirfd, std::string_view name,
                                         std::unique_lock<std::mutex>* lock,
                                         fs::Entry* entry) {
  CName n(name);
  if (!n.ok()) return Errno(ENAMETOOLONG);
  UniqueFd fd(::openat(dirfd, n.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return last_errno();
  return acquire(std::move(fd), lock, entry);
}

void MirrorFs::reply_child(fs::Ino parent, std::string_view name,
                           fs::EntryReply& r) {
  InodePtr dir = get(parent);
  if (!dir) return r.error(ENOENT);
  // ".." of the root must not climb out of the backing directory.
  if (parent == fs::kRootIno && name == "..") name = ".";
  std::unique_lock<std::mutex> lock;
  fs::Entry e;
  auto i = acquire_child(dir->path_fd.get(), name, &lock, &e);
  if (!i) return r.error(i.error().value);
  r.ok(e);
}

void MirrorFs::reply_self(fs::Ino ino, fs::EntryReply& r) {
  for (;;) {
    UniqueFd fd;
    if (InodePtr live = get(ino)) {
      fd.reset(::fcntl(live->path_fd.get(), F_DUPFD_CLOEXEC, 0));
      if (!fd) return r.error(errno);
      std::unique_lock<std::mutex> lock;
      fs::Entry e;
      auto i = acquire(std::move(fd), &lock, &e);
      if (!i) return r.error(i.error().value);
      // Removed (its FORGET may still be on the way): the kernel only asks
      // for a number it no longer caches, so nothing through the mount can
      // reach the object but a stale handle.
      if (e.ino == ino && e.attr.nlink == 0) return r.error(ESTALE);
      if (e.ino == ino) return r.ok(e);
      // Forgotten meanwhile with no links left: a new number, which the
      // kernel would refuse (it wants the handle's own), and must not keep.
      drop_if_unreferenced(**i);
      return r.error(ESTALE);
    }
    auto o = table_.forgotten(ino);
    if (!o) {
      if (get(ino)) continue;  // made live meanwhile
      return r.error(ESTALE);
    }
    if (!handle_mount_) return r.error(ESTALE);
    fd.reset(o->handle.open(handle_mount_.get(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      // ESTALE: the object is gone. EPERM: no CAP_DAC_READ_SEARCH (a server
      // not running as root), so forgotten numbers cannot be found again.
      const int err = errno;
      if (err == ESTALE) table_.drop_forgotten(ino);
      if (err == ESTALE || err == EPERM) return r.error(ESTALE);
      return r.error(err);
    }
    struct stat st;
    if (::fstatat(fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return r.error(errno);
    if (st.st_nlink == 0) {  // removed, but open elsewhere
      table_.drop_forgotten(ino);
      return r.error(ESTALE);
    }
    InodePtr i = table_.revive(ino, st, &fd);
    if (!i) return r.error(ESTALE);
    std::unique_lock lock(i->mu);
    if (i->dead) continue;  // forgotten again meanwhile: look again
    return r.ok(entry_of(st, ino));
  }
}

void MirrorFs::drop_if_unreferenced(MirrorInode& i) {
  if (i.ino == fs::kRootIno || i.dead) return;
  if (refs_ && refs_->referenced(i.ino)) return;
  i.dead = true;
  // An object with no links left (removed) is forgotten for good: its
  // number must go stale, and its handle will (ESTALE once we close it).
  struct stat st;
  bool gone = ::fstatat(i.path_fd.get(), "", &st, AT_EMPTY_PATH) == 0 &&
              st.st_nlink == 0;
  table_.erase(i, gone);
}

void MirrorFs::forget(fs::Ino ino) {
  InodePtr i = get(ino);
  if (!i) return;
  std::lock_guard lock(i->mu);
  drop_if_unreferenced(*i);
}

void MirrorFs::lookup(const fs::Context&, fs::Ino parent, std::string_view name,
                      fs::EntryReply r) {
  if (name == ".") return reply_self(parent, r);
  reply_child(parent, name, r);
}

void MirrorFs::mknod(const fs::Context& ctx, fs::Ino parent,
                     std::string_view name, uint32_t mode, uint32_t rdev,
                     fs::EntryReply r) {
  InodePtr dir = get(parent);
  if (!dir) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ENAMETOOLONG);
  {
    CallerCreds creds(ctx, as_caller_);
    if (!creds.ok()) return r.error(EPERM);
    if (::mknodat(dir->path_fd.get(), n.c_str(), mode, rdev) != 0)
      return r.error(errno);
  }
  reply_child(parent, name, r);
}

void MirrorFs::mkdir(const fs::Context& ctx, fs::Ino parent,
                     std::string_view name, uint32_t mode, fs::EntryReply r) {
  InodePtr dir = get(parent);
  if (!dir) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ENAMETOOLONG);
  {
    CallerCreds creds(ctx, as_caller_);
    if (!creds.ok()) return r.error(EPERM);
    if (::mkdirat(dir->path_fd.get(), n.c_str(), mode) != 0)
      return r.error(errno);
  }
  reply_child(parent, name, r);
}

void MirrorFs::symlink(const fs::Context& ctx, std::string_view target,
                       fs::Ino parent, std::string_view name,
                       fs::EntryReply r) {
  InodePtr dir = get(parent);
  if (!dir) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ENAMETOOLONG);
  std::string t(target);
  {
    CallerCreds creds(ctx, as_caller_);
    if (!creds.ok()) return r.error(EPERM);
    if (::symlinkat(t.c_str(), dir->path_fd.get(), n.c_str()) != 0)
      return r.error(errno);
  }
  reply_child(parent, name, r);
}

void MirrorFs::link(const fs::Context&, fs::Ino ino, fs::Ino newparent,
                    std::string_view newname, fs::EntryReply r) {
  InodePtr i = get(ino), dir = get(newparent);
  if (!i || !dir) return r.error(ENOENT);
  CName n(newname);
  if (!n.ok()) return r.error(ENAMETOOLONG);
  note_times_seen(i->path_fd.get(), "", AT_EMPTY_PATH);
  DirChange change(dir->path_fd.get());
  // AT_EMPTY_PATH links the object itself (an O_TMPFILE file too), as root;
  // otherwise through /proc (which needs no CAP_DAC_READ_SEARCH).
  if (::linkat(i->path_fd.get(), "", dir->path_fd.get(), n.c_str(),
               AT_EMPTY_PATH) != 0) {
    if (errno != ENOENT && errno != EPERM) return r.error(errno);
    if (::linkat(AT_FDCWD, i->proc().c_str(), dir->path_fd.get(), n.c_str(),
                 AT_SYMLINK_FOLLOW) != 0)
      return r.error(errno);
  }
  change.done();
  reply_child(newparent, newname, r);
}

void MirrorFs::unlink(const fs::Context&, fs::Ino parent,
                      std::string_view name, fs::StatusReply r) {
  InodePtr dir = get(parent);
  if (!dir) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ENAMETOOLONG);
  note_times_seen(dir->path_fd.get(), n.c_str(), 0);
  DirChange change(dir->path_fd.get());
  if (::unlinkat(dir->path_fd.get(), n.c_str(), 0) != 0) return r.error(errno);
  change.done();
  r.ok();
}

void MirrorFs::rmdir(const fs::Context&, fs::Ino parent, std::string_view name,
                     fs::StatusReply r) {
  InodePtr dir = get(parent);
  if (!dir) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ENAMETOOLONG);
  note_times_seen(dir->path_fd.get(), n.c_str(), 0);
  DirChange change(dir->path_fd.get());
  if (::unlinkat(dir->path_fd.get(), n.c_str(), AT_REMOVEDIR) != 0)
    return r.error(errno);
  change.done();
  r.ok();
}

void MirrorFs::rename(const fs::Context&, fs::Ino parent, std::string_view name,
                      fs::Ino newparent, std::string_view newname,
                      uint32_t flags, fs::StatusReply r) {
  if (flags & ~uint32_t(RENAME_NOREPLACE | RENAME_EXCHANGE))
    return r.error(EINVAL);
  InodePtr from = get(parent), to = get(newparent);
  if (!from || !to) return r.error(ENOENT);
  CName a(name), b(newname);
  if (!a.ok() || !b.ok()) return r.error(ENAMETOOLONG);
  note_times_seen(from->path_fd.get(), a.c_str(), 0);
  note_times_seen(to->path_fd.get(), b.c_str(), 0);
  DirChange change_from(from->path_fd.get()), change_to(to->path_fd.get());
  if (::renameat2(from->path_fd.get(), a.c_str(), to->path_fd.get(), b.c_str(),
                  flags) != 0)
    return r.error(errno);
  change_from.done();
  if (to != from) change_to.done();
  r.ok();
}

void MirrorFs::syncfs(const fs::Context&, fs::StatusReply r) {
  InodePtr root = get(fs::kRootIno);
  UniqueFd fd(::openat(root->path_fd.get(), ".",
                       O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return r.error(errno);
  if (::syncfs(fd.get()) != 0) return r.error(errno);
  r.ok();
}

}  // namespace zest::mirrorfs
