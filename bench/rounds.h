// Interleaved rounds: how every target of a suite is measured under the
// same machine state.
//
// On a small VM the latency of a FUSE round trip depends on what the other
// CPUs are doing (a wake-up of a halted vCPU costs more than the request),
// so targets measured one after another see different machines and their
// ratios mean little. Here every target is mounted and prepared first; then
// each operation runs in R rounds, and each round runs one batch on every
// target in turn, starting with a different target each round. A target's
// samples are the union of its batches.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bench/mounts.h"
#include "bench/report.h"
#include "bench/targets.h"
#include "bench/watchdog.h"
#include "bench/workload.h"

namespace zest::bench {

// One target of a suite, mounted and prepared (or why not).
struct Subject {
  std::unique_ptr<Target> target;
  std::unique_ptr<Workload> workload;  // destroyed before the target
  // Why it is not measured (any more): setup failed, or its connection was
  // aborted by the watchdog. Empty while it is measured.
  std::string unavailable;

  Subject() = default;
  Subject(Subject&&) = default;
  Subject& operator=(Subject&&) = default;
  ~Subject() { workload.reset(); }  // its files go before the mount
};

struct SuiteOptions {
  int cpu = -1;  // pin the measuring thread to this CPU; -1: do not
  int stall_timeout_s = 30;
};

// Mounts every target, then prepares its files (untimed), in `ids` order.
// Never fails: a target that cannot be set up is a Subject with
// `unavailable` set.
std::vector<Subject> set_up(const std::vector<std::string>& ids,
                            const TargetOptions& topts, ScratchDir& scratch,
                            const WorkloadConfig& cfg, StallWatchdog& watchdog,
                            const SuiteOptions& sopts);

// Measures `ops` on every subject in interleaved rounds; one Row per op,
// with one Measurement per subject.
std::vector<Row> measure(std::vector<Subject>& subjects,
                         const std::vector<OpInfo>& ops,
                         const WorkloadConfig& cfg, StallWatchdog& watchdog,
                         const SuiteOptions& sopts);

// What the report says about each subject.
std::vector<TargetSummary> summaries(const std::vector<Subject>& subjects);

}  // namespace zest::bench
