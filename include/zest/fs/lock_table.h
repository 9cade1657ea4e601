// LockTable: POSIX record locks and flock(2) locks kept in memory, for file
// systems that declare Capabilities::posix_locks / flock_locks and answer
// the lock operations themselves. Forward the calls:
//
//   getlk(ctx, ino, fh, owner, lock, r)        -> table.getlk(ino, owner, lock, r)
//   setlk(ctx, ino, fh, owner, lock, sleep, flock, r)
//                                              -> table.setlk(ino, fh, owner, lock, sleep, flock, r)
//   flush(ctx, ino, fh, r)                     -> table.flush(ino, ctx.lock_owner), then r.ok()
//   release(ctx, ino, fh, flags, r)            -> table.release(ino, fh), then r.ok()
//   destroy()                                  -> table.cancel_waiters(EIO)
//
// Semantics (fcntl(2), flock(2) on Linux):
//  - Locks belong to an owner (the kernel's lock_owner). A read lock
//    conflicts with another owner's overlapping write lock, a write lock
//    with any other owner's overlapping lock; an owner's own locks never
//    conflict: a new lock replaces its locks on the range, splitting and
//    merging them (adjacent or overlapping ranges of one type become one).
//    Unlocking part of a range splits it.
//  - flock locks (whole file) and POSIX locks are independent: they never
//    conflict with each other.
//  - flush drops the owner's POSIX locks on the inode (close(2) of any
//    descriptor of the file releases the process's locks). release drops
//    every lock taken through that open file: its OFD and flock locks, and
//    any POSIX lock left (FOPEN_NOFLUSH opens).
//  - A blocking request (F_SETLKW, flock without LOCK_NB) that conflicts is
//    parked: its reply is kept and answered ok, in arrival order, once the
//    conflict is gone; EINTR when the caller is interrupted (a signal; the
//    kernel restarts the call if the handler has SA_RESTART); EDEADLK at
//    once when POSIX owners would wait for each other in a cycle (as the
//    kernel's own check: following each blocker's wait, one step per owner).
//  - getlk answers the first conflicting lock (its type, range and holder's
//    pid) or the asked lock with type F_UNLCK.
//
// Thread-safe: one mutex for the table. Replies of parked requests are
// completed by the thread whose call removed the conflict (or that received
// the interrupt), under that mutex. Parked replies must be answered before
// the session ends: call cancel_waiters() from destroy().
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "zest/fs/reply.h"
#include "zest/fs/types.h"

namespace zest::fs {

class LockTable {
 public:
  LockTable() = default;
  ~LockTable();
  LockTable(const LockTable&) = delete;
  LockTable& operator=(const LockTable&) = delete;

  void getlk(Ino ino, uint64_t owner, const Lock& lock, LockReply r);
  void setlk(Ino ino, uint64_t fh, uint64_t owner, const Lock& lock, bool sleep, bool flock,
             StatusReply r);
  // close(2): drops `owner`'s POSIX locks on `ino`.
  void flush(Ino ino, uint64_t owner);
  // The open file `fh` is gone: drops every lock taken through it.
  void release(Ino ino, uint64_t fh);
  // Answers every parked request with `err` (the session is ending).
  void cancel_waiters(int err);

  // For tests and debugging: locks held on `ino`, and requests waiting.
  size_t held(Ino ino) const;
  size_t waiting() const;

 private:
  struct Held {
    uint64_t owner;
    uint64_t fh;
    uint64_t start;
    uint64_t end;
    uint32_t type;
    uint32_t pid;
    bool flock;
  };
  struct Waiter {
    uint64_t id;
    uint64_t fh;
    uint64_t owner;
    Lock lock;
    bool flock;
    StatusReply reply;
  };
  struct InodeLocks {
    std::vector<Held> held;
    std::list<Waiter> waiters;  // arrival order
  };

  // The first lock of another owner that conflicts, or nullptr.
  static const Held* conflict(const InodeLocks& il, uint64_t owner, const Lock& l, bool flock);
  static void apply(InodeLocks& il, uint64_t fh, uint64_t owner, const Lock& l, bool flock);
  // True when parking `owner` behind `blocker` would close a wait cycle.
  bool deadlock(uint64_t owner, uint64_t blocker) const;
  // Grants the waiters of `ino` that no longer conflict; drops the inode's
  // entry when it has nothing left.
  void wake(Ino ino);
  static void on_interrupt(void* self, uint64_t id);

  mutable std::mutex mu_;
  std::unordered_map<Ino, InodeLocks> inodes_;
  std::unordered_map<uint64_t, Ino> waiting_;  // waiter id -> its inode
  uint64_t next_id_ = 1;
};

}  // namespace zest::fs
