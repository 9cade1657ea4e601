#include "bench/ops.h"

#include <cstdlib>

namespace zest::bench {
namespace {

constexpr size_t kSmall = 4096;
constexpr size_t kBig = 1 << 20;

}  // namespace

const std::vector<OpInfo>& latency_ops() {
  static const std::vector<OpInfo> ops = {
      {.op = Op::kNoop,
       .id = "noop",
       .title = "no-op request (getxattr → ENODATA)",
       .bytes = 0,
       .size = Size::kSmall,
       .note = "no-op request: `fgetxattr(fd, \"user.zest.noop\", buf, 64)` "
               "on an open file that has no extended attributes. FUSE "
               "caches no xattrs, so every call is one GETXATTR that the "
               "server answers with ENODATA (memfs and pmfs after a lookup "
               "in the inode's xattr map, mirrorfs and passthrough_ll after "
               "a getxattr(2) on their backing tmpfs); any other answer "
               "fails the row. On tmpfs it is the system call alone: the "
               "transport's round trip is the difference."},
      {.op = Op::kRandRead4K,
       .id = "randread4k",
       .title = "4 KiB random read (O_DIRECT)",
       .bytes = kSmall,
       .size = Size::kSmall},
      {.op = Op::kRandRead4K4T,
       .id = "randread4k-4t",
       .title = "4 KiB random read (O_DIRECT), 4 threads",
       .bytes = kSmall,
       .size = Size::kSmall,
       .threads = kIoThreads,
       .single_op = Op::kRandRead4K,
       .note = "4 threads: 4 threads, each with its own fd of the data file "
               "(the same file) and one call in flight, take the calls of a "
               "batch (the same number of calls as a one-thread batch) from "
               "one shared counter; median and p99 are per call, MiB/s and "
               "IOPS are calls / wall time of the measured part of the "
               "batches. The threads run on every CPU the driver may use "
               "(--cpu pins only the one-thread rows)."},
      {.op = Op::kRandWrite4K,
       .id = "randwrite4k",
       .title = "4 KiB random write (O_DIRECT)",
       .bytes = kSmall,
       .size = Size::kSmall},
      {.op = Op::kRandWrite4K4T,
       .id = "randwrite4k-4t",
       .title = "4 KiB random write (O_DIRECT), 4 threads",
       .bytes = kSmall,
       .size = Size::kSmall,
       .threads = kIoThreads,
       .single_op = Op::kRandWrite4K},
      {.op = Op::kAppend4K,
       .id = "append4k",
       .title = "4 KiB append (O_DIRECT)",
       .bytes = kSmall,
       .size = Size::kSmall,
       .note = "4 KiB append: `pwrite` of 4 KiB at the end of a file "
               "opened O_WRONLY|O_DIRECT, which grows by 4 KiB a call (the "
               "offset is the end, not O_APPEND: libzest-direct sends "
               "O_APPEND writes through the kernel). The file is truncated "
               "to 0 before every batch (untimed), so it never holds more "
               "than one batch."},
      {.op = Op::kStatx,
       .id = "statx",
       .title = "statx (force sync)",
       .bytes = 0,
       .size = Size::kSmall},
      {.op = Op::kStat,
       .id = "stat",
       .title = "stat (cached attributes allowed)",
       .bytes = 0,
       .size = Size::kSmall,
       .note = "stat: `fstatat(root, name, &st, 0)` (direct: `zest_stat`, "
               "the same call inside the library). Unlike statx (force "
               "sync), the kernel answers from its attribute cache while "
               "the file system's attribute timeout lasts (1 s on zest's "
               "file systems; passthrough_ll runs with cache=never), so on "
               "FUSE this is mostly the system call."},
      {.op = Op::kFstat,
       .id = "fstat",
       .title = "fstat of an open file",
       .bytes = 0,
       .size = Size::kSmall,
       .note = "fstat: `fstat(fd)` of an open file (direct: `zest_fstat` of "
               "a handle); the attribute cache may answer, as for stat."},
      {.op = Op::kOpen,
       .id = "open",
       .title = "open + close (existing file)",
       .bytes = 0,
       .size = Size::kSmall,
       .note = "open + close: `openat(root, name, O_RDONLY)` of an existing "
               "empty file and `close` (direct: `zest_open` with a path "
               "relative to the mount, and `zest_close`)."},
      {Op::kCreate, "create", "create (open O_CREAT|O_EXCL + close)", 0,
       Size::kSmall},
      {Op::kUnlink, "unlink", "unlink", 0, Size::kSmall},
      {Op::kSeqRead1M, "seqread1m", "1 MiB sequential read (O_DIRECT)", kBig,
       Size::kBig},
      {Op::kSeqWrite1M, "seqwrite1m", "1 MiB sequential write (O_DIRECT)", kBig,
       Size::kBig},
  };
  return ops;
}

const std::vector<OpInfo>& persistence_ops() {
  static const std::vector<OpInfo> ops = {
      {Op::kSyncWrite4K, "syncwrite4k", "4 KiB write + fsync", kSmall,
       Size::kSync},
      {Op::kDurableWrite4K, "write4k-durable",
       "4 KiB write, no fsync (durable on return)", kSmall, Size::kSync, true,
       Op::kSyncWrite4K},
      {Op::kSyncCreate, "synccreate", "create + fsync(file) + fsync(dir)", 0,
       Size::kSync},
      {Op::kDurableCreate, "create-durable",
       "create, no fsync (durable on return)", 0, Size::kSync, true,
       Op::kSyncCreate},
  };
  return ops;
}

const OpInfo& op_info(Op op) {
  for (const auto* list : {&latency_ops(), &persistence_ops()}) {
    for (const auto& o : *list) {
      if (o.op == op) return o;
    }
  }
  std::abort();  // every Op is in one of the lists
}

bool reads_data(Op op) {
  return op == Op::kRandRead4K || op == Op::kRandRead4K4T ||
         op == Op::kSeqRead1M;
}

bool writes_data(Op op) {
  return op == Op::kRandWrite4K || op == Op::kRandWrite4K4T ||
         op == Op::kAppend4K || op == Op::kSeqWrite1M ||
         op == Op::kSyncWrite4K || op == Op::kDurableWrite4K;
}

}  // namespace zest::bench
