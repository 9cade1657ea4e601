// Concurrency on one mount: several threads and several forked processes at
// once. Each test runs for a bounded time (a few seconds of work, a 20 s
// watchdog that aborts the connection if the server hangs) and then checks
// that only the expected errors happened and that the final state is
// consistent.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "tests/mount/zest_mount.h"

// The file system under test; the build makes one binary per file system.
#ifndef ZEST_TEST_FS
#define ZEST_TEST_FS "memfs"
#endif

namespace zest::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWork = std::chrono::milliseconds(2500);

std::string Err(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// Aborts the mount's connection if the test body runs past 20 s, so a hung
// server turns into failing system calls instead of a hung test.
class Watchdog {
 public:
  explicit Watchdog(SubjectMount* m)
      : thread_([this, m] {
          std::unique_lock<std::mutex> l(mu_);
          if (!cv_.wait_for(l, std::chrono::seconds(20),
                            [this] { return done_; })) {
            fired_ = true;
            m->AbortConnection();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool fired() const { return fired_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

// Runs WORK(id) on `threads` threads (ids 0..) and `procs` forked processes
// (ids after those) at once. WORK returns "" or an error description.
// Returns every error, prefixed with the worker id.
std::vector<std::string> RunWorkers(
    int threads, int procs, const std::function<std::string(int)>& work) {
  std::vector<std::string> errors;
  std::mutex mu;
  struct Child {
    pid_t pid;
    int fd;
    int id;
  };
  std::vector<Child> children;
  for (int p = 0; p < procs; ++p) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) {
      errors.push_back(Err("pipe"));
      continue;
    }
    int id = threads + p;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(pipefd[0]);
      std::string e = work(id);
      if (!e.empty()) (void)!::write(pipefd[1], e.data(), e.size());
      ::_exit(e.empty() ? 0 : 1);  // no destructors, no atexit in the child
    }
    ::close(pipefd[1]);
    children.push_back({pid, pipefd[0], id});
  }
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      std::string e = work(t);
      if (!e.empty()) {
        std::lock_guard<std::mutex> l(mu);
        errors.push_back("thread " + std::to_string(t) + ": " + e);
      }
    });
  for (auto& t : ts) t.join();
  for (auto& c : children) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(c.fd, buf, sizeof buf)) > 0) out.append(buf, n);
    ::close(c.fd);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    if (!out.empty() || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
      errors.push_back(
          "process " + std::to_string(c.id) + ": " +
          (out.empty() ? "status " + std::to_string(status) : out));
  }
  return errors;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < 20; ++i) s += "  " + v[i] + "\n";
  if (v.size() > 20) s += "  ... " + std::to_string(v.size() - 20) + " more\n";
  return s;
}

class ConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = FuseUnavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    std::string err;
    subject_ = StartSubject(ZEST_TEST_FS, {}, &err);
    ASSERT_TRUE(subject_) << "cannot start subject: " << err;
    root_ = subject_->path();
  }
  std::string P(const std::string& rel) const { return root_ + "/" + rel; }

  std::unique_ptr<SubjectMount> subject_;
  std::string root_;
};

TEST_F(ConcurrencyTest, CreatesAndUnlinksInOneDirectory) {
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  const std::string dir = P("d");
  Watchdog dog(subject_.get());
  auto deadline = Clock::now() + kWork;
  // Each worker creates its own files (keeping those with even numbers) and
  // fights over a few shared names where EEXIST/ENOENT are expected.
  std::vector<std::string> errors =
      RunWorkers(4, 3, [&](int id) -> std::string {
        int n = 0;
        for (; Clock::now() < deadline && n < 4000; ++n) {
          std::string own =
              dir + "/w" + std::to_string(id) + "-" + std::to_string(n);
          int fd = ::open(own.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
                          0644);
          if (fd < 0) return Err("create " + own);
          std::string tag = own;
          if (::write(fd, tag.data(), tag.size()) != (ssize_t)tag.size()) {
            ::close(fd);
            return Err("write " + own);
          }
          if (::close(fd) != 0) return Err("close " + own);
          if (n % 2 && ::unlink(own.c_str()) != 0) return Err("unlink " + own);
          std::string shared = dir + "/shared" + std::to_string(n % 5);
          fd = ::open(shared.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
                      0644);
          if (fd >= 0)
            ::close(fd);
          else if (errno != EEXIST)
            return Err("create " + shared);
          if (::unlink(shared.c_str()) != 0 && errno != ENOENT)
            return Err("unlink " + shared);
        }
        // Record how far we got, for the final check.
        std::string count = dir + "/count" + std::to_string(id);
        int fd = ::open(count.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        std::string c = std::to_string(n);
        if (fd < 0 || ::write(fd, c.data(), c.size()) != (ssize_t)c.size())
          return Err("count");
        ::close(fd);
        return "";
      });
  ASSERT_FALSE(dog.fired()) << "server hung; connection aborted";
  ASSERT_TRUE(errors.empty()) << Join(errors);
  // Final state: exactly the even-numbered own files, the count files, and
  // possibly some shared names; each file's content is its own path.
  std::set<std::string> expect, shared;
  for (int id = 0; id < 7; ++id) {
    UniqueFd fd(::open((dir + "/count" + std::to_string(id)).c_str(),
                       O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    char buf[32] = {};
    ASSERT_GT(::read(fd.get(), buf, sizeof buf - 1), 0);
    int n = std::atoi(buf);
    EXPECT_GT(n, 0);
    expect.insert("count" + std::to_string(id));
    for (int i = 0; i < n; i += 2)
      expect.insert("w" + std::to_string(id) + "-" + std::to_string(i));
  }
  std::set<std::string> got;
  size_t listed = 0;
  DIR* d = ::opendir(dir.c_str());
  ASSERT_TRUE(d);
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    ++listed;
    if (n.rfind("shared", 0) == 0) continue;
    got.insert(n);
  }
  ::closedir(d);
  EXPECT_EQ(got, expect);
  EXPECT_LE(listed, expect.size() + 5) << "a name was listed twice";
  for (int id = 0; id < 7; ++id) {
    std::string f = dir + "/w" + std::to_string(id) + "-0";
    UniqueFd fd(::open(f.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd) << f;
    char buf[256] = {};
    ASSERT_GT(::read(fd.get(), buf, sizeof buf), 0);
    EXPECT_EQ(std::string(buf), f);
  }
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
}

TEST_F(ConcurrencyTest, WritersToDisjointRanges) {
  const int workers = 6;         // 3 threads + 3 processes
  const size_t range = 3 << 20;  // 3 MiB each
  const std::string file = P("shared");
  UniqueFd f(::open(file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
  ASSERT_TRUE(f);
  auto byte_at = [](size_t off) {
    return static_cast<char>((off * 7 + off / 4093) & 0xff);
  };
  Watchdog dog(subject_.get());
  std::vector<std::string> errors =
      RunWorkers(3, 3, [&](int id) -> std::string {
        int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return Err("open");
        // Write the range in chunks of varying size, out of order.
        size_t base = id * range;
        std::vector<std::pair<size_t, size_t>> chunks;
        for (size_t off = 0; off < range;) {
          size_t len = std::min(range - off,
                                size_t(1000) + (off * 31 + id * 977) % 200000);
          chunks.push_back({off, len});
          off += len;
        }
        for (size_t i = 0; i < chunks.size(); ++i) {
          // Odd workers go backwards, so writes interleave in varied patterns.
          auto [off, len] = chunks[id % 2 ? chunks.size() - 1 - i : i];
          std::string buf(len, '\0');
          for (size_t j = 0; j < len; ++j) buf[j] = byte_at(base + off + j);
          if (::pwrite(fd, buf.data(), len, base + off) != (ssize_t)len) {
            ::close(fd);
            return Err("pwrite at " + std::to_string(base + off));
          }
        }
        ::close(fd);
        return "";
      });
  ASSERT_FALSE(dog.fired()) << "server hung; connection aborted";
  ASSERT_TRUE(errors.empty()) << Join(errors);
  struct stat st {};
  ASSERT_EQ(::fstat(f.get(), &st), 0);
  ASSERT_EQ(st.st_size, (off_t)(workers * range));
  std::string all(workers * range, '\0');
  size_t done = 0;
  while (done < all.size()) {
    ssize_t n = ::pread(f.get(), all.data() + done, all.size() - done, done);
    ASSERT_GT(n, 0);
    done += n;
  }
  for (size_t i = 0; i < all.size(); ++i)
    ASSERT_EQ(all[i], byte_at(i)) << "first wrong byte at offset " << i;
}

TEST_F(ConcurrencyTest, ReadersWhileAWriterAppends) {
  const std::string file = P("log");
  const size_t rec = 512;
  UniqueFd w(
      ::open(file.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644));
  ASSERT_TRUE(w);
  auto record = [&](size_t i) {
    std::string r(rec, '\0');
    std::snprintf(r.data(), rec, "record %zu", i);
    for (size_t j = 32; j < rec; ++j)
      r[j] = static_cast<char>('a' + (i + j) % 26);
    return r;
  };
  std::atomic<bool> stop{false};
  std::atomic<size_t> written{0};
  Watchdog dog(subject_.get());
  std::string writer_error;
  std::thread writer([&] {
    auto deadline = Clock::now() + kWork;
    for (size_t i = 0; Clock::now() < deadline; ++i) {
      std::string r = record(i);
      if (::write(w.get(), r.data(), rec) != (ssize_t)rec) {
        writer_error = Err("append " + std::to_string(i));
        break;
      }
      written = i + 1;
    }
    stop = true;
  });
  // Readers (threads and processes): the size never shrinks, and every
  // complete record read is the right one.
  std::vector<std::string> errors = RunWorkers(3, 2, [&](int) -> std::string {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Err("open");
    off_t last = 0;
    std::string buf(64 * rec, '\0');
    auto deadline = Clock::now() + kWork + std::chrono::milliseconds(200);
    while (!stop && Clock::now() < deadline) {
      struct stat st;
      if (::fstat(fd, &st) != 0) return Err("fstat");
      if (st.st_size < last) return "size shrank from " + std::to_string(last);
      last = st.st_size;
      size_t nrec = st.st_size / rec;
      size_t first = nrec > 64 ? nrec - 64 : 0;
      ssize_t n = ::pread(fd, buf.data(), buf.size(), first * rec);
      if (n < 0) return Err("pread");
      for (size_t k = 0; (k + 1) * rec <= (size_t)n; ++k)
        if (buf.compare(k * rec, rec, record(first + k)) != 0)
          return "record " + std::to_string(first + k) +
                 " wrong: " + buf.substr(k * rec, 20);
    }
    ::close(fd);
    return "";
  });
  writer.join();
  ASSERT_FALSE(dog.fired()) << "server hung; connection aborted";
  ASSERT_TRUE(writer_error.empty()) << writer_error;
  ASSERT_TRUE(errors.empty()) << Join(errors);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (off_t)(written * rec));
  UniqueFd r(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  std::string all(written * rec, '\0');
  size_t done = 0;
  while (done < all.size()) {
    ssize_t n = ::pread(r.get(), all.data() + done, all.size() - done, done);
    ASSERT_GT(n, 0);
    done += n;
  }
  for (size_t i = 0; i < written; ++i)
    ASSERT_EQ(all.compare(i * rec, rec, record(i)), 0) << i;
}

TEST_F(ConcurrencyTest, RenamesRacingWithLookups) {
  // "a" and "b" are swapped with RENAME_EXCHANGE (both names always exist),
  // and "m" moves between two directories with plain renames (it may be
  // missing from either at any instant, but not from both at the end).
  auto write_file = [&](const std::string& rel, const std::string& content) {
    UniqueFd f(
        ::open(P(rel).c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(f);
    ASSERT_EQ(::write(f.get(), content.data(), content.size()),
              (ssize_t)content.size());
  };
  write_file("a", "content-A");
  write_file("b", "content-B");
  ASSERT_EQ(::mkdir(P("x").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(P("y").c_str(), 0755), 0);
  write_file("x/m", "moving");
  std::atomic<bool> stop{false};
  std::atomic<long> swaps{0}, moves{0};
  Watchdog dog(subject_.get());
  std::string renamer_error;
  std::thread renamer([&] {
    auto deadline = Clock::now() + kWork;
    bool in_x = true;
    while (Clock::now() < deadline) {
      if (::syscall(SYS_renameat2, AT_FDCWD, P("a").c_str(), AT_FDCWD,
                    P("b").c_str(), RENAME_EXCHANGE) != 0) {
        renamer_error = Err("exchange");
        break;
      }
      ++swaps;
      std::string from = P(in_x ? "x/m" : "y/m"), to = P(in_x ? "y/m" : "x/m");
      if (::rename(from.c_str(), to.c_str()) != 0) {
        renamer_error = Err("rename " + from);
        break;
      }
      in_x = !in_x;
      ++moves;
    }
    stop = true;
  });
  std::vector<std::string> errors =
      RunWorkers(3, 2, [&](int id) -> std::string {
        auto deadline = Clock::now() + kWork + std::chrono::milliseconds(200);
        long lookups = 0;
        while (!stop && Clock::now() < deadline) {
          const std::string name = P(id % 2 ? "a" : "b");
          int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
          if (fd < 0) return Err("open " + name);  // must always exist
          char buf[32] = {};
          ssize_t n = ::read(fd, buf, sizeof buf);
          ::close(fd);
          std::string got(buf, n < 0 ? 0 : n);
          if (got != "content-A" && got != "content-B")
            return "read '" + got + "' from " + name;
          struct stat st;
          for (const char* rel : {"x/m", "y/m"}) {
            if (::stat(P(rel).c_str(), &st) == 0) {
              if (st.st_size != 6) return std::string("bad size of ") + rel;
            } else if (errno != ENOENT) {
              return Err(std::string("stat ") + rel);
            }
          }
          ++lookups;
        }
        return lookups > 0 ? "" : "no lookups done";
      });
  renamer.join();
  ASSERT_FALSE(dog.fired()) << "server hung; connection aborted";
  ASSERT_TRUE(renamer_error.empty()) << renamer_error;
  ASSERT_TRUE(errors.empty()) << Join(errors);
  EXPECT_GT(swaps.load(), 0);
  // Final state: a and b hold the two contents, m is in exactly one place.
  auto read = [&](const std::string& rel) {
    UniqueFd f(::open(P(rel).c_str(), O_RDONLY | O_CLOEXEC));
    char buf[32] = {};
    return f && ::read(f.get(), buf, sizeof buf) > 0 ? std::string(buf)
                                                     : std::string();
  };
  std::set<std::string> ab = {read("a"), read("b")};
  EXPECT_EQ(ab, (std::set<std::string>{"content-A", "content-B"}));
  EXPECT_EQ(read(swaps % 2 ? "b" : "a"), "content-A");
  bool mx = ::access(P("x/m").c_str(), F_OK) == 0,
       my = ::access(P("y/m").c_str(), F_OK) == 0;
  EXPECT_NE(mx, my);
  EXPECT_EQ(mx, moves % 2 == 0);
}

}  // namespace
}  // namespace zest::testing
