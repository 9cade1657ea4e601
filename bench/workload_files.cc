// The files of a workload: made by prepare() through the kernel mount,
// whatever API the phases then use, and removed again, exactly those, by
// the destructor.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "bench/mounts.h"
#include "bench/workload.h"

namespace zest::bench {
namespace {

constexpr size_t kSmall = 4096;
constexpr size_t kBig = 1 << 20;

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

}  // namespace

Workload::Workload(std::string root, const WorkloadConfig& cfg)
    : root_(std::move(root)), cfg_(cfg) {
  data_path_ = root_ + "/" + data_name_;
  create_dir_ = root_ + "/" + create_dir_name_;
}

Outcome<std::unique_ptr<Workload>> Workload::prepare(const std::string& root,
                                                     const WorkloadConfig& cfg,
                                                     bool direct) {
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
  std::string append_path = root + "/" + w->append_name_;
  {
    UniqueFd fd(open(append_path.c_str(),
                     O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
    if (!fd) return sys_failure("create", append_path);
    w->append_created_ = true;
  }
  if (mkdir(w->create_dir_.c_str(), 0755) != 0) {
    return sys_failure("mkdir", w->create_dir_);
  }
  w->create_dir_fd_.reset(
      open(w->create_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!w->create_dir_fd_) return sys_failure("open", w->create_dir_);

  if (!direct) {
    w->api_.emplace(SysFiles(w->root_fd_.get(), w->create_dir_fd_.get()));
    return w;
  }
  auto d = DirectFiles::attach(root, w->create_dir_name_);
  if (!d) return d.failure();
  w->api_.emplace(std::move(d).value());
  if (auto r = w->check_direct_reads(); !r) return r.failure();
  return w;
}

// Reads the data file back through libzest-direct, 1 MiB at a time, and
// compares it with what prepare() wrote through the kernel: every read must
// be served from the pool and return those bytes.
Outcome<void> Workload::check_direct_reads() {
  DirectFiles& io = *api_->direct();
  const zest_direct_stats before = io.stats();
  OpenFile f(*api_, io.open(data_name_, O_RDONLY | O_DIRECT));
  if (!f) return sys_failure("zest_open", data_path_);
  std::unique_ptr<char[]> got(new char[kBig]);
  const uint64_t pieces = cfg_.file_size / kBig;
  for (uint64_t k = 0; k < pieces; ++k) {
    ssize_t n = io.pread(f.get(), got.get(), kBig, off_t(k * kBig));
    g_progress.fetch_add(1, std::memory_order_relaxed);
    if (n < 0) return sys_failure("zest_pread", data_path_);
    if (n != ssize_t(kBig) || std::memcmp(got.get(), buf_.get(), kBig) != 0) {
      return Failure{fmt::format(
          "zest_pread({}, 1 MiB at offset {}) returned {} bytes that are not "
          "what was written there through the kernel",
          data_path_, k * kBig, n)};
    }
  }
  const zest_direct_stats after = io.stats();
  const uint64_t direct = after.direct_reads - before.direct_reads;
  const uint64_t kernel = after.kernel_reads - before.kernel_reads;
  if (direct != pieces || kernel != 0) {
    return Failure{fmt::format(
        "reading {} back through libzest-direct: {} of {} reads were served "
        "from the pool and {} through the kernel, so it does not read "
        "directly; nothing is measured under the direct label",
        data_path_, direct, pieces, kernel)};
  }
  return {};
}

Workload::~Workload() {
  // Handles, then the API (libzest-direct gives its leases back), then the
  // files, through the kernel.
  data_fd_.reset();
  for (auto& fd : thread_fds_) fd.reset();
  api_.reset();
  if (create_dir_fd_) {
    for (size_t i = unlinked_; i < created_; ++i) {
      unlinkat(create_dir_fd_.get(), name(i), 0);
    }
    create_dir_fd_.reset();
    rmdir(create_dir_.c_str());
  }
  if (root_fd_) {
    unlinkat(root_fd_.get(), stat_name_, 0);
    if (append_created_) unlinkat(root_fd_.get(), append_name_, 0);
  }
  unlink(data_path_.c_str());
}

}  // namespace zest::bench
