// mirrorfs: a file system that mirrors a backing directory (like libfuse's
// passthrough_hp), written against zest's plugin API (zest/fs/filesystem.h).
//
// Every operation is done on the backing object itself, so what a caller
// sees through the mount is what the backing file system answers: sizes,
// st_blocks, times, errnos, xattrs. Regular files open in passthrough mode
// by default: the open answers with one backing fd per inode and the kernel
// reads and writes that file itself; where the server cannot set that up,
// it serves the file in direct mode and mirrorfs's read/write do the I/O.
// docs: mirrorfs/README.md.
#pragma once

#include <memory>
#include <string>

#include "zest/result.h"
#include "zest/fs/filesystem.h"
#include "zest/fs/types.h"

namespace zest::mirrorfs {

struct Options {
  // The directory to mirror; it becomes the root of the mount.
  std::string source;
  // How regular files are opened: Passthrough (the default), Direct (every
  // read/write through the server, pread/pwrite on a per-open fd) or Cached
  // (the kernel page cache, kept across opens).
  fs::IoMode io_mode = fs::IoMode::Passthrough;
  // Reads the server serves (every read without passthrough, or when the
  // server falls back from it) are answered from the backing fd
  // (DataReply::ok_fd); with `splice` the server splices those of at least
  // `splice_min` bytes from the backing file to the kernel instead of
  // copying them (README.md has the numbers behind the defaults).
  bool splice = true;
  uint32_t splice_min = fs::Capabilities{}.splice_min;
  // Answer every xattr call with ENOSYS, so the kernel stops sending them
  // (it then answers EOPNOTSUPP itself). FUSE clears SB_NOSEC, so without
  // this every passthrough write first asks the server for
  // security.capability (file_remove_privs in backing_file_write_iter): one
  // round trip per write. With it, passthrough writes never leave the
  // kernel; the price is no extended attributes on the mount.
  bool xattr = true;
  // How long the kernel may cache names and attributes. Changes made to the
  // backing directory behind the mount's back show up after this long.
  double entry_timeout = 1.0;
  double attr_timeout = 1.0;
  // File handles (NFS export): how many objects the kernel forgot mirrorfs
  // still finds by number, through their backing file handles (about 180
  // bytes each: 45 MiB at the default; README.md, "File handles"). Past it,
  // the least recently forgotten object's number is stale (ESTALE); a
  // lookup by name then gives the object a new number.
  size_t forgotten_handles = size_t{1} << 18;
};

// Opens `options.source` and builds the file system. On error *why says
// what is wrong with the source.
Result<std::unique_ptr<fs::FileSystem>> make_mirrorfs(const Options& options,
                                                      std::string* why);

}  // namespace zest::mirrorfs
