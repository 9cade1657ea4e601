#include "tests/pcrash/crash_workload.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <thread>

namespace zest::pcrash {
namespace {

constexpr size_t kBig = 1 << 20;  // the largest atomic write (one request)
constexpr size_t kBigFile = 4 << 20;
constexpr const char* kXattr = "user.pcrash";

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The bytes write `version` of file `id` puts at [off, off + len).
void Fill(uint8_t* dst, uint64_t id, uint64_t version, uint64_t off, size_t len) {
  const uint64_t key = Mix(id * 0x100000001b3ull ^ Mix(version));
  uint64_t w = Mix(key ^ (off >> 3));
  for (size_t i = 0; i < len; ++i) {
    const uint64_t o = off + i;
    if ((o & 7) == 0) w = Mix(key ^ (o >> 3));
    dst[i] = uint8_t(w >> (8 * (o & 7)));
  }
}

std::string Err(int e) { return std::strerror(e); }

// A page-aligned buffer of kBig bytes: a direct-I/O write from it is one
// FUSE request of at most 256 pages, so the kernel never splits a 1 MiB
// write (pmfs's atomicity is per request).
struct AlignedBuffer {
  AlignedBuffer() : p(static_cast<uint8_t*>(std::aligned_alloc(4096, kBig))) {}
  ~AlignedBuffer() { std::free(p); }
  uint8_t* p;
};

std::string NameA(int t, int s) { return "t" + std::to_string(t) + "/f" + std::to_string(s); }
std::string NameB(int t, int s) {
  return "t" + std::to_string(t) + "/sub/f" + std::to_string(s) + ".r";
}

bool ReadWhole(const std::string& path, std::vector<uint8_t>* out, int* err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  out->clear();
  uint8_t buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out->insert(out->end(), buf, buf + n);
  }
  ::close(fd);
  return true;
}

// Where two states differ, in words ("" when they match).
std::string Difference(const SlotState& want, const SlotState& got) {
  if (want.exists != got.exists)
    return want.exists ? "missing (want " + want.name + ")" : "exists as " + got.name;
  if (!want.exists) return "";
  if (want.name != got.name) return "named " + got.name + ", want " + want.name;
  if (want.bytes.size() != got.bytes.size()) {
    return "size " + std::to_string(got.bytes.size()) + ", want " +
           std::to_string(want.bytes.size());
  }
  for (size_t i = 0; i < want.bytes.size(); ++i) {
    if (want.bytes[i] != got.bytes[i]) {
      size_t j = i;
      while (j < want.bytes.size() && want.bytes[j] != got.bytes[j]) ++j;
      return "bytes differ from offset " + std::to_string(i) + " (first run of " +
             std::to_string(j - i) + " bytes)";
    }
  }
  if (want.has_xattr != got.has_xattr)
    return want.has_xattr ? "xattr missing" : "xattr present (\"" + got.xattr + "\")";
  if (want.has_xattr && want.xattr != got.xattr) return "xattr value differs";
  return "";
}

}  // namespace

struct CrashWorkload::Thread {
  struct Op {
    enum Kind { kNone, kCreate, kWrite, kRename, kUnlink, kTruncate, kSetXattr, kRemoveXattr };
    Kind kind = kNone;
    int slot = -1;
    SlotState after;  // the slot's state had it completed
    std::string what;
  };

  int index = 0;
  std::thread thread;
  std::mt19937_64 rng;
  std::vector<SlotState> slots;
  Op in_flight;
  uint64_t acked = 0;
  uint64_t next_version = 1;
  std::string early_error;  // an op failed before the kill
  AlignedBuffer buf;
};

CrashWorkload::CrashWorkload(std::string root, const WorkloadOptions& options)
    : root_(std::move(root)), options_(options) {
  for (int t = 0; t < options_.threads; ++t) {
    auto th = std::make_unique<Thread>();
    th->index = t;
    th->rng.seed(options_.seed * 1000003 + uint64_t(t));
    th->slots.resize(size_t(options_.slots));
    threads_.push_back(std::move(th));
  }
}

CrashWorkload::~CrashWorkload() {
  stop_.store(true);
  for (auto& t : threads_)
    if (t->thread.joinable()) t->thread.join();
}

bool CrashWorkload::Prepare(std::string* error) {
  for (auto& th : threads_) {
    const std::string dir = root_ + "/t" + std::to_string(th->index);
    if (::mkdir(dir.c_str(), 0755) != 0 || ::mkdir((dir + "/sub").c_str(), 0755) != 0) {
      *error = "mkdir " + dir + ": " + Err(errno);
      return false;
    }
    if (!options_.big_writes) continue;
    for (int s = 0; s < options_.slots; ++s) {
      SlotState& st = th->slots[size_t(s)];
      st.exists = true;
      st.name = NameA(th->index, s);
      st.id = uint64_t(th->index) << 32 | uint64_t(s);
      st.bytes.resize(kBigFile);
      Fill(st.bytes.data(), st.id, 0, 0, kBigFile);
      const std::string path = root_ + "/" + st.name;
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      bool ok = fd >= 0;
      for (size_t off = 0; ok && off < kBigFile; off += kBig) {
        std::memcpy(th->buf.p, st.bytes.data() + off, kBig);
        ok = ::pwrite(fd, th->buf.p, kBig, off_t(off)) == ssize_t(kBig);
      }
      if (fd >= 0) ::close(fd);
      if (!ok) {
        *error = "pre-filling " + path + ": " + Err(errno);
        return false;
      }
    }
  }
  return true;
}

void CrashWorkload::Start() {
  for (auto& th : threads_) {
    Thread* t = th.get();
    t->thread = std::thread([this, t] {
      using Op = Thread::Op;
      auto rnd = [&](uint64_t n) { return n ? t->rng() % n : 0; };
      while (!stop_.load(std::memory_order_relaxed)) {
        const int s = int(rnd(t->slots.size()));
        SlotState& cur = t->slots[size_t(s)];
        Op op;
        op.slot = s;
        op.after = cur;
        SlotState& after = op.after;
        const std::string path = root_ + "/" + cur.name;
        int r = 0;  // 0 success, else errno
        auto sys = [&](bool ok) { r = ok ? 0 : (errno ? errno : EIO); };
        bool fsync_after = false;

        uint64_t pick = options_.big_writes ? 0 : rnd(100);
        if (!cur.exists) {
          op.kind = Op::kCreate;
          after = SlotState{};
          after.exists = true;
          after.name = NameA(t->index, s);
          after.id = Mix(options_.seed) ^ (uint64_t(t->index) << 40) ^ t->next_version++;
          op.what = "create " + after.name;
          t->in_flight = op;
          const std::string p = root_ + "/" + after.name;
          int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
          sys(fd >= 0);
          if (fd >= 0) ::close(fd);
        } else if (pick < 55) {
          op.kind = Op::kWrite;
          size_t len;
          uint64_t off;
          if (options_.big_writes) {
            len = kBig;
            off = rnd(kBigFile / 512 + 1) * 512;
          } else if (rnd(10) == 0) {
            len = 1 + rnd(kBig);
            off = rnd(256 << 10);
          } else {
            len = 1 + rnd(64 << 10);
            off = rnd(192 << 10);
          }
          // pmfs makes each WRITE request atomic (up to 1 MiB). O_DIRECT
          // sends a pwrite as one request; a buffered pwrite goes through
          // the page cache, where the kernel sends an unaligned start page
          // that it does not cache as a request of its own (docs/
          // guarantees.md). So odd threads write buffered from page
          // boundaries, even threads O_DIRECT anywhere: both stay one
          // request, and atomic.
          const bool direct = t->index % 2 == 0;
          if (!direct) off &= ~uint64_t(4095);
          const uint64_t ver = t->next_version++;
          Fill(t->buf.p, cur.id, ver, off, len);
          if (after.bytes.size() < off + len) after.bytes.resize(off + len);
          std::memcpy(after.bytes.data() + off, t->buf.p, len);
          op.what = "pwrite " + cur.name + " [" + std::to_string(off) + ", +" +
                    std::to_string(len) + ") version " + std::to_string(ver);
          fsync_after = rnd(8) == 0;
          t->in_flight = std::move(op);
          int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
          sys(fd >= 0);
          if (fd >= 0) {
            ssize_t n = ::pwrite(fd, t->buf.p, len, off_t(off));
            sys(n == ssize_t(len));
            if (r == 0 && n >= 0 && size_t(n) != len) r = EIO;  // short: not acknowledged
            if (r == 0) {
              // Acknowledged: record it before the barrier, whose failure
              // after a kill does not undo the write.
              cur = std::move(t->in_flight.after);
              t->in_flight = Op{};
              ++t->acked;
              if (fsync_after && ::fsync(fd) != 0 && !killed_.load())
                t->early_error = "fsync " + path + ": " + Err(errno);
            }
            ::close(fd);
          }
          if (r == 0) {
            if (!t->early_error.empty()) break;
            continue;
          }
        } else if (pick < 67) {
          op.kind = Op::kRename;
          after.name = cur.name == NameA(t->index, s) ? NameB(t->index, s) : NameA(t->index, s);
          op.what = "rename " + cur.name + " -> " + after.name;
          const std::string to = root_ + "/" + after.name;
          t->in_flight = op;
          sys(::rename(path.c_str(), to.c_str()) == 0);
        } else if (pick < 74) {
          op.kind = Op::kUnlink;
          after = SlotState{};
          op.what = "unlink " + cur.name;
          t->in_flight = op;
          sys(::unlink(path.c_str()) == 0);
        } else if (pick < 80) {
          op.kind = Op::kTruncate;
          const size_t size = rnd(cur.bytes.size() + 8192);
          after.bytes.resize(size);  // zero-filled when it grows
          op.what = "truncate " + cur.name + " to " + std::to_string(size);
          t->in_flight = op;
          sys(::truncate(path.c_str(), off_t(size)) == 0);
        } else if (pick < 92 || !cur.has_xattr) {
          op.kind = Op::kSetXattr;
          after.has_xattr = true;
          after.xattr = "v" + std::to_string(t->next_version++) + ":" +
                        std::string(rnd(300), char('a' + rnd(26)));
          op.what = "setxattr " + cur.name;
          t->in_flight = op;
          sys(::setxattr(path.c_str(), kXattr, after.xattr.data(), after.xattr.size(), 0) == 0);
        } else {
          op.kind = Op::kRemoveXattr;
          after.has_xattr = false;
          after.xattr.clear();
          op.what = "removexattr " + cur.name;
          t->in_flight = op;
          sys(::removexattr(path.c_str(), kXattr) == 0);
        }
        if (r != 0) {
          if (!killed_.load())
            t->early_error = t->in_flight.what + ": " + Err(r) + " (before the kill)";
          break;  // in flight: stays recorded
        }
        cur = std::move(t->in_flight.after);
        t->in_flight = Op{};
        ++t->acked;
      }
    });
  }
}

void CrashWorkload::Join() {
  // Until the kill the threads only stop when told; after it, at their
  // first failed operation.
  if (!killed_.load()) stop_.store(true);
  for (auto& t : threads_)
    if (t->thread.joinable()) t->thread.join();
}

uint64_t CrashWorkload::Acknowledged() const {
  uint64_t n = 0;
  for (const auto& t : threads_) n += t->acked;
  return n;
}

VerifyResult CrashWorkload::Verify(const std::string& root) const {
  VerifyResult v;
  for (const auto& t : threads_) {
    const std::string who = "thread " + std::to_string(t->index) + ": ";
    if (!t->early_error.empty()) v.violations.push_back(who + t->early_error);
    v.acknowledged += t->acked;

    // The namespace: nothing but the slots' names (acknowledged, or the in
    // flight op's) in the thread's directories.
    std::set<std::string> allowed{"t" + std::to_string(t->index) + "/sub"};
    for (const auto& s : t->slots)
      if (s.exists) allowed.insert(s.name);
    if (t->in_flight.kind != Thread::Op::kNone && t->in_flight.after.exists)
      allowed.insert(t->in_flight.after.name);
    for (const std::string& dir : {"t" + std::to_string(t->index),
                                  "t" + std::to_string(t->index) + "/sub"}) {
      DIR* d = ::opendir((root + "/" + dir).c_str());
      if (!d) {
        v.violations.push_back(who + "opendir " + dir + ": " + Err(errno));
        continue;
      }
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        if (!allowed.count(dir + "/" + n))
          v.violations.push_back(who + "unexpected name " + dir + "/" + n);
      }
      ::closedir(d);
    }

    for (int s = 0; s < int(t->slots.size()); ++s) {
      // What is there: the slot's file under either of its names.
      SlotState got;
      for (const std::string& name : {NameA(t->index, s), NameB(t->index, s)}) {
        const std::string p = root + "/" + name;
        struct stat st;
        if (::lstat(p.c_str(), &st) != 0) {
          if (errno != ENOENT) v.violations.push_back(who + "lstat " + name + ": " + Err(errno));
          continue;
        }
        if (got.exists) {
          v.violations.push_back(who + "slot " + std::to_string(s) + " exists as " + got.name +
                                 " and as " + name);
          continue;
        }
        got.exists = true;
        got.name = name;
        int err = 0;
        if (!ReadWhole(p, &got.bytes, &err))
          v.violations.push_back(who + "read " + name + ": " + Err(err));
        char val[4096];
        ssize_t n = ::getxattr(p.c_str(), kXattr, val, sizeof val);
        if (n >= 0) {
          got.has_xattr = true;
          got.xattr.assign(val, size_t(n));
        } else if (errno != ENODATA) {
          v.violations.push_back(who + "getxattr " + name + ": " + Err(errno));
        }
      }
      const SlotState& acked = t->slots[size_t(s)];
      const bool flying = t->in_flight.kind != Thread::Op::kNone && t->in_flight.slot == s;
      const std::string old_diff = Difference(acked, got);
      if (!flying) {
        if (!old_diff.empty())
          v.violations.push_back(who + "slot " + std::to_string(s) + " (" +
                                 (acked.exists ? acked.name : "absent") +
                                 "): acknowledged state lost: " + old_diff);
        continue;
      }
      ++v.in_flight;
      const std::string new_diff = Difference(t->in_flight.after, got);
      if (new_diff.empty()) {
        ++v.in_flight_done;
      } else if (old_diff.empty()) {
        ++v.in_flight_absent;
      } else {
        v.violations.push_back(who + "slot " + std::to_string(s) + ": in-flight op \"" +
                               t->in_flight.what + "\" left neither the old state (" + old_diff +
                               ") nor the new one (" + new_diff + ")");
      }
    }
  }
  return v;
}

}  // namespace zest::pcrash
