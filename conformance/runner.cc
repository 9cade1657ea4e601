#include "conformance/runner.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include "conformance/check.h"
#include "conformance/difftest.h"
#include "conformance/scratch.h"

namespace zest::conformance {

std::vector<Check> AllChecks() {
  std::vector<Check> all;
  AddFileChecks(&all);
  AddLinkChecks(&all);
  AddDirChecks(&all);
  AddAttrChecks(&all);
  return all;
}

namespace {

volatile sig_atomic_t g_stop = 0;

void OnStopSignal(int) { g_stop = 1; }

bool Selected(const std::optional<std::regex>& filter,
              const std::string& name) {
  return !filter || std::regex_search(name, *filter);
}

constexpr const char* kDiffName = "difftest";
constexpr const char* kDiffWhat =
    "random operations (--ops, --seed) on both sides in lockstep: every "
    "result, errno, byte and stat field compared";

bool Printable(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](unsigned char c) { return c >= 32 && c < 127; });
}

// A recorded value as it is printed in a FAIL line.
std::string Show(const std::string& v) {
  if (v.empty()) return "\"\"";
  if (Printable(v) && v.size() <= 100) return v;
  std::string out = std::to_string(v.size()) + " bytes";
  std::string head;
  for (size_t i = 0; i < v.size() && i < 16; ++i) {
    unsigned char c = v[i];
    if (c >= 32 && c < 127 && c != '\\') {
      head += static_cast<char>(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      head += b;
    }
  }
  return out + " \"" + head + (v.size() > 16 ? "...\"" : "\"");
}

std::string FirstDifference(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i])
      return " (first difference at byte " + std::to_string(i) + ")";
  return "";
}

struct Verdict {
  enum Kind { kPass, kFail, kSkip } kind = kPass;
  std::string detail;                // after "name: "
  std::vector<std::string> context;  // steps before the failure
};

Verdict Compare(const std::vector<Probe::Line>& o,
                const std::vector<Probe::Line>& s) {
  Verdict v;
  size_t n = std::max(o.size(), s.size());
  for (size_t i = 0; i < n; ++i) {
    if (i < o.size() && i < s.size() && o[i] == s[i]) continue;
    for (size_t k = i >= 3 ? i - 3 : 0; k < i; ++k)
      v.context.push_back(o[k].label + ": " + Show(o[k].value));
    if (i >= s.size()) {
      v.kind = Verdict::kFail;
      v.detail =
          o[i].label + ": expected " + Show(o[i].value) +
          " (tmpfs), got nothing (the check stopped after the previous step)";
    } else if (i >= o.size()) {
      v.kind = Verdict::kFail;
      v.detail = s[i].label + ": expected nothing (tmpfs stopped), got " +
                 Show(s[i].value);
    } else if (s[i].feature && o[i].value == "supported") {
      v.kind = Verdict::kSkip;
      v.detail =
          s[i].label + ": " + s[i].value + " on the mount, supported on tmpfs";
      v.context.clear();
    } else if (o[i].label != s[i].label) {
      v.kind = Verdict::kFail;
      v.detail = "the check took another path: expected step \"" + o[i].label +
                 "\" (tmpfs), got \"" + s[i].label + "\"";
    } else {
      v.kind = Verdict::kFail;
      v.detail = o[i].label + ": expected " + Show(o[i].value) +
                 " (tmpfs), got " + Show(s[i].value);
      if (Show(o[i].value) != o[i].value || Show(s[i].value) != s[i].value)
        v.detail += FirstDifference(o[i].value, s[i].value);
    }
    return v;
  }
  return v;
}

struct Tally {
  int pass = 0, fail = 0, skip = 0;
};

void Report(std::FILE* out, const std::string& name, const Verdict& v,
            Tally* t) {
  switch (v.kind) {
    case Verdict::kPass:
      std::fprintf(out, "PASS %s\n", name.c_str());
      ++t->pass;
      break;
    case Verdict::kSkip:
      std::fprintf(out, "SKIP %s: %s\n", name.c_str(), v.detail.c_str());
      ++t->skip;
      break;
    case Verdict::kFail:
      std::fprintf(out, "FAIL %s: %s\n", name.c_str(), v.detail.c_str());
      for (auto& c : v.context)
        std::fprintf(out, "       after  %s\n", c.c_str());
      ++t->fail;
      break;
  }
  std::fflush(out);
}

// Runs one check on both sides, each in a fresh directory named after it.
Verdict RunCheck(const Check& c, const std::string& oracle_root,
                 const std::string& subject_root) {
  std::string od = oracle_root + "/" + c.name, sd = subject_root + "/" + c.name;
  Verdict v;
  if (::mkdir(od.c_str(), 0755) != 0) {
    v.kind = Verdict::kFail;
    v.detail = "cannot create " + od + " on the tmpfs: " + std::strerror(errno);
    return v;
  }
  if (::mkdir(sd.c_str(), 0755) != 0) {
    v.kind = Verdict::kFail;
    v.detail =
        "mkdir of the check's directory " + sd + ": " + std::strerror(errno);
    RemoveTree(od);
    return v;
  }
  ::chmod(od.c_str(), 0755);
  ::chmod(sd.c_str(), 0755);
  Probe oracle(od), subject(sd);
  c.run(oracle);
  c.run(subject);
  v = Compare(oracle.lines(), subject.lines());
  RemoveTree(od);
  RemoveTree(sd);
  return v;
}

// Op kinds of the differential tester the subject visibly lacks (the same
// call works on tmpfs and answers "not implemented" there): left out, so
// that the tester finds the differences that remain. Says which.
std::string UnsupportedOps(const std::string& oracle,
                           const std::string& subject, std::string* notes) {
  std::string skip;
  auto probe = [&](const std::string& root,
                   const std::function<int(int, const std::string&)>& op) {
    std::string f = root + "/probe";
    UniqueFd fd(::open(f.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
    int e = fd ? op(fd.get(), f) : errno;
    ::unlink(f.c_str());
    return e;
  };
  auto missing = [](int e) {
    return e == EOPNOTSUPP || e == ENOSYS || e == ENOTTY;
  };
  struct Feature {
    const char* what;
    const char* ops;
    std::function<int(int, const std::string&)> op;
  } features[] = {
      {"xattrs", "setxattr,getxattr,listxattr,removexattr",
       [](int, const std::string& f) {
         return ::setxattr(f.c_str(), "user.probe", "1", 1, 0) ? errno : 0;
       }},
      {"fallocate", "fallocate",
       [](int fd, const std::string&) {
         return ::fallocate(fd, 0, 0, 4096) ? errno : 0;
       }},
      {"SEEK_HOLE", "lseek",
       [](int fd, const std::string&) {
         if (::pwrite(fd, "x", 1, 1 << 20) != 1) return errno;
         off_t h = ::lseek(fd, 0, SEEK_HOLE);
         return h < 0 ? errno : h > 0 ? EOPNOTSUPP : 0;
       }},
  };
  for (auto& ft : features) {
    int eo = probe(oracle, ft.op), es = probe(subject, ft.op);
    if (eo == 0 && missing(es)) {
      skip += std::string(skip.empty() ? "" : ",") + ft.ops;
      *notes += std::string("difftest: ") + ft.what +
                " unsupported on the mount (" + ErrnoName(es) +
                "): leaving out " + ft.ops + "\n";
    }
  }
  return skip;
}

Verdict RunDifftest(const RunOptions& o, const std::string& oracle_root,
                    const std::string& subject_root, std::FILE* out) {
  Verdict v;
  std::string notes;
  DiffOptions d;
  d.seed = o.seed;
  d.ops = o.ops;
  d.oracle_root = oracle_root;
  d.subject_root = subject_root;
  d.subject_name = o.mountpoint;
  d.compare_blocks = o.compare_blocks;
  d.compare_inodes = o.compare_inodes;
  d.subject_multigrain = true;
  d.skip_ops = o.skip_ops;
  std::string auto_skip = UnsupportedOps(oracle_root, subject_root, &notes);
  if (!auto_skip.empty())
    d.skip_ops += (d.skip_ops.empty() ? "" : ",") + auto_skip;
  std::fputs(notes.c_str(), out);
  bool tty = ::isatty(STDERR_FILENO);
  int last_decile = -1;
  auto start = std::chrono::steady_clock::now();
  d.progress = [&](int done) {
    if (g_stop) return false;
    if (tty) {
      std::fprintf(stderr, "\rdifftest: %d/%d operations (seed %llu)", done,
                   o.ops, (unsigned long long)o.seed);
      if (done == o.ops) std::fputc('\n', stderr);
    } else if (int decile = o.ops ? done * 10 / o.ops : 10;
               decile != last_decile) {
      last_decile = decile;
      std::fprintf(stderr, "difftest: %d/%d operations (seed %llu)\n", done,
                   o.ops, (unsigned long long)o.seed);
    }
    return true;
  };
  DiffResult r = RunDiffTest(d);
  if (tty && (r.interrupted || !r.ok)) std::fputc('\n', stderr);
  if (r.interrupted) return v;  // the caller sees g_stop
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (r.ok) {
    std::fprintf(
        out,
        "difftest: %d operations from seed %llu in %.1f s, no divergence\n",
        r.ops_run, (unsigned long long)o.seed, secs);
    return v;
  }
  v.kind = Verdict::kFail;
  // The report's first line says what differed; the rest is the history.
  std::string report = r.report;
  auto nl = report.find('\n');
  v.detail = report.substr(0, nl);
  if (nl != std::string::npos) {
    std::string rest = report.substr(nl + 1);
    size_t pos = 0;
    while (pos < rest.size()) {
      size_t e = rest.find('\n', pos);
      if (e == std::string::npos) e = rest.size();
      v.context.push_back(rest.substr(pos, e - pos));
      pos = e + 1;
    }
  }
  return v;
}

}  // namespace

void InstallStopSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sa.sa_flags = SA_RESETHAND;  // a second signal kills
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

void ListChecks(const std::optional<std::regex>& filter, std::FILE* out) {
  for (const Check& c : AllChecks())
    if (Selected(filter, c.name))
      std::fprintf(out, "%-26s %s%s\n", c.name.c_str(), c.what.c_str(),
                   c.needs_root ? " [root]" : "");
  if (Selected(filter, kDiffName))
    std::fprintf(out, "%-26s %s\n", kDiffName, kDiffWhat);
}

ExitCode RunConformance(const RunOptions& o, std::FILE* out) {
  ::umask(022);
  std::string why;
  auto oracle = TmpfsOracle::Create(&why);
  if (!oracle) {
    std::fprintf(stderr, "zest-conformance: %s\n", why.c_str());
    return kCannotRun;
  }
  auto scratch = ScratchDir::Create(o.scratch_parent, &why);
  if (!scratch) {
    std::fprintf(stderr, "zest-conformance: %s\n", why.c_str());
    return kCannotRun;
  }
  std::fprintf(out, "zest-conformance: testing %s (scratch %s) against %s\n",
               o.mountpoint.c_str(), scratch->path().c_str(),
               oracle->describe().c_str());
  std::fflush(out);
  const bool root = ::geteuid() == 0;
  Tally t;
  for (const Check& c : AllChecks()) {
    if (g_stop) break;
    if (!Selected(o.filter, c.name)) continue;
    if (c.needs_root && !root) {
      Report(out, c.name,
             {Verdict::kSkip, "needs root (changes owners and users)", {}}, &t);
      continue;
    }
    Verdict v = RunCheck(c, oracle->path(), scratch->path());
    if (g_stop) break;  // a signal may have cut a call short: no verdict
    Report(out, c.name, v, &t);
  }
  if (!g_stop && o.ops > 0 && Selected(o.filter, kDiffName)) {
    Verdict v = RunDifftest(o, oracle->path(), scratch->path(), out);
    if (!g_stop) Report(out, kDiffName, v, &t);
  }
  if (g_stop) {
    std::fprintf(
        out,
        "zest-conformance: interrupted; removing the scratch directories\n");
    return kInterrupted;
  }
  std::fprintf(
      out, "zest-conformance: %d checks: %d passed, %d failed, %d skipped\n",
      t.pass + t.fail + t.skip, t.pass, t.fail, t.skip);
  return t.fail ? kFailed : kAllPassed;
}

}  // namespace zest::conformance
