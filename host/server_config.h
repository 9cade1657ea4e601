// How the server runs one mount: what the command line says beyond the file
// system's own options.
#pragma once

#include <string>

namespace zest::host {

struct ServerConfig {
  bool foreground = false;
  bool debug = false;  // log every request (implies foreground)
  // Workers: one /dev/fuse channel or io_uring queue each (0: online CPUs).
  unsigned threads = 0;
  unsigned spin_us = 0;  // how long an idle worker polls before it sleeps
  // io_uring where the kernel offers it: on the 2-vCPU VM it answered a
  // 4 KiB read in 8.5 us against 52 us over /dev/fuse on an idle machine,
  // ~5-10% slower under load, and scales with threads (docs/benchmarks.md).
  std::string transport = "auto";  // dev, uring, auto
  unsigned uring_depth = 8;
  bool direct_io = false;  // -o direct_io: no page cache for buffered opens
  // -o nolayouts: no client channel (libzest-direct then uses the kernel
  // path); layout_recall_ms=N: how long a recalled lease holder gets.
  bool layouts = true;
  unsigned recall_ms = 100;
  std::string log_file;  // daemon: append the log here instead of syslog
  // Print "NAME mounted on MP (server pid N)" once a daemon's mount exists.
  bool announce = false;
};

}  // namespace zest::host
