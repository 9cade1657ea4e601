// What persists: everything survives closing and reopening the pool; a
// transaction committed but not applied in place is replayed; orphans are
// freed at mount; read-only mounts change nothing.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "pmem/pool.h"
#include "tests/pmfs/harness.h"

namespace zest::pmfs::test {
namespace {

constexpr uint64_t P = 4096;

class RemountTest : public ::testing::Test, public PmFsHarness {
 protected:
  // snapshot() reads every file and directory; with atime updates it would
  // change what it records (tests/pmfs/atime_test.cc covers atime).
  RemountTest() {
    mount_options.atime.mode = fs::AtimePolicy::Mode::None;
    mount();
  }
  void TearDown() override {
    close();
    auto errors = fsck_errors();
    EXPECT_TRUE(errors.empty()) << "fsck: " << (errors.empty() ? "" : errors[0]);
  }
  fs::Ino ino_of(std::string_view path) {
    fs::Ino cur = fs::kRootIno;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string_view::npos) slash = path.size();
      auto e = lookup(cur, path.substr(pos, slash - pos));
      if (!e) return 0;
      cur = e->ino;
      pos = slash + 1;
    }
    return cur;
  }
  // Everything observable about the tree, as text.
  std::string snapshot(fs::Ino dir = fs::kRootIno, const std::string& prefix = "/") {
    std::string out;
    auto c = readdir(dir, 0, false, 1 << 20);
    for (const auto& d : c->dir) {
      if (d.name == "." || d.name == "..") continue;
      auto a = getattr(d.ino);
      out += prefix + d.name + " ino=" + std::to_string(d.ino) + " cookie=" +
             std::to_string(d.next_off) + " mode=" + std::to_string(a->mode) +
             " nlink=" + std::to_string(a->nlink) + " uid=" + std::to_string(a->uid) +
             " gid=" + std::to_string(a->gid) + " size=" + std::to_string(a->size) +
             " blocks=" + std::to_string(a->blocks) + " rdev=" + std::to_string(a->rdev) +
             " atime=" + std::to_string(a->atime.tv_sec) + "." + std::to_string(a->atime.tv_nsec) +
             " mtime=" + std::to_string(a->mtime.tv_sec) + "." + std::to_string(a->mtime.tv_nsec) +
             " ctime=" + std::to_string(a->ctime.tv_sec) + "." + std::to_string(a->ctime.tv_nsec) +
             " gen=" + std::to_string(lookup(dir, d.name)->generation) + "\n";
      if (S_ISREG(a->mode)) {
        out += "  data=" + std::to_string(std::hash<std::string>{}(*read(d.ino, 0, a->size))) +
               " data_at=" + std::to_string(lseek(d.ino, 0, SEEK_DATA) ? *lseek(d.ino, 0, SEEK_DATA) : 0) + "\n";
      }
      if (S_ISLNK(a->mode)) out += "  target=" + *readlink(d.ino) + "\n";
      auto xl = listxattr(d.ino);
      if (xl && !xl->empty()) {
        out += "  xattrs=" + *xl + "\n";
        for (size_t p = 0; p < xl->size();) {
          std::string name(xl->c_str() + p);
          out += "  " + name + "=" + std::to_string(std::hash<std::string>{}(*getxattr(d.ino, name))) + "\n";
          p += name.size() + 1;
        }
      }
      if (S_ISDIR(a->mode)) out += snapshot(d.ino, prefix + d.name + "/");
    }
    return out;
  }
};

TEST_F(RemountTest, EverythingSurvives) {
  auto d = mkdir(fs::kRootIno, "dir", 0750);
  auto sub = mkdir(d->ino, "sub");
  auto f = create(d->ino, "file");
  std::string data(3 * P + 123, 'x');
  for (size_t k = 0; k < data.size(); ++k) data[k] = static_cast<char>(k * 7);
  ASSERT_TRUE(write(f->ino, 0, data));
  ASSERT_TRUE(write(f->ino, 40 * P, "far"));                     // sparse
  ASSERT_EQ(fallocate(f->ino, FALLOC_FL_KEEP_SIZE, 50 * P, 4 * P), 0);  // unwritten past EOF
  ASSERT_TRUE(link(f->ino, sub->ino, "hardlink"));
  ASSERT_TRUE(symlink("short", d->ino, "s"));
  ASSERT_TRUE(symlink(std::string(1000, 'L'), d->ino, "l"));
  ASSERT_TRUE(mknod(d->ino, "fifo", S_IFIFO | 0640));
  ASSERT_TRUE(mknod(d->ino, "chr", S_IFCHR | 0600, 0x1234));
  ASSERT_EQ(setxattr(f->ino, "user.small", "v"), 0);
  ASSERT_EQ(setxattr(d->ino, "user.big", std::string(65536, 'B')), 0);
  ASSERT_EQ(setxattr(f->ino, "trusted.t", "t"), 0);
  fs::SetAttr s;
  s.valid = fs::SetAttr::kAtime | fs::SetAttr::kMtime | fs::SetAttr::kUid;
  s.atime = {111, 222};
  s.mtime = {333, 444};
  s.uid = 42;
  ASSERT_TRUE(setattr(sub->ino, s));
  for (int k = 0; k < 100; ++k) ASSERT_TRUE(create(sub->ino, "n" + std::to_string(k)));
  for (int k = 0; k < 100; k += 3) {
    const fs::Ino n = lookup(sub->ino, "n" + std::to_string(k))->ino;
    ASSERT_EQ(unlink(sub->ino, "n" + std::to_string(k)), 0);
    forget(n);  // else an orphan, freed only at the next mount
  }
  ASSERT_EQ(rename(d->ino, "s", sub->ino, "moved-symlink"), 0);

  const std::string before = snapshot();
  const fs::StatFs sf = statfs();
  ASSERT_TRUE(remount()) << why();
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(statfs().bfree, sf.bfree);
  EXPECT_EQ(statfs().ffree, sf.ffree);
  EXPECT_EQ(*read(ino_of("dir/file"), 0, data.size()), data);
  EXPECT_EQ(*getxattr(ino_of("dir"), "user.big"), std::string(65536, 'B'));
  // And it keeps working after the remount.
  ASSERT_TRUE(write(ino_of("dir/file"), 1, "YY"));
  ASSERT_TRUE(mkdir(ino_of("dir/sub"), "after"));
  const std::string again = snapshot();
  ASSERT_TRUE(remount()) << why();
  EXPECT_EQ(snapshot(), again);
}

TEST_F(RemountTest, GenerationBumpsWhenASlotIsReused) {
  auto a = create(fs::kRootIno, "a");
  ASSERT_EQ(unlink(fs::kRootIno, "a"), 0);
  forget(a->ino);
  auto b = create(fs::kRootIno, "b");
  ASSERT_EQ(b->ino, a->ino);
  EXPECT_GT(b->generation, a->generation);
  ASSERT_TRUE(remount());
  EXPECT_EQ(lookup(fs::kRootIno, "b")->generation, b->generation);
}

TEST_F(RemountTest, CommittedTransactionIsReplayed) {
  auto f = create(fs::kRootIno, "f");
  ASSERT_TRUE(write(f->ino, 0, "old"));
  // The next commit stops after its commit word: durable, not in place.
  Options o;
  o.test_halt_after_commits = 1;
  ASSERT_TRUE(remount(o));
  fs::Ino fi = lookup(fs::kRootIno, "f")->ino;
  ASSERT_TRUE(mkdir(fs::kRootIno, "made-before-crash"));
  // Dead now: nothing else reaches the pool.
  EXPECT_EQ(err_of(mkdir(fs::kRootIno, "after")), EIO);
  EXPECT_EQ(err_of(write(fi, 0, "new")), EIO);
  ASSERT_TRUE(remount()) << why();
  EXPECT_TRUE(lookup(fs::kRootIno, "made-before-crash"));
  EXPECT_EQ(err_of(lookup(fs::kRootIno, "after")), ENOENT);
  EXPECT_EQ(*read(fi, 0, 10), "old");

  // A write's transaction (new block + extents + size) replays too.
  o.test_halt_after_commits = 1;
  ASSERT_TRUE(remount(o));
  ASSERT_TRUE(write(fi, 2, std::string(2 * P, 'W')));
  ASSERT_TRUE(remount());
  EXPECT_EQ(*read(fi, 0, 4), "olWW");
  EXPECT_EQ(getattr(fi)->size, 2 + 2 * P);

  // A rename over an existing file, replayed.
  ASSERT_TRUE(create(fs::kRootIno, "g"));
  o.test_halt_after_commits = 1;
  ASSERT_TRUE(remount(o));
  ASSERT_EQ(rename(fs::kRootIno, "f", fs::kRootIno, "g"), 0);
  ASSERT_TRUE(remount());
  EXPECT_EQ(lookup(fs::kRootIno, "g")->ino, fi);
  EXPECT_EQ(err_of(lookup(fs::kRootIno, "f")), ENOENT);
}

TEST_F(RemountTest, OrphansAreFreedAtMount) {
  const uint64_t free0 = statfs().bfree;
  const uint64_t ffree0 = statfs().ffree;
  auto f = create(fs::kRootIno, "f", 0644, O_RDWR | O_CREAT, /*keep_open=*/true);
  ASSERT_TRUE(write(f->ino, 0, std::string(10 * P, 'o')));
  ASSERT_EQ(unlink(fs::kRootIno, "f"), 0);
  auto t = tmpfile(fs::kRootIno);
  ASSERT_TRUE(write(t->ino, 0, std::string(5 * P, 't')));
  EXPECT_LT(statfs().bfree, free0 - 15);
  // "Crash" with both open: at mount nobody can have them open any more.
  ASSERT_TRUE(remount()) << why();
  EXPECT_EQ(err_of(getattr(f->ino)), ENOENT);
  EXPECT_EQ(err_of(getattr(t->ino)), ENOENT);
  EXPECT_EQ(statfs().bfree, free0 - 1);  // only the root's directory block stays
  EXPECT_EQ(statfs().ffree, ffree0);
}

TEST_F(RemountTest, ReadOnlyMountChangesNothing) {
  auto f = create(fs::kRootIno, "f");
  ASSERT_TRUE(write(f->ino, 0, "ro"));
  Options o;
  o.read_only = true;
  ASSERT_TRUE(remount(o)) << why();
  EXPECT_EQ(*read(f->ino, 0, 2), "ro");
  EXPECT_EQ(err_of(write(f->ino, 0, "x")), EROFS);
  EXPECT_EQ(err_of(mkdir(fs::kRootIno, "d")), EROFS);
  EXPECT_EQ(unlink(fs::kRootIno, "f"), EROFS);
  EXPECT_EQ(setxattr(f->ino, "user.x", "1"), EROFS);
  ASSERT_TRUE(remount());
  EXPECT_TRUE(lookup(fs::kRootIno, "f"));
}

TEST_F(RemountTest, MountOnAMappedPoolWithRecorder) {
  ASSERT_TRUE(create(fs::kRootIno, "f"));
  close();
  std::string w;
  auto pool = pmem::PoolMap::open(path(), {}, &w);
  ASSERT_TRUE(pool) << w;
  auto fsr = pmfs::open(std::move(*pool), {}, &w);
  ASSERT_TRUE(fsr) << w;
  (*fsr)->mark(1);  // no recorder: a no-op
  EXPECT_GT((*fsr)->usage().free_blocks, 0u);
  fsr->reset();
  ASSERT_TRUE(mount());
}

}  // namespace
}  // namespace zest::pmfs::test
