#include "pmfs/journal.h"

#include <fmt/format.h>

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
  const size_t at = buf_.size();
  buf_.resize(at + sizeof(r) + padded(len));
  std::memcpy(buf_.data() + at, &r, sizeof(r));
  std::memcpy(buf_.data() + at + sizeof(r), src, len);
  if (padded(len) != len) {
    std::memset(buf_.data() + at + sizeof(r) + len, 0, padded(len) - len);
  }
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
  if (h.seq == 0 || h.commit != h.seq) return {};  // nothing committed, or torn
  if (h.bytes > capacity_) {
    *why = fmt::format("journal transaction {} claims {} bytes, more than the journal holds",
                       h.seq, h.bytes);
    return Errno(EUCLEAN);
  }
  const std::byte* recs = pool_->bytes(off_ + sizeof(h), h.bytes).data();
  if (journal_csum(h.seq, h.bytes, recs) != h.csum) {
    // commit == seq is stored only after the records were persistent, so a
    // mismatch here is damage, not a torn write.
    *why = fmt::format("committed journal transaction {} fails its checksum", h.seq);
    return Errno(EUCLEAN);
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

Status Journal::commit(const Transaction& tx) {
  if (tx.empty()) return {};
  if (tx.bytes() > capacity_) return Errno(ENOSPC);
  if (pool_->read_only()) return Errno(EROFS);
  std::lock_guard lock(mu_);
  if (halted_) return Errno(EIO);
  const uint64_t seq = seq_ + 1;
  const std::byte* recs = tx.data().data();
  // Step 1: records, then seq/bytes/csum (the commit word stays old).
  pool_->write_nt(off_ + sizeof(JournalHeader), recs, tx.bytes());
  struct {
    uint64_t seq;
    uint64_t bytes;
    uint32_t csum;
    uint32_t reserved;
  } tail{seq, tx.bytes(), journal_csum(seq, tx.bytes(), recs), 0};
  static_assert(offsetof(JournalHeader, seq) == 16 && offsetof(JournalHeader, csum) == 32);
  pool_->write_nt(off_ + offsetof(JournalHeader, seq), &tail, sizeof(tail));
  pool_->drain();  // also persists data and new blocks written (nt) before
  // Step 2: the commit word. Durable from here on.
  pool_->store_u64(off_ + offsetof(JournalHeader, commit), seq);
  pool_->persist(off_ + offsetof(JournalHeader, commit), sizeof(uint64_t));
  seq_ = seq;
  if (halt_countdown_ && --halt_countdown_ == 0) {
    halted_ = true;  // simulated crash between steps 2 and 3
    return {};
  }
  // Step 3: apply in place.
  (void)for_each_record(recs, tx.bytes(), [&](uint64_t dest, const std::byte* src, size_t len) {
    pool_->write(dest, src, len);
    pool_->flush(dest, len);
  });
  pool_->drain();
  return {};
}

}  // namespace zest::pmfs
