// libzest-direct's internals: an attachment (zest_direct) and its open
// files (Handle). docs/direct.md describes the protocol; this is the map.
//
// Locks of a FileState (one per file, shared by its handles):
//  - rw (ReaderLock): shared around every load from or store to the pool
//    (the fast path: no system call), exclusive for a moment to change the
//    lease or the cached extents, and by the recall listener to take the
//    lease away (it waits only for copies in flight, never for the server).
//  - slow (mutex): one slow path at a time (lease, map and commit round
//    trips); never held by the listener, so a recall is never stuck behind
//    a request that waits for that recall.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>  // std::shared_lock over ReaderLock
#include <unordered_map>
#include <vector>

#include "direct/channel_client.h"
#include "direct/reader_lock.h"
#include "direct/zest_direct.h"
#include "layout/channel_wire.h"
#include "layout/state_table.h"

namespace zest::direct {

namespace w = layout::wire;

// The extents of a file this client knows, by file offset.
class ExtentCache {
 public:
  void clear() { m_.clear(); }
  // Puts extents from a MAP reply in, replacing what they cover.
  void insert(const std::vector<w::Extent>& ext);
  // The extent holding byte `off`, or nullptr.
  const w::Extent* find(uint64_t off) const;
  // Turns [off, off + len) (block aligned, inside unwritten extents) written.
  void mark_written(uint64_t off, uint64_t len);

 private:
  void erase_range(uint64_t a, uint64_t b);
  std::map<uint64_t, w::Extent> m_;
};

struct Lease {
  uint64_t id = 0;  // 0: none
  uint64_t word = 0;
  uint32_t slot = 0;
  bool write = false;
};

// What the attachment knows of one file (inode): its lease, size and map,
// shared by every handle open on it, so that the client holds one lease per
// file and its handles never recall each other.
struct FileState {
  uint64_t ino = 0;
  ReaderLock rw;
  std::mutex slow;
  int handles = 0;  // open handles on it (zest_direct::handles_mu)
  // Under rw:
  Lease lease;
  uint64_t gen = 0;   // layout generation of `cache`
  uint64_t size = 0;  // the file's size under the lease, once size_known
  bool size_known = false;  // a map under this lease said it
  ExtentCache cache;
  // Overwrites in place since the last commit, and the time of the last
  // one: set under rw held shared (so atomics).
  std::atomic<bool> mtime_dirty{false};
  std::atomic<int64_t> mtime_ns{0};
  zest_recall_fn recall_cb = nullptr;
  void* recall_arg = nullptr;
  int recall_handle = -1;
};

struct Handle {
  int fd = -1;
  int flags = 0;
  bool owns_fd = true;  // false for zest_adopt: the caller closes it
  bool direct = false;  // a regular file of this mount, served from the pool
  int number = -1;
  std::shared_ptr<FileState> st;  // direct handles only
  std::atomic<bool> kernel_dirty{false};  // written through the kernel since fsync
};

}  // namespace zest::direct

struct zest_direct {
  zest::UniqueFd root;  // the mount point, for *at() calls
  dev_t dev = 0;
  bool direct = false;  // pool mapped, leases possible
  bool writable = false;
  zest::direct::ChannelClient chan;
  std::byte* pool = nullptr;
  uint64_t pool_size = 0;
  uint32_t block = 4096;
  bool msync_needed = false;
  const std::atomic<uint64_t>* table = nullptr;
  size_t table_bytes = 0;

  // Handles: a fixed table, looked up with one load.
  static constexpr int kMaxHandles = 65536;
  std::unique_ptr<std::atomic<zest::direct::Handle*>[]> handles;
  std::mutex handles_mu;  // allocation of numbers, leases_by_id
  std::vector<int> free_numbers;
  int next_number = 0;
  std::unordered_map<uint64_t, std::shared_ptr<zest::direct::FileState>> by_lease;
  std::unordered_map<uint64_t, std::weak_ptr<zest::direct::FileState>> files;  // by inode
  std::unordered_map<int, std::unique_ptr<zest::direct::Handle>> owned;

  // Counters, one padded copy per thread slot (the hot ones are bumped on
  // every read and write: a shared counter would bounce between cores).
  struct alignas(64) Counters {
    std::atomic<uint64_t> direct_reads{0}, direct_writes{0}, kernel_reads{0}, kernel_writes{0};
    std::atomic<uint64_t> leases{0}, recalls{0}, fenced{0}, maps{0}, commits{0}, retries{0};
  };
  static constexpr unsigned kCounterSlots = 16;
  Counters counters[kCounterSlots];
  Counters& stats() {
    static std::atomic<unsigned> next{0};
    thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % kCounterSlots;
    return counters[mine];
  }

  uint64_t table_word(uint32_t slot) const {
    return table[slot].load(std::memory_order_acquire);
  }
};

namespace zest::direct {

// file_io.cc. Errors are returned as -errno.
Handle* handle_of(zest_direct* d, int h);
ssize_t file_read(zest_direct* d, Handle& h, void* buf, size_t n, uint64_t off);
ssize_t file_write(zest_direct* d, Handle& h, const void* buf, size_t n, uint64_t off);
// Hands the lease back (request socket), with the mtime of overwrites.
int drop_lease(zest_direct* d, FileState& f);
// Sends the mtime of overwrites made in place since the last time.
int flush_mtime(zest_direct* d, FileState& f);
// Listener thread: the server wants lease `id` back.
void on_recall(zest_direct* d, uint64_t id);
// Slow-path steps (f.slow held): a lease that allows writing (or reading),
// proved by handle h's fd, and the extents of [off, off + len) in the cache.
int ensure_lease(zest_direct* d, Handle& h, bool write);
int map_range(zest_direct* d, FileState& f, uint64_t off, uint64_t len, bool write);
// Whether f's lease may be used now (f.rw held, shared or not).
bool lease_usable(const zest_direct* d, const FileState& f);

}  // namespace zest::direct
