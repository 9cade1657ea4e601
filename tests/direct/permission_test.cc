// libzest-direct refuses what the kernel mount refuses, for several users
// trusted with the pool (through its group) and one who is not: the same
// operations through the library and through plain system calls on the
// mount, under each identity, must give the same result and errno. Today
// libzest-direct sends every name operation through the kernel mount, so
// this holds by construction; the test keeps it so when they move to the
// channel. Leases need an fd the kernel opened: see direct_test.cc.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "direct/zest_direct.h"
#include "tests/mount/zest_mount.h"

namespace zest::testing {
namespace {

struct Identity {
  uid_t uid;
  std::vector<gid_t> groups;  // the first is the primary group
};

// One operation both ways: (result, errno) through the library and through
// system calls, as "rc/errno".
struct Op {
  std::string name;
  std::function<int(zest_direct*, const std::string& mp)> lib;
  std::function<int(const std::string& mp)> sys;
};

std::string Outcome(int rc) { return rc < 0 ? "-1/" + std::string(std::strerror(errno)) : "ok"; }

TEST(DirectPermissions, TheLibraryRefusesWhatTheKernelRefuses) {
  if (std::string why = FuseUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  std::string err;
  auto m = ZestMount::Start("pmfs", {}, &err);
  ASSERT_TRUE(m) << err;
  const std::string mp = m->path();
  ASSERT_EQ(::chmod(m->source().c_str(), 0660), 0);
  ASSERT_EQ(::chown(m->source().c_str(), 0, 4242), 0);
  // The tree: files of two users with various modes, a directory without
  // search permission for others, a read-only directory, a sticky one.
  auto file = [&](const std::string& p, uid_t uid, mode_t mode) {
    int fd = ::open((mp + "/" + p).c_str(), O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0) << p;
    ASSERT_EQ(::write(fd, "content", 7), 7);
    ::close(fd);
    ASSERT_EQ(::chown((mp + "/" + p).c_str(), uid, uid), 0);
    ASSERT_EQ(::chmod((mp + "/" + p).c_str(), mode), 0);
  };
  auto dir = [&](const std::string& p, uid_t uid, mode_t mode) {
    ASSERT_EQ(::mkdir((mp + "/" + p).c_str(), 0755), 0);
    ASSERT_EQ(::chown((mp + "/" + p).c_str(), uid, uid), 0);
    ASSERT_EQ(::chmod((mp + "/" + p).c_str(), mode), 0);
  };
  auto build = [&] {
    for (const char* p : {"private", "ro", "sticky"}) RemoveTree(mp + "/" + p);
    for (const char* p : {"mine600", "group640", "world644"}) ::unlink((mp + "/" + p).c_str());
    dir("private", 1001, 0700);
    file("private/f", 1001, 0644);
    dir("ro", 1001, 0755);
    file("ro/f", 1001, 0666);
    ASSERT_EQ(::chmod((mp + "/ro").c_str(), 0555), 0);
    dir("sticky", 0, 01777);
    file("sticky/theirs", 1001, 0666);
    file("mine600", 1001, 0600);
    file("group640", 1001, 0640);
    file("world644", 1001, 0644);
  };

  std::vector<Op> ops = {
      {"open mine600 rdonly", [](zest_direct* d, const std::string& p) { int h = zest_open(d, (p + "/mine600").c_str(), O_RDONLY, 0); if (h >= 0) zest_close(d, h); return h < 0 ? -1 : 0; },
       [](const std::string& p) { int f = ::open((p + "/mine600").c_str(), O_RDONLY); if (f >= 0) ::close(f); return f < 0 ? -1 : 0; }},
      {"open group640 rdwr", [](zest_direct* d, const std::string& p) { int h = zest_open(d, (p + "/group640").c_str(), O_RDWR, 0); if (h >= 0) zest_close(d, h); return h < 0 ? -1 : 0; },
       [](const std::string& p) { int f = ::open((p + "/group640").c_str(), O_RDWR); if (f >= 0) ::close(f); return f < 0 ? -1 : 0; }},
      {"open world644 rdonly", [](zest_direct* d, const std::string& p) { int h = zest_open(d, (p + "/world644").c_str(), O_RDONLY, 0); if (h >= 0) zest_close(d, h); return h < 0 ? -1 : 0; },
       [](const std::string& p) { int f = ::open((p + "/world644").c_str(), O_RDONLY); if (f >= 0) ::close(f); return f < 0 ? -1 : 0; }},
      {"open world644 wronly", [](zest_direct* d, const std::string& p) { int h = zest_open(d, (p + "/world644").c_str(), O_WRONLY, 0); if (h >= 0) zest_close(d, h); return h < 0 ? -1 : 0; },
       [](const std::string& p) { int f = ::open((p + "/world644").c_str(), O_WRONLY); if (f >= 0) ::close(f); return f < 0 ? -1 : 0; }},
      {"stat private/f", [](zest_direct* d, const std::string& p) { struct stat s; return zest_stat(d, (p + "/private/f").c_str(), &s); },
       [](const std::string& p) { struct stat s; return ::stat((p + "/private/f").c_str(), &s); }},
      {"open private/f", [](zest_direct* d, const std::string& p) { int h = zest_open(d, (p + "/private/f").c_str(), O_RDONLY, 0); if (h >= 0) zest_close(d, h); return h < 0 ? -1 : 0; },
       [](const std::string& p) { int f = ::open((p + "/private/f").c_str(), O_RDONLY); if (f >= 0) ::close(f); return f < 0 ? -1 : 0; }},
      {"create in ro", [](zest_direct* d, const std::string& p) { int h = zest_open(d, (p + "/ro/new").c_str(), O_RDWR | O_CREAT, 0644); if (h >= 0) zest_close(d, h); return h < 0 ? -1 : 0; },
       [](const std::string& p) { int f = ::open((p + "/ro/new").c_str(), O_RDWR | O_CREAT, 0644); if (f >= 0) ::close(f); return f < 0 ? -1 : 0; }},
      {"mkdir in ro", [](zest_direct* d, const std::string& p) { return zest_mkdir(d, (p + "/ro/sub").c_str(), 0755); },
       [](const std::string& p) { return ::mkdir((p + "/ro/sub").c_str(), 0755); }},
      {"unlink ro/f", [](zest_direct* d, const std::string& p) { return zest_unlink(d, (p + "/ro/f").c_str()); },
       [](const std::string& p) { return ::unlink((p + "/ro/f").c_str()); }},
      {"unlink sticky/theirs", [](zest_direct* d, const std::string& p) { return zest_unlink(d, (p + "/sticky/theirs").c_str()); },
       [](const std::string& p) { return ::unlink((p + "/sticky/theirs").c_str()); }},
      {"rename sticky/theirs", [](zest_direct* d, const std::string& p) { return zest_rename(d, (p + "/sticky/theirs").c_str(), (p + "/sticky/moved").c_str()); },
       [](const std::string& p) { return ::rename((p + "/sticky/theirs").c_str(), (p + "/sticky/moved").c_str()); }},
      {"readdir private", [](zest_direct* d, const std::string& p) { return zest_readdir(d, (p + "/private").c_str(), [](void*, const char*, ino_t, unsigned char) { return 0; }, nullptr); },
       [](const std::string& p) { int f = ::open((p + "/private").c_str(), O_RDONLY | O_DIRECTORY); if (f >= 0) ::close(f); return f < 0 ? -1 : 0; }},
      {"truncate world644", [](zest_direct* d, const std::string& p) { int h = zest_open(d, (p + "/world644").c_str(), O_RDONLY, 0); if (h < 0) return -1; int r = zest_ftruncate(d, h, 0); int e = errno; zest_close(d, h); errno = e; return r; },
       [](const std::string& p) { int f = ::open((p + "/world644").c_str(), O_RDONLY); if (f < 0) return -1; int r = ::ftruncate(f, 0); int e = errno; ::close(f); errno = e; return r; }},
  };
  const std::vector<Identity> ids = {
      {1001, {1001, 4242}},  // the owner, trusted with the pool
      {1002, {1002, 4242}},  // another user, trusted with the pool
      {1003, {1001, 4242}},  // in the owner's group, trusted with the pool
      {1004, {1004}},        // not trusted with the pool: kernel path only
  };
  // Runs every operation one way (through the library, or by system
  // calls) as `id` on a fresh tree; the outcomes, one line each.
  auto run = [&](const Identity& id, bool library) {
    build();
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(out[0]);
      if (::setgroups(id.groups.size(), id.groups.data()) != 0 || ::setgid(id.groups[0]) != 0 ||
          ::setuid(id.uid) != 0)
        _exit(90);
      zest_direct* d = zest_direct_attach(mp.c_str(), 0);
      if (!d) _exit(91);
      std::string report = library ? "direct=" + std::to_string(zest_direct_is_direct(d)) + "\n" : "";
      for (const Op& op : ops)
        report += op.name + ": " + Outcome(library ? op.lib(d, mp) : op.sys(mp)) + "\n";
      zest_direct_detach(d);
      (void)!::write(out[1], report.data(), report.size());
      _exit(0);
    }
    ::close(out[1]);
    std::string report;
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) report.append(buf, n);
    ::close(out[0]);
    int st = 0;
    EXPECT_EQ(::waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "uid " << id.uid;
    return report;
  };
  int refused = 0;
  for (const Identity& id : ids) {
    const bool trusted = std::find(id.groups.begin(), id.groups.end(), 4242u) != id.groups.end();
    const std::string lib = run(id, true);
    const std::string sys = run(id, false);
    EXPECT_EQ(lib, std::string("direct=") + (trusted ? "1" : "0") + "\n" + sys) << "uid " << id.uid;
    for (size_t at = 0; (at = sys.find("-1/", at)) != std::string::npos; ++at) ++refused;
  }
  EXPECT_GT(refused, 20);  // the tree does refuse things
}

}  // namespace
}  // namespace zest::testing
