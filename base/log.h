// Minimal leveled logging to stderr (or syslog-like file when daemonized).
// Logging is for the unusual: nothing on the per-request path logs unless
// something went wrong.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace zest {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_line(LogLevel level, std::string_view text);
// From now on log lines go to syslog(3) (the journal where systemd runs)
// under `ident`, with the daemon facility: for a server that left its
// terminal. Lines on stderr stay where stderr points.
void log_to_syslog(const char* ident);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < log_level()) return;
  log_line(level, fmt::format(f, std::forward<Args>(args)...));
}

template <class... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::Debug, f, std::forward<Args>(a)...); }
template <class... Args>
void log_info(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::Info, f, std::forward<Args>(a)...); }
template <class... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::Warn, f, std::forward<Args>(a)...); }
template <class... Args>
void log_error(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::Error, f, std::forward<Args>(a)...); }

}  // namespace zest
