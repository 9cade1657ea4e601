// Report: what the run measured, printed as Markdown tables for people and
// as JSON for machines. Ratios compare medians: a target's median divided by
// a base target's median for the same operation (tmpfs and libfuse in the
// latency table, memfs and ext4 in the persistence table).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "bench/outcome.h"
#include "bench/timing.h"
#include "bench/workload.h"

namespace zest::bench {

struct MachineInfo {
  std::string cpu_model;
  int cores = 0;
  std::string kernel;
  std::string libfuse_version;
};

MachineInfo machine_info();

struct TargetSummary {
  std::string id, label, description, unavailable;
};

struct Row {
  OpInfo op;
  std::vector<Measurement> per_target;  // same order as Report::targets
};

struct RatioBase {
  std::string id;      // a target id
  std::string header;  // "vs tmpfs"
};

// One suite's results.
struct Table {
  std::string suite;  // "latency", "persistence"
  std::string title;
  std::vector<TargetSummary> targets;
  std::vector<Row> rows;
  std::vector<RatioBase> bases;
  bool show_mib = true;  // a MiB/s column
};

struct Report {
  MachineInfo machine;
  std::string command;
  std::string load;  // /proc/loadavg when the run started
  WorkloadConfig config;
  int cpu = -1;  // the benchmark thread's CPU, -1 when not pinned
  double timer_overhead_ns = 0;
  CopyBaselines copy_baselines;  // what a 1 MiB memcpy costs here
  std::vector<Table> tables;
};

// The header (machine, command, method), then per table its targets and
// the table itself.
void print_markdown(std::FILE* out, const Report& r);
Outcome<void> write_json(const std::string& path, const Report& r);

// argv as one shell-quoted line.
std::string shell_quote(const std::vector<std::string>& argv);

}  // namespace zest::bench
