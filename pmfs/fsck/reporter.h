// How fsck's checks report what they find; see Reporter.
// Private to pmfs/fsck.cc and pmfs/fsck/.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pmfs/fsck.h"

namespace zest::pmfs::fsck_internal {

// More messages than this are counted, not stored (a pool of garbage would
// otherwise produce one per slot).
constexpr size_t kMaxMessages = 10000;

// Collects messages into the report: errors (deduplicated, so that a repair
// pass that meets an error again does not repeat it), repairs and notes,
// with the cap, and echoes them when verbose.
class Reporter {
 public:
  Reporter(FsckReport* report, const FsckOptions& options)
      : report_(report), options_(options), errors_(&report->errors) {}

  // From now on errors go to `out` (the final verification pass uses
  // report->uncorrected).
  void send_errors_to(std::vector<std::string>* out) {
    finish();
    errors_ = out;
    seen_.clear();
  }

  void error(std::string msg) {
    if (!seen_.insert(msg).second) return;
    if (errors_->size() >= kMaxMessages) {
      ++dropped_;
      return;
    }
    if (options_.verbose) progress("error: " + msg);
    errors_->push_back(std::move(msg));
  }
  void repair(std::string msg) {
    if (options_.verbose) progress("repair: " + msg);
    if (report_->repairs.size() < kMaxMessages)
      report_->repairs.push_back(std::move(msg));
    ++repairs_made_;
  }
  void note(std::string msg) {
    if (options_.verbose) progress("note: " + msg);
    if (report_->notes.size() < kMaxMessages)
      report_->notes.push_back(std::move(msg));
  }
  void progress(const std::string& msg) const {
    if (options_.progress) options_.progress(msg);
  }
  uint64_t repairs_made() const { return repairs_made_; }

  // Appends the count of errors that did not fit.
  void finish() {
    if (dropped_ > 0) {
      errors_->push_back(fmt::format("... and {} more errors", dropped_));
      dropped_ = 0;
    }
  }

 private:
  FsckReport* report_;
  const FsckOptions& options_;
  std::vector<std::string>* errors_;
  std::unordered_set<std::string> seen_;
  uint64_t dropped_ = 0;
  uint64_t repairs_made_ = 0;
};

}  // namespace zest::pmfs::fsck_internal
