// Mailbox: the shared-memory request/reply area of one client (a memfd both
// map read-write), so that MAP, COMMIT, RETURN and STATS need no system call
// when both sides are busy (docs/direct.md, "The client channel").
//
// One request at a time (the client serializes its requests). The state
// word is also the futex both sides sleep on, after polling it for a
// bounded time (hybrid polling: an idle client and an idle server sleep).
//   client: copy the request into data, len; state Idle -> Request (only
//           from Idle: never over Closed); wake the server if it sleeps; poll, then sleep, until state == Reply;
//           copy the reply out; state = Idle.
//   server: poll, then sleep, until state == Request; copy the request out
//           (the client could change it meanwhile: only the copy is
//           parsed); handle it; copy the reply in; state = Reply; wake.
// Closed: the server is done with this client (or the client saw the
// server go away); nobody waits any more.
//
// Format (both ends on this machine, native endianness):
//   offset 0: MailboxHeader (64 bytes)    offset 64: data (kMailboxData)
// Requests and replies in data are the wire messages of channel_wire.h.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "layout/channel_wire.h"

namespace zest::layout {

enum MailboxState : uint32_t { kIdle = 0, kRequest = 1, kReply = 2, kClosed = 3 };

struct alignas(64) MailboxHeader {
  std::atomic<uint32_t> state;           // MailboxState; the futex word
  std::atomic<uint32_t> server_sleeps;   // 1 while the server may be in futex_wait
  std::atomic<uint32_t> client_sleeps;   // 1 while the client may be in futex_wait
  uint32_t len;                          // bytes of the message in data
};
static_assert(sizeof(MailboxHeader) == 64);
inline constexpr size_t kMailboxData = wire::kMaxMessage;
inline constexpr size_t kMailboxBytes = sizeof(MailboxHeader) + kMailboxData;

inline std::byte* mailbox_data(MailboxHeader* h) {
  return reinterpret_cast<std::byte*>(h) + sizeof(MailboxHeader);
}

inline void futex_wake_all(std::atomic<uint32_t>* w) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

inline uint64_t mono_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000u + uint64_t(t.tv_nsec);
}

// Waits until the state is not `from` (polling `spin_ns`, then sleeping,
// announced in *sleeps) or `timeout_ns` passed (0: no timeout). Returns the
// state seen.
inline uint32_t mailbox_wait(MailboxHeader* h, uint32_t from, std::atomic<uint32_t>* sleeps,
                             uint64_t spin_ns, uint64_t timeout_ns) {
  const uint64_t t0 = mono_ns();
  for (;;) {
    const uint32_t s = h->state.load(std::memory_order_acquire);
    if (s != from) return s;
    const uint64_t t = mono_ns() - t0;
    if (t < spin_ns) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
      continue;
    }
    if (timeout_ns && t >= timeout_ns) return s;
    sleeps->store(1, std::memory_order_seq_cst);
    if (h->state.load(std::memory_order_seq_cst) == from) {
      timespec ts{0, 0}, *tp = nullptr;
      if (timeout_ns) {
        const uint64_t left = timeout_ns - t;
        ts = {static_cast<time_t>(left / 1000000000u), static_cast<long>(left % 1000000000u)};
        tp = &ts;
      }
      ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&h->state), FUTEX_WAIT, from, tp, nullptr, 0);
    }
    sleeps->store(0, std::memory_order_relaxed);
  }
}

// Sets the state and wakes the other side if it announced it sleeps.
inline void mailbox_post(MailboxHeader* h, uint32_t to, std::atomic<uint32_t>* other_sleeps) {
  h->state.store(to, std::memory_order_seq_cst);
  if (other_sleeps->load(std::memory_order_seq_cst)) futex_wake_all(&h->state);
}

// The client's post of a request: only from Idle, so that a Closed the
// server set meanwhile is never overwritten (its mailbox thread is gone and
// would never answer). False: the state was not Idle (*was says what).
inline bool mailbox_post_request(MailboxHeader* h, uint32_t* was) {
  uint32_t expect = kIdle;
  if (!h->state.compare_exchange_strong(expect, kRequest, std::memory_order_seq_cst)) {
    *was = expect;
    return false;
  }
  if (h->server_sleeps.load(std::memory_order_seq_cst)) futex_wake_all(&h->state);
  return true;
}

}  // namespace zest::layout
