// pmfs as a fs::LayoutProvider (zest/fs/layout.h, docs/layouts.md): map for
// reading and writing, data stored straight into the pool as a
// direct-access client would, commit, the generation rules, what persists,
// and a clean fsck after each test.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "memfs/memfs.h"
#include "tests/pmfs/harness.h"

namespace zest::pmfs::test {
namespace {

constexpr uint64_t P = 4096;
using fs::LayoutExtent;
using fs::LayoutIntent;
using State = LayoutExtent::State;

// The pool file mapped shared, as a client holding the pool would map it.
class ClientMap {
 public:
  explicit ClientMap(const std::string& path) : fd_(::open(path.c_str(), O_RDWR)) {
    EXPECT_GE(fd_, 0);
    struct stat st {};
    EXPECT_EQ(fstat(fd_, &st), 0);
    size_ = static_cast<size_t>(st.st_size);
    void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    EXPECT_NE(m, MAP_FAILED);
    base_ = static_cast<char*>(m);
  }
  ~ClientMap() {
    munmap(base_, size_);
    ::close(fd_);
  }
  ClientMap(const ClientMap&) = delete;
  ClientMap& operator=(const ClientMap&) = delete;

  void store(uint64_t pool_off, std::string_view data) {
    ASSERT_LE(pool_off + data.size(), size_);
    std::memcpy(base_ + pool_off, data.data(), data.size());
    ASSERT_EQ(msync(base_, size_, MS_SYNC), 0);
  }

 private:
  int fd_;
  size_t size_ = 0;
  char* base_ = nullptr;
};

class LayoutTest : public ::testing::Test, public PmFsHarness {
 protected:
  void TearDown() override {
    close();
    expect_fsck_clean();
  }
  void expect_fsck_clean() {
    auto errors = fsck_errors();
    EXPECT_TRUE(errors.empty()) << "fsck: " << (errors.empty() ? "" : errors[0]);
  }
  // fsck needs the pool closed: unmount, check, mount again.
  void fsck_and_remount() {
    close();
    expect_fsck_clean();
    ASSERT_TRUE(mount()) << why();
  }
  fs::LayoutProvider& lp() {
    fs::LayoutProvider* p = fs().layouts();
    EXPECT_NE(p, nullptr);
    return *p;
  }
  fs::Ino make(std::string_view name = "f") {
    auto e = create(fs::kRootIno, name);
    EXPECT_TRUE(e) << name;
    return e ? e->ino : 0;
  }
  // Stores `data` (a whole number of blocks) through the layout extents
  // covering file offset `off`.
  void store(const fs::Layout& l, uint64_t off, std::string_view data) {
    ClientMap cm(path());
    for (const LayoutExtent& x : l.extents) {
      const uint64_t a = std::max(off, x.offset);
      const uint64_t b = std::min(off + data.size(), x.offset + x.length);
      if (a >= b) continue;
      ASSERT_NE(x.state, State::Hole);
      cm.store(x.pool_offset + (a - x.offset), data.substr(a - off, b - a));
    }
  }
  static std::vector<LayoutExtent> in_range(const fs::Layout& l, uint64_t a, uint64_t b) {
    std::vector<LayoutExtent> out;
    for (LayoutExtent x : l.extents) {
      const uint64_t s = std::max(a, x.offset), e = std::min(b, x.offset + x.length);
      if (s >= e) continue;
      x.pool_offset += s - x.offset;
      x.offset = s;
      x.length = e - s;
      out.push_back(x);
    }
    return out;
  }
  // Checks that `l` covers [a, b) contiguously in `state`.
  static void expect_covers(const fs::Layout& l, uint64_t a, uint64_t b, State state) {
    uint64_t pos = a;
    for (const LayoutExtent& x : l.extents) {
      if (x.offset + x.length <= a || x.offset >= b) continue;
      EXPECT_EQ(x.offset, pos);
      EXPECT_EQ(x.state, state) << "at " << x.offset;
      EXPECT_EQ(x.offset % P, 0u);
      EXPECT_EQ(x.length % P, 0u);
      EXPECT_EQ(x.pool_offset % P, 0u);
      pos = x.offset + x.length;
    }
    EXPECT_EQ(pos, b);
  }
  uint64_t used_blocks() {
    auto s = statfs();
    return s.blocks - s.bfree;
  }
};

TEST_F(LayoutTest, MemfsDeclines) {
  auto m = memfs::make_memfs(memfs::Options{});
  EXPECT_EQ(m->layouts(), nullptr);
  EXPECT_NE(fs().layouts(), nullptr);
}

TEST_F(LayoutTest, MapReadShowsDataHolesUnwrittenClippedToEof) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(2 * P, 'a')));
  ASSERT_EQ(fallocate(f, 0, 3 * P, 2 * P), 0);  // unwritten [3P, 5P), size 5P
  ASSERT_TRUE(write(f, 5 * P, std::string(100, 'b')));
  ASSERT_EQ(fallocate(f, FALLOC_FL_KEEP_SIZE, 8 * P, P), 0);  // past EOF
  ASSERT_EQ(getattr(f)->size, 5 * P + 100);

  auto l = lp().map(f, 0, 20 * P, LayoutIntent::Read);
  ASSERT_TRUE(l);
  EXPECT_GE(l->generation, 1u);
  expect_covers(*l, 0, 2 * P, State::Written);
  expect_covers(*l, 2 * P, 3 * P, State::Hole);
  expect_covers(*l, 3 * P, 5 * P, State::Unwritten);
  expect_covers(*l, 5 * P, 6 * P, State::Written);
  ASSERT_FALSE(l->extents.empty());
  EXPECT_EQ(l->extents.back().offset + l->extents.back().length, 6 * P);  // clipped

  // The range rounds out to blocks; a range past EOF maps nothing.
  auto mid = lp().map(f, P + 10, 20, LayoutIntent::Read);
  ASSERT_TRUE(mid);
  ASSERT_EQ(mid->extents.size(), 1u);
  EXPECT_EQ(mid->extents[0].offset, P);
  EXPECT_EQ(mid->extents[0].length, P);
  auto past = lp().map(f, 7 * P, 4 * P, LayoutIntent::Read);
  ASSERT_TRUE(past);
  EXPECT_TRUE(past->extents.empty());

  // The written extent's pool bytes are the file's.
  auto data = read(f, 0, P);
  ASSERT_TRUE(data);
  EXPECT_EQ(*data, std::string(P, 'a'));

  EXPECT_EQ(lp().map(f, 0, 0, LayoutIntent::Read).error().value, EINVAL);
  EXPECT_EQ(lp().map(f, INT64_MAX, 2 * P, LayoutIntent::Read).error().value, EFBIG);
  EXPECT_EQ(lp().map(fs::kRootIno, 0, P, LayoutIntent::Read).error().value, EISDIR);
  EXPECT_EQ(lp().map(999999, 0, P, LayoutIntent::Read).error().value, ENOENT);
}

TEST_F(LayoutTest, MapWriteStoreCommit) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(100, 'x')));
  ASSERT_TRUE(truncate(f, 8 * P));  // [P, 8P) a hole
  const auto before = *getattr(f);
  const uint64_t used0 = used_blocks();

  // A hole inside the file and a range past its end.
  auto l = lp().map(f, P, 2 * P, LayoutIntent::Write);
  ASSERT_TRUE(l);
  expect_covers(*l, P, 3 * P, State::Unwritten);
  auto l2 = lp().map(f, 8 * P, 2 * P, LayoutIntent::Write);
  ASSERT_TRUE(l2);
  EXPECT_EQ(l2->generation, l->generation);
  expect_covers(*l2, 8 * P, 10 * P, State::Unwritten);
  auto a = *getattr(f);
  EXPECT_EQ(a.size, 8 * P);  // size unchanged
  EXPECT_EQ(a.mtime.tv_sec, before.mtime.tv_sec);
  EXPECT_EQ(a.mtime.tv_nsec, before.mtime.tv_nsec);
  EXPECT_EQ(used_blocks(), used0 + 4);
  EXPECT_EQ(a.blocks, before.blocks + 4 * 8);
  // Mapping again allocates nothing more and answers the same blocks.
  auto again = lp().map(f, P, 2 * P, LayoutIntent::Write);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->extents[0].pool_offset, l->extents[0].pool_offset);
  EXPECT_EQ(used_blocks(), used0 + 4);

  // Stored but not committed: everyone still reads zeros.
  const std::string mid = std::string(P, 'm') + std::string(P, 'n');
  const std::string tail = std::string(P, 't') + std::string(P, 'u');
  store(*l, P, mid);
  store(*l2, 8 * P, tail);
  EXPECT_EQ(*read(f, P, 2 * P), std::string(2 * P, '\0'));
  EXPECT_EQ(*read(f, 8 * P, 2 * P), "");  // past EOF

  std::vector<LayoutExtent> ext = l->extents;
  ext.insert(ext.end(), l2->extents.begin(), l2->extents.end());
  const timespec mt{1234, 5678};
  ASSERT_TRUE(lp().commit(f, l->generation, ext, 9 * P + 10, mt));
  a = *getattr(f);
  EXPECT_EQ(a.size, 9 * P + 10);
  EXPECT_EQ(a.mtime.tv_sec, 1234);
  EXPECT_EQ(a.mtime.tv_nsec, 5678);
  EXPECT_GE(a.ctime.tv_sec, before.ctime.tv_sec);
  EXPECT_EQ(*read(f, 0, 100), std::string(100, 'x'));
  EXPECT_EQ(*read(f, P, 2 * P), mid);
  EXPECT_EQ(*read(f, 8 * P, 2 * P), tail.substr(0, P + 10));
  EXPECT_EQ(used_blocks(), used0 + 4);
  auto rl = lp().map(f, 0, 10 * P, LayoutIntent::Read);
  ASSERT_TRUE(rl);
  expect_covers(*rl, P, 3 * P, State::Written);
  expect_covers(*rl, 8 * P, 10 * P, State::Written);
  fsck_and_remount();

  // Idempotent: committing the same extents again is harmless; a smaller
  // size does not shrink.
  ASSERT_TRUE(lp().commit(f, l->generation, ext, P, mt));
  EXPECT_EQ(getattr(f)->size, 9 * P + 10);
  EXPECT_EQ(*read(f, P, 2 * P), mid);

  // Committed data survives a remount.
  ASSERT_TRUE(remount());
  EXPECT_EQ(getattr(f)->size, 9 * P + 10);
  EXPECT_EQ(getattr(f)->mtime.tv_sec, 1234);
  EXPECT_EQ(*read(f, P, 2 * P), mid);
  EXPECT_EQ(*read(f, 8 * P, 2 * P), tail.substr(0, P + 10));
}

TEST_F(LayoutTest, PartialCommitSplitsAndUncommittedStaysPreallocated) {
  fs::Ino f = make();
  ASSERT_TRUE(truncate(f, 4 * P));
  const uint64_t used0 = used_blocks();
  auto l = lp().map(f, 0, 6 * P, LayoutIntent::Write);
  ASSERT_TRUE(l);
  expect_covers(*l, 0, 6 * P, State::Unwritten);
  store(*l, 0, std::string(6 * P, 'd'));
  // Only block 1 and block 4 (past EOF, growing to 4P + 1).
  auto one = in_range(*l, P, 2 * P);
  auto four = in_range(*l, 4 * P, 5 * P);
  std::vector<LayoutExtent> ext = one;
  ext.insert(ext.end(), four.begin(), four.end());
  ASSERT_TRUE(lp().commit(f, l->generation, ext, 4 * P + 1, timespec{5, 0}));
  EXPECT_EQ(getattr(f)->size, 4 * P + 1);
  const std::string z(P, '\0'), d(P, 'd');
  EXPECT_EQ(*read(f, 0, 5 * P), z + d + z + z + "d");
  auto rl = lp().map(f, 0, 6 * P, LayoutIntent::Write);
  ASSERT_TRUE(rl);
  expect_covers(*rl, 0, P, State::Unwritten);
  expect_covers(*rl, P, 2 * P, State::Written);
  expect_covers(*rl, 2 * P, 4 * P, State::Unwritten);
  expect_covers(*rl, 4 * P, 5 * P, State::Written);
  expect_covers(*rl, 5 * P, 6 * P, State::Unwritten);
  const uint64_t used1 = used_blocks();
  EXPECT_GE(used1, used0 + 6);

  // Remount: the uncommitted blocks are preallocation: still allocated
  // (statfs, st_blocks), still zeros.
  fsck_and_remount();
  EXPECT_EQ(used_blocks(), used1);
  EXPECT_EQ(getattr(f)->blocks, 6u * 8);
  EXPECT_EQ(*read(f, 0, 5 * P), z + d + z + z + "d");
  auto after = lp().map(f, 0, 6 * P, LayoutIntent::Write);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->generation, 1u);  // starts again at mount
  expect_covers(*after, 2 * P, 4 * P, State::Unwritten);
  // ... and a commit after the remount still works.
  ASSERT_TRUE(lp().commit(f, after->generation, in_range(*after, 2 * P, 3 * P), std::nullopt,
                          timespec{6, 0}));
  EXPECT_EQ(*read(f, 2 * P, P), d);
  // Truncate frees them as any other blocks.
  ASSERT_TRUE(truncate(f, 0));
  EXPECT_EQ(used_blocks(), used0);
}

TEST_F(LayoutTest, StaleGenerationRefused) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(8 * P, 'w')));
  ASSERT_TRUE(truncate(f, 16 * P));
  auto check_stale = [&](const char* what, auto&& op) {
    SCOPED_TRACE(what);
    auto l = lp().map(f, 10 * P, P, LayoutIntent::Write);
    ASSERT_TRUE(l);
    store(*l, 10 * P, std::string(P, 's'));
    const auto before = *getattr(f);
    op();
    EXPECT_EQ(lp().commit(f, l->generation, l->extents, 16 * P, timespec{9, 0}).error().value,
              ESTALE);
    const auto a = *getattr(f);
    EXPECT_NE(a.mtime.tv_sec, 9);
    EXPECT_EQ(*read(f, 10 * P, P), std::string(P, '\0'));
    (void)before;
  };
  check_stale("truncate", [&] {
    ASSERT_TRUE(truncate(f, 12 * P));
    ASSERT_TRUE(truncate(f, 16 * P));
  });
  check_stale("punch", [&] {
    ASSERT_EQ(fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, P), 0);
  });
  check_stale("zero range", [&] { ASSERT_EQ(fallocate(f, FALLOC_FL_ZERO_RANGE, P, P), 0); });
  check_stale("copy-on-write", [&] { ASSERT_TRUE(write(f, 2 * P, std::string(8 * P, 'c'))); });
  // Growing, reading and small in-place overwrites keep the generation.
  auto l = lp().map(f, 10 * P, P, LayoutIntent::Write);
  ASSERT_TRUE(l);
  ASSERT_TRUE(truncate(f, 20 * P));
  ASSERT_TRUE(read(f, 0, P));
  ASSERT_TRUE(write(f, 2 * P, "small"));
  ASSERT_TRUE(lp().map(f, 0, 20 * P, LayoutIntent::Read));
  EXPECT_TRUE(lp().commit(f, l->generation, l->extents, std::nullopt, timespec{9, 0}));
}

TEST_F(LayoutTest, CommitRefusesWhatDoesNotMatch) {
  fs::Ino f = make();
  ASSERT_TRUE(truncate(f, 2 * P));
  auto l = lp().map(f, 2 * P, 2 * P, LayoutIntent::Write);  // past EOF
  ASSERT_TRUE(l);
  ASSERT_EQ(l->extents.size(), 1u);  // a fresh 64 MiB pool: one run
  const LayoutExtent x = l->extents[0];
  store(*l, 2 * P, std::string(2 * P, 'q'));
  const auto before = *getattr(f);
  auto refused = [&](std::vector<LayoutExtent> ext, std::optional<uint64_t> size) {
    return lp().commit(f, l->generation, ext, size, timespec{7, 0}).error().value;
  };
  LayoutExtent m = x;
  m.offset += 1;
  EXPECT_EQ(refused({m}, std::nullopt), EINVAL);  // misaligned offset
  m = x;
  m.length = 100;
  EXPECT_EQ(refused({m}, std::nullopt), EINVAL);  // misaligned length
  m = x;
  m.length = 0;
  EXPECT_EQ(refused({m}, std::nullopt), EINVAL);  // empty
  m = x;
  m.pool_offset += P;
  EXPECT_EQ(refused({m}, std::nullopt), EINVAL);  // other pool blocks
  m = x;
  m.pool_offset = P;  // the secondary superblock
  EXPECT_EQ(refused({m}, std::nullopt), EINVAL);
  m = x;
  m.offset = 5 * P;  // a hole
  EXPECT_EQ(refused({m}, std::nullopt), EINVAL);
  m = x;
  m.length = 3 * P;  // runs into a hole
  EXPECT_EQ(refused({m}, std::nullopt), EINVAL);
  EXPECT_EQ(refused({x, x}, std::nullopt), EINVAL);  // overlapping
  // Another file's blocks.
  fs::Ino g = make("g");
  auto lg = lp().map(g, 0, P, LayoutIntent::Write);
  ASSERT_TRUE(lg);
  m = lg->extents[0];
  m.offset = 2 * P;
  EXPECT_EQ(refused({m}, std::nullopt), EINVAL);
  // A growing size must end in a written block.
  LayoutExtent first = x;
  first.length = P;
  EXPECT_EQ(refused({first}, 9 * P), EINVAL);           // hole
  EXPECT_EQ(refused({first}, 3 * P + 1), EINVAL);       // unwritten
  EXPECT_EQ(refused({}, 2 * P + 1), EINVAL);            // nothing written
  EXPECT_EQ(lp().commit(f, l->generation, {&x, 1}, std::nullopt, timespec{7, 1000000000})
                .error()
                .value,
            EINVAL);
  EXPECT_EQ(lp().commit(g, 999, {}, std::nullopt, timespec{7, 0}).error().value, ESTALE);
  // Nothing changed.
  const auto a = *getattr(f);
  EXPECT_EQ(a.size, before.size);
  EXPECT_EQ(a.mtime.tv_sec, before.mtime.tv_sec);
  auto still = lp().map(f, 2 * P, 2 * P, LayoutIntent::Write);
  ASSERT_TRUE(still);
  expect_covers(*still, 2 * P, 4 * P, State::Unwritten);
  // The right one still works, growing to the end of a committed block.
  ASSERT_TRUE(lp().commit(f, l->generation, {&first, 1}, 3 * P, timespec{7, 0}));
  EXPECT_EQ(getattr(f)->size, 3 * P);
  EXPECT_EQ(*read(f, 2 * P, 2 * P), std::string(P, 'q'));
  // A smaller size is no error and does not shrink.
  ASSERT_TRUE(lp().commit(f, l->generation, {}, P, timespec{8, 0}));
  EXPECT_EQ(getattr(f)->size, 3 * P);
  EXPECT_EQ(getattr(f)->mtime.tv_sec, 8);
}

TEST_F(LayoutTest, MapWriteNoSpaceChangesNothing) {
  fs::Ino f = make();
  const uint64_t used0 = used_blocks();
  const auto before = *getattr(f);
  auto l = lp().map(f, 0, uint64_t{1} << 30, LayoutIntent::Write);  // 1 GiB, pool 64 MiB
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().value, ENOSPC);
  EXPECT_EQ(used_blocks(), used0);
  EXPECT_EQ(getattr(f)->blocks, before.blocks);
  auto r = lp().map(f, 0, uint64_t{1} << 30, LayoutIntent::Read);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->extents.empty());
}

TEST_F(LayoutTest, UnlinkFreesMappedBlocksAndRefusesCommit) {
  fs::Ino f = make();
  const uint64_t used0 = used_blocks();
  auto l = lp().map(f, 0, 4 * P, LayoutIntent::Write);
  ASSERT_TRUE(l);
  EXPECT_GE(used_blocks(), used0 + 4);  // and its first extent block
  ASSERT_EQ(unlink(fs::kRootIno, "f"), 0);
  forget(f);  // the kernel's reference from create
  EXPECT_EQ(used_blocks(), used0);
  auto c = lp().commit(f, l->generation, l->extents, std::nullopt, timespec{1, 0});
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error().value == ENOENT || c.error().value == ESTALE);
}

TEST_F(LayoutTest, ReadOnlyMountRefusesWrites) {
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(P, 'r')));
  Options ro = mount_options;
  ro.read_only = true;
  ASSERT_TRUE(remount(ro)) << why();
  EXPECT_TRUE(lp().map(f, 0, P, LayoutIntent::Read));
  EXPECT_EQ(lp().map(f, 0, P, LayoutIntent::Write).error().value, EROFS);
  EXPECT_EQ(lp().commit(f, 1, {}, std::nullopt, timespec{1, 0}).error().value, EROFS);
}

}  // namespace
}  // namespace zest::pmfs::test

namespace zest::pmfs::test {
namespace {

// A LayoutHolds whose answer the test sets.
struct Holds final : fs::LayoutHolds {
  std::atomic<bool> on{true};
  bool held(fs::Ino) override { return on; }
};

// Blocks a file frees while its maps are held are not reused until
// release_held: a stopped client's stale map can never reach another
// file's data (the delayed free, docs/layouts.md).
TEST_F(LayoutTest, FreesWaitWhileMapsAreHeld) {
  Holds holds;
  lp().set_holds(&holds);
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(16 * P, 'f')));
  auto l = lp().map(f, 0, 16 * P, LayoutIntent::Read);
  ASSERT_TRUE(l);
  const uint64_t used = used_blocks();
  ASSERT_TRUE(truncate(f, 0));
  EXPECT_GE(lp().deferred_blocks(), 16u);  // and the extent block
  EXPECT_EQ(used_blocks(), used);  // still taken
  // Another file cannot get them: its blocks are not the freed ones.
  fs::Ino g = make("g");
  ASSERT_TRUE(write(g, 0, std::string(16 * P, 'g')));
  auto lg = lp().map(g, 0, 16 * P, LayoutIntent::Read);
  ASSERT_TRUE(lg);
  for (const LayoutExtent& x : lg->extents)
    for (const LayoutExtent& y : l->extents)
      EXPECT_TRUE(x.pool_offset + x.length <= y.pool_offset ||
                  y.pool_offset + y.length <= x.pool_offset);
  // Still held: release_held changes nothing.
  lp().release_held(f);
  EXPECT_GE(lp().deferred_blocks(), 16u);
  holds.on = false;
  lp().release_held(f);
  EXPECT_EQ(lp().deferred_blocks(), 0u);
  EXPECT_LE(used_blocks(), used + 1);  // g took about as many as f gave back
  lp().set_holds(nullptr);
}

TEST_F(LayoutTest, UnsettingHoldsFreesEverythingWaiting) {
  Holds holds;
  lp().set_holds(&holds);
  fs::Ino f = make();
  ASSERT_TRUE(write(f, 0, std::string(4 * P, 'f')));
  const uint64_t used = used_blocks();
  ASSERT_EQ(unlink(fs::kRootIno, "f"), 0);
  forget(f);
  EXPECT_GE(lp().deferred_blocks(), 4u);  // and the extent block
  lp().set_holds(nullptr);
  EXPECT_EQ(lp().deferred_blocks(), 0u);
  EXPECT_LT(used_blocks(), used);
}

}  // namespace
}  // namespace zest::pmfs::test
