// zest-conformance: the conformance kit for file-system authors
// (docs/conformance.md). Given any mounted file system, compares it with a
// tmpfs: a set of POSIX behaviour checks, then the differential tester.
//
//   zest-conformance MOUNTPOINT [--seed N] [--ops N] [--filter REGEX]
//                    [--scratch DIR] [--no-blocks] [--no-inodes]
//                    [--skip-ops LIST] [--list] [--help]
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "conformance/runner.h"

namespace {

using zest::conformance::ExitCode;

const char kUsage[] =
    "usage: zest-conformance MOUNTPOINT [options]\n"
    "\n"
    "Compares the file system mounted on MOUNTPOINT with a tmpfs: POSIX\n"
    "behaviour checks, then random operations (the differential tester).\n"
    "Works in a fresh directory MOUNTPOINT/zest-conformance-XXXXXX, removed\n"
    "afterwards.\n"
    "\n"
    "options:\n"
    "  --seed N         seed of the differential tester (default 1)\n"
    "  --ops N          its number of operations (default 2000; 0: skip it)\n"
    "  --filter REGEX   run only the checks whose name matches (ECMAScript,\n"
    "                   searched: --filter '^rename\\.' or --filter difftest)\n"
    "  --scratch DIR    make the scratch directory in DIR, a directory of the\n"
    "                   same file system (default: MOUNTPOINT)\n"
    "  --no-blocks      difftest: do not compare st_blocks\n"
    "  --no-inodes      difftest: do not compare inode identity of hard links\n"
    "  --skip-ops LIST  difftest: leave out these operations (comma "
    "separated)\n"
    "  --list           list the checks (with --filter: those it selects)\n"
    "  --help           this text\n"
    "\n"
    "output: PASS name | FAIL name: step: expected X (tmpfs), got Y |\n"
    "        SKIP name: reason; then a summary.\n"
    "exit status: 0 every check passed (or was skipped), 1 a check failed,\n"
    "             2 usage error or the run could not start, 130 interrupted.\n";

int Usage(const std::string& msg) {
  std::fprintf(stderr,
               "zest-conformance: %s\n(zest-conformance --help for usage)\n",
               msg.c_str());
  return zest::conformance::kCannotRun;
}

bool ParseNumber(const std::string& s, unsigned long long max,
                 unsigned long long* out) {
  if (s.empty() || s[0] == '-') return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (errno || *end || v > max) return false;
  *out = v;
  return true;
}

// The type of the mount that holds PATH (an absolute, resolved path), from
// /proc/self/mountinfo: the longest mountpoint that is a prefix of it.
std::string MountTypeOf(const std::string& path, bool* is_mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, best_mnt, best_type;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mnt, tok, type;
    ls >> id >> parent >> devno >> root >> mnt;
    while (ls >> tok && tok != "-") {
    }
    ls >> type;
    bool prefix =
        path == mnt || mnt == "/" ||
        (path.compare(0, mnt.size(), mnt) == 0 && path[mnt.size()] == '/');
    if (prefix && mnt.size() >= best_mnt.size()) {
      best_mnt = mnt;
      best_type = type;
    }
  }
  *is_mountpoint = best_mnt == path;
  return best_type.empty() ? "unknown" : best_type;
}

// Says what is wrong with DIR as a place to work in, or "".
std::string Unusable(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return dir + ": " + std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return dir + ": not a directory";
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return dir + ": not writable (" + std::strerror(errno) + ")";
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  zest::conformance::RunOptions opt;
  std::string mountpoint, scratch, filter;
  bool list = false, have_filter = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      auto eq = a.find('=');
      if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
        *out = a.substr(eq + 1);
        return true;
      }
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string name = a.substr(0, a.find('='));
    std::string v;
    unsigned long long n = 0;
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--list") {
      list = true;
    } else if (a == "--no-blocks") {
      opt.compare_blocks = false;
    } else if (a == "--no-inodes") {
      opt.compare_inodes = false;
    } else if (name == "--seed") {
      if (!value(&v) || !ParseNumber(v, ULLONG_MAX, &n))
        return Usage("--seed needs a number, got '" + v + "'");
      opt.seed = n;
    } else if (name == "--ops") {
      if (!value(&v) || !ParseNumber(v, INT_MAX, &n))
        return Usage("--ops needs a number, got '" + v + "'");
      opt.ops = static_cast<int>(n);
    } else if (name == "--filter") {
      if (!value(&filter)) return Usage("--filter needs a regular expression");
      have_filter = true;
    } else if (name == "--scratch") {
      if (!value(&scratch)) return Usage("--scratch needs a directory");
    } else if (name == "--skip-ops") {
      if (!value(&opt.skip_ops)) return Usage("--skip-ops needs a list");
    } else if (a.size() > 1 && a[0] == '-') {
      return Usage("unknown option " + a);
    } else if (mountpoint.empty()) {
      mountpoint = a;
    } else {
      return Usage("one MOUNTPOINT only (got '" + mountpoint + "' and '" + a +
                   "')");
    }
  }
  if (have_filter) {
    try {
      opt.filter.emplace(filter, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return Usage("--filter '" + filter + "': " + e.what());
    }
  }
  if (list) {
    zest::conformance::ListChecks(opt.filter, stdout);
    return 0;
  }
  if (mountpoint.empty()) return Usage("MOUNTPOINT missing");
  if (std::string why = Unusable(mountpoint); !why.empty()) return Usage(why);
  char resolved[PATH_MAX];
  if (!::realpath(mountpoint.c_str(), resolved))
    return Usage(mountpoint + ": " + std::strerror(errno));
  opt.mountpoint = resolved;
  opt.scratch_parent = resolved;
  if (!scratch.empty()) {
    if (std::string why = Unusable(scratch); !why.empty()) return Usage(why);
    char rs[PATH_MAX];
    if (!::realpath(scratch.c_str(), rs))
      return Usage(scratch + ": " + std::strerror(errno));
    struct stat a {
    }, b{};
    ::stat(resolved, &a);
    ::stat(rs, &b);
    if (a.st_dev != b.st_dev)
      return Usage(scratch + ": not on the file system of " + mountpoint);
    opt.scratch_parent = rs;
  }
  bool is_mountpoint = false;
  std::string type = MountTypeOf(opt.mountpoint, &is_mountpoint);
  if (!is_mountpoint)
    std::fprintf(stderr,
                 "zest-conformance: note: %s is not a mount point; testing the "
                 "%s file system it is on\n",
                 opt.mountpoint.c_str(), type.c_str());
  if (type == "tmpfs")
    std::fprintf(
        stderr,
        "zest-conformance: note: %s is a tmpfs: comparing tmpfs with itself\n",
        opt.mountpoint.c_str());
  opt.mountpoint += " (" + type + ")";
  zest::conformance::InstallStopSignals();
  return zest::conformance::RunConformance(opt, stdout);
}
