// pmfs_fuzz_seeds DIR: writes a small seed corpus for the pmfs fuzzers
// (format: sample_image.h). Each seed is one patch list over the standard
// image that reaches a different structure, most with re-sealed checksums
// so the fuzzer starts behind them.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "pmfs/fuzz/sample_image.h"

using namespace zest::pmfs;

namespace {

struct Seed {
  std::string name;
  std::vector<uint8_t> bytes;
};

std::vector<uint8_t> patch(uint8_t flags, uint64_t off,
                           std::vector<uint8_t> bytes) {
  std::vector<uint8_t> in{flags};
  for (int i = 0; i < 4; ++i) in.push_back(uint8_t(off >> (8 * i)));
  in.push_back(uint8_t(bytes.size()));
  in.insert(in.end(), bytes.begin(), bytes.end());
  return in;
}

std::vector<uint8_t> le(uint64_t v, size_t n) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(uint8_t(v >> (8 * i)));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: {} DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  ::mkdir(dir.c_str(), 0755);
  const auto& img = sample::standard_image();
  const uint8_t R = sample::kPatchReseal;
  auto ino_of = [&](std::string_view name) {
    return img.get<DirentHeader>(img.dirent_offset(kRootIno, name)).ino;
  };
  const uint64_t a = ino_of("a.txt"), docs = ino_of("docs"),
                 src = ino_of("src");
  const uint64_t main_cc =
      img.get<DirentHeader>(img.dirent_offset(src, "main.cc")).ino;
  std::vector<Seed> seeds = {
      {"clean", {0}},
      {"sb-a-flip", patch(0, 8, {0x02})},
      {"sb-geometry", patch(R, offsetof(Superblock, data_start),
                            le(img.sb().data_start + 1, 8))},
      {"journal-commit",
       patch(R, journal_offset(img.sb()) + offsetof(JournalHeader, commit),
             le(0, 8))},
      {"journal-record",
       patch(R,
             journal_offset(img.sb()) + sizeof(JournalHeader) +
                 sizeof(JournalRecord) + 12,
             {0x07})},
      {"inode-nlink",
       patch(R, img.inode_off(a) + offsetof(DiskInode, nlink), le(3, 4))},
      {"inode-mode",
       patch(R, img.inode_off(a) + offsetof(DiskInode, mode), le(0170644, 4))},
      {"inode-parent",
       patch(R, img.inode_off(docs) + offsetof(DiskInode, parent), le(src, 8))},
      {"extent-pool-block",
       patch(R, img.extent_offset(a, 0) + offsetof(DiskExtent, pool_block),
             le(img.sb().data_start, 8))},
      {"extent-count",
       patch(R, img.extent_offset(a, 0) + offsetof(DiskExtent, count),
             le(90, 4))},
      {"dirent-ino",
       patch(R,
             img.dirent_offset(kRootIno, "a.txt") + offsetof(DirentHeader, ino),
             le(900, 8))},
      {"dirent-name",
       patch(R, img.dirent_offset(kRootIno, "a.txt") + sizeof(DirentHeader),
             {'s', 'r', 'c'})},
      {"dirent-nslots", patch(R, img.dirent_offset(kRootIno, "docs") + 4, {9})},
      {"xattr-entry",
       patch(R, img.xattr_entry_offset(a, 0), le(img.sb().data_start, 8))},
      {"xattr-len",
       patch(R,
             img.get<XattrEntry>(img.xattr_entry_offset(a, 1)).block *
                     kBlockSize +
                 offsetof(XattrRecordHeader, valuelen),
             le(70000, 4))},
      {"xattr-slot-nslots", patch(R,
                                  img.xattr_slot_offset(a, "user.packed") +
                                      offsetof(XattrSlotHeader, nslots),
                                  {5})},
      {"xattr-slot-record", patch(R,
                                  img.xattr_slot_offset(main_cc, "user.rec") +
                                      sizeof(XattrSlotHeader),
                                  le(img.sb().data_start, 8))},
      {"xattr-chain-loop", patch(R,
                                 img.xattr_chain(a).back() * kBlockSize +
                                     offsetof(XattrSlotBlockHeader, next),
                                 le(img.xattr_chain(a).front(), 8))},
  };
  for (const auto& s : seeds) {
    std::ofstream out(dir + "/" + s.name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(s.bytes.data()),
              std::streamsize(s.bytes.size()));
  }
  fmt::print("{} seeds in {}\n", seeds.size(), dir);
  return 0;
}
