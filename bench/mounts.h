// The scratch space and mounts the driver creates, each owned by an RAII
// guard so that a failed or interrupted run leaves nothing mounted, no
// server running and no directory behind.
//
// Nothing here ever removes recursively: a guard removes exactly the
// directory or file it created, after the mount on it is gone, so an
// unmount that fails can never turn into deleting through a mount.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/child_process.h"
#include "bench/outcome.h"

namespace zest::bench {

// A private directory (mkdtemp) for mountpoints, logs and the compiled
// libfuse example. Removes what was registered with it, newest first, then
// itself.
class ScratchDir {
 public:
  static Outcome<ScratchDir> create(const std::string& parent);
  ScratchDir() = default;
  ScratchDir(ScratchDir&& o) noexcept;
  ScratchDir& operator=(ScratchDir&&) = delete;
  ~ScratchDir();

  const std::string& path() const { return path_; }
  // Creates path()/name as a directory and registers it for removal.
  Outcome<std::string> make_dir(const std::string& name);
  // Registers path()/name (a file something else will create) for removal.
  std::string file(const std::string& name);

 private:
  std::string path_;
  std::vector<std::string> dirs_;
  std::vector<std::string> files_;
};

// The "major:minor" of what is mounted on `mountpoint`, per
// /proc/self/mountinfo, or nullopt when nothing is.
std::optional<std::string> mount_device(const std::string& mountpoint);

// True if `mountpoint` is the mount point of an entry in /proc/self/mountinfo.
bool is_mounted(const std::string& mountpoint);

// Unmounts, falling back to a lazy unmount if the mount is busy.
Outcome<void> unmount(const std::string& mountpoint);

// A kernel mount made with mount(2) as root (a private tmpfs, or ext4 on a
// loop device) on an empty directory. Unmounted when the guard goes.
class KernelMount {
 public:
  static Outcome<KernelMount> tmpfs(const std::string& dir);
  static Outcome<KernelMount> mount(const std::string& source,
                                    const std::string& dir,
                                    const std::string& fstype);
  KernelMount() = default;
  KernelMount(KernelMount&& o) noexcept;
  KernelMount& operator=(KernelMount&&) = delete;
  ~KernelMount();
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
};

// A loop device attached to an image file (`losetup --find --show`),
// detached (`losetup -d`) when the guard goes. Whatever is mounted from it
// must be unmounted first: declare the KernelMount after this guard.
class LoopDevice {
 public:
  static Outcome<LoopDevice> attach(const std::string& image,
                                    const std::string& log_path);
  LoopDevice() = default;
  LoopDevice(LoopDevice&& o) noexcept;
  LoopDevice& operator=(LoopDevice&&) = delete;
  ~LoopDevice();
  const std::string& device() const { return device_; }

 private:
  std::string device_;   // /dev/loopN
  std::string losetup_;  // the losetup program
};

// The first of /usr/sbin, /sbin, /usr/bin, /bin (and /usr/local/...) that
// holds an executable `name`, or empty. ChildProcess does not search PATH.
std::string find_program(const std::string& name);

// Runs argv to completion with its output in log_path; fails with how it
// ended and the log's last lines.
Outcome<void> run_program(const std::vector<std::string>& argv,
                          const std::string& log_path);

// A FUSE server run in the foreground as our child, mounted on `mountpoint`.
// Ready once the mount point appears in /proc/self/mountinfo. The guard
// unmounts (umount2, then fusermount3 -u -z) and then reaps the server.
class FuseMount {
 public:
  static Outcome<FuseMount> start(const std::vector<std::string>& argv,
                                  const std::string& mountpoint,
                                  const std::string& log_path,
                                  std::chrono::milliseconds timeout);
  FuseMount() = default;
  FuseMount(FuseMount&& o) noexcept;
  FuseMount& operator=(FuseMount&&) = delete;
  ~FuseMount();
  const std::string& path() const { return mountpoint_; }
  pid_t server_pid() const { return server_.pid(); }
  const std::string& log_path() const { return log_path_; }

 private:
  std::string mountpoint_;
  std::string log_path_;
  ChildProcess server_;
};

// Set from the SIGINT/SIGTERM handler; loops that wait or measure check it.
extern volatile int g_interrupted;
// Set by the StallWatchdog when it aborted a FUSE connection.
extern volatile int g_stalled;
// Bumped by the measuring thread after every call; the watchdog reads it.
extern std::atomic<uint64_t> g_progress;

}  // namespace zest::bench
