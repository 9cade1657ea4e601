// The plugin API through the real kernel: a small file system (ApiFs, locks
// kept by fs::LockTable) served in this process on a fresh FUSE mount per
// test (transport::FuseMount + server::Session::serve on a thread), driven
// with system calls from this process and forked children: POSIX record
// locks between processes (conflicts, F_GETLK, blocking and wake-up, a
// blocked F_SETLKW interrupted by a signal), OFD locks, flock(2), poll(2)
// woken by a notification, the notifications the kernel acts on
// (inval_entry, delete_entry, store, retrieve), supplementary groups of a
// creating caller, and connection parameters (time_gran, no_open).
//
// Needs root (mount(2), setgroups). Every wait is bounded; the mount is
// detached and, if the server does not leave, the connection aborted in the
// fixture's destructor, so a failing test never leaves a mount behind.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "server/session.h"
#include "transport/mount.h"
#include "zest/fs/lock_table.h"

namespace zest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr fs::Ino kFile = 2;     // "file": locks, store, retrieve
constexpr fs::Ino kPollIno = 3;  // "poll"
constexpr fs::Ino kNoOpen = 4;   // "noopen": open answers ENOSYS
constexpr uint32_t kRootGid = 4242;

class ApiFs final : public fs::FileSystem {
 public:
  ApiFs() {
    add(kFile, "file", S_IFREG | 0666, "AAAAAAAAAAAAAAAA");
    add(kPollIno, "poll", S_IFREG | 0666, "");
    add(kNoOpen, "noopen", S_IFREG | 0666, "x");
    add(5, "x", S_IFREG | 0666, "five");
    add(6, "y", S_IFREG | 0666, "six!!!");
    add(7, "d", S_IFREG | 0666, "seven");
  }
  fs::Capabilities capabilities() const override { return caps; }
  void set_notifier(fs::Notifier* n) override { notifier = n; }
  void destroy() override { locks.cancel_waiters(EIO); }

  void lookup(const fs::Context&, fs::Ino parent, std::string_view name,
              fs::EntryReply r) override {
    std::lock_guard g(mu);
    // A plugin bug: the server answers EIO and serves on.
    if (name == "throws") throw std::runtime_error("a bug in the file system");
    auto it = names.find(std::string(name));
    if (parent != fs::kRootIno || it == names.end()) return r.error(ENOENT);
    r.ok(entry(it->second));
  }
  void getattr(const fs::Context&, fs::Ino ino, const uint64_t*, fs::AttrReply r) override {
    std::lock_guard g(mu);
    if (ino != fs::kRootIno && !nodes.count(ino)) return r.error(ENOENT);
    r.ok(attr(ino), 1000);
  }
  void setattr(const fs::Context&, fs::Ino ino, const fs::SetAttr& sa, fs::AttrReply r) override {
    std::lock_guard g(mu);
    if (!nodes.count(ino)) return r.error(ENOENT);
    if (sa.valid & fs::SetAttr::kMtime) nodes[ino].mtime = sa.mtime;
    if (sa.valid & fs::SetAttr::kSize) nodes[ino].data.resize(sa.size);
    r.ok(attr(ino), 1000);
  }
  void open(const fs::Context&, fs::Ino ino, uint32_t, fs::OpenReply r) override {
    ++opens;
    if (ino == kNoOpen) return r.error(ENOSYS);
    fs::OpenInfo o;
    o.fh = next_fh++;
    o.mode = fs::IoMode::Cached;  // the page cache: store() shows there
    o.keep_cache = true;
    r.ok(o);
  }
  void create(const fs::Context& ctx, fs::Ino, std::string_view name, uint32_t mode, uint32_t,
              fs::CreateReply r) override {
    std::lock_guard g(mu);
    created_groups.assign(ctx.supp_groups().begin(), ctx.supp_groups().end());
    fs::Ino ino = 100 + nodes.size();
    add(ino, std::string(name), S_IFREG | (mode & 07777), "");
    fs::OpenInfo o;
    o.fh = next_fh++;
    r.ok(entry(ino), o);
  }
  void read(const fs::Context&, fs::Ino ino, uint64_t, uint64_t off, uint32_t size,
            fs::DataReply r) override {
    ++reads;
    std::lock_guard g(mu);
    const std::string& d = nodes[ino].data;
    if (off >= d.size()) return r.ok(std::string_view());
    r.ok(std::string_view(d).substr(off, size));
  }
  void flush(const fs::Context& ctx, fs::Ino ino, uint64_t, fs::StatusReply r) override {
    locks.flush(ino, ctx.lock_owner);
    r.ok();
  }
  void release(const fs::Context&, fs::Ino ino, uint64_t fh, uint32_t,
               fs::StatusReply r) override {
    locks.release(ino, fh);
    r.ok();
  }
  void getlk(const fs::Context&, fs::Ino ino, uint64_t, uint64_t owner, const fs::Lock& l,
             fs::LockReply r) override {
    locks.getlk(ino, owner, l, std::move(r));
  }
  void setlk(const fs::Context&, fs::Ino ino, uint64_t fh, uint64_t owner, const fs::Lock& l,
             bool sleep, bool flock, fs::StatusReply r) override {
    locks.setlk(ino, fh, owner, l, sleep, flock, std::move(r));
  }
  void statx(const fs::Context&, fs::Ino ino, const uint64_t*, uint32_t, uint32_t mask,
             fs::StatxReply r) override {
    ++statxs;
    std::lock_guard g(mu);
    if (ino != fs::kRootIno && !nodes.count(ino)) return r.error(ENOENT);
    fs::StatxAttr a;
    a.attr = attr(ino);
    a.btime = {1234, 5678};
    a.mask = STATX_BASIC_STATS | (mask & STATX_BTIME);
    r.ok(a, 1000);
  }
  void poll(const fs::Context&, fs::Ino, uint64_t, uint64_t kh, uint32_t flags, uint32_t events,
            fs::PollReply r) override {
    std::lock_guard g(mu);
    if (readable) return r.ok(events & POLLIN);
    if (flags & fs::kPollScheduleNotify) poll_kh = kh;
    r.ok(0);
  }

  // Changes behind the kernel's back.
  void rename_behind(const std::string& from, const std::string& to) {
    std::lock_guard g(mu);
    names[to] = names[from];
    names.erase(from);
  }
  void remove_behind(const std::string& name) {
    std::lock_guard g(mu);
    names.erase(name);
  }
  void set_readable() {
    std::lock_guard g(mu);
    readable = true;
  }
  uint64_t kh() {
    std::lock_guard g(mu);
    return poll_kh;
  }
  timespec mtime(fs::Ino ino) {
    std::lock_guard g(mu);
    return nodes[ino].mtime;
  }

  fs::Capabilities caps;
  fs::Notifier* notifier = nullptr;
  fs::LockTable locks;
  std::atomic<int> opens{0};
  std::atomic<int> reads{0};
  std::atomic<int> statxs{0};
  std::vector<uint32_t> created_groups;

 private:
  struct Node {
    uint32_t mode;
    std::string data;
    timespec mtime{};
  };
  void add(fs::Ino ino, const std::string& name, uint32_t mode, std::string data) {
    nodes[ino] = Node{mode, std::move(data), {}};
    names[name] = ino;
  }
  fs::Attr attr(fs::Ino ino) {
    fs::Attr a;
    a.ino = ino;
    if (ino == fs::kRootIno) {
      a.mode = S_IFDIR | 0777;
      a.nlink = 2;
      a.gid = kRootGid;
      return a;
    }
    const Node& n = nodes[ino];
    a.mode = n.mode;
    a.nlink = 1;
    a.size = n.data.size();
    a.mtime = n.mtime;
    return a;
  }
  fs::Entry entry(fs::Ino ino) {
    fs::Entry e;
    e.ino = ino;
    e.attr = attr(ino);
    e.entry_timeout = 1000;  // names stay cached unless we say otherwise
    e.attr_timeout = 1000;
    return e;
  }

  std::mutex mu;
  std::map<fs::Ino, Node> nodes;
  std::map<std::string, fs::Ino> names;
  std::atomic<uint64_t> next_fh{1};
  bool readable = false;
  uint64_t poll_kh = 0;
};

// Aborts a FUSE connection through fusectl (mounted for the purpose when
// it is not), so that a server whose mount is still held by open files
// returns.
void abort_connection(dev_t dev) {
  const char* dir = "/sys/fs/fuse/connections";
  std::string path = std::string(dir) + "/" + std::to_string(minor(dev)) + "/abort";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  bool mounted_here = false;
  if (!fd) {
    mounted_here = ::mount("fusectl", dir, "fusectl", 0, nullptr) == 0;
    fd.reset(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  }
  if (fd) (void)!::write(fd.get(), "1", 1);
  fd.reset();
  if (mounted_here) ::umount2(dir, MNT_DETACH);
}

// ApiFs mounted on a fresh directory and served on a thread.
class ServedMount {
 public:
  explicit ServedMount(ApiFs& fs) : fs_(fs) {
    char tmpl[] = "/tmp/zest-api-XXXXXX";
    if (!::mkdtemp(tmpl)) return;
    dir_ = tmpl;
    transport::MountOptions mo;
    mo.fsname = "zest-api-test";
    std::string why;
    auto m = transport::FuseMount::mount(dir_, mo, &why);
    if (!m) {
      why_ = "mount: " + why + " " + m.error().message();
      return;
    }
    mount_ = std::move(*m);
    server::SessionOptions so;
    so.threads = 2;
    so.transport = server::Transport::kDev;
    session_ = std::make_unique<server::Session>(fs_, so);
    std::promise<void> done;
    done_ = done.get_future();
    thread_ = std::thread([this, d = std::move(done)]() mutable {
      (void)session_->serve(mount_);
      d.set_value();
    });
    // The first system call waits for INIT: stat the root (bounded by
    // the fixture's own timeout below if the server never answers).
    struct stat st;
    if (::stat(dir_.c_str(), &st) != 0) why_ = "stat of the mount failed";
  }
  ~ServedMount() {
    if (thread_.joinable()) {
      const dev_t dev = mount_.device();
      mount_.unmount();
      if (done_.wait_for(5s) != std::future_status::ready) {
        // Files left open (a failed test): abort the connection.
        abort_connection(dev);
        done_.wait_for(10s);
      }
      thread_.join();
    }
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  bool ok() const { return why_.empty() && session_ != nullptr; }
  const std::string& why() const { return why_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  ApiFs& fs_;
  std::string dir_;
  std::string why_;
  transport::FuseMount mount_;
  std::unique_ptr<server::Session> session_;
  std::thread thread_;
  std::future<void> done_;
};

class ApiMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount(2), setgroups)";
    fs.caps.posix_locks = true;
    fs.caps.flock_locks = true;
    fs.caps.supp_groups = true;
    fs.caps.data_inval = fs::Capabilities::DataInval::kExplicit;
    configure();
    mount = std::make_unique<ServedMount>(fs);
    ASSERT_TRUE(mount->ok()) << mount->why();
  }
  void TearDown() override {
    // Children a failed test left behind first (one blocked in a lock
    // would keep the mount busy), then the mount, then reap them.
    for (pid_t pid : children) ::kill(pid, SIGKILL);
    mount.reset();
    for (pid_t pid : children) {
      int status;
      for (int i = 0; i < 500 && ::waitpid(pid, &status, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(10ms);
    }
  }
  virtual void configure() {}
  std::string path(const std::string& n) const { return mount->path(n); }

  // Runs `body` in a forked child (system calls only: this process has
  // threads) holding no descriptor of ours but `keep` (so that the
  // parent's closes are the last ones, and a child never keeps the
  // connection's /dev/fuse descriptors); wait_child() collects its status.
  template <class F>
  pid_t spawn(F body, int keep = -1) {
    pid_t pid = ::fork();
    if (pid == 0) {
      if (keep < 0) {
        ::close_range(3, ~0U, 0);
      } else {
        if (keep > 3) ::close_range(3, keep - 1, 0);
        ::close_range(keep + 1, ~0U, 0);
      }
      ::_exit(body());
    }
    if (pid > 0) children.push_back(pid);
    return pid;
  }
  int wait_child(pid_t pid, std::chrono::milliseconds limit = 10s) {
    auto end = Clock::now() + limit;
    int status = 0;
    for (;;) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        std::erase(children, pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (r < 0 || Clock::now() > end) return -1;  // TearDown kills and reaps it
      std::this_thread::sleep_for(5ms);
    }
  }

  ApiFs fs;
  std::unique_ptr<ServedMount> mount;
  std::vector<pid_t> children;
};

// --- helpers for forked children (only system calls after fork) -----------

struct flock make_lock(short type, off_t start, off_t len) {
  struct flock l{};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = start;
  l.l_len = len;
  return l;
}

// Waits (bounded) until `pred` holds.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 5s) {
  auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// --- POSIX record locks ----------------------------------------------------

TEST_F(ApiMountTest, RecordLocksConflictBetweenProcessesAndGetlkReportsTheHolder) {
  UniqueFd fd(::open(path("file").c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  struct flock l = make_lock(F_WRLCK, 0, 10);
  ASSERT_EQ(::fcntl(fd.get(), F_SETLK, &l), 0) << std::strerror(errno);
  EXPECT_EQ(fs.locks.held(kFile), 1u);  // the file system holds it, not the kernel
  const pid_t parent = ::getpid();
  const std::string p = path("file");

  pid_t child = spawn([&] {
    int f = ::open(p.c_str(), O_RDWR);
    if (f < 0) return 10;
    struct flock w = make_lock(F_RDLCK, 5, 1);
    if (::fcntl(f, F_SETLK, &w) == 0 || (errno != EAGAIN && errno != EACCES)) return 11;
    struct flock q = make_lock(F_WRLCK, 0, 0);
    if (::fcntl(f, F_GETLK, &q) != 0) return 12;
    if (q.l_type != F_WRLCK || q.l_start != 0 || q.l_len != 10 || q.l_pid != parent) return 13;
    // Beyond the held range: free.
    struct flock b = make_lock(F_WRLCK, 10, 5);
    if (::fcntl(f, F_SETLK, &b) != 0) return 14;
    struct flock g = make_lock(F_WRLCK, 10, 5);
    if (::fcntl(f, F_GETLK, &g) != 0 || g.l_type != F_UNLCK) return 15;
    return 0;
  });
  EXPECT_EQ(wait_child(child), 0);
  // The child's exit closed its descriptor: FLUSH dropped its lock.
  EXPECT_TRUE(eventually([&] { return fs.locks.held(kFile) == 1; }));

  // Partial unlock splits the range; the remaining part still conflicts.
  struct flock u = make_lock(F_UNLCK, 0, 5);
  ASSERT_EQ(::fcntl(fd.get(), F_SETLK, &u), 0);
  child = spawn([&] {
    int f = ::open(p.c_str(), O_RDWR);
    struct flock a = make_lock(F_WRLCK, 0, 5);
    if (::fcntl(f, F_SETLK, &a) != 0) return 20;
    struct flock b = make_lock(F_WRLCK, 5, 5);
    if (::fcntl(f, F_SETLK, &b) == 0) return 21;
    return 0;
  });
  EXPECT_EQ(wait_child(child), 0);
}

TEST_F(ApiMountTest, BlockedSetlkwWakesWhenTheHolderUnlocks) {
  UniqueFd fd(::open(path("file").c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  struct flock l = make_lock(F_WRLCK, 0, 0);
  ASSERT_EQ(::fcntl(fd.get(), F_SETLK, &l), 0);
  const std::string p = path("file");
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);

  pid_t child = spawn([&] {
    int f = ::open(p.c_str(), O_RDWR);
    struct flock w = make_lock(F_WRLCK, 100, 1);
    int r = ::fcntl(f, F_SETLKW, &w);  // blocks until the parent unlocks
    char c = r == 0 ? 'y' : 'n';
    (void)!::write(pipefd[1], &c, 1);
    return r == 0 ? 0 : 30;
  }, pipefd[1]);
  // It waits in the file system, parked.
  ASSERT_TRUE(eventually([&] { return fs.locks.waiting() == 1; }));
  pollfd pf{rd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pf, 1, 200), 0) << "F_SETLKW returned while the lock was held";
  struct flock u = make_lock(F_UNLCK, 0, 0);
  ASSERT_EQ(::fcntl(fd.get(), F_SETLK, &u), 0);
  ASSERT_EQ(::poll(&pf, 1, 5000), 1) << "F_SETLKW did not wake up";
  char c = 0;
  ASSERT_EQ(::read(rd.get(), &c, 1), 1);
  EXPECT_EQ(c, 'y');
  EXPECT_EQ(wait_child(child), 0);
}

void on_usr1(int) {}

TEST_F(ApiMountTest, SignalInterruptsABlockedSetlkw) {
  UniqueFd fd(::open(path("file").c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  struct flock l = make_lock(F_WRLCK, 0, 0);
  ASSERT_EQ(::fcntl(fd.get(), F_SETLK, &l), 0);
  const std::string p = path("file");

  pid_t child = spawn([&] {
    struct sigaction sa{};
    sa.sa_handler = on_usr1;  // no SA_RESTART: the call returns EINTR
    ::sigaction(SIGUSR1, &sa, nullptr);
    int f = ::open(p.c_str(), O_RDWR);
    struct flock w = make_lock(F_WRLCK, 0, 1);
    int r = ::fcntl(f, F_SETLKW, &w);
    if (r == 0) return 40;
    return errno == EINTR ? 0 : 41;
  });
  ASSERT_TRUE(eventually([&] { return fs.locks.waiting() == 1; }));
  ::kill(child, SIGUSR1);
  EXPECT_EQ(wait_child(child, 5s), 0);
  EXPECT_TRUE(eventually([&] { return fs.locks.waiting() == 0; }));
  // The holder still holds its lock.
  EXPECT_EQ(fs.locks.held(kFile), 1u);
}

TEST_F(ApiMountTest, OfdLocksBelongToTheOpenFile) {
  UniqueFd a(::open(path("file").c_str(), O_RDWR));
  UniqueFd b(::open(path("file").c_str(), O_RDWR));
  ASSERT_TRUE(a && b);
  struct flock l = make_lock(F_WRLCK, 0, 100);
  ASSERT_EQ(::fcntl(a.get(), F_OFD_SETLK, &l), 0) << std::strerror(errno);
  // Same process, another open file: a conflict (unlike fcntl locks).
  struct flock m = make_lock(F_WRLCK, 50, 10);
  EXPECT_EQ(::fcntl(b.get(), F_OFD_SETLK, &m), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EACCES);
  struct flock q = make_lock(F_RDLCK, 0, 0);
  ASSERT_EQ(::fcntl(b.get(), F_OFD_GETLK, &q), 0);
  EXPECT_EQ(q.l_type, F_WRLCK);
  // Closing the holder's file (RELEASE) drops its OFD lock.
  a.reset();
  EXPECT_TRUE(eventually([&] {
    struct flock t = make_lock(F_WRLCK, 50, 10);
    return ::fcntl(b.get(), F_OFD_SETLK, &t) == 0;
  }));
}

// --- flock(2) ---------------------------------------------------------------

TEST_F(ApiMountTest, FlockBetweenProcessesAndReleaseOnClose) {
  UniqueFd fd(::open(path("file").c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::flock(fd.get(), LOCK_EX), 0) << std::strerror(errno);
  EXPECT_EQ(fs.locks.held(kFile), 1u);
  // POSIX locks and flock locks are independent.
  struct flock l = make_lock(F_WRLCK, 0, 0);
  EXPECT_EQ(::fcntl(fd.get(), F_SETLK, &l), 0);
  const std::string p = path("file");
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);

  pid_t child = spawn([&] {
    int f = ::open(p.c_str(), O_RDONLY);
    if (::flock(f, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) return 50;
    char c = 'w';
    (void)!::write(pipefd[1], &c, 1);
    if (::flock(f, LOCK_SH) != 0) return 51;  // blocks until the parent closes
    c = 'y';
    (void)!::write(pipefd[1], &c, 1);
    return 0;
  }, pipefd[1]);
  pollfd pf{rd.get(), POLLIN, 0};
  char c = 0;
  ASSERT_EQ(::poll(&pf, 1, 5000), 1);
  ASSERT_EQ(::read(rd.get(), &c, 1), 1);
  ASSERT_EQ(c, 'w');
  ASSERT_TRUE(eventually([&] { return fs.locks.waiting() == 1; }));
  EXPECT_EQ(::poll(&pf, 1, 200), 0) << "flock returned while the lock was held";
  // The last close of the open file: RELEASE with the flock owner.
  fd.reset();
  ASSERT_EQ(::poll(&pf, 1, 5000), 1) << "flock did not wake up on release";
  ASSERT_EQ(::read(rd.get(), &c, 1), 1);
  EXPECT_EQ(c, 'y');
  EXPECT_EQ(wait_child(child), 0);
}

// --- poll -------------------------------------------------------------------

TEST_F(ApiMountTest, PollWakesOnNotify) {
  UniqueFd fd(::open(path("poll").c_str(), O_RDONLY));
  ASSERT_TRUE(fd);
  pollfd now{fd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&now, 1, 0), 0);  // the file system says: not ready
  auto waiter = std::async(std::launch::async, [&] {
    pollfd pf{fd.get(), POLLIN, 0};
    int n = ::poll(&pf, 1, 10000);
    return n == 1 ? pf.revents : -1;
  });
  ASSERT_TRUE(eventually([&] { return fs.kh() != 0; })) << "no poll with a handle arrived";
  EXPECT_EQ(waiter.wait_for(200ms), std::future_status::timeout) << "poll returned early";
  fs.set_readable();
  ASSERT_TRUE(fs.notifier->poll_wakeup(fs.kh()).ok());
  ASSERT_EQ(waiter.wait_for(5s), std::future_status::ready) << "poll was not woken";
  EXPECT_EQ(waiter.get(), POLLIN);
}

// --- notifications ----------------------------------------------------------

TEST_F(ApiMountTest, InvalEntryMakesTheKernelLookUpAgain) {
  struct stat st;
  ASSERT_EQ(::stat(path("x").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, 5u);
  // "y" becomes "x" behind the kernel's back: the cached name still leads
  // to inode 5 (entries are cached for 1000 s) ...
  fs.rename_behind("y", "x");
  ASSERT_EQ(::stat(path("x").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, 5u);
  // ... until we say so.
  ASSERT_TRUE(fs.notifier->inval_entry(fs::kRootIno, "x").ok());
  ASSERT_EQ(::stat(path("x").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, 6u);
  EXPECT_EQ(st.st_size, 6);
  // A name the kernel does not have cached: ENOENT, harmless.
  auto r = fs.notifier->inval_entry(fs::kRootIno, "never-looked-up");
  EXPECT_TRUE(r.ok() || r.error().value == ENOENT);
}

TEST_F(ApiMountTest, AnExceptionAnswersEioAndTheMountKeepsWorking) {
  struct stat st;
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(::stat(path("throws").c_str(), &st), -1);
    ASSERT_EQ(errno, EIO) << "round " << i;
  }
  ASSERT_EQ(::stat(path("x").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4);
  int fd = ::open(path("x").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[8] = {};
  EXPECT_EQ(::pread(fd, buf, sizeof(buf), 0), 4);
  EXPECT_EQ(std::string(buf, 4), "five");
  ::close(fd);
}

TEST_F(ApiMountTest, DeleteEntryRemovesTheCachedName) {
  struct stat st;
  ASSERT_EQ(::stat(path("d").c_str(), &st), 0);
  fs.remove_behind("d");
  ASSERT_EQ(::stat(path("d").c_str(), &st), 0);  // still cached
  ASSERT_TRUE(fs.notifier->delete_entry(fs::kRootIno, 7, "d").ok());
  EXPECT_EQ(::stat(path("d").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(ApiMountTest, StoreFillsThePageCacheAndRetrieveReadsItBack) {
  UniqueFd fd(::open(path("file").c_str(), O_RDONLY));
  ASSERT_TRUE(fd);
  char buf[32] = {};
  ASSERT_EQ(::pread(fd.get(), buf, sizeof(buf), 0), 16);
  EXPECT_EQ(std::string(buf, 16), "AAAAAAAAAAAAAAAA");
  const int reads = fs.reads.load();
  const char hello[] = "HELLO";
  ASSERT_TRUE(fs.notifier->store(kFile, 2, std::as_bytes(std::span(hello, 5))).ok());
  std::memset(buf, 0, sizeof(buf));
  ASSERT_EQ(::pread(fd.get(), buf, sizeof(buf), 0), 16);
  EXPECT_EQ(std::string(buf, 16), "AAHELLOAAAAAAAAA");
  EXPECT_EQ(fs.reads.load(), reads) << "the read reached the file system";

  std::promise<std::string> got;
  auto f = got.get_future();
  ASSERT_TRUE(fs.notifier
                  ->retrieve(kFile, 0, 16,
                             [&](Result<std::span<const std::byte>> r) {
                               got.set_value(r ? std::string(reinterpret_cast<const char*>(
                                                                 r->data()),
                                                             r->size())
                                               : "error " + r.error().message());
                             })
                  .ok());
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "no NOTIFY_REPLY";
  EXPECT_EQ(f.get(), "AAHELLOAAAAAAAAA");
  // An inode the kernel does not know.
  EXPECT_EQ(fs.notifier->store(999, 0, std::as_bytes(std::span(hello, 5))).error().value, ENOENT);
}

// --- statx ------------------------------------------------------------------

// The kernel sends STATX only when the caller wants more than stat(2) gives
// (STATX_BTIME) and its cache cannot answer.
TEST_F(ApiMountTest, StatxBringsTheBirthTime) {
  struct statx sx{};
  ASSERT_EQ(::statx(AT_FDCWD, path("file").c_str(), AT_STATX_FORCE_SYNC,
                    STATX_BASIC_STATS | STATX_BTIME, &sx),
            0)
      << std::strerror(errno);
  EXPECT_EQ(fs.statxs.load(), 1);
  ASSERT_TRUE(sx.stx_mask & STATX_BTIME);
  EXPECT_EQ(sx.stx_btime.tv_sec, 1234);
  EXPECT_EQ(sx.stx_btime.tv_nsec, 5678u);
  EXPECT_EQ(sx.stx_size, 16u);
  EXPECT_EQ(sx.stx_ino, kFile);
}

// --- request context --------------------------------------------------------

TEST_F(ApiMountTest, CreateSeesTheSupplementaryGroup) {
  const std::string p = path("g1");
  pid_t child = spawn([&] {
    gid_t groups[1] = {kRootGid};
    if (::setgroups(1, groups) != 0) return 60;
    if (::setresgid(1000, 1000, 1000) != 0) return 61;
    int f = ::open(p.c_str(), O_CREAT | O_WRONLY, 0644);
    return f >= 0 ? 0 : 62;
  });
  ASSERT_EQ(wait_child(child), 0);
  EXPECT_EQ(fs.created_groups, std::vector<uint32_t>{kRootGid});
  // Without that membership the kernel sends no group.
  const std::string q = path("g2");
  child = spawn([&] {
    if (::setgroups(0, nullptr) != 0) return 60;
    if (::setresgid(1000, 1000, 1000) != 0) return 61;
    int f = ::open(q.c_str(), O_CREAT | O_WRONLY, 0644);
    return f >= 0 ? 0 : 62;
  });
  ASSERT_EQ(wait_child(child), 0);
  EXPECT_TRUE(fs.created_groups.empty());
}

// --- connection parameters --------------------------------------------------

class TimeGranTest : public ApiMountTest {
  void configure() override { fs.caps.time_gran = 1000000000; }
};

TEST_F(TimeGranTest, KernelTruncatesTimesToTheGranularity) {
  timespec times[2] = {{100, 123456789}, {200, 987654321}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path("file").c_str(), times, 0), 0) << std::strerror(errno);
  timespec m = fs.mtime(kFile);
  EXPECT_EQ(m.tv_sec, 200);
  EXPECT_EQ(m.tv_nsec, 0);  // 1 s granularity
}

TEST_F(ApiMountTest, NanosecondGranularityByDefault) {
  timespec times[2] = {{100, 123456789}, {200, 987654321}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path("file").c_str(), times, 0), 0);
  EXPECT_EQ(fs.mtime(kFile).tv_nsec, 987654321);
}

TEST_F(ApiMountTest, OpenAnsweredEnosysIsNotSentAgain) {
  for (int i = 0; i < 3; ++i) {
    UniqueFd fd(::open(path("noopen").c_str(), O_RDONLY));
    ASSERT_TRUE(fd) << std::strerror(errno);
    char c = 0;
    EXPECT_EQ(::read(fd.get(), &c, 1), 1);
    EXPECT_EQ(c, 'x');
  }
  // Other files too: the kernel stopped sending OPEN for the connection.
  UniqueFd other(::open(path("file").c_str(), O_RDONLY));
  ASSERT_TRUE(other);
  EXPECT_EQ(fs.opens.load(), 1);
}

class NoOpenTest : public ApiMountTest {
  void configure() override { fs.caps.no_open = true; }
};

TEST_F(NoOpenTest, TheServerAnswersOpenItself) {
  for (int i = 0; i < 3; ++i) {
    UniqueFd fd(::open(path("file").c_str(), O_RDONLY));
    ASSERT_TRUE(fd) << std::strerror(errno);
  }
  EXPECT_EQ(fs.opens.load(), 0);
}

}  // namespace
}  // namespace zest
