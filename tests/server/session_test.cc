// Drives server::Session with raw protocol bytes and a capturing wire: the
// decoding, the replies, reference counting, async completion, interrupts,
// and resilience against malformed input, without a kernel.
#include "server/session.h"
#include "tests/server/raw_protocol.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace zest::server {
namespace {

using testing::Bytes;
using testing::CaptureWire;
using testing::Req;

class FakeFs final : public fs::FileSystem {
 public:
  void lookup(const fs::Context&, fs::Ino, std::string_view name,
              fs::EntryReply r) override {
    if (name == "async") {
      std::lock_guard lock(mu);
      parked.emplace(std::move(r));
      return;
    }
    if (name == "forgotten") return;  // reply dropped: must answer EIO
    if (name == "throws") throw std::runtime_error("a file system bug");
    if (name != "a") return r.error(ENOENT);
    fs::Entry e;
    e.ino = 2;
    e.attr.ino = 2;
    e.attr.mode = S_IFREG | 0644;
    e.attr.size = 42;
    r.ok(e);
  }
  void forget(fs::Ino ino) override { forgotten.push_back(ino); }
  void read(const fs::Context&, fs::Ino, uint64_t, uint64_t, uint32_t,
            fs::DataReply r) override {
    static const char data[] = "0123456789abcdefghij";
    r.ok(std::string_view(data, 20));
  }
  void readdir(const fs::Context&, fs::Ino, uint64_t, uint64_t off,
               fs::DirReply r) override {
    fs::Entry e;
    e.ino = 7;
    e.attr.ino = 7;
    e.attr.mode = S_IFREG;
    if (off == 0) r.add(".", 1, DT_DIR, 1, &e);  // plus entry for "." must not count
    if (off <= 1) r.add("file", 7, DT_REG, 2, &e);
    r.ok();
  }
  void getxattr(const fs::Context&, fs::Ino, std::string_view, uint32_t size,
                fs::XattrReply r) override {
    if (size == 0) return r.ok_size(10);
    r.ok(std::string_view("0123456789"));
  }
  fs::Capabilities capabilities() const override {
    fs::Capabilities c;
    c.posix_acl = posix_acl;
    return c;
  }
  // What the creating calls and setxattr saw (they answer EEXIST / ok).
  void setxattr(const fs::Context&, fs::Ino, std::string_view name,
                std::span<const std::byte> value, uint32_t flags, uint32_t ext_flags,
                fs::StatusReply r) override {
    seen = std::string(name) + "=" +
           std::string(reinterpret_cast<const char*>(value.data()), value.size());
    seen_flags = flags;
    seen_ext_flags = ext_flags;
    r.ok();
  }
  void mknod(const fs::Context& ctx, fs::Ino, std::string_view, uint32_t mode, uint32_t,
             fs::EntryReply r) override {
    saw_create(ctx, mode);
    r.error(EEXIST);
  }
  void mkdir(const fs::Context& ctx, fs::Ino, std::string_view, uint32_t mode,
             fs::EntryReply r) override {
    saw_create(ctx, mode);
    r.error(EEXIST);
  }
  void create(const fs::Context& ctx, fs::Ino, std::string_view, uint32_t mode, uint32_t,
              fs::CreateReply r) override {
    saw_create(ctx, mode);
    r.error(EEXIST);
  }
  void tmpfile(const fs::Context& ctx, fs::Ino, uint32_t mode, uint32_t,
               fs::CreateReply r) override {
    saw_create(ctx, mode);
    r.error(EEXIST);
  }
  void saw_create(const fs::Context& ctx, uint32_t mode) {
    seen_umask = ctx.umask;
    seen_mode = mode;
  }

  std::mutex mu;
  std::optional<fs::EntryReply> parked;
  std::vector<fs::Ino> forgotten;
  bool posix_acl = false;
  std::string seen;
  uint32_t seen_flags = 0, seen_ext_flags = 0, seen_umask = 0, seen_mode = 0;
};

// Builds one request: header + args.
abi::fuse_out_header out_header(const Bytes& b) {
  abi::fuse_out_header h{};
  EXPECT_GE(b.size(), sizeof(h));
  if (b.size() >= sizeof(h)) std::memcpy(&h, b.data(), sizeof(h));
  EXPECT_EQ(h.len, b.size());
  return h;
}

template <class T>
T payload(const Bytes& b, size_t at = 0) {
  T v{};
  EXPECT_GE(b.size(), sizeof(abi::fuse_out_header) + at + sizeof(T));
  std::memcpy(&v, b.data() + sizeof(abi::fuse_out_header) + at, sizeof(T));
  return v;
}

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() : session(fs, {}), worker(&wire) {}
  ~SessionTest() override { session.release_worker(worker); }

  void init(uint32_t more_flags = 0) {
    abi::fuse_init_in in{};
    in.major = 7;
    in.minor = 45;
    in.max_readahead = 128 * 1024;
    in.flags = abi::FUSE_ASYNC_READ | abi::FUSE_DO_READDIRPLUS |
               abi::FUSE_MAX_PAGES | abi::FUSE_INIT_EXT | abi::FUSE_SPLICE_MOVE |
               more_flags;
    in.flags2 = static_cast<uint32_t>(abi::FUSE_DIRECT_IO_ALLOW_MMAP >> 32);
    send(Req(abi::FUSE_INIT, 0, 1).arg(in));
    init_reply = wire.wait_one();
  }
  void send(const Req& r, int len_delta = 0) {
    Bytes b = r.bytes(len_delta);
    session.process(worker, b);
  }
  Bytes reply() { return wire.wait_one(); }

  FakeFs fs;
  CaptureWire wire;
  Session session;
  Session::Worker worker;
  Bytes init_reply;
};

TEST_F(SessionTest, InitNegotiatesOnlyWhatBothSidesOffer) {
  init();
  auto h = out_header(init_reply);
  EXPECT_EQ(h.error, 0);
  EXPECT_EQ(h.unique, 1u);
  auto out = payload<abi::fuse_init_out>(init_reply);
  EXPECT_EQ(out.major, 7u);
  EXPECT_EQ(out.minor, 45u);
  EXPECT_EQ(out.max_write, 1u << 20);
  EXPECT_EQ(out.max_pages, 256u);
  EXPECT_EQ(out.max_readahead, 128u * 1024);
  EXPECT_TRUE(out.flags & abi::FUSE_ASYNC_READ);
  EXPECT_TRUE(out.flags & abi::FUSE_DO_READDIRPLUS);
  EXPECT_FALSE(out.flags & abi::FUSE_SPLICE_MOVE);          // offered, not wanted
  EXPECT_FALSE(out.flags & abi::FUSE_PARALLEL_DIROPS);      // wanted, not offered
  EXPECT_FALSE(out.flags & abi::FUSE_WRITEBACK_CACHE);      // fs did not ask
  EXPECT_TRUE(out.flags2 & (abi::FUSE_DIRECT_IO_ALLOW_MMAP >> 32));
  EXPECT_TRUE(session.initialized());
}

// -o direct_io: buffered opens bypass the page cache too, so shared
// mappings of those files cannot be kept coherent; the server must not
// agree FUSE_DIRECT_IO_ALLOW_MMAP then (the kernel refuses them, ENODEV).
TEST(SessionInit, DirectIoOptionRefusesSharedMappings) {
  FakeFs fs;
  CaptureWire wire;
  SessionOptions so;
  so.direct_io = true;
  Session session(fs, so);
  Session::Worker worker(&wire);
  abi::fuse_init_in in{};
  in.major = 7;
  in.minor = 45;
  in.flags = abi::FUSE_INIT_EXT;
  in.flags2 = static_cast<uint32_t>(abi::FUSE_DIRECT_IO_ALLOW_MMAP >> 32);
  Bytes b = Req(abi::FUSE_INIT, 0, 1).arg(in).bytes(0);
  session.process(worker, b);
  auto out = payload<abi::fuse_init_out>(wire.wait_one());
  EXPECT_FALSE(out.flags2 & (abi::FUSE_DIRECT_IO_ALLOW_MMAP >> 32));
  EXPECT_TRUE(session.negotiated().always_direct);
  session.release_worker(worker);
}

TEST_F(SessionTest, NewerMajorGetsOurVersionOnly) {
  abi::fuse_init_in in{};
  in.major = 8;
  in.minor = 0;
  send(Req(abi::FUSE_INIT, 0, 1).arg(in));
  Bytes r = reply();
  EXPECT_EQ(out_header(r).len, sizeof(abi::fuse_out_header) + abi::FUSE_COMPAT_22_INIT_OUT_SIZE);
  auto out = payload<abi::fuse_init_out>(r.size() >= 80 ? r : (r.resize(80), r));
  EXPECT_EQ(out.major, 7u);
  EXPECT_FALSE(session.initialized());
}

TEST_F(SessionTest, RequestBeforeInitIsRefused) {
  send(Req(abi::FUSE_LOOKUP, 1, 5).name("a"));
  EXPECT_EQ(out_header(reply()).error, -EIO);
}

TEST_F(SessionTest, LookupCountsAndForgetReleases) {
  init();
  send(Req(abi::FUSE_LOOKUP, 1, 10).name("a"));
  Bytes r = reply();
  EXPECT_EQ(out_header(r).error, 0);
  auto e = payload<abi::fuse_entry_out>(r);
  EXPECT_EQ(e.nodeid, 2u);
  EXPECT_EQ(e.attr.size, 42u);
  EXPECT_EQ(e.entry_valid, 1u);
  send(Req(abi::FUSE_LOOKUP, 1, 11).name("a"));
  reply();
  EXPECT_EQ(session.refs().count(2), 2u);

  abi::fuse_forget_in f{1};
  send(Req(abi::FUSE_FORGET, 2, 12).arg(f));
  EXPECT_EQ(wire.pending(), 0u);  // FORGET has no reply
  EXPECT_TRUE(fs.forgotten.empty());
  send(Req(abi::FUSE_FORGET, 2, 13).arg(f));
  EXPECT_EQ(fs.forgotten, std::vector<fs::Ino>{2});
}

TEST_F(SessionTest, BatchForget) {
  init();
  for (int i = 0; i < 3; ++i) {
    send(Req(abi::FUSE_LOOKUP, 1, 20 + i).name("a"));
    reply();
  }
  abi::fuse_batch_forget_in b{2, 0};
  abi::fuse_forget_one one{2, 2}, two{2, 1};
  send(Req(abi::FUSE_BATCH_FORGET, 0, 30).arg(b).arg(one).arg(two));
  EXPECT_EQ(fs.forgotten, std::vector<fs::Ino>{2});
  EXPECT_EQ(wire.pending(), 0u);
}

TEST_F(SessionTest, UndeliveredEntryIsNotCounted) {
  init();
  wire.fail_next = true;  // the kernel gave up on the request
  send(Req(abi::FUSE_LOOKUP, 1, 10).name("a"));
  reply();
  EXPECT_EQ(session.refs().count(2), 0u);
  EXPECT_EQ(fs.forgotten, std::vector<fs::Ino>{2});
}

TEST_F(SessionTest, NegativeLookup) {
  init();
  send(Req(abi::FUSE_LOOKUP, 1, 10).name("nope"));
  EXPECT_EQ(out_header(reply()).error, -ENOENT);
}

TEST_F(SessionTest, DroppedReplyAnswersEio) {
  init();
  send(Req(abi::FUSE_LOOKUP, 1, 10).name("forgotten"));
  Bytes r = reply();
  EXPECT_EQ(out_header(r).unique, 10u);
  EXPECT_EQ(out_header(r).error, -EIO);
}

TEST_F(SessionTest, AFileSystemThatThrowsAnswersEioAndTheServerGoesOn) {
  init();
  send(Req(abi::FUSE_LOOKUP, 1, 10).name("throws"));
  Bytes r = reply();
  EXPECT_EQ(out_header(r).unique, 10u);
  EXPECT_EQ(out_header(r).error, -EIO);
  send(Req(abi::FUSE_LOOKUP, 1, 11).name("a"));
  EXPECT_EQ(out_header(reply()).error, 0);
}

TEST_F(SessionTest, StatfsHasADefault) {
  init();
  send(Req(abi::FUSE_STATFS, 1, 10));
  Bytes r = reply();
  ASSERT_EQ(out_header(r).error, 0);
  const auto st = payload<abi::fuse_statfs_out>(r);
  EXPECT_EQ(st.st.namelen, 255u);
  EXPECT_EQ(st.st.bsize, 4096u);
}

TEST_F(SessionTest, UnknownOpcodeIsEnosys) {
  init();
  send(Req(9999, 1, 10));
  EXPECT_EQ(out_header(reply()).error, -ENOSYS);
  send(Req(abi::FUSE_GETLK, 1, 11).arg(abi::fuse_lk_in{}));
  EXPECT_EQ(out_header(reply()).error, -ENOSYS);
}

TEST_F(SessionTest, DefaultOperationsAreEnosys) {
  init();
  send(Req(abi::FUSE_UNLINK, 1, 10).name("x"));
  EXPECT_EQ(out_header(reply()).error, -ENOSYS);
}

TEST_F(SessionTest, MalformedRequestsAnswerEio) {
  init();
  send(Req(abi::FUSE_LOOKUP, 1, 10).name("a", /*nul=*/false));  // no NUL
  EXPECT_EQ(out_header(reply()).error, -EIO);
  send(Req(abi::FUSE_GETATTR, 1, 11).name("xy"));  // short struct
  EXPECT_EQ(out_header(reply()).error, -EIO);
  abi::fuse_write_in w{};
  w.size = 4096;  // claims more data than follows
  send(Req(abi::FUSE_WRITE, 2, 12).arg(w).name("tiny"));
  EXPECT_EQ(out_header(reply()).error, -EIO);
  send(Req(abi::FUSE_LOOKUP, 1, 13).name("a"), /*len_delta=*/+8);  // len lies
  EXPECT_EQ(out_header(reply()).error, -EIO);
  Bytes runt(10, std::byte{1});  // shorter than a header: dropped
  session.process(worker, runt);
  EXPECT_EQ(wire.pending(), 0u);
  EXPECT_GE(session.malformed_count(), 5u);
}

TEST_F(SessionTest, ReadIsClippedToRequestedSize) {
  init();
  abi::fuse_read_in in{};
  in.size = 8;
  send(Req(abi::FUSE_READ, 2, 10).arg(in));
  Bytes r = reply();
  EXPECT_EQ(out_header(r).error, 0);
  ASSERT_EQ(r.size(), sizeof(abi::fuse_out_header) + 8);
  EXPECT_EQ(0, std::memcmp(r.data() + sizeof(abi::fuse_out_header), "01234567", 8));
}

TEST_F(SessionTest, GetxattrSizeAndRange) {
  init();
  abi::fuse_getxattr_in in{};
  in.size = 0;
  send(Req(abi::FUSE_GETXATTR, 2, 10).arg(in).name("user.x"));
  Bytes r = reply();
  EXPECT_EQ(payload<abi::fuse_getxattr_out>(r).size, 10u);
  in.size = 4;  // too small
  send(Req(abi::FUSE_GETXATTR, 2, 11).arg(in).name("user.x"));
  EXPECT_EQ(out_header(reply()).error, -ERANGE);
  in.size = 64;
  send(Req(abi::FUSE_GETXATTR, 2, 12).arg(in).name("user.x"));
  r = reply();
  EXPECT_EQ(r.size(), sizeof(abi::fuse_out_header) + 10);
}

constexpr uint32_t kAclFlags =
    abi::FUSE_POSIX_ACL | abi::FUSE_DONT_MASK | abi::FUSE_SETXATTR_EXT;

TEST_F(SessionTest, PosixAclAgreesDontMaskAndSetxattrExt) {
  fs.posix_acl = true;
  init(kAclFlags);
  EXPECT_EQ(payload<abi::fuse_init_out>(init_reply).flags & kAclFlags, kAclFlags);
  // SETXATTR now carries setxattr_flags.
  abi::fuse_setxattr_in sx{};
  sx.size = 3;
  sx.flags = 2;
  sx.setxattr_flags = abi::FUSE_SETXATTR_ACL_KILL_SGID;
  send(Req(abi::FUSE_SETXATTR, 2, 10).arg(sx).name("system.posix_acl_access").name("abc", false));
  EXPECT_EQ(out_header(reply()).error, 0);
  EXPECT_EQ(fs.seen, "system.posix_acl_access=abc");
  EXPECT_EQ(fs.seen_flags, 2u);
  EXPECT_EQ(fs.seen_ext_flags, fs::kXattrAclKillSgid);
  // The creating requests hand the umask on; the mode comes unmasked.
  abi::fuse_mkdir_in md{0777, 027};
  send(Req(abi::FUSE_MKDIR, 1, 11).arg(md).name("d"));
  EXPECT_EQ(out_header(reply()).error, -EEXIST);
  EXPECT_EQ(fs.seen_umask, 027u);
  EXPECT_EQ(fs.seen_mode, uint32_t{S_IFDIR | 0777});
  abi::fuse_mknod_in mn{S_IFIFO | 0666, 0, 022, 0};
  send(Req(abi::FUSE_MKNOD, 1, 12).arg(mn).name("p"));
  EXPECT_EQ(out_header(reply()).error, -EEXIST);
  EXPECT_EQ(fs.seen_umask, 022u);
  abi::fuse_create_in cr{O_RDWR, S_IFREG | 0666, 077, 0};
  send(Req(abi::FUSE_CREATE, 1, 13).arg(cr).name("f"));
  EXPECT_EQ(out_header(reply()).error, -EEXIST);
  EXPECT_EQ(fs.seen_umask, 077u);
  cr.umask = 002;
  send(Req(abi::FUSE_TMPFILE, 1, 14).arg(cr));
  EXPECT_EQ(out_header(reply()).error, -EEXIST);
  EXPECT_EQ(fs.seen_umask, 002u);
}

TEST_F(SessionTest, WithoutPosixAclTheKernelKeepsTheUmask) {
  init(kAclFlags);  // offered, not asked for
  EXPECT_EQ(payload<abi::fuse_init_out>(init_reply).flags & kAclFlags, 0u);
  // SETXATTR has the short header then.
  abi::fuse_setxattr_in sx{};
  sx.size = 1;
  Bytes head(abi::FUSE_COMPAT_SETXATTR_IN_SIZE);
  std::memcpy(head.data(), &sx, head.size());
  Req r(abi::FUSE_SETXATTR, 2, 10);
  for (std::byte b : head) r.arg(b);
  send(r.name("user.x").name("v", false));
  EXPECT_EQ(out_header(reply()).error, 0);
  EXPECT_EQ(fs.seen, "user.x=v");
  EXPECT_EQ(fs.seen_ext_flags, 0u);
}

TEST_F(SessionTest, ReaddirplusCountsEntriesButNotDots) {
  init();
  abi::fuse_read_in in{};
  in.size = 4096;
  send(Req(abi::FUSE_READDIRPLUS, 1, 10).arg(in));
  Bytes r = reply();
  EXPECT_EQ(out_header(r).error, 0);
  EXPECT_EQ(r.size(), sizeof(abi::fuse_out_header) + abi::fuse_direntplus_size(1) +
                          abi::fuse_direntplus_size(4));
  auto dot = payload<abi::fuse_entry_out>(r);
  EXPECT_EQ(dot.nodeid, 0u);
  auto file = payload<abi::fuse_entry_out>(r, abi::fuse_direntplus_size(1));
  EXPECT_EQ(file.nodeid, 7u);
  EXPECT_EQ(session.refs().count(7), 1u);
  EXPECT_EQ(session.refs().count(1), 0u);

  // A listing that does not fit the buffer holds back the entry.
  in.size = static_cast<uint32_t>(abi::fuse_direntplus_size(1));
  send(Req(abi::FUSE_READDIRPLUS, 1, 11).arg(in));
  r = reply();
  EXPECT_EQ(r.size(), sizeof(abi::fuse_out_header) + abi::fuse_direntplus_size(1));
  EXPECT_EQ(session.refs().count(7), 1u);
}

TEST_F(SessionTest, AsyncReplyFromAnotherThreadAndInterrupt) {
  init();
  send(Req(abi::FUSE_LOOKUP, 1, 77).name("async"));
  EXPECT_EQ(wire.pending(), 0u);
  EXPECT_EQ(session.slots_in_use(), 2u);  // the parked one + the worker's

  // The worker keeps serving while the reply is parked.
  send(Req(abi::FUSE_LOOKUP, 1, 78).name("a"));
  EXPECT_EQ(out_header(reply()).unique, 78u);

  abi::fuse_interrupt_in intr{77};
  send(Req(abi::FUSE_INTERRUPT, 0, 79).arg(intr));
  EXPECT_EQ(wire.pending(), 0u);  // INTERRUPT has no reply

  std::thread completer([&] {
    std::lock_guard lock(fs.mu);
    ASSERT_TRUE(fs.parked.has_value());
    ASSERT_TRUE(fs.parked->interrupted());
    fs.parked->error(EINTR);
    fs.parked.reset();
  });
  completer.join();
  Bytes r = reply();
  EXPECT_EQ(out_header(r).unique, 77u);
  EXPECT_EQ(out_header(r).error, -EINTR);
  EXPECT_EQ(session.slots_in_use(), 1u);  // the parked slot was recycled

  // A recycled slot does not look interrupted for its next request.
  send(Req(abi::FUSE_LOOKUP, 1, 80).name("async"));
  {
    std::lock_guard lock(fs.mu);
    ASSERT_TRUE(fs.parked.has_value());
    EXPECT_FALSE(fs.parked->interrupted());
    fs::Entry e;
    e.ino = 3;
    fs.parked->ok(e);
    fs.parked.reset();
  }
  EXPECT_EQ(out_header(reply()).unique, 80u);
}

TEST_F(SessionTest, RandomGarbageNeverCrashes) {
  init();
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    size_t n = rng() % 200;
    Bytes b(n);
    for (auto& x : b) x = std::byte(rng());
    if (n >= sizeof(abi::fuse_in_header)) {
      abi::fuse_in_header h;
      std::memcpy(&h, b.data(), sizeof(h));
      h.opcode = static_cast<uint32_t>(rng() % 60);
      if (h.opcode == abi::FUSE_INIT) h.opcode = abi::FUSE_GETATTR;
      if (rng() % 2) h.len = static_cast<uint32_t>(n);
      h.nodeid = 1 + rng() % 4;
      std::memcpy(b.data(), &h, sizeof(h));
    }
    session.process(worker, b);
  }
  // Every request with a header got exactly one answer or none (forgets,
  // interrupts), never more; drain them.
  std::lock_guard lock(wire.mu);
  for (auto& r : wire.replies) {
    abi::fuse_out_header h{};
    ASSERT_GE(r.size(), sizeof(h));
    std::memcpy(&h, r.data(), sizeof(h));
    EXPECT_EQ(h.len, r.size());
    EXPECT_LE(h.error, 0);
  }
}

}  // namespace
}  // namespace zest::server
