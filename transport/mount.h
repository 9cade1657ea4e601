// FuseMount: a mounted FUSE file system and the /dev/fuse descriptor that
// serves it. Mounting uses mount(2) when we have CAP_SYS_ADMIN and falls
// back to fusermount3 (which hands the fd back over a socket) otherwise.
//
// Invariant: while a FuseMount owns a valid fd, the mount exists or the
// kernel has already dropped it; the destructor detaches the mount (lazy
// unmount) unless unmount() or release() was called.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/fd.h"
#include "zest/result.h"

namespace zest::transport {

struct MountOptions {
  std::string fsname = "zest";  // first column of /proc/mounts
  std::string subtype = "zest"; // type shows as fuse.<subtype>
  bool allow_other = true;
  bool default_permissions = true;
  bool read_only = false;
  // Device nodes may be opened / set-id bits take effect (mount(8) dev,
  // suid). Off by default, as for every FUSE mount; only root may turn
  // them on (fusermount3 refuses them to others).
  bool dev = false;
  bool suid = false;
  bool exec = true;
  // The VFS atime flags: MS_NOATIME, MS_STRICTATIME, MS_NODIRATIME,
  // MS_LAZYTIME (0: relatime, the kernel's default). FUSE inodes are
  // S_NOATIME, so these only show in /proc/mounts; the file system applies
  // the policy itself.
  unsigned long atime_flags = 0;
  uint32_t max_read = 0;        // 0: kernel default
  // Extra comma-separated options passed through to the kernel (-o).
  std::vector<std::string> extra;
};

// Describes why a mountpoint cannot be used, or "" when it can.
// Checks: exists, is a directory, is not already a mount point.
Result<void> check_mountpoint(const std::string& mountpoint, std::string* why);

// True when `path` is a mount point in this mount namespace.
bool is_mount_point(const std::string& path);

class FuseMount {
 public:
  static Result<FuseMount> mount(const std::string& mountpoint,
                                 const MountOptions& opts, std::string* why);
  FuseMount() = default;
  FuseMount(FuseMount&& o) noexcept { *this = std::move(o); }
  FuseMount& operator=(FuseMount&&) noexcept;
  ~FuseMount();

  int fd() const { return fd_.get(); }
  const std::string& mountpoint() const { return mountpoint_; }
  bool privileged() const { return privileged_; }
  // The connection's device number (its fusectl directory is its minor),
  // read from /proc/self/mountinfo, so it never calls into the file system.
  dev_t device() const { return device_; }

  // Detaches the mount (MNT_DETACH, or fusermount3 -u -z). Idempotent.
  void unmount();

 private:
  UniqueFd fd_;
  std::string mountpoint_;
  bool privileged_ = false;
  bool mounted_ = false;
  dev_t device_ = 0;
};

// Unmounts a FUSE mount point from outside the serving process (zest umount).
Result<void> unmount_path(const std::string& mountpoint, bool lazy,
                          std::string* why);

}  // namespace zest::transport
