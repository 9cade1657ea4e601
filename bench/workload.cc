#include "bench/workload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "bench/mounts.h"

namespace zest::bench {
namespace {

constexpr size_t kSmall = 4096;
// The value buffer of the no-op fgetxattr: never filled (ENODATA).
constexpr size_t kNoopValueSize = 64;

bool multi_threaded(Op op) { return op_info(op).threads > 1; }

}  // namespace

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
  if (const char* why = api_->cannot(phase_)) return failed(Failure{why});
  if (DirectFiles* d = api_->direct()) phase_start_ = d->stats();
  // Opens `name` (relative to the root) through the API.
  auto open = [&](OpenFile& fd, const char* name, int flags) -> Outcome<void> {
    fd = OpenFile(*api_, api_->open(name, flags));
    if (fd) return {};
    return sys_failure(fmt::format("open({:#o})", flags), root_ + "/" + name);
  };
  if (phase_ == Op::kNoop || phase_ == Op::kFstat) {
    // The stat target: a file nothing ever gives an xattr.
    if (auto r = open(data_fd_, stat_name_, O_RDONLY); !r) {
      return failed(r.failure());
    }
    return {};
  }
  if (multi_threaded(phase_)) {
    // One fd per thread, so no two threads share a struct file (its
    // f_pos lock, its FUSE file handle).
    int f = (phase_ == Op::kRandRead4K4T ? O_RDONLY : O_WRONLY) | O_DIRECT;
    for (auto& fd : thread_fds_) {
      if (auto r = open(fd, data_name_, f); !r) return failed(r.failure());
    }
    return {};
  }
  int flags = 0;
  const char* file = data_name_;
  switch (phase_) {
    case Op::kRandRead4K:
    case Op::kSeqRead1M:
      flags = O_RDONLY | O_DIRECT;
      break;
    case Op::kRandWrite4K:
    case Op::kSeqWrite1M:
      flags = O_WRONLY | O_DIRECT;
      break;
    case Op::kAppend4K:
      flags = O_WRONLY | O_DIRECT;
      file = append_name_;
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
    if (auto r = open(data_fd_, file, flags); !r) return failed(r.failure());
  }
  // Persistence phases start from a clean state: the data file and the
  // directory on stable storage (untimed), so the first timed fsync does
  // not also commit the setup.
  if (phase_ == Op::kSyncWrite4K || phase_ == Op::kDurableWrite4K) {
    const int h = data_fd_.get();
    if (api_->visit([&](auto& io) { return io.fsync(h); }) != 0) {
      return failed(sys_failure("fsync", data_path_));
    }
  }
  if (phase_ == Op::kSyncCreate || phase_ == Op::kDurableCreate) {
    if (fsync(create_dir_fd_.get()) != 0) {
      return failed(sys_failure("fsync", create_dir_));
    }
  }
  return {};
}

template <class Files>
Workload::LoopEnd Workload::data_batch(Files& io, size_t warm, size_t n) {
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
        return io.pread(f, buf, len, off_t(offsets[i])) == ssize_t(len);
      });
    case Op::kRandWrite4K:
    case Op::kDurableWrite4K:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return io.pwrite(f, buf, len, off_t(offsets[i])) == ssize_t(len);
      });
    case Op::kSyncWrite4K:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return io.pwrite(f, buf, len, off_t(offsets[i])) == ssize_t(len) &&
               io.fsync(f) == 0;
      });
    case Op::kAppend4K:
      // Every batch appends to an empty file (the truncate is untimed).
      if (io.ftruncate(f, 0) != 0) return LoopEnd{false, first, errno};
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return io.pwrite(f, buf, len, off_t((i - first) * len)) == ssize_t(len);
      });
    case Op::kSeqRead1M:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return io.pread(f, buf, len, off_t((i * len) % size)) == ssize_t(len);
      });
    case Op::kSeqWrite1M:
      return timed_loop(first, warm + n, warm, out, [&](size_t i) {
        return io.pwrite(f, buf, len, off_t((i * len) % size)) == ssize_t(len);
      });
    case Op::kNoop:
      // Succeeds when the server answered ENODATA (tmpfs: the VFS did).
      return timed_loop(first, warm + n, warm, out, [&](size_t) {
        return io.fgetxattr(f, kNoopXattr, buf, kNoopValueSize) < 0 &&
               errno == ENODATA;
      });
    case Op::kStatx: {
      const char* nm = stat_name_;
      struct statx stx;
      return timed_loop(first, warm + n, warm, out,
                        [&](size_t) { return io.statx_sync(nm, &stx) == 0; });
    }
    case Op::kStat: {
      const char* nm = stat_name_;
      struct stat st;
      return timed_loop(first, warm + n, warm, out,
                        [&](size_t) { return io.stat(nm, &st) == 0; });
    }
    case Op::kFstat: {
      struct stat st;
      return timed_loop(first, warm + n, warm, out,
                        [&](size_t) { return io.fstat(f, &st) == 0; });
    }
    case Op::kOpen: {
      const char* nm = stat_name_;
      return timed_loop(first, warm + n, warm, out, [&](size_t) {
        const int h = io.open(nm, O_RDONLY);
        return h >= 0 && io.close(h) == 0;
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
template <class Files>
Workload::LoopEnd Workload::threaded_batch(Files& io, size_t warm, size_t n) {
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
        const ssize_t r = write ? io.pwrite(fd, buf, kSmall, off_t(offsets[i]))
                                : io.pread(fd, buf, kSmall, off_t(offsets[i]));
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
template <class Files>
void Workload::create_batch(Files& io, size_t warm, size_t n) {
  const bool sync = phase_ == Op::kSyncCreate;
  const bool latency = phase_ == Op::kCreate;
  auto create = [&](size_t i) {
    const int h = io.create(name(i));
    if (h < 0) return false;
    created_ = i + 1;
    if (sync && io.fsync(h) != 0) {
      const int err = errno;
      io.close(h);
      errno = err;
      return false;
    }
    io.close(h);  // the close (FLUSH + RELEASE on FUSE) is part of the cost
    return !sync || io.fsync_create_dir() == 0;
  };
  auto remove = [&](size_t i) {
    if (io.unlink(name(i)) != 0) return false;
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
      if (e.ok && io.fsync_create_dir() != 0) {
        e = LoopEnd{false, first + count, errno};
      }
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
    api_->visit([&](auto& io) { create_batch(io, warm, n); });
    if (has_failed_) return false;
  } else {
    LoopEnd e = api_->visit([&](auto& io) {
      return multi_threaded(phase_) ? threaded_batch(io, warm, n)
                                    : data_batch(io, warm, n);
    });
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
    case Op::kStat:
      return fmt::format("stat({}/{})", root_, stat_name_);
    case Op::kFstat:
      return fmt::format("fstat({}/{})", root_, stat_name_);
    case Op::kOpen:
      return fmt::format("open({}/{}) + close", root_, stat_name_);
    case Op::kAppend4K:
      return fmt::format("ftruncate to 0 or pwrite at the end of {}/{}", root_,
                         append_name_);
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
  // libzest-direct: whether the calls were served from the pool, counted
  // before the handles go.
  std::string not_direct;
  if (DirectFiles* d = api_->direct(); d != nullptr && !has_failed_) {
    not_direct =
        check_served_directly(op, phase_start_, d->stats(), next_call_);
  }
  data_fd_.reset();
  for (auto& fd : thread_fds_) fd.reset();
  if (has_failed_) {
    return op == Op::kUnlink ? unlink_failed_ : failed_;
  }
  if (!not_direct.empty()) {
    Measurement m;
    m.reason = not_direct;
    return m;
  }
  if (op == Op::kUnlink) return summary(op, unlink_samples_.data(), measured_);
  return summary(op, samples_.data(), measured_);
}

std::string Workload::api_summary() {
  DirectFiles* d = api_ ? api_->direct() : nullptr;
  if (d == nullptr) return {};
  return "libzest-direct's counters over the run: " + describe(d->stats());
}

}  // namespace zest::bench
