// PoolMap: a mapped pool, and the only way anything stores into it.
//
// A pool is a regular file (created sparse by mkfs), a file on a DAX mount,
// or a /dev/dax character device. It is mapped through libpmem2, which also
// supplies flush, drain (fence) and the non-temporal copies. What a persist
// promises depends on the memory under the mapping (see describe() and
// pmem/README.md):
//   - real persistent memory (devdax, or MAP_SYNC on a DAX mount: libpmem2
//     reports byte or cache-line granularity by itself): flush + fence make
//     stores survive a power cut.
//   - the page cache, Durability::Auto or CacheLine: the mapping is forced to
//     cache-line granularity (CPU cache flushes, no msync), so persist is as
//     cheap as on pmem, but the data only survives a crash of the server
//     process, not a power cut or a kernel crash.
//   - the page cache, Durability::Page: persist is msync of the pages; this
//     survives a power cut on a disk that honours flushes, and is slower.
//
// Invariants: every store into the pool goes through write / write_nt / zero
// / store_u64 (readers use at() and bytes()), so an attached Recorder sees
// all of them; offsets are checked against the pool size and a bad one
// aborts (it is a programming error, not an I/O error). The pool file is
// held with flock (exclusive when writable), so two servers cannot map the
// same pool.
//
// Thread-safety: the store/flush/fence calls may run concurrently on
// disjoint ranges (they are plain memory operations). open/create, moving
// and set_recorder are not concurrent with anything else on the same pool.
// Hot path: write/flush/drain allocate nothing and take no lock unless a
// recorder is attached.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/fd.h"
#include "zest/result.h"

struct pmem2_map;

namespace zest::pmem {

class Recorder;

enum class Durability {
  Auto,       // real pmem if present, else cache-line on the page cache
  CacheLine,  // same as Auto; asks explicitly for CPU cache flushes
  Page,       // on the page cache: msync per persist (real pmem: ignored)
};

// The store granularity the mapping has (libpmem2's terms): how far a store
// must be pushed to be persistent.
enum class Granularity {
  Byte,       // caches are in the persistence domain (eADR): a fence orders
  CacheLine,  // cache lines must be flushed, then fenced
  Page,       // pages must be msynced
};

const char* to_string(Durability d);
const char* to_string(Granularity g);
// Parses "auto", "cache-line" (or "cacheline"), "page"; false otherwise.
bool parse_durability(std::string_view text, Durability* out);

struct OpenOptions {
  Durability durability = Durability::Auto;
  bool read_only = false;
  // Take the pool's flock (exclusive if writable, shared if read-only).
  // Only a process that gets the pool from its owner (the direct-access
  // client, under the owner's leases) leaves this off.
  bool lock = true;
  // If set, attached at open: snapshots the pool and logs every store. It
  // must outlive the PoolMap (or be detached with set_recorder(nullptr)).
  Recorder* recorder = nullptr;
};

// Counters for benchmarks; relaxed, so only meaningful once writers stop.
struct PoolStats {
  uint64_t stores = 0;         // write, write_nt, zero, store_u64 calls
  uint64_t bytes_written = 0;  // bytes they stored
  uint64_t flushes = 0;        // flush calls (persist counts one)
  uint64_t fences = 0;         // drain calls (persist counts one)
};

class PoolMap {
 public:
  // Creates `path` (refusing an existing file: EEXIST) as a sparse file of
  // `size` bytes, a multiple of 4 KiB, and opens it.
  static Result<PoolMap> create(const std::string& path, uint64_t size,
                                std::string* why,
                                const OpenOptions& options = {});
  // Opens an existing pool: a regular file or a /dev/dax device.
  static Result<PoolMap> open(const std::string& path,
                              const OpenOptions& options, std::string* why);

  PoolMap(PoolMap&& o) noexcept;
  PoolMap& operator=(PoolMap&& o) noexcept;
  PoolMap(const PoolMap&) = delete;
  PoolMap& operator=(const PoolMap&) = delete;
  ~PoolMap();

  // --- what this pool is ---------------------------------------------------
  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  const std::byte* base() const { return base_; }
  Granularity granularity() const { return granularity_; }
  bool is_real_pmem() const { return real_pmem_; }
  bool read_only() const { return read_only_; }
  // Short name of the mode: "pmem", "cache-line" or "page".
  const char* mode() const;
  // The durability statement in plain language, for `zest stat` and logs,
  // e.g. "cache-line on page cache: survives a crash of the server process,
  // not a power cut".
  std::string describe() const;

  // --- stores: nothing else writes into the pool ---------------------------
  // Plain (cached) stores; need a later flush and fence to be persistent.
  void write(uint64_t off, const void* src, size_t len);
  // Non-temporal copy: stored and flushed, not fenced (drain() makes it
  // persistent). Best for large copies that will not be read back soon.
  void write_nt(uint64_t off, const void* src, size_t len);
  // Zeroes a range, non-temporally: stored and flushed, not fenced.
  void zero(uint64_t off, size_t len);
  // One aligned 8-byte store: it reaches media whole or not at all. `off`
  // must be a multiple of 8. Needs a later flush and fence.
  void store_u64(uint64_t off, uint64_t value);

  // --- making stores persistent ----------------------------------------------
  // Starts writing back the cache lines (or pages) of a range; not ordered.
  void flush(uint64_t off, size_t len);
  // Fence: every flush before it has reached the persistence domain.
  void drain();
  // flush + drain.
  void persist(uint64_t off, size_t len);

  // --- reads ---------------------------------------------------------------
  template <class T>
  const T* at(uint64_t off) const {
    check(off, sizeof(T));
    return reinterpret_cast<const T*>(base_ + off);
  }
  std::span<const std::byte> bytes(uint64_t off, size_t len) const {
    check(off, len);
    return {base_ + off, len};
  }

  // --- testing and measuring -----------------------------------------------
  // Attaches (snapshotting the pool) or, with nullptr, detaches a recorder.
  // Not concurrent with stores.
  void set_recorder(Recorder* recorder);
  Recorder* recorder() const { return recorder_; }
  PoolStats stats() const;
  void reset_stats();

 private:
  struct Counters {
    std::atomic<uint64_t> stores{0};
    std::atomic<uint64_t> bytes_written{0};
    std::atomic<uint64_t> flushes{0};
    std::atomic<uint64_t> fences{0};
  };
  using PersistFn = void (*)(const void*, size_t);
  using DrainFn = void (*)();
  using MemcpyFn = void* (*)(void*, const void*, size_t, unsigned);
  using MemsetFn = void* (*)(void*, int, size_t, unsigned);

  PoolMap() = default;
  static Result<PoolMap> open_fd(UniqueFd fd, const std::string& path,
                                 const OpenOptions& options, std::string* why);
  void check(uint64_t off, uint64_t len) const;
  void check_writable(const char* op) const;
  void release();

  std::string path_;
  UniqueFd fd_;
  pmem2_map* map_ = nullptr;
  std::byte* base_ = nullptr;
  uint64_t size_ = 0;
  Granularity granularity_ = Granularity::Page;
  bool real_pmem_ = false;
  bool read_only_ = false;
  PersistFn persist_fn_ = nullptr;
  PersistFn flush_fn_ = nullptr;
  DrainFn drain_fn_ = nullptr;
  MemcpyFn memcpy_fn_ = nullptr;
  MemsetFn memset_fn_ = nullptr;
  Recorder* recorder_ = nullptr;
  std::unique_ptr<Counters> counters_;
};

}  // namespace zest::pmem
