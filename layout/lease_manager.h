// LeaseManager: read and write leases on file ranges, recall and fencing
// (docs/layouts.md, "Leases, recall and fencing"). Independent of any file
// system: it sits over a fs::LayoutProvider and is its fs::LayoutHolds.
//
//  - A read lease is shared; a write lease is exclusive over its range,
//    also against the same client's other leases (each of a client's open
//    files keeps its own map and size, which another one's writes would
//    make stale).
//  - Anything that would move, free or change leased blocks first calls
//    recall(): the conflicting holders are marked Recall in their state
//    tables and told through their channel (LeaseClient::recall), and get
//    `recall_timeout` to return them. Whatever is still out then is
//    *fenced*: its slot turns Fenced with a new generation, its commits
//    and maps are refused, and it becomes a zombie: it no longer conflicts
//    with anything, but the file counts as held (blocks the file frees wait
//    in the provider's deferred frees) until the client returns it or goes
//    away. The file system never waits for a client past the deadline.
//  - recall() returns a Guard; while one exists for a file, new grants on
//    that file wait, so nobody maps blocks the guarded operation is moving.
//
// Memory: one Lease record (about 80 bytes) per lease held or fenced, one
// per-file entry per file with leases, bounded by max_leases per client
// (the size of its state table).
//
// Locks: mu_ (lease records) then held_mu_ (a leaf, also taken from
// held(), which the file system calls with its own locks held). The
// provider's commit runs under mu_ (so a fence cannot slip between the
// lease check and the commit); release_held never does.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "zest/result.h"
#include "zest/fs/layout.h"
#include "layout/state_table.h"

namespace zest::layout {

enum class LeaseMode : uint8_t { Read = 1, Write = 2 };

// How the manager reaches a client; implemented by the channel.
class LeaseClient {
 public:
  // Asks for lease `id` back. Must not block (a message on a socket).
  virtual void recall(uint64_t id) = 0;

 protected:
  ~LeaseClient() = default;
};

struct LeaseOptions {
  std::chrono::nanoseconds recall_timeout = std::chrono::milliseconds(100);
};

struct Grant {
  uint64_t id = 0;
  uint32_t slot = 0;
  uint64_t word = 0;  // the Valid word the slot holds now
};

struct LeaseStats {
  uint64_t granted = 0, returned = 0, recalled = 0, fenced = 0;
  uint64_t active = 0, zombies = 0;
};

class LeaseManager final : public fs::LayoutHolds {
 public:
  using ClientId = uint64_t;
  static constexpr uint64_t kToEnd = ~0ull;  // a range length: to the end of the file

  LeaseManager(fs::LayoutProvider& provider, LeaseOptions options);
  ~LeaseManager();
  LeaseManager(const LeaseManager&) = delete;
  LeaseManager& operator=(const LeaseManager&) = delete;

  // A client and its state table (whose slots bound its leases); both
  // must outlive detach().
  ClientId attach(LeaseClient* client, StateTable* table);
  // Releases every lease of the client, fenced ones too, at once.
  void detach(ClientId c);

  // A lease on [off, off + len) of `ino` (len kToEnd: to the end). Recalls
  // conflicting leases first (waiting at most the
  // deadline, then fencing them). ENOLCK: the client's table is full.
  Result<Grant> acquire(ClientId c, fs::Ino ino, uint64_t off, uint64_t len, LeaseMode mode);
  // Hands lease `id` back (valid or fenced). ENOENT: not the client's.
  Status release(ClientId c, uint64_t id);

  // Checks that lease `id` of client `c` is valid (not fenced), on `ino`,
  // covers [off, off + len) and allows `need`: ESTALE when fenced or gone,
  // EACCES for a read lease asked to write, EINVAL outside its range.
  Status check(ClientId c, uint64_t id, fs::Ino ino, uint64_t off, uint64_t len, LeaseMode need);
  // check(), then the provider's map, both under the lease lock.
  Result<fs::Layout> map(ClientId c, uint64_t id, fs::Ino ino, uint64_t off, uint64_t len,
                         fs::LayoutIntent intent);
  // check() of every extent, then the provider's commit, under the lock.
  Status commit(ClientId c, uint64_t id, fs::Ino ino, uint64_t generation,
                std::span<const fs::LayoutExtent> extents, std::optional<uint64_t> new_size,
                timespec mtime);

  // Blocks grants on `ino` until destroyed.
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& o) noexcept
        : m_(std::exchange(o.m_, nullptr)), ino_(o.ino_), shard_(o.shard_) {}
    Guard& operator=(Guard&&) = delete;
    ~Guard();
    bool engaged() const { return m_ != nullptr; }

   private:
    friend class LeaseManager;
    Guard(LeaseManager* m, fs::Ino ino, int shard) : m_(m), ino_(ino), shard_(shard) {}
    LeaseManager* m_ = nullptr;
    fs::Ino ino_ = 0;
    int shard_ = -1;  // >= 0: a fast guard (no lease anywhere when taken)
  };
  // Takes back the leases on `ino` that conflict with `mode` over
  // [off, off + len) (Write: every lease there; Read: write leases),
  // except those of client `except` (0: none). Returns within the recall
  // deadline, whatever the clients do.
  Guard recall(fs::Ino ino, uint64_t off, uint64_t len, LeaseMode mode, ClientId except = 0);
  // The same for the kernel path's hot operations: when no lease exists
  // anywhere it costs two atomic adds on a per-file shard, and a grant
  // that starts meanwhile waits for the operation to end.
  Guard enter(fs::Ino ino, uint64_t off, uint64_t len, LeaseMode mode);
  // enter() without the Guard object (for server::AccessGate): returns the
  // ticket (a shard >= 0, or -1 for a recall guard) for leave().
  int enter_ticket(fs::Ino ino, uint64_t off, uint64_t len, LeaseMode mode);
  void leave(fs::Ino ino, int ticket);

  // Whether any lease is valid now: the kernel path's one-load test.
  bool any_active() const { return active_.load(std::memory_order_acquire) != 0; }
  bool held(fs::Ino ino) override;
  LeaseStats stats() const;

 private:
  enum class St : uint8_t { Valid, Recall, Zombie };
  struct Lease {
    uint64_t id;
    ClientId client;
    fs::Ino ino;
    uint64_t off, end;  // end exclusive, kToEnd: no end
    LeaseMode mode;
    St st;
    uint32_t slot;
    uint64_t gen;
  };
  struct Client {
    LeaseClient* link;
    StateTable* table;
    std::vector<uint32_t> free_slots;
    std::vector<uint64_t> gens;  // per slot: the next generation to use
  };
  struct File {
    std::vector<Lease*> leases;  // valid and recalled (not zombies)
    uint32_t zombies = 0;
    uint32_t guards = 0;
  };

  using Lock = std::unique_lock<std::mutex>;
  static bool overlaps(const Lease& l, uint64_t off, uint64_t end) {
    return l.off < end && off < l.end;
  }
  // Recalls, waits, fences (mu_ held via `lock`; dropped while waiting).
  void take_back(Lock& lock, fs::Ino ino, uint64_t off, uint64_t end, LeaseMode mode,
                 ClientId except);
  // Removes lease `l` (valid, recalled or zombie); true if its file is no
  // longer held. mu_ held.
  bool drop(Lease* l);
  void set_slot(Lease& l, SlotState s);
  Status check_locked(ClientId c, uint64_t id, fs::Ino ino, uint64_t off, uint64_t len,
                      LeaseMode need, Lease** out);
  void hold(fs::Ino ino, int delta);

  fs::LayoutProvider& provider_;
  LeaseOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_id_ = 1;
  ClientId next_client_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Lease>> leases_;
  std::unordered_map<ClientId, Client> clients_;
  std::unordered_map<fs::Ino, File> files_;
  // Valid leases plus grants in progress: while 0, kernel operations take
  // fast guards (inflight_ shards) instead of recalling.
  std::atomic<uint64_t> active_{0};
  static constexpr int kShards = 64;
  struct alignas(64) Shard {
    std::atomic<uint64_t> inflight{0};
  };
  Shard inflight_[kShards];
  static int shard_of(fs::Ino ino) { return static_cast<int>((ino * 0x9E3779B97F4A7C15ull) >> 58); }
  LeaseStats stats_;

  std::mutex held_mu_;
  std::unordered_map<fs::Ino, uint32_t> held_;  // leases of any state per file
};

}  // namespace zest::layout
