// AccessGate: what the session asks before the kernel path reads or changes
// file data, so that someone handing out direct access (layout/, leases)
// can take it back first (docs/layouts.md, "Coherence with the kernel
// mount"). The session calls enter() before the file system's read, write,
// setattr(size), fallocate and copy_file_range, and leave() with the same
// ticket once the call returned. Without a gate (the default) nothing is
// asked.
#pragma once

#include <cstdint>

#include "zest/fs/types.h"

namespace zest::server {

struct GateTicket {
  fs::Ino ino = 0;
  int32_t kind = -1;  // the gate's own; -1: nothing to leave
};

class AccessGate {
 public:
  static constexpr uint64_t kToEnd = ~0ull;
  // Before the kernel path reads (write = false) or changes [off, off + len)
  // of `ino`. May block, for a bounded time (the gate's deadline).
  virtual GateTicket enter(fs::Ino ino, uint64_t off, uint64_t len, bool write) = 0;
  virtual void leave(const GateTicket& t) = 0;

 protected:
  ~AccessGate() = default;
};

// Holds a ticket for the length of a scope: leave() runs even when the file
// system throws (a ticket left behind would block new leases on the file).
class GateHold {
 public:
  GateHold(AccessGate* gate, fs::Ino ino, uint64_t off, uint64_t len, bool write)
      : gate_(gate), t_(gate ? gate->enter(ino, off, len, write) : GateTicket{}) {}
  ~GateHold() {
    if (gate_) gate_->leave(t_);
  }
  GateHold(const GateHold&) = delete;
  GateHold& operator=(const GateHold&) = delete;

 private:
  AccessGate* gate_;
  GateTicket t_;
};

}  // namespace zest::server
