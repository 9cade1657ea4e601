// LeaseGate: the LeaseManager as the session's server::AccessGate, so that
// kernel-path reads recall write leases and kernel-path changes recall
// every lease over the range first (docs/layouts.md, "Coherence with the
// kernel mount").
#pragma once

#include "layout/lease_manager.h"
#include "server/access_gate.h"

namespace zest::layout {

class LeaseGate final : public server::AccessGate {
 public:
  explicit LeaseGate(LeaseManager* m) : m_(m) {}
  server::GateTicket enter(fs::Ino ino, uint64_t off, uint64_t len, bool write) override {
    const int t = m_->enter_ticket(ino, off, len == 0 ? 1 : len,
                                   write ? LeaseMode::Write : LeaseMode::Read);
    return {ino, t + 1};  // kind 0: a recall guard, >= 1: shard + 1
  }
  void leave(const server::GateTicket& t) override {
    if (t.kind >= 0) m_->leave(t.ino, t.kind - 1);
  }

 private:
  LeaseManager* m_;
};

}  // namespace zest::layout
