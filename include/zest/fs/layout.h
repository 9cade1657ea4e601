// Layouts: a file system hands out its block map, so that whoever moves the
// data (a direct-access client, a pNFS block server) reads and writes the
// pool itself, and takes it back with a generation (docs/layouts.md;
// it says what is done and what is not).
//
// This is the file system's half: map and commit, and the hook through
// which the lease manager (layout/) keeps freed blocks from being reused
// while a lease may still point at them. Leases, recall and fencing live in
// layout/, independent of any file system. A file system that stores files
// in one byte-addressable pool offers it by returning a LayoutProvider from
// FileSystem::layouts(); the others return nullptr (the default), meaning
// ENOTSUP.
//
// Units: bytes, every offset and length a multiple of the file system's
// block size (4096 for pmfs). Extents are sorted by file offset and do not
// overlap.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <span>
#include <vector>

#include "zest/result.h"
#include "zest/fs/types.h"

namespace zest::fs {

// File bytes [offset, offset + length) and what backs them.
struct LayoutExtent {
  enum class State : uint8_t {
    Written,    // pool bytes at pool_offset are the file's data
    Unwritten,  // blocks allocated at pool_offset, the file reads zeros there
    Hole,       // nothing allocated; pool_offset is 0 and means nothing
  };
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t pool_offset = 0;
  State state = State::Hole;
};

enum class LayoutIntent : uint8_t { Read, Write };

struct Layout {
  // The file's layout generation when the map was taken: it changes
  // whenever blocks of the file may move or be freed (truncate, punch,
  // zero range, a copy-on-write write, the file being freed), and commit()
  // refuses extents mapped under another one.
  uint64_t generation = 0;
  uint64_t file_size = 0;  // the file's size when the map was taken
  std::vector<LayoutExtent> extents;
};

// Who may still hold maps of a file: the lease manager answers for its
// leases, returned or not yet acknowledged after a fence.
class LayoutHolds {
 public:
  // True while someone may still load or store through a map of `ino`.
  // Called by the file system with its own locks held: must not call back.
  virtual bool held(Ino ino) = 0;

 protected:
  ~LayoutHolds() = default;
};

class LayoutProvider {
 public:
  // The extents that back [offset, offset + length) of regular file `ino`,
  // the range rounded out to whole blocks.
  //  Read:  clipped to the end of the file (a range starting at or past it
  //         gives no extents); holes, unwritten and written extents as
  //         they are. Changes nothing.
  //  Write: not clipped. Holes in the range (also past the end of the file)
  //         get blocks allocated durably, in one transaction, as unwritten
  //         extents, so the map has no holes and no stale data is ever
  //         readable. The size and the times do not change. The caller
  //         writes unwritten extents in place and then commit()s them;
  //         written extents it may overwrite in place (not crash-atomic, as
  //         any store to the pool).
  // Errors: ENOENT (no such inode), EISDIR / EINVAL (not a regular file),
  // EINVAL (length 0), EFBIG (range past the maximum file size), EROFS
  // (Write on a read-only mount), ENOSPC (Write: not enough free blocks;
  // nothing allocated), E2BIG (Write: the range needs more extent changes
  // than one transaction holds; map less).
  virtual Result<Layout> map(Ino ino, uint64_t offset, uint64_t length, LayoutIntent intent) = 0;

  // Makes data the caller wrote into mapped extents part of the file: in
  // one transaction every extent in `extents` (sorted, non-overlapping,
  // `state` ignored) turns written, the size becomes new_size if given and
  // larger than the current one (commit never shrinks; a smaller or equal
  // new_size is no error and changes nothing), mtime becomes `mtime` and
  // ctime now. Each extent must currently be unwritten at exactly that
  // pool offset, or written there already (committing twice is harmless).
  // A new_size larger than the file must end inside a block that is
  // written once the extents are flipped; the bytes of that block past
  // new_size are the caller's to zero.
  // Errors: ENOENT (no such inode), EISDIR / EINVAL (not a regular file),
  // ESTALE (`generation` is not the file's current one, or the file was
  // freed: map again), EINVAL (an extent is empty, not block aligned,
  // unsorted or overlapping, or does not match the current map; new_size
  // not inside a written block; mtime's tv_nsec out of range), EROFS
  // (read-only mount), E2BIG (more extent changes than one transaction
  // holds; commit in pieces). On any error nothing changed.
  virtual Status commit(Ino ino, uint64_t generation, std::span<const LayoutExtent> extents,
                        std::optional<uint64_t> new_size, timespec mtime) = 0;

  // Deferred free (docs/layouts.md, deferred frees): with `holds` set, data
  // blocks a file frees while holds->held(ino) is true are not reused: they
  // wait (DRAM only; on the media they are free) until release_held(ino).
  // The lease manager calls release_held(ino) once held(ino) turned false,
  // without its own locks held. nullptr: blocks are reused at once.
  virtual void set_holds(LayoutHolds* holds) = 0;
  virtual void release_held(Ino ino) = 0;
  // Blocks waiting in deferred frees, for statfs-minded tests and stats.
  virtual uint64_t deferred_blocks() const = 0;

 protected:
  ~LayoutProvider() = default;
};

}  // namespace zest::fs
