#include "tests/crash/workload.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cstring>

namespace zest::crash {

using pmfs::test::PmFsHarness;

std::string errno_name(int err) {
  switch (err) {
    case 0:
      return "ok";
    case ENOENT:
      return "ENOENT";
    case EEXIST:
      return "EEXIST";
    case ENOTDIR:
      return "ENOTDIR";
    case EISDIR:
      return "EISDIR";
    case ENOTEMPTY:
      return "ENOTEMPTY";
    case EINVAL:
      return "EINVAL";
    case ENOSPC:
      return "ENOSPC";
    case EPERM:
      return "EPERM";
    case EMLINK:
      return "EMLINK";
    case ENODATA:
      return "ENODATA";
    case ERANGE:
      return "ERANGE";
    case EFBIG:
      return "EFBIG";
    case EBUSY:
      return "EBUSY";
    case EIO:
      return "EIO";
    case ENAMETOOLONG:
      return "ENAMETOOLONG";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    case ENODEV:
      return "ENODEV";
    default:
      return fmt::format("errno {}", err);
  }
}

void fill_pattern(std::string* out, size_t n, uint64_t seed) {
  out->resize(n);
  std::mt19937_64 g(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t w = g();
    std::memcpy(out->data() + i, &w, 8);
  }
  for (; i < n; ++i) (*out)[i] = static_cast<char>(g());
}

// --- RecordedRun
// ----------------------------------------------------------------

RecordedRun::RecordedRun(std::string name, uint64_t seed, uint64_t pool_size,
                         pmfs::MkfsOptions mkfs)
    : pool_size_(pool_size) {
  // pmfs allocates from the range of the CPU it runs on (sched_getcpu):
  // pinned to one CPU, a seed gives the same layout, hence the same crash
  // states, on every run.
  pinned_ =
      ::sched_getaffinity(0, sizeof(saved_affinity_), &saved_affinity_) == 0;
  if (pinned_) {
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &saved_affinity_)) {
        CPU_SET(c, &one);
        break;
      }
    }
    pinned_ = ::sched_setaffinity(0, sizeof(one), &one) == 0;
  }
  oracle_.name = std::move(name);
  oracle_.seed = seed;
  h_ = std::make_unique<PmFsHarness>(pool_size, mkfs);
  pmfs::Options o;
  o.recorder = &recorder_;
  // The oracle's snapshots read every file and directory: with atime
  // updates they would store into the pool and change what they record.
  o.atime.mode = fs::AtimePolicy::Mode::None;
  EXPECT_TRUE(h_->mount(o)) << h_->why();
  oracle_.states.push_back(take_snapshot(h_->fs(), h_->sink()));
  EXPECT_TRUE(oracle_.states.back().error.empty())
      << oracle_.states.back().error;
  h_->pm().mark(0);
}

RecordedRun::~RecordedRun() {
  h_.reset();
  unpin();
}

void RecordedRun::unpin() {
  if (pinned_)
    ::sched_setaffinity(0, sizeof(saved_affinity_), &saved_affinity_);
  pinned_ = false;
}

void RecordedRun::op(std::string description,
                     const std::function<std::string()>& f) {
  std::string result = f();
  const uint64_t k = oracle_.ops.size();
  h_->pm().mark(k + 1);
  const size_t entries = recorder_.entry_count();
  oracle_.states.push_back(take_snapshot(h_->fs(), h_->sink()));
  EXPECT_EQ(recorder_.entry_count(), entries)
      << "taking a snapshot stored into the pool";
  EXPECT_TRUE(oracle_.states.back().error.empty())
      << "after " << description << ": " << oracle_.states.back().error;
  oracle_.ops.push_back(fmt::format("#{} {} -> {}", k, description, result));
}

// --- the random workload
// -----------------------------------------------------------

namespace {

std::string parent_path(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == 0 ? "/" : p.substr(0, s);
}
std::string join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

class Random {
 public:
  Random(RecordedRun& run, std::mt19937_64& rng, const WorkloadOptions& o)
      : run_(run), h_(run.h()), rng_(rng), o_(o) {}

  void step() {
    refresh();
    const auto use = h_.pm().usage();
    const bool tight =
        use.free_blocks * 10 < use.total_blocks * 3;  // < 30% free
    // Weights; deletions and shrinking get more weight when space is tight.
    struct Choice {
      int weight;
      void (Random::*fn)();
    };
    const Choice choices[] = {
        {12, &Random::create},
        {5, &Random::mkdir},
        {4, &Random::symlink},
        {1, &Random::mknod},
        {tight ? 8 : 22, &Random::write},
        {tight ? 10 : 6, &Random::truncate},
        {10, &Random::rename},
        {5, &Random::link},
        {tight ? 16 : 8, &Random::unlink},
        {3, &Random::rmdir},
        {8, &Random::setxattr},
        {3, &Random::removexattr},
        {tight ? 3 : 7, &Random::fallocate},
        {3, &Random::setattr},
        {3, &Random::open_file},
        {handles_.empty() ? 0 : 5, &Random::close_file},
        {1, &Random::tmpfile},
        {1, &Random::open_trunc},
    };
    int total = 0;
    for (const Choice& c : choices) total += c.weight;
    int pick = static_cast<int>(rng_() % static_cast<uint64_t>(total));
    for (const Choice& c : choices) {
      if (pick < c.weight) {
        (this->*c.fn)();
        return;
      }
      pick -= c.weight;
    }
  }

  // Closes every handle still open (each its own operation).
  void close_all() {
    while (!handles_.empty()) close_file();
  }

 private:
  uint64_t below(uint64_t n) { return n ? rng_() % n : 0; }
  bool chance(int percent) {
    return below(100) < static_cast<uint64_t>(percent);
  }

  void refresh() {
    dirs_.clear();
    regs_.clear();
    others_.clear();
    for (const auto& [path, n] : run_.current().nodes) {
      if (S_ISDIR(n.mode)) {
        dirs_.push_back(path);
        if (path != "/") others_.push_back(path);
      } else {
        if (S_ISREG(n.mode)) regs_.push_back(path);
        others_.push_back(path);
      }
    }
  }
  const NodeState& node(const std::string& path) const {
    return run_.current().nodes.at(path);
  }
  fs::Ino ino(const std::string& path) const { return node(path).ino; }

  std::string name() {
    static const char* kShort[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    if (chance(12)) {
      // Long names take several directory slots.
      const size_t len = 20 + below(230);
      std::string s = fmt::format("L{}_", below(6));
      s.resize(len, static_cast<char>('k' + below(3)));
      return s;
    }
    return kShort[below(8)];
  }
  std::string short_name(const std::string& n) const {
    return n.size() > 24
               ? n.substr(0, 12) + "..(" + std::to_string(n.size()) + ")"
               : n;
  }
  std::string pretty(const std::string& path) const {
    std::string out;
    size_t pos = 1;
    if (path == "/") return "/";
    while (pos <= path.size()) {
      size_t e = path.find('/', pos);
      if (e == std::string::npos) e = path.size();
      out += "/" + short_name(path.substr(pos, e - pos));
      pos = e + 1;
    }
    return out;
  }
  const std::string& any(const std::vector<std::string>& v) {
    return v[below(v.size())];
  }

  // A regular file: a named one, or (sometimes) an open handle, possibly
  // unlinked. Returns 0 when there is none.
  fs::Ino file_target(std::string* label) {
    if (!handles_.empty() && (regs_.empty() || chance(25))) {
      const fs::Ino i = handles_[below(handles_.size())];
      *label = fmt::format("open handle ino {}", i);
      return i;
    }
    if (regs_.empty()) return 0;
    const std::string& p = any(regs_);
    *label = fmt::format("{} (ino {})", pretty(p), ino(p));
    return ino(p);
  }

  static std::string entry_result(const Result<fs::Entry>& e) {
    return e ? fmt::format("ino {}", e->ino) : errno_name(e.error().value);
  }

  void create() {
    const std::string dir = any(dirs_);
    const std::string n = name();
    const bool keep = chance(15);
    run_.op(fmt::format("create {}{}", pretty(join(dir, n)),
                        keep ? " (kept open)" : ""),
            [&] {
              auto e = h_.create(ino(dir), n,
                                 0600 | static_cast<uint32_t>(below(0200)),
                                 O_RDWR | O_CREAT, keep);
              if (e) {
                if (keep) handles_.push_back(e->ino);
                run_.forget(e->ino);
              }
              return entry_result(e);
            });
  }
  void mkdir() {
    const std::string dir = any(dirs_);
    const std::string n = name();
    run_.op(fmt::format("mkdir {}", pretty(join(dir, n))), [&] {
      auto e = h_.mkdir(ino(dir), n, 0755);
      if (e) run_.forget(e->ino);
      return entry_result(e);
    });
  }
  void symlink() {
    const std::string dir = any(dirs_);
    const std::string n = name();
    // Up to 127 bytes inline in the inode, longer ones in an extent.
    const size_t len = chance(50) ? 1 + below(127) : 128 + below(3000);
    std::string target;
    fill_pattern(&target, len, rng_());
    for (char& c : target)
      c = static_cast<char>('a' + static_cast<unsigned char>(c) % 26);
    run_.op(fmt::format("symlink {} -> ({} bytes)", pretty(join(dir, n)), len),
            [&] {
              auto e = h_.symlink(target, ino(dir), n);
              if (e) run_.forget(e->ino);
              return entry_result(e);
            });
  }
  void mknod() {
    const std::string dir = any(dirs_);
    const std::string n = name();
    run_.op(fmt::format("mknod fifo {}", pretty(join(dir, n))), [&] {
      auto e = h_.mknod(ino(dir), n, S_IFIFO | 0644);
      if (e) run_.forget(e->ino);
      return entry_result(e);
    });
  }
  void write() {
    std::string label;
    const fs::Ino i = file_target(&label);
    if (!i) return create();
    auto a = h_.getattr(i);
    const uint64_t size = a ? a->size : 0;
    uint64_t len;
    const uint64_t r = below(100);
    if (r < 30) {
      len = 1 + below(4096);
    } else if (r < 80) {
      len = 4096 + below(60 << 10);
    } else if (r < 95) {
      len = (64 << 10) + below(o_.max_write - (64 << 10) + 1);
    } else {
      len = o_.max_write;
    }
    uint64_t off = below(size + (32 << 10));
    if (chance(50)) off &= ~uint64_t{4095};
    if (chance(10)) off = size;  // append
    fill_pattern(&buf_, len, rng_());
    run_.op(fmt::format("write {} off {} len {}", label, off, len), [&] {
      auto w = h_.write(i, off, buf_);
      return w ? std::to_string(*w) : errno_name(w.error().value);
    });
  }
  void truncate() {
    std::string label;
    const fs::Ino i = file_target(&label);
    if (!i) return create();
    auto a = h_.getattr(i);
    const uint64_t size = a ? a->size : 0;
    uint64_t to;
    if (chance(15)) {
      to = 0;
    } else if (chance(50)) {
      to = below(size + 1);
    } else {
      to = size + below(128 << 10);
    }
    run_.op(fmt::format("truncate {} from {} to {}", label, size, to), [&] {
      auto t = h_.truncate(i, to);
      return t ? std::string("ok") : errno_name(t.error().value);
    });
  }
  void rename() {
    if (others_.empty()) return mkdir();
    const std::string src = any(others_);
    std::string dst_dir = any(dirs_);
    uint32_t flags = 0;
    const uint64_t r = below(100);
    if (r < 15) {
      flags = RENAME_NOREPLACE;
    } else if (r < 35) {
      flags = RENAME_EXCHANGE;
    }
    // Exchanges and overwrites need an existing target: pick one often.
    std::string dst;
    if ((flags == RENAME_EXCHANGE || chance(40)) && !others_.empty()) {
      dst = any(others_);
      dst_dir = parent_path(dst);
    } else {
      dst = join(dst_dir, name());
    }
    const std::string src_name = src.substr(src.rfind('/') + 1);
    const std::string dst_name = dst.substr(dst.rfind('/') + 1);
    const char* how = flags == RENAME_EXCHANGE ? "exchange "
                      : flags                  ? "noreplace "
                                               : "";
    run_.op(fmt::format("rename {}{} -> {}", how, pretty(src), pretty(dst)),
            [&] {
              return errno_name(h_.rename(ino(parent_path(src)), src_name,
                                          ino(dst_dir), dst_name, flags));
            });
  }
  void link() {
    fs::Ino i = 0;
    std::string label;
    if (!handles_.empty() && chance(15)) {
      i = handles_[below(handles_.size())];  // may be unlinked or a tmpfile
      label = fmt::format("open handle ino {}", i);
    } else {
      std::vector<std::string> cands;
      for (const auto& p : others_) {
        if (!S_ISDIR(node(p).mode)) cands.push_back(p);
      }
      if (cands.empty()) return create();
      const std::string& p = any(cands);
      i = ino(p);
      label = pretty(p);
    }
    const std::string dir = any(dirs_);
    const std::string n = name();
    run_.op(fmt::format("link {} as {}", label, pretty(join(dir, n))), [&] {
      auto e = h_.link(i, ino(dir), n);
      if (e) run_.forget(e->ino);
      return entry_result(e);
    });
  }
  void unlink() {
    std::vector<std::string> cands;
    for (const auto& p : others_) {
      if (!S_ISDIR(node(p).mode)) cands.push_back(p);
    }
    if (cands.empty()) return create();
    const std::string p = any(cands);
    run_.op(fmt::format("unlink {} (ino {}, nlink {})", pretty(p), ino(p),
                        node(p).nlink),
            [&] {
              return errno_name(
                  h_.unlink(ino(parent_path(p)), p.substr(p.rfind('/') + 1)));
            });
  }
  void rmdir() {
    std::vector<std::string> cands;
    for (const auto& p : dirs_) {
      if (p != "/") cands.push_back(p);
    }
    if (cands.empty()) return mkdir();
    const std::string p = any(cands);
    run_.op(fmt::format("rmdir {}", pretty(p)), [&] {
      return errno_name(
          h_.rmdir(ino(parent_path(p)), p.substr(p.rfind('/') + 1)));
    });
  }
  fs::Ino any_inode(std::string* label) {
    if (!handles_.empty() && chance(10)) {
      const fs::Ino i = handles_[below(handles_.size())];
      *label = fmt::format("open handle ino {}", i);
      return i;
    }
    const std::string& p = any(dirs_.size() > 1 && chance(30) ? dirs_
                               : others_.empty()              ? dirs_
                                                              : others_);
    *label = pretty(p);
    return ino(p);
  }
  void setxattr() {
    std::string label;
    const fs::Ino i = any_inode(&label);
    const std::string n = fmt::format("user.x{}", below(5));
    size_t len = below(64);
    if (chance(25)) len = 256 + below(8 << 10);
    if (chance(3)) len = (32 << 10) + below(32 << 10);
    std::string value;
    fill_pattern(&value, len, rng_());
    const uint64_t r = below(10);
    const uint32_t flags = r < 6 ? 0 : r < 8 ? XATTR_CREATE : XATTR_REPLACE;
    run_.op(fmt::format("setxattr {} {} ({} bytes, flags {})", label, n, len,
                        flags),
            [&] { return errno_name(h_.setxattr(i, n, value, flags)); });
  }
  void removexattr() {
    std::string label;
    const fs::Ino i = any_inode(&label);
    const std::string n = fmt::format("user.x{}", below(5));
    run_.op(fmt::format("removexattr {} {}", label, n),
            [&] { return errno_name(h_.removexattr(i, n)); });
  }
  void fallocate() {
    std::string label;
    const fs::Ino i = file_target(&label);
    if (!i) return create();
    auto a = h_.getattr(i);
    const uint64_t size = a ? a->size : 0;
    static const uint32_t kModes[] = {
        0,
        FALLOC_FL_KEEP_SIZE,
        FALLOC_FL_ZERO_RANGE,
        FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
        FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
        FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE};
    const uint32_t mode = kModes[below(6)];
    uint64_t off = below(size + (16 << 10));
    if (chance(50)) off &= ~uint64_t{4095};
    const uint64_t len = 1 + below(chance(70) ? (32 << 10) : (192 << 10));
    run_.op(fmt::format("fallocate {} mode {:#x} off {} len {}", label, mode,
                        off, len),
            [&] { return errno_name(h_.fallocate(i, mode, off, len)); });
  }
  void setattr() {
    std::string label;
    const fs::Ino i = any_inode(&label);
    fs::SetAttr s;
    const uint64_t r = below(3);
    if (r == 0) {
      s.valid = fs::SetAttr::kMode;
      s.mode = static_cast<uint32_t>(below(07777));
    } else if (r == 1) {
      s.valid = fs::SetAttr::kMtime | fs::SetAttr::kAtime;
      s.mtime = {static_cast<time_t>(1'000'000 + below(1'000'000)),
                 static_cast<long>(below(1'000'000'000))};
      s.atime = {static_cast<time_t>(2'000'000 + below(1'000'000)), 7};
    } else {
      s.valid = fs::SetAttr::kUid | fs::SetAttr::kGid;
      s.uid = static_cast<uint32_t>(below(3));
      s.gid = static_cast<uint32_t>(below(3));
    }
    run_.op(fmt::format("setattr {} valid {:#x}", label, s.valid), [&] {
      auto a = h_.setattr(i, s);
      return a ? std::string("ok") : errno_name(a.error().value);
    });
  }
  void open_file() {
    if (regs_.empty()) return create();
    const std::string p = any(regs_);
    const fs::Ino i = ino(p);
    run_.op(fmt::format("open {} (ino {})", pretty(p), i), [&] {
      const int err = h_.open(i, O_RDWR);
      if (!err) handles_.push_back(i);
      return errno_name(err);
    });
  }
  void open_trunc() {
    if (regs_.empty()) return create();
    const std::string p = any(regs_);
    const fs::Ino i = ino(p);
    run_.op(fmt::format("open O_TRUNC {} (ino {}, size {})", pretty(p), i,
                        node(p).size),
            [&] {
              const int err = h_.open(i, O_RDWR | O_TRUNC);
              if (!err) h_.release(i);
              return errno_name(err);
            });
  }
  void close_file() {
    if (handles_.empty()) return;
    const size_t k = below(handles_.size());
    const fs::Ino i = handles_[k];
    handles_.erase(handles_.begin() + static_cast<ptrdiff_t>(k));
    run_.op(fmt::format("close ino {}", i),
            [&] { return errno_name(h_.release(i)); });
  }
  void tmpfile() {
    const std::string dir = any(dirs_);
    run_.op(fmt::format("tmpfile in {}", pretty(dir)), [&] {
      auto e = h_.tmpfile(ino(dir));
      if (e) {
        handles_.push_back(e->ino);
        run_.forget(e->ino);
      }
      return entry_result(e);
    });
  }

  RecordedRun& run_;
  PmFsHarness& h_;
  std::mt19937_64& rng_;
  WorkloadOptions o_;
  std::vector<std::string> dirs_, regs_, others_;
  std::vector<fs::Ino> handles_;
  std::string buf_;
};

}  // namespace

void xattr_workload(RecordedRun& run, std::mt19937_64& rng) {
  auto& h = run.h();
  fs::Ino x = 0;
  run.op("create /x", [&] {
    auto e = h.create(fs::kRootIno, "x");
    if (e) {
      x = e->ino;
      run.forget(x);
    }
    return e ? fmt::format("ino {}", e->ino) : errno_name(e.error().value);
  });
  if (!x) return;
  auto name = [](int k) { return fmt::format("user.k{:02}", k); };
  std::vector<bool> present(100, false);
  auto set = [&](int k, size_t len, const char* what) {
    std::string value;
    fill_pattern(&value, len, rng());
    run.op(fmt::format("setxattr /x {} ({} bytes, {})", name(k), len, what),
           [&] {
             const int err = h.setxattr(x, name(k), value);
             if (!err) present[k] = true;
             return errno_name(err);
           });
  };
  auto remove = [&](int k) {
    run.op(fmt::format("removexattr /x {}", name(k)), [&] {
      const int err = h.removexattr(x, name(k));
      if (!err) present[k] = false;
      return errno_name(err);
    });
  };
  auto below = [&](uint64_t n) { return static_cast<size_t>(rng() % n); };
  // 2 to 4 slots each, so 48 of them fill three or four slot blocks.
  for (int k = 0; k < 48; ++k) set(k, 100 + below(100), "small");
  for (int i = 0; i < 30; ++i) {
    const int k = static_cast<int>(below(48));
    switch (i % 5) {
      case 0:
        set(k, below(40), "smaller");
        break;
      case 1:
        set(k, 300 + below(180), "larger, inline");
        break;
      case 2:
        set(k, 480 + below(40), "around the inline limit");
        break;
      case 3:
        set(k, 600 + below(9000), "a record");
        break;
      default:
        set(k, 100 + below(100), "back to small");
        break;
    }
  }
  for (int k = 16; k < 32; ++k) remove(k);
  for (int k = 48; k < 58; ++k) set(k, below(300), "new");
  for (int k = 0; k < 100; ++k) {
    if (present[k]) remove(k);
  }
}

void random_workload(RecordedRun& run, std::mt19937_64& rng,
                     const WorkloadOptions& options) {
  Random w(run, rng, options);
  for (size_t i = 0; i < options.ops; ++i) w.step();
  w.close_all();
}

}  // namespace zest::crash
