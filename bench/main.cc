// zest-bench: per-operation latency of tmpfs, libfuse's passthrough_ll and
// zest's file systems, and the cost of durability (fsync) against tmpfs,
// ext4 and pmfs, measured in one run in interleaved rounds and printed side
// by side with ratios. See docs/benchmarks.md.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench/mounts.h"
#include "bench/report.h"
#include "bench/rounds.h"
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

std::string read_loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return in ? a + " " + b + " " + c + " (1, 5, 15 min)" : "unknown";
}

// The rows of `--suite transport`: what a request costs on each transport,
// without file-system work (no-op) and with the smallest I/O, one call in
// flight and several.
constexpr const char* kTransportOps[] = {"noop", "randread4k", "randread4k-4t",
                                         "randwrite4k", "randwrite4k-4t"};

// One line per operation, for --help.
std::string ops_help() {
  std::string s = "Operations (--ops):\n";
  for (const auto* list : {&latency_ops(), &persistence_ops()}) {
    for (const auto& o : *list) {
      s += fmt::format("  {:<15} {}{}\n", o.id, o.title,
                       list == &persistence_ops() ? " (persistence)" : "");
    }
  }
  return s;
}

// Parses an --ops list against the suite's operations: table order,
// whatever order they were given in.
std::vector<OpInfo> select_ops(const std::vector<OpInfo>& all,
                               const std::vector<std::string>& wanted) {
  std::vector<OpInfo> out;
  for (const auto& o : all) {
    for (const auto& w : wanted) {
      if (w == o.id) out.push_back(o);
    }
  }
  return out;
}

int run(int argc, char** argv) {
  CLI::App app{
      "zest-bench: per-operation latency (median, p99) of tmpfs, libfuse 3's "
      "passthrough examples and zest's file systems over both transports "
      "and through libzest-direct, "
      "4 KiB IOPS with 1 and 4 threads, the round trip of a no-op request, "
      "and the cost of durable writes and creates on tmpfs, ext4, zest memfs "
      "and pmfs, with ratios. Run as root."};
  std::string suite = "all";
  std::string targets_arg =
      "tmpfs,libfuse,libfuse-hp,zest,zest-1t,zest-spin,zest-uring,pmfs,"
      "pmfs-uring,mirrorfs,mirrorfs-uring";
  std::string ptargets_arg = "tmpfs,ext4,zest,pmfs";
  std::string ops_arg;
  WorkloadConfig cfg;
  uint64_t file_mib = cfg.file_size >> 20;
  SuiteOptions sopts;
  std::string json_path;
  std::string workdir = "/tmp";
  TargetOptions topts;
  topts.libfuse_source =
      "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c";
  topts.libfuse_hp_source =
      "/usr/share/doc/libfuse3-dev/examples/passthrough_hp.cc";
  topts.zest_binary = ZEST_BENCH_ZEST_BINARY;
  int mount_timeout_ms = 10000;

  std::string op_ids;
  for (const auto* list : {&latency_ops(), &persistence_ops()}) {
    for (const auto& o : *list)
      op_ids += (op_ids.empty() ? "" : ",") + std::string(o.id);
  }

  app.add_option("--suite", suite,
                 "latency (the first table), persistence (the second), all, "
                 "or transport: the latency table's no-op and 4 KiB random "
                 "read/write rows only (1 and 4 threads), for comparing "
                 "transports")
      ->capture_default_str()
      ->check(CLI::IsMember({"latency", "persistence", "all", "transport"}));
  app.add_option("--targets", targets_arg,
                 std::string("comma-separated targets of the latency table, "
                             "in this order (known: ") +
                     known_targets() + ")")
      ->capture_default_str();
  app.add_option("--persistence-targets", ptargets_arg,
                 "comma-separated targets of the persistence table")
      ->capture_default_str();
  app.add_option("--ops", ops_arg,
                 "comma-separated operations of either suite (default: "
                 "all); a suite none of whose operations is named is "
                 "skipped: " +
                     op_ids);
  app.add_option("-n,--iterations", cfg.iterations,
                 "measured calls per small operation (4 KiB, statx, create, "
                 "unlink) and target")
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
  app.add_option("--sync-iterations", cfg.sync_iterations,
                 "measured calls per persistence operation")
      ->capture_default_str()
      ->check(CLI::Range(size_t(1), size_t(10000000)));
  app.add_option("--sync-warmup", cfg.sync_warmup,
                 "unmeasured persistence calls before them")
      ->capture_default_str();
  app.add_option("--rounds", cfg.rounds,
                 "interleaved rounds per operation: each round measures a "
                 "batch on every target in turn")
      ->capture_default_str()
      ->check(CLI::Range(size_t(1), size_t(100000)));
  app.add_option("--file-size-mib", file_mib,
                 "size of the data file read and written, MiB")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 20));
  app.add_option("--cpu", sopts.cpu,
                 "pin the benchmark thread to this CPU while measuring "
                 "(servers are not pinned)");
  app.add_option("--json", json_path, "also write the results as JSON here");
  app.add_option("--workdir", workdir,
                 "where the scratch directory (mountpoints, logs, the ext4 "
                 "image) is made; must be on a real disk for ext4")
      ->capture_default_str();
  app.add_option("--zest", topts.zest_binary, "the zest command")
      ->capture_default_str();
  app.add_option("--zest-threads", topts.zest_threads,
                 "zest mount --threads N for zest and zest-spin (0: zest's "
                 "default)")
      ->capture_default_str();
  app.add_option("--zest-spin-us", topts.zest_spin_us,
                 "zest mount --spin-us N for zest-spin")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000000u));
  app.add_option("--zest-opts", topts.zest_opts,
                 "zest mount -o OPTIONS for the memfs targets");
  app.add_option("--pmfs-size", topts.pmfs_pool_size,
                 "zest mkfs --size for the pmfs pool")
      ->capture_default_str();
  app.add_option("--libfuse-source", topts.libfuse_source,
                 "passthrough_ll.c to compile")
      ->capture_default_str();
  app.add_option("--libfuse-opts", topts.libfuse_opts,
                 "extra passthrough_ll -o options (cache=never,xattr is always "
                 "set)");
  app.add_option("--libfuse-hp-source", topts.libfuse_hp_source,
                 "passthrough_hp.cc to compile for libfuse-hp (n/a when it "
                 "does not exist)")
      ->capture_default_str();
  app.add_option("--cc", topts.cc, "C compiler for passthrough_ll")
      ->capture_default_str();
  app.add_option("--cxx", topts.cxx, "C++ compiler for passthrough_hp")
      ->capture_default_str();
  app.add_option("--mirrorfs-opts", topts.mirrorfs_opts,
                 "zest mount -o OPTIONS for the mirrorfs targets (default: "
                 "none, i.e. passthrough; nopassthrough, cached)");
  app.add_option("--mount-timeout-ms", mount_timeout_ms,
                 "how long to wait for a mount to appear")
      ->capture_default_str();
  app.add_option("--stall-timeout-s", sopts.stall_timeout_s,
                 "abort a FUSE target's connection when one call blocks "
                 "this long (a hung server)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.footer(targets_help() + "\n" + ops_help());
  CLI11_PARSE(app, argc, argv);

  cfg.file_size = file_mib << 20;
  topts.mount_timeout = std::chrono::milliseconds(mount_timeout_ms);

  std::vector<std::string> target_ids = split_list(targets_arg);
  std::vector<std::string> ptarget_ids = split_list(ptargets_arg);
  for (const auto* ids : {&target_ids, &ptarget_ids}) {
    for (const auto& id : *ids) {
      if (!known_target(id)) {
        fmt::print(stderr, "zest-bench: unknown target '{}' (known: {})\n", id,
                   known_targets());
        return 2;
      }
    }
  }
  std::vector<OpInfo> lops = latency_ops(), pops = persistence_ops();
  if (!ops_arg.empty()) {
    auto wanted = split_list(ops_arg);
    for (const auto& w : wanted) {
      bool found = false;
      for (const auto* list : {&latency_ops(), &persistence_ops()}) {
        for (const auto& o : *list) found |= w == o.id;
      }
      if (!found) {
        fmt::print(stderr, "zest-bench: unknown operation '{}' (known: {})\n",
                   w, op_ids);
        return 2;
      }
    }
    lops = select_ops(latency_ops(), wanted);
    pops = select_ops(persistence_ops(), wanted);
  }
  if (suite == "persistence") lops.clear();
  if (suite == "latency" || suite == "transport") pops.clear();
  if (suite == "transport") {
    std::erase_if(lops, [](const OpInfo& o) {
      return std::find_if(std::begin(kTransportOps), std::end(kTransportOps),
                          [&](const char* id) {
                            return std::string_view(id) == o.id;
                          }) == std::end(kTransportOps);
    });
  }
  if (geteuid() != 0) {
    fmt::print(stderr,
               "zest-bench: warning: not root; tmpfs falls back to "
               "/dev/shm, FUSE mounts need fusermount3 and ext4 is n/a\n");
  }
  install_signal_handlers();
  raise_fd_limit();

  Report report;
  report.machine = machine_info();
  report.command = shell_quote(std::vector<std::string>(argv, argv + argc));
  report.load = read_loadavg();
  report.config = cfg;
  report.cpu = sopts.cpu;
  report.timer_overhead_ns = timer_overhead_ns();
  // The ceiling of the 1 MiB rows of targets that copy (direct), in the
  // same run.
  report.copy_baselines =
      measure_memcpy(cfg.big_warmup, cfg.big_iterations, cfg.file_size);

  auto scratch = ScratchDir::create(workdir);
  if (!scratch) {
    fmt::print(stderr, "zest-bench: {}\n", scratch.error());
    return 1;
  }
  StallWatchdog watchdog{std::chrono::seconds(sopts.stall_timeout_s)};

  // One suite at a time: mount all its targets, measure in interleaved
  // rounds, unmount them all (the subjects' guards) and remove the suite's
  // own scratch directory before the next suite.
  auto run_suite = [&](const std::vector<std::string>& ids,
                       const std::vector<OpInfo>& ops, Table tb) {
    if (ops.empty() || ids.empty() || g_interrupted) return true;
    auto dir = ScratchDir::create(scratch->path());
    if (!dir) {
      fmt::print(stderr, "zest-bench: {}\n", dir.error());
      return false;
    }
    std::vector<Subject> subjects =
        set_up(ids, topts, *dir, cfg, watchdog, sopts);
    tb.rows = measure(subjects, ops, cfg, watchdog, sopts);
    std::vector<TargetSummary> labelled = summaries(subjects);
    for (size_t i = 0; i < labelled.size() && i < tb.targets.size(); ++i) {
      labelled[i].label = tb.targets[i].label;
    }
    tb.targets = std::move(labelled);
    report.tables.push_back(std::move(tb));
    return true;
  };
  auto labels = [](const std::vector<std::string>& ids, bool persistence) {
    std::vector<TargetSummary> out;
    for (const auto& id : ids) {
      TargetSummary t;
      t.id = t.label = id;
      // fsync is a no-op on both: nothing there survives a power cut.
      if (persistence && id == "zest") t.label = "memfs (not durable)";
      if (persistence && id == "tmpfs") t.label = "tmpfs (not durable)";
      out.push_back(std::move(t));
    }
    return out;
  };
  Table latency;
  latency.suite = "latency";
  latency.title = suite == "transport" ? "Latency (transport rows)" : "Latency";
  latency.targets = labels(target_ids, false);
  latency.bases = {
      {"tmpfs", "vs tmpfs"}, {"libfuse", "vs libfuse"}, {"zest", "vs zest"}};
  Table persistence;
  persistence.suite = "persistence";
  persistence.title = "Persistence";
  persistence.targets = labels(ptarget_ids, true);
  persistence.bases = {{"zest", "vs memfs"}, {"ext4", "vs ext4"}};
  persistence.show_mib = false;
  if (!run_suite(target_ids, lops, std::move(latency)) ||
      !run_suite(ptarget_ids, pops, std::move(persistence))) {
    return 1;
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
