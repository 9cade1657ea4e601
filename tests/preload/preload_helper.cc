// A program run under libzest-preload by preload_test.cc, to exercise what
// coreutils do not: fork and exec with inherited fds, and threads sharing
// one fd. Plain system calls only (the shim is what it tests).
//   preload_helper forkexec FILE        writes a pattern through an fd that
//                                       a forked child and an exec'd program
//                                       keep using (read/write at the offset)
//   preload_helper continue FD          (the exec'd part)
//   preload_helper threads FILE         8 threads on one fd: pwrite/pread of
//                                       their own ranges, then read() racing
//   preload_helper mtime FILE           an overwrite's mtime in stat by path
// Prints what it checked; exit 0 when everything matched.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int fail(const char* what) {
  std::fprintf(stderr, "preload_helper: %s (%s)\n", what, std::strerror(errno));
  return 1;
}

bool write_all(int fd, const std::string& s) {
  return ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

int forkexec(const char* self, const char* path) {
  const int fd = ::open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return fail("open");
  if (!write_all(fd, "parent-1;")) return fail("write 1");
  const pid_t pid = ::fork();
  if (pid < 0) return fail("fork");
  if (pid == 0) {
    // The child writes at the shared offset, then execs a program that
    // goes on with the same fd.
    if (!write_all(fd, "child;")) _exit(2);
    const std::string fdarg = std::to_string(fd);
    ::execl(self, self, "continue", fdarg.c_str(), static_cast<char*>(nullptr));
    _exit(3);
  }
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return fail("child");
  // The offset moved in the children: we append after their bytes.
  if (!write_all(fd, "parent-2;")) return fail("write 2");
  char buf[256] = {};
  if (::pread(fd, buf, sizeof buf - 1, 0) < 0) return fail("pread");
  std::printf("%s\n", buf);
  ::close(fd);
  return std::strcmp(buf, "parent-1;child;exec;parent-2;") == 0 ? 0 : 1;
}

int cont(int fd) {
  // Reads what is there from the start (lseek), then appends at the end.
  char buf[64] = {};
  if (::lseek(fd, 0, SEEK_SET) != 0) return 4;
  if (::read(fd, buf, sizeof buf - 1) != 15) return 5;  // "parent-1;child;"
  return write_all(fd, "exec;") ? 0 : 6;
}

int threads(const char* path) {
  const int fd = ::open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return fail("open");
  constexpr int kThreads = 8, kChunk = 64 * 1024, kRounds = 20;
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      std::string w(kChunk, static_cast<char>('a' + t)), r(kChunk, 0);
      for (int i = 0; i < kRounds; ++i) {
        const off_t off = static_cast<off_t>(t) * kChunk;
        if (::pwrite(fd, w.data(), kChunk, off) != kChunk) ++bad;
        if (::pread(fd, r.data(), kChunk, off) != kChunk || r != w) ++bad;
      }
    });
  for (auto& t : ts) t.join();
  ts.clear();
  // read() from all threads at once: each byte is read exactly once.
  if (::lseek(fd, 0, SEEK_SET) != 0) return fail("lseek");
  std::atomic<long> total{0};
  std::vector<long> counts(kThreads * 26, 0);
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      char buf[4096];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) total += n;
    });
  for (auto& t : ts) t.join();
  std::printf("threads: %d errors, %ld bytes read of %d\n", bad.load(), total.load(), kThreads * kChunk);
  ::close(fd);
  return bad == 0 && total == kThreads * kChunk ? 0 : 1;
}

// An overwrite in place shows in stat by path at once (its mtime changes).
int mtime(const char* path) {
  const int fd = ::open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return fail("open");
  if (!write_all(fd, std::string(8192, 'm'))) return fail("write");
  struct stat a, b;
  if (::stat(path, &a) != 0) return fail("stat");
  ::usleep(20000);
  if (::pwrite(fd, "x", 1, 100) != 1) return fail("pwrite");
  if (::stat(path, &b) != 0) return fail("stat");
  const bool changed = b.st_mtim.tv_sec != a.st_mtim.tv_sec || b.st_mtim.tv_nsec != a.st_mtim.tv_nsec;
  std::printf("mtime %s, size %lld\n", changed ? "changed" : "unchanged", static_cast<long long>(b.st_size));
  ::close(fd);
  return changed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && !std::strcmp(argv[1], "forkexec")) return forkexec(argv[0], argv[2]);
  if (argc == 3 && !std::strcmp(argv[1], "continue")) return cont(std::atoi(argv[2]));
  if (argc == 3 && !std::strcmp(argv[1], "threads")) return threads(argv[2]);
  if (argc == 3 && !std::strcmp(argv[1], "mtime")) return mtime(argv[2]);
  std::fprintf(stderr, "usage: preload_helper forkexec|threads FILE\n");
  return 2;
}
