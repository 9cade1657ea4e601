// The measured operations: what each row of the latency and persistence
// tables calls, its title, and how its results are compared.
#pragma once

#include <cstddef>
#include <vector>

namespace zest::bench {

enum class Op {
  // Latency suite.
  kNoop,  // fgetxattr of a name the file does not have: ENODATA
  kRandRead4K,
  kRandRead4K4T,  // the same from kIoThreads threads at once
  kRandWrite4K,
  kRandWrite4K4T,
  kAppend4K,  // pwrite at the end of a file that grows
  kStatx,     // statx with AT_STATX_FORCE_SYNC: always a GETATTR on FUSE
  kStat,      // fstatat: the attribute cache may answer
  kFstat,     // fstat of an open file
  kOpen,      // open of an existing file + close
  kCreate,
  kUnlink,
  kSeqRead1M,
  kSeqWrite1M,
  // Persistence suite.
  kSyncWrite4K,     // pwrite + fsync
  kDurableWrite4K,  // pwrite alone (targets durable on return)
  kSyncCreate,      // open O_CREAT|O_EXCL + fsync + close + fsync(dir)
  kDurableCreate,   // open O_CREAT|O_EXCL + close (targets durable on return)
};

// Which iteration counts an operation uses.
enum class Size { kSmall, kBig, kSync };

// Threads of the multi-threaded rows: each has its own fd of the data file
// and one call in flight, and they take the calls of a batch from one shared
// counter.
inline constexpr unsigned kIoThreads = 4;

// The extended attribute the no-op row asks for; no file has it.
inline constexpr const char* kNoopXattr = "user.zest.noop";

struct OpInfo {
  Op op;
  const char* id;     // for --ops and JSON
  const char* title;  // for the table
  size_t bytes;       // bytes moved per call; 0 for metadata operations
  Size size;
  // Measured only on targets whose operations are durable on return.
  bool durable_only = false;
  // Ratios divide by the base target's median of this operation: the
  // durable-on-return rows compare with what the others need to be durable.
  Op ratio_op = op;
  // Threads making calls at once (each one call in flight).
  unsigned threads = 1;
  // For a multi-threaded row: the one-thread row of the same call, which
  // its scaling (ops/s with `threads` threads / ops/s with one) divides by.
  Op single_op = op;
  // What the row measures, printed under a table that has it; may be null.
  const char* note = nullptr;
};

// Every operation of each suite, in table order.
const std::vector<OpInfo>& latency_ops();
const std::vector<OpInfo>& persistence_ops();
const OpInfo& op_info(Op op);

// create and unlink are measured together (every round creates files and
// unlinks them again), so they are one phase, named by kCreate.
inline Op phase_of(Op op) { return op == Op::kUnlink ? Op::kCreate : op; }

// Whether the calls of `op` read or write file data (the rows whose calls
// libzest-direct serves from the pool).
bool reads_data(Op op);
bool writes_data(Op op);

}  // namespace zest::bench
