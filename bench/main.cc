// zest-bench: per-operation latency of tmpfs, libfuse's passthrough_ll and
// zest memfs, measured in one run and printed side by side with ratios.
// See docs/benchmarks.md.
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench/mounts.h"
#include "bench/report.h"
#include "bench/targets.h"
#include "bench/watchdog.h"
#include "bench/workload.h"

#ifndef ZEST_BENCH_ZEST_BINARY
#define ZEST_BENCH_ZEST_BINARY ""
#endif

namespace zest::bench {
namespace {

void on_signal(int) { g_interrupted = 1; }

void install_signal_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked wait should return
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
}

// Servers inherit the driver's open-file limit, and passthrough_ll holds an
// fd for every inode the kernel knows; give them the hard limit (Debian's
// soft default is 1024).
void raise_fd_limit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// Pins the calling thread to one CPU while alive; restores the old mask so
// that servers started later are not squeezed onto the same CPU.
class CpuPin {
 public:
  explicit CpuPin(int cpu) {
    if (cpu < 0) return;
    if (sched_getaffinity(0, sizeof old_, &old_) != 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      fmt::print(stderr, "zest-bench: sched_setaffinity(CPU {}): {}\n", cpu,
                 std::strerror(errno));
      return;
    }
    pinned_ = true;
  }
  ~CpuPin() {
    if (pinned_) sched_setaffinity(0, sizeof old_, &old_);
  }
  CpuPin(const CpuPin&) = delete;
  CpuPin& operator=(const CpuPin&) = delete;

 private:
  cpu_set_t old_;
  bool pinned_ = false;
};

int run(int argc, char** argv) {
  CLI::App app{
      "zest-bench: per-operation latency (median, p99) of tmpfs, libfuse 3's "
      "passthrough_ll and zest memfs, with ratios. Run as root."};
  std::string targets_arg = "tmpfs,libfuse,zest";
  std::string ops_arg;
  WorkloadConfig cfg;
  uint64_t file_mib = cfg.file_size >> 20;
  int cpu = -1;
  std::string json_path;
  std::string workdir = "/tmp";
  TargetOptions topts;
  topts.libfuse_source =
      "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c";
  topts.zest_binary = ZEST_BENCH_ZEST_BINARY;
  int mount_timeout_ms = 10000;
  int stall_timeout_s = 30;

  std::string op_ids;
  for (const auto& o : all_ops())
    op_ids += (op_ids.empty() ? "" : ",") + std::string(o.id);

  app.add_option("--targets", targets_arg,
                 "comma-separated targets, measured in this order: "
                 "tmpfs,libfuse,zest")
      ->capture_default_str();
  app.add_option("--ops", ops_arg,
                 "comma-separated operations (default: all): " + op_ids);
  app.add_option("-n,--iterations", cfg.iterations,
                 "measured calls per small operation (4 KiB, statx, create, "
                 "unlink)")
      ->capture_default_str()
      ->check(CLI::Range(size_t(1), size_t(10000000)));
  app.add_option("--warmup", cfg.warmup, "unmeasured calls before them")
      ->capture_default_str();
  app.add_option("--big-iterations", cfg.big_iterations,
                 "measured calls per 1 MiB operation")
      ->capture_default_str()
      ->check(CLI::Range(size_t(1), size_t(10000000)));
  app.add_option("--big-warmup", cfg.big_warmup,
                 "unmeasured 1 MiB calls before them")
      ->capture_default_str();
  app.add_option("--file-size-mib", file_mib,
                 "size of the data file read and written, MiB")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 20));
  app.add_option("--cpu", cpu,
                 "pin the benchmark thread to this CPU while measuring "
                 "(servers are not pinned)");
  app.add_option("--json", json_path, "also write the results as JSON here");
  app.add_option("--workdir", workdir,
                 "where the scratch directory (mountpoints, logs) is made")
      ->capture_default_str();
  app.add_option("--zest", topts.zest_binary, "the zest command")
      ->capture_default_str();
  app.add_option("--zest-threads", topts.zest_threads,
                 "zest mount --threads N (0: zest's default)")
      ->capture_default_str();
  app.add_option("--zest-opts", topts.zest_opts, "zest mount -o OPTIONS");
  app.add_option("--libfuse-source", topts.libfuse_source,
                 "passthrough_ll.c to compile")
      ->capture_default_str();
  app.add_option("--libfuse-opts", topts.libfuse_opts,
                 "extra passthrough_ll -o options (cache=never is always set)");
  app.add_option("--cc", topts.cc, "C compiler for passthrough_ll")
      ->capture_default_str();
  app.add_option("--mount-timeout-ms", mount_timeout_ms,
                 "how long to wait for a mount to appear")
      ->capture_default_str();
  app.add_option("--stall-timeout-s", stall_timeout_s,
                 "abort a FUSE target's connection when one call blocks "
                 "this long (a hung server)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  CLI11_PARSE(app, argc, argv);

  cfg.file_size = file_mib << 20;
  topts.mount_timeout = std::chrono::milliseconds(mount_timeout_ms);

  std::vector<std::string> target_ids = split_list(targets_arg);
  for (const auto& id : target_ids) {
    if (!known_target(id)) {
      fmt::print(stderr,
                 "zest-bench: unknown target '{}' (known: tmpfs, "
                 "libfuse, zest)\n",
                 id);
      return 2;
    }
  }
  std::vector<OpInfo> ops;
  if (ops_arg.empty()) {
    ops.assign(all_ops().begin(), all_ops().end());
  } else {
    // Table order, whatever order they were given in.
    auto wanted = split_list(ops_arg);
    for (const auto& w : wanted) {
      bool found = false;
      for (const auto& o : all_ops()) found |= w == o.id;
      if (!found) {
        fmt::print(stderr, "zest-bench: unknown operation '{}' (known: {})\n",
                   w, op_ids);
        return 2;
      }
    }
    for (const auto& o : all_ops()) {
      for (const auto& w : wanted) {
        if (w == o.id) ops.push_back(o);
      }
    }
  }
  if (geteuid() != 0) {
    fmt::print(stderr,
               "zest-bench: warning: not root; tmpfs falls back to "
               "/dev/shm and FUSE mounts need fusermount3\n");
  }
  install_signal_handlers();
  raise_fd_limit();

  Report report;
  report.machine = machine_info();
  report.command = shell_quote(std::vector<std::string>(argv, argv + argc));
  report.config = cfg;
  report.cpu = cpu;
  report.timer_overhead_ns = timer_overhead_ns();
  for (const auto& o : ops) report.rows.push_back(Row{o, {}});

  auto scratch = ScratchDir::create(workdir);
  if (!scratch) {
    fmt::print(stderr, "zest-bench: {}\n", scratch.error());
    return 1;
  }

  StallWatchdog watchdog{std::chrono::seconds(stall_timeout_s)};

  // One target at a time: mount, measure every operation, unmount. Only
  // one server runs while anything is being measured.
  for (const auto& id : target_ids) {
    if (g_interrupted) break;
    fmt::print(stderr, "zest-bench: {}: mounting\n", id);
    std::unique_ptr<Target> target = make_target(id, topts, *scratch);
    TargetSummary summary{id, target->description, target->unavailable};
    if (!target->unavailable.empty()) {
      fmt::print(stderr, "zest-bench: {}: n/a: {}\n", id, target->unavailable);
      for (auto& row : report.rows) {
        row.per_target.push_back(
            Measurement{false, target->unavailable, {}, 0});
      }
    } else {
      g_stalled = 0;
      std::optional<WatchScope> watch;
      if (target->fuse) watch.emplace(watchdog, target->root);
      auto workload = Workload::prepare(target->root, cfg);
      if (!workload) {
        summary.unavailable = "setup failed: " + workload.error();
        if (g_stalled) {
          summary.unavailable += fmt::format(
              " (the server made no progress for {} s and the watchdog "
              "aborted its connection)",
              stall_timeout_s);
        }
        if (target->fuse) {
          std::string tail = log_tail(target->fuse->log_path(), 3);
          if (!tail.empty()) summary.unavailable += "; server log: " + tail;
        }
        summary.description.clear();
        fmt::print(stderr, "zest-bench: {}: {}\n", id, summary.unavailable);
        for (auto& row : report.rows) {
          row.per_target.push_back(
              Measurement{false, summary.unavailable, {}, 0});
        }
      } else {
        CpuPin pin(cpu);
        for (auto& row : report.rows) {
          if (g_interrupted) break;
          fmt::print(stderr, "zest-bench: {}: {}\n", id, row.op.title);
          Measurement m = (*workload)->run(row.op.op);
          if (!m.ok) fmt::print(stderr, "zest-bench: {}: {}\n", id, m.reason);
          row.per_target.push_back(std::move(m));
        }
      }
      // The workload (its fds and files) goes before the target unmounts.
    }
    report.targets.push_back(std::move(summary));
  }
  if (g_interrupted) {
    fmt::print(stderr, "zest-bench: interrupted; everything was unmounted\n");
    return 130;
  }

  print_markdown(stdout, report);
  if (!json_path.empty()) {
    if (auto r = write_json(json_path, report); !r) {
      fmt::print(stderr, "zest-bench: {}\n", r.error());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace zest::bench

int main(int argc, char** argv) { return zest::bench::run(argc, argv); }
