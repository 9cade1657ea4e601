// The io_uring request layout without a kernel: a ring entry's header and
// payload buffers as the kernel fills them (captured layouts built here
// byte by byte), decoded into requests the session answers, and replies
// encoded back into the entry the way the kernel reads them
// (fs/fuse/dev_uring.c: the out header in in_out, every reply argument in
// the payload, ring_ent_in_out.payload_sz their size).
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "server/arg_reader.h"
#include "server/session.h"
#include "server/uring_worker.h"

namespace zest::server {
namespace {

using Bytes = std::vector<std::byte>;

Bytes bytes_of(std::string_view s) {
  Bytes b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

TEST(ArgReaderTest, TwoSegmentsReadInOrder) {
  abi::fuse_write_in w{};
  w.fh = 7;
  w.size = 5;
  Bytes a(sizeof(w));
  std::memcpy(a.data(), &w, sizeof(w));
  Bytes b = bytes_of("hello");
  ArgReader r(a, b);
  EXPECT_EQ(r.left(), sizeof(w) + 5);
  abi::fuse_write_in got;
  ASSERT_TRUE(r.read(&got));
  EXPECT_EQ(got.fh, 7u);
  std::span<const std::byte> data;
  ASSERT_TRUE(r.bytes(5, &data));
  EXPECT_EQ(data.data(), b.data());  // a view, not a copy
  EXPECT_EQ(r.left(), 0u);
  EXPECT_FALSE(r.bytes(1, &data));
}

TEST(ArgReaderTest, EmptyFirstSegmentAndNames) {
  Bytes b = bytes_of(std::string("from\0to\0", 8));
  ArgReader r({}, b);
  std::string_view n1, n2, n3;
  ASSERT_TRUE(r.name(&n1));
  ASSERT_TRUE(r.name(&n2));
  EXPECT_EQ(n1, "from");
  EXPECT_EQ(n2, "to");
  EXPECT_FALSE(r.name(&n3));
}

TEST(ArgReaderTest, StructStraddlingSegmentsIsCopiedNameIsNot) {
  uint64_t v = 0x1122334455667788ull;
  Bytes all(sizeof(v));
  std::memcpy(all.data(), &v, sizeof(v));
  Bytes a(all.begin(), all.begin() + 3), b(all.begin() + 3, all.end());
  ArgReader r(a, b);
  uint64_t got = 0;
  ASSERT_TRUE(r.read(&got));
  EXPECT_EQ(got, v);

  // A name may not run from one segment into the other.
  Bytes c = bytes_of("ab"), d = bytes_of(std::string("c\0", 2));
  ArgReader r2(c, d);
  std::string_view n;
  EXPECT_FALSE(r2.name(&n));
}

TEST(ArgReaderTest, ShortReadsFail) {
  Bytes a(4);
  ArgReader r(a);
  uint64_t x;
  EXPECT_FALSE(r.read(&x));
  EXPECT_TRUE(r.skip(4));
  EXPECT_FALSE(r.skip(1));
}

// A ring entry as the kernel leaves it: header, op_in, payload.
struct Entry {
  abi::fuse_uring_req_header hdr{};
  Bytes payload = Bytes(64 * 1024);

  template <class Op>
  void fill(uint32_t opcode, uint64_t unique, uint64_t nodeid, const Op* op,
            std::string_view tail) {
    abi::fuse_in_header h{};
    h.opcode = opcode;
    h.unique = unique;
    h.nodeid = nodeid;
    size_t op_size = op ? sizeof(Op) : 0;
    h.len = static_cast<uint32_t>(sizeof(h) + op_size + tail.size());
    std::memcpy(hdr.in_out, &h, sizeof(h));
    if (op) std::memcpy(hdr.op_in, op, sizeof(Op));
    std::memcpy(payload.data(), tail.data(), tail.size());
    hdr.ring_ent_in_out.commit_id = unique;
    hdr.ring_ent_in_out.payload_sz = static_cast<uint32_t>(tail.size());
  }
};

TEST(RingDecodeTest, SplitsFixedStructAndPayload) {
  Entry e;
  abi::fuse_mkdir_in mk{};
  mk.mode = 0755;
  e.fill(abi::FUSE_MKDIR, 42, 1, &mk, std::string_view("dir\0", 4));
  RingRequest req;
  ASSERT_EQ(decode_ring_request(e.hdr, e.payload, &req), nullptr);
  EXPECT_EQ(req.h.opcode, abi::FUSE_MKDIR);
  EXPECT_EQ(req.commit_id, 42u);
  EXPECT_EQ(req.op_in.size(), sizeof(mk));
  EXPECT_EQ(req.payload.size(), 4u);
  EXPECT_EQ(req.payload.data(), e.payload.data());
}

TEST(RingDecodeTest, NameOnlyRequestHasEmptyOpIn) {
  Entry e;
  e.fill<char>(abi::FUSE_LOOKUP, 5, 1, nullptr, std::string_view("a\0", 2));
  RingRequest req;
  ASSERT_EQ(decode_ring_request(e.hdr, e.payload, &req), nullptr);
  EXPECT_TRUE(req.op_in.empty());
  EXPECT_EQ(req.payload.size(), 2u);
}

TEST(RingDecodeTest, InconsistentSizesAreRefused) {
  Entry e;
  e.fill<char>(abi::FUSE_LOOKUP, 5, 1, nullptr, std::string_view("a\0", 2));
  RingRequest req;
  e.hdr.ring_ent_in_out.payload_sz = 1u << 30;  // beyond the buffer
  EXPECT_NE(decode_ring_request(e.hdr, e.payload, &req), nullptr);
  e.hdr.ring_ent_in_out.payload_sz = 2;
  abi::fuse_in_header h;
  std::memcpy(&h, e.hdr.in_out, sizeof(h));
  h.len = 10;  // shorter than header + payload
  std::memcpy(e.hdr.in_out, &h, sizeof(h));
  EXPECT_NE(decode_ring_request(e.hdr, e.payload, &req), nullptr);
  h.len = sizeof(h) + 2 + 200;  // op_in would be 200 > 128
  std::memcpy(e.hdr.in_out, &h, sizeof(h));
  EXPECT_NE(decode_ring_request(e.hdr, e.payload, &req), nullptr);
  EXPECT_EQ(req.h.unique, 5u);  // still answerable
}

TEST(RingEncodeTest, HeaderToInOutArgumentsToPayload) {
  Entry e;
  abi::fuse_out_header oh{};
  oh.unique = 9;
  abi::fuse_attr_out a{};
  a.attr.ino = 3;
  const char extra[] = "xyz";
  iovec iov[3] = {{&oh, sizeof(oh)}, {&a, sizeof(a)}, {const_cast<char*>(extra), 3}};
  encode_ring_reply(iov, 3, &e.hdr, e.payload);
  abi::fuse_out_header got;
  std::memcpy(&got, e.hdr.in_out, sizeof(got));
  EXPECT_EQ(got.unique, 9u);
  EXPECT_EQ(got.error, 0);
  EXPECT_EQ(got.len, sizeof(oh) + sizeof(a) + 3);
  EXPECT_EQ(e.hdr.ring_ent_in_out.payload_sz, sizeof(a) + 3);
  abi::fuse_attr_out back;
  std::memcpy(&back, e.payload.data(), sizeof(back));
  EXPECT_EQ(back.attr.ino, 3u);
  EXPECT_EQ(std::memcmp(e.payload.data() + sizeof(a), "xyz", 3), 0);
}

TEST(RingEncodeTest, ErrorHasNoPayloadAndOversizeBecomesEio) {
  Entry e;
  abi::fuse_out_header oh{};
  oh.unique = 9;
  oh.error = -ENOENT;
  iovec iov[1] = {{&oh, sizeof(oh)}};
  encode_ring_reply(iov, 1, &e.hdr, e.payload);
  EXPECT_EQ(e.hdr.ring_ent_in_out.payload_sz, 0u);
  abi::fuse_out_header got;
  std::memcpy(&got, e.hdr.in_out, sizeof(got));
  EXPECT_EQ(got.error, -ENOENT);

  Bytes big(e.payload.size() + 1);
  oh.error = 0;
  iovec iov2[2] = {{&oh, sizeof(oh)}, {big.data(), big.size()}};
  encode_ring_reply(iov2, 2, &e.hdr, e.payload);
  std::memcpy(&got, e.hdr.in_out, sizeof(got));
  EXPECT_EQ(got.error, -EIO);
  EXPECT_EQ(e.hdr.ring_ent_in_out.payload_sz, 0u);
}

TEST(RingEncodeTest, ReplyBuiltInPlaceIsNotCopied) {
  Entry e;
  std::memcpy(e.payload.data(), "in place", 8);
  abi::fuse_out_header oh{};
  oh.unique = 1;
  iovec iov[2] = {{&oh, sizeof(oh)}, {e.payload.data(), 8}};
  encode_ring_reply(iov, 2, &e.hdr, e.payload);
  EXPECT_EQ(e.hdr.ring_ent_in_out.payload_sz, 8u);
  EXPECT_EQ(std::memcmp(e.payload.data(), "in place", 8), 0);
}

// The session answers a request decoded from a ring entry exactly as one
// read from /dev/fuse; the reply lands in the entry.
class EntryCapture final : public Wire {
 public:
  explicit EntryCapture(Entry* e) : e_(e) {}
  Result<void> send(const iovec* iov, int count) override {
    encode_ring_reply(iov, count, &e_->hdr, e_->payload);
    ++sent;
    return {};
  }
  int sent = 0;

 private:
  Entry* e_;
};

class WriteFs final : public fs::FileSystem {
 public:
  void lookup(const fs::Context&, fs::Ino, std::string_view name,
              fs::EntryReply r) override {
    last_name = std::string(name);
    fs::Entry e;
    e.ino = 5;
    e.attr.ino = 5;
    e.attr.mode = S_IFREG | 0644;
    r.ok(e);
  }
  void write(const fs::Context&, fs::Ino, uint64_t fh, uint64_t off,
             std::span<const std::byte> data, uint32_t, fs::WriteReply r) override {
    last_fh = fh;
    last_off = off;
    data_ptr = data.data();
    last_data.assign(reinterpret_cast<const char*>(data.data()), data.size());
    r.ok(data.size());
  }
  std::string last_name, last_data;
  uint64_t last_fh = 0, last_off = 0;
  const std::byte* data_ptr = nullptr;
};

class RingSessionTest : public ::testing::Test {
 protected:
  RingSessionTest() : session(fs, {}), worker(nullptr), wire(&entry) {}
  ~RingSessionTest() override { session.release_worker(worker); }

  void init() {
    Entry dev;
    abi::fuse_init_in in{};
    in.major = 7;
    in.minor = 45;
    in.flags = abi::FUSE_INIT_EXT | abi::FUSE_MAX_PAGES;
    dev.fill(abi::FUSE_INIT, 1, 0, &in, "");
    serve(dev);
  }
  void serve(Entry& e) {
    RingRequest req;
    const char* why = decode_ring_request(e.hdr, e.payload, &req);
    EntryCapture w(&e);
    session.process(worker, &w, req.h, ArgReader(req.op_in, req.payload), why);
  }
  abi::fuse_out_header out() {
    abi::fuse_out_header h;
    std::memcpy(&h, entry.hdr.in_out, sizeof(h));
    return h;
  }

  WriteFs fs;
  Session session;
  Session::Worker worker;
  Entry entry;
  EntryCapture wire;
};

TEST_F(RingSessionTest, LookupNameFromPayloadAnswerInPayload) {
  init();
  entry.fill<char>(abi::FUSE_LOOKUP, 10, 1, nullptr, std::string_view("file\0", 5));
  serve(entry);
  EXPECT_EQ(fs.last_name, "file");
  EXPECT_EQ(out().unique, 10u);
  EXPECT_EQ(out().error, 0);
  EXPECT_EQ(entry.hdr.ring_ent_in_out.payload_sz, sizeof(abi::fuse_entry_out));
  abi::fuse_entry_out eo;
  std::memcpy(&eo, entry.payload.data(), sizeof(eo));
  EXPECT_EQ(eo.nodeid, 5u);
  EXPECT_EQ(session.refs().count(5), 1u);
}

TEST_F(RingSessionTest, WriteDataIsAViewIntoThePayload) {
  init();
  abi::fuse_write_in w{};
  w.fh = 3;
  w.offset = 4096;
  w.size = 6;
  entry.fill(abi::FUSE_WRITE, 11, 5, &w, "abcdef");
  serve(entry);
  EXPECT_EQ(fs.last_data, "abcdef");
  EXPECT_EQ(fs.last_fh, 3u);
  EXPECT_EQ(fs.last_off, 4096u);
  EXPECT_EQ(fs.data_ptr, entry.payload.data());  // no copy of write data
  abi::fuse_write_out wo;
  std::memcpy(&wo, entry.payload.data(), sizeof(wo));
  EXPECT_EQ(wo.size, 6u);
  EXPECT_EQ(entry.hdr.ring_ent_in_out.payload_sz, sizeof(wo));
}

TEST_F(RingSessionTest, MalformedEntryIsAnsweredEio) {
  init();
  entry.fill<char>(abi::FUSE_LOOKUP, 12, 1, nullptr, std::string_view("x\0", 2));
  entry.hdr.ring_ent_in_out.payload_sz = 1u << 30;
  serve(entry);
  EXPECT_EQ(out().unique, 12u);
  EXPECT_EQ(out().error, -EIO);
  EXPECT_EQ(session.malformed_count(), 1u);
}

TEST_F(RingSessionTest, InitAsksForTheRingOnlyWhenTold) {
  Entry e;
  abi::fuse_init_in in{};
  in.major = 7;
  in.minor = 45;
  in.flags = abi::FUSE_INIT_EXT;
  in.flags2 = static_cast<uint32_t>(abi::FUSE_OVER_IO_URING >> 32);
  e.fill(abi::FUSE_INIT, 1, 0, &in, "");
  serve(e);
  abi::fuse_init_out o;
  std::memcpy(&o, e.payload.data(), sizeof(o));
  EXPECT_FALSE(o.flags2 & (abi::FUSE_OVER_IO_URING >> 32));  // transport dev
  EXPECT_FALSE(session.negotiated().uring);

  WriteFs fs2;
  SessionOptions so;
  so.transport = Transport::kAuto;
  Session s2(fs2, so);
  Session::Worker w2(nullptr);
  Entry e2;
  e2.fill(abi::FUSE_INIT, 1, 0, &in, "");
  RingRequest req;
  ASSERT_EQ(decode_ring_request(e2.hdr, e2.payload, &req), nullptr);
  EntryCapture cap(&e2);
  s2.process(w2, &cap, req.h, ArgReader(req.op_in, req.payload));
  std::memcpy(&o, e2.payload.data(), sizeof(o));
  EXPECT_TRUE(o.flags2 & (abi::FUSE_OVER_IO_URING >> 32));
  EXPECT_TRUE(s2.negotiated().uring);
  s2.release_worker(w2);
}

}  // namespace
}  // namespace zest::server
