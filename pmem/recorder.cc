#include "pmem/recorder.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"

namespace zest::pmem {

namespace {

constexpr char kMagic[8] = {'Z', 'P', 'M', 'R', 'E', 'C', '0', '1'};

struct RecordHeader {
  uint8_t kind;
  uint8_t zero[7];
  uint64_t a;
  uint64_t b;
};
static_assert(sizeof(RecordHeader) == 24);

// Writes all of iov, retrying short writes. False on error (errno set).
bool write_all(int fd, struct iovec* iov, int n) {
  while (n > 0) {
    ssize_t w = ::writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    size_t left = static_cast<size_t>(w);
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --n;
    }
    if (n > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

bool read_exact(int fd, void* dst, size_t len, size_t* got) {
  *got = 0;
  auto* p = static_cast<char*>(dst);
  while (*got < len) {
    ssize_t r = ::read(fd, p + *got, len - *got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) break;
    *got += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

// --- StoreLog ---------------------------------------------------------------

void StoreLog::add_store(uint64_t offset, const void* bytes, uint64_t length) {
  LogEntry e;
  e.kind = OpKind::Store;
  e.offset = offset;
  e.length = length;
  e.data_pos = data_.size();
  const auto* b = static_cast<const std::byte*>(bytes);
  data_.insert(data_.end(), b, b + length);
  entries_.push_back(e);
}

void StoreLog::add_flush(uint64_t offset, uint64_t length) {
  LogEntry e;
  e.kind = OpKind::Flush;
  e.offset = offset;
  e.length = length;
  entries_.push_back(e);
}

void StoreLog::add_fence() {
  LogEntry e;
  e.kind = OpKind::Fence;
  entries_.push_back(e);
}

void StoreLog::add_mark(uint64_t tag) {
  LogEntry e;
  e.kind = OpKind::Mark;
  e.tag = tag;
  entries_.push_back(e);
}

// --- reading a streamed log --------------------------------------------------

Result<StoreLog> read_log_file(const std::string& path,
                               std::vector<std::byte>* initial_image,
                               std::string* why) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    Errno e = last_errno();
    if (why) *why = "cannot open recorder log " + path + ": " + e.message();
    return e;
  }
  char magic[8];
  uint64_t sizes[2];
  size_t got = 0;
  if (!read_exact(fd.get(), magic, sizeof magic, &got) || got != sizeof magic ||
      std::memcmp(magic, kMagic, sizeof magic) != 0 ||
      !read_exact(fd.get(), sizes, sizeof sizes, &got) || got != sizeof sizes) {
    if (why) *why = path + " is not a zest recorder log (bad header)";
    return Errno(EINVAL);
  }
  initial_image->assign(sizes[1], std::byte{0});
  if (!read_exact(fd.get(), initial_image->data(), sizes[1], &got) ||
      got != sizes[1]) {
    if (why) *why = path + ": initial image cut short";
    return Errno(EINVAL);
  }
  StoreLog log;
  std::vector<std::byte> payload;
  for (;;) {
    RecordHeader h;
    if (!read_exact(fd.get(), &h, sizeof h, &got)) {
      Errno e = last_errno();
      if (why) *why = "cannot read " + path + ": " + e.message();
      return e;
    }
    if (got < sizeof h) break;  // end, or a record cut short by a kill
    switch (static_cast<OpKind>(h.kind)) {
      case OpKind::Store: {
        if (h.a > sizes[0] || h.b > sizes[0] - h.a) {
          if (why) *why = path + ": store outside the pool";
          return Errno(EINVAL);
        }
        size_t padded = (h.b + 7) & ~uint64_t{7};
        payload.resize(padded);
        if (!read_exact(fd.get(), payload.data(), padded, &got)) {
          Errno e = last_errno();
          if (why) *why = "cannot read " + path + ": " + e.message();
          return e;
        }
        if (got < padded) return log;  // cut short
        log.add_store(h.a, payload.data(), h.b);
        break;
      }
      case OpKind::Flush:
        log.add_flush(h.a, h.b);
        break;
      case OpKind::Fence:
        log.add_fence();
        break;
      case OpKind::Mark:
        log.add_mark(h.a);
        break;
      default:
        if (why)
          *why = path + ": unknown record kind " + std::to_string(h.kind);
        return Errno(EINVAL);
    }
  }
  return log;
}

// --- Recorder ---------------------------------------------------------------

Status Recorder::stream_to(const std::string& path, std::string* why) {
  std::lock_guard g(mu_);
  UniqueFd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) {
    Errno e = last_errno();
    if (why) *why = "cannot create recorder log " + path + ": " + e.message();
    return e;
  }
  file_ = std::move(fd);
  file_path_ = path;
  stream_failed_ = false;
  if (base_ != nullptr) {
    // Already attached: write the header now, with the initial image.
    const std::byte* b = base_;
    size_t s = size_;
    detach_locked();
    attach_locked(b, s);
  }
  return {};
}

void Recorder::attach_locked(const std::byte* base, size_t size) {
  base_ = base;
  size_ = size;
  initial_.assign(base, base + size);
  log_.clear();
  if (file_) {
    if (::ftruncate(file_.get(), 0) != 0 ||
        ::lseek(file_.get(), 0, SEEK_SET) != 0) {
      stream_failed_ = true;
    }
    uint64_t sizes[2] = {size, size};
    struct iovec iov[3] = {
        {const_cast<char*>(kMagic), sizeof kMagic},
        {sizes, sizeof sizes},
        {initial_.data(), initial_.size()},
    };
    if (!stream_failed_ && !write_all(file_.get(), iov, 3)) {
      stream_failed_ = true;
    }
    if (stream_failed_) {
      log_error("recorder: cannot write {}: {}", file_path_,
                std::strerror(errno));
    }
  }
}

void Recorder::detach_locked() {
  base_ = nullptr;
  size_ = 0;
}

void Recorder::write_record_locked(OpKind kind, uint64_t a, uint64_t b,
                                   const std::byte* payload) {
  if (!file_ || stream_failed_) return;
  RecordHeader h{};
  h.kind = static_cast<uint8_t>(kind);
  h.a = a;
  h.b = b;
  static constexpr char kPad[8] = {};
  struct iovec iov[3];
  int n = 0;
  iov[n++] = {&h, sizeof h};
  if (kind == OpKind::Store) {
    iov[n++] = {const_cast<std::byte*>(payload), static_cast<size_t>(b)};
    size_t pad = (8 - b % 8) % 8;
    if (pad) iov[n++] = {const_cast<char*>(kPad), pad};
  }
  if (!write_all(file_.get(), iov, n)) {
    stream_failed_ = true;
    log_error(
        "recorder: cannot write {}: {}; streaming stopped, the in-memory "
        "log goes on",
        file_path_, std::strerror(errno));
  }
}

void Recorder::store_locked(uint64_t off, const std::byte* landed,
                            uint64_t len) {
  log_.add_store(off, landed, len);
  write_record_locked(OpKind::Store, off, len, landed);
}

void Recorder::flush_locked(uint64_t off, uint64_t len) {
  log_.add_flush(off, len);
  write_record_locked(OpKind::Flush, off, len, nullptr);
}

void Recorder::fence_locked() {
  log_.add_fence();
  write_record_locked(OpKind::Fence, 0, 0, nullptr);
}

void Recorder::mark(uint64_t tag) {
  std::lock_guard g(mu_);
  log_.add_mark(tag);
  write_record_locked(OpKind::Mark, tag, 0, nullptr);
}

StoreLog Recorder::log() const {
  std::lock_guard g(mu_);
  return log_;
}

std::vector<std::byte> Recorder::initial_image() const {
  std::lock_guard g(mu_);
  return initial_;
}

size_t Recorder::entry_count() const {
  std::lock_guard g(mu_);
  return log_.size();
}

void Recorder::restart() {
  std::lock_guard g(mu_);
  if (base_ == nullptr) return;
  attach_locked(base_, size_);
}

}  // namespace zest::pmem
