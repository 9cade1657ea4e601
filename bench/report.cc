#include "bench/report.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
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

// Index of a target id in the table, or -1.
int find_target(const Table& tb, const std::string& id) {
  for (size_t i = 0; i < tb.targets.size(); ++i) {
    if (tb.targets[i].id == id) return int(i);
  }
  return -1;
}

// The ratio of this cell's median to the base target's median of the row
// the cell's operation compares with (OpInfo::ratio_op), when both exist.
std::optional<double> ratio_of(const Table& tb, const Row& row, size_t t,
                               const RatioBase& base) {
  const int b = find_target(tb, base.id);
  if (b < 0) return std::nullopt;
  const Row* base_row = nullptr;
  for (const auto& other : tb.rows) {
    if (other.op.op == row.op.ratio_op) base_row = &other;
  }
  if (base_row == nullptr) return std::nullopt;
  const Measurement& x = row.per_target[t];
  const Measurement& y = base_row->per_target[size_t(b)];
  if (!x.ok || !y.ok || y.stats.median_us <= 0) return std::nullopt;
  return x.stats.median_us / y.stats.median_us;
}

// A ratio for a table cell: three significant digits or so.
std::string fmt_ratio(std::optional<double> x) {
  if (!x) return "–";
  if (*x >= 10) return fmt::format("{:.1f}×", *x);
  if (*x >= 0.1) return fmt::format("{:.2f}×", *x);
  // Two significant digits: 0.087×, 0.0039×.
  int decimals = std::clamp(1 - int(std::floor(std::log10(*x))), 2, 9);
  return fmt::format("{:.{}f}×", *x, decimals);
}

std::string ratio(const Table& tb, const Row& row, size_t t,
                  const RatioBase& base) {
  return fmt_ratio(ratio_of(tb, row, t, base));
}

const Row* find_row(const Table& tb, Op op) {
  for (const auto& r : tb.rows) {
    if (r.op.op == op) return &r;
  }
  return nullptr;
}

// Calls per second of target t in `row`, when measured.
std::optional<double> ops_of(const Row* row, size_t t) {
  if (row == nullptr) return std::nullopt;
  const Measurement& m = row->per_target[t];
  if (!m.ok || m.ops_per_s <= 0) return std::nullopt;
  return m.ops_per_s;
}

// Multi-threaded ops/s over the same call's one-thread ops/s.
std::optional<double> scaling_of(const Table& tb, const Row& row, size_t t) {
  auto many = ops_of(&row, t);
  auto one = ops_of(find_row(tb, row.op.single_op), t);
  if (!many || !one) return std::nullopt;
  return *many / *one;
}

std::string fmt_ops(std::optional<double> x) {
  return x ? fmt::format("{:.0f}", *x) : std::string("n/a");
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

namespace {

// Calls per second of the multi-threaded rows next to their one-thread
// rows, the scaling between them, and ratios of the multi-threaded calls
// per second to each base target's (here higher is better).
void print_throughput(std::FILE* out, const Table& tb) {
  std::vector<const Row*> multi;
  for (const auto& row : tb.rows) {
    if (row.op.threads > 1) multi.push_back(&row);
  }
  if (multi.empty()) return;
  const unsigned k = multi.front()->op.threads;
  fmt::print(out,
             "Throughput, from the same measurements: IOPS (calls per "
             "second, higher is better; one thread: 1 / mean latency; {0} "
             "threads: calls / wall time). The \"vs\" columns divide this "
             "target's IOPS with {0} threads by the base target's.\n\n",
             k);
  fmt::print(out,
             "| operation | target | IOPS, 1 thread | IOPS, {0} threads | "
             "{0} threads / 1 thread |",
             k);
  for (const auto& b : tb.bases) fmt::print(out, " {} |", b.header);
  fmt::print(out, "\n|---|---|---:|---:|---:|");
  for (size_t i = 0; i < tb.bases.size(); ++i) fmt::print(out, "---:|");
  fmt::print(out, "\n");
  for (const Row* row : multi) {
    const Row* one = find_row(tb, row->op.single_op);
    const char* title = one ? one->op.title : row->op.title;
    for (size_t t = 0; t < tb.targets.size(); ++t) {
      if (row->per_target[t].skipped) continue;
      fmt::print(out, "| {} | {} | {} | {} | {} |", md_cell(title),
                 md_cell(tb.targets[t].label), fmt_ops(ops_of(one, t)),
                 fmt_ops(ops_of(row, t)), fmt_ratio(scaling_of(tb, *row, t)));
      for (const auto& b : tb.bases) {
        const int bi = find_target(tb, b.id);
        std::optional<double> x;
        auto mine = ops_of(row, t);
        auto theirs = bi < 0 ? std::nullopt : ops_of(row, size_t(bi));
        if (mine && theirs) x = *mine / *theirs;
        fmt::print(out, " {} |", fmt_ratio(x));
      }
      fmt::print(out, "\n");
    }
  }
  fmt::print(out, "\n");
}

void print_table(std::FILE* out, const Table& tb) {
  fmt::print(out, "### {}\n\n", tb.title);
  fmt::print(out, "Targets:\n\n");
  for (const auto& t : tb.targets) {
    if (t.unavailable.empty()) {
      fmt::print(out, "- {}: {}\n", t.label, t.description);
    } else {
      fmt::print(out, "- {}: n/a — {}\n", t.label, t.unavailable);
    }
  }
  fmt::print(out, "\n| operation | target | median µs | p99 µs |{}",
             tb.show_mib ? " MiB/s |" : "");
  for (const auto& b : tb.bases) fmt::print(out, " {} |", b.header);
  fmt::print(out, "\n|---|---|---:|---:|{}", tb.show_mib ? "---:|" : "");
  for (size_t i = 0; i < tb.bases.size(); ++i) fmt::print(out, "---:|");
  fmt::print(out, "\n");
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
  const std::string empty_ratios(tb.bases.size() * 2, ' ');
  for (const auto& row : tb.rows) {
    for (size_t t = 0; t < tb.targets.size(); ++t) {
      const Measurement& m = row.per_target[t];
      const TargetSummary& target = tb.targets[t];
      if (m.skipped) continue;
      if (!m.ok) {
        size_t n =
            target.unavailable.empty()
                ? note(fmt::format("{} on {}: {}", row.op.title, target.label,
                                   m.reason))
                : note(fmt::format("{}: {}", target.label, target.unavailable));
        fmt::print(out, "| {} | {} | n/a [{}] | n/a |{}", md_cell(row.op.title),
                   md_cell(target.label), n, tb.show_mib ? " |" : "");
        for (size_t i = 0; i < tb.bases.size(); ++i) fmt::print(out, " |");
        fmt::print(out, "\n");
        continue;
      }
      fmt::print(out, "| {} | {} | {} | {} |", md_cell(row.op.title),
                 md_cell(target.label), fmt_us(m.stats.median_us),
                 fmt_us(m.stats.p99_us));
      if (tb.show_mib) {
        fmt::print(out, " {} |",
                   row.op.bytes ? fmt::format("{:.0f}", m.mib_per_s) : "");
      }
      for (const auto& b : tb.bases) {
        fmt::print(out, " {} |", ratio(tb, row, t, b));
      }
      fmt::print(out, "\n");
    }
  }
  if (!notes.empty()) {
    fmt::print(out, "\n");
    for (size_t i = 0; i < notes.size(); ++i) {
      fmt::print(out, "[{}] {}  \n", i + 1, notes[i]);
    }
  }
  fmt::print(out, "\n");
  bool any_note = false;
  for (const auto& row : tb.rows) {
    if (row.op.note == nullptr) continue;
    if (!any_note) fmt::print(out, "Rows:\n\n");
    any_note = true;
    fmt::print(out, "- {}\n", row.op.note);
  }
  if (any_note) fmt::print(out, "\n");
  print_throughput(out, tb);
}

}  // namespace

void print_markdown(std::FILE* out, const Report& r) {
  const auto& c = r.config;
  fmt::print(out, "## zest-bench\n\n");
  fmt::print(out, "- machine: {}, {} cores, {}\n", r.machine.cpu_model,
             r.machine.cores, r.machine.kernel);
  fmt::print(out, "- load average when the run started: {}\n", r.load);
  fmt::print(out, "- command: `{}`\n", r.command);
  fmt::print(out,
             "- iterations per target: {} (+{} warm-up) per small operation, "
             "{} (+{} warm-up) per 1 MiB operation, {} (+{} warm-up) per "
             "persistence operation; data file {} MiB\n",
             c.iterations, c.warmup, c.big_iterations, c.big_warmup,
             c.sync_iterations, c.sync_warmup, c.file_size >> 20);
  fmt::print(out,
             "- method: interleaved, {} rounds per operation; each round "
             "measures one batch on every target in turn, starting with a "
             "different target each round (warm-up calls spread over the "
             "batches)\n",
             c.rounds);
  fmt::print(out,
             "- benchmark thread: {}; timer overhead {:.0f} ns per "
             "sample (included)\n",
             r.cpu >= 0 ? fmt::format("pinned to CPU {}", r.cpu)
                        : std::string("not pinned"),
             r.timer_overhead_ns);
  fmt::print(out,
             "- memcpy, timed like the rows (median, p99; MiB/s = 1 MiB / "
             "mean):\n");
  for (const CopyBaseline* b :
       {&r.copy_baselines.hot, &r.copy_baselines.walk}) {
    if (b->stats.n == 0) continue;
    fmt::print(out, "  - {}: {} µs, {} µs, {:.0f} MiB/s\n", b->what,
               fmt_us(b->stats.median_us), fmt_us(b->stats.p99_us),
               b->mib_per_s);
  }
  fmt::print(out, "- libfuse: {}\n\n",
             r.machine.libfuse_version.empty() ? "unknown"
                                               : r.machine.libfuse_version);
  for (const auto& tb : r.tables) print_table(out, tb);
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
  o << "  \"load\": " << json_string(r.load) << ",\n";
  o << fmt::format(
      "  \"config\": {{\"iterations\": {}, \"warmup\": {}, "
      "\"big_iterations\": {}, \"big_warmup\": {}, \"sync_iterations\": {}, "
      "\"sync_warmup\": {}, \"rounds\": {}, \"file_size\": {}, "
      "\"cpu\": {}, \"timer_overhead_ns\": {:.1f}}},\n",
      c.iterations, c.warmup, c.big_iterations, c.big_warmup, c.sync_iterations,
      c.sync_warmup, c.rounds, c.file_size, r.cpu, r.timer_overhead_ns);
  o << "  \"memcpy\": [";
  bool first_copy = true;
  for (const CopyBaseline* b :
       {&r.copy_baselines.hot, &r.copy_baselines.walk}) {
    if (b->stats.n == 0) continue;
    o << (first_copy ? "\n    " : ",\n    ")
      << "{\"what\": " << json_string(b->what)
      << fmt::format(
             ", \"n\": {}, \"median_us\": {:.3f}, \"p99_us\": {:.3f}, "
             "\"mean_us\": {:.3f}, \"mib_per_s\": {:.1f}}}",
             b->stats.n, b->stats.median_us, b->stats.p99_us, b->stats.mean_us,
             b->mib_per_s);
    first_copy = false;
  }
  o << "],\n";
  o << "  \"tables\": [";
  for (size_t ti = 0; ti < r.tables.size(); ++ti) {
    const Table& tb = r.tables[ti];
    o << (ti ? ",\n    " : "\n    ") << "{\"suite\": " << json_string(tb.suite)
      << ",\n     \"targets\": [";
    for (size_t i = 0; i < tb.targets.size(); ++i) {
      const auto& t = tb.targets[i];
      o << (i ? ",\n       " : "\n       ") << "{\"id\": " << json_string(t.id)
        << ", \"label\": " << json_string(t.label)
        << ", \"description\": " << json_string(t.description)
        << ", \"available\": " << (t.unavailable.empty() ? "true" : "false")
        << ", \"reason\": " << json_string(t.unavailable) << "}";
    }
    o << "],\n     \"results\": [";
    bool first = true;
    for (const auto& row : tb.rows) {
      for (size_t t = 0; t < tb.targets.size(); ++t) {
        const Measurement& m = row.per_target[t];
        if (m.skipped) continue;
        o << (first ? "\n       " : ",\n       ");
        first = false;
        o << "{\"op\": " << json_string(row.op.id)
          << ", \"title\": " << json_string(row.op.title)
          << ", \"target\": " << json_string(tb.targets[t].id)
          << ", \"ok\": " << (m.ok ? "true" : "false");
        if (m.ok) {
          o << fmt::format(
              ", \"threads\": {}, \"n\": {}, \"median_us\": {:.3f}, "
              "\"p99_us\": {:.3f}, \"mean_us\": {:.3f}, \"min_us\": {:.3f}, "
              "\"max_us\": {:.3f}, \"ops_per_s\": {:.1f}, "
              "\"mib_per_s\": {:.1f}",
              row.op.threads, m.stats.n, m.stats.median_us, m.stats.p99_us,
              m.stats.mean_us, m.stats.min_us, m.stats.max_us, m.ops_per_s,
              m.mib_per_s);
          if (row.op.threads > 1) {
            auto x = scaling_of(tb, row, t);
            o << ", \"scaling\": "
              << (x ? fmt::format("{:.4f}", *x) : std::string("null"));
          }
          for (const auto& b : tb.bases) {
            auto x = ratio_of(tb, row, t, b);
            o << ", \"ratio_" << b.id << "\": "
              << (x ? fmt::format("{:.4f}", *x) : std::string("null"));
          }
        } else {
          std::string reason = tb.targets[t].unavailable.empty()
                                   ? m.reason
                                   : tb.targets[t].unavailable;
          o << ", \"reason\": " << json_string(reason);
        }
        o << "}";
      }
    }
    o << "]}";
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
