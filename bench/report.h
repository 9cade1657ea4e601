// Report: what the run measured, printed as a Markdown table for people and
// as JSON for machines. Ratios compare medians: a target's median divided by
// tmpfs's and by libfuse's median for the same operation.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "bench/outcome.h"
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
  std::string id, description, unavailable;
};

struct Row {
  OpInfo op;
  std::vector<Measurement> per_target;  // same order as Report::targets
};

struct Report {
  MachineInfo machine;
  std::string command;
  WorkloadConfig config;
  int cpu = -1;  // the benchmark thread's CPU, -1 when not pinned
  double timer_overhead_ns = 0;
  std::vector<TargetSummary> targets;
  std::vector<Row> rows;
};

// The header (machine, command, targets) and the table.
void print_markdown(std::FILE* out, const Report& r);
Outcome<void> write_json(const std::string& path, const Report& r);

// argv as one shell-quoted line.
std::string shell_quote(const std::vector<std::string>& argv);

}  // namespace zest::bench
