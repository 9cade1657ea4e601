// The client end of a mount's channel (layout/channel_wire.h): attach,
// synchronous requests on the request socket, and a listener thread that
// answers recalls on the notify socket.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "zest/result.h"
#include "layout/channel_wire.h"
#include "layout/mailbox.h"

namespace zest::direct {

class ChannelClient {
 public:
  // Called from the listener thread for each recall; must end with
  // give_back(lease) once the lease is no longer used.
  using OnRecall = std::function<void(uint64_t lease)>;
  // Called once when the server goes away (socket closed).
  using OnLost = std::function<void()>;

  ChannelClient() = default;
  ~ChannelClient();
  ChannelClient(const ChannelClient&) = delete;
  ChannelClient& operator=(const ChannelClient&) = delete;

  // Connects to the channel of the mount with device number `dev`.
  // ENOENT/ECONNREFUSED: the mount has no channel.
  Result<void> attach(dev_t dev, bool want_write, OnRecall on_recall, OnLost on_lost);

  const layout::wire::AttachOut& info() const { return info_; }
  int pool_fd() const { return pool_.get(); }
  int table_fd() const { return table_.get(); }

  // One request, one reply. `fd` (or -1) travels with the request. The
  // reply's body goes to *body. Errors: the server's errno, or ENOTCONN
  // (server gone), ETIMEDOUT (no reply within the bound: the server is
  // stopped; the channel is then unusable).
  Result<void> call(uint32_t op, std::span<const std::byte> in, int fd,
                    std::vector<std::byte>* body);
  // Tells the server a lease is no longer used (notify socket, no reply).
  void give_back(const layout::wire::ReturnIn& r);
  bool lost() const { return lost_.load(std::memory_order_acquire); }

 private:
  void listen();

  // MAP, COMMIT, RETURN and STATS through the shared mailbox (no system
  // call while both sides poll); the rest on the socket.
  Result<void> call_mailbox(std::span<const std::byte> msg, uint64_t seq,
                            std::vector<std::byte>* body);

  UniqueFd req_, notify_, table_, pool_, mbox_fd_;
  layout::MailboxHeader* mbox_ = nullptr;
  std::mutex mbox_mu_;
  layout::wire::AttachOut info_{};
  std::mutex req_mu_;
  std::atomic<uint64_t> seq_atomic_{0};
  OnRecall on_recall_;
  OnLost on_lost_;
  std::atomic<bool> lost_{false};
  std::thread listener_;
};

}  // namespace zest::direct
