#include "layout/state_table.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <string>
#include <utility>

namespace zest::layout {

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == sizeof(uint64_t));

Result<StateTable> StateTable::create(size_t slots) {
  if (slots == 0 || slots > (1u << 20)) return Errno(EINVAL);
  StateTable t;
  t.fd_.reset(::memfd_create("zest-lease-table", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!t.fd_) return last_errno();
  const size_t bytes = slots * sizeof(uint64_t);
  if (::ftruncate(t.fd_.get(), static_cast<off_t>(bytes)) != 0) return last_errno();
  // The client must never be able to shrink it under the server's mapping.
  if (::fcntl(t.fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return last_errno();
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, t.fd_.get(), 0);
  if (p == MAP_FAILED) return last_errno();
  t.words_ = static_cast<std::atomic<uint64_t>*>(p);
  t.slots_ = slots;
  return t;
}

StateTable::StateTable(StateTable&& o) noexcept
    : fd_(std::move(o.fd_)),
      words_(std::exchange(o.words_, nullptr)),
      slots_(std::exchange(o.slots_, 0)) {}

StateTable& StateTable::operator=(StateTable&& o) noexcept {
  if (this != &o) {
    if (words_) ::munmap(words_, bytes());
    fd_ = std::move(o.fd_);
    words_ = std::exchange(o.words_, nullptr);
    slots_ = std::exchange(o.slots_, 0);
  }
  return *this;
}

StateTable::~StateTable() {
  if (words_) ::munmap(words_, bytes());
}

Result<UniqueFd> StateTable::reader_fd() const {
  const std::string path = "/proc/self/fd/" + std::to_string(fd_.get());
  UniqueFd r(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!r) return last_errno();
  return r;
}

}  // namespace zest::layout
