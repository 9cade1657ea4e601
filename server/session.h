// Session: one FUSE connection served for one file system.
//
// Owns the protocol: INIT negotiation, decoding each request into a call on
// fs::FileSystem, encoding replies (it is the fs::ReplySink; read replies
// from files, ok_fd, may be spliced through the worker's pipe), inode
// reference counting (InodeRefs), interrupts, passthrough backing ids
// (PassthroughTable), and the worker threads: one per /dev/fuse channel, or
// io_uring workers (UringWorker) plus one /dev/fuse reader. It knows the
// protocol, not any file system.
//
// Threads: serve() runs INIT on the caller's thread, starts the workers and
// then waits for SIGINT/SIGTERM/SIGHUP or for the mount to go away. Replies
// may be completed from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "abi/fuse_abi.h"
#include "zest/result.h"
#include "zest/fs/filesystem.h"
#include "zest/fs/notifier.h"
#include "server/access_gate.h"
#include "server/arg_reader.h"
#include "server/backing.h"
#include "server/inode_refs.h"
#include "server/reader_gate.h"
#include "server/request_slot.h"
#include "server/wire.h"
#include "transport/mount.h"

namespace zest::server {

class UringWorker;

// How requests reach the server.
enum class Transport {
  kDev,    // read(2)/writev(2) on /dev/fuse, one cloned fd per worker
  kUring,  // FUSE over io_uring; refuse to serve without it
  kAuto,   // io_uring when the kernel offers it, else /dev/fuse
};

struct SessionOptions {
  // Workers: /dev/fuse readers, or io_uring workers (then one /dev/fuse
  // reader more for what the ring does not carry). 0: one per online CPU.
  unsigned threads = 0;
  bool debug = false;    // log every request
  // How long an idle worker keeps polling /dev/fuse before it sleeps.
  uint64_t spin_ns = 0;
  Transport transport = Transport::kDev;
  // Ring entries per kernel queue (requests in flight per CPU).
  unsigned uring_depth = 8;
  // Every open of a file the file system serves itself (IoMode::Direct)
  // bypasses the page cache, buffered opens too (-o direct_io, as libfuse's
  // option). Shared mappings of such files are then refused (ENODEV): the
  // kernel cannot keep them coherent with direct writes (encode_open).
  bool direct_io = false;
};

// What INIT settled on.
struct Negotiated {
  uint32_t major = 0;
  uint32_t minor = 0;
  uint64_t flags = 0;  // both flags words, flags2 in the high half
  uint32_t max_write = 0;
  uint32_t max_readahead = 0;
  uint16_t max_pages = 0;
  bool uring = false;  // FUSE_OVER_IO_URING agreed
  // Read replies from files (ok_fd) of at least splice_min bytes are
  // spliced: FUSE_SPLICE_WRITE agreed and served over /dev/fuse.
  bool splice = false;
  uint32_t splice_min = 0;
  // Direct files bypass the page cache for buffered opens too: -o direct_io,
  // or the writeback cache agreed (then the page cache would not write
  // through). FUSE_DIRECT_IO_ALLOW_MMAP is not agreed then.
  bool always_direct = false;
  // Capabilities::no_open / no_opendir: OPEN (OPENDIR) is answered ENOSYS
  // here, which stops the kernel from sending more.
  bool no_open = false;
  bool no_opendir = false;
};

// Also the file system's fs::Notifier: notifications are written to the
// mount's /dev/fuse fd from the calling thread.
class Session final : public fs::ReplySink, public fs::Notifier {
 public:
  // Bytes a request buffer needs: the largest write plus headers.
  static constexpr size_t kRequestBufferSize = (1u << 20) + 4096;

  Session(fs::FileSystem& fs, SessionOptions opts);
  ~Session() override;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Serves `mount` until it is unmounted or a stop signal arrives. Blocks
  // SIGINT/SIGTERM/SIGHUP in the calling thread (workers inherit that).
  Result<void> serve(transport::FuseMount& mount);

  // A worker's context: its wire and its current request slot.
  class Worker {
   public:
    explicit Worker(Wire* wire) : wire_(wire) {}
    Wire* wire() const { return wire_; }

   private:
    friend class Session;
    Wire* wire_;
    RequestSlot* slot_ = nullptr;
  };

  // Decodes and answers one raw request (used by the workers, and by tests
  // to drive the protocol without a kernel). Never throws; a malformed
  // request is answered EIO and logged.
  void process(Worker& w, std::span<const std::byte> request);
  // The same for a request whose header and arguments were already split
  // (a ring entry): the reply goes to `wire`. With `malformed_why` set the
  // request is answered EIO without being decoded.
  void process(Worker& w, Wire* wire, const abi::fuse_in_header& h,
               ArgReader args, const char* malformed_why = nullptr);
  void release_worker(Worker& w);

  // Where passthrough opens register their backing files: serve() uses
  // the mount's /dev/fuse fd unless a test set one.
  void set_backing_control(BackingControl* ctl) { passthrough_.set_control(ctl); }
  const PassthroughTable& passthrough() const { return passthrough_; }

  // Asked before the kernel path touches file data (layouts); set before
  // serve(), or nullptr.
  void set_access_gate(AccessGate* gate) { gate_ = gate; }
  // FUSE_NOTIFY_INVAL_INODE: the kernel drops its cached attributes of
  // `ino` and, for off >= 0, its cached pages from `off` for `len` bytes
  // (0: to the end). Any thread, once serve() has answered INIT; ENOTCONN
  // before that and after the mount went away, ENOENT when the kernel does
  // not know the inode (not an error for the caller's purpose).
  Result<void> notify_inval_inode(fs::Ino ino, int64_t off, int64_t len);

  // fs::Notifier (zest/fs/notifier.h)
  Result<void> inval_inode(fs::Ino ino, int64_t off, int64_t len) override {
    return notify_inval_inode(ino, off, len);
  }
  Result<void> inval_entry(fs::Ino parent, std::string_view name) override;
  Result<void> delete_entry(fs::Ino parent, fs::Ino child, std::string_view name) override;
  Result<void> store(fs::Ino ino, uint64_t offset, std::span<const std::byte> data) override;
  Result<void> retrieve(fs::Ino ino, uint64_t offset, uint32_t size,
                        RetrieveDone done) override;
  Result<void> poll_wakeup(uint64_t kh) override;
  // Where notifications go when serve() does not run (tests); -1: nowhere.
  void set_notify_fd(int fd) { notify_fd_.store(fd); }

  bool initialized() const { return initialized_.load(); }
  const Negotiated& negotiated() const { return neg_; }
  const InodeRefs& refs() const { return refs_; }
  uint64_t malformed_count() const { return malformed_.load(); }
  // Read replies whose data went from a file to the kernel through a pipe
  // (ok_fd, spliced), and those ok_fd replies copied instead because the
  // wire could not splice them then (pipe in use, range too large, file
  // that cannot be spliced, end of file).
  uint64_t spliced_count() const {
    return spliced_.load(std::memory_order_relaxed);
  }
  uint64_t splice_fallback_count() const {
    return splice_fallbacks_.load(std::memory_order_relaxed);
  }
  // Requests whose reply has not been sent yet (async replies in flight).
  size_t slots_in_use() const;

  // fs::ReplySink
  void reply_error(fs::RequestToken, int err) override;
  void reply_entry(fs::RequestToken, const fs::Entry&) override;
  void reply_create(fs::RequestToken, const fs::Entry&, const fs::OpenInfo&) override;
  void reply_attr(fs::RequestToken, const fs::Attr&, double timeout) override;
  void reply_open(fs::RequestToken, const fs::OpenInfo&) override;
  void reply_write(fs::RequestToken, size_t written) override;
  void reply_data(fs::RequestToken, std::span<const iovec> data) override;
  void reply_data_fd(fs::RequestToken, int fd, uint64_t off,
                     size_t len) override;
  void reply_xattr_size(fs::RequestToken, size_t size) override;
  void reply_statfs(fs::RequestToken, const fs::StatFs&) override;
  void reply_lseek(fs::RequestToken, uint64_t offset) override;
  std::span<std::byte> reply_buffer(fs::RequestToken, size_t size) override;
  bool dir_add(fs::RequestToken, std::string_view name, fs::Ino ino,
               uint32_t type, uint64_t next_off, const fs::Entry* plus) override;
  void reply_dir(fs::RequestToken) override;
  bool interrupted(fs::RequestToken) const override;
  void reply_lock(fs::RequestToken, const fs::Lock&) override;
  void reply_poll(fs::RequestToken, uint32_t revents) override;
  void reply_bmap(fs::RequestToken, uint64_t block) override;
  void reply_statx(fs::RequestToken, const fs::StatxAttr&, double timeout) override;
  bool on_interrupt(fs::RequestToken, fs::InterruptFn fn, void* ctx, uint64_t cookie) override;

 private:
  void dispatch(RequestSlot* slot, const abi::fuse_in_header& h, ArgReader a);
  void handle_init(RequestSlot* slot, ArgReader a);
  void handle_interrupt(ArgReader a);
  void handle_forget(uint64_t ino, uint64_t n);
  void handle_notify_reply(const abi::fuse_in_header& h, ArgReader a);
  // Writes one notification (header + `count` parts) to the connection.
  Result<void> notify(abi::fuse_notify_code code, iovec* parts, int count);
  // Ends every retrieve still waiting for the kernel (ENOTCONN).
  void fail_retrieves();
  void malformed(RequestSlot* slot, const char* what);

  // Sends header + payload for `slot` and hands the slot back.
  void finish(RequestSlot* slot, int err, const iovec* payload, int count);
  // Logs a reply that could not be delivered (unless the kernel merely
  // dropped the request) and hands the slot back.
  void sent(RequestSlot* slot, const Result<void>& r);
  Result<void> send_reply(RequestSlot* slot, int err, const iovec* payload,
                          int count);
  void complete(RequestSlot* slot);
  void ensure_out(RequestSlot* slot, size_t size);
  // The backing id to answer a passthrough open with, or 0 for direct I/O.
  int32_t backing_for(uint64_t ino, const fs::OpenInfo& o);

  RequestSlot* acquire_slot();
  void recycle_slot(RequestSlot* slot);

  void worker_loop(Worker* w, std::span<std::byte> buf, ReaderGate& gate,
                   bool start_parked);
  // Starts the io_uring workers after INIT; false when the ring could not
  // be set up (the kernel then serves everything through /dev/fuse).
  Result<void> start_ring(int fuse_fd, std::vector<std::unique_ptr<UringWorker>>* workers,
                          std::vector<std::thread>* threads, std::atomic<unsigned>* running);

  // Takes replies that have nowhere to go (clean-up calls the server makes
  // on its own, such as releasing a file the kernel never learned of).
  class DiscardSink final : public fs::ReplySink {
   public:
    void reply_error(fs::RequestToken, int) override {}
    void reply_entry(fs::RequestToken, const fs::Entry&) override {}
    void reply_create(fs::RequestToken, const fs::Entry&, const fs::OpenInfo&) override {}
    void reply_attr(fs::RequestToken, const fs::Attr&, double) override {}
    void reply_open(fs::RequestToken, const fs::OpenInfo&) override {}
    void reply_write(fs::RequestToken, size_t) override {}
    void reply_data(fs::RequestToken, std::span<const iovec>) override {}
    void reply_xattr_size(fs::RequestToken, size_t) override {}
    void reply_statfs(fs::RequestToken, const fs::StatFs&) override {}
    void reply_lseek(fs::RequestToken, uint64_t) override {}
    std::span<std::byte> reply_buffer(fs::RequestToken, size_t) override { return {}; }
    bool dir_add(fs::RequestToken, std::string_view, fs::Ino, uint32_t, uint64_t,
                 const fs::Entry*) override { return false; }
    void reply_dir(fs::RequestToken) override {}
    bool interrupted(fs::RequestToken) const override { return false; }
  };

  fs::FileSystem& fs_;
  SessionOptions opts_;
  AccessGate* gate_ = nullptr;
  std::atomic<int> notify_fd_{-1};
  // Retrieves sent and not yet answered, by their notify_unique.
  std::mutex retrieve_mu_;
  std::unordered_map<uint64_t, RetrieveDone> retrieves_;
  uint64_t next_retrieve_ = 1;
  DiscardSink discard_;
  Negotiated neg_;
  std::atomic<bool> initialized_{false};
  std::atomic<bool> destroyed_{false};
  // Set once the file system answered FS_IOC_SHUTDOWN: every later request
  // but forgets, releases, interrupts and DESTROY is answered EIO here.
  std::atomic<bool> shut_down_{false};
  InodeRefs refs_;
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> spliced_{0};
  std::atomic<uint64_t> splice_fallbacks_{0};

  PassthroughTable passthrough_;
  std::unique_ptr<DevBackingControl> dev_backing_;
  std::atomic<bool> passthrough_warned_{false};

  mutable std::mutex slots_mu_;
  std::vector<std::unique_ptr<RequestSlot>> all_slots_;
  std::vector<RequestSlot*> free_slots_;
};

}  // namespace zest::server
