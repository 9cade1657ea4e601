// ChildProcess: a program the driver started (a FUSE server, the compiler)
// and therefore owns by pid. Its stdout and stderr go to a log file, it runs
// in its own process group so a ^C at the terminal reaches only the driver
// (which then unmounts in order), and the destructor never leaves it behind:
// SIGTERM, then SIGKILL, and always waitpid.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "bench/outcome.h"

namespace zest::bench {

class ChildProcess {
 public:
  // Starts argv[0] (a path, not searched in PATH) with its output appended to
  // log_path.
  static Outcome<ChildProcess> spawn(const std::vector<std::string>& argv,
                                     const std::string& log_path);

  ChildProcess() = default;
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { stop(std::chrono::seconds(2)); }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // If the child has exited, reaps it and returns a description of how
  // ("exited with status 1", "killed by signal 11"); otherwise nullopt.
  std::optional<std::string> poll_exit();

  // Waits up to `grace` for it to exit by itself, then SIGTERM, then SIGKILL.
  // Returns how it ended (empty if there was no child).
  std::string stop(std::chrono::milliseconds grace);

  // Runs to completion (for short commands such as the compiler); fails with
  // how it ended unless it exited with status 0.
  Outcome<void> wait();

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

// The last `max_lines` lines of a log file, for error messages.
std::string log_tail(const std::string& path, int max_lines = 5);

}  // namespace zest::bench
