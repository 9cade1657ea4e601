// Checks of names that move and multiply: rename (plain, over a file,
// NOREPLACE, EXCHANGE, directories, onto another link of the same inode,
// open files), hard links, open-but-unlinked files, symbolic links,
// special files and O_TMPFILE.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>

#include "conformance/check.h"

namespace zest::conformance {
namespace {

int Renameat2(const std::string& a, const std::string& b, unsigned flags) {
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, a.c_str(),
                                    AT_FDCWD, b.c_str(), flags));
}

void Make(Probe& p, const std::string& rel, const std::string& content) {
  UniqueFd f(
      ::open(p.P(rel).c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644));
  if (f) WriteAll(f.get(), content, 0);
}

std::string Content(Probe& p, const std::string& rel) {
  UniqueFd f(::open(p.P(rel).c_str(), O_RDONLY | O_CLOEXEC));
  return f ? ReadAt(f.get(), 100, 0) : "<errno " + ErrnoName(errno) + ">";
}

// Whether two paths name one inode.
std::string Same(Probe& p, const std::string& a, const std::string& b) {
  struct stat sa = p.Lstat(a), sb = p.Lstat(b);
  if (!sa.st_mode || !sb.st_mode) return "one of them is missing";
  return sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev ? "same inode"
                                                          : "different inodes";
}

void RenameFile(Probe& p) {
  Make(p, "a", "A");
  ::mkdir(p.P("d1").c_str(), 0755);
  ino_t ino = p.Lstat("a").st_ino;
  if (!p.Ok("rename a d1/a2", ::rename(p.P("a").c_str(), p.P("d1/a2").c_str())))
    return;
  p.Note("d1/a2 is the inode a was",
         p.Lstat("d1/a2").st_ino == ino ? "yes" : "no");
  p.Data("d1/a2", Content(p, "d1/a2"));
  p.Stat("a");
  p.Data("listing of .", Join(ListDir(p.root())));
  p.Data("listing of d1", Join(ListDir(p.P("d1"))));
  p.Ok("rename d1/a2 to itself",
       ::rename(p.P("d1/a2").c_str(), p.P("d1/a2").c_str()));
  p.Data("d1/a2 still", Content(p, "d1/a2"));
  p.Ok("rename a missing name",
       ::rename(p.P("nope").c_str(), p.P("x").c_str()));
  p.Ok("rename into a missing directory",
       ::rename(p.P("d1/a2").c_str(), p.P("nodir/x").c_str()));
}

void RenameOverwrite(Probe& p) {
  Make(p, "a", "A");
  Make(p, "b", "B");
  UniqueFd old_b(::open(p.P("b").c_str(), O_RDONLY | O_CLOEXEC));
  if (!p.Ok("rename a b (b exists)",
            ::rename(p.P("a").c_str(), p.P("b").c_str())))
    return;
  p.Data("b", Content(p, "b"));
  p.Stat("a");
  p.Data("the replaced b, through a descriptor opened before",
         ReadAt(old_b.get(), 100, 0));
  p.Fstat("fstat of the replaced b", old_b.get());
  // Over a hard link of another file: that file keeps its other name.
  Make(p, "c", "C");
  ::link(p.P("c").c_str(), p.P("c2").c_str());
  p.Ok("rename b c (c has two links)",
       ::rename(p.P("b").c_str(), p.P("c").c_str()));
  p.Stat("c2");
  p.Data("c", Content(p, "c"));
  // An empty directory over an empty directory.
  ::mkdir(p.P("d1").c_str(), 0755);
  ::mkdir(p.P("d2").c_str(), 0700);
  p.Ok("rename d1 d2 (empty directory over empty directory)",
       ::rename(p.P("d1").c_str(), p.P("d2").c_str()));
  p.Stat("d2");
  p.Stat("");
}

void RenameNoreplace(Probe& p) {
  Make(p, "a", "A");
  Make(p, "c", "C");
  p.Ok("RENAME_NOREPLACE c a (a exists)",
       Renameat2(p.P("c"), p.P("a"), RENAME_NOREPLACE));
  p.Data("a", Content(p, "a"));
  p.Ok("RENAME_NOREPLACE c d", Renameat2(p.P("c"), p.P("d"), RENAME_NOREPLACE));
  p.Data("d", Content(p, "d"));
  p.Stat("c");
  p.Ok("RENAME_NOREPLACE|RENAME_EXCHANGE (invalid)",
       Renameat2(p.P("a"), p.P("d"), RENAME_NOREPLACE | RENAME_EXCHANGE));
}

void RenameExchange(Probe& p) {
  ::mkdir(p.P("d1").c_str(), 0755);
  ::mkdir(p.P("d2").c_str(), 0755);
  Make(p, "d2/c", "C");
  ::mkdir(p.P("d1/sub").c_str(), 0700);
  ::mkdir(p.P("d1/sub/inner").c_str(), 0700);
  if (!p.Feature("RENAME_EXCHANGE",
                 Renameat2(p.P("d2/c"), p.P("d1/sub"), RENAME_EXCHANGE)))
    return;
  p.Stat("d2/c");
  p.Stat("d1/sub");
  p.Data("d1/sub", Content(p, "d1/sub"));
  p.Stat("d1");
  p.Stat("d2");
  p.Note("d2/c/.. is d2", Same(p, "d2/c/..", "d2"));
  p.Stat("d2/c/inner");
  p.Ok("RENAME_EXCHANGE with a missing name",
       Renameat2(p.P("d2/c"), p.P("d2/nonexistent"), RENAME_EXCHANGE));
  Make(p, "x", "X");
  Make(p, "y", "Y");
  p.Ok("RENAME_EXCHANGE x y", Renameat2(p.P("x"), p.P("y"), RENAME_EXCHANGE));
  p.Data("x", Content(p, "x"));
  p.Data("y", Content(p, "y"));
  p.Ok("RENAME_EXCHANGE d2 d2/c (a directory and its own child)",
       Renameat2(p.P("d2"), p.P("d2/c"), RENAME_EXCHANGE));
}

void RenameDirectories(Probe& p) {
  ::mkdir(p.P("d1").c_str(), 0755);
  ::mkdir(p.P("d2").c_str(), 0755);
  ::mkdir(p.P("d2/c").c_str(), 0755);
  Make(p, "d1/file", "F");
  p.Ok("rename d2 d2/c/x (into its own subdirectory)",
       ::rename(p.P("d2").c_str(), p.P("d2/c/x").c_str()));
  p.Ok("rename d2 d2 (onto itself)",
       ::rename(p.P("d2").c_str(), p.P("d2").c_str()));
  ::mkdir(p.P("d3").c_str(), 0755);
  p.Ok("rename d3 d2 (over a non-empty directory)",
       ::rename(p.P("d3").c_str(), p.P("d2").c_str()));
  p.Ok("rename d3 d1/file (a directory over a file)",
       ::rename(p.P("d3").c_str(), p.P("d1/file").c_str()));
  p.Ok("rename d1/file d3 (a file over a directory)",
       ::rename(p.P("d1/file").c_str(), p.P("d3").c_str()));
  p.Ok("rename d3 d2/c/d3 (to another parent)",
       ::rename(p.P("d3").c_str(), p.P("d2/c/d3").c_str()));
  p.Stat("d2/c");
  p.Stat("");
  p.Note("d2/c/d3/.. is d2/c", Same(p, "d2/c/d3/..", "d2/c"));
  p.Ok("rename d2/c/d3 d1/moved (up two levels, across)",
       ::rename(p.P("d2/c/d3").c_str(), p.P("d1/moved").c_str()));
  p.Stat("d1");
  p.Stat("d2/c");
  p.Note("d1/moved/.. is d1", Same(p, "d1/moved/..", "d1"));
  p.Ok("rename d1 d1/moved/x (into its grandchild)",
       ::rename(p.P("d1").c_str(), p.P("d1/moved/x").c_str()));
}

void RenameSameInode(Probe& p) {
  Make(p, "a", "A");
  ::link(p.P("a").c_str(), p.P("b").c_str());
  // rename(2): two links of one file: nothing happens, success.
  p.Ok("rename a b (two names of one file)",
       ::rename(p.P("a").c_str(), p.P("b").c_str()));
  p.Stat("a");
  p.Stat("b");
  p.Data("listing", Join(ListDir(p.root())));
}

void RenameOpenFile(Probe& p) {
  UniqueFd fd = p.Open("open a O_CREAT|O_RDWR", "a", O_CREAT | O_RDWR);
  if (!fd) return;
  WriteAll(fd.get(), "before", 0);
  ::mkdir(p.P("d").c_str(), 0755);
  p.Ok("rename a d/b while open",
       ::rename(p.P("a").c_str(), p.P("d/b").c_str()));
  p.Ok("write through the descriptor",
       WriteAll(fd.get(), " after", 6) ? 0 : -1);
  p.Data("d/b", Content(p, "d/b"));
  p.Fstat("fstat the descriptor", fd.get());
  p.Ok("fchmod 0600 through the descriptor", ::fchmod(fd.get(), 0600));
  p.Stat("d/b");
}

void HardLinks(Probe& p) {
  UniqueFd f = p.Open("open x O_CREAT|O_RDWR", "x", O_CREAT | O_RDWR);
  if (!f) return;
  WriteAll(f.get(), "hello", 0);
  if (!p.Ok("link x y", ::link(p.P("x").c_str(), p.P("y").c_str()))) return;
  p.Note("x and y", Same(p, "x", "y"));
  p.Stat("x");
  p.Ok("link x y again", ::link(p.P("x").c_str(), p.P("y").c_str()));
  ::mkdir(p.P("d").c_str(), 0755);
  p.Ok("link d/z x (into a subdirectory)",
       ::link(p.P("x").c_str(), p.P("d/z").c_str()));
  p.Stat("y");
  p.Ok("link d d2 (a directory)", ::link(p.P("d").c_str(), p.P("d2").c_str()));
  WriteAll(f.get(), " world", 5);
  p.Data("d/z after a write through x", Content(p, "d/z"));
  p.Ok("unlink x", ::unlink(p.P("x").c_str()));
  p.Stat("y");
  p.Ok("unlink d/z", ::unlink(p.P("d/z").c_str()));
  p.Stat("y");
  p.Fstat("fstat the descriptor", f.get());
  // Symlinks and special files can be linked too.
  ::symlink("y", p.P("sl").c_str());
  p.Ok("link sl sl2 (a symlink: the link itself)",
       ::linkat(AT_FDCWD, p.P("sl").c_str(), AT_FDCWD, p.P("sl2").c_str(), 0));
  p.Stat("sl2");
  p.Ok("linkat sl sl3 AT_SYMLINK_FOLLOW (the target)",
       ::linkat(AT_FDCWD, p.P("sl").c_str(), AT_FDCWD, p.P("sl3").c_str(),
                AT_SYMLINK_FOLLOW));
  p.Stat("sl3");
  ::mknod(p.P("fifo").c_str(), S_IFIFO | 0600, 0);
  p.Ok("link fifo fifo2", ::link(p.P("fifo").c_str(), p.P("fifo2").c_str()));
  p.Stat("fifo");
}

void UnlinkedOpen(Probe& p) {
  UniqueFd f = p.Open("open x O_CREAT|O_RDWR", "x", O_CREAT | O_RDWR);
  if (!f) return;
  WriteAll(f.get(), "hello", 0);
  p.Ok("unlink x while open", ::unlink(p.P("x").c_str()));
  p.Fstat("fstat", f.get());
  p.Ok("write after unlink", WriteAll(f.get(), " world", 5) ? 0 : -1);
  p.Data("read after unlink", ReadAt(f.get(), 100, 0));
  p.Ok("ftruncate after unlink", ::ftruncate(f.get(), 3));
  p.Fstat("fstat after ftruncate", f.get());
  p.Ok("fchmod after unlink", ::fchmod(f.get(), 0600));
  p.Fstat("fstat after fchmod", f.get());
  p.Data("listing", Join(ListDir(p.root())));
  // A new file under the old name is another file.
  UniqueFd g = p.Open("create x again", "x", O_CREAT | O_RDWR);
  p.Data("the new x", ReadAt(g.get(), 100, 0));
  p.Data("the old file", ReadAt(f.get(), 100, 0));
  // Through /proc: a descriptor's file linked back into the tree.
  std::string proc = "/proc/self/fd/" + std::to_string(f.get());
  p.Ok("linkat /proc/self/fd/N back (nlink 0: refused)",
       ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, p.P("back").c_str(),
                AT_SYMLINK_FOLLOW));
}

void Symlinks(Probe& p) {
  if (!p.Ok("symlink target/file l",
            ::symlink("target/file", p.P("l").c_str())))
    return;
  p.Stat("l");
  char buf[64] = {};
  p.Ret("readlink l", ::readlink(p.P("l").c_str(), buf, sizeof buf));
  p.Data("its target", buf);
  p.Ret("readlink l into 4 bytes", ::readlink(p.P("l").c_str(), buf, 4));
  struct stat st;
  p.Ok("stat l (dangling)", ::stat(p.P("l").c_str(), &st));
  Make(p, "real", "data");
  ::symlink("real", p.P("l2").c_str());
  p.Data("read through l2", Content(p, "l2"));
  ::mkdir(p.P("dir").c_str(), 0755);
  ::symlink("dir", p.P("ldir").c_str());
  Make(p, "ldir/inside", "in");
  p.Data("dir/inside, made through the link", Content(p, "dir/inside"));
  ::symlink("../real", p.P("dir/up").c_str());
  p.Data("read through dir/up -> ../real", Content(p, "dir/up"));
  ::symlink("loop2", p.P("loop1").c_str());
  ::symlink("loop1", p.P("loop2").c_str());
  p.Ok("open loop1",
       UniqueFd(::open(p.P("loop1").c_str(), O_RDONLY | O_CLOEXEC)).get());
  p.Ok("readlink real (not a link)",
       ::readlink(p.P("real").c_str(), buf, sizeof buf));
  p.Ok("symlink with an empty target", ::symlink("", p.P("empty").c_str()));
  p.Ok("unlink l2 (the link, not the target)", ::unlink(p.P("l2").c_str()));
  p.Data("real", Content(p, "real"));
  p.Ok("rmdir ldir (a link to a directory)", ::rmdir(p.P("ldir").c_str()));
  p.Ok("chmod through ldir", ::chmod(p.P("ldir").c_str(), 0700));
  p.Stat("dir");
  p.Stat("ldir");
}

void LongSymlink(Probe& p) {
  for (size_t len : {60, 61, 200, 1000, 4000, 4095}) {
    std::string t(len, 'z');
    std::string name = "l" + std::to_string(len);
    if (!p.Ok("symlink with a " + std::to_string(len) + "-byte target",
              ::symlink(t.c_str(), p.P(name).c_str())))
      continue;
    std::string back(5000, '\0');
    long n = ::readlink(p.P(name).c_str(), back.data(), back.size());
    p.Ret("readlink " + name, n);
    if (n > 0)
      p.Note("target of " + name + " intact",
             back.substr(0, n) == t ? "yes" : "no");
    p.Stat(name);
  }
  p.Ok("symlink with a 4096-byte target",
       ::symlink(std::string(4096, 'z').c_str(), p.P("l4096").c_str()));
}

void SpecialFiles(Probe& p) {
  p.Ok("mknod fifo", ::mknod(p.P("fifo").c_str(), S_IFIFO | 0644, 0));
  p.Stat("fifo", Probe::kDefault | Probe::kRdev);
  p.Ok("mknod sock", ::mknod(p.P("sock").c_str(), S_IFSOCK | 0755, 0));
  p.Stat("sock", Probe::kDefault | Probe::kRdev);
  p.Ok("mknod chr 1:3",
       ::mknod(p.P("chr").c_str(), S_IFCHR | 0600, makedev(1, 3)));
  p.Stat("chr", Probe::kDefault | Probe::kRdev);
  p.Ok("mknod blk 7:42",
       ::mknod(p.P("blk").c_str(), S_IFBLK | 0600, makedev(7, 42)));
  p.Stat("blk", Probe::kDefault | Probe::kRdev);
  p.Ok("mknod reg", ::mknod(p.P("reg").c_str(), S_IFREG | 0640, 0));
  p.Stat("reg", Probe::kDefault | Probe::kRdev);
  p.Ok("mkfifo", ::mkfifo(p.P("fifo2").c_str(), 0600));
  // A FIFO opened through the file system is a pipe.
  UniqueFd r(::open(p.P("fifo").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  UniqueFd w(::open(p.P("fifo").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  p.Ok("open both ends of fifo", r && w ? 0 : -1);
  if (r && w) {
    p.Ret("write 5 bytes into fifo", ::write(w.get(), "pipe!", 5));
    char b[8] = {};
    p.Ret("read them", ::read(r.get(), b, sizeof b));
  }
  p.Ok("truncate fifo", ::truncate(p.P("fifo").c_str(), 0));
}

void Tmpfile(Probe& p) {
  int raw = ::open(p.root().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);
  UniqueFd f(raw);
  if (!p.Feature("O_TMPFILE", raw)) return;
  WriteAll(f.get(), "anonymous", 0);
  p.Fstat("fstat", f.get());
  p.Data("listing", Join(ListDir(p.root())));
  std::string proc = "/proc/self/fd/" + std::to_string(f.get());
  p.Ok("linkat /proc/self/fd/N named AT_SYMLINK_FOLLOW",
       ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, p.P("named").c_str(),
                AT_SYMLINK_FOLLOW));
  p.Stat("named");
  p.Data("named", Content(p, "named"));
  int raw2 =
      ::open(p.root().c_str(), O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
  UniqueFd g(raw2);
  p.Ok("O_TMPFILE|O_EXCL", raw2);
  std::string proc2 = "/proc/self/fd/" + std::to_string(g.get());
  p.Ok("linkat of an O_EXCL tmpfile (refused)",
       ::linkat(AT_FDCWD, proc2.c_str(), AT_FDCWD, p.P("named2").c_str(),
                AT_SYMLINK_FOLLOW));
  p.Ok(
      "O_TMPFILE O_RDONLY (refused)",
      UniqueFd(::open(p.root().c_str(), O_TMPFILE | O_RDONLY | O_CLOEXEC, 0600))
          .get());
}

}  // namespace

void AddLinkChecks(std::vector<Check>* out) {
  out->push_back({"rename.file",
                  "rename a file to another directory, onto itself, errors",
                  false, RenameFile});
  out->push_back({"rename.overwrite",
                  "rename over a file, over a file with two links, directory "
                  "over empty directory",
                  false, RenameOverwrite});
  out->push_back(
      {"rename.noreplace", "RENAME_NOREPLACE", false, RenameNoreplace});
  out->push_back(
      {"rename.exchange",
       "RENAME_EXCHANGE of a file and a directory across directories", false,
       RenameExchange});
  out->push_back({"rename.directories",
                  "directory renames: into itself, over non-empty, type "
                  "mismatches, \"..\" follows",
                  false, RenameDirectories});
  out->push_back({"rename.same_inode",
                  "rename between two links of one file does nothing", false,
                  RenameSameInode});
  out->push_back({"rename.open_file",
                  "a descriptor keeps working across a rename", false,
                  RenameOpenFile});
  out->push_back({"link.hard",
                  "hard links: identity, link counts, EEXIST, EPERM on "
                  "directories, symlinks, FIFOs",
                  false, HardLinks});
  out->push_back(
      {"link.unlinked_open",
       "an open file that lost its last name is still readable and writable",
       false, UnlinkedOpen});
  out->push_back(
      {"symlink.basic",
       "symlinks: readlink, dangling, relative, loops (ELOOP), EINVAL, ENOENT",
       false, Symlinks});
  out->push_back({"symlink.long",
                  "targets of 60 to 4095 bytes, ENAMETOOLONG at 4096", false,
                  LongSymlink});
  out->push_back(
      {"mknod.special",
       "FIFOs, sockets, device nodes (rdev), mknod S_IFREG, FIFO I/O", false,
       SpecialFiles});
  out->push_back({"file.tmpfile", "O_TMPFILE, linked in through /proc, O_EXCL",
                  false, Tmpfile});
}

}  // namespace zest::conformance
