// POSIX ACLs through the kernel (FUSE_POSIX_ACL): Debian's setfacl and
// getfacl (package acl) run the same script on tmpfs, the oracle, and on the
// file system under test, and their outputs must match (getfacl -n
// --omit-header, stat -c %a); permission checks by another user must match
// too. Skipped where setfacl is missing or the tests do not run as root.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "tests/mount/zest_mount.h"

// The file system under test; the build makes one binary per file system.
#ifndef ZEST_TEST_FS
#define ZEST_TEST_FS "memfs"
#endif

namespace zest::testing {
namespace {

bool OnPath(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t at = 0;
  while (at <= dirs.size()) {
    size_t end = dirs.find(':', at);
    if (end == std::string::npos) end = dirs.size();
    std::string p = dirs.substr(at, end - at) + "/" + tool;
    if (::access(p.c_str(), X_OK) == 0) return true;
    at = end + 1;
  }
  return false;
}

// Runs `script` with sh in `dir` (umask 022 unless the script changes it);
// returns what it printed, stdout and stderr, and its exit status.
std::string Sh(const std::string& dir, const std::string& script) {
  std::string cmd = "cd '" + dir + "' && umask 022 && { " + script +
                    "\n} 2>&1; echo \"exit $?\"";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

// Runs fn in a forked child as uid/gid 1000 with no supplementary groups;
// returns its exit code (fn returns an errno, or a command's status).
int AsUser(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(1000) != 0 ||
        ::setuid(1000) != 0)
      ::_exit(200);
    ::_exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

int ReadAs1000(const std::string& path) {
  return AsUser([&] {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  });
}

class AclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!OnPath("setfacl") || !OnPath("getfacl"))
      GTEST_SKIP() << "setfacl/getfacl not found: install Debian's package acl";
    if (::geteuid() != 0)
      GTEST_SKIP() << "needs root (chown, and a second user)";
    std::string reason = FuseUnavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    ASSERT_TRUE(tmp_.ok());
    std::string err;
    subject_ = StartSubject(ZEST_TEST_FS, {}, &err);
    ASSERT_TRUE(subject_) << "cannot start subject: " << err;
  }

  // Runs `script` on tmpfs and on the subject; expects the same output and
  // returns it.
  std::string Both(const std::string& script) {
    std::string want = Sh(tmp_.path(), script);
    std::string got = Sh(subject_->path(), script);
    EXPECT_EQ(got, want) << "script:\n"
                         << script << "\non " << subject_->describe();
    return want;
  }
  // fn(root) on both; expects the same result and returns it.
  int Both(const std::function<int(const std::string&)>& fn,
           const std::string& what) {
    int want = fn(tmp_.path());
    int got = fn(subject_->path());
    EXPECT_EQ(got, want) << what << " on " << subject_->describe()
                         << ": tmpfs gives " << want;
    return want;
  }

  TmpfsDir tmp_;
  std::unique_ptr<SubjectMount> subject_;
};

bool Has(const std::string& out, const std::string& s) {
  return out.find(s) != std::string::npos;
}

TEST_F(AclTest, NamedUserAndMask) {
  std::string out = Both(
      "touch f\n"
      "setfacl -m u:1000:rwx f && getfacl -n --omit-header f && stat -c %a f\n"
      "setfacl -m g:1234:r f && getfacl -n --omit-header f && stat -c %a f\n"
      "setfacl -m m::r-x f && getfacl -n --omit-header f && stat -c %a f\n"
      "setfacl -x u:1000 f && getfacl -n --omit-header f && stat -c %a f");
  EXPECT_TRUE(Has(out, "user:1000:rwx\t#effective:r-x")) << out;
  EXPECT_TRUE(Has(out, "mask::r-x")) << out;
}

TEST_F(AclTest, ChmodRewritesTheMask) {
  std::string out = Both(
      "touch f && setfacl -m u:1000:rw f\n"
      "chmod 640 f && getfacl -n --omit-header f && stat -c %a f\n"
      "chmod 707 f && getfacl -n --omit-header f && stat -c %a f\n"
      "chmod u-w,g+x f && getfacl -n --omit-header f && stat -c %a f");
  EXPECT_TRUE(Has(out, "mask::r--"))
      << out;  // chmod 640: the mask, not the group
  EXPECT_TRUE(Has(out, "group::r--")) << out;
}

TEST_F(AclTest, DefaultAclIsInheritedAndReplacesTheUmask) {
  std::string out = Both(
      "mkdir d && setfacl -d -m u:1000:rwx d && setfacl -d -m g::r d\n"
      "getfacl -n --omit-header d\n"
      "(umask 077 && touch d/file && mkdir d/sub && mknod d/fifo p && mkdir "
      "d/sub/deeper &&\n"
      " ln -s file d/link)\n"
      "stat -c '%n %a' d/file d/sub d/fifo d/sub/deeper d/link\n"
      "getfacl -n --omit-header d/file d/sub d/fifo d/sub/deeper\n"
      // Without a default ACL the umask applies.
      "(umask 077 && touch plain && mkdir plaindir && mknod plainfifo p)\n"
      "stat -c '%n %a' plain plaindir plainfifo\n"
      "getfacl -n --omit-header plain plaindir");
  EXPECT_TRUE(Has(out, "d/file 664")) << out;  // umask 077 ignored
  EXPECT_TRUE(Has(out, "d/sub 775")) << out;
  EXPECT_TRUE(Has(out, "plain 600")) << out;  // umask 077 applied
  EXPECT_TRUE(Has(out, "plaindir 700")) << out;
  EXPECT_TRUE(Has(out, "default:user:1000:rwx")) << out;
}

TEST_F(AclTest, TmpfileInheritsTheDefaultAcl) {
  // O_TMPFILE (FUSE_TMPFILE) with umask 077, then linked in to look at it.
  const mode_t old = ::umask(077);
  int rc = Both(
      [](const std::string& root) {
        std::string d = root + "/d";
        if (::mkdir(d.c_str(), 0755) != 0) return errno;
        if (std::system(
                ("setfacl -d -m u:1000:rwx,g::r '" + d + "'").c_str()) != 0)
          return -1;
        int fd = ::open(d.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);
        if (fd < 0) return errno;
        std::string proc = "/proc/self/fd/" + std::to_string(fd);
        int e = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, (d + "/tmp").c_str(),
                         AT_SYMLINK_FOLLOW) == 0
                    ? 0
                    : errno;
        ::close(fd);
        return e;
      },
      "O_TMPFILE in a directory with a default ACL");
  ::umask(old);
  ASSERT_EQ(rc, 0);
  std::string out =
      Both("stat -c '%n %a' d/tmp && getfacl -n --omit-header d/tmp");
  EXPECT_TRUE(Has(out, "d/tmp 640")) << out;
  EXPECT_TRUE(Has(out, "user:1000:rwx\t#effective:r--")) << out;
}

TEST_F(AclTest, RemoveAllEntries) {
  std::string out = Both(
      "touch f && setfacl -m u:1000:rwx,m::r f\n"
      "mkdir d && setfacl -m u:1000:rx d && setfacl -d -m u:1000:rwx d\n"
      "setfacl -b f d\n"
      "getfacl -n --omit-header f d && stat -c '%n %a' f d\n"
      "python3 -c \"import os; print(os.listxattr('f'), os.listxattr('d'))\"\n"
      // Removing what is not there succeeds.
      "setfacl -b f && setfacl -k f && setfacl -k d");
  EXPECT_TRUE(Has(out, "[] []")) << out;
  EXPECT_TRUE(Has(out, "exit 0")) << out;
}

TEST_F(AclTest, SetgidInterplay) {
  // Setting an ACL on a setgid file by its owner, who is not in its group,
  // clears S_ISGID (posix_acl_update_mode; FUSE_SETXATTR_ACL_KILL_SGID);
  // root keeps it.
  int rc = Both(
      [](const std::string& root) {
        std::string g = root + "/g", h = root + "/h";
        for (const std::string& p : {g, h}) {
          int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
          if (fd < 0) return errno;
          ::close(fd);
        }
        if (::chown(g.c_str(), 1000, 0) != 0 ||
            ::chmod(g.c_str(), 02755) != 0 || ::chmod(h.c_str(), 02755) != 0)
          return errno;
        std::string cmd = "setfacl -m u:1001:r '" + g + "'";
        return AsUser([&] { return std::system(cmd.c_str()) == 0 ? 0 : 1; });
      },
      "setfacl as the owner of a setgid file");
  EXPECT_EQ(rc, 0);
  std::string out = Both(
      "setfacl -m u:1001:r h\n"
      "stat -c '%n %a' g h && getfacl -n --omit-header g h\n"
      // A setgid directory with a default ACL: new entries take its group,
      // subdirectories its setgid bit, and both the ACL.
      "mkdir sg && chgrp 1234 sg && chmod 2775 sg && setfacl -d -m "
      "u:1000:rwx,g::rx sg\n"
      "mkdir sg/sub && touch sg/f && stat -c '%n %a %g' sg/sub sg/f\n"
      "getfacl -n --omit-header sg/sub sg/f");
  EXPECT_TRUE(Has(out, "g 755")) << out;
  EXPECT_TRUE(Has(out, "h 2755")) << out;
  EXPECT_TRUE(Has(out, "sg/sub 2775 1234")) << out;
}

TEST_F(AclTest, PermissionChecksUseTheAcl) {
  // A 0600 file of root's: uid 1000 reads it only while an ACL entry lets it.
  std::vector<int> steps;
  for (const std::string& root : {tmp_.path(), subject_->path()}) {
    std::string p = root + "/p", w = root + "/w";
    std::vector<int> got;
    int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << p << ": " << std::strerror(errno);
    ASSERT_EQ(::write(fd, "secret", 6), 6);
    ::close(fd);
    got.push_back(ReadAs1000(p));
    got.push_back(std::system(("setfacl -m u:1000:r '" + p + "'").c_str()));
    got.push_back(ReadAs1000(p));
    got.push_back(AsUser([&] {
      int f = ::open(p.c_str(), O_WRONLY);
      if (f < 0) return errno;
      ::close(f);
      return 0;
    }));
    // The kernel's cached ACL goes with the change.
    got.push_back(std::system(("setfacl -x u:1000 '" + p + "'").c_str()));
    got.push_back(ReadAs1000(p));
    // And after a chmod that narrows the mask.
    got.push_back(std::system(
        ("setfacl -m u:1000:r '" + p + "' && chmod 600 '" + p + "'").c_str()));
    got.push_back(ReadAs1000(p));
    // A directory ACL lets uid 1000 create in a 0755 directory of root's.
    got.push_back(::mkdir(w.c_str(), 0755) == 0 ? 0 : errno);
    got.push_back(std::system(("setfacl -m u:1000:rwx '" + w + "'").c_str()));
    got.push_back(AsUser([&] {
      int f = ::open((w + "/mine").c_str(), O_CREAT | O_WRONLY, 0644);
      if (f < 0) return errno;
      ::close(f);
      return 0;
    }));
    if (steps.empty()) {
      steps = got;
    } else {
      EXPECT_EQ(got, steps) << "tmpfs first, then " << subject_->describe();
    }
  }
  EXPECT_EQ(steps, (std::vector<int>{EACCES, 0, 0, EACCES, 0, EACCES, 0, EACCES,
                                     0, 0, 0}));
}

TEST_F(AclTest, XattrInterface) {
  // The raw xattrs: errors, and listxattr.
  // The xattr form: version 2, then {u16 tag, u16 perm, u32 id} entries.
  struct Entry {
    uint16_t tag, perm;
    uint32_t id;
  };
  constexpr uint32_t U = 0xffffffff;
  auto acl = [](std::initializer_list<Entry> entries) {
    std::string v("\x02\0\0\0", 4);
    for (const Entry& e : entries) {
      v.append(reinterpret_cast<const char*>(&e.tag), 2);
      v.append(reinterpret_cast<const char*>(&e.perm), 2);
      v.append(reinterpret_cast<const char*>(&e.id), 4);
    }
    return v;
  };
  const std::string plain = acl({{1, 7, U}, {4, 5, U}, {0x20, 4, U}});
  const std::string no_mask =
      acl({{1, 7, U}, {2, 7, 1000}, {4, 5, U}, {0x20, 4, U}});
  auto set = [](const std::string& p, const char* name, const std::string& v) {
    return ::setxattr(p.c_str(), name, v.data(), v.size(), 0) == 0 ? 0 : errno;
  };
  Both(
      [&](const std::string& root) {
        std::string f = root + "/f";
        int fd = ::open(f.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) return -1;
        ::close(fd);
        return set(f, "system.posix_acl_default", plain);
      },
      "a default ACL on a file");
  Both(
      [&](const std::string& root) {
        return set(root + "/f", "system.posix_acl_access", no_mask);
      },
      "an ACL without its mask");
  Both(
      [&](const std::string& root) {
        return set(root + "/f", "system.posix_acl_other", plain);
      },
      "another system.* name");
  Both(
      [&](const std::string& root) {
        return ::removexattr((root + "/f").c_str(),
                             "system.posix_acl_access") == 0
                   ? 0
                   : errno;
      },
      "removing an ACL that is not there");
  Both(
      [&](const std::string& root) {
        std::string d = root + "/d";
        if (::mkdir(d.c_str(), 0755) != 0) return errno;
        if (::setxattr(d.c_str(), "user.x", "1", 1, 0) != 0) return errno;
        if (int e = set(d, "system.posix_acl_default", plain)) return e;
        const std::string named = acl(
            {{1, 7, U}, {2, 7, 1000}, {4, 5, U}, {0x10, 7, U}, {0x20, 4, U}});
        if (int e = set(d, "system.posix_acl_access", named)) return e;
        char names[256];
        ssize_t n = ::listxattr(d.c_str(), names, sizeof(names));
        if (n < 0) return errno;
        // system.posix_acl_access, system.posix_acl_default, user.x
        const std::string want(
            "system.posix_acl_access\0system.posix_acl_default\0user.x\0", 56);
        return std::string(names, n) == want ? 0 : 1;
      },
      "listxattr with both ACLs");
}

}  // namespace
}  // namespace zest::testing
