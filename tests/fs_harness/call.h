// Call: one request to a file system driven without a kernel, and what it
// was answered. Its address is the request's fs::RequestToken; the
// RecordingSink (recording_sink.h) fills it in.
//
// A reply may come from any thread (memfs answers later when asked to): a
// Call is complete once `done`, set under `mu` and announced on `cv`, and
// wait() waits for that. Every other field is written before `done` and
// read after it, so a test that waited reads them without the lock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "zest/fs/types.h"

namespace zest::fs_harness {

struct Call {
  // Which reply completed the call; kNone is success without payload
  // (StatusReply::ok, or error(0)).
  enum Kind {
    kNone,
    kError,
    kEntry,
    kCreate,
    kAttr,
    kOpen,
    kWrite,
    kData,
    kXattrSize,
    kStatfs,
    kLseek,
    kDir
  };
  // One directory entry as dir_add() received it.
  struct DirEnt {
    std::string name;
    fs::Ino ino = 0;
    uint32_t type = 0;
    uint64_t next_off = 0;
    // It carried an fs::Entry (readdirplus): then `entry` holds it.
    // `has_entry` is the same flag under the name the memfs and pmfs tests
    // read; the mirrorfs tests read `plus`.
    bool plus = false;
    bool has_entry = false;
    fs::Entry entry;
  };

  Kind kind = kNone;
  int err = 0;            // kError: the positive errno
  int completions = 0;    // replies received; 1 once complete
  fs::Entry entry;        // kEntry, kCreate
  fs::OpenInfo open;      // kOpen, kCreate
  fs::Attr attr;          // kAttr
  size_t written = 0;     // kWrite
  std::string data;       // kData: every iovec, concatenated
  size_t iov_count = 0;   // kData: how many iovecs the reply had
  size_t xattr_size = 0;  // kXattrSize
  fs::StatFs statfs;      // kStatfs
  uint64_t offset = 0;    // kLseek
  // kDir: the entries, and the bytes they take as the kernel's
  // fuse_dirent / fuse_direntplus records, at most dir_capacity (the size
  // the caller asked for; set it before the call).
  std::vector<DirEnt> dir;
  size_t dir_bytes = 0;
  size_t dir_capacity = 4096;
  std::vector<std::byte> buffer;  // reply_buffer(): request-owned scratch
  // What the sink answers to interrupted(); a test sets it to play a signal.
  std::atomic<bool> interrupted{false};
  std::thread::id replied_on;  // the thread that completed it

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;

  // True once complete; waits at most `limit` for that (0: only looks).
  bool wait(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return done; });
  }
};

}  // namespace zest::fs_harness
