#include "tests/crash/crash_checker.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <set>

#include "base/log.h"
#include "pmem/crash_image.h"
#include "pmfs/fsck.h"
#include "pmfs/layout.h"
#include "pmfs/pmfs.h"

namespace zest::crash {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string tmp_dir() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

// Which region of the pool a byte offset lies in (for reports).
std::string region_of(const pmfs::Superblock& sb, uint64_t off) {
  const uint64_t b = off / pmfs::kBlockSize;
  if (b < 2) return fmt::format("superblock {}", b);
  if (b >= sb.journal_start && b < sb.journal_start + sb.journal_blocks) {
    const uint64_t j = off - sb.journal_start * pmfs::kBlockSize;
    return j < 64 ? fmt::format("journal header +{}", j)
                  : fmt::format("journal records +{}", j - 64);
  }
  if (b >= sb.itable_start && b < sb.itable_start + sb.itable_blocks) {
    const uint64_t i = off - sb.itable_start * pmfs::kBlockSize;
    return fmt::format("inode {} +{}", i / pmfs::kInodeSize + 1,
                       i % pmfs::kInodeSize);
  }
  return fmt::format("data block {} +{}", b, off % pmfs::kBlockSize);
}

std::string fsck_lines(const pmfs::FsckReport& r, size_t max = 8) {
  std::string out;
  size_t n = 0;
  for (const auto& e : r.errors) {
    if (n++ == max) {
      out += fmt::format("      ... {} more\n", r.errors.size() - max);
      break;
    }
    out += "      error: " + e + "\n";
  }
  if (r.operational_error) out += "      operational error\n";
  return out;
}

// The distinct inode numbers a snapshot names (the in-use inodes after
// recovery, when orphans have been freed).
size_t distinct_inodes(const FsSnapshot& s) {
  std::set<fs::Ino> inos;
  for (const auto& [path, n] : s.nodes) inos.insert(n.ino);
  return inos.size();
}

}  // namespace

std::string with_commas(uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

CheckStats& CheckStats::operator+=(const CheckStats& o) {
  runs += o.runs;
  ops += o.ops;
  points += o.points;
  states += o.states;
  distinct += o.distinct;
  violations += o.violations;
  orphan_states += o.orphan_states;
  replay_states += o.replay_states;
  recoveries_crashed += o.recoveries_crashed;
  recovery_states += o.recovery_states;
  for (const auto& [k, n] : o.kinds) kinds[k] += n;
  seconds += o.seconds;
  t_fsck_crash += o.t_fsck_crash;
  t_mount += o.t_mount;
  t_snapshot += o.t_snapshot;
  t_fsck_recovered += o.t_fsck_recovered;
  t_other += o.t_other;
  return *this;
}

std::string CheckStats::summary() const {
  return fmt::format(
      "{} runs, {} ops, {} crash points, {} states checked ({} distinct "
      "images), "
      "{} violations, {:.1f} s; {} states with an orphan inode, {} with a "
      "committed transaction to replay; {} recoveries crashed in {} states",
      with_commas(runs), with_commas(ops), with_commas(points),
      with_commas(states), with_commas(distinct), with_commas(violations),
      seconds, with_commas(orphan_states), with_commas(replay_states),
      with_commas(recoveries_crashed), with_commas(recovery_states));
}

std::string CheckStats::violation_kinds() const {
  std::string out;
  for (const auto& [k, n] : kinds)
    out += fmt::format("  {} x {}\n", with_commas(n), k);
  return out;
}

std::string CheckStats::timing() const {
  const size_t all = states + recovery_states;
  const double per = all ? 1e6 / static_cast<double>(all) : 0;
  return fmt::format(
      "per state (crashed recoveries included): fsck of crash image {:.0f} us, "
      "write+mount+recovery {:.0f} us, snapshot {:.0f} "
      "us, fsck of recovered pool {:.0f} us, building images {:.0f} us",
      t_fsck_crash * per, t_mount * per, t_snapshot * per,
      t_fsck_recovered * per, t_other * per);
}

CrashChecker::CrashChecker(uint64_t pool_size) : pool_size_(pool_size) {
  const bool shm = ::access("/dev/shm", W_OK) == 0;
  std::string templ =
      (shm ? std::string("/dev/shm") : tmp_dir()) + "/zest-crash-XXXXXX";
  fd_ = ::mkstemp(templ.data());
  if (fd_ < 0) {
    ADD_FAILURE() << "mkstemp " << templ << " failed";
    return;
  }
  path_ = templ;
  if (::ftruncate(fd_, static_cast<off_t>(pool_size)) != 0)
    ADD_FAILURE() << "ftruncate failed";
  void* v = ::mmap(nullptr, pool_size, PROT_READ, MAP_SHARED, fd_, 0);
  if (v == MAP_FAILED) {
    ADD_FAILURE() << "mmap of " << path_ << " failed";
    return;
  }
  view_ = static_cast<const std::byte*>(v);
}

CrashChecker::~CrashChecker() {
  if (view_) ::munmap(const_cast<std::byte*>(view_), pool_size_);
  if (fd_ >= 0) ::close(fd_);
  if (!path_.empty()) ::unlink(path_.c_str());
}

bool CrashChecker::load(std::span<const std::byte> image) {
  // Only the pages that differ from what the file holds (the last state,
  // as recovery left it): most of a small pool is the same from one state
  // to the next, and the page cache copy is a good part of the cost.
  constexpr size_t kPage = 4096;
  size_t pos = 0;
  while (pos < image.size()) {
    if (std::memcmp(image.data() + pos, view_ + pos, kPage) == 0) {
      pos += kPage;
      continue;
    }
    size_t end = pos + kPage;
    while (end < image.size() &&
           std::memcmp(image.data() + end, view_ + end, kPage) != 0) {
      end += kPage;
    }
    const size_t n = end - pos;
    if (::pwrite(fd_, image.data() + pos, n, static_cast<off_t>(pos)) !=
        static_cast<ssize_t>(n)) {
      ADD_FAILURE() << "pwrite into " << path_ << " failed";
      return false;
    }
    pos = end;
  }
  return true;
}

std::string CrashChecker::recover_and_check(std::span<const std::byte> image,
                                            const OracleRun& oracle, size_t lo,
                                            size_t hi,
                                            const CheckOptions& /*options*/,
                                            pmem::Recorder* recorder,
                                            CheckStats* st, FsSnapshot* got) {
  std::string problem;
  auto t = Clock::now();
  pmfs::Options fo;
  fo.recorder = recorder;
  // No atime updates, as in the recording (workload.cc).
  fo.atime.mode = fs::AtimePolicy::Mode::None;
  pmfs::PmFs::Usage usage;
  {
    if (!load(image)) return "  cannot write the scratch pool\n";
    std::string why;
    auto fs = pmfs::open(path_, fo, &why);
    st->t_mount += since(t);
    if (!fs) {
      return fmt::format("  mount refused the crash image: {} ({})\n", why,
                         fs.error().message());
    }
    t = Clock::now();
    pmfs::test::FakeSink sink;
    (*fs)->init(&sink);
    *got = take_snapshot(**fs, sink);
    usage = (*fs)->usage();
    st->t_snapshot += since(t);
  }  // closed: pmfs writes nothing on close

  bool match = false;
  for (size_t k = lo; k <= hi && !match; ++k) match = *got == oracle.states[k];
  if (!match) {
    problem +=
        lo == hi ? fmt::format(
                       "  recovered state is not the state after {} operations "
                       "(S{}):\n",
                       lo, lo)
                 : fmt::format(
                       "  recovered state is neither S{} (operation {} absent) "
                       "nor S{} (operation {} whole):\n",
                       lo, lo, hi, lo);
    for (size_t k = lo; k <= hi; ++k) {
      const std::string label = fmt::format("S{}", k);
      problem += diff(oracle.states[k], label.c_str(), *got, "recovered");
    }
  }
  t = Clock::now();
  pmfs::FsckReport rec = pmfs::fsck_image({view_, pool_size_});
  st->t_fsck_recovered += since(t);
  if (rec.exit_code() != 0 || !rec.errors.empty()) {
    problem += "  fsck of the recovered pool is not clean:\n" + fsck_lines(rec);
    return problem;
  }
  if (usage.total_blocks - usage.free_blocks != rec.blocks_in_use) {
    problem += fmt::format(
        "  after recovery the allocator has {} of {} blocks free, but fsck "
        "finds {} in use "
        "(leak or double use)\n",
        usage.free_blocks, usage.total_blocks, rec.blocks_in_use);
  }
  const size_t live = distinct_inodes(*got);
  if (got->error.empty() && rec.inodes_checked != live) {
    problem += fmt::format(
        "  after recovery {} inodes are in use but {} are reachable (orphan or "
        "leaked inode "
        "not freed)\n",
        rec.inodes_checked, live);
  }
  if (usage.inodes - usage.free_inodes != rec.inodes_checked) {
    problem += fmt::format(
        "  the inode allocator has {} of {} inodes in use, fsck finds {}\n",
        usage.inodes - usage.free_inodes, usage.inodes, rec.inodes_checked);
  }
  return problem;
}

std::string CrashChecker::check_recovery_crashes(const pmem::Recorder& recorder,
                                                 const OracleRun& oracle,
                                                 size_t lo, size_t hi,
                                                 const CheckOptions& options,
                                                 std::mt19937_64& rng,
                                                 CheckStats* st) {
  if (recorder.entry_count() == 0) return {};  // recovery stored nothing
  ++st->recoveries_crashed;
  // Recovery wrote (a replay, orphans freed): a crash anywhere in it must
  // recover again to an allowed state.
  pmem::CrashImageBuilder b(recorder.initial_image(), recorder.log());
  std::string problem;
  pmem::SeenStates seen;
  for (size_t p = 0; p < b.crash_points() && problem.empty(); ++p) {
    b.for_each_state(
        p, options.recovery_states_per_point, rng,
        [&](const pmem::CrashState& s) {
          ++st->recovery_states;
          FsSnapshot got;
          std::string pr = recover_and_check(s.image, oracle, lo, hi, options,
                                             nullptr, st, &got);
          if (!pr.empty()) {
            problem = fmt::format(
                "  a crash during recovery (recovery's crash point {} of {}, "
                "state \"{}\" #{}) "
                "leaves an image that does not recover:\n{}",
                p, b.crash_points(), s.how, s.index, pr);
            return false;
          }
          return true;
        },
        &seen);
  }
  return problem;
}

CheckStats CrashChecker::check(const pmem::Recorder& recorder,
                               const OracleRun& oracle,
                               const CheckOptions& options,
                               std::vector<std::string>* reports) {
  const auto t_start = Clock::now();
  CheckStats st;
  st.runs = 1;
  st.ops = oracle.ops.size();
  if (!view_) return st;

  std::vector<std::byte> initial = recorder.initial_image();
  EXPECT_EQ(initial.size(), pool_size_);
  pmfs::Superblock sb;
  std::memcpy(&sb, initial.data(), sizeof(sb));
  journal_off_ = sb.journal_start * pmfs::kBlockSize;
  pmem::CrashImageBuilder builder(std::move(initial), recorder.log());
  st.points = builder.crash_points();

  const LogLevel saved_level = log_level();
  set_log_level(LogLevel::Error);  // "freed orphan inode" is expected here

  std::mt19937_64 rng(options.rng_seed);
  pmem::SeenStates all_seen;     // for the distinct count only
  pmem::SeenStates window_seen;  // de-duplication inside one oracle window
  // The oracle window of the current point: snapshots lo..hi are allowed.
  size_t lo = 0, hi = 0;
  size_t window_lo = SIZE_MAX, window_hi = SIZE_MAX;
  uint64_t last_mark = 0;
  bool saw_mark = false;
  const size_t n_states = oracle.states.size();
  bool saved_image = false;

  for (size_t p = 0; p < builder.crash_points(); ++p) {
    const pmem::CrashPoint& cp = builder.point(p);
    if (cp.kind == pmem::OpKind::Mark) {
      last_mark = cp.tag;
      saw_mark = true;
      lo = hi = cp.tag;
    } else if (!saw_mark) {
      lo = hi = 0;  // before mark 0: mount, before any operation
    } else {
      lo = last_mark;
      hi = last_mark + 1;  // operation last_mark is in flight
    }
    hi = std::min(hi, n_states - 1);
    lo = std::min(lo, hi);
    if (lo != window_lo || hi != window_hi) {
      window_seen = pmem::SeenStates();
      window_lo = lo;
      window_hi = hi;
    }

    auto t_build = Clock::now();
    double inside = 0;  // time spent in the callback
    builder.for_each_state(
        p, options.max_states_per_point, rng,
        [&](const pmem::CrashState& s) {
          const auto t0 = Clock::now();
          ++st.states;
          if (all_seen.insert(s.hash)) ++st.distinct;
          std::string problem;

          // 1. fsck of the image as the crash left it.
          auto t = Clock::now();
          pmfs::FsckReport raw = pmfs::fsck_image(s.image);
          st.t_fsck_crash += since(t);
          for (const auto& note : raw.notes) {
            if (note.find("orphan") != std::string::npos) {
              ++st.orphan_states;
              break;
            }
          }
          // A committed transaction not yet applied in place, or one torn
          // while being written, is a legal crash state: fsck notes it (mount
          // replays or ignores it) and must find no error.
          for (const auto& e : raw.notes)
            if (e.starts_with("journal holds a committed transaction; replay needed"))
              ++st.replay_states;
          if (raw.operational_error || !raw.errors.empty() || !raw.uncorrected.empty()) {
            problem +=
                "  fsck of the crash image (before recovery) is not clean:\n" +
                fsck_lines(raw);
          }

          // 2.-4. recovery, the oracle, fsck of the recovered pool; on a
          // sample of states, also crashes during that recovery.
          const bool nested = options.recovery_crash_every != 0 &&
                              st.states % options.recovery_crash_every == 0;
          std::unique_ptr<pmem::Recorder> rec_log;
          if (nested) rec_log = std::make_unique<pmem::Recorder>();
          FsSnapshot got;
          problem += recover_and_check(s.image, oracle, lo, hi, options,
                                       rec_log.get(), &st, &got);
          if (nested && problem.empty()) {
            problem += check_recovery_crashes(*rec_log, oracle, lo, hi, options,
                                              rng, &st);
          }
          inside += since(t0);
          if (problem.empty()) return true;

          ++st.violations;
          // Report the first violation of each kind (its first line, numbers
          // blurred), up to max_reports kinds; count all of them.
          std::string kind = problem.substr(0, problem.find('\n'));
          for (char& c : kind) {
            if (c >= '0' && c <= '9') c = '#';
          }
          if (++st.kinds[kind] > 1 || reports->size() >= options.max_reports)
            return true;
          std::string r = fmt::format(
              "VIOLATION in {} (seed {}), crash point {} of {} (log entry {}, "
              "{}{}), state \"{}\" "
              "#{}:\n",
              oracle.name, oracle.seed, p, builder.crash_points(), cp.entry,
              cp.kind == pmem::OpKind::Mark ? "mark " : "fence",
              cp.kind == pmem::OpKind::Mark ? std::to_string(cp.tag)
                                            : std::string(),
              s.how, s.index);
          if (lo != hi) {
            r += fmt::format("  operation {} in flight: {}\n", lo,
                             lo < oracle.ops.size() ? oracle.ops[lo] : "?");
          } else {
            r += fmt::format(
                "  {} operations returned, none in flight{}\n", lo,
                lo > 0 ? "; last: " + oracle.ops[lo - 1] : std::string());
          }
          r += problem;
          const std::vector<pmem::Store> pend = builder.pending(p);
          r += fmt::format(
              "  {} stores in flight at this point (\"{}\" #{} selects among "
              "them):\n",
              pend.size(), s.how, s.index);
          for (size_t i = 0; i < pend.size() && i < 24; ++i) {
            r += fmt::format("    [{}] entry {} off {} len {} {} ({})\n", i,
                             pend[i].entry, pend[i].offset, pend[i].length,
                             pend[i].flushed ? "flushed" : "not flushed",
                             region_of(sb, pend[i].offset));
          }
          if (!saved_image && options.save_image) {
            saved_image = true;
            const std::string dir =
                options.keep_dir.empty() ? tmp_dir() : options.keep_dir;
            const std::string file =
                fmt::format("{}/zest-crash-violation-seed{}-point{}.img", dir,
                            oracle.seed, p);
            int fd = ::open(file.c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd >= 0) {
              if (::write(fd, s.image.data(), s.image.size()) ==
                  static_cast<ssize_t>(s.image.size())) {
                r += "  crash image saved as " + file +
                     " (zest fsck / pmfs::open it)\n";
              }
              ::close(fd);
            }
          }
          reports->push_back(std::move(r));
          return true;
        },
        &window_seen);
    st.t_other += since(t_build) - inside;
  }
  set_log_level(saved_level);
  st.seconds = since(t_start);
  return st;
}

}  // namespace zest::crash
