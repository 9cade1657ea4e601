// recvmsg with bounded hybrid polling, for both ends of the client channel:
// a reply (or the next request) usually follows within microseconds, and
// sleeping in recv costs a wake-up on each side; past spin_ns the thread
// sleeps in a blocking recvmsg, so an idle peer costs no CPU. EINTR is
// retried. Returns what recvmsg returns (-1 with errno).
#pragma once

#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstdint>

#include "layout/mailbox.h"

namespace zest::layout {

inline ssize_t recvmsg_polled(int fd, msghdr* h, int flags, uint64_t spin_ns) {
  ssize_t n = -1;
  if (spin_ns) {
    const uint64_t t0 = mono_ns();
    do {
      n = ::recvmsg(fd, h, flags | MSG_DONTWAIT);
      if (n >= 0 || (errno != EAGAIN && errno != EINTR)) return n;
    } while (mono_ns() - t0 <= spin_ns);
  }
  do {
    n = ::recvmsg(fd, h, flags);
  } while (n < 0 && errno == EINTR);
  return n;
}

}  // namespace zest::layout
