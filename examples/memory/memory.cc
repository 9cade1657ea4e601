// memory: a writable file system in memory. Files, directories, symlinks,
// device nodes and FIFOs, hard links, rename (RENAME_NOREPLACE and
// RENAME_EXCHANGE), setattr, readdir with offsets that stay valid while the
// directory changes, statfs. One mutex guards everything: clarity over
// speed (memfs/ is the fast, tmpfs-exact one).
//   ./memory [-f] MOUNTPOINT          (or: zest mount --fs ./libzest-fs-memory.so MOUNTPOINT)
//
// Lifetime of an inode. The server counts the kernel's references (each
// entry we answer adds one, FORGET removes them) and tells us through
// KernelRefs::referenced(). An inode is freed once nothing names it
// (nlink 0), nothing has it open and the kernel holds no reference: we
// check at every event that can make the last of these true (unlink, rmdir,
// rename over it, release, forget), under the one mutex. Entries are
// answered under that mutex too, so a reference cannot be handed out
// between our check and the erase.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>  // RENAME_NOREPLACE, RENAME_EXCHANGE
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <zest/zest.h>

namespace {
using namespace zest::fs;

constexpr uint64_t kMaxFileSize = 1ull << 30;  // a bound on what one write may allocate
constexpr uint64_t kCapacity = 4ull << 30;     // what statfs reports as the size
constexpr uint64_t kMaxInodes = 1 << 20;
constexpr double kTimeout = 1.0;  // seconds the kernel may cache names and attributes

timespec now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

struct Node {
  Attr attr;          // ino, mode, nlink, owner, times; size of files and symlinks
  std::string data;   // a regular file's bytes, or a symlink's target
  uint32_t opens = 0; // open handles (files and directories)
  // Directories. Each entry gets a cookie when it is added, never reused:
  // readdir's offsets are cookies, so an offset handed to the kernel stays
  // valid while entries are added and removed. 1 and 2 are "." and "..".
  struct Dirent { Ino ino; uint64_t cookie; };
  std::map<std::string, Dirent, std::less<>> entries;
  std::map<uint64_t, std::string> by_cookie;
  uint64_t next_cookie = 3;
  Ino parent = 0;  // directories: for ".."

  bool is_dir() const { return S_ISDIR(attr.mode); }
  void touch_change() { attr.ctime = now(); }
  void touch_modify() { attr.mtime = attr.ctime = now(); }
  void set_size(uint64_t size) {
    data.resize(size);
    attr.size = size;
    attr.blocks = (size + 511) / 512;
  }
};

class Memory : public FileSystem {
 public:
  Memory() {
    Node& root = nodes_[kRootIno];
    root.attr = {.ino = kRootIno, .mode = S_IFDIR | 0755, .nlink = 2,
                 .uid = ::getuid(), .gid = ::getgid()};
    root.attr.atime = root.attr.mtime = root.attr.ctime = now();
    root.parent = kRootIno;
  }

  Capabilities capabilities() const override {
    Capabilities c;
    c.sole_writer = true;  // data changes only through this mount: keep the page cache
    return c;
  }
  void init(const KernelRefs* refs) override { refs_ = refs; }
  void forget(Ino ino) override {
    std::lock_guard lock(mu_);
    maybe_free(ino);
  }

  // --- names --------------------------------------------------------------
  void lookup(const Context&, Ino parent, std::string_view name, EntryReply r) override {
    std::lock_guard lock(mu_);
    Node* dir = get(parent);
    if (!dir || !dir->is_dir()) return r.error(dir ? ENOTDIR : ENOENT);
    if (name.size() > 255) return r.error(ENAMETOOLONG);
    Ino ino = name == "." ? parent : name == ".." ? dir->parent : child(*dir, name);
    // A miss with ino 0 and a timeout: the kernel caches the negative entry
    // for that long instead of asking again (error(ENOENT) caches nothing).
    if (!ino) return r.ok({.ino = 0, .entry_timeout = kTimeout});
    r.ok(entry_of(nodes_.at(ino)));  // under the lock: see the top of the file
  }
  void mknod(const Context& ctx, Ino parent, std::string_view name, uint32_t mode,
             uint32_t rdev, EntryReply r) override {
    make(ctx, parent, name, mode, rdev, {}, r);
  }
  void mkdir(const Context& ctx, Ino parent, std::string_view name, uint32_t mode,
             EntryReply r) override {
    make(ctx, parent, name, S_IFDIR | (mode & 07777), 0, {}, r);
  }
  void symlink(const Context& ctx, std::string_view target, Ino parent, std::string_view name,
               EntryReply r) override {
    make(ctx, parent, name, S_IFLNK | 0777, 0, target, r);
  }
  void link(const Context&, Ino ino, Ino newparent, std::string_view newname,
            EntryReply r) override {
    std::lock_guard lock(mu_);
    Node *n = get(ino), *dir = get(newparent);
    if (!n || !dir) return r.error(ENOENT);
    if (n->is_dir()) return r.error(EPERM);
    if (int err = check_new(*dir, newname)) return r.error(err);
    add_entry(*dir, newname, ino);
    ++n->attr.nlink;
    n->touch_change();
    r.ok(entry_of(*n));
  }
  void unlink(const Context&, Ino parent, std::string_view name, StatusReply r) override {
    remove(parent, name, false, r);
  }
  void rmdir(const Context&, Ino parent, std::string_view name, StatusReply r) override {
    remove(parent, name, true, r);
  }
  void rename(const Context&, Ino parent, std::string_view name, Ino newparent,
              std::string_view newname, uint32_t flags, StatusReply r) override {
    if (flags & ~uint32_t(RENAME_NOREPLACE | RENAME_EXCHANGE)) return r.error(EINVAL);
    std::lock_guard lock(mu_);
    Node *from = get(parent), *to = get(newparent);
    if (!from || !to) return r.error(ENOENT);
    if (newname.size() > 255) return r.error(ENAMETOOLONG);
    Ino src = child(*from, name), dst = child(*to, newname);
    if (!src) return r.error(ENOENT);
    Node& s = nodes_.at(src);
    if (flags & RENAME_EXCHANGE) {
      if (!dst) return r.error(ENOENT);
      Node& d = nodes_.at(dst);
      from->entries.find(name)->second.ino = dst;
      to->entries.find(newname)->second.ino = src;
      if (s.is_dir()) s.parent = newparent;
      if (d.is_dir()) d.parent = parent;
      if (s.is_dir() != d.is_dir()) {  // a directory changes parent: fix the link counts
        Node& gains = s.is_dir() ? *to : *from;
        Node& loses = s.is_dir() ? *from : *to;
        ++gains.attr.nlink;
        --loses.attr.nlink;
      }
      s.touch_change();
      d.touch_change();
    } else {
      if (dst && (flags & RENAME_NOREPLACE)) return r.error(EEXIST);
      if (dst == src) return r.ok();  // two names of one inode: POSIX says do nothing
      if (dst) {
        Node& d = nodes_.at(dst);
        if (s.is_dir() && !d.is_dir()) return r.error(ENOTDIR);
        if (!s.is_dir() && d.is_dir()) return r.error(EISDIR);
        if (d.is_dir() && !d.entries.empty()) return r.error(ENOTEMPTY);
        drop_link(*to, newname, d);
      }
      remove_entry(*from, name);
      add_entry(*to, newname, src);
      if (s.is_dir() && parent != newparent) {
        s.parent = newparent;
        --from->attr.nlink;
        ++to->attr.nlink;
      }
      s.touch_change();
      if (dst) maybe_free(dst);
    }
    from->touch_modify();
    to->touch_modify();
    r.ok();
  }

  // --- attributes ---------------------------------------------------------
  void getattr(const Context&, Ino ino, const uint64_t*, AttrReply r) override {
    std::lock_guard lock(mu_);
    Node* n = get(ino);
    if (!n) return r.error(ENOENT);
    r.ok(n->attr, kTimeout);
  }
  void setattr(const Context&, Ino ino, const SetAttr& s, AttrReply r) override {
    std::lock_guard lock(mu_);
    Node* n = get(ino);
    if (!n) return r.error(ENOENT);
    Attr& a = n->attr;
    if (s.valid & SetAttr::kSize) {
      if (!S_ISREG(a.mode)) return r.error(n->is_dir() ? EISDIR : EINVAL);
      if (s.size > kMaxFileSize) return r.error(EFBIG);
      n->set_size(s.size);
      n->touch_modify();
    }
    if (s.valid & SetAttr::kMode) a.mode = (a.mode & S_IFMT) | (s.mode & 07777);
    if (s.valid & SetAttr::kUid) a.uid = s.uid;
    if (s.valid & SetAttr::kGid) a.gid = s.gid;
    if (s.valid & SetAttr::kAtime) a.atime = s.atime;
    if (s.valid & SetAttr::kAtimeNow) a.atime = now();
    if (s.valid & SetAttr::kMtime) a.mtime = s.mtime;
    if (s.valid & SetAttr::kMtimeNow) a.mtime = now();
    a.ctime = (s.valid & SetAttr::kCtime) ? s.ctime : now();  // every change moves ctime
    r.ok(a, kTimeout);
  }
  void readlink(const Context&, Ino ino, DataReply r) override {
    std::lock_guard lock(mu_);
    Node* n = get(ino);
    if (!n || !S_ISLNK(n->attr.mode)) return r.error(n ? EINVAL : ENOENT);
    r.ok(n->data);  // copied out before ok() returns: fine under the lock
  }
  void statfs(const Context&, Ino, StatfsReply r) override {
    std::lock_guard lock(mu_);
    uint64_t used = 0;
    for (auto& [ino, n] : nodes_) used += (n.data.size() + 4095) / 4096;
    StatFs s{.blocks = kCapacity / 4096, .files = kMaxInodes};
    s.bfree = s.bavail = s.blocks - std::min(used, s.blocks);
    s.ffree = kMaxInodes - std::min<uint64_t>(nodes_.size(), kMaxInodes);
    r.ok(s);
  }

  // --- files --------------------------------------------------------------
  void open(const Context&, Ino ino, uint32_t flags, OpenReply r) override {
    std::lock_guard lock(mu_);
    Node* n = get(ino);
    if (!n) return r.error(ENOENT);
    if (flags & O_TRUNC) {  // FUSE_ATOMIC_O_TRUNC: truncating is ours to do
      n->set_size(0);
      n->touch_modify();
    }
    ++n->opens;
    r.ok(open_info());
  }
  void create(const Context& ctx, Ino parent, std::string_view name, uint32_t mode, uint32_t,
              CreateReply r) override {
    std::lock_guard lock(mu_);
    Node* dir = get(parent);
    if (!dir) return r.error(ENOENT);
    if (int err = check_new(*dir, name)) return r.error(err);
    Node& n = new_node(ctx, *dir, S_IFREG | (mode & 07777), 0);
    add_entry(*dir, name, n.attr.ino);
    ++n.opens;
    r.ok(entry_of(n), open_info());
  }
  void read(const Context&, Ino ino, uint64_t, uint64_t off, uint32_t size,
            DataReply r) override {
    std::lock_guard lock(mu_);
    Node* n = get(ino);
    if (!n) return r.error(ENOENT);
    off = std::min<uint64_t>(off, n->data.size());
    r.ok(std::string_view(n->data).substr(off, size));
  }
  void write(const Context&, Ino ino, uint64_t, uint64_t off,
             std::span<const std::byte> data, uint32_t, WriteReply r) override {
    std::lock_guard lock(mu_);
    Node* n = get(ino);
    if (!n) return r.error(ENOENT);
    if (off > kMaxFileSize || data.size() > kMaxFileSize - off) return r.error(EFBIG);
    if (off + data.size() > n->data.size()) n->set_size(off + data.size());
    std::memcpy(n->data.data() + off, data.data(), data.size());
    n->touch_modify();
    r.ok(data.size());
  }
  void release(const Context&, Ino ino, uint64_t, uint32_t, StatusReply r) override {
    close(ino);
    r.ok();
  }
  void fsync(const Context&, Ino, uint64_t, bool, StatusReply r) override { r.ok(); }

  // --- directories --------------------------------------------------------
  void opendir(const Context&, Ino ino, uint32_t, OpenReply r) override {
    std::lock_guard lock(mu_);
    Node* n = get(ino);
    if (!n) return r.error(ENOENT);
    ++n->opens;
    r.ok({});
  }
  void releasedir(const Context&, Ino ino, uint64_t, StatusReply r) override {
    close(ino);
    r.ok();
  }
  void readdir(const Context&, Ino ino, uint64_t, uint64_t off, DirReply r) override {
    std::lock_guard lock(mu_);
    Node* dir = get(ino);
    if (!dir) return r.error(ENOENT);
    // "." and ".." carry no Entry, even in plus mode (the kernel takes no
    // reference on them); every other entry does when r.plus().
    if (off < 1 && !r.add(".", ino, DT_DIR, 1)) return r.ok();
    if (off < 2 && !r.add("..", dir->parent, DT_DIR, 2)) return r.ok();
    for (auto it = dir->by_cookie.upper_bound(off); it != dir->by_cookie.end(); ++it) {
      const Node& n = nodes_.at(dir->entries.find(it->second)->second.ino);
      Entry e = entry_of(n);
      if (!r.add(it->second, n.attr.ino, n.attr.mode >> 12, it->first, r.plus() ? &e : nullptr))
        break;
    }
    r.ok();
  }
  void fsyncdir(const Context&, Ino, uint64_t, bool, StatusReply r) override { r.ok(); }

 private:
  static OpenInfo open_info() {
    // Direct: every write reaches us before it returns. keep_cache: the
    // kernel's cached pages stay valid across opens, since nothing but this
    // mount changes the data (Capabilities::sole_writer).
    return {.mode = IoMode::Direct, .keep_cache = true};
  }
  Node* get(Ino ino) {
    auto it = nodes_.find(ino);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  static Ino child(const Node& dir, std::string_view name) {
    auto it = dir.entries.find(name);
    return it == dir.entries.end() ? 0 : it->second.ino;
  }
  static Entry entry_of(const Node& n) {
    // Inode numbers are never reused, so the generation can stay 0.
    return {.ino = n.attr.ino, .generation = 0, .attr = n.attr,
            .entry_timeout = kTimeout, .attr_timeout = kTimeout};
  }
  // 0, or why `name` cannot be added to `dir`.
  static int check_new(const Node& dir, std::string_view name) {
    if (!dir.is_dir()) return ENOTDIR;
    if (dir.attr.nlink == 0) return ENOENT;  // removed while someone was in it
    if (name.size() > 255) return ENAMETOOLONG;
    if (name == "." || name == ".." || dir.entries.count(name)) return EEXIST;
    return 0;
  }

  Node& new_node(const Context& ctx, Node& dir, uint32_t mode, uint32_t rdev) {
    Ino ino = next_ino_++;
    Node& n = nodes_[ino];
    n.attr = {.ino = ino, .mode = mode, .nlink = 1, .uid = ctx.uid, .gid = ctx.gid, .rdev = rdev};
    n.attr.atime = n.attr.mtime = n.attr.ctime = now();
    if (dir.attr.mode & S_ISGID) {  // a setgid directory passes on its group (and, to directories, the bit)
      n.attr.gid = dir.attr.gid;
      if (S_ISDIR(mode)) n.attr.mode |= S_ISGID;
    }
    if (S_ISDIR(mode)) {
      n.attr.nlink = 2;
      n.parent = dir.attr.ino;
      ++dir.attr.nlink;
    }
    return n;
  }
  void make(const Context& ctx, Ino parent, std::string_view name, uint32_t mode, uint32_t rdev,
            std::string_view target, EntryReply& r) {
    std::lock_guard lock(mu_);
    Node* dir = get(parent);
    if (!dir) return r.error(ENOENT);
    if (int err = check_new(*dir, name)) return r.error(err);
    if (nodes_.size() >= kMaxInodes) return r.error(ENOSPC);
    Node& n = new_node(ctx, *dir, mode, rdev);
    if (S_ISLNK(mode)) {
      n.set_size(target.size());
      n.data.assign(target);
    }
    add_entry(*dir, name, n.attr.ino);
    r.ok(entry_of(n));
  }
  void add_entry(Node& dir, std::string_view name, Ino ino) {
    uint64_t cookie = dir.next_cookie++;
    dir.entries.emplace(std::string(name), Node::Dirent{ino, cookie});
    dir.by_cookie.emplace(cookie, std::string(name));
    dir.attr.size = dir.entries.size();
    dir.touch_modify();
  }
  void remove_entry(Node& dir, std::string_view name) {
    auto it = dir.entries.find(name);
    dir.by_cookie.erase(it->second.cookie);
    dir.entries.erase(it);
    dir.attr.size = dir.entries.size();
    dir.touch_modify();
  }
  // Removes the entry `name` of `dir`, which names `n`, and the link it counted.
  void drop_link(Node& dir, std::string_view name, Node& n) {
    remove_entry(dir, name);
    if (n.is_dir()) {
      n.attr.nlink = 0;  // its "." and its entry in `dir`
      --dir.attr.nlink;  // its ".."
    } else {
      --n.attr.nlink;
    }
    n.touch_change();
  }
  void remove(Ino parent, std::string_view name, bool dir_wanted, StatusReply& r) {
    std::lock_guard lock(mu_);
    Node* dir = get(parent);
    if (!dir) return r.error(ENOENT);
    Ino ino = child(*dir, name);
    if (!ino) return r.error(ENOENT);
    Node& n = nodes_.at(ino);
    if (dir_wanted && !n.is_dir()) return r.error(ENOTDIR);
    if (!dir_wanted && n.is_dir()) return r.error(EISDIR);
    if (n.is_dir() && !n.entries.empty()) return r.error(ENOTEMPTY);
    drop_link(*dir, name, n);
    maybe_free(ino);  // still open or known to the kernel: kept until release/forget
    r.ok();
  }
  void close(Ino ino) {
    std::lock_guard lock(mu_);
    Node* n = get(ino);
    if (!n) return;
    --n->opens;
    maybe_free(ino);
  }
  // Frees `ino` once nothing names it, nothing has it open and the kernel
  // holds no reference (see the top of the file). Called with mu_ held.
  void maybe_free(Ino ino) {
    Node* n = get(ino);
    if (!n || ino == kRootIno || n->attr.nlink > 0 || n->opens > 0) return;
    if (refs_ && refs_->referenced(ino)) return;
    nodes_.erase(ino);
  }

  std::mutex mu_;  // guards everything below
  std::unordered_map<Ino, Node> nodes_;
  Ino next_ino_ = kRootIno + 1;
  const KernelRefs* refs_ = nullptr;
};
}  // namespace

zest::Plugin memory() {
  return {.name = "memory",
          .summary = "a writable file system in memory (the tutorial's example)",
          .make = [](const zest::MountConfig& cfg, std::string* why) -> zest::Result<zest::Instance> {
            if (!cfg.options.empty()) {
              *why = "unknown option: " + cfg.options.front();
              return zest::Errno(EINVAL);
            }
            return zest::Instance{.fs = std::make_unique<Memory>()};
          }};
}
ZEST_PLUGIN(memory)

int main(int argc, char** argv) { return zest::main(argc, argv, memory()); }
