#include "pmem/pool.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "base/log.h"
#include "pmem/recorder.h"

namespace zest::pmem {

namespace {

constexpr uint64_t kPoolAlign = 4096;
constexpr const char* kForceEnv = "PMEM2_FORCE_GRANULARITY";

// setenv/getenv are not thread-safe against each other; zest touches the
// environment only here, under this lock, around pmem2_map_new (which reads
// PMEM2_FORCE_GRANULARITY on every call).
std::mutex& env_mutex() {
  static std::mutex mu;
  return mu;
}

// Sets (or, with nullptr, unsets) PMEM2_FORCE_GRANULARITY for its lifetime,
// then restores what was there.
class ForcedGranularity {
 public:
  explicit ForcedGranularity(const char* value) : lock_(env_mutex()) {
    if (const char* old = std::getenv(kForceEnv)) old_ = old;
    if (value) {
      ::setenv(kForceEnv, value, 1);
    } else {
      ::unsetenv(kForceEnv);
    }
  }
  ~ForcedGranularity() {
    if (old_) {
      ::setenv(kForceEnv, old_->c_str(), 1);
    } else {
      ::unsetenv(kForceEnv);
    }
  }
  ForcedGranularity(const ForcedGranularity&) = delete;
  ForcedGranularity& operator=(const ForcedGranularity&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
  std::optional<std::string> old_;
};

// libpmem2 returns -errno for system errors and its own codes below -100000.
Errno pmem2_errno(int ret) {
  if (ret < 0 && ret > -4096) return Errno(-ret);
  switch (ret) {
    case PMEM2_E_INVALID_FILE_TYPE:
    case PMEM2_E_INVALID_FILE_HANDLE:
    case PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED:
      return Errno(ENODEV);
    case PMEM2_E_GRANULARITY_NOT_SUPPORTED:
    case PMEM2_E_NOSUPP:
      return Errno(ENOTSUP);
    case PMEM2_E_NO_ACCESS:
      return Errno(EACCES);
    case PMEM2_E_LENGTH_UNALIGNED:
    case PMEM2_E_LENGTH_OUT_OF_RANGE:
    case PMEM2_E_SOURCE_EMPTY:
      return Errno(EINVAL);
    default:
      return Errno(EIO);
  }
}

Granularity from_pmem2(pmem2_granularity g) {
  switch (g) {
    case PMEM2_GRANULARITY_BYTE:
      return Granularity::Byte;
    case PMEM2_GRANULARITY_CACHE_LINE:
      return Granularity::CacheLine;
    default:
      return Granularity::Page;
  }
}

// One pmem2_map_new of the whole of `fd`, with PMEM2_FORCE_GRANULARITY set
// to `force` (nullptr: unset, so libpmem2 detects what the memory is).
Result<pmem2_map*> map_fd(int fd, bool read_only, pmem2_granularity required,
                          const char* force, std::string* msg) {
  pmem2_source* src = nullptr;
  pmem2_config* cfg = nullptr;
  pmem2_map* map = nullptr;
  int ret = pmem2_source_from_fd(&src, fd);
  if (ret == 0) ret = pmem2_config_new(&cfg);
  if (ret == 0)
    ret = pmem2_config_set_required_store_granularity(cfg, required);
  if (ret == 0 && read_only) {
    ret = pmem2_config_set_protection(cfg, PMEM2_PROT_READ);
  }
  if (ret == 0) {
    ForcedGranularity env(force);
    ret = pmem2_map_new(&map, cfg, src);
  }
  if (ret != 0) {
    Errno e = pmem2_errno(ret);
    const char* text = pmem2_errormsg();
    if (e.value == ENODEV) {
      *msg = "not a regular file or a /dev/dax device";
    } else if (text != nullptr && *text != '\0') {
      *msg = text;
    } else {
      *msg = e.message();
    }
  }
  if (cfg) pmem2_config_delete(&cfg);
  if (src) pmem2_source_delete(&src);
  if (ret != 0) return pmem2_errno(ret);
  return map;
}

[[noreturn]] void die(const std::string& text) {
  log_error("pmem: {}", text);
  std::fprintf(stderr, "pmem: %s\n", text.c_str());
  std::abort();
}

void set_why(std::string* why, std::string text) {
  if (why) *why = std::move(text);
}

}  // namespace

const char* to_string(Durability d) {
  switch (d) {
    case Durability::Auto:
      return "auto";
    case Durability::CacheLine:
      return "cache-line";
    case Durability::Page:
      return "page";
  }
  return "?";
}

const char* to_string(Granularity g) {
  switch (g) {
    case Granularity::Byte:
      return "byte";
    case Granularity::CacheLine:
      return "cache-line";
    case Granularity::Page:
      return "page";
  }
  return "?";
}

bool parse_durability(std::string_view text, Durability* out) {
  if (text == "auto") {
    *out = Durability::Auto;
  } else if (text == "cache-line" || text == "cacheline") {
    *out = Durability::CacheLine;
  } else if (text == "page") {
    *out = Durability::Page;
  } else {
    return false;
  }
  return true;
}

// --- opening -----------------------------------------------------------------

Result<PoolMap> PoolMap::create(const std::string& path, uint64_t size,
                                std::string* why, const OpenOptions& options) {
  if (size == 0 || size % kPoolAlign != 0) {
    set_why(why, "cannot create pool " + path + ": size " +
                     std::to_string(size) +
                     " is not a positive multiple of 4 KiB");
    return Errno(EINVAL);
  }
  if (options.read_only) {
    set_why(why, "cannot create pool " + path + " read-only");
    return Errno(EINVAL);
  }
  UniqueFd fd(
      ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) {
    Errno e = last_errno();
    set_why(why, e.value == EEXIST
                     ? "cannot create pool " + path + ": it already exists"
                     : "cannot create pool " + path + ": " + e.message());
    return e;
  }
  // Sparse: blocks are allocated as the file system writes them.
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    Errno e = last_errno();
    ::unlink(path.c_str());
    set_why(why, "cannot size pool " + path + ": " + e.message());
    return e;
  }
  auto pool = open_fd(std::move(fd), path, options, why);
  if (!pool) ::unlink(path.c_str());
  return pool;
}

Result<PoolMap> PoolMap::open(const std::string& path,
                              const OpenOptions& options, std::string* why) {
  int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  UniqueFd fd(::open(path.c_str(), flags));
  if (!fd) {
    Errno e = last_errno();
    set_why(why, "cannot open pool " + path + ": " + e.message());
    return e;
  }
  return open_fd(std::move(fd), path, options, why);
}

Result<PoolMap> PoolMap::open_fd(UniqueFd fd, const std::string& path,
                                 const OpenOptions& options, std::string* why) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    Errno e = last_errno();
    set_why(why, "cannot stat pool " + path + ": " + e.message());
    return e;
  }
  if (S_ISREG(st.st_mode)) {
    if (st.st_size == 0 || static_cast<uint64_t>(st.st_size) % kPoolAlign) {
      set_why(why, "cannot open pool " + path + ": its size (" +
                       std::to_string(st.st_size) +
                       " bytes) is not a positive multiple of 4 KiB; not a "
                       "pool?");
      return Errno(EINVAL);
    }
  } else if (!S_ISCHR(st.st_mode)) {
    set_why(why, "cannot open pool " + path +
                     ": not a regular file or a /dev/dax device");
    return Errno(ENODEV);
  }
  if (options.lock) {
    int op = (options.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB;
    while (::flock(fd.get(), op) != 0) {
      if (errno == EINTR) continue;
      Errno e = last_errno();
      if (e.value == EWOULDBLOCK) {
        set_why(why, "cannot open pool " + path +
                         ": pool is in use by another process");
        return Errno(EBUSY);
      }
      set_why(why, "cannot lock pool " + path + ": " + e.message());
      return e;
    }
  }

  // First map with nothing forced, to learn what the memory is: libpmem2
  // reports byte or cache-line granularity only for real pmem (devdax, or
  // MAP_SYNC on a DAX mount, byte where the platform has eADR).
  std::string msg;
  auto first = map_fd(fd.get(), options.read_only, PMEM2_GRANULARITY_PAGE,
                      nullptr, &msg);
  if (!first) {
    set_why(why, "cannot map pool " + path + ": " + msg);
    return first.error();
  }
  pmem2_map* map = *first;
  Granularity native = from_pmem2(pmem2_map_get_store_granularity(map));
  bool real_pmem = native != Granularity::Page;
  if (!real_pmem && options.durability != Durability::Page) {
    // Page cache, cache-line durability asked: remap with the granularity
    // forced, so flushes are CPU cache flushes instead of msync. The page
    // cache is shared, so what is flushed (indeed, what is stored) survives
    // the process; not a power cut.
    pmem2_map_delete(&map);
    auto second = map_fd(fd.get(), options.read_only,
                         PMEM2_GRANULARITY_CACHE_LINE, "CACHE_LINE", &msg);
    if (!second) {
      set_why(why, "cannot map pool " + path +
                       " with cache-line granularity forced: " + msg);
      return second.error();
    }
    map = *second;
  }

  PoolMap pool;
  pool.path_ = path;
  pool.fd_ = std::move(fd);
  pool.map_ = map;
  pool.base_ = static_cast<std::byte*>(pmem2_map_get_address(map));
  pool.size_ = pmem2_map_get_size(map);
  pool.granularity_ = from_pmem2(pmem2_map_get_store_granularity(map));
  pool.real_pmem_ = real_pmem;
  pool.read_only_ = options.read_only;
  pool.persist_fn_ = pmem2_get_persist_fn(map);
  pool.flush_fn_ = pmem2_get_flush_fn(map);
  pool.drain_fn_ = pmem2_get_drain_fn(map);
  pool.memcpy_fn_ = pmem2_get_memcpy_fn(map);
  pool.memset_fn_ = pmem2_get_memset_fn(map);
  pool.counters_ = std::make_unique<Counters>();
  if (options.recorder) pool.set_recorder(options.recorder);
  return pool;
}

PoolMap::PoolMap(PoolMap&& o) noexcept { *this = std::move(o); }

PoolMap& PoolMap::operator=(PoolMap&& o) noexcept {
  if (this == &o) return *this;
  release();
  path_ = std::move(o.path_);
  fd_ = std::move(o.fd_);
  map_ = std::exchange(o.map_, nullptr);
  base_ = std::exchange(o.base_, nullptr);
  size_ = std::exchange(o.size_, 0);
  granularity_ = o.granularity_;
  real_pmem_ = o.real_pmem_;
  read_only_ = o.read_only_;
  persist_fn_ = o.persist_fn_;
  flush_fn_ = o.flush_fn_;
  drain_fn_ = o.drain_fn_;
  memcpy_fn_ = o.memcpy_fn_;
  memset_fn_ = o.memset_fn_;
  recorder_ = std::exchange(o.recorder_, nullptr);
  counters_ = std::move(o.counters_);
  return *this;
}

PoolMap::~PoolMap() { release(); }

void PoolMap::release() {
  if (recorder_) set_recorder(nullptr);
  if (map_) pmem2_map_delete(&map_);
  map_ = nullptr;
  base_ = nullptr;
  size_ = 0;
  fd_.reset();  // drops the flock
}

const char* PoolMap::mode() const {
  if (real_pmem_) return "pmem";
  return granularity_ == Granularity::Page ? "page" : "cache-line";
}

std::string PoolMap::describe() const {
  if (real_pmem_) {
    if (granularity_ == Granularity::Byte) {
      return "pmem (byte granularity, CPU caches persistent): survives a "
             "power cut";
    }
    return "pmem (cache-line granularity, flushed from the CPU caches): "
           "survives a power cut";
  }
  if (granularity_ == Granularity::Page) {
    return "page (msync): survives a power cut on a real disk, slower";
  }
  return "cache-line on page cache: survives a crash of the server process, "
         "not a power cut";
}

// --- checks ------------------------------------------------------------------

void PoolMap::check(uint64_t off, uint64_t len) const {
  if (len > size_ || off > size_ - len) {
    die("access [" + std::to_string(off) + ", +" + std::to_string(len) +
        ") outside pool " + path_ + " of " + std::to_string(size_) + " bytes");
  }
}

void PoolMap::check_writable(const char* op) const {
  if (read_only_) die(std::string(op) + " on read-only pool " + path_);
}

// --- stores ------------------------------------------------------------------

void PoolMap::write(uint64_t off, const void* src, size_t len) {
  check(off, len);
  check_writable("write");
  counters_->stores.fetch_add(1, std::memory_order_relaxed);
  counters_->bytes_written.fetch_add(len, std::memory_order_relaxed);
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    std::memcpy(base_ + off, src, len);
    recorder_->store_locked(off, base_ + off, len);
    return;
  }
  std::memcpy(base_ + off, src, len);
}

void PoolMap::write_nt(uint64_t off, const void* src, size_t len) {
  check(off, len);
  check_writable("write_nt");
  counters_->stores.fetch_add(1, std::memory_order_relaxed);
  counters_->bytes_written.fetch_add(len, std::memory_order_relaxed);
  constexpr unsigned kFlags = PMEM2_F_MEM_NONTEMPORAL | PMEM2_F_MEM_NODRAIN;
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    memcpy_fn_(base_ + off, src, len, kFlags);
    recorder_->store_locked(off, base_ + off, len);
    recorder_->flush_locked(off, len);
    return;
  }
  memcpy_fn_(base_ + off, src, len, kFlags);
}

void PoolMap::zero(uint64_t off, size_t len) {
  check(off, len);
  check_writable("zero");
  counters_->stores.fetch_add(1, std::memory_order_relaxed);
  counters_->bytes_written.fetch_add(len, std::memory_order_relaxed);
  constexpr unsigned kFlags = PMEM2_F_MEM_NONTEMPORAL | PMEM2_F_MEM_NODRAIN;
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    memset_fn_(base_ + off, 0, len, kFlags);
    recorder_->store_locked(off, base_ + off, len);
    recorder_->flush_locked(off, len);
    return;
  }
  memset_fn_(base_ + off, 0, len, kFlags);
}

void PoolMap::store_u64(uint64_t off, uint64_t value) {
  check(off, 8);
  check_writable("store_u64");
  if (off % 8 != 0) {
    die("store_u64 at unaligned offset " + std::to_string(off) + " in " +
        path_);
  }
  counters_->stores.fetch_add(1, std::memory_order_relaxed);
  counters_->bytes_written.fetch_add(8, std::memory_order_relaxed);
  auto* p = reinterpret_cast<uint64_t*>(base_ + off);
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    __atomic_store_n(p, value, __ATOMIC_RELAXED);
    recorder_->store_locked(off, base_ + off, 8);
    return;
  }
  __atomic_store_n(p, value, __ATOMIC_RELAXED);
}

void PoolMap::flush(uint64_t off, size_t len) {
  check(off, len);
  counters_->flushes.fetch_add(1, std::memory_order_relaxed);
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    flush_fn_(base_ + off, len);
    recorder_->flush_locked(off, len);
    return;
  }
  flush_fn_(base_ + off, len);
}

void PoolMap::drain() {
  counters_->fences.fetch_add(1, std::memory_order_relaxed);
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    drain_fn_();
    recorder_->fence_locked();
    return;
  }
  drain_fn_();
}

void PoolMap::persist(uint64_t off, size_t len) {
  check(off, len);
  counters_->flushes.fetch_add(1, std::memory_order_relaxed);
  counters_->fences.fetch_add(1, std::memory_order_relaxed);
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    persist_fn_(base_ + off, len);
    recorder_->flush_locked(off, len);
    recorder_->fence_locked();
    return;
  }
  persist_fn_(base_ + off, len);
}

// --- testing and measuring ---------------------------------------------------

void PoolMap::set_recorder(Recorder* recorder) {
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    recorder_->detach_locked();
  }
  recorder_ = recorder;
  if (recorder_) {
    std::lock_guard g(recorder_->mu_);
    recorder_->attach_locked(base_, size_);
  }
}

PoolStats PoolMap::stats() const {
  PoolStats s;
  s.stores = counters_->stores.load(std::memory_order_relaxed);
  s.bytes_written = counters_->bytes_written.load(std::memory_order_relaxed);
  s.flushes = counters_->flushes.load(std::memory_order_relaxed);
  s.fences = counters_->fences.load(std::memory_order_relaxed);
  return s;
}

void PoolMap::reset_stats() {
  counters_->stores.store(0, std::memory_order_relaxed);
  counters_->bytes_written.store(0, std::memory_order_relaxed);
  counters_->flushes.store(0, std::memory_order_relaxed);
  counters_->fences.store(0, std::memory_order_relaxed);
}

}  // namespace zest::pmem
