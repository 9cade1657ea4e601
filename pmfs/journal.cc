#include "pmfs/journal.h"

#include <fmt/format.h>

#include "base/log.h"

namespace zest::pmfs {
namespace {

constexpr size_t kRecordAlign = 8;
size_t padded(size_t len) { return (len + kRecordAlign - 1) & ~(kRecordAlign - 1); }

// The header checksum: CRC32C over `seq` and `bytes` (16 bytes, as they lie
// in the header), continued over the record bytes.
uint32_t journal_csum(uint64_t seq, uint64_t bytes, const std::byte* recs) {
  uint64_t sb[2] = {seq, bytes};
  uint32_t c = crc32c(sb, sizeof(sb));
  return crc32c(recs, bytes, c);
}

}  // namespace

Transaction& Transaction::local() {
  thread_local Transaction tx;
  tx.clear();
  return tx;
}

void Transaction::put(uint64_t dest, const void* src, size_t len) {
  JournalRecord r{};
  r.dest = dest;
  r.len = static_cast<uint32_t>(len);
  // Appended, not resized and overwritten: a journaled 4 KiB overwrite
  // would otherwise zero its bytes first.
  const auto* rb = reinterpret_cast<const std::byte*>(&r);
  const auto* sb = static_cast<const std::byte*>(src);
  buf_.insert(buf_.end(), rb, rb + sizeof(r));
  buf_.insert(buf_.end(), sb, sb + len);
  buf_.insert(buf_.end(), padded(len) - len, std::byte{0});
  ++records_;
}

Journal::Journal(pmem::PoolMap* pool, uint64_t start_block, uint64_t blocks,
                 uint64_t min_dest)
    : pool_(pool),
      off_(start_block * kBlockSize),
      capacity_(blocks * kBlockSize - sizeof(JournalHeader)),
      min_dest_(min_dest) {}

template <class F>
bool Journal::for_each_record(const std::byte* recs, uint64_t bytes, F&& f) const {
  uint64_t pos = 0;
  while (pos < bytes) {
    if (bytes - pos < sizeof(JournalRecord)) return false;
    JournalRecord r;
    std::memcpy(&r, recs + pos, sizeof(r));
    pos += sizeof(r);
    if (r.len == 0 || padded(r.len) > bytes - pos) return false;
    if (r.dest < min_dest_ || r.dest > pool_->size() || r.len > pool_->size() - r.dest) {
      return false;
    }
    f(r.dest, recs + pos, r.len);
    pos += padded(r.len);
  }
  return true;
}

Status Journal::recover(std::string* why) {
  std::lock_guard lock(mu_);
  JournalHeader h;
  std::memcpy(&h, pool_->at<JournalHeader>(off_), sizeof(h));
  if (h.magic != kJournalMagic) {
    *why = "journal header is damaged (bad magic)";
    return Errno(EUCLEAN);
  }
  seq_ = h.seq;
  if (h.seq == 0 || h.commit != h.seq) return {};  // nothing committed
  // Header and records are written together and fenced once (commit()), so
  // a crash in between leaves a mix that fails the checksum: that
  // transaction never committed (its operation never returned) and the one
  // before it was applied and fenced before this one started.
  if (h.bytes > capacity_ || h.bytes % 8 != 0) {
    log_info("pmfs: journal transaction {} is torn (never committed); ignored", h.seq);
    return {};
  }
  const std::byte* recs = pool_->bytes(off_ + sizeof(h), h.bytes).data();
  if (journal_csum(h.seq, h.bytes, recs) != h.csum) {
    log_info("pmfs: journal transaction {} is torn (never committed); ignored", h.seq);
    return {};
  }
  bool in_place = true;
  if (!for_each_record(recs, h.bytes, [&](uint64_t dest, const std::byte* src, size_t len) {
        if (std::memcmp(pool_->bytes(dest, len).data(), src, len) != 0) in_place = false;
      })) {
    *why = fmt::format("committed journal transaction {} has a malformed record", h.seq);
    return Errno(EUCLEAN);
  }
  if (in_place) return {};
  if (pool_->read_only()) {
    *why = "the journal holds a committed transaction not yet applied; open the pool "
           "read-write once to recover it";
    return Errno(EROFS);
  }
  (void)for_each_record(recs, h.bytes, [&](uint64_t dest, const std::byte* src, size_t len) {
    pool_->write(dest, src, len);
    pool_->flush(dest, len);
  });
  pool_->drain();
  return {};
}

void Journal::quiesce() {
  std::lock_guard lock(mu_);
  if (!pool_->read_only()) pool_->drain();
}

Status Journal::commit(const Transaction& tx) {
  if (tx.empty()) return {};
  if (tx.bytes() > capacity_) return Errno(ENOSPC);
  if (pool_->read_only()) return Errno(EROFS);
  std::lock_guard lock(mu_);
  if (halted_) return Errno(EIO);
  const uint64_t seq = seq_ + 1;
  const std::byte* recs = tx.data().data();
  // Step 0: a fence, so the data and new blocks the operation wrote
  // (non-temporally) before calling us are persistent before anything can
  // point to them, and so is the previous transaction's in-place apply
  // before step 1 overwrites its records.
  pool_->drain();
  // Step 1: the records and the whole header tail (commit = seq, seq,
  // bytes, csum), then one fence. The checksum makes this atomic: a crash
  // before the fence leaves either the old transaction intact (already
  // applied and fenced, so replaying it is harmless) or a mix that fails
  // the checksum, which recovery ignores as torn (never committed).
  pool_->write_nt(off_ + sizeof(JournalHeader), recs, tx.bytes());
  struct {
    uint64_t commit;
    uint64_t seq;
    uint64_t bytes;
    uint32_t csum;
    uint32_t reserved;
  } tail{seq, seq, tx.bytes(), journal_csum(seq, tx.bytes(), recs), 0};
  static_assert(offsetof(JournalHeader, commit) == 8 && offsetof(JournalHeader, seq) == 16 &&
                offsetof(JournalHeader, csum) == 32);
  pool_->write_nt(off_ + offsetof(JournalHeader, commit), &tail, sizeof(tail));
  pool_->drain();  // committed: the operation is durable from here on
  seq_ = seq;
  if (halt_countdown_ && --halt_countdown_ == 0) {
    halted_ = true;  // simulated crash between commit and apply
    return {};
  }
  // Step 2: apply in place and flush. Not fenced here: the next commit's
  // step 0 fences it before step 1 overwrites these records, and until
  // then recovery would replay them. That saves one fence per operation.
  // Non-temporal: no read-for-ownership of the destination lines and no
  // separate flush (journaled data records are whole 4 KiB blocks at most).
  (void)for_each_record(recs, tx.bytes(), [&](uint64_t dest, const std::byte* src, size_t len) {
    pool_->write_nt(dest, src, len);
  });
  return {};
}

}  // namespace zest::pmfs
