#include "pmem/crash_image.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "pmem/pool.h"
#include "tests/pmem/temp_dir.h"

namespace zest::pmem {
namespace {

using Image = std::vector<std::byte>;

void put(StoreLog* log, uint64_t off, uint64_t value) {
  log->add_store(off, &value, 8);
}

uint64_t word(const Image& img, uint64_t off) {
  uint64_t v;
  std::memcpy(&v, img.data() + off, 8);
  return v;
}
uint64_t word(std::span<const std::byte> img, uint64_t off) {
  uint64_t v;
  std::memcpy(&v, img.data() + off, 8);
  return v;
}

// Every distinct image for_each_state yields at point p.
std::vector<Image> states(CrashImageBuilder& b, size_t p, size_t max = 1000) {
  std::mt19937_64 rng(1);
  std::vector<Image> out;
  b.for_each_state(p, max, rng, [&](const CrashState& s) {
    out.emplace_back(s.image.begin(), s.image.end());
    return true;
  });
  return out;
}

TEST(CrashImage, FencedStoreAlwaysPresentLaterStoreMayBeAbsent) {
  StoreLog log;
  put(&log, 0, 0xA);
  log.add_flush(0, 8);
  log.add_fence();     // point 0: crash just before this fence
  put(&log, 64, 0xB);  // never flushed
  log.add_mark(1);     // point 1
  CrashImageBuilder b(Image(4096), log);
  ASSERT_EQ(b.crash_points(), 2u);
  EXPECT_EQ(b.point(0).kind, OpKind::Fence);
  EXPECT_EQ(b.point(1).kind, OpKind::Mark);
  EXPECT_EQ(b.point(1).tag, 1u);

  // Before the fence, A is in flight (flushed, not fenced): present or not.
  auto p0 = b.pending(0);
  ASSERT_EQ(p0.size(), 1u);
  EXPECT_TRUE(p0[0].flushed);
  std::set<uint64_t> a_values;
  for (const Image& img : states(b, 0)) a_values.insert(word(img, 0));
  EXPECT_EQ(a_values, (std::set<uint64_t>{0, 0xA}));

  // After it, A is always there; B may be absent.
  auto p1 = b.pending(1);
  ASSERT_EQ(p1.size(), 1u);
  EXPECT_EQ(p1[0].offset, 64u);
  EXPECT_FALSE(p1[0].flushed);
  auto s1 = states(b, 1);
  ASSERT_EQ(s1.size(), 2u);
  std::set<uint64_t> b_values;
  for (const Image& img : s1) {
    EXPECT_EQ(word(img, 0), 0xAu);
    b_values.insert(word(img, 64));
  }
  EXPECT_EQ(b_values, (std::set<uint64_t>{0, 0xB}));
}

TEST(CrashImage, UnflushedStoreStaysInFlightAcrossFences) {
  StoreLog log;
  put(&log, 0, 1);  // never flushed: a missing-flush bug shows up
  log.add_fence();
  log.add_mark(0);
  CrashImageBuilder strict(Image(4096), log);
  EXPECT_EQ(strict.pending(1).size(), 1u);
  EXPECT_EQ(states(strict, 1).size(), 2u);

  // eADR (byte granularity): the fence alone persists it.
  CrashModel eadr;
  eadr.flush_required = false;
  CrashImageBuilder b(Image(4096), log, eadr);
  EXPECT_TRUE(b.pending(1).empty());
  auto s = states(b, 1);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(word(s[0], 0), 1u);
}

TEST(CrashImage, FlushWritesBackWholeCacheLines) {
  StoreLog log;
  put(&log, 0, 1);
  put(&log, 16, 2);  // same line as offset 0
  put(&log, 64, 3);  // next line
  log.add_flush(0, 8);
  log.add_fence();
  log.add_mark(0);
  CrashImageBuilder b(Image(4096), log);
  auto p = b.pending(1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].offset, 64u);
  for (const Image& img : states(b, 1)) {
    EXPECT_EQ(word(img, 0), 1u);
    EXPECT_EQ(word(img, 16), 2u);
  }
}

TEST(CrashImage, PartialFlushSplitsAStore) {
  std::vector<uint8_t> bytes(64, 0x11);
  StoreLog log;
  log.add_store(32, bytes.data(), 64);  // [32, 96): lines 0 and 1
  log.add_flush(0, 1);                  // line 0 only
  log.add_fence();
  log.add_mark(0);
  CrashImageBuilder b(Image(4096), log);
  auto p0 = b.pending(0);
  ASSERT_EQ(p0.size(), 2u);
  EXPECT_EQ(p0[0].offset, 32u);
  EXPECT_EQ(p0[0].length, 32u);
  EXPECT_TRUE(p0[0].flushed);
  EXPECT_EQ(p0[1].offset, 64u);
  EXPECT_FALSE(p0[1].flushed);
  auto p1 = b.pending(1);
  ASSERT_EQ(p1.size(), 1u);
  EXPECT_EQ(p1[0].offset, 64u);
  EXPECT_EQ(p1[0].length, 32u);
  Image img;
  b.build(1, {false}, &img);
  EXPECT_EQ(img[32], std::byte{0x11});
  EXPECT_EQ(img[63], std::byte{0x11});
  EXPECT_EQ(img[64], std::byte{0});
}

TEST(CrashImage, TornSixteenByteStoreYieldsFourWordCombinations) {
  uint64_t v[2] = {0x1111, 0x2222};
  StoreLog log;
  log.add_store(8, v, 16);
  log.add_mark(0);
  CrashImageBuilder b(Image(64), log);
  auto p = b.pending(0);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(word_count(p[0]), 2u);
  std::set<std::pair<uint64_t, uint64_t>> seen;
  auto s = states(b, 0);
  for (const Image& img : s) seen.insert({word(img, 8), word(img, 16)});
  EXPECT_EQ(s.size(), 4u);
  EXPECT_EQ(seen, (std::set<std::pair<uint64_t, uint64_t>>{
                      {0, 0}, {0x1111, 0}, {0, 0x2222}, {0x1111, 0x2222}}));

  // build_words picks one.
  Image img;
  b.build_words(0, {{false, true}}, &img);
  EXPECT_EQ(word(img, 8), 0u);
  EXPECT_EQ(word(img, 16), 0x2222u);
}

TEST(CrashImage, UnalignedStoreTearsAtWordBoundaries) {
  uint8_t v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  StoreLog log;
  log.add_store(4, v, 8);   // bytes 4..11: words 0 and 1
  log.add_store(40, v, 4);  // inside one word: never torn
  log.add_mark(0);
  CrashImageBuilder b(Image(64), log);
  auto p = b.pending(0);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(word_count(p[0]), 2u);
  EXPECT_EQ(word_count(p[1]), 1u);
  EXPECT_EQ(states(b, 0).size(), 8u);  // 2 x 2 halves x 2
  for (const Image& img : states(b, 0)) {
    bool lo = img[4] == std::byte{1}, hi = img[8] == std::byte{5};
    EXPECT_EQ(img[7] == std::byte{4}, lo);  // each half whole
    EXPECT_EQ(img[11] == std::byte{8}, hi);
    EXPECT_EQ(img[40] == std::byte{1}, img[43] == std::byte{4});
  }
}

TEST(CrashImage, BuildAppliesChosenStoresInLogOrder) {
  StoreLog log;
  put(&log, 0, 1);
  put(&log, 0, 2);  // overwrites the first
  put(&log, 8, 3);
  log.add_mark(0);
  CrashImageBuilder b(Image(64), log);
  Image img;
  b.build(0, {true, true, true}, &img);
  EXPECT_EQ(word(img, 0), 2u);
  EXPECT_EQ(word(img, 8), 3u);
  b.build(0, {true, false, false}, &img);
  EXPECT_EQ(word(img, 0), 1u);
  EXPECT_EQ(word(img, 8), 0u);
  b.build(0, {false, true}, &img);
  EXPECT_EQ(word(img, 0), 2u);
  b.build(0, {}, &img);
  EXPECT_EQ(img, Image(64));
  // 0 in {0,1,2} x 8 in {0,3}: 6 distinct images.
  EXPECT_EQ(states(b, 0).size(), 6u);
}

TEST(CrashImage, OrderOfStatesAndCounts) {
  StoreLog log;
  for (int i = 0; i < 3; ++i) put(&log, i * 8, i + 1);
  log.add_mark(0);
  CrashImageBuilder b(Image(64), log);
  std::mt19937_64 rng(7);
  std::vector<std::string> how;
  size_t n = b.for_each_state(0, 100, rng, [&](const CrashState& s) {
    how.push_back(std::string(s.how) + std::to_string(s.index));
    return true;
  });
  EXPECT_EQ(n, 8u);  // every subset of 3 one-word stores
  std::vector<std::string> want = {"none0", "all0",     "only0",    "only1",
                                   "only2", "without0", "without1", "without2"};
  EXPECT_EQ(how, want);

  // max_states bounds it; the callback can stop it.
  EXPECT_EQ(b.for_each_state(0, 3, rng, [](const CrashState&) { return true; }),
            3u);
  EXPECT_EQ(
      b.for_each_state(0, 100, rng, [](const CrashState&) { return false; }),
      1u);

  // Many stores: random subsets up to max_states.
  StoreLog many;
  for (int i = 0; i < 40; ++i) put(&many, i * 8, i + 1);
  many.add_mark(0);
  CrashImageBuilder m(Image(4096), many);
  EXPECT_EQ(states(m, 0, 500).size(), 500u);
}

TEST(CrashImage, DeduplicatesIdenticalImages) {
  StoreLog log;
  put(&log, 0, 0);  // stores what is already there
  put(&log, 8, 0);
  log.add_mark(0);
  log.add_mark(1);
  CrashImageBuilder b(Image(64), log);
  EXPECT_EQ(states(b, 0).size(), 1u);
  // One set across points: the second mark adds nothing new.
  std::mt19937_64 rng(3);
  size_t total =
      b.for_each_crash_state(100, rng, [](const CrashState&) { return true; });
  EXPECT_EQ(total, 1u);
}

TEST(CrashImage, GoingBackRestartsTheWalk) {
  StoreLog log;
  put(&log, 0, 1);
  log.add_flush(0, 8);
  log.add_fence();
  log.add_mark(0);
  put(&log, 8, 2);
  log.add_flush(8, 8);
  log.add_fence();
  CrashImageBuilder b(Image(64), log);
  ASSERT_EQ(b.crash_points(), 3u);
  Image img;
  b.build(2, {}, &img);
  EXPECT_EQ(word(img, 0), 1u);
  EXPECT_EQ(word(img, 8), 0u);
  b.build(0, {}, &img);  // backwards
  EXPECT_EQ(word(img, 0), 0u);
  b.build(2, {true}, &img);
  EXPECT_EQ(word(img, 8), 2u);
}

// A model of the persisted image straight from the definition, byte by
// byte: a stored byte is persistent at a point if a flush covering its line
// came after it and a fence after that flush, both before the point.
Image reference_persisted(const Image& base, const StoreLog& log,
                          size_t point_entry) {
  const auto& e = log.entries();
  size_t last_fence = 0;
  bool any_fence = false;
  for (size_t i = 0; i < point_entry; ++i) {
    if (e[i].kind == OpKind::Fence) {
      last_fence = i;
      any_fence = true;
    }
  }
  Image img = base;
  if (!any_fence) return img;
  for (size_t s = 0; s < last_fence; ++s) {
    if (e[s].kind != OpKind::Store) continue;
    auto data = log.bytes(e[s]);
    for (uint64_t k = 0; k < e[s].length; ++k) {
      uint64_t byte = e[s].offset + k, line = byte / 64;
      for (size_t f = s + 1; f < last_fence; ++f) {
        if (e[f].kind == OpKind::Flush && e[f].length > 0 &&
            e[f].offset / 64 <= line &&
            line <= (e[f].offset + e[f].length - 1) / 64) {
          img[byte] = data[k];
          break;
        }
      }
    }
  }
  return img;
}

StoreLog random_log(std::mt19937_64& rng, uint64_t pool, int ops,
                    uint64_t max_len) {
  StoreLog log;
  std::vector<std::byte> buf(max_len);
  for (int i = 0; i < ops; ++i) {
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {
        uint64_t len = 1 + rng() % max_len;
        uint64_t off = rng() % (pool - len);
        for (auto& b : buf) b = static_cast<std::byte>(rng());
        log.add_store(off, buf.data(), len);
        break;
      }
      case 3:
      case 4: {
        uint64_t len = 1 + rng() % (4 * max_len);
        uint64_t off = rng() % (pool - len);
        log.add_flush(off, len);
        break;
      }
      case 5:
      case 6:
        log.add_fence();
        break;
      default:
        log.add_mark(static_cast<uint64_t>(i));
    }
  }
  return log;
}

TEST(CrashImage, IncrementalWalkMatchesReplayFromScratch) {
  std::mt19937_64 rng(42);
  constexpr uint64_t kPool = 2048;
  for (int round = 0; round < 20; ++round) {
    Image base(kPool);
    for (auto& b : base) b = static_cast<std::byte>(rng());
    StoreLog log = random_log(rng, kPool, 150, 40);
    CrashImageBuilder b(base, log);
    for (size_t p = 0; p < b.crash_points(); ++p) {
      size_t at = b.point(p).entry;
      // "none" is the persisted image, "all" every store before the point.
      Image all = base;
      for (size_t i = 0; i < at; ++i) {
        const LogEntry& e = log.entries()[i];
        if (e.kind != OpKind::Store) continue;
        auto d = log.bytes(e);
        std::memcpy(all.data() + e.offset, d.data(), d.size());
      }
      Image none_got, all_got;
      b.build(p, {}, &none_got);
      b.build(p, std::vector<bool>(b.pending(p).size(), true), &all_got);
      ASSERT_EQ(none_got, reference_persisted(base, log, at))
          << "round " << round << " point " << p;
      ASSERT_EQ(all_got, all) << "round " << round << " point " << p;
      // for_each_state's hashes agree with the images it hands out.
      std::mt19937_64 r2(p);
      std::map<ImageHash, Image> by_hash;
      b.for_each_state(p, 20, r2, [&](const CrashState& s) {
        Image img(s.image.begin(), s.image.end());
        auto [it, fresh] = by_hash.emplace(s.hash, img);
        EXPECT_TRUE(fresh);
        return true;
      });
      std::set<Image> distinct;
      for (auto& [h, img] : by_hash) distinct.insert(img);
      EXPECT_EQ(distinct.size(), by_hash.size());
    }
  }
}

TEST(CrashImage, TenThousandStatesOverAFewMiB) {
  constexpr uint64_t kPool = 4 << 20;
  std::mt19937_64 rng(9);
  Image base(kPool);
  StoreLog log = random_log(rng, kPool, 6000, 512);
  CrashImageBuilder b(std::move(base), log);
  auto start = std::chrono::steady_clock::now();
  size_t states = 0;
  std::mt19937_64 r2(5);
  size_t n = b.for_each_crash_state(10, r2, [&](const CrashState& s) {
    EXPECT_EQ(s.image.size(), kPool);
    ++states;
    return true;
  });
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(n, states);
  EXPECT_GE(states, 10000u);
  EXPECT_LT(secs, 30.0);
  std::printf("%zu crash states over %zu points of a 4 MiB pool in %.2f s\n",
              states, b.crash_points(), secs);
}

TEST(CrashImage, RecordedPoolRoundTrip) {
  testing::TempDir dir;
  std::string why;
  Recorder rec;
  OpenOptions o;
  o.recorder = &rec;
  auto pool = PoolMap::create(dir.file("pool"), 1 << 16, &why, o);
  ASSERT_TRUE(pool.ok()) << why;
  // A tiny "commit": data, then a valid flag, each persisted in turn.
  pool->write(128, "payload!", 8);
  pool->persist(128, 8);
  rec.mark(1);
  pool->store_u64(0, 1);
  pool->persist(0, 8);
  rec.mark(2);
  CrashImageBuilder b(rec.initial_image(), rec.log());
  ASSERT_EQ(b.crash_points(), 4u);
  std::mt19937_64 rng(1);
  b.for_each_crash_state(100, rng, [&](const CrashState& s) {
    // The invariant the ordering gives: flag set => payload present.
    if (word(s.image, 0) == 1) {
      EXPECT_EQ(std::memcmp(s.image.data() + 128, "payload!", 8), 0);
    }
    return true;
  });
  Image last;
  b.build(3, {}, &last);
  EXPECT_EQ(word(last, 0), 1u);
}

}  // namespace
}  // namespace zest::pmem
