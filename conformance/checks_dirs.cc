// Checks of directories: mkdir/rmdir and link counts, readdir (large
// directories, d_type, unlinking while iterating, telldir/seekdir), "."
// and "..", names (long, odd bytes), open flags and error paths.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>

#include "conformance/check.h"

namespace zest::conformance {
namespace {

void MkdirRmdir(Probe& p) {
  if (!p.Ok("mkdir d 0750", ::mkdir(p.P("d").c_str(), 0750))) return;
  nlink_t root_nlink = p.Lstat("").st_nlink;
  p.Stat("d");
  p.Ok("mkdir d/sub", ::mkdir(p.P("d/sub").c_str(), 0755));
  p.Stat("d");
  p.Ok("mkdir d again", ::mkdir(p.P("d").c_str(), 0755));
  p.Ok("rmdir d (not empty)", ::rmdir(p.P("d").c_str()));
  p.Ok("rmdir d/sub", ::rmdir(p.P("d/sub").c_str()));
  p.Stat("d");
  p.Ok("rmdir d", ::rmdir(p.P("d").c_str()));
  p.Note("parent nlink after rmdir d",
         std::to_string(static_cast<long>(p.Lstat("").st_nlink) -
                        static_cast<long>(root_nlink)) +
             " relative to before");
  p.Stat("d");
  p.Ok("mkdir with mode 01777", ::mkdir(p.P("sticky").c_str(), 01777));
  p.Stat("sticky");
  p.Ok("mkdir with mode 0", ::mkdir(p.P("zero").c_str(), 0));
  p.Stat("zero");
  // A file removed, then the directory is empty again.
  ::mkdir(p.P("e").c_str(), 0755);
  ::close(::open(p.P("e/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  p.Ok("rmdir e with a file", ::rmdir(p.P("e").c_str()));
  p.Ok("unlink e/f", ::unlink(p.P("e/f").c_str()));
  p.Ok("rmdir e once empty", ::rmdir(p.P("e").c_str()));
}

// Reads a whole directory stream: names other than . and .., in order.
std::vector<std::string> ReadAll(DIR* d) {
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  return names;
}

std::string EntryName(int i) {
  return "entry-" + std::to_string(i) + std::string(i % 40, 'x');
}

void ReaddirLarge(Probe& p) {
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    int fd =
        ::open(p.P(EntryName(i)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
      p.Ok("create " + EntryName(i), -1);
      return;
    }
    ::close(fd);
  }
  DIR* d = ::opendir(p.root().c_str());
  if (!p.Ok("opendir", d ? 0 : -1)) return;
  int dots = 0;
  std::map<std::string, int> seen;
  while (dirent* e = ::readdir(d)) {
    std::string nm = e->d_name;
    if (nm == "." || nm == "..")
      ++dots;
    else
      seen[nm]++;
  }
  ::closedir(d);
  int twice = 0, missing = 0;
  for (auto& [nm, c] : seen) twice += c > 1;
  for (int i = 0; i < n; ++i) missing += seen.count(EntryName(i)) == 0;
  p.Note("entries listed", std::to_string(seen.size()));
  p.Note(". and .. listed", std::to_string(dots));
  p.Note("names listed more than once", std::to_string(twice));
  p.Note("names created but not listed", std::to_string(missing));
  // Half removed: the other half exactly.
  for (int i = 0; i < n; i += 2) ::unlink(p.P(EntryName(i)).c_str());
  std::vector<std::string> rest = ListDir(p.root());
  p.Note("entries after removing every other one", std::to_string(rest.size()));
  p.Data("their names", Join(rest));
}

void ReaddirTypes(Probe& p) {
  ::close(::open(p.P("file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  ::mkdir(p.P("dir").c_str(), 0755);
  ::symlink("file", p.P("link").c_str());
  ::mknod(p.P("fifo").c_str(), S_IFIFO | 0644, 0);
  ::mknod(p.P("sock").c_str(), S_IFSOCK | 0644, 0);
  DIR* d = ::opendir(p.root().c_str());
  if (!p.Ok("opendir", d ? 0 : -1)) return;
  std::map<std::string, int> types;
  std::map<std::string, ino_t> inos;
  while (dirent* e = ::readdir(d)) {
    types[e->d_name] = e->d_type;
    inos[e->d_name] = e->d_ino;
  }
  ::closedir(d);
  for (const char* n : {".", "..", "file", "dir", "link", "fifo", "sock"}) {
    auto it = types.find(n);
    p.Note(std::string("d_type of ") + n,
           it == types.end() ? "not listed" : std::to_string(it->second));
  }
  // d_ino agrees with st_ino for the entries of this directory.
  for (const char* n : {"file", "dir", "link"}) {
    p.Note(std::string("d_ino of ") + n + " is its st_ino",
           inos[n] == p.Lstat(n).st_ino ? "yes" : "no");
  }
}

void ReaddirWhileUnlinking(Probe& p) {
  const int n = 300;
  std::set<std::string> made;
  for (int i = 0; i < n; ++i) {
    std::string nm = "u" + std::to_string(i);
    ::close(::open(p.P(nm).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    made.insert(nm);
  }
  DIR* d = ::opendir(p.root().c_str());
  if (!p.Ok("opendir", d ? 0 : -1)) return;
  std::map<std::string, int> seen;
  int read_before = 0;
  while (read_before < 100) {
    dirent* e = ::readdir(d);
    if (!e) break;
    std::string nm = e->d_name;
    if (nm != "." && nm != "..") seen[nm]++;
    ++read_before;
  }
  p.Note("entries read before unlinking", std::to_string(read_before));
  // POSIX leaves open whether entries removed meanwhile are still returned;
  // none may be returned twice, and nothing that never existed may appear.
  int unlinked = 0;
  for (auto& nm : made) unlinked += ::unlink(p.P(nm).c_str()) == 0;
  p.Note("unlinked while the stream is open", std::to_string(unlinked));
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string nm = e->d_name;
    if (nm != "." && nm != "..") seen[nm]++;
  }
  p.Note("readdir ended with",
         errno ? "errno " + ErrnoName(errno) : "end of directory");
  int twice = 0, strangers = 0;
  for (auto& [nm, c] : seen) {
    twice += c > 1;
    strangers += made.count(nm) == 0;
  }
  p.Note("names returned twice", std::to_string(twice));
  p.Note("names that never existed", std::to_string(strangers));
  ::rewinddir(d);
  p.Data("after rewinddir", Join(ReadAll(d)));
  ::closedir(d);
  p.Data("a fresh listing", Join(ListDir(p.root())));
}

void TellSeekDir(Probe& p) {
  for (int i = 0; i < 60; ++i)
    ::close(::open(p.P("t" + std::to_string(i)).c_str(),
                   O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  DIR* d = ::opendir(p.root().c_str());
  if (!p.Ok("opendir", d ? 0 : -1)) return;
  for (int i = 0; i < 20; ++i) ::readdir(d);
  long pos = ::telldir(d);
  std::vector<std::string> after;
  for (int i = 0; i < 5; ++i)
    if (dirent* e = ::readdir(d)) after.push_back(e->d_name);
  ::seekdir(d, pos);
  std::vector<std::string> again;
  for (int i = 0; i < 5; ++i)
    if (dirent* e = ::readdir(d)) again.push_back(e->d_name);
  p.Note("the 5 entries after seekdir(telldir()) are the same",
         after == again && after.size() == 5
             ? "yes"
             : "no: " + Join(after) + " / " + Join(again));
  ::rewinddir(d);
  std::vector<std::string> all = ReadAll(d);
  ::closedir(d);
  p.Note("entries after rewinddir", std::to_string(all.size()));
}

void DotNames(Probe& p) {
  ::mkdir(p.P("d").c_str(), 0755);
  ::mkdir(p.P("d/sub").c_str(), 0755);
  p.Ok("mkdir d/.", ::mkdir(p.P("d/.").c_str(), 0755));
  p.Ok("mkdir d/..", ::mkdir(p.P("d/..").c_str(), 0755));
  p.Ok("rmdir d/sub/.", ::rmdir(p.P("d/sub/.").c_str()));
  p.Ok("rmdir d/sub/..", ::rmdir(p.P("d/sub/..").c_str()));
  p.Ok("unlink d/.", ::unlink(p.P("d/.").c_str()));
  p.Ok("rename d/. to x", ::rename(p.P("d/.").c_str(), p.P("x").c_str()));
  p.Note("d/sub/.. is d",
         p.Lstat("d/sub/..").st_ino == p.Lstat("d").st_ino ? "yes" : "no");
  p.Note("d/./sub is d/sub",
         p.Lstat("d/./sub").st_ino == p.Lstat("d/sub").st_ino ? "yes" : "no");
  p.Ok("open d/. O_DIRECTORY",
       UniqueFd(::open(p.P("d/.").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC))
           .get());
}

void Names(Probe& p) {
  const std::string names[] = {std::string(255, 'n'),
                               "with space",
                               "new\nline",
                               "tab\there",
                               "\x01\x1f",
                               "caf\xc3\xa9",
                               "\xff\xfe invalid utf8",
                               "-leading dash",
                               ".hidden",
                               "...",
                               "a=b,c;d",
                               "UPPER",
                               "upper"};
  for (auto& n : names) {
    int fd = ::open(p.P(n).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    p.Ok("create a file named \"" + n.substr(0, 20) + "\" (" +
             std::to_string(n.size()) + " bytes)",
         fd);
    if (fd >= 0) ::close(fd);
  }
  p.Data("listing", Join(ListDir(p.root())));
  for (auto& n : names)
    p.Ok("lstat \"" + n.substr(0, 20) + "\"", ::access(p.P(n).c_str(), F_OK));
  p.Ok("create a 256-byte name",
       UniqueFd(::open(p.P(std::string(256, 'n')).c_str(),
                       O_CREAT | O_WRONLY | O_CLOEXEC, 0644))
           .get());
  p.Ok("mkdir a 256-byte name",
       ::mkdir(p.P(std::string(256, 'm')).c_str(), 0755));
  p.Ok("lstat a 256-byte name",
       ::access(p.P(std::string(256, 'q')).c_str(), F_OK));
  // A deep path.
  std::string deep;
  bool ok = true;
  for (int i = 0; i < 40 && ok; ++i) {
    deep +=
        (deep.empty() ? "" : "/") + std::string("level") + std::to_string(i);
    ok = ::mkdir(p.P(deep).c_str(), 0755) == 0;
  }
  p.Note("40 nested directories", ok ? "ok" : "errno " + ErrnoName(errno));
}

void OpenFlags(Probe& p) {
  ::close(::open(p.P("file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  ::mkdir(p.P("dir").c_str(), 0755);
  ::symlink("file", p.P("link").c_str());
  ::symlink("target", p.P("dangling").c_str());
  auto open = [&](const char* what, const char* rel, int flags) {
    UniqueFd fd = p.Open(what, rel, flags, 0644);
  };
  open("open file O_DIRECTORY", "file", O_RDONLY | O_DIRECTORY);
  open("open dir O_WRONLY", "dir", O_WRONLY);
  open("open dir O_RDWR", "dir", O_RDWR);
  open("open dir O_CREAT", "dir", O_CREAT | O_RDONLY);
  open("open dir O_RDONLY", "dir", O_RDONLY);
  open("open link O_NOFOLLOW", "link", O_RDONLY | O_NOFOLLOW);
  open("open link O_PATH|O_NOFOLLOW", "link", O_PATH | O_NOFOLLOW);
  open("open dangling O_CREAT|O_EXCL", "dangling", O_CREAT | O_EXCL | O_WRONLY);
  open("open dangling O_CREAT (creates the target)", "dangling",
       O_CREAT | O_WRONLY);
  p.Stat("target");
  open("open file/ (trailing slash)", "file/", O_RDONLY);
  open("open dir/ (trailing slash)", "dir/", O_RDONLY);
  open("open new/ O_CREAT (trailing slash)", "new/", O_CREAT | O_WRONLY);
  open("open file O_RDONLY|O_TRUNC", "file", O_RDONLY | O_TRUNC);
  p.Stat("file");
}

void ErrorPaths(Probe& p) {
  ::close(::open(p.P("file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  ::mkdir(p.P("dir").c_str(), 0755);
  ::mkdir(p.P("full").c_str(), 0755);
  ::close(::open(p.P("full/x").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  auto ok = [&](const std::string& what, int rc) { p.Ok(what, rc); };
  ok("open missing", UniqueFd(::open(p.P("missing").c_str(), O_RDONLY)).get());
  ok("open file/x", UniqueFd(::open(p.P("file/x").c_str(), O_RDONLY)).get());
  ok("create file/x",
     UniqueFd(::open(p.P("file/x").c_str(), O_CREAT | O_WRONLY, 0644)).get());
  ok("create missing/x",
     UniqueFd(::open(p.P("missing/x").c_str(), O_CREAT | O_WRONLY, 0644))
         .get());
  ok("rmdir full", ::rmdir(p.P("full").c_str()));
  ok("rmdir file", ::rmdir(p.P("file").c_str()));
  ok("rmdir missing", ::rmdir(p.P("missing").c_str()));
  ok("unlink missing", ::unlink(p.P("missing").c_str()));
  ok("unlink dir", ::unlink(p.P("dir").c_str()));
  ok("unlink file/x", ::unlink(p.P("file/x").c_str()));
  ok("mkdir missing/d", ::mkdir(p.P("missing/d").c_str(), 0755));
  ok("mkdir file/d", ::mkdir(p.P("file/d").c_str(), 0755));
  ok("mkdir file", ::mkdir(p.P("file").c_str(), 0755));
  ok("symlink over file", ::symlink("x", p.P("file").c_str()));
  ok("mknod over dir", ::mknod(p.P("dir").c_str(), S_IFIFO | 0644, 0));
  ok("link missing", ::link(p.P("missing").c_str(), p.P("m2").c_str()));
  ok("link into missing dir",
     ::link(p.P("file").c_str(), p.P("missing/m").c_str()));
  ok("readlink missing", [&] {
    char b[8];
    return (int)::readlink(p.P("missing").c_str(), b, 8);
  }());
  ok("chmod missing", ::chmod(p.P("missing").c_str(), 0644));
}

}  // namespace

void AddDirChecks(std::vector<Check>* out) {
  out->push_back({"dir.mkdir_rmdir",
                  "mkdir and rmdir: modes, link counts, EEXIST, ENOTEMPTY",
                  false, MkdirRmdir});
  out->push_back({"dir.readdir_large",
                  "3,000 entries each listed once, then half removed", false,
                  ReaddirLarge});
  out->push_back({"dir.readdir_types",
                  "d_type of every file type, d_ino equal to st_ino", false,
                  ReaddirTypes});
  out->push_back({"dir.readdir_unlink_during",
                  "readdir while every entry is unlinked: no duplicates, no "
                  "strangers, then empty",
                  false, ReaddirWhileUnlinking});
  out->push_back({"dir.telldir_seekdir",
                  "seekdir to a telldir position returns the same entries",
                  false, TellSeekDir});
  out->push_back({"dir.dot_names", "\".\" and \"..\": errors and identity",
                  false, DotNames});
  out->push_back({"dir.names",
                  "255-byte and odd names (spaces, newlines, invalid UTF-8), "
                  "ENAMETOOLONG, deep paths",
                  false, Names});
  out->push_back(
      {"dir.open_flags",
       "O_DIRECTORY, O_NOFOLLOW, O_CREAT through symlinks, trailing slashes",
       false, OpenFlags});
  out->push_back(
      {"dir.error_paths",
       "the errno of common mistakes (ENOENT, ENOTDIR, EISDIR, EEXIST, ...)",
       false, ErrorPaths});
}

}  // namespace zest::conformance
