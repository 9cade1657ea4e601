// A deliberately wrong file system for the conformance kit's own tests:
// memfs, except that rename answers ok without renaming anything. Served
// in a child process, so the test proves that zest-conformance reports
// FAIL (and exits 1) when a file system misbehaves.
#pragma once

#include <sys/types.h>

#include <string>

namespace zest::testing {

// Forks a server of the broken file system on MOUNTPOINT and waits (10 s)
// until the mount is live. Returns its pid, or -1 with *error.
pid_t StartBrokenRenameFs(const std::string& mountpoint, std::string* error);

// Unmounts MOUNTPOINT and reaps PID (SIGKILL after 10 s).
void StopBrokenRenameFs(pid_t pid, const std::string& mountpoint);

}  // namespace zest::testing
