// Checks of attributes: extended attributes, permission bits, ownership
// and the access rules the kernel applies for other users (as uid 1000,
// root only), set-id bits, and which operations change which timestamps.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <set>

#include "conformance/check.h"

namespace zest::conformance {
namespace {

constexpr uid_t kUser = 1000;   // the unprivileged user of the checks
constexpr uid_t kOther = 1001;  // somebody else

void Touch(Probe& p, const std::string& rel, mode_t mode = 0644) {
  ::close(::open(p.P(rel).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, mode));
}

std::string SortedList(const char* buf, ssize_t n) {
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += std::strlen(buf + i) + 1)
    names.insert(buf + i);
  std::string s;
  for (auto& x : names) s += x + " ";
  return s;
}

void XattrBasic(Probe& p) {
  Touch(p, "x");
  std::string f = p.P("x");
  if (!p.Feature("setxattr user.one",
                 ::setxattr(f.c_str(), "user.one", "value1", 6, 0)))
    return;
  p.Ok("setxattr user.two (empty value)",
       ::setxattr(f.c_str(), "user.two", "", 0, 0));
  char buf[256];
  p.Ret("getxattr user.one size query",
        ::getxattr(f.c_str(), "user.one", nullptr, 0));
  long n = p.Ret("getxattr user.one",
                 ::getxattr(f.c_str(), "user.one", buf, sizeof buf));
  if (n > 0) p.Data("its value", std::string(buf, n));
  p.Ret("getxattr user.two",
        ::getxattr(f.c_str(), "user.two", buf, sizeof buf));
  p.Ret("getxattr user.one into 3 bytes",
        ::getxattr(f.c_str(), "user.one", buf, 3));
  p.Ret("getxattr user.none",
        ::getxattr(f.c_str(), "user.none", buf, sizeof buf));
  p.Ok("setxattr user.one XATTR_CREATE (exists)",
       ::setxattr(f.c_str(), "user.one", "v", 1, XATTR_CREATE));
  p.Ok("setxattr user.none XATTR_REPLACE (missing)",
       ::setxattr(f.c_str(), "user.none", "v", 1, XATTR_REPLACE));
  p.Ok("setxattr user.one XATTR_REPLACE",
       ::setxattr(f.c_str(), "user.one", "longer value", 12, XATTR_REPLACE));
  UniqueFd fd(::open(f.c_str(), O_RDONLY | O_CLOEXEC));
  n = p.Ret("fgetxattr user.one",
            ::fgetxattr(fd.get(), "user.one", buf, sizeof buf));
  if (n > 0) p.Data("its value", std::string(buf, n));
  p.Ret("listxattr size query", ::listxattr(f.c_str(), nullptr, 0));
  p.Ret("listxattr into 5 bytes", ::listxattr(f.c_str(), buf, 5));
  n = ::listxattr(f.c_str(), buf, sizeof buf);
  p.Data("listxattr",
         n >= 0 ? SortedList(buf, n) : "errno " + ErrnoName(errno));
  p.Ok("removexattr user.one", ::removexattr(f.c_str(), "user.one"));
  p.Ok("removexattr user.one again", ::removexattr(f.c_str(), "user.one"));
  n = ::listxattr(f.c_str(), buf, sizeof buf);
  p.Data("listxattr after remove",
         n >= 0 ? SortedList(buf, n) : "errno " + ErrnoName(errno));
  p.Ok("setxattr with an unknown namespace",
       ::setxattr(f.c_str(), "bogus.x", "v", 1, 0));
  p.Ok("setxattr with an empty name", ::setxattr(f.c_str(), "", "v", 1, 0));
  p.Ok("setxattr with a 256-byte name",
       ::setxattr(f.c_str(), ("user." + std::string(251, 'n')).c_str(), "v", 1,
                  0));
  p.Ok("setxattr with a 255-byte name",
       ::setxattr(f.c_str(), ("user." + std::string(250, 'n')).c_str(), "v", 1,
                  0));
}

void XattrLarge(Probe& p) {
  Touch(p, "x");
  std::string f = p.P("x");
  std::string big = Pattern(65536, 8);
  if (!p.Feature("setxattr user.small",
                 ::setxattr(f.c_str(), "user.small", "s", 1, 0)))
    return;
  p.Ok("setxattr a 64 KiB value",
       ::setxattr(f.c_str(), "user.big", big.data(), big.size(), 0));
  std::string back(70000, '\0');
  long n = p.Ret("getxattr it",
                 ::getxattr(f.c_str(), "user.big", back.data(), back.size()));
  if (n > 0) p.Note("value intact", back.substr(0, n) == big ? "yes" : "no");
  p.Ok("setxattr a 64 KiB + 1 value",
       ::setxattr(f.c_str(), "user.bigger", back.data(), 65537, 0));
  // Many small attributes on one file.
  bool ok = true;
  for (int k = 0; k < 500 && ok; ++k) {
    std::string name = "user.attr" + std::to_string(k);
    ok = ::setxattr(f.c_str(), name.c_str(), name.data(), name.size(),
                    XATTR_CREATE) == 0;
  }
  p.Note("500 more attributes", ok ? "ok" : "errno " + ErrnoName(errno));
  std::string list(1 << 16, '\0');
  n = ::listxattr(f.c_str(), list.data(), list.size());
  p.Data("listxattr",
         n >= 0 ? SortedList(list.data(), n) : "errno " + ErrnoName(errno));
  char v[64];
  n = p.Ret("getxattr user.attr377",
            ::getxattr(f.c_str(), "user.attr377", v, sizeof v));
  if (n > 0) p.Data("its value", std::string(v, n));
}

void XattrKinds(Probe& p) {
  Touch(p, "f");
  ::mkdir(p.P("d").c_str(), 0755);
  ::symlink("f", p.P("l").c_str());
  ::mknod(p.P("fifo").c_str(), S_IFIFO | 0644, 0);
  if (!p.Feature("setxattr user.f on a file",
                 ::setxattr(p.P("f").c_str(), "user.f", "1", 1, 0)))
    return;
  p.Ok("setxattr user.d on a directory",
       ::setxattr(p.P("d").c_str(), "user.d", "1", 1, 0));
  p.Ok("lsetxattr user.l on a symlink",
       ::lsetxattr(p.P("l").c_str(), "user.l", "1", 1, 0));
  p.Ok("setxattr user.x through a symlink (sets the target)",
       ::setxattr(p.P("l").c_str(), "user.x", "2", 1, 0));
  char buf[256];
  long n = ::listxattr(p.P("f").c_str(), buf, sizeof buf);
  p.Data("listxattr f",
         n >= 0 ? SortedList(buf, n) : "errno " + ErrnoName(errno));
  p.Ok("setxattr user.p on a FIFO",
       ::setxattr(p.P("fifo").c_str(), "user.p", "1", 1, 0));
  p.Ok("setxattr trusted.t",
       ::setxattr(p.P("f").c_str(), "trusted.t", "t", 1, 0));
  n = ::listxattr(p.P("f").c_str(), buf, sizeof buf);
  p.Data("listxattr f",
         n >= 0 ? SortedList(buf, n) : "errno " + ErrnoName(errno));
  // Xattrs stay with the inode across rename and link.
  ::rename(p.P("f").c_str(), p.P("g").c_str());
  ::link(p.P("g").c_str(), p.P("h").c_str());
  n = p.Ret("getxattr user.f through a new link",
            ::getxattr(p.P("h").c_str(), "user.f", buf, sizeof buf));
}

void Chmod(Probe& p) {
  Touch(p, "f");
  ::mkdir(p.P("d").c_str(), 0755);
  for (mode_t m : {0000, 0777, 0644, 04755, 02755, 01755, 07777}) {
    char label[48];
    std::snprintf(label, sizeof label, "chmod f 0%o", m);
    p.Ok(label, ::chmod(p.P("f").c_str(), m));
    p.Stat("f", Probe::kType | Probe::kPerm);
  }
  p.Ok("chmod d 03777", ::chmod(p.P("d").c_str(), 03777));
  p.Stat("d", Probe::kType | Probe::kPerm);
  UniqueFd fd(::open(p.P("f").c_str(), O_RDONLY | O_CLOEXEC));
  p.Ok("fchmod 0600 on an O_RDONLY descriptor", ::fchmod(fd.get(), 0600));
  p.Stat("f", Probe::kType | Probe::kPerm);
  ::symlink("f", p.P("l").c_str());
  p.Ok("chmod through a symlink", ::chmod(p.P("l").c_str(), 0640));
  p.Stat("f", Probe::kType | Probe::kPerm);
  p.Stat("l", Probe::kType | Probe::kPerm);
  p.Ok("fchmodat AT_SYMLINK_NOFOLLOW on a symlink",
       ::fchmodat(AT_FDCWD, p.P("l").c_str(), 0600, AT_SYMLINK_NOFOLLOW));
}

void Umask(Probe& p) {
  mode_t old = ::umask(077);
  Touch(p, "f", 0666);
  ::mkdir(p.P("d").c_str(), 0777);
  ::mknod(p.P("fifo").c_str(), S_IFIFO | 0666, 0);
  ::umask(0);
  Touch(p, "g", 0666);
  ::mkdir(p.P("e").c_str(), 0777);
  ::umask(old);
  p.Stat("f");
  p.Stat("d");
  p.Stat("fifo");
  p.Stat("g");
  p.Stat("e");
}

void Chown(Probe& p) {
  Touch(p, "f");
  p.Ok("chown f 1000:1000", ::chown(p.P("f").c_str(), kUser, kUser));
  p.Stat("f");
  p.Ok("chown f -1:4321", ::chown(p.P("f").c_str(), -1, 4321));
  p.Stat("f");
  ::symlink("f", p.P("l").c_str());
  p.Ok("lchown l 1001:1001", ::lchown(p.P("l").c_str(), kOther, kOther));
  p.Stat("l");
  p.Stat("f");
  // chown clears set-id bits of executables.
  ::chmod(p.P("f").c_str(), 06755);
  p.Ok("chown f 1000:1000 (set-id executable)",
       ::chown(p.P("f").c_str(), kUser, kUser));
  p.Stat("f");
  ::chmod(p.P("f").c_str(), 06755);
  p.Ok("chown f -1:-1 (no change)", ::chown(p.P("f").c_str(), -1, -1));
  p.Stat("f");
  ::mkdir(p.P("d").c_str(), 0755);
  ::chmod(p.P("d").c_str(), 06755);
  p.Ok("chown d 1000:1000 (set-id directory)",
       ::chown(p.P("d").c_str(), kUser, kUser));
  p.Stat("d");
  // An owner may give the group away only to a group they are in.
  std::string f = p.P("f");
  ::chown(f.c_str(), kUser, kUser);
  p.Note("as uid 1000: chown f to uid 1001", ErrnoName(p.AsUser(kUser, [&] {
           return ::chown(f.c_str(), kOther, -1) ? errno : 0;
         })));
  p.Note("as uid 1000: chown f to gid 1001", ErrnoName(p.AsUser(kUser, [&] {
           return ::chown(f.c_str(), -1, kOther) ? errno : 0;
         })));
  p.Note("as uid 1000: chmod f 0600", ErrnoName(p.AsUser(kUser, [&] {
           return ::chmod(f.c_str(), 0600) ? errno : 0;
         })));
  p.Stat("f");
}

// Whether uid 1000 can reach the check's directory at all: a FUSE mount
// without allow_other, or a mountpoint under a private directory, keeps
// other users out of everything, which is no failure of the file system.
bool UserReaches(Probe& p) {
  std::string root = p.root();
  int e = p.AsUser(kUser, [&] {
    struct stat st;
    return ::stat((root + "/.").c_str(), &st) ? errno : 0;
  });
  if (e == 0) return p.Feature("uid 1000 reaches the scratch directory", 0);
  errno = EOPNOTSUPP;  // reported as a skip, with the reason in the label
  p.Feature(
      "uid 1000 reaches the scratch directory (allow_other? parent "
      "permissions?): " +
          ErrnoName(e),
      -1);
  return false;
}

void AccessRules(Probe& p) {
  if (!UserReaches(p)) return;
  ::chmod(p.root().c_str(), 0755);
  Touch(p, "private", 0600);
  Touch(p, "readable", 0644);
  Touch(p, "group", 0640);
  ::chown(p.P("group").c_str(), 0, kUser);
  Touch(p, "mine", 0600);
  ::chown(p.P("mine").c_str(), kUser, kUser);
  ::chmod(p.P("mine").c_str(), 0400);
  ::mkdir(p.P("closed").c_str(), 0700);
  Touch(p, "closed/inside", 0644);
  ::mkdir(p.P("xonly").c_str(), 0711);
  Touch(p, "xonly/inside", 0644);
  ::mkdir(p.P("open").c_str(), 0777);
  auto as = [&](const std::string& what, const std::function<int()>& fn) {
    p.Note("as uid 1000: " + what, ErrnoName(p.AsUser(kUser, fn)));
  };
  auto open_as = [&](const std::string& rel, int flags) {
    std::string path = p.P(rel);
    return [path, flags] {
      int fd = ::open(path.c_str(), flags, 0644);
      return fd >= 0 ? 0 : errno;
    };
  };
  auto sys = [](int rc) { return rc == 0 ? 0 : errno; };
  as("open private (0600 root) for reading", open_as("private", O_RDONLY));
  as("open readable (0644 root) for reading", open_as("readable", O_RDONLY));
  as("open readable (0644 root) for writing", open_as("readable", O_WRONLY));
  as("open group (0640 root:1000) for reading", open_as("group", O_RDONLY));
  as("open mine (0400 own) for writing", open_as("mine", O_WRONLY));
  as("open closed/inside (dir 0700 root)", open_as("closed/inside", O_RDONLY));
  as("open xonly/inside (dir 0711 root)", open_as("xonly/inside", O_RDONLY));
  std::string xonly = p.P("xonly"), root = p.root(), open = p.P("open");
  std::string mine = p.P("mine"), readable = p.P("readable");
  as("list xonly (dir 0711 root)", [xonly] {
    DIR* d = ::opendir(xonly.c_str());
    if (!d) return errno;
    ::closedir(d);
    return 0;
  });
  as("create in the check directory (0755 root)",
     open_as("new", O_CREAT | O_WRONLY));
  as("create in open (0777)", open_as("open/new", O_CREAT | O_WRONLY));
  p.Stat("open/new");
  as("mkdir in the check directory (0755 root)",
     [root, sys] { return sys(::mkdir((root + "/nd").c_str(), 0755)); });
  as("unlink readable in the check directory",
     [readable, sys] { return sys(::unlink(readable.c_str())); });
  as("access(readable, R_OK)",
     [readable, sys] { return sys(::access(readable.c_str(), R_OK)); });
  as("access(readable, W_OK)",
     [readable, sys] { return sys(::access(readable.c_str(), W_OK)); });
  as("access(mine, W_OK) (0400 own)",
     [mine, sys] { return sys(::access(mine.c_str(), W_OK)); });
  as("truncate readable",
     [readable, sys] { return sys(::truncate(readable.c_str(), 0)); });
  as("utimensat readable, NOW (not the owner)", [readable, sys] {
    return sys(::utimensat(AT_FDCWD, readable.c_str(), nullptr, 0));
  });
  as("setxattr user.x on readable (not writable)", [readable, sys] {
    return sys(::setxattr(readable.c_str(), "user.x", "1", 1, 0));
  });
  as("chmod readable (not the owner)",
     [readable, sys] { return sys(::chmod(readable.c_str(), 0777)); });
}

void StickyDirectory(Probe& p) {
  if (!UserReaches(p)) return;
  ::chmod(p.root().c_str(), 0755);
  ::mkdir(p.P("tmp").c_str(), 01777);
  ::chmod(p.P("tmp").c_str(), 01777);
  Touch(p, "tmp/theirs", 0666);
  Touch(p, "tmp/mine", 0666);
  ::chown(p.P("tmp/theirs").c_str(), kOther, kOther);
  ::chown(p.P("tmp/mine").c_str(), kUser, kUser);
  std::string theirs = p.P("tmp/theirs"), mine = p.P("tmp/mine"),
              moved = p.P("tmp/moved");
  auto as = [&](const std::string& what, const std::function<int()>& fn) {
    p.Note("as uid 1000: " + what, ErrnoName(p.AsUser(kUser, fn)));
  };
  as("unlink another user's file in a sticky directory",
     [&] { return ::unlink(theirs.c_str()) ? errno : 0; });
  as("rename another user's file in a sticky directory",
     [&] { return ::rename(theirs.c_str(), moved.c_str()) ? errno : 0; });
  as("rename one's own file in a sticky directory",
     [&] { return ::rename(mine.c_str(), moved.c_str()) ? errno : 0; });
  as("unlink one's own file in a sticky directory",
     [&] { return ::unlink(moved.c_str()) ? errno : 0; });
  p.Data("listing of tmp", Join(ListDir(p.P("tmp"))));
  ::chmod(p.P("tmp").c_str(), 0777);
  as("unlink another user's file without the sticky bit",
     [&] { return ::unlink(theirs.c_str()) ? errno : 0; });
}

void SetgidDirectory(Probe& p) {
  ::mkdir(p.P("g").c_str(), 0775);
  p.Ok("chown g 0:4321", ::chown(p.P("g").c_str(), 0, 4321));
  p.Ok("chmod g 02775", ::chmod(p.P("g").c_str(), 02775));
  Touch(p, "g/file");
  p.Stat("g/file");
  ::mkdir(p.P("g/sub").c_str(), 0755);
  p.Stat("g/sub");
  ::symlink("x", p.P("g/link").c_str());
  p.Stat("g/link");
  ::mknod(p.P("g/fifo").c_str(), S_IFIFO | 0600, 0);
  p.Stat("g/fifo");
  // A file made executable with S_ISGID by a creator outside the group
  // loses S_ISGID (as root it is kept).
  Touch(p, "g/sgid", 02755);
  p.Stat("g/sgid");
}

void SetidClearedOnWrite(Probe& p) {
  if (!UserReaches(p)) return;
  ::chmod(p.root().c_str(), 0755);
  Touch(p, "suid", 0644);
  ::chown(p.P("suid").c_str(), kUser, kUser);
  ::chmod(p.P("suid").c_str(), 06775);
  Touch(p, "sgid_noexec", 0644);
  ::chown(p.P("sgid_noexec").c_str(), kUser, kUser);
  ::chmod(p.P("sgid_noexec").c_str(), 02664);
  Touch(p, "trunc", 0644);
  ::chown(p.P("trunc").c_str(), kUser, kUser);
  ::chmod(p.P("trunc").c_str(), 04755);
  Touch(p, "rootwrite", 0644);
  ::chmod(p.P("rootwrite").c_str(), 06777);
  std::string suid = p.P("suid"), sgid = p.P("sgid_noexec"),
              trunc = p.P("trunc");
  auto write_as_user = [&](const std::string& path) {
    return p.AsUser(kUser, [path] {
      int fd = ::open(path.c_str(), O_WRONLY);
      if (fd < 0) return errno;
      int rc = ::write(fd, "x", 1) == 1 ? 0 : errno;
      ::close(fd);
      return rc;
    });
  };
  p.Note("as uid 1000: write to its own 06775 file",
         ErrnoName(write_as_user(suid)));
  p.Stat("suid");
  p.Note("as uid 1000: write to its own 02664 file",
         ErrnoName(write_as_user(sgid)));
  p.Stat("sgid_noexec");
  p.Note("as uid 1000: truncate its own 04755 file",
         ErrnoName(p.AsUser(kUser, [trunc] {
           return ::truncate(trunc.c_str(), 0) ? errno : 0;
         })));
  p.Stat("trunc");
  UniqueFd fd(::open(p.P("rootwrite").c_str(), O_WRONLY | O_CLOEXEC));
  p.Ok("root writes to a 06777 file", ::write(fd.get(), "x", 1));
  p.Stat("rootwrite");
}

// --- timestamps -----------------------------------------------------------

void TimesOfCreate(Probe& p) {
  ::mkdir(p.P("d").c_str(), 0755);
  Probe::Tick();
  Times dir0 = TimesOf(p, "d");
  Touch(p, "d/f");
  Times f = TimesOf(p, "d/f");
  p.Note("create: the directory's times", TimeChanges(dir0, TimesOf(p, "d")));
  auto eq = [](const timespec& a, const timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
  };
  p.Note("a new file: atime = mtime = ctime",
         eq(f.atime, f.mtime) && eq(f.mtime, f.ctime) ? "yes" : "no");
  Probe::Tick();
  dir0 = TimesOf(p, "d");
  ::mkdir(p.P("d/sub").c_str(), 0755);
  p.Note("mkdir: the parent's times", TimeChanges(dir0, TimesOf(p, "d")));
  Probe::Tick();
  dir0 = TimesOf(p, "d");
  ::symlink("f", p.P("d/l").c_str());
  p.Note("symlink: the parent's times", TimeChanges(dir0, TimesOf(p, "d")));
  Probe::Tick();
  dir0 = TimesOf(p, "d");
  Times f0 = TimesOf(p, "d/f");
  ::unlink(p.P("d/l").c_str());
  p.Note("unlink: the parent's times", TimeChanges(dir0, TimesOf(p, "d")));
  Probe::Tick();
  dir0 = TimesOf(p, "d");
  UniqueFd fd(::open(p.P("d/f").c_str(), O_RDONLY | O_CLOEXEC));
  p.Note("open O_RDONLY of an existing file: its times",
         TimeChanges(f0, TimesOf(p, "d/f")));
  p.Note("open O_RDONLY of an existing file: the directory's times",
         TimeChanges(dir0, TimesOf(p, "d")));
  Probe::Tick();
  dir0 = TimesOf(p, "d");
  Touch(p, "d/f");
  p.Note("open O_CREAT of an existing file: the directory's times",
         TimeChanges(dir0, TimesOf(p, "d")));
}

void TimesOfData(Probe& p) {
  UniqueFd fd = p.Open("open f O_CREAT|O_RDWR", "f", O_CREAT | O_RDWR);
  if (!fd) return;
  WriteAll(fd.get(), "0123456789", 0);
  auto step = [&](const std::string& what, const std::function<void()>& op) {
    Probe::Tick();
    Times t0 = TimesOf(p, "f");
    op();
    p.Note(what, TimeChanges(t0, TimesOf(p, "f")));
  };
  step("pwrite", [&] { WriteAll(fd.get(), "abc", 2); });
  step("pwrite of 0 bytes", [&] { (void)::pwrite(fd.get(), "", 0, 0); });
  step("ftruncate to a new size", [&] { (void)::ftruncate(fd.get(), 5); });
  step("ftruncate to the same size", [&] { (void)::ftruncate(fd.get(), 5); });
  step("truncate to a new size",
       [&] { (void)::truncate(p.P("f").c_str(), 7); });
  step("open O_TRUNC of a non-empty file", [&] {
    UniqueFd t(::open(p.P("f").c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  });
  step("open O_TRUNC of an empty file", [&] {
    UniqueFd t(::open(p.P("f").c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  });
  WriteAll(fd.get(), Pattern(20000, 1), 0);
  step("fallocate PUNCH_HOLE", [&] {
    (void)::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      4096, 4096);
  });
  step("fsync", [&] { (void)::fsync(fd.get()); });
  step("pread", [&] { (void)ReadAt(fd.get(), 100, 0); });
}

void TimesOfMetadata(Probe& p) {
  Touch(p, "f");
  ::mkdir(p.P("d1").c_str(), 0755);
  ::mkdir(p.P("d2").c_str(), 0755);
  auto step = [&](const std::string& what, const std::vector<std::string>& rels,
                  const std::function<void()>& op) {
    Probe::Tick();
    std::vector<Times> before;
    for (auto& r : rels) before.push_back(TimesOf(p, r));
    op();
    for (size_t i = 0; i < rels.size(); ++i)
      p.Note(what + ": " + (rels[i].empty() ? "." : rels[i]),
             TimeChanges(before[i], TimesOf(p, rels[i])));
  };
  step("chmod", {"f"}, [&] { ::chmod(p.P("f").c_str(), 0600); });
  step("chmod to the same mode", {"f"},
       [&] { ::chmod(p.P("f").c_str(), 0600); });
  step("setxattr", {"f"},
       [&] { ::setxattr(p.P("f").c_str(), "user.t", "1", 1, 0); });
  step("removexattr", {"f"},
       [&] { ::removexattr(p.P("f").c_str(), "user.t"); });
  step("link f d1/g", {"f", "d1"},
       [&] { ::link(p.P("f").c_str(), p.P("d1/g").c_str()); });
  step("unlink d1/g", {"f", "d1"}, [&] { ::unlink(p.P("d1/g").c_str()); });
  step("rename f d1/f", {"d1", ""},
       [&] { ::rename(p.P("f").c_str(), p.P("d1/f").c_str()); });
  step("the renamed file", {"d1/f"},
       [&] { ::rename(p.P("d1/f").c_str(), p.P("d2/f").c_str()); });
  step("rename d2 d1/d2 (a directory)", {"d1", "d2"},
       [&] { ::rename(p.P("d2").c_str(), p.P("d1/d2").c_str()); });
  if (::geteuid() == 0) {
    step("chown", {"d1/d2/f"},
         [&] { ::chown(p.P("d1/d2/f").c_str(), kUser, -1); });
  }
}

void Utimens(Probe& p) {
  Touch(p, "f");
  timespec ts[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
  if (!p.Ok("utimensat f to explicit times",
            ::utimensat(AT_FDCWD, p.P("f").c_str(), ts, 0)))
    return;
  struct stat st = p.Lstat("f");
  auto str = [](const timespec& t) {
    return std::to_string(t.tv_sec) + "." + std::to_string(t.tv_nsec);
  };
  p.Note("atime", str(st.st_atim));
  p.Note("mtime", str(st.st_mtim));
  Probe::Tick();
  Times t0 = TimesOf(p, "f");
  timespec omit_now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  p.Ok("utimensat OMIT NOW",
       ::utimensat(AT_FDCWD, p.P("f").c_str(), omit_now, 0));
  p.Note("its effect", TimeChanges(t0, TimesOf(p, "f"), true));
  Probe::Tick();
  t0 = TimesOf(p, "f");
  timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
  p.Ok("utimensat OMIT OMIT", ::utimensat(AT_FDCWD, p.P("f").c_str(), omit, 0));
  p.Note("its effect", TimeChanges(t0, TimesOf(p, "f"), true));
  Probe::Tick();
  t0 = TimesOf(p, "f");
  p.Ok("utimensat NULL (now)",
       ::utimensat(AT_FDCWD, p.P("f").c_str(), nullptr, 0));
  Times t1 = TimesOf(p, "f");
  p.Note("its effect", TimeChanges(t0, t1, true));
  p.Note(
      "atime = mtime after NULL",
      t1.atime.tv_sec == t1.mtime.tv_sec && t1.atime.tv_nsec == t1.mtime.tv_nsec
          ? "yes"
          : "no");
  UniqueFd fd(::open(p.P("f").c_str(), O_RDONLY | O_CLOEXEC));
  timespec ts2[2] = {{1500000000, 1}, {1600000000, 999999999}};
  p.Ok("futimens", ::futimens(fd.get(), ts2));
  st = p.Lstat("f");
  p.Note("atime", str(st.st_atim));
  p.Note("mtime", str(st.st_mtim));
  timespec old[2] = {{0, 0}, {-1, 0}};
  p.Ok("utimensat to 1970 and before",
       ::utimensat(AT_FDCWD, p.P("f").c_str(), old, 0));
  st = p.Lstat("f");
  p.Note("atime", str(st.st_atim));
  p.Note("mtime", str(st.st_mtim));
  timespec bad[2] = {{0, 1000000000}, {0, 0}};
  p.Ok("utimensat with tv_nsec 1e9",
       ::utimensat(AT_FDCWD, p.P("f").c_str(), bad, 0));
  ::symlink("f", p.P("l").c_str());
  p.Ok("utimensat AT_SYMLINK_NOFOLLOW on a symlink",
       ::utimensat(AT_FDCWD, p.P("l").c_str(), ts, AT_SYMLINK_NOFOLLOW));
  st = p.Lstat("l");
  p.Note("the symlink's mtime", str(st.st_mtim));
  ::mkdir(p.P("d").c_str(), 0755);
  p.Ok("utimensat a directory", ::utimensat(AT_FDCWD, p.P("d").c_str(), ts, 0));
  st = p.Lstat("d");
  p.Note("the directory's mtime", str(st.st_mtim));
}

}  // namespace

void AddAttrChecks(std::vector<Check>* out) {
  out->push_back({"xattr.basic",
                  "set, get, list, remove; XATTR_CREATE/REPLACE, ERANGE, "
                  "ENODATA, name limits",
                  false, XattrBasic});
  out->push_back({"xattr.large",
                  "a 64 KiB value, E2BIG beyond, 500 attributes on one file",
                  false, XattrLarge});
  out->push_back({"xattr.kinds",
                  "xattrs on directories, symlinks (user.* refused), FIFOs, "
                  "trusted.*, across rename",
                  false, XattrKinds});
  out->push_back({"perm.chmod",
                  "chmod with set-id and sticky bits, fchmod, through symlinks",
                  false, Chmod});
  out->push_back({"perm.umask",
                  "the umask applied to files, directories, FIFOs", false,
                  Umask});
  out->push_back(
      {"perm.chown",
       "chown, lchown, set-id bits cleared by chown, what an owner may change",
       true, Chown});
  out->push_back(
      {"perm.access",
       "as uid 1000: permission bits of files and directories enforced", true,
       AccessRules});
  out->push_back({"perm.sticky",
                  "as uid 1000: the sticky bit restricts unlink and rename",
                  true, StickyDirectory});
  out->push_back({"perm.setgid_dir",
                  "a set-group-ID directory passes its group (and S_ISGID to "
                  "subdirectories)",
                  true, SetgidDirectory});
  out->push_back(
      {"perm.setid_cleared",
       "writes and truncates by a non-root owner clear S_ISUID and S_ISGID",
       true, SetidClearedOnWrite});
  out->push_back(
      {"times.create",
       "create, mkdir, symlink, unlink change the parent's mtime and ctime",
       false, TimesOfCreate});
  out->push_back({"times.data",
                  "write, truncate, O_TRUNC, punch change mtime and ctime; "
                  "read and fsync do not",
                  false, TimesOfData});
  out->push_back({"times.metadata",
                  "chmod, xattrs, link, unlink, rename change ctime (and the "
                  "parents' mtime)",
                  false, TimesOfMetadata});
  out->push_back({"times.utimens",
                  "explicit times to the nanosecond, UTIME_NOW/OMIT, futimens, "
                  "symlinks, EINVAL",
                  false, Utimens});
}

}  // namespace zest::conformance
