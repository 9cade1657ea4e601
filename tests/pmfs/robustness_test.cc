// Damaged and foreign pools: open refuses them with a message and never
// crashes or hangs; a pool that opens despite damage survives operations.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

#include "base/log.h"
#include "tests/pmfs/harness.h"

namespace zest::pmfs::test {
namespace {

constexpr uint64_t P = 4096;

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Opens `path`; returns the errno (0 on success) and checks a refusal
// explains itself.
int try_open(const std::string& path, std::unique_ptr<PmFs>* out = nullptr) {
  std::string why;
  auto r = pmfs::open(path, {}, &why);
  if (!r) {
    EXPECT_FALSE(why.empty());
    return r.error().value;
  }
  if (out) *out = std::move(*r);
  return 0;
}

TEST(RobustnessTest, RefusesForeignAndDamagedPools) {
  pmem::testing::TempDir dir;
  const std::string p = dir.file("pool");
  std::string why;

  write_file(p, std::vector<char>(1 << 20, 0));  // zeroed
  ASSERT_EQ(pmfs::open(p, {}, &why).error().value, EINVAL);
  EXPECT_NE(why.find("not a pmfs pool"), std::string::npos) << why;

  std::vector<char> garbage(1 << 20);
  std::mt19937_64 rng(1);
  for (char& c : garbage) c = static_cast<char>(rng());
  write_file(p, garbage);
  EXPECT_EQ(try_open(p), EINVAL);

  std::vector<char> foreign(1 << 20, 0);
  std::memcpy(foreign.data() + 1080, "\x53\xef", 2);  // an ext4 magic where ext4 has it
  std::memcpy(foreign.data(), "SQLite format 3", 16);
  write_file(p, foreign);
  EXPECT_EQ(try_open(p), EINVAL);

  write_file(p, std::vector<char>(100, 'x'));  // tiny
  EXPECT_NE(try_open(p), 0);

  // A real pool, truncated.
  ::unlink(p.c_str());
  ASSERT_TRUE(mkfs(p, 16 << 20, {}, &why)) << why;
  ASSERT_EQ(::truncate(p.c_str(), 8 << 20), 0);
  why.clear();
  auto r = pmfs::open(p, {}, &why);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, EUCLEAN);
  EXPECT_NE(why.find("truncated"), std::string::npos) << why;
}

TEST(RobustnessTest, DamagedPrimarySuperblockUsesTheSecondary) {
  PmFsHarness h(8 << 20);
  ASSERT_TRUE(h.create(fs::kRootIno, "f"));
  h.close();
  auto bytes = read_file(h.path());
  bytes[20] ^= 0x5a;  // inside the primary's uuid: checksum mismatch
  write_file(h.path(), bytes);
  ASSERT_TRUE(h.mount()) << h.why();
  EXPECT_TRUE(h.lookup(fs::kRootIno, "f"));
  h.close();
  EXPECT_EQ(read_file(h.path())[20], bytes[20] ^ 0x5a);  // rewritten from the copy
  // Both damaged: refused, naming both.
  bytes = read_file(h.path());
  bytes[20] ^= 1;
  bytes[P + 20] ^= 1;
  write_file(h.path(), bytes);
  EXPECT_FALSE(h.mount());
  EXPECT_EQ(h.last_open_error(), EUCLEAN);
  EXPECT_NE(h.why().find("secondary"), std::string::npos) << h.why();
}

// Builds a populated pool, then opens hundreds of randomly damaged copies of
// it: open must refuse cleanly or succeed, and a pool that opened must
// survive a round of operations over everything in it.
TEST(RobustnessTest, RandomlyCorruptedPoolsNeverCrash) {
  set_log_level(LogLevel::Error);
  MkfsOptions mo = PmFsHarness::default_mkfs();
  mo.journal_blocks = 16;
  PmFsHarness h(4 << 20, mo);
  auto d = h.mkdir(fs::kRootIno, "d");
  auto sub = h.mkdir(d->ino, "sub");
  for (int k = 0; k < 40; ++k) {
    auto f = h.create(k % 2 ? d->ino : sub->ino, "file" + std::to_string(k));
    ASSERT_TRUE(f);
    ASSERT_TRUE(h.write(f->ino, (k % 5) * P, std::string(100 + k * 50, 'a' + k % 26)));
    if (k % 3 == 0) {
      ASSERT_EQ(h.setxattr(f->ino, "user.k", std::string(k * 10, 'x')), 0);
    }
    if (k % 7 == 0) {
      ASSERT_TRUE(h.link(f->ino, fs::kRootIno, "link" + std::to_string(k)));
    }
  }
  ASSERT_TRUE(h.symlink("short", d->ino, "s"));
  ASSERT_TRUE(h.symlink(std::string(500, 'l'), d->ino, "l"));
  ASSERT_TRUE(h.rename(d->ino, "file1", sub->ino, "renamed") == 0);
  h.close();
  const std::vector<char> image = read_file(h.path());
  // The blocks that hold anything: metadata and data alike.
  std::vector<size_t> live;
  for (size_t b = 0; b < image.size() / P; ++b) {
    for (size_t k = 0; k < P; ++k) {
      if (image[b * P + k]) {
        live.push_back(b);
        break;
      }
    }
  }
  ASSERT_GT(live.size(), 20u);

  std::mt19937_64 rng(12345);
  int opened = 0, refused = 0;
  for (int round = 0; round < 300; ++round) {
    std::vector<char> img = image;
    const int flips = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < flips; ++k) {
      const size_t b = live[rng() % live.size()];
      // Mostly within structure headers and entries (the first bytes of a
      // slot), sometimes anywhere in the block.
      size_t off = rng() % 2 ? (rng() % 64) * 64 + rng() % 24 : rng() % P;
      img[b * P + off] ^= static_cast<char>(1u << (rng() % 8));
    }
    write_file(h.path(), img);
    std::unique_ptr<PmFs> fsp;
    const int err = try_open(h.path(), &fsp);
    if (err) {
      EXPECT_TRUE(err == EINVAL || err == EUCLEAN || err == EROFS) << err;
      ++refused;
      continue;
    }
    ++opened;
    // Exercise everything reachable, then change things.
    FakeSink sink;
    fsp->init(&sink);
    fs::Context ctx{0, 0, 1};
    std::vector<fs::Ino> dirs{fs::kRootIno}, files;
    for (size_t k = 0; k < dirs.size() && k < 100; ++k) {
      Call c;
      c.dir_capacity = 1 << 20;
      fsp->readdir(ctx, dirs[k], 0, 0, fs::DirReply(&sink, &c, true));
      for (const auto& e : c.dir) {
        if (e.name == "." || e.name == "..") continue;
        if (S_ISDIR(e.entry.attr.mode)) dirs.push_back(e.ino);
        if (S_ISREG(e.entry.attr.mode)) files.push_back(e.ino);
        Call l;
        fsp->readlink(ctx, e.ino, fs::DataReply(&sink, &l));
        Call x;
        fsp->listxattr(ctx, e.ino, 1 << 16, fs::XattrReply(&sink, &x));
        Call g;
        fsp->getxattr(ctx, e.ino, "user.k", 1 << 17, fs::XattrReply(&sink, &g));
      }
    }
    for (fs::Ino f : files) {
      Call r;
      fsp->read(ctx, f, 0, 0, 1 << 20, fs::DataReply(&sink, &r));
      Call w;
      std::string data(5000, 'W');
      fsp->write(ctx, f, 0, 3000, bytes(data), 0, fs::WriteReply(&sink, &w));
      Call t;
      fs::SetAttr s;
      s.valid = fs::SetAttr::kSize;
      s.size = 1000;
      fsp->setattr(ctx, f, s, fs::AttrReply(&sink, &t));
    }
    for (fs::Ino d2 : dirs) {
      Call c;
      fsp->create(ctx, d2, "new", 0644, O_RDWR, fs::CreateReply(&sink, &c));
      Call u;
      fsp->unlink(ctx, d2, "file3", fs::StatusReply(&sink, &u));
      Call rn;
      fsp->rename(ctx, d2, "new", fs::kRootIno, "moved" + std::to_string(d2), 0,
                  fs::StatusReply(&sink, &rn));
    }
    fsp.reset();
    // What the damaged pool became after those operations must open again
    // (or be refused cleanly).
    std::unique_ptr<PmFs> again;
    const int err2 = try_open(h.path(), &again);
    EXPECT_TRUE(err2 == 0 || err2 == EINVAL || err2 == EUCLEAN) << err2;
  }
  std::printf("corrupted pools: %d opened, %d refused\n", opened, refused);
  EXPECT_GT(refused, 0);
  set_log_level(LogLevel::Info);
}

}  // namespace
}  // namespace zest::pmfs::test
