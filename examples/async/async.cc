// async: a flat key-value file system (one directory of regular files)
// whose every answer comes from one completion thread, as a file system
// over a network or a device queue would answer. It shows:
//
//  - Replies outlive the call. Each FileSystem method copies what it needs
//    (names and write data are only valid during the call), moves its reply
//    object into a Job and queues it; the completion thread runs the jobs
//    in order and completes each reply there. The server's worker is free
//    again as soon as the method returns.
//  - State owned by one thread. The files live in maps only the completion
//    thread touches, so they need no lock; the queue has the only mutex.
//  - Interrupts. Every job first asks Reply::interrupted() and answers
//    EINTR when the caller was interrupted (a signal) while it waited. With
//    -o read_delay_ms=N each read is parked for N ms (a slow back end); a
//    parked read arms Reply::on_interrupt, so a signal answers it at once.
//  - Shutdown. destroy() stops the thread after it has drained the queue and
//    answered every parked read: no reply is left when the session ends.
//    Jobs queued after that (there should be none but forgets) are dropped,
//    and a reply destroyed without an answer answers EIO by itself.
//
//   ./async [-f] [-o read_delay_ms=N] MOUNTPOINT
//   echo hi > MNT/key; cat MNT/key; ls -l MNT
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>  // RENAME_NOREPLACE
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <zest/zest.h>

namespace {
using namespace zest::fs;
using Clock = std::chrono::steady_clock;

constexpr double kTimeout = 1.0;
constexpr uint64_t kMaxFileSize = 64ull << 20;

timespec now() {
  timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t;
}

// A queued operation: owns its (moved) reply and whatever it copied.
struct Job {
  virtual ~Job() = default;
  virtual void run() = 0;
};
template <class F>
struct FnJob final : Job {
  explicit FnJob(F f) : f(std::move(f)) {}
  void run() override { f(); }
  F f;
};

class Async : public FileSystem {
 public:
  explicit Async(std::chrono::milliseconds read_delay) : read_delay_(read_delay) {
    root_ = {.ino = kRootIno, .mode = S_IFDIR | 0755, .nlink = 2, .uid = ::getuid(),
             .gid = ::getgid()};
    root_.atime = root_.mtime = root_.ctime = now();
    Ino ino = new_file("README", S_IFREG | 0644, root_.uid, root_.gid);
    set_data(files_.at(ino), "Every answer here comes from a completion thread.\n");
  }
  ~Async() override { stop(); }

  Capabilities capabilities() const override {
    Capabilities c;
    c.sole_writer = true;
    return c;
  }
  // The thread starts here, once the mount exists: a file system made for
  // a mount that then fails never starts it.
  void init(const KernelRefs* refs) override {
    refs_ = refs;
    thread_ = std::thread([this] { loop(); });
  }
  // The session calls this when the kernel connection ends; the file system
  // object is destroyed later, after the session has stopped its workers.
  void destroy() override { stop(); }
  void forget(Ino ino) override {
    submit([this, ino] { maybe_free(ino); });
  }

  void lookup(const Context&, Ino parent, std::string_view name, EntryReply r) override {
    submit([this, parent, name = std::string(name), r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      if (parent != kRootIno) return r.error(ENOTDIR);
      Ino ino = name == "." || name == ".." ? kRootIno : find(name);
      if (!ino) return r.ok({.ino = 0, .entry_timeout = kTimeout});  // a cached miss
      r.ok(entry_of(ino));  // on this thread: no forget can run in between
    });
  }
  void getattr(const Context&, Ino ino, const uint64_t*, AttrReply r) override {
    submit([this, ino, r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      const Attr* a = attr(ino);
      if (!a) return r.error(ENOENT);
      r.ok(*a, kTimeout);
    });
  }
  void setattr(const Context&, Ino ino, const SetAttr& s, AttrReply r) override {
    submit([this, ino, s, r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      if (ino == kRootIno) return r.error(EPERM);
      auto it = files_.find(ino);
      if (it == files_.end()) return r.error(ENOENT);
      File& f = it->second;
      if (s.valid & SetAttr::kSize) {
        if (s.size > kMaxFileSize) return r.error(EFBIG);
        f.data.resize(s.size);
        set_data(f, std::move(f.data));
      }
      if (s.valid & SetAttr::kMode) f.attr.mode = (f.attr.mode & S_IFMT) | (s.mode & 07777);
      if (s.valid & SetAttr::kUid) f.attr.uid = s.uid;
      if (s.valid & SetAttr::kGid) f.attr.gid = s.gid;
      if (s.valid & SetAttr::kAtime) f.attr.atime = s.atime;
      if (s.valid & SetAttr::kAtimeNow) f.attr.atime = now();
      if (s.valid & SetAttr::kMtime) f.attr.mtime = s.mtime;
      if (s.valid & SetAttr::kMtimeNow) f.attr.mtime = now();
      f.attr.ctime = now();
      r.ok(f.attr, kTimeout);
    });
  }
  void readdir(const Context&, Ino ino, uint64_t, uint64_t off, DirReply r) override {
    submit([this, ino, off, r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      if (ino != kRootIno) return r.error(ENOTDIR);
      if (off < 1 && !r.add(".", kRootIno, DT_DIR, 1)) return r.ok();
      if (off < 2 && !r.add("..", kRootIno, DT_DIR, 2)) return r.ok();
      // A file's offset is its inode number (never reused, and from 3 on, after
      // "." and ".."), so offsets stay valid while files come and go.
      for (auto it = by_ino_.upper_bound(off); it != by_ino_.end(); ++it) {
        Entry e = entry_of(it->first);
        if (!r.add(it->second, it->first, DT_REG, it->first, r.plus() ? &e : nullptr)) break;
      }
      r.ok();
    });
  }
  void unlink(const Context&, Ino parent, std::string_view name, StatusReply r) override {
    submit([this, parent, name = std::string(name), r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      Ino ino = parent == kRootIno ? find(name) : 0;
      if (!ino) return r.error(ENOENT);
      remove_name(name, ino);
      r.ok();
    });
  }
  void rename(const Context&, Ino parent, std::string_view name, Ino newparent,
              std::string_view newname, uint32_t flags, StatusReply r) override {
    submit([this, parent, newparent, flags, name = std::string(name),
            newname = std::string(newname), r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      if (flags & ~uint32_t(RENAME_NOREPLACE)) return r.error(EINVAL);
      if (parent != kRootIno || newparent != kRootIno) return r.error(ENOENT);
      Ino src = find(name), dst = find(newname);
      if (!src) return r.error(ENOENT);
      if (dst && (flags & RENAME_NOREPLACE)) return r.error(EEXIST);
      if (dst == src) return r.ok();
      if (dst) remove_name(newname, dst);
      names_.erase(name);
      names_[newname] = src;
      by_ino_[src] = newname;
      files_.at(src).attr.ctime = now();
      root_.mtime = root_.ctime = now();
      r.ok();
    });
  }

  void open(const Context&, Ino ino, uint32_t flags, OpenReply r) override {
    submit([this, ino, flags, r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      auto it = files_.find(ino);
      if (it == files_.end()) return r.error(ENOENT);
      if (flags & O_TRUNC) set_data(it->second, {});  // FUSE_ATOMIC_O_TRUNC
      ++it->second.opens;
      r.ok({});  // IoMode::Direct, no keep_cache: every open reads afresh
    });
  }
  void create(const Context& ctx, Ino parent, std::string_view name, uint32_t mode, uint32_t,
              CreateReply r) override {
    submit([this, ctx, parent, mode, name = std::string(name), r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      if (parent != kRootIno) return r.error(ENOTDIR);
      if (name.size() > 255) return r.error(ENAMETOOLONG);
      if (find(name)) return r.error(EEXIST);
      Ino ino = new_file(name, S_IFREG | (mode & 07777), ctx.uid, ctx.gid);
      ++files_.at(ino).opens;
      r.ok(entry_of(ino), {});
    });
  }
  void read(const Context&, Ino ino, uint64_t, uint64_t off, uint32_t size,
            DataReply r) override {
    submit([this, ino, off, size, r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      if (read_delay_.count() == 0) return answer_read(ino, off, size, r);
      // Parked: answered by the loop at the deadline, or by an interrupt.
      uint64_t cookie = ++last_cookie_;
      if (!r.on_interrupt(&Async::interrupt, this, cookie)) return r.error(EINTR);
      parked_.push_back({Clock::now() + read_delay_, cookie, ino, off, size, std::move(r)});
    });
  }
  void write(const Context&, Ino ino, uint64_t, uint64_t off, std::span<const std::byte> data,
             uint32_t, WriteReply r) override {
    submit([this, ino, off, bytes = std::string(reinterpret_cast<const char*>(data.data()),
                                                 data.size()),
            r = std::move(r)]() mutable {
      if (r.interrupted()) return r.error(EINTR);
      auto it = files_.find(ino);
      if (it == files_.end()) return r.error(ENOENT);
      if (off > kMaxFileSize || bytes.size() > kMaxFileSize - off) return r.error(EFBIG);
      File& f = it->second;
      std::string d = std::move(f.data);
      if (off + bytes.size() > d.size()) d.resize(off + bytes.size());
      d.replace(off, bytes.size(), bytes);
      set_data(f, std::move(d));
      r.ok(bytes.size());
    });
  }
  void release(const Context&, Ino ino, uint64_t, uint32_t, StatusReply r) override {
    submit([this, ino, r = std::move(r)]() mutable {
      auto it = files_.find(ino);
      if (it != files_.end()) --it->second.opens;
      maybe_free(ino);
      r.ok();  // release must not fail, interrupted or not
    });
  }
  void fsync(const Context&, Ino, uint64_t, bool, StatusReply r) override {
    submit([r = std::move(r)]() mutable { r.ok(); });
  }

 private:
  struct File {
    Attr attr;
    std::string data;
    uint32_t opens = 0;
  };
  struct ParkedRead {
    Clock::time_point due;
    uint64_t cookie;
    Ino ino;
    uint64_t off;
    uint32_t size;
    DataReply reply;
  };

  // --- the queue (any thread) ---------------------------------------------
  template <class F>
  void submit(F f) {
    auto job = std::make_unique<FnJob<F>>(std::move(f));
    std::lock_guard lock(mu_);
    if (stopping_) return;  // the job (and the reply in it) is dropped: EIO
    queue_.push_back(std::move(job));
    cv_.notify_one();
  }
  // Reply::on_interrupt's callback: runs on a server thread, possibly after
  // the read was answered; the loop looks the cookie up and does nothing if
  // it is gone.
  static void interrupt(void* self, uint64_t cookie) {
    auto* fs = static_cast<Async*>(self);
    std::lock_guard lock(fs->mu_);
    fs->interrupts_.push_back(cookie);
    fs->cv_.notify_one();
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

  // --- the completion thread ----------------------------------------------
  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      while (!queue_.empty() || !interrupts_.empty()) {
        auto jobs = std::exchange(queue_, {});
        auto intr = std::exchange(interrupts_, {});
        lock.unlock();  // run jobs without the queue's lock: submit() never waits long
        for (auto& job : jobs) job->run();
        for (uint64_t cookie : intr) answer_parked([cookie](const ParkedRead& p) { return p.cookie == cookie; }, EINTR);
        lock.lock();
      }
      if (stopping_) break;
      if (parked_.empty()) {
        cv_.wait(lock);
      } else {
        auto due = parked_.front().due;  // FIFO with one delay: the front is due first
        cv_.wait_until(lock, due);
        lock.unlock();
        answer_parked([](const ParkedRead& p) { return p.due <= Clock::now(); }, 0);
        lock.lock();
      }
    }
    lock.unlock();
    // Draining: the queue is empty and stays so (stopping_); answer what is parked.
    answer_parked([](const ParkedRead&) { return true; }, 0);
  }
  // Answers the parked reads `which` selects: with `err`, or their data.
  template <class Pred>
  void answer_parked(Pred which, int err) {
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (!which(*it)) {
        ++it;
        continue;
      }
      if (err) it->reply.error(err);
      else answer_read(it->ino, it->off, it->size, it->reply);
      it = parked_.erase(it);
    }
  }
  void answer_read(Ino ino, uint64_t off, uint32_t size, DataReply& r) {
    auto it = files_.find(ino);
    if (it == files_.end()) return r.error(ENOENT);
    const std::string& d = it->second.data;
    off = std::min<uint64_t>(off, d.size());
    r.ok(std::string_view(d).substr(off, size));
  }

  // --- the files (completion thread only) ---------------------------------
  Ino find(const std::string& name) const {
    auto it = names_.find(name);
    return it == names_.end() ? 0 : it->second;
  }
  const Attr* attr(Ino ino) const {
    if (ino == kRootIno) return &root_;
    auto it = files_.find(ino);
    return it == files_.end() ? nullptr : &it->second.attr;
  }
  Entry entry_of(Ino ino) const {
    return {.ino = ino, .attr = *attr(ino), .entry_timeout = kTimeout, .attr_timeout = kTimeout};
  }
  Ino new_file(const std::string& name, uint32_t mode, uint32_t uid, uint32_t gid) {
    Ino ino = next_ino_++;
    File& f = files_[ino];
    f.attr = {.ino = ino, .mode = mode, .nlink = 1, .uid = uid, .gid = gid};
    f.attr.atime = f.attr.mtime = f.attr.ctime = now();
    names_[name] = ino;
    by_ino_[ino] = name;
    root_.mtime = root_.ctime = now();
    return ino;
  }
  static void set_data(File& f, std::string data) {
    f.data = std::move(data);
    f.attr.size = f.data.size();
    f.attr.blocks = (f.attr.size + 511) / 512;
    f.attr.mtime = f.attr.ctime = now();
  }
  void remove_name(const std::string& name, Ino ino) {
    names_.erase(name);
    by_ino_.erase(ino);
    File& f = files_.at(ino);
    f.attr.nlink = 0;
    f.attr.ctime = root_.mtime = root_.ctime = now();
    maybe_free(ino);
  }
  // Frees a file nothing names, nothing has open and the kernel no longer
  // knows. Only this thread answers entries, so no reference can be handed
  // out between the check and the erase.
  void maybe_free(Ino ino) {
    auto it = files_.find(ino);
    if (it == files_.end() || it->second.attr.nlink > 0 || it->second.opens > 0) return;
    if (refs_ && refs_->referenced(ino)) return;
    files_.erase(it);
  }

  const std::chrono::milliseconds read_delay_;
  const KernelRefs* refs_ = nullptr;

  std::mutex mu_;  // guards the four below
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::vector<uint64_t> interrupts_;
  bool stopping_ = false;

  // Completion thread only.
  Attr root_;
  std::unordered_map<Ino, File> files_;
  std::map<std::string, Ino> names_;
  std::map<Ino, std::string> by_ino_;  // readdir order
  Ino next_ino_ = 3;                   // 1 is the root; offsets 1, 2 are "." and ".."
  std::list<ParkedRead> parked_;
  uint64_t last_cookie_ = 0;

  std::thread thread_;  // started by init()
};
}  // namespace

zest::Plugin async_plugin() {
  return {.name = "async",
          .summary = "a key-value file system answered from a completion thread",
          .options_help = "  read_delay_ms=N  park every read for N ms (interrupts answer it early)",
          .make = [](const zest::MountConfig& cfg, std::string* why) -> zest::Result<zest::Instance> {
            unsigned delay = 0;
            for (const std::string& o : cfg.options) {
              char end;
              if (std::sscanf(o.c_str(), "read_delay_ms=%u%c", &delay, &end) == 1) continue;
              *why = "unknown option: " + o;
              return zest::Errno(EINVAL);
            }
            return zest::Instance{.fs = std::make_unique<Async>(std::chrono::milliseconds(delay))};
          }};
}
ZEST_PLUGIN(async_plugin)

int main(int argc, char** argv) { return zest::main(argc, argv, async_plugin()); }
