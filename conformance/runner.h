// Runner: plays every selected check (check.h) on the tmpfs oracle and on
// the file system under test, then the differential tester (difftest.h),
// and prints one line per check:
//
//   PASS name
//   FAIL name: step: expected X (tmpfs), got Y
//   SKIP name: reason
//
// followed by a summary. Progress of the differential tester goes to
// stderr.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <regex>
#include <string>

namespace zest::conformance {

struct RunOptions {
  std::string mountpoint;      // for messages
  std::string scratch_parent;  // a directory on the file system under test
  std::optional<std::regex> filter;  // check names to run (regex_search)
  uint64_t seed = 1;                 // of the differential tester
  int ops = 2000;                    // its operation count; 0 leaves it out
  bool compare_blocks = true;
  bool compare_inodes = true;
  std::string skip_ops;  // difftest op kinds to leave out
};

// The exit status of zest-conformance: 0 all passed (skips allowed), 1 a
// check failed, 2 the run could not start (message on stderr), 130
// interrupted.
enum ExitCode {
  kAllPassed = 0,
  kFailed = 1,
  kCannotRun = 2,
  kInterrupted = 130
};

// Names and descriptions of the checks the filter selects, for --list.
void ListChecks(const std::optional<std::regex>& filter, std::FILE* out);

ExitCode RunConformance(const RunOptions& options, std::FILE* out);

// SIGINT, SIGTERM and SIGHUP end the run at the next step (scratch
// directories are removed); a second signal kills at once.
void InstallStopSignals();

}  // namespace zest::conformance
