// Before the passes, second: the journal. Its one transaction is read as
// recovery (pmfs/mount.cc) reads it: never committed (commit != seq) or
// torn by a crash (bad length or checksum) is ignored, committed but
// malformed is damage (recovery refuses the pool), and committed but not
// applied is replayed, into the View's private overlay when checking, into
// the pool when repairing, so that the passes see what mount would see.
// retire_stale_journal runs after the repair passes (fsck.cc).
//
// Assumes the superblock chosen by superblock.cc: its geometry is sane, so
// the journal and the inode table lie inside the pool.
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "pmfs/fsck/passes.h"

namespace zest::pmfs::fsck_internal {

namespace {

struct Record {
  uint64_t dest;
  uint64_t data_off;  // offset of the record's bytes in Transaction::records
  uint32_t len;
};

// The transaction the journal holds, as recovery reads it.
struct Transaction {
  enum class State : uint8_t {
    BadMagic,   // the header is not a journal header
    None,       // empty, or never committed (commit != seq)
    Torn,       // committed but fails its length or checksum: ignored
    Malformed,  // checksum holds but the records do not parse: refused
    Valid,
  };
  State state = State::None;
  JournalHeader h{};
  std::string problem;  // Torn, Malformed
  std::vector<std::byte> records;
  std::vector<Record> list;  // Valid

  const std::byte* bytes_of(const Record& r) const {
    return records.data() + r.data_off;
  }
};

Transaction read_transaction(const View& view, const Superblock& sb) {
  Transaction t;
  const uint64_t joff = journal_offset(sb);
  const uint64_t capacity =
      sb.journal_blocks * kBlockSize - sizeof(JournalHeader);
  JournalHeader& h = t.h;
  h = view.get<JournalHeader>(joff);
  if (h.magic != kJournalMagic) {
    t.state = Transaction::State::BadMagic;
    return t;
  }
  // seq 0 is the empty journal mkfs writes; commit != seq is a transaction
  // that never committed (recovery ignores it, and so does fsck).
  if (h.seq == 0 || h.commit != h.seq) return t;
  // A header or records that do not add up are a transaction torn by a
  // crash while it was being written: it never committed, and recovery
  // ignores it. A transaction whose checksum holds but whose records are
  // malformed is damage.
  if (h.bytes > capacity || h.bytes % 8 != 0) {
    t.state = Transaction::State::Torn;
    t.problem = fmt::format("claims {} bytes of records (the journal holds {})",
                            h.bytes, capacity);
    return t;
  }
  // Checksum over (seq, bytes), then the record bytes, chained.
  t.records.resize(static_cast<size_t>(h.bytes));
  view.read(joff + sizeof(JournalHeader), t.records.data(), t.records.size());
  const uint64_t covered[2] = {h.seq, h.bytes};
  uint32_t c = crc32c(covered, sizeof(covered));
  c = crc32c(t.records.data(), t.records.size(), c);
  if (c != h.csum) {
    t.state = Transaction::State::Torn;
    t.problem = "fails its checksum";
    return t;
  }
  t.state = Transaction::State::Malformed;
  uint64_t pos = 0;
  while (pos < h.bytes) {
    if (h.bytes - pos < sizeof(JournalRecord)) {
      t.problem = fmt::format("has a truncated record header at byte {}", pos);
      return t;
    }
    JournalRecord r;
    std::memcpy(&r, t.records.data() + pos, sizeof(r));
    uint64_t padded = (uint64_t(r.len) + 7) & ~uint64_t(7);
    if (r.len == 0 || padded > h.bytes - pos - sizeof(r)) {
      t.problem =
          fmt::format("has a record at byte {} of bad length {}", pos, r.len);
      return t;
    }
    // Journaled bytes are metadata: inode table or data region, never the
    // superblocks or the journal itself.
    if (r.dest < sb.itable_start * kBlockSize || !view.fits(r.dest, r.len)) {
      t.problem = fmt::format(
          "has a record for pool offset {:#x} (+{}) outside the inode table "
          "and data region",
          r.dest, r.len);
      return t;
    }
    t.list.push_back({r.dest, pos + sizeof(r), r.len});
    pos += sizeof(r) + padded;
  }
  t.state = Transaction::State::Valid;
  return t;
}

// Whether every record of a valid transaction is in place.
bool applied(const View& view, const Transaction& t) {
  std::vector<std::byte> cur;
  for (const Record& r : t.list) {
    cur.resize(r.len);
    view.read(r.dest, cur.data(), r.len);
    if (std::memcmp(cur.data(), t.bytes_of(r), r.len) != 0) return false;
  }
  return true;
}

// Ends a committed transaction: commit no longer equals seq, so recovery
// takes the journal as empty (seq stays, so numbering goes on).
void retire(View& view, const Superblock& sb) {
  view.write_pool(journal_offset(sb) + offsetof(JournalHeader, commit),
                  "\0\0\0\0\0\0\0\0", 8);
}

}  // namespace

void check_journal(View& view, const Superblock& sb, bool repair,
                   Reporter& rep) {
  rep.progress("checking journal");
  const Transaction t = read_transaction(view, sb);
  const JournalHeader& h = t.h;
  switch (t.state) {
    case Transaction::State::BadMagic:
      rep.error(fmt::format("journal (block {}): bad magic {:#x}",
                            sb.journal_start, h.magic));
      if (repair) {
        JournalHeader empty{};
        empty.magic = kJournalMagic;
        view.write_pool(journal_offset(sb), &empty, sizeof(empty));
        rep.repair(
            "journal: header rewritten empty (any transaction in it is "
            "discarded)");
      }
      return;
    case Transaction::State::None:
      return;
    case Transaction::State::Torn:
      rep.note(fmt::format(
          "journal: transaction {} {}: torn by a crash while being written, "
          "never committed; ignored",
          h.seq, t.problem));
      return;
    case Transaction::State::Malformed:
      rep.error(fmt::format(
          "journal: committed transaction {} {}; recovery refuses the pool",
          h.seq, t.problem));
      if (repair) {
        retire(view, sb);
        rep.repair(
            fmt::format("journal: committed transaction {} discarded", h.seq));
      }
      return;
    case Transaction::State::Valid:
      break;
  }
  if (applied(view, t)) return;
  // Normal after a crash: mount replays it. Checked as replayed.
  rep.note(fmt::format(
      "journal holds a committed transaction; replay needed (seq {}, {} "
      "records)",
      h.seq, t.list.size()));
  for (const Record& r : t.list) {
    if (repair) {
      view.write_pool(r.dest, t.bytes_of(r), r.len);
    } else {
      view.write_private(r.dest, t.bytes_of(r), r.len);
    }
  }
  if (repair)
    rep.repair(
        fmt::format("journal: replayed committed transaction {}", h.seq));
}

// After the repair passes. The committed transaction was replayed before
// them, so records that no longer match the pool hold bytes a repair has
// rewritten since (an inode the last operation wrote, say): mount would
// replay them and undo the repair, so the transaction is retired.
void retire_stale_journal(View& view, const Superblock& sb, Reporter& rep) {
  const Transaction t = read_transaction(view, sb);
  if (t.state != Transaction::State::Valid || applied(view, t)) return;
  retire(view, sb);
  rep.repair(fmt::format(
      "journal: committed transaction {} retired (already replayed; repairs "
      "since rewrote bytes it holds, which replaying it again would undo)",
      t.h.seq));
}

}  // namespace zest::pmfs::fsck_internal
