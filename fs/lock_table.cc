// LockTable: see zest/fs/lock_table.h for the semantics. Per inode, a flat
// vector of held ranges (few locks per file in practice) and the parked
// requests in arrival order.
#include "zest/fs/lock_table.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace zest::fs {

namespace {

bool overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2) {
  return s1 <= e2 && s2 <= e1;
}

bool valid(const Lock& l) {
  return (l.type == F_RDLCK || l.type == F_WRLCK || l.type == F_UNLCK) && l.start <= l.end;
}

}  // namespace

LockTable::~LockTable() { cancel_waiters(EIO); }

const LockTable::Held* LockTable::conflict(const InodeLocks& il, uint64_t owner, const Lock& l,
                                           bool flock) {
  if (l.type == F_UNLCK) return nullptr;
  for (const Held& h : il.held) {
    if (h.owner == owner || h.flock != flock) continue;
    if (!overlaps(h.start, h.end, l.start, l.end)) continue;
    if (h.type == F_WRLCK || l.type == F_WRLCK) return &h;
  }
  return nullptr;
}

void LockTable::apply(InodeLocks& il, uint64_t fh, uint64_t owner, const Lock& l, bool flock) {
  // Cut the range out of the owner's own locks of this kind, keeping what
  // lies outside it.
  std::vector<Held> kept;
  kept.reserve(il.held.size() + 2);
  for (const Held& h : il.held) {
    if (h.owner != owner || h.flock != flock || !overlaps(h.start, h.end, l.start, l.end)) {
      kept.push_back(h);
      continue;
    }
    if (h.start < l.start) {
      Held left = h;
      left.end = l.start - 1;
      kept.push_back(left);
    }
    if (h.end > l.end) {
      Held right = h;
      right.start = l.end + 1;
      kept.push_back(right);
    }
  }
  if (l.type != F_UNLCK) {
    // Merge with the owner's adjacent locks of the same type (the parts
    // kept above that touch the range included).
    Held n{owner, fh, l.start, l.end, l.type, l.pid, flock};
    std::erase_if(kept, [&](const Held& h) {
      if (h.owner != owner || h.flock != flock || h.type != n.type) return false;
      bool touches_left = n.start > 0 && h.end == n.start - 1;
      bool touches_right = n.end < UINT64_MAX && h.start == n.end + 1;
      if (!touches_left && !touches_right) return false;
      n.start = std::min(n.start, h.start);
      n.end = std::max(n.end, h.end);
      return true;
    });
    kept.push_back(n);
  }
  il.held = std::move(kept);
}

bool LockTable::deadlock(uint64_t owner, uint64_t blocker) const {
  // Follow "blocker waits for a lock held by X" up to a bound, as the
  // kernel does (posix_locks_deadlock, MAX_DEADLK_ITERATIONS).
  for (int step = 0; step < 10; ++step) {
    if (blocker == owner) return true;
    const Waiter* w = nullptr;
    const InodeLocks* where = nullptr;
    for (const auto& [ino, il] : inodes_) {
      for (const Waiter& cand : il.waiters) {
        if (cand.owner == blocker && !cand.flock) {
          w = &cand;
          where = &il;
          break;
        }
      }
      if (w) break;
    }
    if (!w) return false;
    const Held* h = conflict(*where, w->owner, w->lock, false);
    if (!h) return false;
    blocker = h->owner;
  }
  return false;
}

void LockTable::getlk(Ino ino, uint64_t owner, const Lock& lock, LockReply r) {
  if (!valid(lock)) return r.error(EINVAL);
  Lock answer = lock;
  answer.type = F_UNLCK;
  {
    std::lock_guard g(mu_);
    auto it = inodes_.find(ino);
    if (it != inodes_.end()) {
      if (const Held* h = conflict(it->second, owner, lock, false)) {
        answer.type = h->type;
        answer.start = h->start;
        answer.end = h->end;
        answer.pid = h->pid;
      }
    }
  }
  r.ok(answer);
}

void LockTable::setlk(Ino ino, uint64_t fh, uint64_t owner, const Lock& lock, bool sleep,
                      bool flock, StatusReply r) {
  if (!valid(lock)) return r.error(EINVAL);
  std::lock_guard g(mu_);
  InodeLocks& il = inodes_[ino];
  if (const Held* h = conflict(il, owner, lock, flock)) {
    if (!sleep) {
      r.error(EAGAIN);
    } else if (!flock && deadlock(owner, h->owner)) {
      r.error(EDEADLK);
    } else {
      const uint64_t id = next_id_++;
      // Interrupted before we could arm: the caller is leaving already.
      if (!r.on_interrupt(&LockTable::on_interrupt, this, id)) {
        r.error(EINTR);
      } else {
        il.waiters.push_back(Waiter{id, fh, owner, lock, flock, std::move(r)});
        waiting_.emplace(id, ino);
        return;
      }
    }
    if (il.held.empty() && il.waiters.empty()) inodes_.erase(ino);
    return;
  }
  apply(il, fh, owner, lock, flock);
  r.ok();
  // An unlock, a downgrade or a replaced range may unblock others.
  wake(ino);
}

void LockTable::flush(Ino ino, uint64_t owner) {
  std::lock_guard g(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  std::erase_if(it->second.held, [&](const Held& h) { return h.owner == owner && !h.flock; });
  wake(ino);
}

void LockTable::release(Ino ino, uint64_t fh) {
  std::lock_guard g(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  std::erase_if(it->second.held, [&](const Held& h) { return h.fh == fh; });
  wake(ino);
}

void LockTable::wake(Ino ino) {
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  InodeLocks& il = it->second;
  // A granted lock can replace its owner's own locks (and so unblock
  // others), hence the passes until one grants nothing.
  for (bool granted = true; granted;) {
    granted = false;
    for (auto w = il.waiters.begin(); w != il.waiters.end();) {
      if (conflict(il, w->owner, w->lock, w->flock)) {
        ++w;
        continue;
      }
      apply(il, w->fh, w->owner, w->lock, w->flock);
      waiting_.erase(w->id);
      w->reply.ok();
      w = il.waiters.erase(w);
      granted = true;
    }
  }
  if (il.held.empty() && il.waiters.empty()) inodes_.erase(it);
}

void LockTable::on_interrupt(void* self, uint64_t id) {
  auto* t = static_cast<LockTable*>(self);
  std::lock_guard g(t->mu_);
  auto wi = t->waiting_.find(id);
  if (wi == t->waiting_.end()) return;  // granted (or cancelled) meanwhile
  const Ino ino = wi->second;
  t->waiting_.erase(wi);
  InodeLocks& il = t->inodes_.at(ino);
  for (auto w = il.waiters.begin(); w != il.waiters.end(); ++w) {
    if (w->id != id) continue;
    w->reply.error(EINTR);
    il.waiters.erase(w);
    break;
  }
  if (il.held.empty() && il.waiters.empty()) t->inodes_.erase(ino);
}

void LockTable::cancel_waiters(int err) {
  std::lock_guard g(mu_);
  for (auto it = inodes_.begin(); it != inodes_.end();) {
    for (Waiter& w : it->second.waiters) w.reply.error(err);
    it->second.waiters.clear();
    it = it->second.held.empty() ? inodes_.erase(it) : std::next(it);
  }
  waiting_.clear();
}

size_t LockTable::held(Ino ino) const {
  std::lock_guard g(mu_);
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? 0 : it->second.held.size();
}

size_t LockTable::waiting() const {
  std::lock_guard g(mu_);
  return waiting_.size();
}

}  // namespace zest::fs
