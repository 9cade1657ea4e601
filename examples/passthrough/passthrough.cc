// passthrough: mirrors the directory SOURCE at MOUNTPOINT, read-write.
// Regular files open in IoMode::Passthrough: the server registers the
// file's descriptor with the kernel (OpenInfo::backing_fd), and the kernel
// then reads and writes the backing file itself, without a request to us.
// Where the kernel cannot (no FUSE_PASSTHROUGH, or the server is not root),
// the server says so once and the same opens are served by read() and
// write() below. mirrorfs/ is the complete version (its own inode numbers,
// creation with the caller's credentials, readdirplus, splice, xattrs).
//   ./passthrough [-f] SOURCE MOUNTPOINT
//
// Inodes. Our inode number is the backing st_ino (SOURCE itself is 1), and
// each inode the kernel knows holds an O_PATH descriptor of its backing
// object: every operation works on descriptors (*at(2) calls), never on
// paths, so a rename behind our back does not confuse us. forget() closes
// the descriptor once the kernel holds no reference. While we hold it the
// backing inode cannot be freed, so its number cannot be given to another
// file: (st_ino, generation 0) names one object for as long as the kernel
// can use it. st_ino is unique within one file system only; objects on
// another device (a mount point inside SOURCE) are refused with EXDEV.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include <zest/zest.h>

namespace {
using namespace zest::fs;

constexpr double kTimeout = 1.0;

// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

// The path that reopens what `fd` refers to.
std::string proc(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

struct Inode {
  Fd path;  // O_PATH, the object itself
};
using InodePtr = std::shared_ptr<Inode>;

struct OpenFile {
  Fd fd;  // opened with the open's access mode; the kernel's backing file
};
struct OpenDir {
  std::mutex mu;
  std::unique_ptr<DIR, int (*)(DIR*)> dir{nullptr, &::closedir};
  uint64_t next = 0;  // the offset the stream is at
};

class Passthrough : public FileSystem {
 public:
  Passthrough(Fd root, const struct stat& st) : dev_(st.st_dev), root_backing_(st.st_ino) {
    auto i = std::make_shared<Inode>();
    i->path = std::move(root);
    inodes_[kRootIno] = std::move(i);
  }

  Capabilities capabilities() const override {
    Capabilities c;
    // Listing with attributes would need an inode for every name listed;
    // without it, ls -l looks each name up.
    c.readdirplus = Capabilities::Readdirplus::kOff;
    return c;  // not sole_writer: others may change SOURCE
  }
  void init(const KernelRefs* refs) override { refs_ = refs; }
  void forget(Ino ino) override {
    std::lock_guard lock(mu_);
    if (ino != kRootIno && !refs_->referenced(ino)) inodes_.erase(ino);  // closes the O_PATH fd
  }

  // --- names --------------------------------------------------------------
  void lookup(const Context&, Ino parent, std::string_view name, EntryReply r) override {
    InodePtr dir = get(parent);
    if (!dir) return r.error(ENOENT);
    if (parent == kRootIno && name == "..") name = ".";  // never climb out of SOURCE
    answer_child(dir->path.get(), name, r);
  }
  void mknod(const Context& ctx, Ino parent, std::string_view name, uint32_t mode, uint32_t rdev,
             EntryReply r) override {
    InodePtr dir = get(parent);
    if (!dir) return r.error(ENOENT);
    std::string n(name);
    if (::mknodat(dir->path.get(), n.c_str(), mode, rdev) != 0) return r.error(errno);
    give_to_caller(ctx, dir->path.get(), n);
    answer_child(dir->path.get(), n, r);
  }
  void mkdir(const Context& ctx, Ino parent, std::string_view name, uint32_t mode,
             EntryReply r) override {
    InodePtr dir = get(parent);
    if (!dir) return r.error(ENOENT);
    std::string n(name);
    if (::mkdirat(dir->path.get(), n.c_str(), mode & 07777) != 0) return r.error(errno);
    give_to_caller(ctx, dir->path.get(), n);
    answer_child(dir->path.get(), n, r);
  }
  void symlink(const Context& ctx, std::string_view target, Ino parent, std::string_view name,
               EntryReply r) override {
    InodePtr dir = get(parent);
    if (!dir) return r.error(ENOENT);
    std::string n(name);
    if (::symlinkat(std::string(target).c_str(), dir->path.get(), n.c_str()) != 0)
      return r.error(errno);
    give_to_caller(ctx, dir->path.get(), n);
    answer_child(dir->path.get(), n, r);
  }
  void link(const Context&, Ino ino, Ino newparent, std::string_view newname,
            EntryReply r) override {
    InodePtr i = get(ino), dir = get(newparent);
    if (!i || !dir) return r.error(ENOENT);
    std::string n(newname);
    // Through /proc: linkat(fd, "", AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH.
    if (::linkat(AT_FDCWD, proc(i->path.get()).c_str(), dir->path.get(), n.c_str(),
                 AT_SYMLINK_FOLLOW) != 0)
      return r.error(errno);
    answer_child(dir->path.get(), n, r);
  }
  void unlink(const Context&, Ino parent, std::string_view name, StatusReply r) override {
    remove(parent, name, 0, r);
  }
  void rmdir(const Context&, Ino parent, std::string_view name, StatusReply r) override {
    remove(parent, name, AT_REMOVEDIR, r);
  }
  void rename(const Context&, Ino parent, std::string_view name, Ino newparent,
              std::string_view newname, uint32_t flags, StatusReply r) override {
    InodePtr from = get(parent), to = get(newparent);
    if (!from || !to) return r.error(ENOENT);
    // The backing file system checks the flags (EINVAL for RENAME_WHITEOUT
    // where unsupported) and everything else.
    if (::renameat2(from->path.get(), std::string(name).c_str(), to->path.get(),
                    std::string(newname).c_str(), flags) != 0)
      return r.error(errno);
    r.ok();
  }

  // --- attributes ---------------------------------------------------------
  void getattr(const Context&, Ino ino, const uint64_t*, AttrReply r) override {
    InodePtr i = get(ino);
    if (!i) return r.error(ENOENT);
    struct stat st;
    if (::fstatat(i->path.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return r.error(errno);
    r.ok(attr_of(st), kTimeout);
  }
  void setattr(const Context&, Ino ino, const SetAttr& s, AttrReply r) override {
    InodePtr i = get(ino);
    if (!i) return r.error(ENOENT);
    const int fd = i->path.get();
    if ((s.valid & SetAttr::kMode) && ::chmod(proc(fd).c_str(), s.mode & 07777) != 0)
      return r.error(errno);
    if (s.valid & (SetAttr::kUid | SetAttr::kGid)) {
      uid_t uid = (s.valid & SetAttr::kUid) ? s.uid : uid_t(-1);
      gid_t gid = (s.valid & SetAttr::kGid) ? s.gid : gid_t(-1);
      if (::fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
        return r.error(errno);
    }
    if (s.valid & SetAttr::kSize) {
      int rc = s.has_fh ? ::ftruncate(reinterpret_cast<OpenFile*>(s.fh)->fd.get(),
                                      static_cast<off_t>(s.size))
                        : ::truncate(proc(fd).c_str(), static_cast<off_t>(s.size));
      if (rc != 0) return r.error(errno);
    }
    if (s.valid & (SetAttr::kAtime | SetAttr::kAtimeNow | SetAttr::kMtime | SetAttr::kMtimeNow)) {
      timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
      if (s.valid & SetAttr::kAtime) ts[0] = s.atime;
      if (s.valid & SetAttr::kAtimeNow) ts[0].tv_nsec = UTIME_NOW;
      if (s.valid & SetAttr::kMtime) ts[1] = s.mtime;
      if (s.valid & SetAttr::kMtimeNow) ts[1].tv_nsec = UTIME_NOW;
      if (::utimensat(fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
        return r.error(errno);
    }
    // kCtime: the backing file system stamps ctime itself.
    getattr(Context{}, ino, nullptr, std::move(r));
  }
  void readlink(const Context&, Ino ino, DataReply r) override {
    InodePtr i = get(ino);
    if (!i) return r.error(ENOENT);
    std::span<std::byte> buf = r.buffer(PATH_MAX);
    ssize_t n = ::readlinkat(i->path.get(), "", reinterpret_cast<char*>(buf.data()), buf.size());
    if (n < 0) return r.error(errno);
    r.ok(buf.first(static_cast<size_t>(n)));
  }
  void statfs(const Context&, Ino ino, StatfsReply r) override {
    InodePtr i = get(ino);
    if (!i) return r.error(ENOENT);
    struct statvfs v;
    if (::fstatvfs(i->path.get(), &v) != 0) return r.error(errno);
    r.ok({.blocks = v.f_blocks, .bfree = v.f_bfree, .bavail = v.f_bavail, .files = v.f_files,
          .ffree = v.f_ffree, .bsize = static_cast<uint32_t>(v.f_bsize),
          .frsize = static_cast<uint32_t>(v.f_frsize), .namelen = static_cast<uint32_t>(v.f_namemax)});
  }

  // --- files --------------------------------------------------------------
  void open(const Context&, Ino ino, uint32_t flags, OpenReply r) override {
    InodePtr i = get(ino);
    if (!i) return r.error(ENOENT);
    // Only the access mode and O_TRUNC (ours to do: FUSE_ATOMIC_O_TRUNC).
    // The kernel opens its own backing file with all of the caller's flags;
    // this fd serves the fallback, where O_APPEND would make pwrite ignore
    // the offsets the kernel computed.
    Fd fd(::open(proc(i->path.get()).c_str(), (flags & (O_ACCMODE | O_TRUNC)) | O_CLOEXEC));
    if (!fd) return r.error(errno);
    r.ok(open_info(std::move(fd)));
  }
  void create(const Context& ctx, Ino parent, std::string_view name, uint32_t mode,
              uint32_t flags, CreateReply r) override {
    InodePtr dir = get(parent);
    if (!dir) return r.error(ENOENT);
    std::string n(name);
    int f = (flags & (O_ACCMODE | O_EXCL | O_TRUNC)) | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
    Fd fd(::openat(dir->path.get(), n.c_str(), f, mode & 07777));
    if (!fd) return r.error(errno);
    give_to_caller(ctx, dir->path.get(), n);
    // Name the new file by itself, not by its name (a rename may race).
    Fd path(::open(proc(fd.get()).c_str(), O_PATH | O_CLOEXEC));
    if (!path) return r.error(errno);
    OpenInfo info = open_info(std::move(fd));
    std::unique_lock<std::mutex> lock;
    Entry e;
    if (int err = entry(std::move(path), &e, &lock)) {
      delete reinterpret_cast<OpenFile*>(info.fh);
      return r.error(err);
    }
    r.ok(e, info);  // under the table lock, as every entry: see answer_child()
  }
  void read(const Context&, Ino, uint64_t fh, uint64_t off, uint32_t size, DataReply r) override {
    r.ok_fd(reinterpret_cast<OpenFile*>(fh)->fd.get(), off, size);
  }
  void write(const Context&, Ino, uint64_t fh, uint64_t off, std::span<const std::byte> data,
             uint32_t, WriteReply r) override {
    ssize_t n = ::pwrite(reinterpret_cast<OpenFile*>(fh)->fd.get(), data.data(), data.size(),
                         static_cast<off_t>(off));
    if (n < 0) return r.error(errno);
    r.ok(static_cast<size_t>(n));
  }
  void release(const Context&, Ino, uint64_t fh, uint32_t, StatusReply r) override {
    delete reinterpret_cast<OpenFile*>(fh);  // the kernel keeps its own backing file
    r.ok();
  }
  void fsync(const Context&, Ino, uint64_t fh, bool datasync, StatusReply r) override {
    int fd = reinterpret_cast<OpenFile*>(fh)->fd.get();
    if ((datasync ? ::fdatasync(fd) : ::fsync(fd)) != 0) return r.error(errno);
    r.ok();
  }

  // --- directories --------------------------------------------------------
  void opendir(const Context&, Ino ino, uint32_t, OpenReply r) override {
    InodePtr i = get(ino);
    if (!i) return r.error(ENOENT);
    int fd = ::openat(i->path.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return r.error(errno);
    auto d = std::make_unique<OpenDir>();
    d->dir.reset(::fdopendir(fd));
    if (!d->dir) {
      int err = errno;
      ::close(fd);
      return r.error(err);
    }
    r.ok({.fh = reinterpret_cast<uintptr_t>(d.release())});
  }
  // Offsets are the backing file system's own (d_off, what telldir gives).
  void readdir(const Context&, Ino, uint64_t fh, uint64_t off, DirReply r) override {
    auto* d = reinterpret_cast<OpenDir*>(fh);
    std::lock_guard lock(d->mu);
    if (off != d->next) {
      if (off == 0) ::rewinddir(d->dir.get());
      else ::seekdir(d->dir.get(), static_cast<long>(off));
      d->next = off;
    }
    for (;;) {
      errno = 0;
      dirent* e = ::readdir(d->dir.get());
      if (!e) {
        if (errno) return r.error(errno);
        break;
      }
      Ino ino = e->d_ino == root_backing_ ? kRootIno : e->d_ino;
      if (!r.add(e->d_name, ino, e->d_type, static_cast<uint64_t>(e->d_off))) {
        ::seekdir(d->dir.get(), static_cast<long>(d->next));  // not sent: read it again next time
        break;
      }
      d->next = static_cast<uint64_t>(e->d_off);
    }
    r.ok();
  }
  void releasedir(const Context&, Ino, uint64_t fh, StatusReply r) override {
    delete reinterpret_cast<OpenDir*>(fh);
    r.ok();
  }

 private:
  InodePtr get(Ino ino) {
    std::lock_guard lock(mu_);
    auto it = inodes_.find(ino);
    return it == inodes_.end() ? nullptr : it->second;
  }
  Attr attr_of(const struct stat& st) const {
    Attr a{.ino = st.st_ino == root_backing_ ? kRootIno : st.st_ino,
           .size = static_cast<uint64_t>(st.st_size),
           .blocks = static_cast<uint64_t>(st.st_blocks),
           .atime = st.st_atim, .mtime = st.st_mtim, .ctime = st.st_ctim,
           .mode = st.st_mode, .nlink = static_cast<uint32_t>(st.st_nlink),
           .uid = st.st_uid, .gid = st.st_gid, .rdev = static_cast<uint32_t>(st.st_rdev),
           .blksize = static_cast<uint32_t>(st.st_blksize)};
    return a;
  }
  // Fills *e for the object `path` refers to and leaves the table locked in
  // *lock, so that the entry is answered before a forget can drop the inode
  // (the server counts the reference inside the reply call). 0 or an errno.
  int entry(Fd path, Entry* e, std::unique_lock<std::mutex>* lock) {
    struct stat st;
    if (::fstatat(path.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
    if (st.st_dev != dev_ || (st.st_ino == kRootIno && st.st_ino != root_backing_)) return EXDEV;
    *lock = std::unique_lock(mu_);
    *e = {.ino = st.st_ino == root_backing_ ? kRootIno : st.st_ino, .generation = 0,
          .attr = attr_of(st), .entry_timeout = kTimeout, .attr_timeout = kTimeout};
    InodePtr& i = inodes_[e->ino];
    if (!i) {  // new to the kernel: this O_PATH fd is its handle from now on
      i = std::make_shared<Inode>();
      i->path = std::move(path);
    }
    return 0;
  }
  void answer_child(int dirfd, std::string_view name, EntryReply& r) {
    Fd path(::openat(dirfd, std::string(name).c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!path) {
      // A miss is not cached (entry ino 0 with a timeout would cache it):
      // files may appear in SOURCE without our knowing.
      return r.error(errno);
    }
    std::unique_lock<std::mutex> lock;
    Entry e;
    if (int err = entry(std::move(path), &e, &lock)) return r.error(err);
    r.ok(e);
  }
  void remove(Ino parent, std::string_view name, int flags, StatusReply& r) {
    InodePtr dir = get(parent);
    if (!dir) return r.error(ENOENT);
    if (::unlinkat(dir->path.get(), std::string(name).c_str(), flags) != 0) return r.error(errno);
    r.ok();  // an inode still known to the kernel keeps its fd until forget()
  }
  // The server runs as root and creates as root: hand the new object to
  // the caller (its group unless the directory is setgid, whose group the
  // new object already took). mirrorfs switches credentials instead, which
  // also keeps S_ISGID that chown would clear.
  void give_to_caller(const Context& ctx, int dirfd, const std::string& name) {
    if (::geteuid() != 0 || (ctx.uid == 0 && ctx.gid == 0)) return;
    struct stat dst;
    bool setgid_dir = ::fstatat(dirfd, "", &dst, AT_EMPTY_PATH) == 0 && (dst.st_mode & S_ISGID);
    (void)::fchownat(dirfd, name.c_str(), ctx.uid, setgid_dir ? gid_t(-1) : ctx.gid,
                     AT_SYMLINK_NOFOLLOW);
  }
  static OpenInfo open_info(Fd fd) {
    auto* f = new OpenFile{std::move(fd)};
    return {.fh = reinterpret_cast<uintptr_t>(f), .mode = IoMode::Passthrough,
            .backing_fd = f->fd.get()};
  }

  const dev_t dev_;
  const ino_t root_backing_;
  const KernelRefs* refs_ = nullptr;
  std::mutex mu_;  // the table; held while an entry is answered
  std::unordered_map<Ino, InodePtr> inodes_;
};
}  // namespace

zest::Plugin passthrough() {
  return {.name = "passthrough",
          .summary = "mirrors a directory; files use kernel passthrough",
          .source = zest::Plugin::Source::kRequired,
          .source_name = "DIR",
          .make = [](const zest::MountConfig& cfg, std::string* why) -> zest::Result<zest::Instance> {
            if (!cfg.options.empty()) {
              *why = "unknown option: " + cfg.options.front();
              return zest::Errno(EINVAL);
            }
            Fd root(::open(cfg.source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
            struct stat st;
            if (!root || ::fstatat(root.get(), "", &st, AT_EMPTY_PATH) != 0) {
              zest::Errno e = zest::last_errno();
              *why = cfg.source + ": " + e.message();
              return e;
            }
            // Modes arrive with the caller's umask applied; ours must not
            // be applied a second time by the backing calls.
            ::umask(0);
            return zest::Instance{.fs = std::make_unique<Passthrough>(std::move(root), st)};
          }};
}
ZEST_PLUGIN(passthrough)

int main(int argc, char** argv) { return zest::main(argc, argv, passthrough()); }
