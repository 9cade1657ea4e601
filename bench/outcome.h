// Outcome<T>: a value or a message for the person running the benchmark.
// zest/result.h carries only an errno; the driver needs to say which path,
// which target and which step failed, so its errors are whole sentences.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace zest::bench {

struct Failure {
  std::string message;
  int err = 0;  // the errno behind it, when there is one
};

// "open(/tmp/x): No such file or directory (errno 2)" from the current errno.
inline Failure sys_failure(std::string_view call, std::string_view path,
                           int err = errno) {
  return Failure{
      fmt::format("{}({}): {} (errno {})", call, path, std::strerror(err), err),
      err};
}

template <class T>
class [[nodiscard]] Outcome {
 public:
  Outcome(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Outcome(Failure f) : v_(std::in_place_index<1>, std::move(f)) {}    // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }
  const std::string& error() const { return std::get<1>(v_).message; }
  Failure failure() const { return std::get<1>(v_); }

 private:
  std::variant<T, Failure> v_;
};

template <>
class [[nodiscard]] Outcome<void> {
 public:
  Outcome() = default;
  Outcome(Failure f) : failed_(true), failure_(std::move(f)) {}  // NOLINT
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const std::string& error() const { return failure_.message; }
  Failure failure() const { return failure_; }

 private:
  bool failed_ = false;
  Failure failure_;
};

}  // namespace zest::bench
