// When an access updates atime: the mount's policy (mount(8)'s noatime,
// relatime, strictatime, nodiratime, lazytime) and the kernel's relatime
// rule, shared by the file systems that keep times themselves (memfs, pmfs).
//
// FUSE inodes are S_NOATIME in the kernel: the kernel never updates atime
// for a FUSE file system, so a file system that wants atime updates them
// when a READ or READDIR reaches it. Reads the kernel answers from its page
// cache do not reach the file system (docs/guarantees.md, "atime").
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <ctime>

namespace zest::fs {

struct AtimePolicy {
  enum class Mode : uint8_t {
    Relatime,  // the default: once after each change, and once a day
    Strict,    // every access (strictatime)
    None,      // never (noatime)
  };
  Mode mode = Mode::Relatime;
  bool dirs = true;   // false: nodiratime
  bool lazy = false;  // lazytime: updates may stay in memory until the
                      // inode is next written, fsync'ed or unmounted
};

inline bool ts_le(const timespec& a, const timespec& b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}

// Whether an access at `now` updates atime, as the kernel's
// atime_needs_update()/relatime_need_update() (fs/inode.c) decide it.
inline bool atime_needs_update(const AtimePolicy& p, bool is_dir, const timespec& atime,
                               const timespec& mtime, const timespec& ctime,
                               const timespec& now) {
  if (p.mode == AtimePolicy::Mode::None) return false;
  if (is_dir && !p.dirs) return false;
  if (atime.tv_sec == now.tv_sec && atime.tv_nsec == now.tv_nsec) return false;
  if (p.mode == AtimePolicy::Mode::Strict) return true;
  if (ts_le(atime, mtime) || ts_le(atime, ctime)) return true;
  return now.tv_sec - atime.tv_sec >= 24 * 60 * 60;
}

// For a file system that is the only writer of its data (memfs, pmfs) and
// serves buffered opens through the kernel's page cache: whether an open of
// an existing file keeps the kernel's cached pages (OpenInfo::keep_cache).
// It does, because a cache dropped while another open file writes through
// it can be refilled with the old bytes (docs/architecture.md, "I/O modes
// and coherence") — unless no other open of the file exists, so no write
// can be in flight, and the atime policy wants the next read to reach the
// file system (it is the only one that sees reads).
inline bool keep_cache_at_open(const AtimePolicy& p, bool others_open, uint32_t open_flags,
                               const timespec& atime, const timespec& mtime,
                               const timespec& ctime, const timespec& now) {
  if (others_open || (open_flags & O_NOATIME)) return true;
  return !atime_needs_update(p, false, atime, mtime, ctime, now);
}

// The fh bit a file system sets for an open with O_NOATIME (the kernel has
// checked that the caller owns the file), so that reads through it leave
// atime alone.
inline constexpr uint64_t kFhNoAtime = uint64_t(1) << 63;

}  // namespace zest::fs
