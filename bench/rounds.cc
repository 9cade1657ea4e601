#include "bench/rounds.h"

#include <sched.h>

#include <cstdio>
#include <optional>

namespace zest::bench {
namespace {

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

std::string stalled_note(const SuiteOptions& sopts) {
  return fmt::format(
      " (the server made no progress for {} s and the watchdog aborted its "
      "connection)",
      sopts.stall_timeout_s);
}

bool applies(const OpInfo& op, const Subject& s) {
  return !op.durable_only || s.target->durable_on_return;
}

}  // namespace

std::vector<Subject> set_up(const std::vector<std::string>& ids,
                            const TargetOptions& topts, ScratchDir& scratch,
                            const WorkloadConfig& cfg, StallWatchdog& watchdog,
                            const SuiteOptions& sopts) {
  std::vector<Subject> subjects;
  for (const auto& id : ids) {
    if (g_interrupted) break;
    fmt::print(stderr, "zest-bench: {}: mounting\n", id);
    Subject s;
    s.target = make_target(id, topts, scratch);
    if (!s.target->unavailable.empty()) {
      s.unavailable = s.target->unavailable;
    } else {
      g_stalled = 0;
      std::optional<WatchScope> watch;
      if (s.target->fuse) watch.emplace(watchdog, s.target->root);
      auto w = Workload::prepare(s.target->root, cfg, s.target->libzest_direct);
      if (w) {
        s.workload = std::move(w.value());
      } else {
        s.unavailable = "setup failed: " + w.error();
        if (g_stalled) s.unavailable += stalled_note(sopts);
        if (s.target->fuse) {
          std::string tail = log_tail(s.target->fuse->log_path(), 3);
          if (!tail.empty()) s.unavailable += "; server log: " + tail;
        }
      }
    }
    if (!s.unavailable.empty()) {
      fmt::print(stderr, "zest-bench: {}: n/a: {}\n", id, s.unavailable);
    }
    subjects.push_back(std::move(s));
  }
  return subjects;
}

std::vector<Row> measure(std::vector<Subject>& subjects,
                         const std::vector<OpInfo>& ops,
                         const WorkloadConfig& cfg, StallWatchdog& watchdog,
                         const SuiteOptions& sopts) {
  std::vector<Row> rows;
  for (const auto& o : ops) rows.push_back(Row{o, {}});
  for (auto& row : rows) row.per_target.resize(subjects.size());
  const size_t n = subjects.size();
  CpuPin pin(sopts.cpu);

  for (size_t r = 0; r < rows.size() && !g_interrupted; ++r) {
    const OpInfo& op = rows[r].op;
    const Op phase = phase_of(op.op);
    // create and unlink: one phase, run where the first of them is.
    bool done = false;
    for (size_t k = 0; k < r; ++k) done |= phase_of(rows[k].op.op) == phase;
    if (done) continue;

    // Who takes part; the others' cells say why not.
    std::vector<bool> takes_part(n, false), active(n, false);
    for (size_t t = 0; t < n; ++t) {
      Subject& s = subjects[t];
      if (!s.unavailable.empty() || !applies(op, s)) continue;
      takes_part[t] = true;
      g_stalled = 0;
      std::optional<WatchScope> watch;
      if (s.target->fuse) watch.emplace(watchdog, s.target->root);
      if (auto b = s.workload->begin(op.op); !b) {
        // result() reports it.
        fmt::print(stderr, "zest-bench: {}: {}: {}\n", s.target->id, op.title,
                   b.error());
        if (g_stalled) s.unavailable = b.error() + stalled_note(sopts);
        continue;
      }
      active[t] = true;
    }

    const size_t rounds = cfg.rounds_for(op.size);
    const size_t warm = cfg.batch_warm(op.size);
    fmt::print(stderr, "zest-bench: {}: {} rounds\n", op.title, rounds);
    for (size_t round = 0; round < rounds && !g_interrupted; ++round) {
      for (size_t k = 0; k < n; ++k) {
        const size_t t = (round + k) % n;  // a different first target
        Subject& s = subjects[t];
        if (!active[t]) continue;
        g_stalled = 0;
        std::optional<WatchScope> watch;
        if (s.target->fuse) watch.emplace(watchdog, s.target->root);
        if (!s.workload->batch(warm, cfg.batch_calls(op.size, round))) {
          // result() reports it; the target sits out the other rounds.
          fmt::print(stderr, "zest-bench: {}: {}\n", s.target->id,
                     s.workload->failure());
          active[t] = false;
          if (g_stalled) {
            // Its connection is gone: nothing more can be measured there.
            s.unavailable = fmt::format("connection aborted during \"{}\"{}",
                                        op.title, stalled_note(sopts));
          }
        }
      }
    }

    for (size_t row = r; row < rows.size(); ++row) {
      if (phase_of(rows[row].op.op) != phase) continue;
      for (size_t t = 0; t < n; ++t) {
        Subject& s = subjects[t];
        Measurement& m = rows[row].per_target[t];
        if (!applies(rows[row].op, s)) {
          m.skipped = true;
        } else if (!s.workload) {
          m.reason = s.unavailable;
        } else if (!takes_part[t]) {
          m.reason = "not measured: " + s.unavailable;
        } else {
          m = s.workload->result(rows[row].op.op);
          if (g_interrupted && !m.ok) m.reason = "interrupted";
        }
      }
    }
  }
  return rows;
}

std::vector<TargetSummary> summaries(const std::vector<Subject>& subjects) {
  std::vector<TargetSummary> out;
  for (const auto& s : subjects) {
    TargetSummary t;
    t.id = s.target->id;
    t.label = t.id;
    // Only a target that could not be set up at all is n/a as a whole; one
    // that failed later has its reasons in its cells.
    if (!s.workload) {
      t.unavailable = s.unavailable;
    } else {
      t.description = s.target->description;
      if (std::string api = s.workload->api_summary(); !api.empty()) {
        t.description += "; " + api;
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace zest::bench
