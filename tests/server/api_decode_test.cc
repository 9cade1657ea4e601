// The plugin API's later operations, driven with raw protocol bytes as in
// session_test.cc: INIT negotiation of locks and connection parameters,
// GETLK/SETLK/SETLKW (with fs::LockTable behind them, parking and
// interrupts), FLUSH/RELEASE lock owners, POLL, BMAP, STATX, the groups
// extension of creating requests, no_open, and the notifications (what the
// server writes, and NOTIFY_REPLY reaching a retrieve's callback).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "server/session.h"
#include "tests/server/raw_protocol.h"
#include "zest/fs/lock_table.h"

namespace zest::server {
namespace {

using testing::Bytes;
using testing::CaptureWire;
using testing::Req;

class ApiFs final : public fs::FileSystem {
 public:
  fs::Capabilities capabilities() const override { return caps; }
  void set_notifier(fs::Notifier* n) override { notifier = n; }
  void getlk(const fs::Context& ctx, fs::Ino ino, uint64_t, uint64_t owner, const fs::Lock& l,
             fs::LockReply r) override {
    last_owner = owner;
    ctx_owner = ctx.lock_owner;
    locks.getlk(ino, owner, l, std::move(r));
  }
  void setlk(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t owner, const fs::Lock& l,
             bool sleep, bool flock, fs::StatusReply r) override {
    last_sleep = sleep;
    last_flock = flock;
    locks.setlk(ino, fh, owner, l, sleep, flock, std::move(r));
  }
  void flush(const fs::Context& ctx, fs::Ino ino, uint64_t, fs::StatusReply r) override {
    ctx_owner = ctx.lock_owner;
    locks.flush(ino, ctx.lock_owner);
    r.ok();
  }
  void release(const fs::Context& ctx, fs::Ino ino, uint64_t fh, uint32_t,
               fs::StatusReply r) override {
    ctx_owner = ctx.lock_owner;
    release_flock = ctx.release_flock;
    locks.release(ino, fh);
    r.ok();
  }
  void poll(const fs::Context&, fs::Ino, uint64_t fh, uint64_t kh, uint32_t flags,
            uint32_t events, fs::PollReply r) override {
    poll_args = {fh, kh, flags, events};
    r.ok(POLLIN);
  }
  void bmap(const fs::Context&, fs::Ino, uint32_t blocksize, uint64_t block,
            fs::BmapReply r) override {
    r.ok(block * 1000 + blocksize);
  }
  void statx(const fs::Context&, fs::Ino ino, const uint64_t* fh, uint32_t flags, uint32_t mask,
             fs::StatxReply r) override {
    statx_args = {fh ? *fh : 0, flags, mask};
    fs::StatxAttr a;
    a.attr.ino = ino;
    a.attr.mode = S_IFREG | 0600;
    a.attr.size = 5;
    a.btime = {1234, 5678};
    a.mask = 0x7ff | 0x800;  // STATX_BASIC_STATS | STATX_BTIME
    r.ok(a, 2.5);
  }
  void create(const fs::Context& ctx, fs::Ino, std::string_view name, uint32_t, uint32_t,
              fs::CreateReply r) override {
    groups.assign(ctx.supp_groups().begin(), ctx.supp_groups().end());
    created = std::string(name);
    r.error(EEXIST);
  }
  void open(const fs::Context&, fs::Ino, uint32_t, fs::OpenReply r) override {
    ++opens;
    r.ok(fs::OpenInfo{});
  }

  fs::Capabilities caps;
  fs::Notifier* notifier = nullptr;
  fs::LockTable locks;
  uint64_t last_owner = 0, ctx_owner = 0;
  bool last_sleep = false, last_flock = false, release_flock = false;
  std::vector<uint64_t> poll_args, statx_args;
  std::vector<uint32_t> groups;
  std::string created;
  int opens = 0;
};

int error_of(const Bytes& b) {
  abi::fuse_out_header h{};
  if (b.size() < sizeof(h)) return 1;  // no reply
  std::memcpy(&h, b.data(), sizeof(h));
  return h.error;
}

template <class T>
T payload(const Bytes& b) {
  T v{};
  EXPECT_GE(b.size(), sizeof(abi::fuse_out_header) + sizeof(T));
  if (b.size() >= sizeof(abi::fuse_out_header) + sizeof(T))
    std::memcpy(&v, b.data() + sizeof(abi::fuse_out_header), sizeof(T));
  return v;
}

abi::fuse_lk_in lk(uint64_t owner, uint32_t type, uint64_t start, uint64_t end,
                   uint32_t pid = 7, uint32_t flags = 0, uint64_t fh = 1) {
  abi::fuse_lk_in in{};
  in.fh = fh;
  in.owner = owner;
  in.lk = {start, end, type, pid};
  in.lk_flags = flags;
  return in;
}

class ApiDecodeTest : public ::testing::Test {
 protected:
  ApiDecodeTest() : session(fs, {}), worker(&wire) {}
  ~ApiDecodeTest() override {
    fs.locks.cancel_waiters(EIO);
    session.release_worker(worker);
  }
  abi::fuse_init_out init(uint32_t offer = 0xffffffffu & ~abi::FUSE_INIT_RESERVED,
                          uint32_t offer2 = 0xffffffffu) {
    abi::fuse_init_in in{};
    in.major = 7;
    in.minor = 45;
    in.max_readahead = 512 * 1024;
    in.flags = offer;
    in.flags2 = offer2;
    send(Req(abi::FUSE_INIT, 0, 1).arg(in));
    return payload<abi::fuse_init_out>(wire.take());
  }
  void send(const Req& r) {
    Bytes b = r.bytes();
    session.process(worker, b);
  }
  Bytes reply() { return wire.take(); }

  ApiFs fs;
  CaptureWire wire;
  Session session;
  Session::Worker worker;
};

uint64_t flags_of(const abi::fuse_init_out& o) {
  return o.flags | (uint64_t{o.flags2} << 32);
}

TEST_F(ApiDecodeTest, DefaultsAreWhatEveryFileSystemGotBefore) {
  auto out = init();
  uint64_t f = flags_of(out);
  EXPECT_TRUE(f & abi::FUSE_DO_READDIRPLUS);
  EXPECT_TRUE(f & abi::FUSE_READDIRPLUS_AUTO);
  EXPECT_TRUE(f & abi::FUSE_CACHE_SYMLINKS);
  EXPECT_TRUE(f & abi::FUSE_AUTO_INVAL_DATA);  // not sole_writer
  EXPECT_FALSE(f & abi::FUSE_EXPLICIT_INVAL_DATA);
  EXPECT_FALSE(f & abi::FUSE_POSIX_LOCKS);
  EXPECT_FALSE(f & abi::FUSE_FLOCK_LOCKS);
  EXPECT_FALSE(f & abi::FUSE_NO_OPEN_SUPPORT);
  EXPECT_FALSE(f & abi::FUSE_CREATE_SUPP_GROUP);
  EXPECT_EQ(out.time_gran, 1u);
  EXPECT_EQ(out.max_readahead, 512u * 1024);
  EXPECT_NE(fs.notifier, nullptr);
}

TEST_F(ApiDecodeTest, CapabilitiesChooseLocksAndConnectionParameters) {
  fs.caps.posix_locks = true;
  fs.caps.flock_locks = true;
  fs.caps.time_gran = 1000;
  fs.caps.max_readahead = 64 * 1024;
  fs.caps.data_inval = fs::Capabilities::DataInval::kExplicit;
  fs.caps.readdirplus = fs::Capabilities::Readdirplus::kAlways;
  fs.caps.cache_symlinks = false;
  fs.caps.no_open = true;
  fs.caps.no_opendir = true;
  fs.caps.supp_groups = true;
  auto out = init();
  uint64_t f = flags_of(out);
  EXPECT_TRUE(f & abi::FUSE_POSIX_LOCKS);
  EXPECT_TRUE(f & abi::FUSE_FLOCK_LOCKS);
  EXPECT_TRUE(f & abi::FUSE_EXPLICIT_INVAL_DATA);
  EXPECT_FALSE(f & abi::FUSE_AUTO_INVAL_DATA);
  EXPECT_TRUE(f & abi::FUSE_DO_READDIRPLUS);
  EXPECT_FALSE(f & abi::FUSE_READDIRPLUS_AUTO);
  EXPECT_FALSE(f & abi::FUSE_CACHE_SYMLINKS);
  EXPECT_TRUE(f & abi::FUSE_NO_OPEN_SUPPORT);
  EXPECT_TRUE(f & abi::FUSE_NO_OPENDIR_SUPPORT);
  EXPECT_TRUE(f & abi::FUSE_CREATE_SUPP_GROUP);
  EXPECT_EQ(out.time_gran, 1000u);
  EXPECT_EQ(out.max_readahead, 64u * 1024);

  // no_open: OPEN and OPENDIR answered ENOSYS without the file system.
  abi::fuse_open_in oi{};
  send(Req(abi::FUSE_OPEN, 2, 5).arg(oi));
  EXPECT_EQ(error_of(reply()), -ENOSYS);
  send(Req(abi::FUSE_OPENDIR, 1, 6).arg(oi));
  EXPECT_EQ(error_of(reply()), -ENOSYS);
  EXPECT_EQ(fs.opens, 0);
}

TEST_F(ApiDecodeTest, ReaddirplusOffAndBadTimeGranularity) {
  fs.caps.readdirplus = fs::Capabilities::Readdirplus::kOff;
  fs.caps.time_gran = 3;  // not a power of ten: the kernel would misuse it
  fs.caps.sole_writer = true;
  auto out = init();
  uint64_t f = flags_of(out);
  EXPECT_FALSE(f & abi::FUSE_DO_READDIRPLUS);
  EXPECT_FALSE(f & abi::FUSE_READDIRPLUS_AUTO);
  EXPECT_FALSE(f & abi::FUSE_AUTO_INVAL_DATA);  // sole_writer default
  EXPECT_FALSE(f & abi::FUSE_EXPLICIT_INVAL_DATA);
  EXPECT_EQ(out.time_gran, 1u);
}

TEST_F(ApiDecodeTest, GetlkAndSetlkDecodeAndAnswer) {
  init();
  send(Req(abi::FUSE_SETLK, 2, 10).arg(lk(100, F_WRLCK, 10, 19, 42)));
  EXPECT_EQ(error_of(reply()), 0);
  EXPECT_FALSE(fs.last_sleep);
  EXPECT_FALSE(fs.last_flock);
  // Another owner asks about an overlapping read lock: the write lock.
  send(Req(abi::FUSE_GETLK, 2, 11).arg(lk(200, F_RDLCK, 15, 30)));
  Bytes r = reply();
  ASSERT_EQ(error_of(r), 0);
  auto out = payload<abi::fuse_lk_out>(r);
  EXPECT_EQ(out.lk.type, uint32_t{F_WRLCK});
  EXPECT_EQ(out.lk.start, 10u);
  EXPECT_EQ(out.lk.end, 19u);
  EXPECT_EQ(out.lk.pid, 42u);
  EXPECT_EQ(fs.last_owner, 200u);
  EXPECT_EQ(fs.ctx_owner, 200u);
  // No conflict beyond it: F_UNLCK and the asked range.
  send(Req(abi::FUSE_GETLK, 2, 12).arg(lk(200, F_RDLCK, 20, 30)));
  out = payload<abi::fuse_lk_out>(reply());
  EXPECT_EQ(out.lk.type, uint32_t{F_UNLCK});
  EXPECT_EQ(out.lk.start, 20u);
  // Conflicting SETLK: EAGAIN.
  send(Req(abi::FUSE_SETLK, 2, 13).arg(lk(200, F_RDLCK, 0, 10)));
  EXPECT_EQ(error_of(reply()), -EAGAIN);
  // A bad type: EINVAL.
  send(Req(abi::FUSE_SETLK, 2, 14).arg(lk(200, 9, 0, 10)));
  EXPECT_EQ(error_of(reply()), -EINVAL);
}

TEST_F(ApiDecodeTest, SetlkwParksUntilUnlockAndFlushReleasesTheOwner) {
  init();
  send(Req(abi::FUSE_SETLK, 2, 10).arg(lk(100, F_WRLCK, 0, fs::kLockEnd)));
  EXPECT_EQ(error_of(reply()), 0);
  send(Req(abi::FUSE_SETLKW, 2, 11).arg(lk(200, F_WRLCK, 5, 5)));
  EXPECT_TRUE(fs.last_sleep);
  EXPECT_EQ(wire.pending(), 0u);  // parked
  EXPECT_EQ(fs.locks.waiting(), 1u);
  // close(2) by the holder: FLUSH with its lock owner frees the lock and
  // the waiter is answered (unique 11) before the flush (unique 12).
  abi::fuse_flush_in fl{};
  fl.fh = 1;
  fl.lock_owner = 100;
  send(Req(abi::FUSE_FLUSH, 2, 12).arg(fl));
  Bytes first = reply(), second = reply();
  EXPECT_EQ(error_of(first), 0);
  abi::fuse_out_header h1{}, h2{};
  std::memcpy(&h1, first.data(), sizeof(h1));
  std::memcpy(&h2, second.data(), sizeof(h2));
  EXPECT_EQ(h1.unique, 11u);
  EXPECT_EQ(h2.unique, 12u);
  EXPECT_EQ(fs.ctx_owner, 100u);
  EXPECT_EQ(fs.locks.waiting(), 0u);
  EXPECT_EQ(fs.locks.held(2), 1u);  // owner 200 holds [5,5]
}

TEST_F(ApiDecodeTest, InterruptAnswersAParkedSetlkwEintr) {
  init();
  send(Req(abi::FUSE_SETLK, 2, 10).arg(lk(100, F_RDLCK, 0, 99)));
  reply();
  send(Req(abi::FUSE_SETLKW, 2, 11).arg(lk(200, F_WRLCK, 50, 60, 7, abi::FUSE_LK_FLOCK)));
  EXPECT_TRUE(fs.last_flock);
  // flock and POSIX locks do not conflict: granted at once.
  EXPECT_EQ(error_of(reply()), 0);
  send(Req(abi::FUSE_SETLKW, 2, 12).arg(lk(300, F_WRLCK, 50, 60)));
  EXPECT_EQ(wire.pending(), 0u);
  abi::fuse_interrupt_in intr{12};
  send(Req(abi::FUSE_INTERRUPT, 0, 13).arg(intr));
  Bytes r = reply();
  abi::fuse_out_header h{};
  ASSERT_GE(r.size(), sizeof(h));
  std::memcpy(&h, r.data(), sizeof(h));
  EXPECT_EQ(h.unique, 12u);
  EXPECT_EQ(h.error, -EINTR);
  EXPECT_EQ(fs.locks.waiting(), 0u);
  EXPECT_EQ(session.slots_in_use(), 1u);  // the worker's own; the parked one came back
  // A second interrupt for the same (answered) request does nothing.
  send(Req(abi::FUSE_INTERRUPT, 0, 14).arg(intr));
  EXPECT_EQ(wire.pending(), 0u);
}

TEST_F(ApiDecodeTest, DeadlockIsRefused) {
  init();
  send(Req(abi::FUSE_SETLK, 2, 10).arg(lk(100, F_WRLCK, 0, 9)));
  send(Req(abi::FUSE_SETLK, 2, 11).arg(lk(200, F_WRLCK, 10, 19)));
  reply();
  reply();
  send(Req(abi::FUSE_SETLKW, 2, 12).arg(lk(100, F_WRLCK, 10, 19)));  // waits for 200
  EXPECT_EQ(wire.pending(), 0u);
  send(Req(abi::FUSE_SETLKW, 2, 13).arg(lk(200, F_WRLCK, 0, 9)));  // would close the cycle
  EXPECT_EQ(error_of(reply()), -EDEADLK);
}

TEST_F(ApiDecodeTest, ReleaseCarriesTheFlockOwner) {
  init();
  send(Req(abi::FUSE_SETLK, 2, 10).arg(lk(500, F_WRLCK, 0, fs::kLockEnd, 1, abi::FUSE_LK_FLOCK, 9)));
  reply();
  EXPECT_EQ(fs.locks.held(2), 1u);
  abi::fuse_release_in rel{};
  rel.fh = 9;
  rel.release_flags = abi::FUSE_RELEASE_FLOCK_UNLOCK;
  rel.lock_owner = 500;
  send(Req(abi::FUSE_RELEASE, 2, 11).arg(rel));
  EXPECT_EQ(error_of(reply()), 0);
  EXPECT_EQ(fs.ctx_owner, 500u);
  EXPECT_TRUE(fs.release_flock);
  EXPECT_EQ(fs.locks.held(2), 0u);
}

TEST_F(ApiDecodeTest, PollBmapStatx) {
  init();
  abi::fuse_poll_in pin{};
  pin.fh = 3;
  pin.kh = 77;
  pin.flags = abi::FUSE_POLL_SCHEDULE_NOTIFY;
  pin.events = POLLIN | POLLOUT;
  send(Req(abi::FUSE_POLL, 2, 10).arg(pin));
  Bytes r = reply();
  ASSERT_EQ(error_of(r), 0);
  EXPECT_EQ(payload<abi::fuse_poll_out>(r).revents, uint32_t{POLLIN});
  EXPECT_EQ(fs.poll_args, (std::vector<uint64_t>{3, 77, fs::kPollScheduleNotify,
                                                 uint64_t{POLLIN | POLLOUT}}));

  abi::fuse_bmap_in bin{};
  bin.block = 5;
  bin.blocksize = 512;
  send(Req(abi::FUSE_BMAP, 2, 11).arg(bin));
  r = reply();
  ASSERT_EQ(error_of(r), 0);
  EXPECT_EQ(payload<abi::fuse_bmap_out>(r).block, 5512u);

  abi::fuse_statx_in sin{};
  sin.getattr_flags = abi::FUSE_GETATTR_FH;
  sin.fh = 4;
  sin.sx_flags = 0x2000;  // AT_STATX_FORCE_SYNC
  sin.sx_mask = 0x800;    // STATX_BTIME
  send(Req(abi::FUSE_STATX, 2, 12).arg(sin));
  r = reply();
  ASSERT_EQ(error_of(r), 0);
  auto sx = payload<abi::fuse_statx_out>(r);
  EXPECT_EQ(sx.attr_valid, 2u);
  EXPECT_EQ(sx.attr_valid_nsec, 500000000u);
  EXPECT_EQ(sx.stat.btime.tv_sec, 1234);
  EXPECT_EQ(sx.stat.btime.tv_nsec, 5678u);
  EXPECT_EQ(sx.stat.size, 5u);
  EXPECT_EQ(sx.stat.mode, S_IFREG | 0600);
  EXPECT_EQ(fs.statx_args, (std::vector<uint64_t>{4, 0x2000, 0x800}));
}

Bytes groups_ext(std::vector<uint32_t> groups, uint32_t claimed) {
  size_t body = 4 + 4 * groups.size();
  size_t size = (8 + body + 7) / 8 * 8;
  Bytes e(size);
  abi::fuse_ext_header xh{static_cast<uint32_t>(size), abi::FUSE_EXT_GROUPS};
  std::memcpy(e.data(), &xh, 8);
  std::memcpy(e.data() + 8, &claimed, 4);
  std::memcpy(e.data() + 12, groups.data(), 4 * groups.size());
  return e;
}

TEST_F(ApiDecodeTest, CreateCarriesSupplementaryGroups) {
  fs.caps.supp_groups = true;
  init();
  abi::fuse_create_in cin{};
  cin.mode = S_IFREG | 0644;
  send(Req(abi::FUSE_CREATE, 1, 10).arg(cin).name("f").ext(groups_ext({4242}, 1)));
  EXPECT_EQ(error_of(reply()), -EEXIST);
  EXPECT_EQ(fs.created, "f");
  EXPECT_EQ(fs.groups, std::vector<uint32_t>{4242});
  // No extension: no groups.
  send(Req(abi::FUSE_CREATE, 1, 11).arg(cin).name("g"));
  EXPECT_EQ(error_of(reply()), -EEXIST);
  EXPECT_TRUE(fs.groups.empty());
  // A count larger than the extension: malformed (EIO), never read past it.
  send(Req(abi::FUSE_CREATE, 1, 12).arg(cin).name("h").ext(groups_ext({1}, 1000)));
  EXPECT_EQ(error_of(reply()), -EIO);
  EXPECT_EQ(fs.created, "g");
}

// Notifications go to the fd set with set_notify_fd (a pipe here).
class NotifyTest : public ApiDecodeTest {
 protected:
  NotifyTest() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    rd.reset(p[0]);
    wr.reset(p[1]);
  }
  Bytes read_message() {
    Bytes b(4096);
    ssize_t n = ::read(rd.get(), b.data(), b.size());
    b.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return b;
  }
  UniqueFd rd, wr;
};

TEST_F(NotifyTest, NotConnectedBeforeInit) {
  session.set_notify_fd(wr.get());
  EXPECT_EQ(session.poll_wakeup(1).error().value, ENOTCONN);
  init();
  EXPECT_TRUE(session.poll_wakeup(1).ok());
}

TEST_F(NotifyTest, MessagesAreEncodedAsTheKernelReadsThem) {
  init();
  session.set_notify_fd(wr.get());
  fs::Notifier& n = *fs.notifier;

  ASSERT_TRUE(n.inval_entry(1, "name").ok());
  Bytes m = read_message();
  ASSERT_EQ(m.size(), sizeof(abi::fuse_out_header) + sizeof(abi::fuse_notify_inval_entry_out) + 5);
  abi::fuse_out_header h{};
  std::memcpy(&h, m.data(), sizeof(h));
  EXPECT_EQ(h.error, abi::FUSE_NOTIFY_INVAL_ENTRY);
  EXPECT_EQ(h.unique, 0u);
  EXPECT_EQ(h.len, m.size());
  auto ie = payload<abi::fuse_notify_inval_entry_out>(m);
  EXPECT_EQ(ie.parent, 1u);
  EXPECT_EQ(ie.namelen, 4u);
  EXPECT_EQ(std::memcmp(m.data() + m.size() - 5, "name", 5), 0);

  ASSERT_TRUE(n.delete_entry(1, 9, "x").ok());
  m = read_message();
  auto de = payload<abi::fuse_notify_delete_out>(m);
  EXPECT_EQ(de.child, 9u);
  EXPECT_EQ(de.namelen, 1u);

  const char data[] = "hello";
  ASSERT_TRUE(n.store(5, 4096, std::as_bytes(std::span(data, 5))).ok());
  m = read_message();
  std::memcpy(&h, m.data(), sizeof(h));
  EXPECT_EQ(h.error, abi::FUSE_NOTIFY_STORE);
  auto st = payload<abi::fuse_notify_store_out>(m);
  EXPECT_EQ(st.nodeid, 5u);
  EXPECT_EQ(st.offset, 4096u);
  EXPECT_EQ(st.size, 5u);
  EXPECT_EQ(std::memcmp(m.data() + m.size() - 5, "hello", 5), 0);

  ASSERT_TRUE(n.poll_wakeup(77).ok());
  m = read_message();
  EXPECT_EQ(payload<abi::fuse_notify_poll_wakeup_out>(m).kh, 77u);

  ASSERT_TRUE(n.inval_inode(5, 0, -1).ok());
  m = read_message();
  std::memcpy(&h, m.data(), sizeof(h));
  EXPECT_EQ(h.error, abi::FUSE_NOTIFY_INVAL_INODE);
}

TEST_F(NotifyTest, RetrieveGetsTheKernelsNotifyReply) {
  init();
  session.set_notify_fd(wr.get());
  std::optional<std::string> got;
  ASSERT_TRUE(fs.notifier
                  ->retrieve(5, 0, 100,
                             [&](Result<std::span<const std::byte>> r) {
                               got = r ? std::string(reinterpret_cast<const char*>(r->data()),
                                                     r->size())
                                       : "error";
                             })
                  .ok());
  Bytes m = read_message();
  auto rt = payload<abi::fuse_notify_retrieve_out>(m);
  EXPECT_EQ(rt.nodeid, 5u);
  EXPECT_EQ(rt.size, 100u);
  // The kernel answers with a request whose unique is notify_unique; it
  // gets no reply.
  abi::fuse_notify_retrieve_in in{};
  in.size = 3;
  send(Req(abi::FUSE_NOTIFY_REPLY, 5, rt.notify_unique).arg(in).name("ab"));
  EXPECT_EQ(got, std::optional<std::string>(std::in_place, "ab\0", 3));
  EXPECT_EQ(wire.pending(), 0u);
  // An answer nobody waits for is ignored.
  got.reset();
  send(Req(abi::FUSE_NOTIFY_REPLY, 5, rt.notify_unique).arg(in).name("ab"));
  EXPECT_FALSE(got.has_value());
}

}  // namespace
}  // namespace zest::server
