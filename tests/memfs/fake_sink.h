// MemFsHarness: typed calls into one MemFs through the recording sink of
// tests/fs_harness/ (no kernel). memfs may answer later from its own
// threads (Options::reply_delay_us), so each call waits for its reply.
#pragma once

#include <chrono>
#include <memory>

#include "memfs/memfs.h"
#include "tests/fs_harness/call_runner.h"

namespace zest::memfs::test {

using fs_harness::bytes;
using fs_harness::Call;
using fs_harness::err_of;
using FakeSink = fs_harness::RecordingSink;

class MemFsHarness : public fs_harness::CallRunner {
 public:
  explicit MemFsHarness(const Options& o = {})
      : CallRunner(std::chrono::seconds(10)) {
    attach(make_memfs(o));
  }

  // Destroys the MemFs: it joins its threads and answers what is queued.
  void reset() { attach(nullptr); }
};

}  // namespace zest::memfs::test
