// Conversions between the plugin API's value types and the wire structs.
#pragma once

#include <fcntl.h>

#include <cmath>

#include "abi/fuse_abi.h"
#include "zest/fs/types.h"

namespace zest::server {

inline void encode_attr(const fs::Attr& a, abi::fuse_attr* out) {
  *out = {};
  out->ino = a.ino;
  out->size = a.size;
  out->blocks = a.blocks;
  out->atime = static_cast<uint64_t>(a.atime.tv_sec);
  out->mtime = static_cast<uint64_t>(a.mtime.tv_sec);
  out->ctime = static_cast<uint64_t>(a.ctime.tv_sec);
  out->atimensec = static_cast<uint32_t>(a.atime.tv_nsec);
  out->mtimensec = static_cast<uint32_t>(a.mtime.tv_nsec);
  out->ctimensec = static_cast<uint32_t>(a.ctime.tv_nsec);
  out->mode = a.mode;
  out->nlink = a.nlink;
  out->uid = a.uid;
  out->gid = a.gid;
  out->rdev = a.rdev;
  out->blksize = a.blksize;
}

inline void encode_statx(const fs::StatxAttr& s, abi::fuse_statx* out) {
  *out = {};
  const fs::Attr& a = s.attr;
  out->mask = s.mask;
  out->blksize = a.blksize;
  out->attributes = s.attributes;
  out->attributes_mask = s.attributes_mask;
  out->nlink = a.nlink;
  out->uid = a.uid;
  out->gid = a.gid;
  out->mode = static_cast<uint16_t>(a.mode);
  out->ino = a.ino;
  out->size = a.size;
  out->blocks = a.blocks;
  auto ts = [](const timespec& t, abi::fuse_sx_time* o) {
    o->tv_sec = t.tv_sec;
    o->tv_nsec = static_cast<uint32_t>(t.tv_nsec);
  };
  ts(a.atime, &out->atime);
  ts(s.btime, &out->btime);
  ts(a.ctime, &out->ctime);
  ts(a.mtime, &out->mtime);
  // rdev as the kernel's new_encode_dev() split (fuse_statx_to_attr joins
  // them with MKDEV).
  out->rdev_major = (a.rdev & 0xfff00) >> 8;
  out->rdev_minor = (a.rdev & 0xff) | ((a.rdev >> 12) & 0xfff00);
}

// Splits a timeout in seconds into the protocol's seconds + nanoseconds.
inline void encode_timeout(double t, uint64_t* sec, uint32_t* nsec) {
  if (!(t > 0)) {
    *sec = 0;
    *nsec = 0;
    return;
  }
  double whole = std::floor(t);
  *sec = static_cast<uint64_t>(whole);
  *nsec = static_cast<uint32_t>((t - whole) * 1e9);
}

inline void encode_entry(const fs::Entry& e, abi::fuse_entry_out* out) {
  *out = {};
  out->nodeid = e.ino;
  out->generation = e.generation;
  encode_timeout(e.entry_timeout, &out->entry_valid, &out->entry_valid_nsec);
  encode_timeout(e.attr_timeout, &out->attr_valid, &out->attr_valid_nsec);
  encode_attr(e.attr, &out->attr);
}

// The kernel I/O mode for a file the file system serves itself (Direct, or
// Passthrough without a backing id), chosen so that the file stays coherent
// (docs/architecture.md, "I/O modes and coherence"):
//  - opened with O_DIRECT: FOPEN_DIRECT_IO, every read and write reaches the
//    file system, as the program asked;
//  - otherwise: the page cache, written through (the writeback cache is not
//    agreed), kept across opens when the file system says so
//    (OpenInfo::keep_cache; memfs and pmfs do unless atime needs a read to
//    reach them and nothing else has the file open). A buffered
//    open must not be FOPEN_DIRECT_IO: the kernel (fs/fuse/file.c,
//    fuse_direct_io) flushes and invalidates the written range before a
//    direct write but not after it, so a page a shared mapping faults back
//    in meanwhile still holds the old bytes, and its writeback later lands
//    over the direct write. Through the page cache, pwrite and the mapping
//    change the same page, and each write still reaches the file system
//    before it returns.
//  - always_direct (-o direct_io, or the writeback cache agreed, when the
//    page cache would not write through): every open is FOPEN_DIRECT_IO,
//    and the server did not agree FUSE_DIRECT_IO_ALLOW_MMAP, so shared
//    mappings are refused rather than incoherent.
inline uint32_t direct_open_flags(const fs::OpenInfo& o, uint32_t open_flags,
                                  bool always_direct) {
  if ((open_flags & O_DIRECT) || always_direct) {
    uint32_t f = abi::FOPEN_DIRECT_IO;
    if (o.parallel_direct_writes) f |= abi::FOPEN_PARALLEL_DIRECT_WRITES;
    return f;
  }
  return 0;
}

// backing_id: for a Passthrough open, the id the server registered (0 when
// it could not: the open then falls back to what Direct does). open_flags:
// the open(2) flags of the request.
inline void encode_open(const fs::OpenInfo& o, abi::fuse_open_out* out,
                        int32_t backing_id = 0, uint32_t open_flags = 0,
                        bool always_direct = false) {
  *out = {};
  out->fh = o.fh;
  uint32_t f = 0;
  switch (o.mode) {
    case fs::IoMode::Direct:
      f |= direct_open_flags(o, open_flags, always_direct);
      if (!(f & abi::FOPEN_DIRECT_IO) && o.keep_cache) f |= abi::FOPEN_KEEP_CACHE;
      break;
    case fs::IoMode::Cached:
      if (o.keep_cache) f |= abi::FOPEN_KEEP_CACHE;
      break;
    case fs::IoMode::Passthrough:
      if (backing_id > 0) {
        f |= abi::FOPEN_PASSTHROUGH;
        out->backing_id = backing_id;
      } else {
        f |= direct_open_flags(o, open_flags, always_direct);
        if (!(f & abi::FOPEN_DIRECT_IO) && o.keep_cache) f |= abi::FOPEN_KEEP_CACHE;
      }
      break;
  }
  if (o.nonseekable) f |= abi::FOPEN_NONSEEKABLE;
  out->open_flags = f;
}

}  // namespace zest::server
