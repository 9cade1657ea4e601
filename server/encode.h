// Conversions between the plugin API's value types and the wire structs.
#pragma once

#include <cmath>

#include "abi/fuse_abi.h"
#include "fs/types.h"

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

// backing_id: for a Passthrough open, the id the server registered (0 when
// it could not: the open then falls back to direct I/O).
inline void encode_open(const fs::OpenInfo& o, abi::fuse_open_out* out,
                        int32_t backing_id = 0) {
  *out = {};
  out->fh = o.fh;
  uint32_t f = 0;
  switch (o.mode) {
    case fs::IoMode::Direct:
      f |= abi::FOPEN_DIRECT_IO;
      if (o.parallel_direct_writes) f |= abi::FOPEN_PARALLEL_DIRECT_WRITES;
      break;
    case fs::IoMode::Cached:
      if (o.keep_cache) f |= abi::FOPEN_KEEP_CACHE;
      break;
    case fs::IoMode::Passthrough:
      if (backing_id > 0) {
        f |= abi::FOPEN_PASSTHROUGH;
        out->backing_id = backing_id;
      } else {
        // The file system serves read/write itself then.
        f |= abi::FOPEN_DIRECT_IO;
        if (o.parallel_direct_writes) f |= abi::FOPEN_PARALLEL_DIRECT_WRITES;
      }
      break;
  }
  if (o.nonseekable) f |= abi::FOPEN_NONSEEKABLE;
  out->open_flags = f;
}

}  // namespace zest::server
