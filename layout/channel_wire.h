// The client channel's wire format (docs/layouts.md, "The client channel").
//
// Transport: a SOCK_SEQPACKET Unix socket per client (one message per
// request and per reply, boundaries kept), plus a second socket the server
// hands over at ATTACH for recalls (server -> client) and returns (client
// -> server, no reply), plus a shared-memory mailbox (mailbox.h) that
// carries the same messages without system calls, except ATTACH and LEASE
// (they carry descriptors). Every integer is native-endian (both ends are on
// this machine); every message starts with a header, and a message whose
// length does not match its op is refused (EPROTO) without being acted on.
// File descriptors travel as SCM_RIGHTS: the proof fd with LEASE; the
// state table, the notify socket and (if granted) the pool with ATTACH's
// reply. Anything else received with a message is closed unread.
//
// Version 1. A server refuses a client of another major version (EPROTO).
#pragma once

#include <cstddef>
#include <cstdint>

namespace zest::layout::wire {

inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kMaxMessage = 64 * 1024;
inline constexpr uint32_t kMaxExtents = 1024;  // per MAP reply and COMMIT

enum Op : uint32_t {
  kAttach = 1,  // first message, once
  kLease = 2,   // + proof fd
  kMap = 3,
  kCommit = 4,
  kReturn = 5,  // on either socket; no reply on the notify socket
  kRecall = 6,  // server -> client, notify socket only
  kStats = 7,   // lease counters (tests, zest stat)
};

struct Request {
  uint32_t op;
  uint32_t len;  // bytes of the whole message
  uint64_t seq;  // echoed in the reply
};

struct Reply {
  int32_t error;  // 0 or a positive errno
  uint32_t len;   // bytes of the whole message
  uint64_t seq;
};

// ATTACH
inline constexpr uint32_t kAttachWantWrite = 1u << 0;  // ask for a writable pool
struct AttachIn {
  uint32_t version;
  uint32_t flags;
};
enum PoolAccess : uint32_t { kPoolNone = 0, kPoolRead = 1, kPoolWrite = 2 };
struct AttachOut {
  uint32_t version;
  uint32_t pool_access;  // PoolAccess; with kPoolNone no pool fd is sent
  uint64_t pool_size;
  uint32_t block_size;
  uint32_t table_slots;
  uint32_t persist;  // 0: stores need a fence; 1: msync of the pages too
  uint32_t recall_timeout_ms;
  uint64_t fs_dev;  // st_dev of the mount
  // fds, in order: state table (read-only), notify socket, mailbox
  // (mailbox.h: MAP, COMMIT, RETURN and STATS may go there), pool (if any)
};

// LEASE (+ proof fd: opened through the mount, not O_PATH)
enum LeaseModeWire : uint32_t { kRead = 1, kWrite = 2 };
struct LeaseIn {
  uint32_t mode;
  uint32_t reserved;
  uint64_t off;
  uint64_t len;  // ~0: to the end of the file
};
struct LeaseOut {
  uint64_t id;
  uint64_t word;  // the slot's Valid word
  uint64_t ino;
  uint32_t slot;
  uint32_t reserved;
};

// MAP
enum IntentWire : uint32_t { kIntentRead = 1, kIntentWrite = 2 };
struct MapIn {
  uint64_t lease;
  uint64_t ino;
  uint64_t off;
  uint64_t len;
  uint32_t intent;
  uint32_t reserved;
};
enum ExtentState : uint32_t { kWritten = 1, kUnwritten = 2, kHole = 3 };
struct Extent {
  uint64_t offset;
  uint64_t length;
  uint64_t pool_offset;
  uint32_t state;
  uint32_t reserved;
};
struct MapOut {
  uint64_t generation;
  uint64_t file_size;  // at the time of the map
  uint32_t count;      // Extents that follow (at most kMaxExtents)
  uint32_t reserved;
  // Extent extents[count]
};

// COMMIT
inline constexpr uint64_t kNoSize = ~0ull;
struct CommitIn {
  uint64_t lease;
  uint64_t ino;
  uint64_t generation;
  uint64_t new_size;  // kNoSize: leave the size
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  uint32_t count;  // Extents that follow (at most kMaxExtents)
};

// RETURN (request socket: replied; notify socket: not). With
// kReturnSetMtime, a write lease first sets the file's mtime (and ctime to
// now), as a COMMIT of no extents: the time of overwrites made in place.
inline constexpr uint32_t kReturnSetMtime = 1u << 0;
struct ReturnIn {
  uint64_t lease;
  uint64_t ino;
  uint64_t generation;  // the layout generation the client mapped under
  int64_t mtime_sec;
  uint32_t mtime_nsec;
  uint32_t flags;
};

// RECALL (server -> client)
struct RecallOut {
  uint64_t lease;
};

struct StatsOut {
  uint64_t granted, returned, recalled, fenced, active, zombies;
};

}  // namespace zest::layout::wire
