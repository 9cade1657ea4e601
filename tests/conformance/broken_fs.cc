#include "tests/conformance/broken_fs.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

#include "memfs/memfs.h"
#include "server/session.h"
#include "tests/mount/zest_mount.h"
#include "transport/mount.h"
#include "zest/fs/filesystem.h"

namespace zest::testing {
namespace {

using namespace zest::fs;

// Forwards every operation to memfs, except rename.
class BrokenRenameFs final : public FileSystem {
 public:
  explicit BrokenRenameFs(std::unique_ptr<FileSystem> inner)
      : in_(std::move(inner)) {}

  // The bug: success, and nothing moved.
  void rename(const Context&, Ino, std::string_view, Ino, std::string_view,
              uint32_t, StatusReply r) override {
    r.ok();
  }

  Capabilities capabilities() const override { return in_->capabilities(); }
  void set_notifier(Notifier* n) override { in_->set_notifier(n); }
  void init(const KernelRefs* refs) override { in_->init(refs); }
  void destroy() override { in_->destroy(); }
  void forget(Ino ino) override { in_->forget(ino); }
  void lookup(const Context& c, Ino p, std::string_view n,
              EntryReply r) override {
    in_->lookup(c, p, n, std::move(r));
  }
  void mknod(const Context& c, Ino p, std::string_view n, uint32_t m,
             uint32_t d, EntryReply r) override {
    in_->mknod(c, p, n, m, d, std::move(r));
  }
  void mkdir(const Context& c, Ino p, std::string_view n, uint32_t m,
             EntryReply r) override {
    in_->mkdir(c, p, n, m, std::move(r));
  }
  void symlink(const Context& c, std::string_view t, Ino p, std::string_view n,
               EntryReply r) override {
    in_->symlink(c, t, p, n, std::move(r));
  }
  void link(const Context& c, Ino i, Ino p, std::string_view n,
            EntryReply r) override {
    in_->link(c, i, p, n, std::move(r));
  }
  void unlink(const Context& c, Ino p, std::string_view n,
              StatusReply r) override {
    in_->unlink(c, p, n, std::move(r));
  }
  void rmdir(const Context& c, Ino p, std::string_view n,
             StatusReply r) override {
    in_->rmdir(c, p, n, std::move(r));
  }
  void getattr(const Context& c, Ino i, const uint64_t* fh,
               AttrReply r) override {
    in_->getattr(c, i, fh, std::move(r));
  }
  void setattr(const Context& c, Ino i, const SetAttr& a,
               AttrReply r) override {
    in_->setattr(c, i, a, std::move(r));
  }
  void readlink(const Context& c, Ino i, DataReply r) override {
    in_->readlink(c, i, std::move(r));
  }
  void access(const Context& c, Ino i, uint32_t m, StatusReply r) override {
    in_->access(c, i, m, std::move(r));
  }
  void statfs(const Context& c, Ino i, StatfsReply r) override {
    in_->statfs(c, i, std::move(r));
  }
  void setxattr(const Context& c, Ino i, std::string_view n,
                std::span<const std::byte> v, uint32_t f, uint32_t e,
                StatusReply r) override {
    in_->setxattr(c, i, n, v, f, e, std::move(r));
  }
  void getxattr(const Context& c, Ino i, std::string_view n, uint32_t s,
                XattrReply r) override {
    in_->getxattr(c, i, n, s, std::move(r));
  }
  void listxattr(const Context& c, Ino i, uint32_t s, XattrReply r) override {
    in_->listxattr(c, i, s, std::move(r));
  }
  void removexattr(const Context& c, Ino i, std::string_view n,
                   StatusReply r) override {
    in_->removexattr(c, i, n, std::move(r));
  }
  void open(const Context& c, Ino i, uint32_t f, OpenReply r) override {
    in_->open(c, i, f, std::move(r));
  }
  void create(const Context& c, Ino p, std::string_view n, uint32_t m,
              uint32_t f, CreateReply r) override {
    in_->create(c, p, n, m, f, std::move(r));
  }
  void tmpfile(const Context& c, Ino p, uint32_t m, uint32_t f,
               CreateReply r) override {
    in_->tmpfile(c, p, m, f, std::move(r));
  }
  void read(const Context& c, Ino i, uint64_t fh, uint64_t o, uint32_t s,
            DataReply r) override {
    in_->read(c, i, fh, o, s, std::move(r));
  }
  void write(const Context& c, Ino i, uint64_t fh, uint64_t o,
             std::span<const std::byte> d, uint32_t f, WriteReply r) override {
    in_->write(c, i, fh, o, d, f, std::move(r));
  }
  void flush(const Context& c, Ino i, uint64_t fh, StatusReply r) override {
    in_->flush(c, i, fh, std::move(r));
  }
  void release(const Context& c, Ino i, uint64_t fh, uint32_t f,
               StatusReply r) override {
    in_->release(c, i, fh, f, std::move(r));
  }
  void fsync(const Context& c, Ino i, uint64_t fh, bool d,
             StatusReply r) override {
    in_->fsync(c, i, fh, d, std::move(r));
  }
  void fallocate(const Context& c, Ino i, uint64_t fh, uint32_t m, uint64_t o,
                 uint64_t l, StatusReply r) override {
    in_->fallocate(c, i, fh, m, o, l, std::move(r));
  }
  void lseek(const Context& c, Ino i, uint64_t fh, uint64_t o, int w,
             LseekReply r) override {
    in_->lseek(c, i, fh, o, w, std::move(r));
  }
  void opendir(const Context& c, Ino i, uint32_t f, OpenReply r) override {
    in_->opendir(c, i, f, std::move(r));
  }
  void readdir(const Context& c, Ino i, uint64_t fh, uint64_t o,
               DirReply r) override {
    in_->readdir(c, i, fh, o, std::move(r));
  }
  void releasedir(const Context& c, Ino i, uint64_t fh,
                  StatusReply r) override {
    in_->releasedir(c, i, fh, std::move(r));
  }
  void fsyncdir(const Context& c, Ino i, uint64_t fh, bool d,
                StatusReply r) override {
    in_->fsyncdir(c, i, fh, d, std::move(r));
  }

 private:
  std::unique_ptr<FileSystem> in_;
};

[[noreturn]] void Serve(const std::string& mountpoint) {
  BrokenRenameFs fs(memfs::make_memfs(memfs::Options{}));
  transport::MountOptions mo;
  mo.fsname = "broken-rename";
  mo.subtype = "broken";
  std::string why;
  auto mount = transport::FuseMount::mount(mountpoint, mo, &why);
  if (!mount) {
    std::fprintf(stderr, "broken fs: mount %s: %s\n", mountpoint.c_str(),
                 why.c_str());
    ::_exit(2);
  }
  server::SessionOptions so;
  so.threads = 2;
  server::Session session(fs, so);
  auto r = session.serve(*mount);
  ::_exit(r ? 0 : 1);
}

}  // namespace

pid_t StartBrokenRenameFs(const std::string& mountpoint, std::string* error) {
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = "fork failed";
    return -1;
  }
  if (pid == 0) Serve(mountpoint);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (MountTypeAt(mountpoint) == "fuse.broken") return pid;
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      *error = "the broken file system's server exited before mounting";
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *error =
      "no mount of the broken file system on " + mountpoint + " after 10 s";
  StopBrokenRenameFs(pid, mountpoint);
  return -1;
}

void StopBrokenRenameFs(pid_t pid, const std::string& mountpoint) {
  std::string why;
  (void)transport::unmount_path(mountpoint, /*lazy=*/true, &why);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status;
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace zest::testing
