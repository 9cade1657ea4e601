#include "conformance/difftest.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <sstream>

#include "conformance/scratch.h"

namespace zest::conformance {
namespace {

constexpr int kSlots = 4;
// DiffOptions::progress is called every this many operations.
constexpr int kProgressEvery = 50;
const char* const kNames[] = {"a", "b", "c", "d"};
const char* const kXattrNames[] = {"user.a", "user.b", "trusted.t"};

// Op kinds and their weights. FALLOC_FL_ZERO_RANGE is left out: tmpfs (the
// oracle) answers EOPNOTSUPP; mount_test checks its contents on zest alone.
enum Op {
  kOpen,
  kClose,
  kWrite,
  kRead,
  kFtruncate,
  kTruncate,
  kRename,
  kLink,
  kUnlink,
  kMkdir,
  kRmdir,
  kSymlink,
  kReadlink,
  kChmod,
  kChown,
  kUtimens,
  kSetxattr,
  kGetxattr,
  kListxattr,
  kRemovexattr,
  kFallocate,
  kReaddir,
  kSeek,
  kStat,
  kFsync,
  kMkfifo,
  kOpCount
};
const char* const kOpNames[kOpCount] = {
    "open",      "close",    "write",    "read",      "ftruncate",
    "truncate",  "rename",   "link",     "unlink",    "mkdir",
    "rmdir",     "symlink",  "readlink", "chmod",     "chown",
    "utimensat", "setxattr", "getxattr", "listxattr", "removexattr",
    "fallocate", "readdir",  "lseek",    "stat",      "fsync",
    "mkfifo"};
const int kWeights[kOpCount] = {12, 3, 12, 9, 3, 3, 7, 3, 5, 6, 3, 3, 2,
                                3,  2, 3,  3, 3, 2, 2, 4, 3, 3, 3, 1, 1};

// One side's result of one operation.
struct Outcome {
  long ret = 0;
  int err = 0;
  std::string data;  // bytes read, link target, listing, ...
  bool operator==(const Outcome&) const = default;
};

Outcome Sys(long r) {
  Outcome o;
  o.ret = r;
  o.err = r < 0 ? errno : 0;
  return o;
}

std::string Printable(const std::string& d) {
  std::string out;
  size_t n = std::min<size_t>(d.size(), 96);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = d[i];
    if (c >= 32 && c < 127) {
      out += static_cast<char>(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  if (d.size() > n) out += "...(" + std::to_string(d.size()) + " bytes)";
  return out;
}

std::string Str(const Outcome& o) {
  std::string s = "ret=" + std::to_string(o.ret);
  if (o.ret < 0) s += std::string(" errno=") + strerrorname_np(o.err);
  if (!o.data.empty()) s += " data=\"" + Printable(o.data) + "\"";
  return s;
}

// The first offset where A and B differ, for content mismatches.
std::string FirstDifference(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return "first difference at byte " + std::to_string(i);
  return a.size() == b.size() ? "" : "lengths differ";
}

struct Side {
  const char* label;
  std::string top;   // the per-seed directory: top/s/w is the work directory
  std::string root;  // the work directory
  int fds[kSlots] = {-1, -1, -1, -1};
  std::string Path(const std::string& rel) const {
    return rel.empty() ? root : root + "/" + rel;
  }
};

struct StatResult {
  int err = 0;
  struct stat st {};
};

bool TsEq(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

std::string TsStr(const timespec& t) {
  char b[48];
  std::snprintf(b, sizeof b, "%lld.%09ld", static_cast<long long>(t.tv_sec),
                t.tv_nsec);
  return b;
}

std::string StatStr(const StatResult& r) {
  if (r.err) return std::string("errno=") + strerrorname_np(r.err);
  const struct stat& s = r.st;
  char b[320];
  std::snprintf(b, sizeof b,
                "ino=%llu mode=0%o nlink=%llu uid=%u gid=%u size=%lld "
                "blocks=%lld rdev=%llx atime=%s mtime=%s ctime=%s",
                (unsigned long long)s.st_ino, s.st_mode,
                (unsigned long long)s.st_nlink, s.st_uid, s.st_gid,
                (long long)s.st_size, (long long)s.st_blocks,
                (unsigned long long)s.st_rdev, TsStr(s.st_atim).c_str(),
                TsStr(s.st_mtim).c_str(), TsStr(s.st_ctim).c_str());
  return b;
}

// Last observed times of one inode on both sides.
struct TimeRecord {
  ino_t subject_ino;
  timespec o_mtime, o_ctime, s_mtime, s_ctime;
};

std::string Parent(const std::string& rel) {
  auto slash = rel.rfind('/');
  return slash == std::string::npos ? "" : rel.substr(0, slash);
}

int Depth(const std::string& rel) {
  return rel.empty()
             ? 0
             : 1 + static_cast<int>(std::count(rel.begin(), rel.end(), '/'));
}

class Tester {
 public:
  explicit Tester(const DiffOptions& opt) : opt_(opt), rng_(opt.seed) {
    o_.label = "oracle";
    s_.label = "subject";
    // Relative symlink targets stay inside the work directory when they are
    // made, but renaming a link (or its directory) closer to the root lets
    // its "../" climb out: up to two levels, as a target has at most two
    // "../" and a link lives at depth >= 1. Above the tester's directories
    // those would be different file systems (/dev/shm and the mountpoint's
    // parent), so the work directory sits two levels below a per-seed
    // directory whose levels look alike on both sides ("s", never one of
    // kNames, so nothing can be created under them through a link: only
    // files named a-d, which both sides then hold alike).
    std::string w = "/w" + std::to_string(opt.seed);
    o_.top = opt.oracle_root + w;
    s_.top = opt.subject_root + w;
    o_.root = o_.top + "/s/w";
    s_.root = s_.top + "/s/w";
    result_.op_counts.assign(kOpCount, 0);
    result_.op_ok.assign(kOpCount, 0);
    for (int i = 0; i < kOpCount; ++i) {
      std::string list = "," + opt.skip_ops + ",";
      weights_[i] =
          list.find(std::string(",") + kOpNames[i] + ",") == std::string::npos
              ? kWeights[i]
              : 0;
      total_weight_ += weights_[i];
    }
  }

  ~Tester() {
    for (Side* side : {&o_, &s_})
      for (int& fd : side->fds)
        if (fd >= 0) ::close(fd), fd = -1;
  }

  DiffResult Run() {
    mode_t old_umask = ::umask(022);
    for (Side* side : {&o_, &s_}) {
      ::mkdir(side->top.c_str(), 0755);
      ::mkdir((side->top + "/s").c_str(), 0755);
    }
    Both("mkdir w", [](Side& s) { return Sys(::mkdir(s.root.c_str(), 0755)); });
    if (!failed_) CheckPaths({""});
    for (index_ = 0; index_ < opt_.ops && !failed_; ++index_) {
      if (opt_.progress && index_ % kProgressEvery == 0 &&
          !opt_.progress(index_)) {
        result_.interrupted = true;
        break;
      }
      Step();
    }
    if (opt_.progress && !failed_ && !result_.interrupted)
      opt_.progress(index_);
    ::umask(old_umask);
    result_.ops_run = index_;
    if (!failed_) {
      // Close everything in lockstep (close can report flush errors).
      for (int slot = 0; slot < kSlots && !failed_; ++slot) CloseSlot(slot);
    }
    RemoveTree(o_.top);
    RemoveTree(s_.top);
    result_.ok = !failed_;
    return result_;
  }

 private:
  // --- randomness -----------------------------------------------------------
  uint64_t R(uint64_t n) { return n ? rng_() % n : 0; }
  bool P(int percent) { return R(100) < static_cast<uint64_t>(percent); }

  std::string RandPath() {
    int depth = P(60) ? 1 : (P(85) ? 2 : 3);
    std::string p;
    for (int i = 0; i < depth; ++i) {
      if (i) p += "/";
      p += kNames[R(4)];
    }
    return p;
  }
  std::string RandDir() {
    if (P(20)) return "";
    return P(75) ? ExistingPath(S_IFDIR) : RandPath();
  }

  // All paths that exist on the oracle (the tree is small), with lstat type.
  void Walk(const std::string& rel,
            std::vector<std::pair<std::string, mode_t>>* out) {
    DIR* d = ::opendir(o_.Path(rel).c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());  // deterministic order
    for (auto& n : names) {
      std::string child = rel.empty() ? n : rel + "/" + n;
      struct stat st;
      if (::lstat(o_.Path(child).c_str(), &st) != 0) continue;
      out->push_back({child, st.st_mode & S_IFMT});
      if (S_ISDIR(st.st_mode) && Depth(child) < 3) Walk(child, out);
    }
  }
  // Mostly an existing path (of TYPE when nonzero), so that operations on
  // existing objects succeed often; sometimes any path.
  std::string ExistingPath(mode_t type = 0) {
    if (P(20)) return RandPath();
    std::vector<std::pair<std::string, mode_t>> all, fit;
    Walk("", &all);
    for (auto& e : all)
      if (!type || e.second == type) fit.push_back(e);
    if (fit.empty()) return RandPath();
    return fit[R(fit.size())].first;
  }

  off_t RandOffset() {
    uint64_t c = R(100);
    if (c < 55) return R(16384);
    if (c < 75) return R(4) * 4096;
    if (c < 93) return R(262144);
    return (1 << 20) + R(65536);
  }
  size_t RandLen() {
    uint64_t c = R(100);
    if (c < 5) return 0;
    if (c < 70) return 1 + R(4096);
    if (c < 85) return 4096 * (1 + R(4));
    return 1 + R(65536);
  }
  std::string RandBytes(size_t n) {
    std::string d(n, '\0');
    for (size_t i = 0; i < n; i += 8) {
      uint64_t v = rng_();
      std::memcpy(&d[i], &v, std::min<size_t>(8, n - i));
    }
    return d;
  }
  // Relative symlink target that stays inside the work directory.
  std::string RandTarget(const std::string& link_rel) {
    if (P(5)) return std::string(100 + R(150), 'x');  // long, dangling
    std::string t;
    int up = static_cast<int>(R(Depth(Parent(link_rel)) + 1));
    for (int i = 0; i < up; ++i) t += "../";
    t += P(70) ? std::string(kNames[R(4)])
               : std::string(kNames[R(4)]) + "/" + kNames[R(4)];
    return t;
  }
  enum SlotUse { kAny, kReadable, kWritable };
  // Mostly an open slot that suits USE (a regular file open for reading or
  // writing), so that fd operations mostly succeed; sometimes any slot.
  int RandSlot(SlotUse use = kAny) {
    if (P(92)) {
      int fit[kSlots], n = 0, open[kSlots], m = 0;
      for (int i = 0; i < kSlots; ++i) {
        if (o_.fds[i] < 0) continue;
        open[m++] = i;
        int fl = ::fcntl(o_.fds[i], F_GETFL);
        int acc = fl & O_ACCMODE;
        bool ok = use == kAny ||
                  (SlotIsRegular(i) &&
                   (use == kReadable ? acc != O_WRONLY : acc != O_RDONLY));
        if (ok) fit[n++] = i;
      }
      if (n) return fit[R(n)];
      if (m) return open[R(m)];
    }
    return static_cast<int>(R(kSlots));
  }
  // Pipe I/O on a FIFO updates the FIFO's times on tmpfs, but the kernel
  // marks FUSE inodes S_NOCMTIME, so through FUSE it never does; that is the
  // kernel's business, not the server's, so FIFO data is left alone.
  bool SlotIsFifo(int slot) {
    struct stat st;
    return o_.fds[slot] >= 0 && ::fstat(o_.fds[slot], &st) == 0 &&
           S_ISFIFO(st.st_mode);
  }
  bool SlotIsRegular(int slot) {
    struct stat st;
    return o_.fds[slot] >= 0 && ::fstat(o_.fds[slot], &st) == 0 &&
           S_ISREG(st.st_mode);
  }

  // --- lockstep execution ---------------------------------------------------
  template <class F>
  Outcome Both(const std::string& desc, F&& f) {
    cur_ = desc;
    Outcome o = f(o_);
    Outcome s = f(s_);
    std::string line = "#" + std::to_string(index_) + " " + desc + " => " +
                       Str(o) + (o == s ? "" : "  | subject: " + Str(s));
    history_.push_back(line);
    if (history_.size() > 20) history_.pop_front();
    if (o.ret >= 0 && current_op_ < kOpCount) ok_this_op_ = true;
    if (!(o == s)) {
      std::string what = "results differ";
      if (o.ret == s.ret && o.err == s.err)
        what += " (" + FirstDifference(o.data, s.data) + ")";
      Fail(what, "oracle:  " + Str(o) + "\n  subject: " + Str(s));
    }
    return o;
  }

  void Fail(const std::string& what, const std::string& detail) {
    if (failed_) return;
    failed_ = true;
    std::ostringstream r;
    r << "difftest divergence: " << what << "\n"
      << "  subject " << opt_.subject_name << " (" << s_.root << "), oracle "
      << o_.root << "\n"
      << "  seed=" << opt_.seed << " op #" << index_ << " of " << opt_.ops
      << ": " << cur_ << "\n"
      << "  " << detail << "\n"
      << "  last ops (newest last):\n";
    for (auto& h : history_) r << "    " << h << "\n";
    r << "  reproduce: zest-conformance MOUNTPOINT --filter '^difftest$' "
      << "--seed " << opt_.seed << " --ops " << index_ + 1
      << ", or ZEST_DIFFTEST_SEED=" << opt_.seed
      << " ZEST_DIFFTEST_OPS=" << index_ + 1 << " difftest_test\n";
    result_.report = r.str();
  }

  // --- state comparison -----------------------------------------------------
  void CompareStat(const std::string& what, const StatResult& o,
                   const StatResult& s) {
    if (failed_) return;
    auto fail = [&](const std::string& field) {
      Fail(what + ": " + field + " differs",
           "oracle:  " + StatStr(o) + "\n  subject: " + StatStr(s));
    };
    if (o.err || s.err) {
      if (o.err != s.err) fail("stat result");
      return;
    }
    const struct stat &a = o.st, &b = s.st;
    if (a.st_mode != b.st_mode) return fail("st_mode");
    if (a.st_nlink != b.st_nlink) return fail("st_nlink");
    if (a.st_uid != b.st_uid) return fail("st_uid");
    if (a.st_gid != b.st_gid) return fail("st_gid");
    if (a.st_rdev != b.st_rdev) return fail("st_rdev");
    if (!S_ISDIR(a.st_mode) && a.st_size != b.st_size) return fail("st_size");
    if (opt_.compare_blocks && S_ISREG(a.st_mode) && a.st_blocks != b.st_blocks)
      return fail("st_blocks");
    auto it = times_.find(a.st_ino);
    if (it == times_.end()) {
      times_[a.st_ino] = {b.st_ino, a.st_mtim, a.st_ctim, b.st_mtim, b.st_ctim};
      return;
    }
    TimeRecord& t = it->second;
    if (opt_.compare_inodes && t.subject_ino != b.st_ino)
      return fail("inode identity (oracle inode seen before as subject inode " +
                  std::to_string(t.subject_ino) + ")");
    bool om = !TsEq(a.st_mtim, t.o_mtime), sm = !TsEq(b.st_mtim, t.s_mtime);
    bool oc = !TsEq(a.st_ctim, t.o_ctime), sc = !TsEq(b.st_ctim, t.s_ctime);
    TimeRecord before = t;
    t = {b.st_ino, a.st_mtim, a.st_ctim, b.st_mtim, b.st_ctim};
    auto times = [&]() {
      return "oracle:  " + StatStr(o) + "\n  subject: " + StatStr(s) +
             "\n  last seen: oracle mtime=" + TsStr(before.o_mtime) +
             " ctime=" + TsStr(before.o_ctime) +
             ", subject mtime=" + TsStr(before.s_mtime) +
             " ctime=" + TsStr(before.s_ctime);
    };
    if (tolerate_dir_time_gain_ && S_ISDIR(a.st_mode)) {
      if (!om) sm = false;
      if (!oc) sc = false;
      // The subject may have the same quirk (tmpfs, and the disk file
      // systems with multigrain timestamps): then either side may miss.
      if (opt_.subject_multigrain) om = sm, oc = sc;
    }
    if (om != sm)
      return Fail(
          what + ": mtime " +
              (om ? "changed on oracle only" : "changed on subject only"),
          times());
    if (oc != sc)
      return Fail(
          what + ": ctime " +
              (oc ? "changed on oracle only" : "changed on subject only"),
          times());
  }

  StatResult DoStat(const Side& side, const std::string& rel, bool follow) {
    StatResult r;
    int rc = follow ? ::stat(side.Path(rel).c_str(), &r.st)
                    : ::lstat(side.Path(rel).c_str(), &r.st);
    if (rc != 0) r.err = errno;
    return r;
  }

  // lstat (and stat, through a symlink) of each path on both sides.
  void CheckPaths(std::vector<std::string> rels) {
    std::sort(rels.begin(), rels.end());
    rels.erase(std::unique(rels.begin(), rels.end()), rels.end());
    for (auto& rel : rels) {
      if (failed_) return;
      StatResult o = DoStat(o_, rel, false), s = DoStat(s_, rel, false);
      CompareStat("lstat w/" + rel, o, s);
      if (!failed_ && !o.err && S_ISLNK(o.st.st_mode)) {
        StatResult fo = DoStat(o_, rel, true), fs = DoStat(s_, rel, true);
        CompareStat("stat w/" + rel, fo, fs);
      }
    }
  }

  // tmpfs quirk: link, unlink, rmdir and rename set the parent's times from
  // the other inode's ctime_current() and so clear the
  // parent's "ctime queried" flag; with multigrain timestamps the following
  // coarse-grained update can then leave the parent's mtime/ctime exactly at
  // its previous value although the directory changed. So for those ops a
  // directory whose times changed on the subject only is not a divergence.
  bool tolerate_dir_time_gain_ = false;
  void QueryOracle(const std::vector<std::string>& rels) {
    struct stat st;
    for (auto& rel : rels) ::lstat(o_.Path(rel).c_str(), &st);
  }

  void CheckFd(int slot) {
    if (failed_ || (o_.fds[slot] < 0 && s_.fds[slot] < 0)) return;
    StatResult o, s;
    if (::fstat(o_.fds[slot], &o.st) != 0) o.err = errno;
    if (::fstat(s_.fds[slot], &s.st) != 0) s.err = errno;
    CompareStat("fstat slot " + std::to_string(slot), o, s);
  }
  void CheckAllFds() {
    for (int i = 0; i < kSlots; ++i) CheckFd(i);
  }

  void CloseSlot(int slot) {
    if (o_.fds[slot] < 0 && s_.fds[slot] < 0) return;
    Both("close slot " + std::to_string(slot), [slot](Side& s) {
      Outcome r = Sys(::close(s.fds[slot]));
      s.fds[slot] = -1;
      return r;
    });
  }

  // Checks the explicit times of a successful utimensat exactly.
  void CheckExplicitTimes(const std::string& rel, int slot, bool follow,
                          const timespec* ts) {
    if (failed_) return;
    StatResult o, s;
    if (slot >= 0) {
      if (::fstat(o_.fds[slot], &o.st) != 0) o.err = errno;
      if (::fstat(s_.fds[slot], &s.st) != 0) s.err = errno;
    } else {
      o = DoStat(o_, rel, follow);
      s = DoStat(s_, rel, follow);
    }
    CompareStat("after utimensat", o, s);
    if (failed_ || o.err || s.err || !ts) return;
    auto explicit_time = [](const timespec& t) {
      return t.tv_nsec != UTIME_NOW && t.tv_nsec != UTIME_OMIT;
    };
    if (explicit_time(ts[0]) && !TsEq(o.st.st_atim, s.st.st_atim))
      Fail("explicit atime differs",
           "oracle:  " + StatStr(o) + "\n  subject: " + StatStr(s));
    else if (explicit_time(ts[1]) && !TsEq(o.st.st_mtim, s.st.st_mtim))
      Fail("explicit mtime differs",
           "oracle:  " + StatStr(o) + "\n  subject: " + StatStr(s));
  }

  static std::string SortedXattrList(const char* buf, long n) {
    std::vector<std::string> names;
    for (long i = 0; i < n;) {
      std::string name(buf + i);
      i += name.size() + 1;
      names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    std::string out;
    for (auto& nm : names) out += nm + ",";
    return out;
  }

  Op PickOp() {
    int r = static_cast<int>(R(total_weight_));
    for (int i = 0; i < kOpCount; ++i) {
      if (r < weights_[i]) return static_cast<Op>(i);
      r -= weights_[i];
    }
    return kStat;
  }

  void Step() {
    Op op = PickOp();
    current_op_ = op;
    ok_this_op_ = false;
    StepOp(op);
    if (ok_this_op_) result_.op_ok[op]++;
  }

  void StepOp(Op op) {
    tolerate_dir_time_gain_ =
        op == kRename || op == kUnlink || op == kRmdir || op == kLink;
    result_.op_counts[op]++;
    switch (op) {
      case kOpen: {
        int slot = static_cast<int>(R(kSlots));
        std::string rel = P(50) ? ExistingPath() : RandPath();
        static const int kAcc[] = {O_RDONLY, O_WRONLY, O_RDWR, O_RDWR, O_RDWR};
        int flags = kAcc[R(5)];
        if (P(65)) flags |= O_CREAT;
        if (P(10)) flags |= O_EXCL;
        if (P(8)) flags |= O_TRUNC;
        if (P(10)) flags |= O_APPEND;
        if (P(4)) flags |= O_DIRECTORY;
        if (P(5)) flags |= O_NOFOLLOW;
        static const mode_t kModes[] = {0644, 0600, 0755, 0444, 0, 06755, 0777};
        mode_t mode = kModes[R(7)];
        // Opening a FIFO without O_NONBLOCK would block the tester.
        struct stat st;
        int src = (flags & O_NOFOLLOW) ? ::lstat(o_.Path(rel).c_str(), &st)
                                       : ::stat(o_.Path(rel).c_str(), &st);
        if (src == 0 && S_ISFIFO(st.st_mode)) flags |= O_NONBLOCK;
        CloseSlot(slot);
        char desc[160];
        std::snprintf(desc, sizeof desc, "open slot %d w/%s flags=0%o mode=0%o",
                      slot, rel.c_str(), flags, mode);
        Both(desc, [&](Side& s) {
          int fd = ::open(s.Path(rel).c_str(), flags | O_CLOEXEC, mode);
          Outcome r = Sys(fd < 0 ? -1 : 0);
          s.fds[slot] = fd;
          return r;
        });
        if (flags & (O_CREAT | O_TRUNC)) CheckPaths({rel, Parent(rel)});
        CheckFd(slot);
        break;
      }
      case kClose:
        CloseSlot(RandSlot());
        break;
      case kWrite: {
        int slot = RandSlot(kWritable);
        if (SlotIsFifo(slot)) break;
        bool positional = P(70);
        off_t off = RandOffset();
        std::string data = RandBytes(RandLen());
        char desc[128];
        std::snprintf(desc, sizeof desc, "%s slot %d off=%lld len=%zu",
                      positional ? "pwrite" : "write", slot,
                      positional ? (long long)off : -1LL, data.size());
        Both(desc, [&](Side& s) {
          return Sys(positional
                         ? ::pwrite(s.fds[slot], data.data(), data.size(), off)
                         : ::write(s.fds[slot], data.data(), data.size()));
        });
        CheckFd(slot);
        break;
      }
      case kRead: {
        int slot = RandSlot(kReadable);
        if (SlotIsFifo(slot)) break;
        bool positional = P(75);
        off_t off = RandOffset();
        size_t len = P(90) ? R(16385) : R(131073);
        char desc[128];
        std::snprintf(desc, sizeof desc, "%s slot %d off=%lld len=%zu",
                      positional ? "pread" : "read", slot,
                      positional ? (long long)off : -1LL, len);
        Both(desc, [&](Side& s) {
          std::string buf(len, '\0');
          long n = positional ? ::pread(s.fds[slot], buf.data(), len, off)
                              : ::read(s.fds[slot], buf.data(), len);
          Outcome r = Sys(n);
          if (n > 0) r.data = buf.substr(0, n);
          return r;
        });
        break;
      }
      case kFtruncate: {
        int slot = RandSlot(kWritable);
        off_t len = RandOffset();
        Both("ftruncate slot " + std::to_string(slot) +
                 " len=" + std::to_string(len),
             [&](Side& s) { return Sys(::ftruncate(s.fds[slot], len)); });
        CheckFd(slot);
        break;
      }
      case kTruncate: {
        std::string rel = ExistingPath(S_IFREG);
        off_t len = RandOffset();
        Both("truncate w/" + rel + " len=" + std::to_string(len), [&](Side& s) {
          return Sys(::truncate(s.Path(rel).c_str(), len));
        });
        CheckPaths({rel});
        break;
      }
      case kRename: {
        std::string a = ExistingPath(), b = P(50) ? ExistingPath() : RandPath();
        static const unsigned kFlags[] = {0, 0, RENAME_NOREPLACE,
                                          RENAME_EXCHANGE};
        unsigned flags = kFlags[R(4)];
        QueryOracle({a, b});
        Both("rename w/" + a + " -> w/" + b + " flags=" + std::to_string(flags),
             [&](Side& s) {
               return Sys(::syscall(SYS_renameat2, AT_FDCWD, s.Path(a).c_str(),
                                    AT_FDCWD, s.Path(b).c_str(), flags));
             });
        CheckPaths({a, b, Parent(a), Parent(b)});
        CheckAllFds();
        break;
      }
      case kLink: {
        std::string a = ExistingPath(), b = RandPath();
        int flags = P(20) ? AT_SYMLINK_FOLLOW : 0;
        Both("link w/" + a + " -> w/" + b + (flags ? " FOLLOW" : ""),
             [&](Side& s) {
               return Sys(::linkat(AT_FDCWD, s.Path(a).c_str(), AT_FDCWD,
                                   s.Path(b).c_str(), flags));
             });
        CheckPaths({a, b, Parent(b)});
        CheckAllFds();
        break;
      }
      case kUnlink: {
        std::string rel = ExistingPath();
        QueryOracle({rel});
        Both("unlink w/" + rel,
             [&](Side& s) { return Sys(::unlink(s.Path(rel).c_str())); });
        CheckPaths({rel, Parent(rel)});
        CheckAllFds();
        break;
      }
      case kMkdir: {
        std::string rel = RandPath();
        static const mode_t kModes[] = {0755, 0700, 0777, 01777, 02775, 0};
        mode_t mode = kModes[R(6)];
        char desc[96];
        std::snprintf(desc, sizeof desc, "mkdir w/%s mode=0%o", rel.c_str(),
                      mode);
        Both(desc,
             [&](Side& s) { return Sys(::mkdir(s.Path(rel).c_str(), mode)); });
        CheckPaths({rel, Parent(rel)});
        break;
      }
      case kRmdir: {
        std::string rel = ExistingPath(S_IFDIR);
        QueryOracle({rel});
        Both("rmdir w/" + rel,
             [&](Side& s) { return Sys(::rmdir(s.Path(rel).c_str())); });
        CheckPaths({rel, Parent(rel)});
        CheckAllFds();
        break;
      }
      case kSymlink: {
        std::string rel = RandPath();
        std::string target = RandTarget(rel);
        Both("symlink w/" + rel + " -> " + target, [&](Side& s) {
          return Sys(::symlink(target.c_str(), s.Path(rel).c_str()));
        });
        CheckPaths({rel, Parent(rel)});
        break;
      }
      case kReadlink: {
        std::string rel = ExistingPath(S_IFLNK);
        size_t size = P(85) ? 4096 : R(8);
        Both("readlink w/" + rel + " size=" + std::to_string(size),
             [&](Side& s) {
               std::string buf(size, '\0');
               long n = ::readlink(s.Path(rel).c_str(), buf.data(), size);
               Outcome r = Sys(n);
               if (n > 0) r.data = buf.substr(0, n);
               return r;
             });
        break;
      }
      case kChmod: {
        mode_t mode = static_cast<mode_t>(R(010000));
        char desc[96];
        if (P(30)) {
          int slot = RandSlot();
          std::snprintf(desc, sizeof desc, "fchmod slot %d mode=0%o", slot,
                        mode);
          Both(desc, [&](Side& s) { return Sys(::fchmod(s.fds[slot], mode)); });
          CheckFd(slot);
        } else {
          std::string rel = ExistingPath();
          std::snprintf(desc, sizeof desc, "chmod w/%s mode=0%o", rel.c_str(),
                        mode);
          Both(desc, [&](Side& s) {
            return Sys(::chmod(s.Path(rel).c_str(), mode));
          });
          CheckPaths({rel});
        }
        break;
      }
      case kChown: {
        static const uid_t kIds[] = {0, 1000, 1001, static_cast<uid_t>(-1)};
        uid_t uid = kIds[R(4)];
        gid_t gid = kIds[R(4)];
        int kind = static_cast<int>(R(3));
        std::string ids = " uid=" + std::to_string((int)uid) +
                          " gid=" + std::to_string((int)gid);
        if (kind == 2) {
          int slot = RandSlot();
          Both("fchown slot " + std::to_string(slot) + ids,
               [&](Side& s) { return Sys(::fchown(s.fds[slot], uid, gid)); });
          CheckFd(slot);
        } else {
          std::string rel = ExistingPath();
          Both((kind ? "lchown w/" : "chown w/") + rel + ids, [&](Side& s) {
            return Sys(kind ? ::lchown(s.Path(rel).c_str(), uid, gid)
                            : ::chown(s.Path(rel).c_str(), uid, gid));
          });
          CheckPaths({rel});
        }
        break;
      }
      case kUtimens: {
        timespec ts[2];
        std::string tdesc;
        for (auto& t : ts) {
          uint64_t c = R(10);
          if (c < 6) {
            t.tv_sec = 1000000000 + static_cast<time_t>(R(1000000000));
            t.tv_nsec = static_cast<long>(R(1000000000));
            tdesc += " " + TsStr(t);
          } else if (c < 8) {
            t.tv_sec = 0;
            t.tv_nsec = UTIME_NOW;
            tdesc += " NOW";
          } else {
            t.tv_sec = 0;
            t.tv_nsec = UTIME_OMIT;
            tdesc += " OMIT";
          }
        }
        const timespec* times = P(5) ? nullptr : ts;
        if (!times) tdesc = " NULL";
        if (P(20)) {
          int slot = RandSlot();
          Both("futimens slot " + std::to_string(slot) + tdesc,
               [&](Side& s) { return Sys(::futimens(s.fds[slot], times)); });
          CheckExplicitTimes("", slot, false, times);
        } else {
          std::string rel = ExistingPath();
          bool nofollow = P(30);
          Outcome r = Both(
              "utimensat w/" + rel + tdesc + (nofollow ? " NOFOLLOW" : ""),
              [&](Side& s) {
                return Sys(::utimensat(AT_FDCWD, s.Path(rel).c_str(), times,
                                       nofollow ? AT_SYMLINK_NOFOLLOW : 0));
              });
          if (r.ret == 0) CheckExplicitTimes(rel, -1, !nofollow, times);
          CheckPaths({rel});
        }
        break;
      }
      case kSetxattr: {
        std::string rel = ExistingPath();
        const char* name = kXattrNames[R(3)];
        std::string value = RandBytes(R(4) == 0 ? 0 : R(64));
        static const int kFlags[] = {0, 0, XATTR_CREATE, XATTR_REPLACE};
        int flags = kFlags[R(4)];
        bool follow = P(30);
        Both(std::string(follow ? "setxattr" : "lsetxattr") + " w/" + rel +
                 " " + name + " len=" + std::to_string(value.size()) +
                 " flags=" + std::to_string(flags),
             [&](Side& s) {
               auto fn = follow ? ::setxattr : ::lsetxattr;
               return Sys(fn(s.Path(rel).c_str(), name, value.data(),
                             value.size(), flags));
             });
        CheckPaths({rel});
        break;
      }
      case kGetxattr: {
        std::string rel = ExistingPath();
        const char* name = kXattrNames[R(3)];
        static const size_t kSizes[] = {0, 2, 256, 256};
        size_t size = kSizes[R(4)];
        Both(
            "lgetxattr w/" + rel + " " + name + " size=" + std::to_string(size),
            [&](Side& s) {
              std::string buf(size, '\0');
              long n = ::lgetxattr(s.Path(rel).c_str(), name,
                                   size ? buf.data() : nullptr, size);
              Outcome r = Sys(n);
              if (n > 0 && size) r.data = buf.substr(0, n);
              return r;
            });
        break;
      }
      case kListxattr: {
        std::string rel = ExistingPath();
        static const size_t kSizes[] = {0, 4, 1024, 1024};
        size_t size = kSizes[R(4)];
        Both("llistxattr w/" + rel + " size=" + std::to_string(size),
             [&](Side& s) {
               std::string buf(size, '\0');
               long n = ::llistxattr(s.Path(rel).c_str(),
                                     size ? buf.data() : nullptr, size);
               Outcome r = Sys(n);
               if (n > 0 && size) r.data = SortedXattrList(buf.data(), n);
               return r;
             });
        break;
      }
      case kRemovexattr: {
        std::string rel = ExistingPath();
        const char* name = kXattrNames[R(3)];
        Both("lremovexattr w/" + rel + " " + name, [&](Side& s) {
          return Sys(::lremovexattr(s.Path(rel).c_str(), name));
        });
        CheckPaths({rel});
        break;
      }
      case kFallocate: {
        int slot = RandSlot(kWritable);
        static const int kModes[] = {
            0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE};
        int mode = kModes[R(3)];
        off_t off = RandOffset();
        off_t len = 1 + static_cast<off_t>(R(P(50) ? 65536 : 8192));
        char desc[128];
        std::snprintf(desc, sizeof desc,
                      "fallocate slot %d mode=%d off=%lld len=%lld", slot, mode,
                      (long long)off, (long long)len);
        Both(desc, [&](Side& s) {
          return Sys(::fallocate(s.fds[slot], mode, off, len));
        });
        CheckFd(slot);
        break;
      }
      case kReaddir: {
        std::string rel = RandDir();
        Both("readdir w/" + rel, [&](Side& s) {
          DIR* d = ::opendir(s.Path(rel).c_str());
          if (!d) return Sys(-1);
          std::vector<std::string> entries;
          errno = 0;
          while (dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n == "." || n == "..") continue;
            entries.push_back(n + ":" + std::to_string(e->d_type));
          }
          Outcome r = Sys(errno ? -1 : 0);
          ::closedir(d);
          std::sort(entries.begin(), entries.end());
          for (auto& e : entries) r.data += e + " ";
          return r;
        });
        break;
      }
      case kSeek: {
        int slot = RandSlot(kReadable);
        // Directory offsets are each fs's own business (tmpfs answers EINVAL
        // to SEEK_DATA on a directory, FUSE's generic llseek does not).
        if (o_.fds[slot] >= 0 && !SlotIsRegular(slot)) break;
        static const int kWhence[] = {SEEK_DATA, SEEK_HOLE, SEEK_DATA,
                                      SEEK_HOLE, SEEK_SET,  SEEK_END};
        static const char* const kWhenceName[] = {"DATA", "HOLE", "DATA",
                                                  "HOLE", "SET",  "END"};
        int w = static_cast<int>(R(6));
        off_t off =
            kWhence[w] == SEEK_END ? -static_cast<off_t>(R(100)) : RandOffset();
        Both("lseek slot " + std::to_string(slot) + " " + std::to_string(off) +
                 " SEEK_" + kWhenceName[w],
             [&](Side& s) {
               return Sys(::lseek(s.fds[slot], off, kWhence[w]));
             });
        break;
      }
      case kStat: {
        std::string rel = ExistingPath();
        cur_ = "stat w/" + rel;
        history_.push_back("#" + std::to_string(index_) + " " + cur_);
        if (history_.size() > 20) history_.pop_front();
        CheckPaths({rel});
        break;
      }
      case kFsync: {
        int slot = RandSlot();
        bool data_only = P(50);
        Both(std::string(data_only ? "fdatasync" : "fsync") + " slot " +
                 std::to_string(slot),
             [&](Side& s) {
               return Sys(data_only ? ::fdatasync(s.fds[slot])
                                    : ::fsync(s.fds[slot]));
             });
        break;
      }
      case kMkfifo: {
        std::string rel = RandPath();
        Both("mknod fifo w/" + rel, [&](Side& s) {
          return Sys(::mknod(s.Path(rel).c_str(), S_IFIFO | 0640, 0));
        });
        CheckPaths({rel, Parent(rel)});
        break;
      }
      case kOpCount:
        break;
    }
  }

  DiffOptions opt_;
  std::mt19937_64 rng_;
  Side o_, s_;
  int weights_[kOpCount] = {};
  int current_op_ = kOpCount;
  bool ok_this_op_ = false;
  int total_weight_ = 0;
  int index_ = 0;
  bool failed_ = false;
  std::string cur_;
  std::deque<std::string> history_;
  std::map<ino_t, TimeRecord> times_;
  DiffResult result_;
};

}  // namespace

DiffResult RunDiffTest(const DiffOptions& options) {
  Tester t(options);
  return t.Run();
}

const char* DiffOpName(size_t i) { return i < kOpCount ? kOpNames[i] : "?"; }

}  // namespace zest::conformance
