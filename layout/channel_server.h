// ChannelServer: the server side of the client channel (docs/layouts.md,
// "The client channel"; the wire format is channel_wire.h).
//
// One listening SOCK_SEQPACKET Unix socket per mount (channel_path.h says
// where), mode 0666: connecting proves nothing, every request is checked.
// Per client: a request thread (request/reply on the connection) and a
// notify thread (returns arriving on the second socket; recalls leave on
// it without blocking). An idle client costs two threads asleep in recv.
//
// Trust (docs/guarantees.md, "Direct access"):
//  - the peer is who SO_PEERCRED / SO_PEERGROUPS say (kernel-provided);
//  - the pool is opened *as the peer* (a short-lived thread whose fsuid,
//    fsgid and groups are the peer's), so it gets the pool exactly when it
//    could open the pool file itself: read-only or read-write;
//  - a lease needs a proof fd that the peer opened through this mount
//    (same st_dev, not O_PATH), with an access mode that covers the lease:
//    the kernel checked the peer's permission on that open.
// A client that dies (its socket closes) loses its leases at once.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/fd.h"
#include "zest/result.h"
#include "zest/fs/layout.h"
#include "layout/lease_gate.h"
#include "layout/lease_manager.h"

namespace zest::layout {

struct ChannelOptions {
  std::string pool_path;  // the pool file or device, opened as each peer
  uint64_t pool_size = 0;
  uint32_t block_size = 4096;
  bool persist_msync = false;  // the pool's stores need msync (page granularity)
  dev_t fs_dev = 0;            // st_dev of the mount
  // Listen here; empty: the first usable directory of channel_dirs().
  std::string socket_path;
  uint32_t table_slots = 1024;  // leases per client (8 KiB of table)
  uint32_t max_clients = 256;
  std::chrono::milliseconds recall_timeout{100};
};

class ChannelServer {
 public:
  // Drops the kernel's cached attributes of an inode and its pages in a
  // range (Session::notify_inval_inode).
  using Invalidate = std::function<void(fs::Ino, int64_t off, int64_t len)>;

  static Result<std::unique_ptr<ChannelServer>> start(fs::LayoutProvider& provider,
                                                      ChannelOptions options,
                                                      Invalidate invalidate,
                                                      std::string* why);
  ~ChannelServer();
  ChannelServer(const ChannelServer&) = delete;
  ChannelServer& operator=(const ChannelServer&) = delete;

  const std::string& socket_path() const { return opts_.socket_path; }
  LeaseManager& leases() { return *leases_; }
  // Hand this to server::Session::set_access_gate.
  server::AccessGate* gate() { return &gate_; }
  size_t clients() const;

  struct Conn;

 private:
  ChannelServer(fs::LayoutProvider& provider, ChannelOptions options, Invalidate invalidate);
  void accept_loop();
  void reap(bool all);

  ChannelOptions opts_;
  Invalidate invalidate_;
  std::unique_ptr<LeaseManager> leases_;
  LeaseGate gate_;
  UniqueFd listen_;
  ino_t socket_ino_ = 0;  // the socket file we bound, to remove only that
  UniqueFd stop_;  // eventfd: wakes the accept loop
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::list<std::unique_ptr<Conn>> conns_;
  friend struct Conn;
};

}  // namespace zest::layout
