// Fixtures for the process-crash test: a pmfs pool that outlives its mounts,
// a `zest mount -f` server on it that the test can SIGKILL, and a runner for
// the zest tools that captures their output.
//
// tests/mount/zest_mount.h makes a fresh pool per mount and removes it with
// the mount; a crash test needs the same pool across a kill and a remount,
// so the pool and the server are separate RAII objects here. Every process
// is the test's own child, signalled by its own pid and always reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace zest::pcrash {

// A pmfs pool in /dev/shm made by `zest mkfs`, removed on destruction.
class Pool {
 public:
  static std::unique_ptr<Pool> Make(const std::string& size, std::string* error);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  const std::string& path() const { return path_; }

 private:
  Pool() = default;
  std::string path_;
};

// What a zest tool run did.
struct ToolRun {
  int status = -1;     // wait status; -1: could not run or timed out
  std::string output;  // stdout and stderr, interleaved
  bool exited(int code) const;
  std::string describe() const;  // "exit 4", "signal 9", "timed out"
};

// Runs `zest ARGS...` (ZEST_BINARY), capturing its output; kills it (its own
// pid) after `timeout`.
ToolRun RunZest(const std::vector<std::string>& args,
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

// `zest mount -f --fs pmfs POOL MNT` on a fresh mountpoint in /tmp.
class PoolMount {
 public:
  // Waits (10 s) for the fuse.zest mount to appear; null with *error (exit
  // status and stderr of the server) when it does not.
  static std::unique_ptr<PoolMount> Start(const std::string& pool, std::string* error);
  ~PoolMount();  // unmounts (or tears down a dead mount), removes the mountpoint
  PoolMount(const PoolMount&) = delete;
  PoolMount& operator=(const PoolMount&) = delete;

  const std::string& path() const { return mountpoint_; }
  pid_t pid() const { return pid_; }

  // SIGKILL to the server, reaped. Requests in flight fail (ENOTCONN) once
  // the process is gone and its /dev/fuse descriptor with it.
  void Kill();
  // After Kill(): detaches the dead mount (lazy umount) so the mountpoint
  // can be reused and the pool checked.
  void DetachDead();
  // `zest umount` and wait for the server; true when both succeeded.
  bool Unmount(std::string* report);
  std::string ServerStderr() const;

 private:
  PoolMount() = default;
  void Teardown();

  std::string mountpoint_;
  pid_t pid_ = -1;
  int stderr_fd_ = -1;  // O_TMPFILE with the server's stderr
};

}  // namespace zest::pcrash
