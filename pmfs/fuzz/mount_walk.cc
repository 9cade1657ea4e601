#include "pmfs/fuzz/mount_walk.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "zest/fs/filesystem.h"
#include "pmfs/format.h"
#include "pmfs/fsck.h"
#include "pmfs/fuzz/sample_image.h"
#include "pmfs/pmfs.h"

namespace zest::pmfs::sample {
namespace {

// Bounds on the walk: a damaged structure that makes the file system go in
// circles ends the walk here instead of hanging the fuzzer.
constexpr uint64_t kMaxOperations = 4000;
constexpr uint64_t kMaxReadPerFile = 1 << 20;
constexpr uint64_t kMaxDirEntries = 20000;  // per directory
constexpr uint32_t kReadChunk = 64 << 10;

// One request's answer. pmfs answers synchronously, so a Call lives on the
// walker's stack for the duration of one FileSystem call.
struct Call {
  enum Kind { kNone, kError, kEntry, kCreate, kAttr, kOpen, kWrite, kData,
              kXattrSize, kStatfs, kLseek, kDir };
  struct DirEnt {
    std::string name;
    fs::Ino ino = 0;
    uint64_t next_off = 0;
  };
  Kind kind = kNone;
  int err = 0;
  int completions = 0;
  fs::Entry entry;
  fs::OpenInfo open;
  fs::Attr attr;
  size_t written = 0;
  std::string data;
  size_t xattr_size = 0;
  std::vector<DirEnt> dir;
  size_t dir_bytes = 0;
  size_t dir_capacity = 4096;
  std::vector<std::byte> buffer;
};

// Records replies and counts the kernel's references as the server does.
class Sink : public fs::ReplySink, public fs::KernelRefs {
 public:
  bool referenced(fs::Ino ino) const override {
    auto it = refs_.find(ino);
    return it != refs_.end() && it->second > 0;
  }
  std::map<fs::Ino, uint64_t> take_refs() { return std::exchange(refs_, {}); }

  void reply_error(fs::RequestToken t, int err) override {
    Call& c = done(t);
    c.kind = err ? Call::kError : Call::kNone;
    c.err = err;
  }
  void reply_entry(fs::RequestToken t, const fs::Entry& e) override {
    ++refs_[e.ino];
    Call& c = done(t);
    c.kind = Call::kEntry;
    c.entry = e;
  }
  void reply_create(fs::RequestToken t, const fs::Entry& e,
                    const fs::OpenInfo& o) override {
    ++refs_[e.ino];
    Call& c = done(t);
    c.kind = Call::kCreate;
    c.entry = e;
    c.open = o;
  }
  void reply_attr(fs::RequestToken t, const fs::Attr& a, double) override {
    Call& c = done(t);
    c.kind = Call::kAttr;
    c.attr = a;
  }
  void reply_open(fs::RequestToken t, const fs::OpenInfo& o) override {
    Call& c = done(t);
    c.kind = Call::kOpen;
    c.open = o;
  }
  void reply_write(fs::RequestToken t, size_t n) override {
    Call& c = done(t);
    c.kind = Call::kWrite;
    c.written = n;
  }
  void reply_data(fs::RequestToken t, std::span<const iovec> iov) override {
    Call& c = done(t);
    c.kind = Call::kData;
    for (const iovec& v : iov)
      c.data.append(static_cast<const char*>(v.iov_base), v.iov_len);
  }
  void reply_xattr_size(fs::RequestToken t, size_t n) override {
    Call& c = done(t);
    c.kind = Call::kXattrSize;
    c.xattr_size = n;
  }
  void reply_statfs(fs::RequestToken t, const fs::StatFs&) override {
    done(t).kind = Call::kStatfs;
  }
  void reply_lseek(fs::RequestToken t, uint64_t) override {
    done(t).kind = Call::kLseek;
  }
  std::span<std::byte> reply_buffer(fs::RequestToken t, size_t size) override {
    Call& c = *static_cast<Call*>(t);
    c.buffer.resize(size);
    return c.buffer;
  }
  bool dir_add(fs::RequestToken t, std::string_view name, fs::Ino ino,
               uint32_t, uint64_t next_off, const fs::Entry* plus) override {
    Call& c = *static_cast<Call*>(t);
    // Sizes as the kernel's fuse_dirent / fuse_direntplus records.
    size_t rec = (24 + name.size() + 7) & ~size_t{7};
    if (plus) rec += 128;
    if (c.dir_bytes + rec > c.dir_capacity) return false;
    c.dir_bytes += rec;
    if (plus && name != "." && name != "..") ++refs_[plus->ino];
    c.dir.push_back({std::string(name), ino, next_off});
    return true;
  }
  void reply_dir(fs::RequestToken t) override { done(t).kind = Call::kDir; }
  bool interrupted(fs::RequestToken) const override { return false; }

 private:
  static Call& done(fs::RequestToken t) {
    Call& c = *static_cast<Call*>(t);
    ++c.completions;
    return c;
  }
  std::map<fs::Ino, uint64_t> refs_;
};

// The pool file the image is written into: one memfd per process, reused
// (pmfs::open takes the path, so it goes through /proc/self/fd).
struct PoolFile {
  UniqueFd fd;
  std::string path;
};

PoolFile& pool_file() {
  static PoolFile f = [] {
    PoolFile p;
    p.fd.reset(::memfd_create("pmfs-mount-fuzz", MFD_CLOEXEC));
    if (p.fd) p.path = fmt::format("/proc/self/fd/{}", p.fd.get());
    return p;
  }();
  return f;
}

bool write_all(int fd, std::span<const std::byte> bytes) {
  if (::ftruncate(fd, off_t(bytes.size())) != 0) return false;
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, off_t(done));
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    done += size_t(n);
  }
  return true;
}

bool read_all(int fd, std::span<std::byte> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done, off_t(done));
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    done += size_t(n);
  }
  return true;
}

// Drives one mounted PmFs. Every method returns false once something
// implausible was seen (wrong_ says what) or the step limit is reached.
class Walker {
 public:
  explicit Walker(fs::FileSystem& fs) : fs_(fs) {}

  std::string run() {
    fs_.init(&sink_);
    walk_tree();
    if (wrong_.empty()) exercise_writes();
    if (wrong_.empty()) exercise_namespace();
    // The kernel forgets everything it was handed, then unmounts.
    for (const auto& [ino, n] : sink_.take_refs()) fs_.forget(ino);
    fs_.destroy();
    return wrong_;
  }
  uint64_t operations() const { return ops_; }

 private:
  // Runs one call with a fresh Call; false when the limit is reached or
  // the reply was not exactly one.
  template <class R, class F>
  bool call(Call* c, F&& f, bool plus = false) {
    if (ops_ >= kMaxOperations) return false;
    ++ops_;
    if constexpr (std::is_same_v<R, fs::DirReply>) {
      f(R(&sink_, c, plus));
    } else {
      f(R(&sink_, c));
    }
    if (c->completions != 1) {
      wrong_ = fmt::format("operation {} answered {} times", ops_, c->completions);
      return false;
    }
    return true;
  }

  void walk_tree() {
    std::vector<fs::Ino> dirs{fs::kRootIno};
    std::set<fs::Ino> seen{fs::kRootIno};
    {
      Call c;
      if (!call<fs::AttrReply>(&c, [&](auto r) { fs_.getattr(ctx_, fs::kRootIno, nullptr, std::move(r)); })) return;
    }
    bool plus = false;
    while (!dirs.empty() && wrong_.empty() && ops_ < kMaxOperations) {
      fs::Ino d = dirs.back();
      dirs.pop_back();
      std::vector<std::string> names;
      if (!list(d, plus, &names)) return;
      plus = !plus;
      for (const std::string& name : names) {
        if (name == "." || name == "..") continue;
        Call c;
        if (!call<fs::EntryReply>(&c, [&](auto r) { fs_.lookup(ctx_, d, name, std::move(r)); })) return;
        if (c.kind != Call::kEntry) continue;
        const fs::Ino ino = c.entry.ino;
        if (!seen.insert(ino).second) continue;
        Call a;
        if (!call<fs::AttrReply>(&a, [&](auto r) { fs_.getattr(ctx_, ino, nullptr, std::move(r)); })) return;
        const uint32_t mode = c.entry.attr.mode;
        if (S_ISDIR(mode)) dirs.push_back(ino);
        if (S_ISREG(mode) && !read_file(ino, c.entry.attr.size)) return;
        if (S_ISLNK(mode)) {
          Call l;
          if (!call<fs::DataReply>(&l, [&](auto r) { fs_.readlink(ctx_, ino, std::move(r)); })) return;
        }
        if (!xattrs(ino)) return;
        if (S_ISREG(mode) && !first_file_) first_file_ = ino;
      }
      Call missing;
      if (!call<fs::EntryReply>(&missing, [&](auto r) { fs_.lookup(ctx_, d, "no-such-name", std::move(r)); })) return;
    }
  }

  // Every name in directory d; false on a step limit or endless listing.
  bool list(fs::Ino d, bool plus, std::vector<std::string>* names) {
    Call o;
    if (!call<fs::OpenReply>(&o, [&](auto r) { fs_.opendir(ctx_, d, O_RDONLY, std::move(r)); })) return false;
    if (o.kind != Call::kOpen) return true;
    const uint64_t fh = o.open.fh;
    uint64_t off = 0;
    std::set<uint64_t> offsets{0};
    for (;;) {
      Call c;
      if (!call<fs::DirReply>(&c, [&](auto r) { fs_.readdir(ctx_, d, fh, off, std::move(r)); }, plus)) return false;
      if (c.kind != Call::kDir || c.dir.empty()) break;
      for (auto& e : c.dir) names->push_back(std::move(e.name));
      off = c.dir.back().next_off;
      if (!offsets.insert(off).second) {
        wrong_ = fmt::format("readdir of inode {} hands out offset {} twice (a listing that never ends)", d, off);
        return false;
      }
      if (names->size() > kMaxDirEntries) {
        wrong_ = fmt::format("readdir of inode {}: more than {} entries", d, kMaxDirEntries);
        return false;
      }
    }
    Call rel;
    return call<fs::StatusReply>(&rel, [&](auto r) { fs_.releasedir(ctx_, d, fh, std::move(r)); });
  }

  bool read_file(fs::Ino ino, uint64_t size) {
    Call o;
    if (!call<fs::OpenReply>(&o, [&](auto r) { fs_.open(ctx_, ino, O_RDONLY, std::move(r)); })) return false;
    if (o.kind != Call::kOpen) return true;
    const uint64_t fh = o.open.fh;
    const uint64_t end = std::min(size + kReadChunk, kMaxReadPerFile);  // also past EOF
    for (uint64_t off = 0; off < end; off += kReadChunk) {
      Call c;
      if (!call<fs::DataReply>(&c, [&](auto r) { fs_.read(ctx_, ino, fh, off, kReadChunk, std::move(r)); })) return false;
      if (c.kind == Call::kData && c.data.size() > kReadChunk) {
        wrong_ = fmt::format("read of inode {} answered {} bytes for {}", ino, c.data.size(), kReadChunk);
        return false;
      }
      if (c.kind != Call::kData || c.data.size() < kReadChunk) break;
    }
    Call rel;
    return call<fs::StatusReply>(&rel, [&](auto r) { fs_.release(ctx_, ino, fh, O_RDONLY, std::move(r)); });
  }

  bool xattrs(fs::Ino ino) {
    Call sz;
    if (!call<fs::XattrReply>(&sz, [&](auto r) { fs_.listxattr(ctx_, ino, 0, std::move(r)); })) return false;
    if (sz.kind != Call::kXattrSize || sz.xattr_size == 0) return true;
    Call l;
    const uint32_t cap = uint32_t(std::min<size_t>(sz.xattr_size, 65536));
    if (!call<fs::XattrReply>(&l, [&](auto r) { fs_.listxattr(ctx_, ino, cap, std::move(r)); })) return false;
    if (l.kind != Call::kData) return true;
    std::string_view all = l.data;
    while (!all.empty()) {
      size_t nul = all.find('\0');
      std::string name(all.substr(0, nul));
      all = nul == std::string_view::npos ? std::string_view() : all.substr(nul + 1);
      Call vs;
      if (!call<fs::XattrReply>(&vs, [&](auto r) { fs_.getxattr(ctx_, ino, name, 0, std::move(r)); })) return false;
      if (vs.kind != Call::kXattrSize) continue;
      Call v;
      const uint32_t vcap = uint32_t(std::min<size_t>(vs.xattr_size + 1, 65536));
      if (!call<fs::XattrReply>(&v, [&](auto r) { fs_.getxattr(ctx_, ino, name, vcap, std::move(r)); })) return false;
    }
    return true;
  }

  // A new file: create, write, read back (must match), xattr, unlink. And a
  // small overwrite and a truncate of the first existing file found.
  void exercise_writes() {
    std::string data(8192 + 123, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = char('a' + (i * 7) % 26);
    const auto bytes = std::as_bytes(std::span(data.data(), data.size()));
    Call c;
    if (!call<fs::CreateReply>(&c, [&](auto r) { fs_.create(ctx_, fs::kRootIno, "fuzz-new", 0644, O_RDWR | O_CREAT, std::move(r)); })) return;
    if (c.kind == Call::kCreate) {
      const fs::Ino ino = c.entry.ino;
      const uint64_t fh = c.open.fh;
      Call w;
      if (!call<fs::WriteReply>(&w, [&](auto r) { fs_.write(ctx_, ino, fh, 4000, bytes, 0, std::move(r)); })) return;
      if (w.kind == Call::kWrite && w.written == data.size()) {
        Call rd;
        if (!call<fs::DataReply>(&rd, [&](auto r) { fs_.read(ctx_, ino, fh, 4000, uint32_t(data.size()), std::move(r)); })) return;
        if (rd.kind == Call::kData && rd.data != data) {
          wrong_ = fmt::format("inode {}: {} bytes written and acknowledged read back as {} different bytes",
                               ino, data.size(), rd.data.size());
          return;
        }
      }
      Call x;
      if (!call<fs::StatusReply>(&x, [&](auto r) { fs_.setxattr(ctx_, ino, "user.fuzz", std::as_bytes(std::span("v", 1)), 0, 0, std::move(r)); })) return;
      Call u;
      if (!call<fs::StatusReply>(&u, [&](auto r) { fs_.unlink(ctx_, fs::kRootIno, "fuzz-new", std::move(r)); })) return;
      Call rel;
      if (!call<fs::StatusReply>(&rel, [&](auto r) { fs_.release(ctx_, ino, fh, O_RDWR, std::move(r)); })) return;
    }
    if (first_file_) {
      const fs::Ino ino = first_file_;
      Call o;
      if (!call<fs::OpenReply>(&o, [&](auto r) { fs_.open(ctx_, ino, O_RDWR, std::move(r)); })) return;
      if (o.kind != Call::kOpen) return;
      Call w;
      if (!call<fs::WriteReply>(&w, [&](auto r) { fs_.write(ctx_, ino, o.open.fh, 5000, bytes.first(300), 0, std::move(r)); })) return;
      fs::SetAttr s;
      s.valid = fs::SetAttr::kSize;
      s.size = 6000;
      Call t;
      if (!call<fs::AttrReply>(&t, [&](auto r) { fs_.setattr(ctx_, ino, s, std::move(r)); })) return;
      Call rel;
      if (!call<fs::StatusReply>(&rel, [&](auto r) { fs_.release(ctx_, ino, o.open.fh, O_RDWR, std::move(r)); })) return;
    }
  }

  // mkdir, rename into it, rename back, rmdir.
  void exercise_namespace() {
    Call m;
    if (!call<fs::EntryReply>(&m, [&](auto r) { fs_.mkdir(ctx_, fs::kRootIno, "fuzz-dir", 0755, std::move(r)); })) return;
    if (m.kind != Call::kEntry) return;
    const fs::Ino dir = m.entry.ino;
    Call s;
    if (!call<fs::EntryReply>(&s, [&](auto r) { fs_.symlink(ctx_, "target", dir, "link", std::move(r)); })) return;
    Call rn;
    if (!call<fs::StatusReply>(&rn, [&](auto r) { fs_.rename(ctx_, dir, "link", fs::kRootIno, "fuzz-link", 0, std::move(r)); })) return;
    Call ul;
    if (!call<fs::StatusReply>(&ul, [&](auto r) { fs_.unlink(ctx_, fs::kRootIno, "fuzz-link", std::move(r)); })) return;
    Call rd;
    if (!call<fs::StatusReply>(&rd, [&](auto r) { fs_.rmdir(ctx_, fs::kRootIno, "fuzz-dir", std::move(r)); })) return;
  }

  fs::FileSystem& fs_;
  Sink sink_;
  fs::Context ctx_{0, 0, 1};
  uint64_t ops_ = 0;
  fs::Ino first_file_ = 0;
  std::string wrong_;
};

}  // namespace

std::string mount_one(std::span<const uint8_t> input, MountWalkStats* stats) {
  MountWalkStats scratch;
  if (!stats) stats = &scratch;
  *stats = {};
  PoolFile& pf = pool_file();
  if (!pf.fd) return "memfd_create failed";

  const auto& base = standard_image().image();
  std::vector<std::byte> image(base);
  apply_patches(image, input);
  stats->fsck_clean = fsck_image(image).exit_code() == 0;
  if (!write_all(pf.fd.get(), image)) return "cannot write the pool memfd";

  std::string why;
  {
    auto opened = pmfs::open(pf.path, Options{}, &why);
    if (!opened) {
      const int e = opened.error().value;
      if (why.empty()) return fmt::format("open refused the pool (errno {}) without saying why", e);
      if (e != EINVAL && e != EUCLEAN && e != EIO && e != ENOMEM) {
        return fmt::format("open refused the pool with errno {} ({})", e, why);
      }
      // Worth knowing (the replay driver counts it), not a failure by itself:
      // mount may check something fsck does not.
      stats->refused_clean = stats->fsck_clean;
      stats->refusal = why;
      return {};
    }
    stats->opened = true;
    Walker walker(**opened);
    std::string wrong = walker.run();
    stats->operations = walker.operations();
    if (!wrong.empty()) return wrong;
  }  // unmapped, lock dropped

  if (stats->fsck_clean) {
    std::vector<std::byte> after(image.size());
    if (!read_all(pf.fd.get(), after)) return "cannot read the pool memfd back";
    FsckReport r = fsck_image(after);
    if (r.exit_code() != 0) {
      std::string first = r.errors.empty() ? "(no error text)" : r.errors.front();
      return fmt::format(
          "a pool fsck called clean is not clean after mount, walk and unmount "
          "(exit {}, {} errors; first: {})",
          r.exit_code(), r.errors.size(), first);
    }
  }
  return {};
}

namespace {

// Whether fsck can repair the image at all: it needs one valid superblock
// copy, and repairs nothing when that copy has unknown read-only-compatible
// features (their structures are not checked).
bool repairable(std::span<const std::byte> image) {
  if (image.size() < 2 * kBlockSize) return false;
  for (int k = 0; k < 2; ++k) {
    Superblock sb;
    std::memcpy(&sb, image.data() + k * kBlockSize, sizeof(sb));
    std::string why;
    if (superblock_valid(sb, image.size(), &why))
      return sb.features_ro_compat == 0;
  }
  return false;
}

}  // namespace

std::string repair_one(std::span<const uint8_t> input, RepairStats* stats) {
  // fsck --repair runs before the pool must have settled: each run repairs
  // in passes until one changes nothing, so a second run normally finds
  // nothing; a few more allow for repairs that expose others.
  constexpr int kMaxRepairRuns = 6;
  RepairStats scratch;
  if (!stats) stats = &scratch;
  *stats = {};
  PoolFile& pf = pool_file();
  if (!pf.fd) return "memfd_create failed";
  std::vector<std::byte> image(standard_image().image());
  apply_patches(image, input);
  if (!repairable(image)) {
    stats->skipped = true;
    return {};
  }
  if (!write_all(pf.fd.get(), image)) return "cannot write the pool memfd";

  auto first_error = [](const FsckReport& r) {
    const auto& list = r.uncorrected.empty() ? r.errors : r.uncorrected;
    return list.empty() ? std::string("(no error text)") : list.front();
  };
  FsckOptions repair;
  repair.repair = true;
  std::string why;
  bool settled = false;
  while (!settled && stats->runs < kMaxRepairRuns) {
    auto r = fsck(pf.path, repair, &why);
    if (!r) return "fsck --repair could not run: " + why;
    if (++stats->runs == 1) stats->damaged = !r->errors.empty();
    if (r->exit_code() == 8)
      return "fsck --repair: operational error on a pool with a valid "
             "superblock";
    stats->repairs += r->repairs.size();
    settled = r->repairs.empty();
  }
  if (!settled)
    return fmt::format("fsck --repair still repairs after {} runs",
                       stats->runs);
  auto check = fsck(pf.path, {}, &why);
  if (!check) return "fsck could not run: " + why;
  if (check->exit_code() != 0) {
    return fmt::format("a repaired pool is not clean (exit {}): {}",
                       check->exit_code(), first_error(*check));
  }
  {
    auto opened = pmfs::open(pf.path, Options{}, &why);
    if (!opened) return "mount refuses a pool fsck --repair left clean: " + why;
    Walker walker(**opened);
    std::string wrong = walker.run();
    stats->operations = walker.operations();
    if (!wrong.empty()) return wrong;
  }  // unmapped, lock dropped
  auto after = fsck(pf.path, {}, &why);
  if (!after) return "fsck could not run: " + why;
  if (after->exit_code() != 0) {
    return fmt::format(
        "a repaired pool is not clean after mount, walk and unmount (exit {}): "
        "{}",
        after->exit_code(), first_error(*after));
  }
  return {};
}

}  // namespace zest::pmfs::sample
