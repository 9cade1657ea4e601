#include "bench/workload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "bench/mounts.h"

namespace zest::bench {
namespace {

constexpr size_t kSmall = 4096;
constexpr size_t kBig = 1 << 20;

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

const std::array<OpInfo, 7>& all_ops() {
  static const std::array<OpInfo, 7> ops = {{
      {Op::kRandRead4K, "randread4k", "4 KiB random read (O_DIRECT)", kSmall,
       false},
      {Op::kRandWrite4K, "randwrite4k", "4 KiB random write (O_DIRECT)", kSmall,
       false},
      {Op::kStatx, "statx", "statx (force sync)", 0, false},
      {Op::kCreate, "create", "create (open O_CREAT|O_EXCL + close)", 0, false},
      {Op::kUnlink, "unlink", "unlink", 0, false},
      {Op::kSeqRead1M, "seqread1m", "1 MiB sequential read (O_DIRECT)", kBig,
       true},
      {Op::kSeqWrite1M, "seqwrite1m", "1 MiB sequential write (O_DIRECT)", kBig,
       true},
  }};
  return ops;
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

  w->samples_.resize(std::max(cfg.iterations, cfg.big_iterations));
  w->unlink_samples_.resize(cfg.iterations);
  uint64_t seed = 0x5eed;
  uint64_t blocks = cfg.file_size / kSmall;
  w->offsets_.resize(cfg.warmup + cfg.iterations);
  for (auto& o : w->offsets_) o = (splitmix64(seed) % blocks) * kSmall;
  w->names_.assign((cfg.warmup + cfg.iterations) * kNameSize, '\0');
  for (size_t i = 0; i < cfg.warmup + cfg.iterations; ++i) {
    fmt::format_to_n(&w->names_[i * kNameSize], kNameSize - 1, "f{:08}", i);
  }

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

// The measurement loop: calls i in [first, first + count); call i >= warm
// is recorded in out[i - warm]. `call(i)` returns false on failure (with
// errno set, or 0 for a short transfer). Nothing here allocates: the sample
// arrays were sized in prepare().
template <class Call>
Workload::LoopEnd Workload::timed_loop(size_t first, size_t count, size_t warm,
                                       uint64_t* out, Call&& call) {
  for (size_t i = first; i < first + count; ++i) {
    if (g_interrupted) return LoopEnd{false, i, EINTR};
    errno = 0;
    uint64_t t0 = now_ns();
    bool ok = call(i);
    uint64_t t1 = now_ns();
    if (!ok) return LoopEnd{false, i, errno};
    if (i >= warm) out[i - warm] = t1 - t0;
    // For the watchdog; one writer, so no locked read-modify-write.
    g_progress.store(g_progress.load(std::memory_order_relaxed) + 1,
                     std::memory_order_relaxed);
  }
  return LoopEnd{};
}

Measurement Workload::finish(const OpInfo& info, uint64_t* samples, size_t n) {
  Measurement m;
  m.ok = true;
  m.stats = summarize(samples, n);
  if (info.bytes != 0 && m.stats.mean_us > 0) {
    m.mib_per_s =
        double(info.bytes) / double(1 << 20) / (m.stats.mean_us / 1e6);
  }
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

Measurement Workload::data_op(const OpInfo& info) {
  bool write = info.op == Op::kRandWrite4K || info.op == Op::kSeqWrite1M;
  int flags = (write ? O_WRONLY : O_RDONLY) | O_DIRECT | O_CLOEXEC;
  UniqueFd fd(open(data_path_.c_str(), flags));
  if (!fd) {
    Measurement m;
    m.reason = sys_failure(write ? "open(O_WRONLY|O_DIRECT)"
                                 : "open(O_RDONLY|O_DIRECT)",
                           data_path_)
                   .message;
    return m;
  }
  const int f = fd.get();
  char* const buf = buf_.get();
  const uint64_t* const offsets = offsets_.data();
  const size_t len = info.bytes;
  const uint64_t size = cfg_.file_size;
  const size_t warm = info.big ? cfg_.big_warmup : cfg_.warmup;
  const size_t n = info.big ? cfg_.big_iterations : cfg_.iterations;
  uint64_t* const out = samples_.data();

  LoopEnd end;
  switch (info.op) {
    case Op::kRandRead4K:
      end = timed_loop(0, warm + n, warm, out, [&](size_t i) {
        return pread(f, buf, len, off_t(offsets[i])) == ssize_t(len);
      });
      break;
    case Op::kRandWrite4K:
      end = timed_loop(0, warm + n, warm, out, [&](size_t i) {
        return pwrite(f, buf, len, off_t(offsets[i])) == ssize_t(len);
      });
      break;
    case Op::kSeqRead1M:
      end = timed_loop(0, warm + n, warm, out, [&](size_t i) {
        return pread(f, buf, len, off_t((i * len) % size)) == ssize_t(len);
      });
      break;
    case Op::kSeqWrite1M:
      end = timed_loop(0, warm + n, warm, out, [&](size_t i) {
        return pwrite(f, buf, len, off_t((i * len) % size)) == ssize_t(len);
      });
      break;
    default:
      break;
  }
  if (!end.ok) {
    return fail(fmt::format("{}({})", write ? "pwrite" : "pread", data_path_),
                end);
  }
  return finish(info, out, n);
}

// Creates and unlinks files in rounds of kRound: create a round (timed as
// `create`), then unlink it, oldest first (timed as `unlink`). Rounds keep
// the directory and the servers' per-inode state bounded: passthrough_ll
// holds an open fd for every inode the kernel knows, and one round at a
// time stays far below any open-file limit, whatever --iterations is.
void Workload::create_unlink_pass() {
  create_unlink_done_ = true;
  const int dir = create_dir_fd_.get();
  const size_t warm = cfg_.warmup;
  const size_t total = cfg_.warmup + cfg_.iterations;
  auto create = [&](size_t i) {
    UniqueFd fd(
        openat(dir, name(i), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
    if (!fd) return false;
    fd.reset();  // the close (FLUSH + RELEASE on FUSE) is part of the cost
    created_ = i + 1;
    return true;
  };
  auto remove = [&](size_t i) {
    if (unlinkat(dir, name(i), 0) != 0) return false;
    unlinked_ = i + 1;
    return true;
  };
  for (size_t first = 0; first < total; first += kRound) {
    size_t count = std::min(kRound, total - first);
    LoopEnd end = timed_loop(first, count, warm, samples_.data(), create);
    if (!end.ok) {
      create_result_ = fail(fmt::format("openat({}/{}, O_CREAT|O_EXCL)",
                                        create_dir_, name(end.index)),
                            end);
      unlink_result_.reason = "not measured: create failed";
      return;
    }
    end = timed_loop(first, count, warm, unlink_samples_.data(), remove);
    if (!end.ok) {
      create_result_.reason = "not measured: unlink failed";
      unlink_result_ = fail(
          fmt::format("unlinkat({}/{})", create_dir_, name(end.index)), end);
      return;
    }
  }
  create_result_ =
      finish(all_ops()[size_t(Op::kCreate)], samples_.data(), cfg_.iterations);
  unlink_result_ = finish(all_ops()[size_t(Op::kUnlink)],
                          unlink_samples_.data(), cfg_.iterations);
}

Measurement Workload::run(Op op) {
  const OpInfo& info = all_ops()[size_t(op)];
  switch (op) {
    case Op::kStatx: {
      const int dir = root_fd_.get();
      const char* nm = stat_name_.c_str();
      struct statx stx;
      LoopEnd end = timed_loop(0, cfg_.warmup + cfg_.iterations, cfg_.warmup,
                               samples_.data(), [&](size_t) {
                                 return statx(dir, nm, AT_STATX_FORCE_SYNC,
                                              STATX_BASIC_STATS, &stx) == 0;
                               });
      if (!end.ok) {
        return fail(
            fmt::format("statx({}/{}, AT_STATX_FORCE_SYNC)", root_, stat_name_),
            end);
      }
      return finish(info, samples_.data(), cfg_.iterations);
    }
    case Op::kCreate:
    case Op::kUnlink:
      // Measured together; the create samples live in samples_ until the
      // next run(), so summarise both now.
      if (!create_unlink_done_) create_unlink_pass();
      return op == Op::kCreate ? create_result_ : unlink_result_;
    default:
      return data_op(info);
  }
}

}  // namespace zest::bench
