#include "base/log.h"

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <string>

namespace zest {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::atomic<bool> g_syslog{false};
}

void log_to_syslog(const char* ident) {
  ::openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
  g_syslog = true;
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_line(LogLevel level, std::string_view text) {
  static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
  if (g_syslog.load(std::memory_order_relaxed)) {
    static constexpr int kPriority[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
    ::syslog(kPriority[static_cast<int>(level)], "%s: %.*s", kNames[static_cast<int>(level)],
             static_cast<int>(text.size()), text.data());
    return;
  }
  std::string line = fmt::format("zest: {}: {}\n", kNames[static_cast<int>(level)], text);
  // One write(2) per line so lines from several threads do not interleave.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace zest
