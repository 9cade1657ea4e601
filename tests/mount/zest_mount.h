// Test fixtures for real mounts: the file system under test (a "subject") and
// the tmpfs directory used as the oracle.
//
// A SubjectMount is a directory the tests drive with ordinary system calls.
// ZestMount starts `zest mount -f` in a child process on a fresh mountpoint
// and tears it down robustly (zest umount, lazy umount, connection abort,
// SIGTERM, SIGKILL — always to the child's own pid, always reaped). An
// ExistingDir subject uses a directory some other server already serves, so
// the same tests can be pointed at another FUSE server by hand:
//   ZEST_TEST_SUBJECT=/mnt/other ./mount_test
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace zest::testing {

// A directory served by the file system under test.
class SubjectMount {
 public:
  virtual ~SubjectMount() = default;
  // The directory the tests work in (the mount root, or a fresh directory
  // inside an existing mount).
  virtual const std::string& path() const = 0;
  // Human-readable description for failure messages.
  virtual std::string describe() const = 0;
  // True when this subject is a zest process we started (tests that check
  // the zest command itself only apply then).
  virtual bool is_zest() const { return false; }
  // Aborts the FUSE connection so that every pending and later request
  // fails (ENOTCONN): the way out of a hung server. Best effort.
  virtual void AbortConnection() {}
};

// The transport zest mounts are served with ("dev", "uring", "auto"):
// ZEST_TEST_TRANSPORT if set, else what the test binary chose with
// SetDefaultTransport (the uring.* variants), else "" (zest's default).
std::string TestTransport();
void SetDefaultTransport(const char* transport);

// Why real mounts cannot work here ("/dev/fuse not available: ..."), or ""
// when they can. Tests GTEST_SKIP() with this message.
std::string FuseUnavailableReason();

// `zest mount -f --fs FS [ARGS...] MOUNTPOINT` in a child process.
class ZestMount : public SubjectMount {
 public:
  // Starts the server and waits (10 s) until the mount is live in
  // /proc/self/mountinfo with type fuse.zest. On failure returns null and
  // sets *error (including the child's exit status and stderr).
  static std::unique_ptr<ZestMount> Start(const std::string& fs,
                                          const std::vector<std::string>& args,
                                          std::string* error);
  ~ZestMount() override;
  ZestMount(const ZestMount&) = delete;
  ZestMount& operator=(const ZestMount&) = delete;

  const std::string& path() const override { return mountpoint_; }
  std::string describe() const override;
  bool is_zest() const override { return true; }
  pid_t pid() const { return pid_; }
  // What the fixture made for the file system: the pmfs pool, or the
  // mirrorfs backing directory ("" for memfs).
  const std::string& source() const { return pool_; }
  void AbortConnection() override;

  // Unmounts with `zest umount` and waits for the server to exit. Returns
  // the server's wait status as "exit N" / "signal N" plus whether each step
  // worked; the destructor falls back to harsher means if this did not end
  // the server. Returns true when `zest umount` succeeded and the server
  // exited 0.
  bool Unmount(std::string* report);

  // Everything the server wrote to stderr so far.
  std::string ServerStderr() const;

  // Unmounts (as Unmount, unless that was done) and serves the same source on the same
  // mountpoint again, with the same arguments: for pmfs, the same pool.
  bool Restart(std::string* error);

 private:
  ZestMount() = default;
  // Starts the server with argv_ and waits (10 s) for the mount.
  bool Launch(std::string* error);
  void Teardown();

  std::vector<std::string> argv_;

  std::string fs_;
  std::string pool_;  // pmfs: a pool made for this mount, removed after
  std::string mountpoint_;
  pid_t pid_ = -1;
  int stderr_fd_ = -1;            // O_TMPFILE holding the child's stderr
  unsigned long fuse_minor_ = 0;  // /sys/fs/fuse/connections/<minor>
  bool have_minor_ = false;
  bool torn_down_ = false;
};

// A fresh directory inside a directory someone else already mounted.
class ExistingDir : public SubjectMount {
 public:
  static std::unique_ptr<ExistingDir> Create(const std::string& parent,
                                             std::string* error);
  ~ExistingDir() override;
  const std::string& path() const override { return path_; }
  std::string describe() const override { return "existing dir " + path_; }

 private:
  std::string path_;
};

// The subject for a test: ZEST_TEST_SUBJECT=<dir> if set, else a ZestMount
// of FS with ARGS. Null with *error on failure.
std::unique_ptr<SubjectMount> StartSubject(const std::string& fs,
                                           const std::vector<std::string>& args,
                                           std::string* error);

// A fresh directory on tmpfs (/dev/shm), removed recursively on destruction.
class TmpfsDir {
 public:
  TmpfsDir();
  ~TmpfsDir();
  TmpfsDir(const TmpfsDir&) = delete;
  TmpfsDir& operator=(const TmpfsDir&) = delete;
  const std::string& path() const { return path_; }
  bool ok() const { return !path_.empty(); }

 private:
  std::string path_;
};

// Removes PATH and everything under it (no symlinks followed). Best effort.
void RemoveTree(const std::string& path);

// Reads /proc/self/mountinfo; returns the fs type of the mount at PATH, or
// "" when PATH is not a mountpoint. *minor gets the device minor.
std::string MountTypeAt(const std::string& path,
                        unsigned long* minor = nullptr);

}  // namespace zest::testing

// In a TEST body: skip when FUSE is unusable, else start the subject into
// VAR (a std::unique_ptr<SubjectMount>) or fail the test.
#define ZEST_START_SUBJECT_OR_SKIP(var, fs, ...)                         \
  std::unique_ptr<::zest::testing::SubjectMount> var;                    \
  do {                                                                   \
    std::string zest_reason_ = ::zest::testing::FuseUnavailableReason(); \
    if (!zest_reason_.empty()) GTEST_SKIP() << zest_reason_;             \
    std::string zest_err_;                                               \
    var = ::zest::testing::StartSubject(fs, {__VA_ARGS__}, &zest_err_);  \
    ASSERT_TRUE(var) << "cannot start subject: " << zest_err_;           \
  } while (0)
