// MirrorFs: attributes, symlink targets, statfs and extended attributes.
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "mirrorfs/mirror_fs.h"

namespace zest::mirrorfs {
namespace {

int stat_of(const MirrorInode& i, struct stat* st) {
  if (::fstatat(i.path_fd.get(), "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    return errno;
  return 0;
}

// The mode after dropping S_ISUID, and S_ISGID when group-executable (the
// kernel's rule for writes and truncates by an unprivileged caller).
uint32_t killed_suid(uint32_t mode) {
  mode &= ~uint32_t(S_ISUID);
  if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) mode &= ~uint32_t(S_ISGID);
  return mode;
}

}  // namespace

void MirrorFs::getattr(const fs::Context&, fs::Ino ino, const uint64_t*,
                       fs::AttrReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  struct stat st;
  if (int e = stat_of(*i, &st)) return r.error(e);
  r.ok(attr_of(st, ino), opts_.attr_timeout);
}

void MirrorFs::setattr(const fs::Context&, fs::Ino ino, const fs::SetAttr& a,
                       fs::AttrReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  const int pfd = i->path_fd.get();
  const OpenFile* f = a.has_fh && !i->is_dir() ? open_file_of(a.fh) : nullptr;
  // Owner first (it drops set-id bits), then mode, size and times, so that
  // what the caller set explicitly wins.
  if (a.valid & (fs::SetAttr::kUid | fs::SetAttr::kGid)) {
    uid_t uid = (a.valid & fs::SetAttr::kUid) ? a.uid : uid_t(-1);
    gid_t gid = (a.valid & fs::SetAttr::kGid) ? a.gid : gid_t(-1);
    if (::fchownat(pfd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return r.error(errno);
  }
  uint32_t mode = 0;
  bool set_mode = false;
  if (a.valid & fs::SetAttr::kMode) {
    mode = a.mode & 07777;
    set_mode = true;
  }
  if (a.valid & fs::SetAttr::kKillSuidGid) {
    if (!set_mode) {
      struct stat st;
      if (int e = stat_of(*i, &st)) return r.error(e);
      mode = st.st_mode & 07777;
    }
    uint32_t killed = killed_suid(mode);
    set_mode = set_mode || killed != mode;
    mode = killed;
  }
  if (set_mode) {
    // chmod through /proc reaches the object itself; there is no lchmod
    // (the kernel never asks for a symlink's mode to change).
    if (::fchmodat(AT_FDCWD, i->proc().c_str(), mode, 0) != 0)
      return r.error(errno);
  }
  if (a.valid & fs::SetAttr::kSize) {
    if (!i->is_reg()) return r.error(i->is_dir() ? EISDIR : EINVAL);
    int rc = f && f->writable
                 ? ::ftruncate(f->fd, static_cast<off_t>(a.size))
                 : ::truncate(i->proc().c_str(), static_cast<off_t>(a.size));
    if (rc != 0) return r.error(errno);
  }
  if (a.valid & (fs::SetAttr::kAtime | fs::SetAttr::kMtime |
                 fs::SetAttr::kAtimeNow | fs::SetAttr::kMtimeNow)) {
    timespec ts[2];
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_OMIT;
    if (a.valid & fs::SetAttr::kAtimeNow) ts[0].tv_nsec = UTIME_NOW;
    else if (a.valid & fs::SetAttr::kAtime) ts[0] = a.atime;
    if (a.valid & fs::SetAttr::kMtimeNow) ts[1].tv_nsec = UTIME_NOW;
    else if (a.valid & fs::SetAttr::kMtime) ts[1] = a.mtime;
    if (::utimensat(pfd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return r.error(errno);
  }
  // kCtime: the backing file system stamps ctime itself on every change.
  // A setattr with nothing left to change (chown(f, -1, -1) arrives so)
  // still moves ctime, as it does on the backing file system: chown to
  // -1/-1 there does exactly that.
  if (!(a.valid & (fs::SetAttr::kUid | fs::SetAttr::kGid | fs::SetAttr::kSize |
                   fs::SetAttr::kAtime | fs::SetAttr::kMtime |
                   fs::SetAttr::kAtimeNow | fs::SetAttr::kMtimeNow)) &&
      !set_mode) {
    if (::fchownat(pfd, "", uid_t(-1), gid_t(-1),
                   AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return r.error(errno);
  }
  struct stat st;
  if (int e = stat_of(*i, &st)) return r.error(e);
  r.ok(attr_of(st, ino), opts_.attr_timeout);
}

void MirrorFs::readlink(const fs::Context&, fs::Ino ino, fs::DataReply r) {
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  std::span<std::byte> buf = r.buffer(PATH_MAX);
  ssize_t n = ::readlinkat(i->path_fd.get(), "",
                           reinterpret_cast<char*>(buf.data()), buf.size());
  if (n < 0) return r.error(errno);
  r.ok(std::span<const std::byte>(buf.data(), static_cast<size_t>(n)));
}

void MirrorFs::statfs(const fs::Context&, fs::Ino ino, fs::StatfsReply r) {
  InodePtr i = get(ino);
  if (!i) i = get(fs::kRootIno);
  struct statfs s;
  if (::fstatfs(i->path_fd.get(), &s) != 0) return r.error(errno);
  fs::StatFs out;
  out.blocks = s.f_blocks;
  out.bfree = s.f_bfree;
  out.bavail = s.f_bavail;
  out.files = s.f_files;
  out.ffree = s.f_ffree;
  out.bsize = static_cast<uint32_t>(s.f_bsize);
  out.frsize = static_cast<uint32_t>(s.f_frsize ? s.f_frsize : s.f_bsize);
  out.namelen = static_cast<uint32_t>(s.f_namelen);
  r.ok(out);
}

// Extended attributes go through /proc/self/fd/N with the *following*
// calls: the magic link resolves to the object the O_PATH fd names, a
// symlink included (lgetxattr would act on the /proc link itself). The
// *xattrat() calls of 6.13 refuse O_PATH fds with AT_EMPTY_PATH (EBADF).

void MirrorFs::setxattr(const fs::Context&, fs::Ino ino, std::string_view name,
                        std::span<const std::byte> value, uint32_t flags,
                        uint32_t /*ext_flags*/, fs::StatusReply r) {
  if (!opts_.xattr) return r.error(ENOSYS);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ERANGE);
  if (::setxattr(i->proc().c_str(), n.c_str(), value.data(), value.size(),
                 static_cast<int>(flags)) != 0)
    return r.error(errno);
  r.ok();
}

void MirrorFs::getxattr(const fs::Context&, fs::Ino ino, std::string_view name,
                        uint32_t size, fs::XattrReply r) {
  if (!opts_.xattr) return r.error(ENOSYS);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ERANGE);
  if (size == 0) {
    ssize_t len = ::getxattr(i->proc().c_str(), n.c_str(), nullptr, 0);
    if (len < 0) return r.error(errno);
    return r.ok_size(static_cast<size_t>(len));
  }
  std::span<std::byte> buf = r.buffer(size);
  ssize_t len = ::getxattr(i->proc().c_str(), n.c_str(), buf.data(), size);
  if (len < 0) return r.error(errno);
  r.ok(std::span<const std::byte>(buf.data(), static_cast<size_t>(len)));
}

void MirrorFs::listxattr(const fs::Context& ctx, fs::Ino ino, uint32_t size,
                         fs::XattrReply r) {
  if (!opts_.xattr) return r.error(ENOSYS);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  const ProcPath path = i->proc();
  // The server is root and sees trusted.* names; a caller without
  // CAP_SYS_ADMIN would not (we know only its uid: root or not).
  if (ctx.uid == 0) {
    if (size == 0) {
      ssize_t len = ::listxattr(path.c_str(), nullptr, 0);
      if (len < 0) return r.error(errno);
      return r.ok_size(static_cast<size_t>(len));
    }
    std::span<std::byte> buf = r.buffer(size);
    ssize_t len = ::listxattr(path.c_str(), reinterpret_cast<char*>(buf.data()), size);
    if (len < 0) return r.error(errno);
    return r.ok(std::span<const std::byte>(buf.data(), static_cast<size_t>(len)));
  }
  std::vector<char> all;
  ssize_t len;
  do {  // the list may grow between the two calls
    len = ::listxattr(path.c_str(), nullptr, 0);
    if (len < 0) return r.error(errno);
    all.resize(static_cast<size_t>(len));
    len = ::listxattr(path.c_str(), all.data(), all.size());
  } while (len < 0 && errno == ERANGE);
  if (len < 0) return r.error(errno);
  std::string shown;
  for (size_t p = 0; p < static_cast<size_t>(len);) {
    std::string_view name(all.data() + p);
    if (name.rfind("trusted.", 0) != 0) shown.append(name).push_back('\0');
    p += name.size() + 1;
  }
  if (size == 0) return r.ok_size(shown.size());
  if (shown.size() > size) return r.error(ERANGE);
  r.ok(std::string_view(shown));
}

void MirrorFs::removexattr(const fs::Context&, fs::Ino ino,
                           std::string_view name, fs::StatusReply r) {
  if (!opts_.xattr) return r.error(ENOSYS);
  InodePtr i = get(ino);
  if (!i) return r.error(ENOENT);
  CName n(name);
  if (!n.ok()) return r.error(ERANGE);
  if (::removexattr(i->proc().c_str(), n.c_str()) != 0) return r.error(errno);
  r.ok();
}

}  // namespace zest::mirrorfs
