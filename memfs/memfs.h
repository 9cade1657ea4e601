// memfs: a POSIX file system in memory, written against zest's plugin API
// (zest/fs/filesystem.h). It behaves as tmpfs does as seen through stat(2) and
// the system calls (same st_size/st_blocks accounting, errnos, link counts,
// SEEK_DATA/SEEK_HOLE), so tmpfs can be its oracle in the mount tests.
// docs: memfs/README.md lists where it differs from tmpfs.
#pragma once

#include <cstdint>
#include <memory>

#include "zest/fs/atime.h"
#include "zest/fs/filesystem.h"
#include "zest/fs/types.h"

namespace zest::memfs {

struct Options {
  // Let the kernel cache writes (Cached files only).
  bool writeback_cache = false;
  // The I/O mode every open file gets; Cached files also keep their cache.
  fs::IoMode io_mode = fs::IoMode::Direct;
  // Test option: when non-zero, lookup/getattr/read/write are answered
  // from completion threads this long after the call (async replies).
  uint32_t reply_delay_us = 0;
  // statfs and ENOSPC: data pages (and long symlinks) count against this.
  uint64_t capacity_bytes = uint64_t{1} << 30;
  uint64_t max_inodes = uint64_t{1} << 20;
  // The root directory, as a fresh tmpfs mount has it.
  uint32_t root_mode = 01777;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  // How long the kernel may cache names and attributes. Every change goes
  // through the kernel, so caching is safe.
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  // When reads and directory listings update atime (-o noatime, ...).
  fs::AtimePolicy atime;
};

std::unique_ptr<fs::FileSystem> make_memfs(const Options& options);

}  // namespace zest::memfs
