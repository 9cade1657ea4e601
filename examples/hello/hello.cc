// hello: a read-only file system with one file, /hello.
//   c++ -std=c++20 hello.cc $(pkg-config --cflags --libs zest) -o hello
//   ./hello /mnt/hello && cat /mnt/hello/hello && zest umount /mnt/hello
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <zest/zest.h>

namespace {
using namespace zest::fs;
constexpr std::string_view kText = "Hello, world!\n";
constexpr Ino kFile = 2;

Attr attr_of(Ino ino) {
  Attr a{.ino = ino, .mode = S_IFDIR | 0555, .nlink = 2};
  if (ino == kFile) a = {.ino = ino, .size = kText.size(), .mode = S_IFREG | 0444, .nlink = 1};
  return a;
}

class Hello : public FileSystem {
  void lookup(const Context&, Ino parent, std::string_view name, EntryReply r) override {
    if (parent != kRootIno || name != "hello") return r.error(ENOENT);
    r.ok({.ino = kFile, .attr = attr_of(kFile)});
  }
  void getattr(const Context&, Ino ino, const uint64_t*, AttrReply r) override {
    if (ino != kRootIno && ino != kFile) return r.error(ENOENT);
    r.ok(attr_of(ino));
  }
  void open(const Context&, Ino, uint32_t flags, OpenReply r) override {
    if ((flags & O_ACCMODE) != O_RDONLY) return r.error(EACCES);
    r.ok({});
  }
  void read(const Context&, Ino, uint64_t, uint64_t off, uint32_t size, DataReply r) override {
    r.ok(kText.substr(std::min<uint64_t>(off, kText.size()), size));
  }
  void readdir(const Context&, Ino, uint64_t, uint64_t off, DirReply r) override {
    struct { const char* name; Ino ino; uint32_t type; } all[] = {
        {".", kRootIno, DT_DIR}, {"..", kRootIno, DT_DIR}, {"hello", kFile, DT_REG}};
    for (uint64_t i = off; i < 3 && r.add(all[i].name, all[i].ino, all[i].type, i + 1); ++i) {}
    r.ok();
  }
};
}  // namespace

zest::Plugin hello() {
  return {.name = "hello",
          .summary = "one read-only file",
          .make = [](const zest::MountConfig&, std::string*) -> zest::Result<zest::Instance> {
            return zest::Instance{.fs = std::make_unique<Hello>()};
          }};
}
ZEST_PLUGIN(hello)  // so that `zest mount --fs ./libzest-fs-hello.so MNT` works too

int main(int argc, char** argv) { return zest::main(argc, argv, hello()); }
