// The crash-state tester (docs/guarantees.md, "What is tested"): workloads
// run on a pmfs pool in recorder mode; every crash point (each fence and each
// "operation returned" mark) and a bounded set of the states the stores in
// flight there allow (none, all, each alone, all but each, every subset of
// words when few, else random torn subsets) are recovered, fscked and
// compared with the oracle of completed operations.
//
// ZEST_SOAK=1 runs more seeds, more operations and more states per point.
// ZEST_CRASH_SEED=n runs only seed n of the random workloads (to reproduce a
// reported violation); ZEST_CRASH_OPS and ZEST_CRASH_STATES override the
// operation count and the states per crash point; ZEST_CRASH_VERBOSE=1
// lists the operations.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/falloc.h>

#include <gtest/gtest.h>
#include <linux/fs.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/crash/crash_checker.h"
#include "tests/crash/workload.h"

namespace zest::crash {
namespace {

bool soak() {
  const char* s = std::getenv("ZEST_SOAK");
  return s && *s && std::string(s) != "0";
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* s = std::getenv(name);
  return s && *s ? std::strtoull(s, nullptr, 10) : fallback;
}

pmfs::MkfsOptions small_mkfs(uint64_t journal_blocks) {
  pmfs::MkfsOptions o;
  o.journal_blocks = journal_blocks;
  o.root_mode = 01777;
  return o;
}

// Prints the reports and the summary (stdout, so a person running the
// binary sees it, and as a test property, so it lands in the XML).
void report(const char* what, const CheckStats& st,
            const std::vector<std::string>& reports) {
  for (const auto& r : reports) std::printf("%s\n", r.c_str());
  std::printf("crash: %s: %s\n", what, st.summary().c_str());
  std::printf("crash: %s: %s\n", what, st.timing().c_str());
  if (st.violations)
    std::printf("crash: %s: violations by kind:\n%s", what,
                st.violation_kinds().c_str());
  std::fflush(stdout);
  ::testing::Test::RecordProperty("crash_states", static_cast<int>(st.states));
  ::testing::Test::RecordProperty("crash_distinct_images",
                                  static_cast<int>(st.distinct));
  ::testing::Test::RecordProperty("crash_violations",
                                  static_cast<int>(st.violations));
  std::string all;
  for (const auto& r : reports) all += r + "\n";
  EXPECT_EQ(st.violations, 0u) << st.summary() << "\n" << all;
}

CheckStats check_run(RecordedRun& run, size_t states_per_point,
                     std::vector<std::string>* reports, bool save_image = true) {
  run.unpin();
  CrashChecker checker(run.pool_size());
  CheckOptions o;
  o.max_states_per_point = states_per_point;
  o.save_image = save_image;
  o.rng_seed = run.oracle().seed * 7919 + 1;
  o.recovery_crash_every = 8;
  o.recovery_states_per_point = 4;
  return checker.check(run.recorder(), run.oracle(), o, reports);
}

// --- random workloads
// -----------------------------------------------------------

TEST(Crash, RandomWorkloads) {
  std::vector<uint64_t> seeds;
  if (const char* s = std::getenv("ZEST_CRASH_SEED"); s && *s) {
    seeds.push_back(std::strtoull(s, nullptr, 10));
  } else {
    const uint64_t n = soak() ? 16 : 5;
    for (uint64_t i = 1; i <= n; ++i) seeds.push_back(i);
  }
  WorkloadOptions wo;
  wo.ops = env_u64("ZEST_CRASH_OPS", soak() ? 300 : 120);
  const size_t per_point = env_u64("ZEST_CRASH_STATES", soak() ? 32 : 12);

  CheckStats total;
  std::vector<std::string> reports;
  for (uint64_t seed : seeds) {
    // Vary the geometry: 1 or 2 MiB pools, journals of 8 to 32 blocks (a
    // large fragmented write can outgrow the smallest: ENOSPC, cleanly).
    const uint64_t pool = seed % 2 ? (2 << 20) : (1 << 20) + (256 << 10);
    const uint64_t journal = 8u << (seed % 3);
    RecordedRun run(fmt::format("random workload seed {}", seed), seed, pool,
                    small_mkfs(journal));
    std::mt19937_64 rng(seed);
    random_workload(run, rng, wo);
    size_t failed = 0;
    for (const auto& op : run.oracle().ops) {
      if (op.find("-> E") != std::string::npos ||
          op.find("-> errno") != std::string::npos)
        ++failed;
      if (std::getenv("ZEST_CRASH_VERBOSE")) std::printf("  %s\n", op.c_str());
    }
    std::printf("crash: seed %llu: %zu operations, %zu answered an error\n",
                static_cast<unsigned long long>(seed), run.oracle().ops.size(),
                failed);
    std::vector<std::string> r;
    CheckStats st = check_run(run, per_point, &r);
    std::printf("crash: seed %llu (pool %llu KiB, journal %llu blocks): %s\n",
                static_cast<unsigned long long>(seed),
                static_cast<unsigned long long>(pool >> 10),
                static_cast<unsigned long long>(journal), st.summary().c_str());
    total += st;
    for (auto& x : r) {
      if (reports.size() < 6) reports.push_back(std::move(x));
    }
  }
  report("random workloads", total, reports);
  EXPECT_GT(total.states, total.points);  // more than the bare crash points
}

// --- directed tests
// -----------------------------------------------------------------

// Creates /big as the run's first operation; its inode, or 0.
fs::Ino create_big(RecordedRun& run) {
  fs::Ino f = 0;
  run.op("create /big", [&] {
    auto e = run.h().create(fs::kRootIno, "big");
    if (e) {
      f = e->ino;
      run.forget(f);
    }
    return e ? std::string("ok") : errno_name(e.error().value);
  });
  return f;
}

// Writes of up to 1 MiB are atomic: crashed at every fence (and many subsets
// of the data and records in flight), a file shows all of a write or none.
TEST(Crash, LargeWriteIsAtomic) {
  RecordedRun run("large write", 0, 8 << 20, small_mkfs(64));
  auto& h = run.h();
  const fs::Ino f = create_big(run);
  ASSERT_NE(f, 0u);
  std::string data;
  struct W {
    uint64_t off, len;
  };
  const W writes[] = {{0, 1 << 20},               // new blocks
                      {256 << 10, 1 << 20},       // overwrite (CoW) and extend
                      {4097, (1 << 20) - 1},      // unaligned at both ends
                      {(3 << 20) + 5, 1 << 20}};  // past EOF: a hole before it
  uint64_t seed = 100;
  for (const W& w : writes) {
    fill_pattern(&data, w.len, ++seed);
    run.op(fmt::format("write /big off {} len {}", w.off, w.len), [&] {
      auto r = h.write(f, w.off, data);
      return r ? std::to_string(*r) : errno_name(r.error().value);
    });
  }
  run.op("truncate /big to 600000", [&] {
    auto r = h.truncate(f, 600000);
    return r ? std::string("ok") : errno_name(r.error().value);
  });
  std::vector<std::string> reports;
  CheckStats st = check_run(run, soak() ? 256 : 48, &reports);
  report("1 MiB writes", st, reports);
}

// fallocate, zero range and punch over ranges of several MiB (more than one
// window of 256 blocks), on a file with holes: each is one transaction, so
// every crash state shows the whole operation or none of it.
TEST(Crash, LargeFallocateIsAtomic) {
  RecordedRun run("large fallocate", 0, 24 << 20, small_mkfs(64));
  auto& h = run.h();
  const fs::Ino f = create_big(run);
  ASSERT_NE(f, 0u);
  std::string data;
  uint64_t seed = 300;
  for (uint64_t off : {uint64_t{0}, uint64_t{2} << 20}) {  // data, hole, data
    fill_pattern(&data, 1 << 20, ++seed);
    run.op(fmt::format("write /big off {} len 1 MiB", off), [&] {
      auto r = h.write(f, off, data);
      return r ? std::to_string(*r) : errno_name(r.error().value);
    });
  }
  struct F {
    uint32_t mode;
    uint64_t off, len;
  };
  const F ops[] = {
      {0, 4096, 5 << 20},                                            // fill, extend
      {FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 512 << 10, 4 << 20},
      {FALLOC_FL_ZERO_RANGE, 100, (4 << 20) + 7},                    // partial ends
      {FALLOC_FL_KEEP_SIZE, 5 << 20, 3 << 20},                       // past EOF
      {FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 16 << 20},     // everything
  };
  for (const F& o : ops) {
    run.op(fmt::format("fallocate /big mode {:#x} off {} len {}", o.mode, o.off, o.len),
           [&] { return errno_name(h.fallocate(f, o.mode, o.off, o.len)); });
  }
  std::vector<std::string> reports;
  CheckStats st = check_run(run, soak() ? 256 : 24, &reports);
  report("large fallocate", st, reports);
}

// Layouts (docs/layouts.md): map(Write) allocates unwritten blocks in one
// transaction; a client stores into them (through the recorded pool mapping,
// with non-temporal stores and a fence, as a direct-access client would) and
// commit flips them written with the new size and mtime in one transaction;
// a commit after a truncate is refused. Every crash state shows each whole or
// not at all, and never the client's bytes before their commit.
TEST(Crash, LayoutMapAndCommitAreAtomic) {
  RecordedRun run("layouts", 0, 8 << 20, small_mkfs(64));
  auto& h = run.h();
  const fs::Ino f = create_big(run);
  ASSERT_NE(f, 0u);
  fs::LayoutProvider* lp = h.fs().layouts();
  ASSERT_NE(lp, nullptr);
  std::string data;
  fill_pattern(&data, 64 << 10, 500);
  run.op("write /big off 0 len 64 KiB", [&] {
    auto r = h.write(f, 0, data);
    return r ? std::to_string(*r) : errno_name(r.error().value);
  });
  // The client's stores, through the pool mapping the recorder watches.
  auto store = [&](const fs::Layout& l, uint64_t off, const std::string& bytes) {
    auto& pool = const_cast<pmem::PoolMap&>(h.pm().pool());
    for (const fs::LayoutExtent& x : l.extents) {
      // Written extents would be overwritten in place, not atomically
      // (docs/layouts.md): this client leaves them alone.
      if (x.state != fs::LayoutExtent::State::Unwritten) continue;
      const uint64_t a = std::max(off, x.offset);
      const uint64_t b = std::min(off + bytes.size(), x.offset + x.length);
      if (a < b) pool.write_nt(x.pool_offset + (a - x.offset), bytes.data() + (a - off), b - a);
    }
    pool.drain();
  };
  struct M {
    uint64_t off, len;
    std::optional<uint64_t> size;  // commit's new size
    bool partial;                  // commit only the first half
  };
  const M maps[] = {{64 << 10, 256 << 10, (64 + 256) << 10, false},  // past EOF, grow
                    {16 << 10, 32 << 10, std::nullopt, false},       // over data: no-op
                    {1 << 20, 512 << 10, (1 << 20) + 4096 * 10 + 7, true},
                    {(1 << 20) + (256 << 10), 256 << 10, std::nullopt, false}};
  uint64_t seed = 600;
  for (const M& m : maps) {
    fs::Layout l;
    run.op(fmt::format("map write /big off {} len {}", m.off, m.len), [&] {
      auto r = lp->map(f, m.off, m.len, fs::LayoutIntent::Write);
      EXPECT_TRUE(r);
      if (!r) return errno_name(r.error().value);
      l = std::move(*r);
      return std::string("ok");
    });
    fill_pattern(&data, m.len, ++seed);
    run.op(fmt::format("store and commit /big off {} len {}", m.off, m.len), [&] {
      store(l, m.off, data);
      std::vector<fs::LayoutExtent> ext;
      for (const fs::LayoutExtent& x : l.extents) {
        if (m.partial && x.offset >= m.off + m.len / 2) break;
        ext.push_back(x);
        if (m.partial && x.offset + x.length > m.off + m.len / 2) {
          ext.back().length = m.off + m.len / 2 - x.offset;
        }
      }
      Status s = lp->commit(f, l.generation, ext, m.size,
                            timespec{1000 + static_cast<time_t>(seed), 0});
      EXPECT_TRUE(s) << m.off;
      return s ? std::string("ok") : errno_name(s.error().value);
    });
  }
  // Stale: mapped, truncated, then committed (refused, nothing changes).
  fs::Layout l;
  run.op("map write /big off 2 MiB len 64 KiB", [&] {
    auto r = lp->map(f, 2 << 20, 64 << 10, fs::LayoutIntent::Write);
    if (!r) return errno_name(r.error().value);
    l = std::move(*r);
    return std::string("ok");
  });
  run.op("truncate /big to 100000", [&] {
    auto r = h.truncate(f, 100000);
    return r ? std::string("ok") : errno_name(r.error().value);
  });
  run.op("commit /big after truncate", [&] {
    Status s = lp->commit(f, l.generation, l.extents, 3 << 20, timespec{5, 0});
    EXPECT_EQ(s.error().value, ESTALE);
    return s ? std::string("ok") : errno_name(s.error().value);
  });
  EXPECT_EQ(h.getattr(f)->size, 100000u);
  std::vector<std::string> reports;
  CheckStats st = check_run(run, soak() ? 256 : 48, &reports);
  report("layouts", st, reports);
}

// RENAME_EXCHANGE of a file and a directory across directories, rename over
// an existing file and a directory move: every state of every fence.
TEST(Crash, RenameExchangeAcrossDirectories) {
  RecordedRun run("rename exchange", 0, 2 << 20, small_mkfs(16));
  auto& h = run.h();
  auto mk = [&](const char* what, auto fn) {
    fs::Ino ino = 0;
    run.op(what, [&] {
      Result<fs::Entry> e = fn();
      if (e) {
        ino = e->ino;
        run.forget(ino);
      }
      return e ? fmt::format("ino {}", e->ino) : errno_name(e.error().value);
    });
    EXPECT_NE(ino, 0u) << what;
    return ino;
  };
  const fs::Ino d1 =
      mk("mkdir /d1", [&] { return h.mkdir(fs::kRootIno, "d1"); });
  const fs::Ino d2 =
      mk("mkdir /d2", [&] { return h.mkdir(fs::kRootIno, "d2"); });
  const fs::Ino sub = mk("mkdir /d2/sub", [&] { return h.mkdir(d2, "sub"); });
  const fs::Ino x = mk("create /d1/x", [&] { return h.create(d1, "x"); });
  mk("create /d2/sub/y", [&] { return h.create(sub, "y"); });
  mk("create /d2/z", [&] { return h.create(d2, "z"); });
  std::string data;
  fill_pattern(&data, 10000, 5);
  run.op("write /d1/x", [&] { return h.write(x, 0, data) ? "ok" : "error"; });
  run.op("setxattr /d1/x",
         [&] { return errno_name(h.setxattr(x, "user.k", "value")); });

  auto rename = [&](const char* what, fs::Ino p, const char* n, fs::Ino np,
                    const char* nn, uint32_t flags) {
    int err = -1;
    run.op(what, [&] {
      err = h.rename(p, n, np, nn, flags);
      return errno_name(err);
    });
    EXPECT_EQ(err, 0) << what;
  };
  rename("rename exchange /d1/x <-> /d2/sub", d1, "x", d2, "sub",
         RENAME_EXCHANGE);
  // Now /d1/x is the directory (holding y) and /d2/sub the file.
  rename("rename exchange back /d2/sub <-> /d1/x", d2, "sub", d1, "x",
         RENAME_EXCHANGE);
  rename("rename /d1/x over /d2/z (frees z)", d1, "x", d2, "z", 0);
  rename("rename noreplace /d2/sub -> /d1/moved", d2, "sub", d1, "moved",
         RENAME_NOREPLACE);
  rename("rename exchange /d1/moved <-> /d2/z", d1, "moved", d2, "z",
         RENAME_EXCHANGE);

  std::vector<std::string> reports;
  CheckStats st = check_run(run, soak() ? 1024 : 128, &reports);
  report("rename exchange", st, reports);
}

// An unlinked file that is still open is an orphan: every crash state while
// it is open must recover to a tree without it, with its inode and blocks
// freed (the checker compares fsck's counts with the allocator's).
TEST(Crash, UnlinkedOpenFileIsFreedByRecovery) {
  RecordedRun run("orphan", 0, 2 << 20, small_mkfs(16));
  auto& h = run.h();
  fs::Ino f = 0;
  run.op("create /f (kept open)", [&] {
    auto e = h.create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT, true);
    if (e) {
      f = e->ino;
      run.forget(f);
    }
    return e ? std::string("ok") : errno_name(e.error().value);
  });
  ASSERT_NE(f, 0u);
  std::string data;
  fill_pattern(&data, 96 << 10, 9);
  run.op("write /f 96 KiB",
         [&] { return h.write(f, 0, data) ? "ok" : "error"; });
  run.op("setxattr /f", [&] {
    return errno_name(h.setxattr(f, "user.big", data.substr(0, 9000)));
  });
  run.op("link /f as /g", [&] {
    auto e = h.link(f, fs::kRootIno, "g");
    if (e) run.forget(e->ino);
    return e ? std::string("ok") : errno_name(e.error().value);
  });
  run.op("unlink /f", [&] { return errno_name(h.unlink(fs::kRootIno, "f")); });
  run.op("unlink /g (now an orphan)",
         [&] { return errno_name(h.unlink(fs::kRootIno, "g")); });
  run.op("write the orphan", [&] {
    return h.write(f, 4096, data.substr(0, 20000)) ? "ok" : "error";
  });
  run.op("truncate the orphan",
         [&] { return h.truncate(f, 50000) ? "ok" : "error"; });
  run.op("close the orphan (frees it)",
         [&] { return errno_name(h.release(f)); });
  run.op("create /h", [&] {
    auto e = h.create(fs::kRootIno, "h");
    if (e) run.forget(e->ino);
    return e ? std::string("ok") : errno_name(e.error().value);
  });

  std::vector<std::string> reports;
  CheckStats st = check_run(run, soak() ? 256 : 64, &reports);
  report("orphan", st, reports);
  EXPECT_GT(st.orphan_states, 0u) << "no crash state held the orphan";
}

// Many xattrs on one inode (xattr_workload): sets filling several slot
// blocks, replaces across slot blocks and records, removals that empty a
// block in the middle of the chain and finally the whole chain. Every crash
// state shows each operation whole or not at all, and fsck's block count
// matches the allocator's (nothing leaked, nothing freed twice).
TEST(Crash, ManyXattrsOnOneInode) {
  RecordedRun run("many xattrs", 0, 2 << 20, small_mkfs(16));
  std::mt19937_64 rng(77);
  xattr_workload(run, rng);
  size_t failed = 0;
  for (const auto& op : run.oracle().ops) {
    if (op.find("-> E") != std::string::npos) ++failed;
    if (std::getenv("ZEST_CRASH_VERBOSE")) std::printf("  %s\n", op.c_str());
  }
  EXPECT_EQ(failed, 0u);
  std::vector<std::string> reports;
  CheckStats st = check_run(run, soak() ? 64 : 12, &reports);
  report("many xattrs", st, reports);
}

// The checker itself: an "operation" made of two transactions is not atomic,
// and the checker must say so (an oracle that accepts everything would pass
// every other test here).
TEST(Crash, CheckerCatchesANonAtomicOperation) {
  RecordedRun run("two creates as one operation", 0, 1 << 20, small_mkfs(8));
  auto& h = run.h();
  run.op("create /a and /b", [&] {
    for (const char* n : {"a", "b"}) {
      auto e = h.create(fs::kRootIno, n);
      if (e) run.forget(e->ino);
    }
    return std::string("ok");
  });
  std::vector<std::string> reports;
  CheckStats st = check_run(run, 16, &reports, /*save_image=*/false);
  std::printf("crash: self-check: %s\n", st.summary().c_str());
  EXPECT_GT(st.violations, 0u);
  ASSERT_FALSE(reports.empty());
  EXPECT_NE(reports[0].find("only in S1: "), std::string::npos) << reports[0];
}

}  // namespace
}  // namespace zest::crash
