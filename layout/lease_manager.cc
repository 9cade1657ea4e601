#include "layout/lease_manager.h"

#include <algorithm>
#include <thread>

namespace zest::layout {

namespace {

uint64_t range_end(uint64_t off, uint64_t len) {
  if (len == LeaseManager::kToEnd || len > LeaseManager::kToEnd - off) return LeaseManager::kToEnd;
  return off + len;
}

bool conflicts(LeaseMode held, LeaseMode asked) {
  return held == LeaseMode::Write || asked == LeaseMode::Write;
}

}  // namespace

LeaseManager::LeaseManager(fs::LayoutProvider& provider, LeaseOptions options)
    : provider_(provider), opts_(options) {
  provider_.set_holds(this);
}

LeaseManager::~LeaseManager() {
  // Nobody holds maps past the manager: the deferred blocks go free.
  provider_.set_holds(nullptr);
}

LeaseManager::ClientId LeaseManager::attach(LeaseClient* client, StateTable* table) {
  Lock lock(mu_);
  const ClientId id = next_client_++;
  Client& c = clients_[id];
  c.link = client;
  c.table = table;
  c.gens.assign(table->slots(), 0);
  c.free_slots.reserve(table->slots());
  for (size_t s = table->slots(); s > 0; --s) c.free_slots.push_back(static_cast<uint32_t>(s - 1));
  return id;
}

void LeaseManager::detach(ClientId c) {
  std::vector<fs::Ino> unheld;
  {
    Lock lock(mu_);
    if (!clients_.count(c)) return;
    std::vector<Lease*> mine;
    for (auto& [id, l] : leases_)
      if (l->client == c) mine.push_back(l.get());
    for (Lease* l : mine) {
      const fs::Ino ino = l->ino;
      ++stats_.returned;
      if (drop(l)) unheld.push_back(ino);
    }
    clients_.erase(c);
    cv_.notify_all();
  }
  for (fs::Ino ino : unheld) provider_.release_held(ino);
}

void LeaseManager::set_slot(Lease& l, SlotState s) {
  Client& c = clients_.at(l.client);
  if (s != SlotState::Recall) l.gen = ++c.gens[l.slot];
  c.table->store(l.slot, slot_word(l.gen, s));
}

void LeaseManager::hold(fs::Ino ino, int delta) {
  std::lock_guard g(held_mu_);
  uint32_t& n = held_[ino];
  n = static_cast<uint32_t>(static_cast<int>(n) + delta);
  if (n == 0) held_.erase(ino);
}

bool LeaseManager::held(fs::Ino ino) {
  std::lock_guard g(held_mu_);
  return held_.count(ino) != 0;
}

bool LeaseManager::drop(Lease* l) {
  auto fit = files_.find(l->ino);
  if (l->st == St::Zombie) {
    --fit->second.zombies;
  } else {
    auto& v = fit->second.leases;
    v.erase(std::find(v.begin(), v.end(), l));
    active_.fetch_sub(1, std::memory_order_acq_rel);
  }
  const fs::Ino ino = l->ino;
  if (fit->second.leases.empty() && fit->second.zombies == 0 && fit->second.guards == 0)
    files_.erase(fit);
  auto cit = clients_.find(l->client);
  if (cit != clients_.end()) {
    set_slot(*l, SlotState::Free);
    cit->second.free_slots.push_back(l->slot);
  }
  leases_.erase(l->id);
  hold(ino, -1);
  return !held(ino);
}

void LeaseManager::take_back(Lock& lock, fs::Ino ino, uint64_t off, uint64_t end,
                             LeaseMode mode, ClientId except) {
  std::vector<uint64_t> ids;
  {
    auto fit = files_.find(ino);
    if (fit == files_.end()) return;
    for (Lease* l : fit->second.leases) {
      if (l->client == except || !overlaps(*l, off, end) || !conflicts(l->mode, mode)) continue;
      ids.push_back(l->id);
      if (l->st == St::Valid) {
        l->st = St::Recall;
        set_slot(*l, SlotState::Recall);
        ++stats_.recalled;
        // Under mu_: detach() cannot free the link meanwhile. Non-blocking.
        clients_.at(l->client).link->recall(l->id);
      }
    }
  }
  if (ids.empty()) return;
  auto out = [&](uint64_t id) {
    auto it = leases_.find(id);
    return it != leases_.end() && it->second->st != St::Zombie;
  };
  const auto deadline = std::chrono::steady_clock::now() + opts_.recall_timeout;
  cv_.wait_until(lock, deadline, [&] { return std::none_of(ids.begin(), ids.end(), out); });
  // Fence what is still out: it stops conflicting now; its blocks stay
  // held (deferred frees) until the client returns it or goes away.
  for (uint64_t id : ids) {
    if (!out(id)) continue;
    Lease* l = leases_.at(id).get();
    File& f = files_.at(ino);
    f.leases.erase(std::find(f.leases.begin(), f.leases.end(), l));
    ++f.zombies;
    l->st = St::Zombie;
    set_slot(*l, SlotState::Fenced);
    active_.fetch_sub(1, std::memory_order_acq_rel);
    ++stats_.fenced;
  }
}

Result<Grant> LeaseManager::acquire(ClientId c, fs::Ino ino, uint64_t off, uint64_t len,
                                    LeaseMode mode) {
  if (len == 0) return Errno(EINVAL);
  const uint64_t end = range_end(off, len);
  // Announce the grant first, then let kernel operations that passed the
  // fast test before it finish: none of them can move blocks under the
  // map this lease is about to take.
  active_.fetch_add(1, std::memory_order_seq_cst);
  std::atomic<uint64_t>& shard = inflight_[shard_of(ino)].inflight;
  while (shard.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  Lock lock(mu_);
  auto fail = [&](int e) {
    active_.fetch_sub(1, std::memory_order_acq_rel);
    return Errno(e);
  };
  if (!clients_.count(c)) return fail(ENOENT);
  for (;;) {
    cv_.wait(lock, [&] {
      auto fit = files_.find(ino);
      return fit == files_.end() || fit->second.guards == 0;
    });
    if (!clients_.count(c)) return fail(ENOENT);
    auto fit = files_.find(ino);
    const bool conflict =
        fit != files_.end() &&
        std::any_of(fit->second.leases.begin(), fit->second.leases.end(), [&](Lease* l) {
          return overlaps(*l, off, end) && conflicts(l->mode, mode);
        });
    if (!conflict) break;
    // Others hold it: recall under a guard of our own, then look again.
    ++files_[ino].guards;
    take_back(lock, ino, off, end, mode, 0);
    if (--files_[ino].guards == 0) cv_.notify_all();
  }
  Client& cl = clients_.at(c);
  if (cl.free_slots.empty()) return fail(ENOLCK);
  auto l = std::make_unique<Lease>();
  l->id = next_id_++;
  l->client = c;
  l->ino = ino;
  l->off = off;
  l->end = end;
  l->mode = mode;
  l->st = St::Valid;
  l->slot = cl.free_slots.back();
  cl.free_slots.pop_back();
  set_slot(*l, SlotState::Valid);
  Grant g{l->id, l->slot, slot_word(l->gen, SlotState::Valid)};
  files_[ino].leases.push_back(l.get());
  hold(ino, +1);
  leases_[l->id] = std::move(l);
  ++stats_.granted;
  return g;  // active_ keeps the count taken above
}

Status LeaseManager::release(ClientId c, uint64_t id) {
  fs::Ino unheld = 0;
  {
    Lock lock(mu_);
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second->client != c) return Errno(ENOENT);
    const fs::Ino ino = it->second->ino;
    ++stats_.returned;
    if (drop(it->second.get())) unheld = ino;
    cv_.notify_all();
  }
  if (unheld) provider_.release_held(unheld);
  return {};
}

Status LeaseManager::check_locked(ClientId c, uint64_t id, fs::Ino ino, uint64_t off,
                                  uint64_t len, LeaseMode need, Lease** out) {
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second->client != c) return Errno(ESTALE);
  Lease* l = it->second.get();
  if (l->st == St::Zombie) return Errno(ESTALE);
  if (l->ino != ino) return Errno(EINVAL);
  if (len == 0 || off < l->off || range_end(off, len) > l->end) return Errno(EINVAL);
  if (need == LeaseMode::Write && l->mode != LeaseMode::Write) return Errno(EACCES);
  if (out) *out = l;
  return {};
}

Status LeaseManager::check(ClientId c, uint64_t id, fs::Ino ino, uint64_t off, uint64_t len,
                           LeaseMode need) {
  Lock lock(mu_);
  return check_locked(c, id, ino, off, len, need, nullptr);
}

Result<fs::Layout> LeaseManager::map(ClientId c, uint64_t id, fs::Ino ino, uint64_t off,
                                     uint64_t len, fs::LayoutIntent intent) {
  Lock lock(mu_);
  const LeaseMode need = intent == fs::LayoutIntent::Write ? LeaseMode::Write : LeaseMode::Read;
  if (Status s = check_locked(c, id, ino, off, len, need, nullptr); !s) return s.error();
  return provider_.map(ino, off, len, intent);
}

Status LeaseManager::commit(ClientId c, uint64_t id, fs::Ino ino, uint64_t generation,
                            std::span<const fs::LayoutExtent> extents,
                            std::optional<uint64_t> new_size, timespec mtime) {
  Lock lock(mu_);
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second->client != c || it->second->st == St::Zombie)
    return Errno(ESTALE);
  Lease* l = it->second.get();
  if (l->ino != ino) return Errno(EINVAL);
  if (l->mode != LeaseMode::Write) return Errno(EACCES);
  for (const fs::LayoutExtent& e : extents)
    if (Status s = check_locked(c, id, ino, e.offset, e.length, LeaseMode::Write, nullptr); !s)
      return s;
  if (new_size && *new_size > 0 && (*new_size - 1 < l->off || *new_size > l->end))
    return Errno(EINVAL);
  return provider_.commit(ino, generation, extents, new_size, mtime);
}

LeaseManager::Guard LeaseManager::recall(fs::Ino ino, uint64_t off, uint64_t len,
                                         LeaseMode mode, ClientId except) {
  Lock lock(mu_);
  ++files_[ino].guards;
  take_back(lock, ino, off, range_end(off, len), mode, except);
  return Guard(this, ino, -1);
}

int LeaseManager::enter_ticket(fs::Ino ino, uint64_t off, uint64_t len, LeaseMode mode) {
  const int s = shard_of(ino);
  inflight_[s].inflight.fetch_add(1, std::memory_order_seq_cst);
  if (active_.load(std::memory_order_seq_cst) == 0) return s;
  inflight_[s].inflight.fetch_sub(1, std::memory_order_release);
  Lock lock(mu_);
  ++files_[ino].guards;
  take_back(lock, ino, off, range_end(off, len), mode, 0);
  return -1;
}

LeaseManager::Guard LeaseManager::enter(fs::Ino ino, uint64_t off, uint64_t len,
                                        LeaseMode mode) {
  return Guard(this, ino, enter_ticket(ino, off, len, mode));
}

void LeaseManager::leave(fs::Ino ino, int ticket) {
  if (ticket >= 0) {
    inflight_[ticket].inflight.fetch_sub(1, std::memory_order_release);
    return;
  }
  Lock lock(mu_);
  auto fit = files_.find(ino);
  if (--fit->second.guards == 0) {
    if (fit->second.leases.empty() && fit->second.zombies == 0) files_.erase(fit);
    cv_.notify_all();
  }
}

LeaseManager::Guard::~Guard() {
  if (m_) m_->leave(ino_, shard_);
}

LeaseStats LeaseManager::stats() const {
  Lock lock(mu_);
  LeaseStats s = stats_;
  for (const auto& [id, l] : leases_) (l->st == St::Zombie ? s.zombies : s.active)++;
  return s;
}

}  // namespace zest::layout
