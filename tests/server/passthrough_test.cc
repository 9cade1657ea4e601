// Passthrough bookkeeping with a fake kernel: one backing id per inode while
// any passthrough open of it exists, closed on the last RELEASE; fallback
// to direct I/O when passthrough was not agreed or registration fails.
#include <sys/stat.h>

#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include "server/backing.h"
#include "server/session.h"

namespace zest::server {
namespace {

using Bytes = std::vector<std::byte>;

class FakeBacking final : public BackingControl {
 public:
  Result<int32_t> open(int fd) override {
    if (fail_with) return Errno(fail_with);
    int32_t id = next++;
    live[id] = fd;
    ++opened;
    return id;
  }
  void close(int32_t id) override {
    EXPECT_TRUE(live.count(id)) << "closing unknown id " << id;
    live.erase(id);
    ++closed;
  }
  int fail_with = 0;
  int32_t next = 1;
  int opened = 0, closed = 0;
  std::map<int32_t, int> live;
};

TEST(PassthroughTableTest, OneIdPerInodeRefcountedByOpens) {
  FakeBacking k;
  PassthroughTable t(&k);
  auto a = t.open(10, 100, 7);
  auto b = t.open(10, 101, 8);  // same inode: same id, fd not registered
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(k.opened, 1);
  auto c = t.open(11, 100, 9);  // other inode, same fh value
  ASSERT_TRUE(c);
  EXPECT_NE(*c, *a);
  EXPECT_EQ(t.inodes(), 2u);

  t.release(10, 100);
  EXPECT_EQ(k.closed, 0);
  t.release(10, 999);  // never a passthrough open: ignored
  EXPECT_EQ(k.closed, 0);
  t.release(10, 101);
  EXPECT_EQ(k.closed, 1);
  EXPECT_EQ(t.id_of(10), 0);
  EXPECT_EQ(t.id_of(11), *c);
  t.release(11, 100);
  EXPECT_EQ(k.closed, 2);
  EXPECT_TRUE(k.live.empty());
}

TEST(PassthroughTableTest, SameHandleTwiceCountsTwice) {
  FakeBacking k;
  PassthroughTable t(&k);
  ASSERT_TRUE(t.open(1, 0, 3));
  ASSERT_TRUE(t.open(1, 0, 3));
  t.release(1, 0);
  EXPECT_EQ(k.closed, 0);
  t.release(1, 0);
  EXPECT_EQ(k.closed, 1);
}

TEST(PassthroughTableTest, FailureLeavesNothingBehind) {
  FakeBacking k;
  k.fail_with = EPERM;
  PassthroughTable t(&k);
  auto r = t.open(1, 0, 3);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, EPERM);
  EXPECT_EQ(t.inodes(), 0u);
  t.release(1, 0);  // harmless
  EXPECT_FALSE(PassthroughTable().open(1, 0, 3));  // no control at all
}

TEST(PassthroughTableTest, ClearClosesEverything) {
  FakeBacking k;
  PassthroughTable t(&k);
  ASSERT_TRUE(t.open(1, 0, 3));
  ASSERT_TRUE(t.open(2, 0, 4));
  t.clear();
  EXPECT_EQ(k.closed, 2);
  EXPECT_EQ(t.inodes(), 0u);
}

TEST(BackingIdTest, ClosesOnceWhenMovedAndDestroyed) {
  FakeBacking k;
  auto id = k.open(5);
  ASSERT_TRUE(id);
  {
    BackingId a(&k, *id);
    BackingId b(std::move(a));
    BackingId c;
    c = std::move(b);
    EXPECT_EQ(c.id(), *id);
  }
  EXPECT_EQ(k.closed, 1);
}

// --- through the session -----------------------------------------------

class CaptureWire final : public Wire {
 public:
  Result<void> send(const iovec* iov, int count) override {
    Bytes b;
    for (int i = 0; i < count; ++i) {
      auto* p = static_cast<const std::byte*>(iov[i].iov_base);
      b.insert(b.end(), p, p + iov[i].iov_len);
    }
    last = std::move(b);
    if (fail_next) {
      fail_next = false;
      return Errno(ENOENT);
    }
    return {};
  }
  Bytes last;
  bool fail_next = false;
};

class PassFs final : public fs::FileSystem {
 public:
  void open(const fs::Context&, fs::Ino ino, uint32_t, fs::OpenReply r) override {
    fs::OpenInfo o;
    o.fh = next_fh++;
    o.mode = fs::IoMode::Passthrough;
    o.backing_fd = static_cast<int>(100 + ino);
    r.ok(o);
  }
  void create(const fs::Context&, fs::Ino, std::string_view, uint32_t, uint32_t,
              fs::CreateReply r) override {
    fs::Entry e;
    e.ino = 40;
    e.attr.ino = 40;
    e.attr.mode = S_IFREG | 0644;
    fs::OpenInfo o;
    o.fh = next_fh++;
    o.mode = fs::IoMode::Passthrough;
    o.backing_fd = 140;
    r.ok(e, o);
  }
  void release(const fs::Context&, fs::Ino, uint64_t fh, uint32_t,
               fs::StatusReply r) override {
    released.push_back(fh);
    r.ok();
  }
  uint64_t next_fh = 1;
  std::vector<uint64_t> released;
};

class PassthroughSessionTest : public ::testing::Test {
 protected:
  PassthroughSessionTest() : session(fs, {}), worker(&wire) {
    session.set_backing_control(&kernel);
  }
  ~PassthroughSessionTest() override { session.release_worker(worker); }

  template <class T>
  void send(uint32_t opcode, uint64_t nodeid, uint64_t unique, const T& arg,
            std::string_view tail = {}) {
    abi::fuse_in_header h{};
    h.opcode = opcode;
    h.nodeid = nodeid;
    h.unique = unique;
    h.len = static_cast<uint32_t>(sizeof(h) + sizeof(T) + tail.size());
    Bytes b(h.len);
    std::memcpy(b.data(), &h, sizeof(h));
    std::memcpy(b.data() + sizeof(h), &arg, sizeof(T));
    std::memcpy(b.data() + sizeof(h) + sizeof(T), tail.data(), tail.size());
    session.process(worker, b);
  }
  void init(bool offer) {
    abi::fuse_init_in in{};
    in.major = 7;
    in.minor = 45;
    in.flags = abi::FUSE_INIT_EXT;
    if (offer) in.flags2 = static_cast<uint32_t>(abi::FUSE_PASSTHROUGH >> 32);
    send(abi::FUSE_INIT, 0, 1, in);
    abi::fuse_init_out o{};
    std::memcpy(&o, wire.last.data() + sizeof(abi::fuse_out_header), sizeof(o));
    init_out = o;
  }
  abi::fuse_open_out open_reply(size_t at = 0) {
    abi::fuse_open_out o{};
    std::memcpy(&o, wire.last.data() + sizeof(abi::fuse_out_header) + at, sizeof(o));
    return o;
  }
  void release(uint64_t ino, uint64_t fh, uint64_t unique) {
    abi::fuse_release_in r{};
    r.fh = fh;
    send(abi::FUSE_RELEASE, ino, unique, r);
  }

  PassFs fs;
  FakeBacking kernel;
  CaptureWire wire;
  Session session;
  Session::Worker worker;
  abi::fuse_init_out init_out{};
};

TEST_F(PassthroughSessionTest, NegotiatedOpensShareTheInodesId) {
  init(true);
  EXPECT_TRUE(init_out.flags2 & (abi::FUSE_PASSTHROUGH >> 32));
  EXPECT_EQ(init_out.max_stack_depth, 1u);
  abi::fuse_open_in in{};
  send(abi::FUSE_OPEN, 5, 10, in);
  auto a = open_reply();
  EXPECT_TRUE(a.open_flags & abi::FOPEN_PASSTHROUGH);
  EXPECT_FALSE(a.open_flags & abi::FOPEN_DIRECT_IO);
  EXPECT_GT(a.backing_id, 0);
  EXPECT_EQ(kernel.live[a.backing_id], 105);
  send(abi::FUSE_OPEN, 5, 11, in);
  auto b = open_reply();
  EXPECT_EQ(b.backing_id, a.backing_id);
  EXPECT_EQ(kernel.opened, 1);

  release(5, a.fh, 12);
  EXPECT_EQ(kernel.closed, 0);
  release(5, b.fh, 13);
  EXPECT_EQ(kernel.closed, 1);
  EXPECT_EQ(fs.released, (std::vector<uint64_t>{a.fh, b.fh}));
}

TEST_F(PassthroughSessionTest, CreateRegistersTheNewInode) {
  init(true);
  abi::fuse_create_in in{};
  in.mode = S_IFREG | 0644;
  send(abi::FUSE_CREATE, 1, 20, in, std::string_view("f\0", 2));
  auto o = open_reply(sizeof(abi::fuse_entry_out));
  EXPECT_TRUE(o.open_flags & abi::FOPEN_PASSTHROUGH);
  EXPECT_EQ(kernel.live[o.backing_id], 140);
  EXPECT_EQ(session.passthrough().id_of(40), o.backing_id);
  release(40, o.fh, 21);
  EXPECT_TRUE(kernel.live.empty());
}

TEST_F(PassthroughSessionTest, UndeliveredOpenDropsItsReference) {
  init(true);
  abi::fuse_open_in in{};
  wire.fail_next = true;  // the kernel gave up on the open
  send(abi::FUSE_OPEN, 5, 10, in);
  EXPECT_EQ(kernel.opened, 1);
  EXPECT_EQ(kernel.closed, 1);
  EXPECT_EQ(session.passthrough().inodes(), 0u);
}

// Without a backing id the file system serves the file itself, as Direct
// does: O_DIRECT opens bypass the page cache; buffered opens use it written
// through (never FOPEN_DIRECT_IO: that is incoherent with shared mappings),
// and drop it at open (no FOPEN_KEEP_CACHE).
TEST_F(PassthroughSessionTest, NotNegotiatedFallsBackToServingItself) {
  init(false);
  EXPECT_EQ(init_out.max_stack_depth, 0u);
  abi::fuse_open_in in{};
  send(abi::FUSE_OPEN, 5, 10, in);
  auto a = open_reply();
  EXPECT_FALSE(a.open_flags & abi::FOPEN_PASSTHROUGH);
  EXPECT_FALSE(a.open_flags & abi::FOPEN_DIRECT_IO);
  EXPECT_FALSE(a.open_flags & abi::FOPEN_KEEP_CACHE);
  EXPECT_EQ(a.backing_id, 0);
  EXPECT_EQ(kernel.opened, 0);
  release(5, a.fh, 11);  // not a passthrough open: nothing to close
  EXPECT_EQ(kernel.closed, 0);
  in.flags = O_RDWR | O_DIRECT;
  send(abi::FUSE_OPEN, 5, 12, in);
  auto d = open_reply();
  EXPECT_TRUE(d.open_flags & abi::FOPEN_DIRECT_IO);
  EXPECT_TRUE(d.open_flags & abi::FOPEN_PARALLEL_DIRECT_WRITES);
  release(5, d.fh, 13);
  EXPECT_EQ(kernel.closed, 0);
}

TEST_F(PassthroughSessionTest, RegistrationFailureFallsBackToServingItself) {
  init(true);
  kernel.fail_with = EPERM;
  abi::fuse_open_in in{};
  in.flags = O_RDONLY | O_DIRECT;
  send(abi::FUSE_OPEN, 5, 10, in);
  auto a = open_reply();
  EXPECT_FALSE(a.open_flags & abi::FOPEN_PASSTHROUGH);
  EXPECT_TRUE(a.open_flags & abi::FOPEN_DIRECT_IO);
  EXPECT_EQ(session.passthrough().inodes(), 0u);
}

}  // namespace
}  // namespace zest::server
