// Spliced read replies (DataReply::ok_fd) without a kernel: the pipe and
// its splice into a "device" (transport::SplicePipe, DevChannel), and the
// session's choice between splicing and copying, with a DevWire whose
// device is a memfd standing in for /dev/fuse. Every reply written to it
// is parsed back and compared with the file's bytes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/fd.h"
#include "server/session.h"
#include "transport/dev_channel.h"

namespace zest::server {
namespace {

using Bytes = std::vector<std::byte>;

UniqueFd Memfd(const char* name) {
  return UniqueFd(::memfd_create(name, MFD_CLOEXEC));
}

std::string Contents(int fd) {
  std::string out;
  char buf[65536];
  off_t off = 0;
  ssize_t n;
  while ((n = ::pread(fd, buf, sizeof buf, off)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

// A file of `size` pseudo-random bytes, with a hole in its middle.
UniqueFd DataFile(size_t size, std::string* bytes) {
  UniqueFd fd = Memfd("data");
  std::mt19937 rng(7);
  bytes->assign(size, '\0');
  for (size_t i = 0; i < size; ++i) (*bytes)[i] = static_cast<char>(rng());
  // [size/3, size/3 + 64 KiB) stays a hole: zeros the file never wrote.
  size_t hole = size / 3, hole_end = std::min(size, hole + 65536);
  std::fill(bytes->begin() + static_cast<long>(hole),
            bytes->begin() + static_cast<long>(hole_end), '\0');
  EXPECT_EQ(::pwrite(fd.get(), bytes->data(), hole, 0),
            static_cast<ssize_t>(hole));
  EXPECT_EQ(::pwrite(fd.get(), bytes->data() + hole_end, size - hole_end,
                     static_cast<off_t>(hole_end)),
            static_cast<ssize_t>(size - hole_end));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  return fd;
}

// --- the transport's pipe ---------------------------------------------------

TEST(SplicePipe, HeaderAndFileDataReachTheDeviceInOneReply) {
  std::string data;
  UniqueFd file = DataFile(300000, &data);
  UniqueFd dev = Memfd("dev");
  auto ch = transport::DevChannel::borrow(dev.get());
  auto pipe = transport::SplicePipe::create();
  ASSERT_TRUE(pipe) << pipe.error().message();
  // 1 MiB plus a header takes 258 pipe buffers at worst, more than the
  // 256 of pipe-max-size's default 1 MiB: only with CAP_SYS_RESOURCE.
  ASSERT_TRUE(pipe->fits(16, 4095, 512 * 1024));
  EXPECT_FALSE(pipe->fits(16, 0, 8u << 20));

  ASSERT_TRUE(pipe->put("HEADER..........", 16));
  auto got = pipe->fill(file.get(), 1234, 100000);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 100000u);
  EXPECT_EQ(pipe->held(), 100016u);
  ASSERT_TRUE(ch.send(*pipe));
  EXPECT_EQ(pipe->held(), 0u);
  EXPECT_EQ(Contents(dev.get()),
            "HEADER.........." + data.substr(1234, 100000));

  // At the end of the file: what it has, and 0 past it.
  got = pipe->fill(file.get(), data.size() - 10, 4096);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 10u);
  got = pipe->fill(file.get(), data.size() + 10, 4096);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 0u);
  char tail[10];
  ASSERT_TRUE(pipe->take(tail, 10));
  EXPECT_EQ(std::string(tail, 10), data.substr(data.size() - 10));
  EXPECT_EQ(pipe->held(), 0u);
}

TEST(SplicePipe, AFailedSendLeavesAnEmptyPipeForTheNextReply) {
  std::string data;
  UniqueFd file = DataFile(65536, &data);
  auto pipe = transport::SplicePipe::create();
  ASSERT_TRUE(pipe);
  // A device that refuses the reply before taking any of it (read-only).
  UniqueFd ro(::open(("/proc/self/fd/" + std::to_string(file.get())).c_str(),
                     O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(ro);
  ASSERT_TRUE(pipe->put("0123456789abcdef", 16));
  ASSERT_TRUE(pipe->fill(file.get(), 0, 8192));
  EXPECT_FALSE(transport::DevChannel::borrow(ro.get()).send(*pipe));
  EXPECT_EQ(pipe->held(), 0u);
  int left = -1;
  ASSERT_EQ(::ioctl(pipe->read_fd(), FIONREAD, &left), 0);
  EXPECT_EQ(left, 0) << "stale bytes would corrupt the next reply";

  UniqueFd dev = Memfd("dev");
  ASSERT_TRUE(pipe->put("fedcba9876543210", 16));
  ASSERT_TRUE(pipe->fill(file.get(), 100, 5000));
  ASSERT_TRUE(transport::DevChannel::borrow(dev.get()).send(*pipe));
  EXPECT_EQ(Contents(dev.get()), "fedcba9876543210" + data.substr(100, 5000));
}

TEST(SplicePipe, AFileThatCannotBeSplicedIsAnErrorNotAnEnd) {
  auto pipe = transport::SplicePipe::create();
  ASSERT_TRUE(pipe);
  UniqueFd dir(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_FALSE(pipe->fill(dir.get(), 0, 4096));
  EXPECT_FALSE(pipe->fill(-1, 0, 4096));
  ASSERT_TRUE(pipe->clear());
  EXPECT_EQ(pipe->held(), 0u);
}

// --- the session ------------------------------------------------------------

// Answers every read from `fd` (ok_fd), asking for `extra` bytes more than
// the kernel did (the session must clip).
class FdFs final : public fs::FileSystem {
 public:
  fs::Capabilities capabilities() const override { return caps; }
  void read(const fs::Context&, fs::Ino, uint64_t, uint64_t off, uint32_t size,
            fs::DataReply r) override {
    r.ok_fd(fd, off, size + extra);
  }
  fs::Capabilities caps;
  int fd = -1;
  size_t extra = 0;
};

// The replies written to a memfd device, split at their headers.
std::vector<Bytes> Replies(int dev) {
  std::string all = Contents(dev);
  std::vector<Bytes> out;
  size_t at = 0;
  while (at + sizeof(abi::fuse_out_header) <= all.size()) {
    abi::fuse_out_header h;
    std::memcpy(&h, all.data() + at, sizeof h);
    EXPECT_GE(h.len, sizeof h);
    EXPECT_LE(at + h.len, all.size()) << "reply longer than what was written";
    if (h.len < sizeof h || at + h.len > all.size()) break;
    auto* p = reinterpret_cast<const std::byte*>(all.data() + at);
    out.emplace_back(p, p + h.len);
    at += h.len;
  }
  EXPECT_EQ(at, all.size()) << "bytes after the last whole reply";
  return out;
}

class SessionSpliceTest : public ::testing::Test {
 protected:
  SessionSpliceTest() : dev_(Memfd("dev")) {}
  ~SessionSpliceTest() override {
    if (session_) session_->release_worker(*worker_);
  }

  // offer: whether the "kernel" offers FUSE_SPLICE_WRITE.
  void Start(bool offer, bool dev_wire = true) {
    file_ = DataFile(3 * (1u << 20) + 12345, &data_);
    fs_.fd = file_.get();
    session_ = std::make_unique<Session>(fs_, SessionOptions{});
    if (dev_wire) {
      wire_ =
          std::make_unique<DevWire>(transport::DevChannel::borrow(dev_.get()));
    } else {
      wire_ = std::make_unique<CopyWire>(dev_.get());
    }
    worker_ = std::make_unique<Session::Worker>(wire_.get());
    abi::fuse_init_in in{};
    in.major = 7;
    in.minor = 45;
    in.max_readahead = 1u << 20;
    in.flags = abi::FUSE_ASYNC_READ | abi::FUSE_MAX_PAGES | abi::FUSE_INIT_EXT |
               (offer ? abi::FUSE_SPLICE_WRITE | abi::FUSE_SPLICE_MOVE : 0);
    Send(abi::FUSE_INIT, in, 1);
    auto replies = Replies(dev_.get());
    ASSERT_EQ(replies.size(), 1u);
    abi::fuse_init_out out;
    std::memcpy(&out, replies[0].data() + sizeof(abi::fuse_out_header),
                sizeof out);
    init_flags_ = out.flags;
    ASSERT_EQ(::ftruncate(dev_.get(), 0), 0);
    ASSERT_EQ(::lseek(dev_.get(), 0, SEEK_SET), 0);
  }
  template <class T>
  void Send(uint32_t opcode, const T& arg, uint64_t unique) {
    abi::fuse_in_header h{};
    h.opcode = opcode;
    h.nodeid = 2;
    h.unique = unique;
    h.len = sizeof h + sizeof arg;
    Bytes b(h.len);
    std::memcpy(b.data(), &h, sizeof h);
    std::memcpy(b.data() + sizeof h, &arg, sizeof arg);
    session_->process(*worker_, b);
  }
  // Reads [off, off+size) through the session; checks the one reply, and
  // counts how it should have been sent: spliced when negotiated, long
  // enough, within the file and fitting the pipe (1 MiB needs a pipe
  // larger than pipe-max-size's default, see above); else copied, which
  // the session counts as a fallback when it tried to splice.
  void Read(uint64_t off, uint32_t size, int want_err = 0) {
    if (session_->negotiated().splice &&
        size >= session_->negotiated().splice_min && size > 0 && !want_err &&
        dynamic_cast<DevWire*>(wire_.get())) {
      bool fits = probe_->fits(sizeof(abi::fuse_out_header), off, size);
      if (fits && off + size <= data_.size())
        ++want_spliced_;
      else
        ++want_copied_;
    }
    abi::fuse_read_in in{};
    in.offset = off;
    in.size = size;
    ASSERT_EQ(::ftruncate(dev_.get(), 0), 0);
    ASSERT_EQ(::lseek(dev_.get(), 0, SEEK_SET), 0);
    Send(abi::FUSE_READ, in, ++unique_);
    auto replies = Replies(dev_.get());
    ASSERT_EQ(replies.size(), 1u) << "read " << size << " at " << off;
    abi::fuse_out_header h;
    std::memcpy(&h, replies[0].data(), sizeof h);
    EXPECT_EQ(h.unique, unique_);
    EXPECT_EQ(h.error, -want_err);
    if (want_err) return;
    std::string expect = off < data_.size() ? data_.substr(off, size) : "";
    std::string got(reinterpret_cast<const char*>(replies[0].data()) + sizeof h,
                    replies[0].size() - sizeof h);
    EXPECT_EQ(got.size(), expect.size()) << "read " << size << " at " << off;
    EXPECT_TRUE(got == expect)
        << "read " << size << " at " << off << ": wrong bytes";
  }

  // A wire that cannot splice (as a ring entry): writes copies to the fd.
  class CopyWire final : public Wire {
   public:
    explicit CopyWire(int fd) : fd_(fd) {}
    Result<void> send(const iovec* iov, int count) override {
      if (::writev(fd_, iov, count) < 0) return last_errno();
      return {};
    }

   private:
    int fd_;
  };

  FdFs fs_;
  UniqueFd dev_, file_;
  std::string data_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Wire> wire_;
  std::unique_ptr<Session::Worker> worker_;
  void CheckCounts() {
    EXPECT_EQ(session_->spliced_count(), want_spliced_);
    EXPECT_EQ(session_->splice_fallback_count(), want_copied_);
  }

  uint32_t init_flags_ = 0;
  uint64_t unique_ = 100;
  // A pipe like the session's, to tell which replies fit one.
  Result<transport::SplicePipe> probe_ = transport::SplicePipe::create();
  uint64_t want_spliced_ = 0, want_copied_ = 0;
};

TEST_F(SessionSpliceTest, ReadsAreSplicedAndByteExact) {
  fs_.caps.splice_write = true;
  fs_.caps.splice_min = 0;
  Start(/*offer=*/true);
  EXPECT_TRUE(init_flags_ & abi::FUSE_SPLICE_WRITE);
  EXPECT_FALSE(init_flags_ & abi::FUSE_SPLICE_MOVE);  // offered, not wanted
  ASSERT_TRUE(session_->negotiated().splice);

  ASSERT_TRUE(probe_);

  const uint64_t size = data_.size();
  Read(0, 4096);
  Read(1, 1);
  Read(4095, 2);
  Read(12345, 1u << 20);        // 1 MiB, unaligned
  Read(1u << 20, 1u << 20);     // 1 MiB, aligned
  Read(4096, 1020 * 1024);      // the most a 1 MiB pipe holds, aligned
  Read(4095, 1016 * 1024);      // and unaligned
  Read(size / 3 - 100, 70000);  // across the hole
  EXPECT_GE(session_->spliced_count(), 6u);
  EXPECT_EQ(session_->splice_fallback_count(), want_copied_);

  // The end of the file: a shorter reply, rebuilt with its true length.
  Read(size - 100, 4096);
  Read(size - 4096, 1u << 20);
  Read(size, 4096);         // at EOF: empty
  Read(size + 5000, 4096);  // past it: empty
  CheckCounts();

  // The file shrinks between two reads (someone truncated it).
  ASSERT_EQ(::ftruncate(file_.get(), 10000), 0);
  data_.resize(10000);
  Read(8192, 8192);
  Read(0, 10000);
  // And grows a hole at its end.
  ASSERT_EQ(::ftruncate(file_.get(), 200000), 0);
  data_.resize(200000);
  Read(9000, 100000);
  CheckCounts();
}

TEST_F(SessionSpliceTest, LongerAnswerIsClippedToTheRequest) {
  fs_.caps.splice_write = true;
  fs_.caps.splice_min = 0;
  fs_.extra = 5000;
  Start(true);
  Read(100, 4096);
  Read(0, 512 * 1024);
  Read(0, 1u << 20);
  Read(data_.size() - 100, 4096);
  EXPECT_GE(session_->spliced_count(), 2u);
  CheckCounts();
}

TEST_F(SessionSpliceTest, SmallReadsAreCopiedBelowTheThreshold) {
  fs_.caps.splice_write = true;
  fs_.caps.splice_min = 32768;
  Start(true);
  Read(0, 4096);
  Read(7, 32767);
  EXPECT_EQ(session_->spliced_count(), 0u);
  EXPECT_EQ(session_->splice_fallback_count(), 0u);
  Read(7, 32768);
  Read(0, 512 * 1024);
  EXPECT_EQ(session_->spliced_count(), 2u);
  CheckCounts();
}

TEST_F(SessionSpliceTest, UnsplicableFilesAnswerTheReadError) {
  fs_.caps.splice_write = true;
  fs_.caps.splice_min = 0;
  Start(true);
  UniqueFd dir(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  fs_.fd = dir.get();
  Read(0, 65536, EISDIR);
  fs_.fd = -1;
  Read(0, 65536, EBADF);
  EXPECT_EQ(session_->spliced_count(), 0u);
  // And the pipe is clean for the next reply.
  fs_.fd = file_.get();
  Read(4096, 65536);
  EXPECT_EQ(session_->spliced_count(), 1u);
}

TEST_F(SessionSpliceTest, WithoutAgreementRepliesAreCopied) {
  fs_.caps.splice_write = true;
  fs_.caps.splice_min = 0;
  Start(/*offer=*/false);
  EXPECT_FALSE(init_flags_ & abi::FUSE_SPLICE_WRITE);
  Read(0, 65536);
  Read(data_.size() - 10, 4096);
  EXPECT_EQ(session_->spliced_count(), 0u);
  EXPECT_EQ(session_->splice_fallback_count(), 0u);
}

TEST_F(SessionSpliceTest, FileSystemThatDoesNotAskIsNotSpliced) {
  fs_.caps.splice_write = false;
  fs_.caps.splice_min = 0;
  Start(true);
  EXPECT_FALSE(init_flags_ & abi::FUSE_SPLICE_WRITE);
  Read(0, 65536);
  EXPECT_EQ(session_->spliced_count(), 0u);
}

TEST_F(SessionSpliceTest, AWireThatCannotSpliceGetsCopies) {
  fs_.caps.splice_write = true;
  fs_.caps.splice_min = 0;
  Start(true, /*dev_wire=*/false);
  Read(0, 65536);
  Read(3, 1u << 20);
  Read(data_.size() - 10, 4096);
  EXPECT_EQ(session_->spliced_count(), 0u);
  EXPECT_EQ(session_->splice_fallback_count(), 3u);  // tried, not spliced
}

}  // namespace
}  // namespace zest::server
