#include "bench/workload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "bench/mounts.h"

namespace zest::bench {
namespace {

constexpr size_t kSmall = 4096;
constexpr size_t kBig = 1 << 20;
// The value buffer of the no-op fgetxattr: never filled (ENODATA).
constexpr size_t kNoopValueSize = 64;

bool multi_threaded(Op op) { return op_info(op).threads > 1; }

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

}  // namespace

const std::vector<OpInfo>& latency_ops() {
  static const std::vector<OpInfo> ops = {
      {.op = Op::kNoop,
       .id = "noop",
       .title = "no-op request (getxattr → ENODATA)",
       .bytes = 0,
       .size = Size::kSmall,
       .note = "no-op request: `fgetxattr(fd, \"user.zest.noop\", buf, 64)` "
               "on an open file that has no extended attributes. FUSE "
               "caches no xattrs, so every call is one GETXATTR that the "
               "server answers with ENODATA (memfs and pmfs after a lookup "
               "in the inode's xattr map, mirrorfs and passthrough_ll after "
               "a getxattr(2) on their backing tmpfs); any other answer "
               "fails the row. On tmpfs it is the system call alone: the "
               "transport's round trip is the difference."},
      {.op = Op::kRandRead4K,
       .id = "randread4k",
       .title = "4 KiB random read (O_DIRECT)",
       .bytes = kSmall,
       .size = Size::kSmall},
      {.op = Op::kRandRead4K4T,
       .id = "randread4k-4t",
       .title = "4 KiB random read (O_DIRECT), 4 threads",
       .bytes = kSmall,
       .size = Size::kSmall,
       .threads = kIoThreads,
       .single_op = Op::kRandRead4K,
       .note = "4 threads: 4 threads, each with its own fd of the data file "
               "(the same file) and one call in flight, take the calls of a "
               "batch (the same number of calls as a one-thread batch) from "
               "one shared counter; median and p99 are per call, MiB/s and "
               "IOPS are calls / wall time of the measured part of the "
               "batches. The threads run on every CPU the driver may use "
               "(--cpu pins only the one-thread rows)."},
      {.op = Op::kRandWrite4K,
       .id = "randwrite4k",
       .title = "4 KiB random write (O_DIRECT)",
       .bytes = kSmall,
       .size = Size::kSmall},
      {.op = Op::kRandWrite4K4T,
       .id = "randwrite4k-4t",
       .title = "4 KiB random write (O_DIRECT), 4 threads",
       .bytes = kSmall,
       .size = Size::kSmall,
       .threads = kIoThreads,
       .single_op = Op::kRandWrite4K},
      {Op::kStatx, "statx", "statx (force sync)", 0, Size::kSmall},
      {Op::kCreate, "create", "create (open O_CREAT|O_EXCL + close)", 0,
       Size::kSmall},
      {Op::kUnlink, "unlink", "unlink", 0, Size::kSmall},
      {Op::kSeqRead1M, "seqread1m", "1 MiB sequential read (O_DIRECT)", kBig,
       Size::kBig},
      {Op::kSeqWrite1M, "seqwrite1m", "1 MiB sequential write (O_DIRECT)", kBig,
       Size::kBig},
  };
  return ops;
}

const std::vector<OpInfo>& persistence_ops() {
  static const std::vector<OpInfo> ops = {
      {Op::kSyncWrite4K, "syncwrite4k", "4 KiB write + fsync", kSmall,
       Size::kSync},
      {Op::kDurableWrite4K, "write4k-durable",
       "4 KiB write, no fsync (durable on return)", kSmall, Size::kSync, true,
       Op::kSyncWrite4K},
      {Op::kSyncCreate, "synccreate", "create + fsync(file) + fsync(dir)", 0,
       Size::kSync},
      {Op::kDurableCreate, "create-durable",
       "create, no fsync (durable on return)", 0, Size::kSync, true,
       Op::kSyncCreate},
  };
  return ops;
}

const OpInfo& op_info(Op op) {
  for (const auto* list : {&latency_ops(), &persistence_ops()}) {
    for (const auto& o : *list) {
      if (o.op == op) return o;
    }
  }
  std::abort();  // every Op is in one of the lists
}

Stats summarize(uint64_t* ns, size_t n) {
  Stats s;
  s.n = n;
  if (n == 0) return s;
  std::sort(ns, ns + n);
  // Nearest-rank percentiles.
  auto rank = [&](double p) {
    size_t r = size_t(std::ceil(p * double(n)));
    return double(ns[std::clamp<size_t>(r, 1, n) - 1]) / 1000.0;
  };
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += double(ns[i]);
  s.median_us = rank(0.5);
  s.p99_us = rank(0.99);
  s.mean_us = sum / double(n) / 1000.0;
  s.min_us = double(ns[0]) / 1000.0;
  s.max_us = double(ns[n - 1]) / 1000.0;
  return s;
}

double timer_overhead_ns() {
  constexpr size_t n = 10001;
  std::vector<uint64_t> d(n);
  for (size_t i = 0; i < n; ++i) {
    uint64_t a = now_ns();
    uint64_t b = now_ns();
    d[i] = b - a;
  }
  std::nth_element(d.begin(), d.begin() + n / 2, d.end());
  return double(d[n / 2]);
}

Workload::Workload(std::string root, const WorkloadConfig& cfg)
    : root_(std::move(root)), cfg_(cfg) {
  data_path_ = root_ + "/data";
  stat_name_ = "stat-target";
  create_dir_ = root_ + "/creates";
}

Outcome<std::unique_ptr<Workload>> Workload::prepare(
    const std::string& root, const WorkloadConfig& cfg) {
  if (cfg.file_size < kBig || cfg.file_size % kBig != 0) {
    return Failure{"the data file size must be a whole number of MiB"};
  }
  std::unique_ptr<Workload> w(new Workload(root, cfg));

  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, kBig) != 0) return Failure{"out of memory"};
  w->buf_ = std::unique_ptr<char, void (*)(void*)>(static_cast<char*>(mem),
                                                   &std::free);
  for (size_t i = 0; i < kBig; ++i) w->buf_.get()[i] = char(i * 7 + 1);

  w->samples_.resize(
      std::max({cfg.iterations, cfg.big_iterations, cfg.sync_iterations}));
  w->unlink_samples_.resize(cfg.iterations);
  // Offsets and names for every call of a phase, warm-up included; each
  // phase starts again at index 0.
  const size_t calls =
      std::max(cfg.total_calls(Size::kSmall), cfg.total_calls(Size::kSync));
  uint64_t seed = 0x5eed;
  uint64_t blocks = cfg.file_size / kSmall;
  w->offsets_.resize(calls);
  for (auto& o : w->offsets_) o = (splitmix64(seed) % blocks) * kSmall;
  w->names_.assign(calls * kNameSize, '\0');
  for (size_t i = 0; i < calls; ++i) {
    fmt::format_to_n(&w->names_[i * kNameSize], kNameSize - 1, "f{:08}", i);
  }

  w->has_affinity_ =
      sched_getaffinity(0, sizeof w->affinity_, &w->affinity_) == 0;
  w->root_fd_.reset(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!w->root_fd_) return sys_failure("open", root);

  // The data file, written in 1 MiB pieces (O_DIRECT where it is allowed,
  // so the FUSE targets see the same kind of writes they are measured on).
  {
    UniqueFd fd(open(w->data_path_.c_str(),
                     O_CREAT | O_EXCL | O_WRONLY | O_DIRECT | O_CLOEXEC, 0644));
    if (!fd && errno == EINVAL) {
      fd.reset(open(w->data_path_.c_str(),
                    O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644));
    }
    if (!fd) return sys_failure("create", w->data_path_);
    for (uint64_t off = 0; off < cfg.file_size; off += kBig) {
      ssize_t n = pwrite(fd.get(), w->buf_.get(), kBig, off_t(off));
      g_progress.fetch_add(1, std::memory_order_relaxed);
      if (n != ssize_t(kBig)) {
        return n < 0 ? sys_failure("pwrite", w->data_path_)
                     : Failure{fmt::format("pwrite({}): short write of {} "
                                           "bytes at offset {}",
                                           w->data_path_, n, off)};
      }
    }
  }
  std::string stat_path = root + "/" + w->stat_name_;
  {
    UniqueFd fd(
        open(stat_path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
    if (!fd) return sys_failure("create", stat_path);
  }
  if (mkdir(w->create_dir_.c_str(), 0755) != 0) {
    return sys_failure("mkdir", w->create_dir_);
  }
  w->create_dir_fd_.reset(
      open(w->create_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!w->create_dir_fd_) return sys_failure("open", w->create_dir_);
  return w;
}

Workload::~Workload() {
  data_fd_.reset();
  for (auto& fd : thread_fds_) fd.reset();
  if (create_dir_fd_) {
    for (size_t i = unlinked_; i < created_; ++i) {
      unlinkat(create_dir_fd_.get(), name(i), 0);
    }
    create_dir_fd_.reset();
    rmdir(create_dir_.c_str());
  }
  if (root_fd_) unlinkat(root_fd_.get(), stat_name_.c_str(), 0);
  unlink(data_path_.c_str());
}

// The measurement loop: calls i in [first, first + count); the calls after
// the first `skip` are recorded in out[0], out[1], ... `call(i)` returns
// false on failure (with errno set, or 0 for a short transfer). Nothing
// here allocates: the sample arrays were sized in prepare().
template <class Call>
Workload::LoopEnd Workload::timed_loop(size_t first, size_t count, size_t skip,
                                       uint64_t* out, Call&& call) {
  for (size_t i = first; i < first + count; ++i) {
    if (g_interrupted) return LoopEnd{false, i, EINTR};
    errno = 0;
    uint64_t t0 = now_ns();
    bool ok = call(i);
    uint64_t t1 = now_ns();
    if (!ok) return LoopEnd{false, i, errno};
    if (i >= first + skip) out[i - first - skip] = t1 - t0;
    // For the watchdog; one writer, so no locked read-modify-write.
    g_progress.store(g_progress.load(std::memory_order_relaxed) + 1,
                     std::memory_order_relaxed);
  }
  return LoopEnd{};
}

Measurement Workload::summary(Op op, uint64_t* samples, size_t n) {
  const OpInfo& info = op_info(op);
  Measurement m;
  m.ok = true;
  m.stats = summarize(samples, n);
  if (info.threads > 1) {
    if (wall_ns_ > 0) m.ops_per_s = double(n) / (double(wall_ns_) / 1e9);
  } else if (m.stats.mean_us > 0) {
    m.ops_per_s = 1e6 / m.stats.mean_us;
  }
  m.mib_per_s = double(info.bytes) * m.ops_per_s / double(1 << 20);
  return m;
}

Measurement Workload::fail(const std::string& what, const LoopEnd& end) {
  Measurement m;
  if (g_stalled) {
    m.reason = fmt::format(
        "{}: the server made no progress and the watchdog aborted its "
        "connection (call {}: {})",
        what, end.index, std::strerror(end.err));
  } else if (g_interrupted) {
    m.reason = "interrupted";
  } else if (end.err == 0) {
    m.reason = fmt::format("{}: short transfer at call {}", what, end.index);
  } else {
    m.reason = fmt::format("{}: {} (errno {}) at call {}", what,
                           std::strerror(end.err), end.err, end.index);
  }
  return m;
}

Outcome<void> Workload::begin(Op op) {
  phase_ = phase_of(op);
  next_call_ = 0;
  measured_ = 0;
  has_failed_ = false;
  wall_ns_ = 0;
  failed_ = Measurement{};
  unlink_failed_ = Measurement{};
  data_fd_.reset();
  for (auto& fd : thread_fds_) fd.reset();
  auto failed = [&](const Failure& f) {
    failed_.reason = f.message;
    has_failed_ = true;
    return f;
  };
  if (phase_ == Op::kNoop) {
    // The stat target: a file nothing ever gives an xattr.
    std::string path = root_ + "/" + stat_name_;
    data_fd_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!data_fd_) return failed(sys_failure("open", path));
    return {};
  }
  if (multi_threaded(phase_)) {
    // One fd per thread, so no two threads share a struct file (its
    // f_pos lock, its FUSE file handle).
    int f = (phase_ == Op::kRandRead4K4T ? O_RDONLY : O_WRONLY) | O_DIRECT;
    for (auto& fd : thread_fds_) {
      fd.reset(open(data_path_.c_str(), f | O_CLOEXEC));
      if (!fd) {
        return failed(sys_failure(fmt::format("open({:#o})", f), data_path_));
      }
    }
    return {};
  }
  int flags = 0;
  switch (phase_) {
    case Op::kRandRead4K:
    case Op::kSeqRead1M:
      flags = O_RDONLY | O_DIRECT;
      break;
    case Op::kRandWrite4K:
    case Op::kSeqWrite1M:
      flags = O_WRONLY | O_DIRECT;
      break;
    case Op::kSyncWrite4K:
    case Op::kDurableWrite4K:
      // Buffered, as an application that wants durability writes; on the
      // FUSE targets (direct_io) every write still reaches the server.
      flags = O_WRONLY;
      break;
    default:
      break;
  }
  if (flags != 0) {
    data_fd_.reset(open(data_path_.c_str(), flags | O_CLOEXEC));
    if (!data_fd_) {
      failed_.reason =
          sys_failure(fmt::format("open({:#o})", flags), data_path_).message;
      has_failed_ = true;
      return Failure{failed_.reason};
    }
  }
  // Persistence phases start from a clean state: the data file and the
  // directory on stable storage (untimed), so the first timed fsync does
  // not also commit the setup.
  if (phase_ == Op::kSyncWrite4K || phase_ == Op::kDurableWrite4K) {
    if (fsync(data_fd_.get()) != 0) {
      failed_.reason = sys_failure("fsync", data_path_).message;
      has_failed_ = true;
      return Failure{failed_.reason};
    }
  }
  if (phase_ == Op::kSyncCreate || phase_ == Op::kDurableCreate) {
    if (fsync(create_dir_fd_.get()) != 0) {
      failed_.reason = sys_failure("fsync", create_dir_).message;
      has_failed_ = true;
      return Failure{failed_.reason};
    }
  }
  return {};
}

Workload::LoopEnd Workload::data_batch(size_t warm, size_t n) {
  const int f = data_fd_.get();
  char* const buf = buf_.get();
  const uint64_t* const offsets = offsets_.data();
  const OpInfo& info = op_info(phase_);
  const size_t len = info.bytes;
  const uint64_t size = cfg_.file_size;
  const size_t first = next_call_;
  uint64_t* const out = samples_.data() + measured_;
  switch (phase_) {
    case Op::kRandRead4K:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return pread(f, buf, len, off_t(offsets[i])) == ssize_t(len);
      });
    case Op::kRandWrite4K:
    case Op::kDurableWrite4K:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return pwrite(f, buf, len, off_t(offsets[i])) == ssize_t(len);
      });
    case Op::kSyncWrite4K:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return pwrite(f, buf, len, off_t(offsets[i])) == ssize_t(len) &&
               fsync(f) == 0;
      });
    case Op::kSeqRead1M:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return pread(f, buf, len, off_t((i * len) % size)) == ssize_t(len);
      });
    case Op::kSeqWrite1M:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return pwrite(f, buf, len, off_t((i * len) % size)) == ssize_t(len);
      });
    case Op::kNoop:
      // Succeeds when the server answered ENODATA (tmpfs: the VFS did).
      return timed_loop(first, warm + n, warm, out, [&](size_t) {
        return fgetxattr(f, kNoopXattr, buf, kNoopValueSize) < 0 &&
               errno == ENODATA;
      });
    case Op::kStatx: {
      const int dir = root_fd_.get();
      const char* nm = stat_name_.c_str();
      struct statx stx;
      return timed_loop(first, warm + n, warm, out, [&](size_t) {
        return statx(dir, nm, AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx) ==
               0;
      });
    }
    default:
      return LoopEnd{false, first, EINVAL};
  }
}

// kIoThreads threads, one per fd in thread_fds_, take call indices from a
// shared counter: first the `warm` unmeasured calls, then (once every
// thread is done with those) the `n` measured ones, so they finish within
// about one call of each other and kIoThreads calls are in flight
// throughout the timed part. The clock starts when the last thread is
// ready for the measured calls, before any of them starts one, and stops
// when the last thread finishes. The threads wait for each other by
// yielding, not sleeping: a futex wake-up of a halted vCPU would cost tens
// of microseconds at the start of every batch. Threads are started per
// batch, before the timed part; the loops allocate nothing. Call i uses
// offsets_[i] and writes its latency to samples_, as with one thread.
Workload::LoopEnd Workload::threaded_batch(size_t warm, size_t n) {
  struct Shared {
    std::atomic<size_t> next_warm{0}, next{0};
    std::atomic<bool> launched{false}, go{false}, stop{false};
    std::atomic<unsigned> arrived{0}, running{0};
    unsigned threads = 0;  // written before `launched`
    uint64_t t0 = 0, t1 = 0;
    std::mutex mu;
    LoopEnd end;  // the first failure
  } sh;
  const bool write = phase_ == Op::kRandWrite4K4T;
  const uint64_t* const offsets = offsets_.data();
  const size_t first = next_call_, warm_end = first + warm;
  const size_t end = warm_end + n;
  uint64_t* const out = samples_.data() + measured_;
  sh.next_warm.store(first);
  sh.next.store(warm_end);

  auto fail = [&](size_t i, int err) {
    std::lock_guard lock(sh.mu);
    if (sh.end.ok) sh.end = LoopEnd{false, i, err};
    sh.stop.store(true, std::memory_order_relaxed);
  };
  auto worker = [&](unsigned t) {
    // Undo --cpu: the measuring thread may be pinned, its threads are not.
    if (has_affinity_) sched_setaffinity(0, sizeof affinity_, &affinity_);
    const int fd = thread_fds_[t].get();
    char* const buf = buf_.get() + size_t(t) * kSmall;  // its own 4 KiB
    auto run = [&](std::atomic<size_t>& next, size_t stop_at, bool timed) {
      while (!sh.stop.load(std::memory_order_relaxed)) {
        const size_t i = next.fetch_add(1, std::memory_order_relaxed);
        if (i >= stop_at) return;
        if (g_interrupted) return fail(i, EINTR);
        errno = 0;
        const uint64_t a = now_ns();
        const ssize_t r = write ? pwrite(fd, buf, kSmall, off_t(offsets[i]))
                                : pread(fd, buf, kSmall, off_t(offsets[i]));
        const uint64_t b = now_ns();
        if (r != ssize_t(kSmall)) return fail(i, r < 0 ? errno : 0);
        if (timed) out[i - warm_end] = b - a;
        g_progress.fetch_add(1, std::memory_order_relaxed);
      }
    };
    while (!sh.launched.load(std::memory_order_acquire)) sched_yield();
    run(sh.next_warm, warm_end, false);
    if (sh.arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == sh.threads) {
      sh.t0 = now_ns();
      sh.go.store(true, std::memory_order_release);
    } else {
      while (!sh.go.load(std::memory_order_acquire)) sched_yield();
    }
    run(sh.next, end, true);
    if (sh.running.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      sh.t1 = now_ns();
    }
  };

  std::array<std::thread, kIoThreads> threads;
  unsigned started = 0;
  for (; started < kIoThreads; ++started) {
    try {
      threads[started] = std::thread(worker, started);
    } catch (const std::system_error& e) {
      fail(first, e.code().value());  // the others stop at once
      break;
    }
  }
  sh.threads = started;
  sh.running.store(started);
  sh.launched.store(true, std::memory_order_release);
  for (unsigned t = 0; t < started; ++t) threads[t].join();
  if (sh.end.ok && sh.t1 > sh.t0) wall_ns_ += sh.t1 - sh.t0;
  return sh.end;
}

// Creates and unlinks files in sub-rounds of at most kRound: create them
// (timed), then unlink them, oldest first (timed as `unlink` in the
// latency suite; untimed, followed by an untimed fsync of the directory, in
// the persistence suite). Every batch leaves the directory empty, which
// keeps it small and the servers' per-inode state bounded: passthrough_ll
// holds an open fd for every inode the kernel knows, and kRound at a time
// stays far below any open-file limit, whatever --iterations is.
void Workload::create_batch(size_t warm, size_t n) {
  const int dir = create_dir_fd_.get();
  const bool sync = phase_ == Op::kSyncCreate;
  const bool latency = phase_ == Op::kCreate;
  auto create = [&](size_t i) {
    UniqueFd fd(
        openat(dir, name(i), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
    if (!fd) return false;
    created_ = i + 1;
    if (sync && fsync(fd.get()) != 0) return false;
    fd.reset();  // the close (FLUSH + RELEASE on FUSE) is part of the cost
    return !sync || fsync(dir) == 0;
  };
  auto remove = [&](size_t i) {
    if (unlinkat(dir, name(i), 0) != 0) return false;
    unlinked_ = i + 1;
    return true;
  };
  const size_t begin = next_call_, end = next_call_ + warm + n;
  const size_t first_measured = begin + warm;
  for (size_t first = begin; first < end; first += kRound) {
    const size_t count = std::min(kRound, end - first);
    // Calls before first_measured are warm-up; samples go after those
    // already recorded in this phase.
    const size_t skip =
        first_measured > first ? std::min(count, first_measured - first) : 0;
    const size_t at =
        measured_ +
        (first + skip > first_measured ? first + skip - first_measured : 0);
    created_ = unlinked_ = first;  // everything before was unlinked
    LoopEnd e = timed_loop(first, count, skip, samples_.data() + at, create);
    if (!e.ok) {
      failed_ = fail(fmt::format("openat({}/{}, O_CREAT|O_EXCL){}", create_dir_,
                                 name(e.index), sync ? " + fsync" : ""),
                     e);
      unlink_failed_.reason = "not measured: create failed";
      has_failed_ = true;
      return;
    }
    if (latency) {
      e = timed_loop(first, count, skip, unlink_samples_.data() + at, remove);
    } else {
      e = LoopEnd{};
      for (size_t i = first; i < first + count && e.ok; ++i) {
        if (!remove(i)) e = LoopEnd{false, i, errno};
      }
      if (e.ok && fsync(dir) != 0) e = LoopEnd{false, first + count, errno};
    }
    if (!e.ok) {
      unlink_failed_ =
          fail(fmt::format("unlinkat({}/{})", create_dir_, name(e.index)), e);
      failed_.reason =
          latency ? "not measured: unlink failed" : unlink_failed_.reason;
      has_failed_ = true;
      return;
    }
  }
}

bool Workload::batch(size_t warm, size_t n) {
  if (has_failed_) return false;
  if (phase_ == Op::kCreate || phase_ == Op::kSyncCreate ||
      phase_ == Op::kDurableCreate) {
    create_batch(warm, n);
    if (has_failed_) return false;
  } else {
    LoopEnd e =
        multi_threaded(phase_) ? threaded_batch(warm, n) : data_batch(warm, n);
    if (!e.ok) {
      failed_ = fail(call_name(), e);
      if (phase_ == Op::kNoop && !g_stalled && !g_interrupted) {
        if (e.err == 0) {
          failed_.reason = fmt::format(
              "{}: returned a value at call {}; the file has that xattr",
              call_name(), e.index);
        } else if (e.err == EOPNOTSUPP) {
          // fs/fuse/xattr.c: after one ENOSYS the kernel sends no more
          // GETXATTR and answers EOPNOTSUPP itself.
          failed_.reason +=
              " — the server does not implement getxattr "
              "(ENOSYS), so the kernel answers without asking it";
        }
      }
      has_failed_ = true;
      return false;
    }
  }
  next_call_ += warm + n;
  measured_ += n;
  return true;
}

std::string Workload::call_name() const {
  switch (phase_) {
    case Op::kNoop:
      return fmt::format("fgetxattr({}/{}, {}) (expects ENODATA)", root_,
                         stat_name_, kNoopXattr);
    case Op::kStatx:
      return fmt::format("statx({}/{}, AT_STATX_FORCE_SYNC)", root_,
                         stat_name_);
    case Op::kRandRead4K:
    case Op::kRandRead4K4T:
    case Op::kSeqRead1M:
      return fmt::format("pread({})", data_path_);
    case Op::kSyncWrite4K:
      return fmt::format("pwrite({}) + fsync", data_path_);
    default:
      return fmt::format("pwrite({})", data_path_);
  }
}

Measurement Workload::result(Op op) {
  data_fd_.reset();
  for (auto& fd : thread_fds_) fd.reset();
  if (has_failed_) {
    return op == Op::kUnlink ? unlink_failed_ : failed_;
  }
  if (op == Op::kUnlink) return summary(op, unlink_samples_.data(), measured_);
  return summary(op, samples_.data(), measured_);
}

}  // namespace zest::bench
