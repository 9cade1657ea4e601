#include "conformance/scratch.h"

#include <dirent.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace zest::conformance {

void RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    ::unlink(path.c_str());
    return;
  }
  ::chmod(path.c_str(), 0700);
  if (DIR* d = ::opendir(path.c_str())) {
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    for (auto& n : names) RemoveTree(path + "/" + n);
  }
  ::rmdir(path.c_str());
}

std::unique_ptr<ScratchDir> ScratchDir::Create(const std::string& parent,
                                               std::string* why) {
  std::string tmpl = parent + "/zest-conformance-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) {
    *why =
        parent + ": cannot create a scratch directory: " + std::strerror(errno);
    return nullptr;
  }
  std::unique_ptr<ScratchDir> d(new ScratchDir);
  d->path_ = buf.data();
  // Other users must reach it for the permission checks.
  if (::chmod(d->path_.c_str(), 0755) != 0) {
    *why = d->path_ + ": chmod: " + std::strerror(errno);
    return nullptr;
  }
  return d;
}

ScratchDir::~ScratchDir() { RemoveTree(path_); }

namespace {

// As root: a private mount namespace and a tmpfs of our own in it. Returns
// the mountpoint, or "" when that cannot be done here.
std::string MountPrivateTmpfs() {
  if (::geteuid() != 0) return "";
  if (::unshare(CLONE_NEWNS) != 0) return "";
  // Nothing we mount from here on propagates back to the parent namespace.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return "";
  char tmpl[] = "/tmp/zest-conformance-oracle-XXXXXX";
  if (!::mkdtemp(tmpl)) return "";
  if (::mount("zest-conformance", tmpl, "tmpfs", MS_NOSUID,
              "mode=0755,size=50%") != 0) {
    ::rmdir(tmpl);
    return "";
  }
  return tmpl;
}

}  // namespace

std::unique_ptr<TmpfsOracle> TmpfsOracle::Create(std::string* why) {
  std::unique_ptr<TmpfsOracle> o(new TmpfsOracle);
  o->mounted_on_ = MountPrivateTmpfs();
  std::string parent = o->mounted_on_.empty() ? "/dev/shm" : o->mounted_on_;
  struct statfs sfs {};
  if (::statfs(parent.c_str(), &sfs) != 0) {
    *why = parent + ": " + std::strerror(errno) + " (no tmpfs for the oracle)";
    return nullptr;
  }
  if (static_cast<unsigned long>(sfs.f_type) != TMPFS_MAGIC) {
    *why = parent + " is not a tmpfs (the oracle must be one)";
    return nullptr;
  }
  o->scratch_ = ScratchDir::Create(parent, why);
  if (!o->scratch_) return nullptr;
  return o;
}

TmpfsOracle::~TmpfsOracle() {
  scratch_.reset();
  if (!mounted_on_.empty()) {
    ::umount2(mounted_on_.c_str(), MNT_DETACH);
    ::rmdir(mounted_on_.c_str());
  }
}

std::string TmpfsOracle::describe() const {
  return mounted_on_.empty() ? "tmpfs /dev/shm"
                             : "private tmpfs on " + mounted_on_;
}

}  // namespace zest::conformance
