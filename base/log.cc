#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

namespace zest {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_line(LogLevel level, std::string_view text) {
  static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
  std::string line = fmt::format("zest: {}: {}\n", kNames[static_cast<int>(level)], text);
  // One write(2) per line so lines from several threads do not interleave.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace zest
