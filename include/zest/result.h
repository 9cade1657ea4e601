// Result<T>: a value or a positive errno, the error type of every layer below
// the tools. std::expected would do, but clang 14 (used for the fuzzer
// builds) cannot compile libstdc++'s <expected>, so zest keeps this small one.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace zest {

// A positive errno value. Wrapped so that Result<int> is unambiguous.
struct Errno {
  int value = 0;
  constexpr explicit Errno(int v) : value(v) {}
  std::string message() const { return std::strerror(value); }
  friend constexpr bool operator==(Errno a, Errno b) { return a.value == b.value; }
};

// The errno of the last failed system call, as an Errno.
inline Errno last_errno() { return Errno(errno); }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Errno e) : v_(std::in_place_index<1>, e) {}                  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Errno error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Errno> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Errno e) : err_(e.value) {}  // NOLINT
  bool ok() const { return err_ == 0; }
  explicit operator bool() const { return ok(); }
  Errno error() const { return Errno(err_); }

 private:
  int err_ = 0;
};

using Status = Result<void>;

}  // namespace zest
