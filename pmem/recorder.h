// Recorder: the log of every store, flush and fence a PoolMap issues, for
// crash testing (pmem/crash_image.h builds the images a crash could leave).
//
// A Recorder is attached to one PoolMap (OpenOptions::recorder, or
// PoolMap::set_recorder). On attach it snapshots the pool, so the log plus
// that initial image are all a crash tester needs. Every write, write_nt,
// zero and store_u64 appends a STORE with the bytes as they landed in the
// pool; flush appends FLUSH; drain appends FENCE; write_nt and zero append
// STORE then FLUSH (they are non-temporal: stored and flushed, not fenced);
// persist appends FLUSH then FENCE. A test calls mark(tag) to say "operation
// N returned here"; marks are crash points too.
//
// Order: the pool performs each operation and appends its entry under the
// recorder's one mutex, so the log order is the order the operations took
// effect, also with several threads. Recording is a test mode: it is slow
// (a mutex, a copy of every stored byte, one write(2) per entry when
// streaming) and that is accepted.
//
// Streaming file format (host byte order, which is little-endian on every
// platform zest runs on; documented also in pmem/README.md):
//   header   8 bytes magic "ZPMREC01"
//            u64 pool size
//            u64 length of the initial image that follows (the pool size)
//            the initial image
//   records  u8 kind (1 STORE, 2 FLUSH, 3 FENCE, 4 MARK), 7 zero bytes,
//            u64 a, u64 b, then for STORE b payload bytes padded with zeros
//            to a multiple of 8.
//            STORE: a = pool offset, b = length; FLUSH: a = offset,
//            b = length; FENCE: a = b = 0; MARK: a = tag, b = 0.
// Each record is written with one write(2) as it happens, so a log survives
// the recording process being killed (everything appended before the kill is
// in the file; a record cut short at the end is dropped on reading).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/fd.h"
#include "zest/result.h"

namespace zest::pmem {

enum class OpKind : uint8_t { Store = 1, Flush = 2, Fence = 3, Mark = 4 };

// One log entry. STORE: offset/length and the stored bytes at data_pos in the
// log's data arena. FLUSH: offset/length. FENCE: nothing. MARK: tag.
struct LogEntry {
  OpKind kind = OpKind::Fence;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t tag = 0;
  uint64_t data_pos = 0;
};

// An in-memory log: entries in order, and every stored byte in one arena (no
// allocation per entry beyond the vectors' growth).
class StoreLog {
 public:
  void add_store(uint64_t offset, const void* bytes, uint64_t length);
  void add_flush(uint64_t offset, uint64_t length);
  void add_fence();
  void add_mark(uint64_t tag);

  const std::vector<LogEntry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  // The bytes of a STORE entry.
  std::span<const std::byte> bytes(const LogEntry& e) const {
    return {data_.data() + e.data_pos, static_cast<size_t>(e.length)};
  }
  void clear() {
    entries_.clear();
    data_.clear();
  }

 private:
  std::vector<LogEntry> entries_;
  std::vector<std::byte> data_;
};

// Reads a file written by a streaming Recorder. Fills *initial_image with
// the pool as it was when the recorder was attached. A truncated last record
// (the recorder was killed mid-write) is dropped silently.
Result<StoreLog> read_log_file(const std::string& path,
                               std::vector<std::byte>* initial_image,
                               std::string* why);

class Recorder {
 public:
  Recorder() = default;
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Also write every entry to `path` (created or truncated), in the format
  // above. Call before attaching the recorder to a pool.
  Status stream_to(const std::string& path, std::string* why);

  // "Operation N returned here": a crash point for the image builder.
  void mark(uint64_t tag);

  // A copy of the log so far, and the pool as it was at attach time.
  StoreLog log() const;
  std::vector<std::byte> initial_image() const;
  // Number of entries so far.
  size_t entry_count() const;
  // Forget the log so far and snapshot the pool anew as the initial image
  // (e.g. after mkfs, to test only what follows). Needs an attached pool.
  void restart();

 private:
  friend class PoolMap;

  // Called by PoolMap with mu_ held.
  void attach_locked(const std::byte* base, size_t size);
  void detach_locked();
  void store_locked(uint64_t off, const std::byte* landed, uint64_t len);
  void flush_locked(uint64_t off, uint64_t len);
  void fence_locked();
  void write_record_locked(OpKind kind, uint64_t a, uint64_t b,
                           const std::byte* payload);

  mutable std::mutex mu_;
  StoreLog log_;
  std::vector<std::byte> initial_;
  const std::byte* base_ = nullptr;  // the attached pool, for restart()
  size_t size_ = 0;
  UniqueFd file_;
  std::string file_path_;
  bool stream_failed_ = false;
};

}  // namespace zest::pmem
