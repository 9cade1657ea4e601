#include "bench/report.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace zest::bench {
namespace {

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\n");
  size_t e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string run_for_line(const char* cmd) {
  std::string out;
  if (FILE* p = popen(cmd, "r")) {
    char buf[256];
    if (fgets(buf, sizeof buf, p)) out = buf;
    pclose(p);
  }
  return trim(out);
}

// A table cell: '|' would end the cell.
std::string md_cell(std::string_view s) {
  std::string o;
  for (char ch : s) {
    if (ch == '|') o += '\\';
    o += ch;
  }
  return o;
}

std::string fmt_us(double us) {
  if (us < 10) return fmt::format("{:.2f}", us);
  if (us < 1000) return fmt::format("{:.1f}", us);
  return fmt::format("{:.0f}", us);
}

// Index of a target id in the report, or -1.
int find_target(const Report& r, const char* id) {
  for (size_t i = 0; i < r.targets.size(); ++i) {
    if (r.targets[i].id == id) return int(i);
  }
  return -1;
}

// target median / base median, when both were measured.
std::string ratio(const Row& row, int t, int base) {
  if (base < 0) return "–";
  const Measurement& a = row.per_target[size_t(t)];
  const Measurement& b = row.per_target[size_t(base)];
  if (!a.ok || !b.ok || b.stats.median_us <= 0) return "–";
  double x = a.stats.median_us / b.stats.median_us;
  return x < 10 ? fmt::format("{:.2f}×", x) : fmt::format("{:.1f}×", x);
}

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        o += "\\\"";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "\\n";
        break;
      case '\t':
        o += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          o += fmt::format("\\u{:04x}", c);
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

std::string json_ratio(const Row& row, int t, int base) {
  if (base < 0) return "null";
  const Measurement& a = row.per_target[size_t(t)];
  const Measurement& b = row.per_target[size_t(base)];
  if (!a.ok || !b.ok || b.stats.median_us <= 0) return "null";
  return fmt::format("{:.4f}", a.stats.median_us / b.stats.median_us);
}

}  // namespace

MachineInfo machine_info() {
  MachineInfo m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      m.cpu_model = trim(line.substr(line.find(':') + 1));
      break;
    }
  }
  m.cores = int(sysconf(_SC_NPROCESSORS_ONLN));
  utsname u;
  if (uname(&u) == 0) m.kernel = fmt::format("{} {}", u.sysname, u.release);
  m.libfuse_version = run_for_line("pkg-config --modversion fuse3 2>/dev/null");
  return m;
}

std::string shell_quote(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_not_of(
                                   "abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                   "-_./=:,+@%") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

void print_markdown(std::FILE* out, const Report& r) {
  const auto& c = r.config;
  fmt::print(out, "## zest-bench\n\n");
  fmt::print(out, "- machine: {}, {} cores, {}\n", r.machine.cpu_model,
             r.machine.cores, r.machine.kernel);
  fmt::print(out, "- command: `{}`\n", r.command);
  fmt::print(out,
             "- iterations: {} (+{} warm-up) per small operation, {} (+{} "
             "warm-up) per 1 MiB operation; data file {} MiB\n",
             c.iterations, c.warmup, c.big_iterations, c.big_warmup,
             c.file_size >> 20);
  fmt::print(out,
             "- benchmark thread: {}; timer overhead {:.0f} ns per "
             "sample (included)\n",
             r.cpu >= 0 ? fmt::format("pinned to CPU {}", r.cpu)
                        : std::string("not pinned"),
             r.timer_overhead_ns);
  fmt::print(out, "- libfuse: {}\n",
             r.machine.libfuse_version.empty() ? "unknown"
                                               : r.machine.libfuse_version);
  fmt::print(out, "- targets:\n");
  for (const auto& t : r.targets) {
    if (t.unavailable.empty()) {
      fmt::print(out, "  - {}: {}\n", t.id, t.description);
    } else {
      fmt::print(out, "  - {}: n/a — {}\n", t.id, t.unavailable);
    }
  }
  fmt::print(out, "\n");

  const int tmpfs = find_target(r, "tmpfs");
  const int libfuse = find_target(r, "libfuse");
  fmt::print(out,
             "| operation | target | median µs | p99 µs | MiB/s | vs tmpfs | "
             "vs libfuse |\n");
  fmt::print(out, "|---|---|---:|---:|---:|---:|---:|\n");
  // Why a cell is n/a, numbered; a reason shared by cells (a target that
  // could not be mounted) is listed once.
  std::vector<std::string> notes;
  auto note = [&](const std::string& text) {
    for (size_t i = 0; i < notes.size(); ++i) {
      if (notes[i] == text) return i + 1;
    }
    notes.push_back(text);
    return notes.size();
  };
  for (const auto& row : r.rows) {
    for (size_t t = 0; t < r.targets.size(); ++t) {
      const Measurement& m = row.per_target[t];
      if (!m.ok) {
        size_t n = r.targets[t].unavailable.empty()
                       ? note(fmt::format("{} on {}: {}", row.op.title,
                                          r.targets[t].id, m.reason))
                       : note(fmt::format("{}: {}", r.targets[t].id,
                                          r.targets[t].unavailable));
        fmt::print(out, "| {} | {} | n/a [{}] | n/a | | | |\n",
                   md_cell(row.op.title), r.targets[t].id, n);
        continue;
      }
      fmt::print(out, "| {} | {} | {} | {} | {} | {} | {} |\n",
                 md_cell(row.op.title), r.targets[t].id,
                 fmt_us(m.stats.median_us), fmt_us(m.stats.p99_us),
                 row.op.bytes ? fmt::format("{:.0f}", m.mib_per_s) : "",
                 ratio(row, int(t), tmpfs), ratio(row, int(t), libfuse));
    }
  }
  if (!notes.empty()) {
    fmt::print(out, "\n");
    for (size_t i = 0; i < notes.size(); ++i) {
      fmt::print(out, "[{}] {}  \n", i + 1, notes[i]);
    }
  }
  std::fflush(out);
}

Outcome<void> write_json(const std::string& path, const Report& r) {
  std::ostringstream o;
  const auto& c = r.config;
  o << "{\n  \"machine\": {\"cpu_model\": " << json_string(r.machine.cpu_model)
    << ", \"cores\": " << r.machine.cores
    << ", \"kernel\": " << json_string(r.machine.kernel)
    << ", \"libfuse\": " << json_string(r.machine.libfuse_version) << "},\n";
  o << "  \"command\": " << json_string(r.command) << ",\n";
  o << fmt::format(
      "  \"config\": {{\"iterations\": {}, \"warmup\": {}, "
      "\"big_iterations\": {}, \"big_warmup\": {}, \"file_size\": {}, "
      "\"cpu\": {}, \"timer_overhead_ns\": {:.1f}}},\n",
      c.iterations, c.warmup, c.big_iterations, c.big_warmup, c.file_size,
      r.cpu, r.timer_overhead_ns);
  o << "  \"targets\": [";
  for (size_t i = 0; i < r.targets.size(); ++i) {
    const auto& t = r.targets[i];
    o << (i ? ",\n    " : "\n    ") << "{\"id\": " << json_string(t.id)
      << ", \"description\": " << json_string(t.description)
      << ", \"available\": " << (t.unavailable.empty() ? "true" : "false")
      << ", \"reason\": " << json_string(t.unavailable) << "}";
  }
  o << "\n  ],\n  \"results\": [";
  const int tmpfs = find_target(r, "tmpfs");
  const int libfuse = find_target(r, "libfuse");
  bool first = true;
  for (const auto& row : r.rows) {
    for (size_t t = 0; t < r.targets.size(); ++t) {
      const Measurement& m = row.per_target[t];
      o << (first ? "\n    " : ",\n    ");
      first = false;
      o << "{\"op\": " << json_string(row.op.id)
        << ", \"title\": " << json_string(row.op.title)
        << ", \"target\": " << json_string(r.targets[t].id)
        << ", \"ok\": " << (m.ok ? "true" : "false");
      if (m.ok) {
        o << fmt::format(
            ", \"n\": {}, \"median_us\": {:.3f}, \"p99_us\": {:.3f}, "
            "\"mean_us\": {:.3f}, \"min_us\": {:.3f}, \"max_us\": {:.3f}, "
            "\"mib_per_s\": {:.1f}, \"ratio_tmpfs\": {}, \"ratio_libfuse\": {}",
            m.stats.n, m.stats.median_us, m.stats.p99_us, m.stats.mean_us,
            m.stats.min_us, m.stats.max_us, m.mib_per_s,
            json_ratio(row, int(t), tmpfs), json_ratio(row, int(t), libfuse));
      } else {
        std::string reason = r.targets[t].unavailable.empty()
                                 ? m.reason
                                 : r.targets[t].unavailable;
        o << ", \"reason\": " << json_string(reason);
      }
      o << "}";
    }
  }
  o << "\n  ]\n}\n";
  std::ofstream f(path);
  if (!f) return sys_failure("open", path);
  f << o.str();
  f.close();
  if (!f) return sys_failure("write", path);
  return {};
}

}  // namespace zest::bench
