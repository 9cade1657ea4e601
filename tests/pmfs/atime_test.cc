// atime in pmfs: which reads update it (relatime, strictatime, noatime,
// nodiratime, O_NOATIME), and what persists: an update is committed before
// the read answers, except with lazytime, where it stays in DRAM until the
// inode's next commit, an fsync, or the unmount — and a crash loses it.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "zest/fs/atime.h"
#include "tests/pmfs/harness.h"

namespace zest::pmfs::test {
namespace {

using Mode = fs::AtimePolicy::Mode;

Options with(Mode m, bool lazy = false, bool dirs = true) {
  Options o;
  o.atime.mode = m;
  o.atime.lazy = lazy;
  o.atime.dirs = dirs;
  return o;
}

bool same(const timespec& a, const timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

class AtimeTest : public ::testing::Test, public PmFsHarness {
 protected:
  void TearDown() override {
    close();
    auto errors = fsck_errors();
    EXPECT_TRUE(errors.empty()) << "fsck: " << (errors.empty() ? "" : errors[0]);
  }
  // A file with atime a minute before its mtime.
  fs::Ino old_file(const char* name) {
    auto e = create(fs::kRootIno, name);
    EXPECT_TRUE(e);
    EXPECT_TRUE(write(e->ino, 0, "data"));
    set_times(e->ino, -120, -60);
    return e->ino;
  }
  void set_times(fs::Ino ino, int atime_off, int mtime_off) {
    fs::SetAttr s;
    s.valid = fs::SetAttr::kAtime | fs::SetAttr::kMtime;
    const time_t now = ::time(nullptr);
    s.atime = {now + atime_off, 0};
    s.mtime = {now + mtime_off, 0};
    ASSERT_TRUE(setattr(ino, s));
  }
  timespec atime(fs::Ino ino) {
    auto a = getattr(ino);
    EXPECT_TRUE(a);
    return a ? a->atime : timespec{};
  }
};

TEST_F(AtimeTest, RelatimeUpdatesOnceAfterAChangeAndPersists) {
  ASSERT_TRUE(mount(with(Mode::Relatime)));
  fs::Ino f = old_file("f");
  timespec before = atime(f);
  ASSERT_TRUE(read(f, 0, 4));
  timespec after = atime(f);
  EXPECT_FALSE(same(before, after)) << "first read after a change";
  ASSERT_TRUE(read(f, 0, 4));
  EXPECT_TRUE(same(after, atime(f))) << "second read: relatime keeps it";
  // Committed before the read answered: a crash right now keeps it.
  std::filesystem::copy_file(path(), path() + ".crash");
  close();
  std::filesystem::rename(path() + ".crash", path());
  ASSERT_TRUE(mount(with(Mode::Relatime)));
  EXPECT_TRUE(same(after, atime(f)));
}

TEST_F(AtimeTest, StrictatimeUpdatesEveryRead) {
  ASSERT_TRUE(mount(with(Mode::Strict)));
  fs::Ino f = old_file("f");
  ASSERT_TRUE(read(f, 0, 4));
  timespec first = atime(f);
  ::usleep(2000);
  ASSERT_TRUE(read(f, 0, 4));
  EXPECT_FALSE(same(first, atime(f)));
}

TEST_F(AtimeTest, NoatimeAndONoatimeLeaveItAlone) {
  ASSERT_TRUE(mount(with(Mode::None)));
  fs::Ino f = old_file("f");
  timespec before = atime(f);
  ASSERT_TRUE(read(f, 0, 4));
  EXPECT_TRUE(same(before, atime(f)));
  ASSERT_TRUE(mount(with(Mode::Strict)));
  // An open with O_NOATIME marks its handle; reads through it change
  // nothing, reads through another handle do.
  auto c = run<fs::OpenReply>([&](auto r) { fs().open(ctx, f, O_RDONLY | O_NOATIME, std::move(r)); });
  ASSERT_EQ(c->kind, fs_harness::Call::kOpen);
  EXPECT_TRUE(c->open.fh & fs::kFhNoAtime);
  ASSERT_TRUE(read(f, 0, 4, c->open.fh));
  EXPECT_TRUE(same(before, atime(f)));
  ASSERT_TRUE(read(f, 0, 4));
  EXPECT_FALSE(same(before, atime(f)));
  release(f, c->open.fh);
}

TEST_F(AtimeTest, DirectoriesFollowNodiratime) {
  for (bool dirs : {true, false}) {
    ASSERT_TRUE(mount(with(Mode::Relatime, false, dirs)));
    auto d = mkdir(fs::kRootIno, dirs ? "d1" : "d2");
    ASSERT_TRUE(d);
    set_times(d->ino, -120, -60);
    timespec before = atime(d->ino);
    list(d->ino);
    EXPECT_EQ(same(before, atime(d->ino)), !dirs) << (dirs ? "diratime" : "nodiratime");
  }
}

TEST_F(AtimeTest, LazytimeStaysInMemoryUntilUnmountOrFsync) {
  ASSERT_TRUE(mount(with(Mode::Relatime, /*lazy=*/true)));
  fs::Ino f = old_file("f");
  timespec before = atime(f);
  ASSERT_TRUE(read(f, 0, 4));
  timespec after = atime(f);
  EXPECT_FALSE(same(before, after)) << "stat sees the update at once";
  // A crash now loses it: the pool still holds the old atime.
  std::filesystem::copy_file(path(), path() + ".crash");
  // A clean unmount writes it.
  close();
  ASSERT_TRUE(mount(with(Mode::Relatime, true)));
  EXPECT_TRUE(same(after, atime(f))) << "unmount wrote the lazy atime";
  close();
  std::filesystem::rename(path() + ".crash", path());
  ASSERT_TRUE(mount(with(Mode::Relatime, true)));
  EXPECT_TRUE(same(before, atime(f))) << "the crash image has the old one";
  // fsync writes it too.
  set_times(f, -120, -60);
  before = atime(f);
  ASSERT_TRUE(read(f, 0, 4));
  after = atime(f);
  auto s = run<fs::StatusReply>([&](auto r) { fs().fsync(ctx, f, 0, false, std::move(r)); });
  ASSERT_EQ(s->err, 0);
  std::filesystem::copy_file(path(), path() + ".crash");
  close();
  std::filesystem::rename(path() + ".crash", path());
  ASSERT_TRUE(mount(with(Mode::Relatime, true)));
  EXPECT_TRUE(same(after, atime(f))) << "fsync wrote the lazy atime";
}

TEST_F(AtimeTest, ReadOnlyMountNeverWrites) {
  fs::Ino f = old_file("f");
  timespec before = atime(f);
  Options o = with(Mode::Strict);
  o.read_only = true;
  ASSERT_TRUE(mount(o));
  ASSERT_TRUE(read(f, 0, 4));
  EXPECT_TRUE(same(before, atime(f)));
}

}  // namespace
}  // namespace zest::pmfs::test
