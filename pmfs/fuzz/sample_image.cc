#include "pmfs/fuzz/sample_image.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "base/fd.h"

namespace zest::pmfs::sample {

namespace {

template <class T>
uint32_t csum_of(const T& v) {
  T copy = v;
  copy.csum = 0;
  return crc32c(&copy, sizeof(copy));
}

std::string temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ =
      std::string(tmp && *tmp ? tmp : "/tmp") + "/zest-sample-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return {};
  return templ;
}

}  // namespace

uint32_t dirent_csum(const DirentHeader& h, std::string_view name) {
  DirentHeader copy = h;
  copy.csum = 0;
  return crc32c(name.data(), name.size(), crc32c(&copy, sizeof(copy)));
}
void seal_extent(DiskExtent* e) { e->csum = csum_of(*e); }
void seal_xattr_entry(XattrEntry* e) { e->csum = csum_of(*e); }
void seal_xattr_slot(std::byte* entry, size_t len) {
  std::memset(entry, 0, sizeof(uint32_t));
  const uint32_t c = crc32c(entry, len);
  std::memcpy(entry, &c, sizeof(c));
}

Result<ImageBuilder> ImageBuilder::create(uint64_t size,
                                          const MkfsOptions& options,
                                          std::string* why) {
  std::string dir = temp_dir();
  if (dir.empty()) {
    *why = "mkdtemp failed";
    return Errno(EIO);
  }
  std::string path = dir + "/pool";
  auto made = mkfs(path, size, options, why);
  ImageBuilder b;
  if (made) {
    std::ifstream in(path, std::ios::binary);
    b.image_.resize(size);
    in.read(reinterpret_cast<char*>(b.image_.data()),
            static_cast<std::streamsize>(size));
    if (!in) {
      *why = "cannot read back " + path;
      made = Errno(EIO);
    }
  }
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
  if (!made) return made.error();
  std::memcpy(&b.sb_, b.image_.data(), sizeof(b.sb_));
  b.next_block_ = b.sb_.data_start;
  b.journal_seq_ = 0;
  return b;
}

Result<void> ImageBuilder::save(const std::string& path,
                                std::string* why) const {
  UniqueFd fd(
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) {
    *why = "cannot create " + path;
    return last_errno();
  }
  size_t done = 0;
  while (done < image_.size()) {
    ssize_t n = ::write(fd.get(), image_.data() + done, image_.size() - done);
    if (n <= 0) {
      *why = "cannot write " + path;
      return last_errno();
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

void ImageBuilder::write(uint64_t off, const void* src, size_t len) {
  if (off > image_.size() || len > image_.size() - off) abort();
  std::memcpy(image_.data() + off, src, len);
}
void ImageBuilder::read(uint64_t off, void* dst, size_t len) const {
  if (off > image_.size() || len > image_.size() - off) abort();
  std::memcpy(dst, image_.data() + off, len);
}

uint64_t ImageBuilder::alloc(uint64_t nblocks) {
  if (next_block_ + nblocks > sb_.total_blocks)
    abort();  // a test built too much
  uint64_t b = next_block_;
  next_block_ += nblocks;
  std::vector<std::byte> z(nblocks * kBlockSize);
  write(b * kBlockSize, z.data(), z.size());
  return b;
}

DiskInode ImageBuilder::inode(uint64_t ino) const {
  return get<DiskInode>(inode_off(ino));
}
void ImageBuilder::put_inode(uint64_t ino, DiskInode d) {
  seal(&d);
  write(inode_off(ino), &d, sizeof(d));
}

uint64_t ImageBuilder::new_inode(uint32_t mode) {
  uint64_t ino = next_ino_++;
  if (ino > sb_.inode_count) abort();
  DiskInode d{};
  d.flags = kInodeInUse;
  d.mode = mode;
  d.generation = 1;
  d.atime_sec = d.mtime_sec = d.ctime_sec = 1700000000;
  put_inode(ino, d);
  return ino;
}

uint64_t ImageBuilder::tail(uint64_t head) const {
  uint64_t b = head;
  for (;;) {
    auto h = get<ExtentBlockHeader>(
        b * kBlockSize);  // `next` at the same offset in both
    if (h.next == 0) return b;
    b = h.next;
  }
}

uint64_t ImageBuilder::add_extent(uint64_t ino, uint64_t file_block,
                                  uint64_t pool_block, uint32_t count,
                                  uint32_t flags) {
  DiskInode d = inode(ino);
  auto new_block = [&] {
    uint64_t b = alloc(1);
    metadata_blocks_.push_back(b);
    ExtentBlockHeader h{};
    h.magic = kExtentBlockMagic;
    h.ino = ino;
    h.csum = csum_of(h);
    write(b * kBlockSize, &h, sizeof(h));
    return b;
  };
  if (d.extent_head == 0) d.extent_head = new_block();
  uint64_t b = tail(d.extent_head);
  uint64_t slot_off = 0;
  for (size_t i = 0; i < kExtentsPerBlock && slot_off == 0; ++i) {
    uint64_t off =
        b * kBlockSize + sizeof(ExtentBlockHeader) + i * sizeof(DiskExtent);
    if (get<DiskExtent>(off).flags == 0) slot_off = off;
  }
  if (slot_off == 0) {
    uint64_t nb = new_block();
    auto h = get<ExtentBlockHeader>(b * kBlockSize);
    h.next = nb;
    h.csum = csum_of(h);
    write(b * kBlockSize, &h, sizeof(h));
    slot_off = nb * kBlockSize + sizeof(ExtentBlockHeader);
  }
  DiskExtent e{};
  e.file_block = file_block;
  e.pool_block = pool_block;
  e.count = count;
  e.flags = flags;
  seal_extent(&e);
  write(slot_off, &e, sizeof(e));
  d.blocks += count;
  put_inode(ino, d);
  return slot_off;
}

uint64_t ImageBuilder::add_dirent(uint64_t dir, std::string_view name,
                                  uint64_t ino, uint8_t type) {
  DiskInode d = inode(dir);
  const size_t need = dirent_slots(name.size());
  auto find_room = [&](uint64_t b) -> uint64_t {
    size_t run = 0;
    for (size_t s = 0; s < kDirSlots;) {
      auto h = get<DirentHeader>(b * kBlockSize + (s + 1) * kDirSlotSize);
      if (h.nslots != 0) {
        run = 0;
        s += h.nslots;
        continue;
      }
      if (++run == need) return b * kBlockSize + (s + 2 - need) * kDirSlotSize;
      ++s;
    }
    return 0;
  };
  auto new_block = [&] {
    uint64_t b = alloc(1);
    metadata_blocks_.push_back(b);
    DirBlockHeader h{};
    h.magic = kDirBlockMagic;
    h.ino = dir;
    h.csum = csum_of(h);
    write(b * kBlockSize, &h, sizeof(h));
    return b;
  };
  uint64_t off = 0;
  if (d.dir_head == 0) {
    d.dir_head = new_block();
    put_inode(dir, d);
  }
  uint64_t last = 0;
  for (uint64_t b = d.dir_head; b != 0 && off == 0;) {
    off = find_room(b);
    last = b;
    b = get<DirBlockHeader>(b * kBlockSize).next;
  }
  if (off == 0) {
    uint64_t nb = new_block();
    auto h = get<DirBlockHeader>(last * kBlockSize);
    h.next = nb;
    h.csum = csum_of(h);
    write(last * kBlockSize, &h, sizeof(h));
    off = find_room(nb);
  }
  DirentHeader h{};
  h.nslots = static_cast<uint8_t>(need);
  h.type = type;
  h.namelen = static_cast<uint16_t>(name.size());
  h.ino = ino;
  h.csum = dirent_csum(h, name);
  write(off, &h, sizeof(h));
  write(off + sizeof(h), name.data(), name.size());
  return off;
}

uint64_t ImageBuilder::mkdir(uint64_t parent, std::string_view name,
                             uint32_t mode) {
  uint64_t ino = new_inode(S_IFDIR | mode);
  DiskInode d = inode(ino);
  d.nlink = 2;
  d.parent = parent;
  put_inode(ino, d);
  add_dirent(parent, name, ino, DT_DIR);
  DiskInode p = inode(parent);
  p.nlink += 1;
  put_inode(parent, p);
  return ino;
}

uint64_t ImageBuilder::create_file(uint64_t parent, std::string_view name,
                                   uint32_t nblocks, uint32_t nextents) {
  uint64_t ino = new_inode(S_IFREG | 0644);
  uint32_t per = nextents ? nblocks / nextents : 0;
  for (uint32_t i = 0; i < nextents && per > 0; ++i) {
    uint64_t pb = alloc(per);
    std::vector<std::byte> data(per * kBlockSize,
                                std::byte(0x40 + (ino & 0x3f)));
    write(pb * kBlockSize, data.data(), data.size());
    add_extent(ino, uint64_t(i) * per, pb, per);
  }
  DiskInode d = inode(ino);
  d.nlink = 1;
  d.size = uint64_t(nblocks) * kBlockSize - (nblocks ? 100 : 0);
  put_inode(ino, d);
  add_dirent(parent, name, ino, DT_REG);
  return ino;
}

uint64_t ImageBuilder::symlink(uint64_t parent, std::string_view name,
                               std::string_view target) {
  uint64_t ino = new_inode(S_IFLNK | 0777);
  if (target.size() > kInlineSymlinkMax) {
    uint64_t n = (target.size() + kBlockSize - 1) / kBlockSize;
    uint64_t pb = alloc(n);
    write(pb * kBlockSize, target.data(), target.size());
    add_extent(ino, 0, pb, static_cast<uint32_t>(n));
  }
  DiskInode d = inode(ino);
  d.nlink = 1;
  d.size = target.size();
  if (target.size() <= kInlineSymlinkMax)
    std::memcpy(d.inline_data, target.data(), target.size());
  put_inode(ino, d);
  add_dirent(parent, name, ino, DT_LNK);
  return ino;
}

uint64_t ImageBuilder::mkfifo(uint64_t parent, std::string_view name) {
  uint64_t ino = new_inode(S_IFIFO | 0600);
  DiskInode d = inode(ino);
  d.nlink = 1;
  put_inode(ino, d);
  add_dirent(parent, name, ino, DT_FIFO);
  return ino;
}

void ImageBuilder::link(uint64_t parent, std::string_view name, uint64_t ino) {
  DiskInode d = inode(ino);
  d.nlink += 1;
  put_inode(ino, d);
  uint8_t type = (d.mode & S_IFMT) == S_IFDIR   ? DT_DIR
                 : (d.mode & S_IFMT) == S_IFLNK ? DT_LNK
                                                : DT_REG;
  add_dirent(parent, name, ino, type);
}

void ImageBuilder::set_xattr(uint64_t ino, std::string_view name,
                             std::string_view value) {
  DiskInode d = inode(ino);
  if (d.xattr_block == 0) {
    d.xattr_block = alloc(1);
    metadata_blocks_.push_back(d.xattr_block);
    XattrTableHeader h{};
    h.magic = kXattrTableMagic;
    h.ino = ino;
    h.csum = csum_of(h);
    write(d.xattr_block * kBlockSize, &h, sizeof(h));
    put_inode(ino, d);
  }
  uint64_t len = sizeof(XattrRecordHeader) + name.size() + value.size();
  uint32_t nblocks = static_cast<uint32_t>((len + kBlockSize - 1) / kBlockSize);
  uint64_t rb = alloc(nblocks);
  for (uint32_t i = 0; i < nblocks; ++i) metadata_blocks_.push_back(rb + i);
  std::vector<std::byte> rec(len);
  XattrRecordHeader rh{};
  rh.namelen = static_cast<uint16_t>(name.size());
  rh.valuelen = static_cast<uint32_t>(value.size());
  std::memcpy(rec.data(), &rh, sizeof(rh));
  std::memcpy(rec.data() + sizeof(rh), name.data(), name.size());
  std::memcpy(rec.data() + sizeof(rh) + name.size(), value.data(),
              value.size());
  rh.csum = crc32c(rec.data(), rec.size());
  std::memcpy(rec.data(), &rh, sizeof(rh));
  write(rb * kBlockSize, rec.data(), rec.size());
  for (size_t i = 0; i < kXattrsPerTable; ++i) {
    uint64_t off = d.xattr_block * kBlockSize + sizeof(XattrTableHeader) +
                   i * sizeof(XattrEntry);
    if (get<XattrEntry>(off).block != 0) continue;
    XattrEntry e{};
    e.block = rb;
    e.nblocks = nblocks;
    seal_xattr_entry(&e);
    write(off, &e, sizeof(e));
    return;
  }
  abort();  // table full: not needed by any test
}

uint64_t ImageBuilder::add_xattr_slot(uint64_t ino, std::string_view name,
                                      std::string_view value) {
  // The entry: header, then the name and value, or a record reference.
  std::vector<std::byte> entry(kXattrInlineMax, std::byte{0});
  XattrSlotHeader h{};
  h.namelen = static_cast<uint16_t>(name.size());
  h.valuelen = static_cast<uint32_t>(value.size());
  size_t len = sizeof(h) + name.size() + value.size();
  if (len <= kXattrInlineMax) {
    std::memcpy(entry.data() + sizeof(h), name.data(), name.size());
    std::memcpy(entry.data() + sizeof(h) + name.size(), value.data(),
                value.size());
  } else {
    const uint64_t rlen =
        sizeof(XattrRecordHeader) + name.size() + value.size();
    const uint32_t nblocks =
        static_cast<uint32_t>((rlen + kBlockSize - 1) / kBlockSize);
    const uint64_t rb = alloc(nblocks);
    for (uint32_t i = 0; i < nblocks; ++i) metadata_blocks_.push_back(rb + i);
    std::vector<std::byte> rec(rlen);
    XattrRecordHeader rh{};
    rh.namelen = h.namelen;
    rh.valuelen = h.valuelen;
    std::memcpy(rec.data(), &rh, sizeof(rh));
    std::memcpy(rec.data() + sizeof(rh), name.data(), name.size());
    std::memcpy(rec.data() + sizeof(rh) + name.size(), value.data(),
                value.size());
    rh.csum = crc32c(rec.data(), rec.size());
    std::memcpy(rec.data(), &rh, sizeof(rh));
    write(rb * kBlockSize, rec.data(), rec.size());
    h.flags = kXattrSlotRecord;
    const XattrRecordRef ref{rb, nblocks, 0};
    std::memcpy(entry.data() + sizeof(h), &ref, sizeof(ref));
    len = sizeof(h) + sizeof(ref);
  }
  h.nslots = static_cast<uint8_t>((len + kXattrSlotSize - 1) / kXattrSlotSize);
  std::memcpy(entry.data(), &h, sizeof(h));
  seal_xattr_slot(entry.data(), len);

  // The place: a run of free slots in the last block of the chain.
  const std::vector<uint64_t> chain = xattr_chain(ino);
  const uint64_t last = chain.empty() ? 0 : chain.back();
  if (last != 0 &&
      get<uint32_t>(last * kBlockSize + 4) == kXattrSlotBlockMagic) {
    std::vector<bool> used(kXattrSlots, false);
    for (size_t s = 0; s < kXattrSlots;) {
      auto e =
          get<XattrSlotHeader>(last * kBlockSize + (s + 1) * kXattrSlotSize);
      if (e.nslots == 0) {
        ++s;
        continue;
      }
      for (size_t k = s; k < s + e.nslots && k < kXattrSlots; ++k)
        used[k] = true;
      s += e.nslots;
    }
    for (size_t s = 0; s + h.nslots <= kXattrSlots; ++s) {
      bool free = true;
      for (size_t k = s; k < s + h.nslots; ++k) free = free && !used[k];
      if (!free) continue;
      const uint64_t off = last * kBlockSize + (s + 1) * kXattrSlotSize;
      write(off, entry.data(), h.nslots * kXattrSlotSize);
      return off;
    }
  }
  // A new slot block at the tail.
  const uint64_t nb = alloc(1);
  metadata_blocks_.push_back(nb);
  XattrSlotBlockHeader bh{};
  bh.magic = kXattrSlotBlockMagic;
  bh.ino = ino;
  bh.csum = csum_of(bh);
  write(nb * kBlockSize, &bh, sizeof(bh));
  if (last == 0) {
    DiskInode d = inode(ino);
    d.xattr_block = nb;
    put_inode(ino, d);
  } else if (get<uint32_t>(last * kBlockSize + 4) == kXattrTableMagic) {
    auto th = get<XattrTableHeader>(last * kBlockSize);
    th.next = nb;
    th.csum = csum_of(th);
    write(last * kBlockSize, &th, sizeof(th));
  } else {
    auto sh = get<XattrSlotBlockHeader>(last * kBlockSize);
    sh.next = nb;
    sh.csum = csum_of(sh);
    write(last * kBlockSize, &sh, sizeof(sh));
  }
  const uint64_t off = nb * kBlockSize + kXattrSlotSize;
  write(off, entry.data(), h.nslots * kXattrSlotSize);
  return off;
}

std::vector<uint64_t> ImageBuilder::xattr_chain(uint64_t ino) const {
  std::vector<uint64_t> out;
  // `next` lies at the same offset in tables and slot blocks.
  for (uint64_t b = inode(ino).xattr_block; b != 0 && out.size() < 10000;
       b = get<XattrSlotBlockHeader>(b * kBlockSize).next) {
    out.push_back(b);
  }
  return out;
}

uint64_t ImageBuilder::xattr_slot_offset(uint64_t ino,
                                         std::string_view name) const {
  for (uint64_t b : xattr_chain(ino)) {
    if (get<uint32_t>(b * kBlockSize + 4) != kXattrSlotBlockMagic) continue;
    for (size_t s = 0; s < kXattrSlots;) {
      const uint64_t off = b * kBlockSize + (s + 1) * kXattrSlotSize;
      auto h = get<XattrSlotHeader>(off);
      if (h.nslots == 0) {
        ++s;
        continue;
      }
      std::string n(h.namelen, '\0');
      if (h.flags & kXattrSlotRecord) {
        auto ref = get<XattrRecordRef>(off + sizeof(h));
        read(ref.block * kBlockSize + sizeof(XattrRecordHeader), n.data(),
             n.size());
      } else {
        read(off + sizeof(h), n.data(), n.size());
      }
      if (n == name) return off;
      s += h.nslots;
    }
  }
  return 0;
}

uint64_t ImageBuilder::dirent_offset(uint64_t dir,
                                     std::string_view name) const {
  for (uint64_t b = inode(dir).dir_head; b != 0;
       b = get<DirBlockHeader>(b * kBlockSize).next) {
    for (size_t s = 0; s < kDirSlots;) {
      uint64_t off = b * kBlockSize + (s + 1) * kDirSlotSize;
      auto h = get<DirentHeader>(off);
      if (h.nslots == 0) {
        ++s;
        continue;
      }
      std::string n(h.namelen, '\0');
      read(off + sizeof(h), n.data(), n.size());
      if (n == name) return off;
      s += h.nslots;
    }
  }
  return 0;
}

uint64_t ImageBuilder::extent_offset(uint64_t ino, size_t index) const {
  for (uint64_t b = inode(ino).extent_head; b != 0;
       b = get<ExtentBlockHeader>(b * kBlockSize).next) {
    for (size_t i = 0; i < kExtentsPerBlock; ++i) {
      uint64_t off =
          b * kBlockSize + sizeof(ExtentBlockHeader) + i * sizeof(DiskExtent);
      if (get<DiskExtent>(off).flags == 0) continue;
      if (index-- == 0) return off;
    }
  }
  return 0;
}

uint64_t ImageBuilder::xattr_entry_offset(uint64_t ino, size_t index) const {
  uint64_t t = inode(ino).xattr_block;
  if (t == 0) return 0;
  for (size_t i = 0; i < kXattrsPerTable; ++i) {
    uint64_t off =
        t * kBlockSize + sizeof(XattrTableHeader) + i * sizeof(XattrEntry);
    if (get<XattrEntry>(off).block == 0) continue;
    if (index-- == 0) return off;
  }
  return 0;
}

std::vector<std::pair<uint64_t, uint64_t>> ImageBuilder::metadata_ranges()
    const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  out.push_back({0, sizeof(Superblock)});
  out.push_back({kBlockSize, sizeof(Superblock)});
  out.push_back({journal_offset(sb_), kBlockSize});
  out.push_back({inode_off(1), (next_ino_ - 1) * kInodeSize});
  for (uint64_t b : metadata_blocks_)
    out.push_back({b * kBlockSize, kBlockSize});
  return out;
}

void ImageBuilder::journal_commit(
    const std::vector<std::pair<uint64_t, std::vector<std::byte>>>& records,
    bool apply) {
  std::vector<std::byte> body;
  for (const auto& [dest, bytes] : records) {
    JournalRecord r{};
    r.dest = dest;
    r.len = static_cast<uint32_t>(bytes.size());
    size_t at = body.size();
    body.resize(at + sizeof(r) + ((bytes.size() + 7) & ~size_t(7)));
    std::memcpy(body.data() + at, &r, sizeof(r));
    std::memcpy(body.data() + at + sizeof(r), bytes.data(), bytes.size());
  }
  const uint64_t joff = journal_offset(sb_);
  JournalHeader h = get<JournalHeader>(joff);
  h.magic = kJournalMagic;
  h.seq = std::max(h.seq, journal_seq_) + 1;
  journal_seq_ = h.seq;
  h.bytes = body.size();
  const uint64_t covered[2] = {h.seq, h.bytes};
  h.csum = crc32c(body.data(), body.size(), crc32c(covered, sizeof(covered)));
  h.commit = h.seq;
  write(joff + sizeof(h), body.data(), body.size());
  write(joff, &h, sizeof(h));
  if (apply) {
    for (const auto& [dest, bytes] : records)
      write(dest, bytes.data(), bytes.size());
  }
}

const ImageBuilder& standard_image() {
  static const ImageBuilder image = [] {
    MkfsOptions o;
    o.journal_blocks = 8;
    std::string why;
    auto b = ImageBuilder::create(1 << 20, o, &why);
    if (!b) {
      fmt::print(stderr, "standard_image: {}\n", why);
      abort();
    }
    uint64_t docs = b->mkdir(kRootIno, "docs");
    uint64_t src = b->mkdir(kRootIno, "src");
    uint64_t deep = b->mkdir(src, "deep");
    uint64_t a = b->create_file(kRootIno, "a.txt", 2);
    b->create_file(docs, "manual.pdf", 6, 3);
    uint64_t main = b->create_file(src, "main.cc", 1);
    b->create_file(deep, "empty", 0, 0);
    b->symlink(kRootIno, "short-link", "docs/manual.pdf");
    b->symlink(docs, "long-link", std::string(300, 'x'));
    b->mkfifo(src, "pipe");
    b->link(deep, "main-again.cc", main);
    b->set_xattr(a, "user.comment", "a small value");
    b->set_xattr(a, "user.big", std::string(5000, 'v'));
    b->set_xattr(docs, "security.selinux", "system_u:object_r:doc_t");
    for (int i = 0; i < 20; ++i)
      b->create_file(deep, fmt::format("f{:02}", i), 0, 0);
    // Slot blocks (kIncompatXattrSlots): one chained after a.txt's table,
    // and main.cc's chain of small and record-backed attributes.
    b->add_xattr_slot(a, "user.packed", "in a slot block");
    b->add_xattr_slot(main, "user.s1", "one");
    b->add_xattr_slot(main, "user.s2", std::string(300, 's'));
    b->add_xattr_slot(main, "user.rec", std::string(1000, 'r'));
    // A committed and applied transaction: touch the root's mtime, so the
    // journal holds real records for the fuzzer to damage.
    DiskInode root = b->inode(kRootIno);
    root.mtime_sec += 1;
    seal(&root);
    std::vector<std::byte> bytes(sizeof(root));
    std::memcpy(bytes.data(), &root, sizeof(root));
    b->journal_commit({{b->inode_off(kRootIno), bytes}}, true);
    return std::move(*b);
  }();
  return image;
}

void apply_patches(std::span<std::byte> image, std::span<const uint8_t> input) {
  if (input.empty() || image.empty()) return;
  const uint8_t flags = input[0];
  size_t pos = 1;
  for (size_t n = 0; n < kMaxPatches && input.size() - pos >= 5; ++n) {
    uint32_t off;
    std::memcpy(&off, input.data() + pos, 4);
    size_t len = input[pos + 4];
    pos += 5;
    len = std::min(len, input.size() - pos);
    uint64_t at = off % image.size();
    size_t fit =
        static_cast<size_t>(std::min<uint64_t>(len, image.size() - at));
    std::memcpy(image.data() + at, input.data() + pos, fit);
    pos += len;
  }
  if (flags & kPatchReseal) reseal(image);
}

void reseal(std::span<std::byte> image) {
  const uint64_t size = image.size();
  auto fits = [&](uint64_t off, uint64_t len) {
    return off <= size && len <= size - off;
  };
  auto at = [&](uint64_t off) { return image.data() + off; };
  if (size < 2 * kBlockSize) return;
  Superblock sb;
  bool have = false;
  for (int i = 1; i >= 0; --i) {  // prefer block 0's geometry
    Superblock s;
    std::memcpy(&s, at(i * kBlockSize), sizeof(s));
    if (s.magic != kMagic) continue;
    seal(&s);
    std::memcpy(at(i * kBlockSize), &s, sizeof(s));
    sb = s;
    have = true;
  }
  if (!have) return;
  uint64_t total = size / kBlockSize;
  // Journal header.
  if (sb.journal_start < total &&
      sb.journal_blocks <= total - sb.journal_start && sb.journal_blocks > 0) {
    uint64_t joff = sb.journal_start * kBlockSize;
    JournalHeader h;
    std::memcpy(&h, at(joff), sizeof(h));
    uint64_t cap = sb.journal_blocks * kBlockSize - sizeof(h);
    if (h.bytes <= cap) {
      const uint64_t covered[2] = {h.seq, h.bytes};
      h.csum = crc32c(at(joff + sizeof(h)), h.bytes,
                      crc32c(covered, sizeof(covered)));
      std::memcpy(at(joff), &h, sizeof(h));
    }
  }
  // Inode slots.
  if (sb.itable_start < total && sb.itable_blocks <= total - sb.itable_start) {
    for (uint64_t i = 0; i < sb.itable_blocks * kInodesPerBlock; ++i) {
      uint64_t off = sb.itable_start * kBlockSize + i * kInodeSize;
      DiskInode d;
      std::memcpy(&d, at(off), sizeof(d));
      if (!(d.flags & kInodeInUse)) continue;
      seal(&d);
      std::memcpy(at(off), &d, sizeof(d));
    }
  }
  // Chain blocks and tables, found by magic.
  for (uint64_t b = 2; b < total; ++b) {
    uint64_t boff = b * kBlockSize;
    uint32_t magic;
    std::memcpy(&magic, at(boff + 4), 4);
    if (magic == kExtentBlockMagic) {
      ExtentBlockHeader h;
      std::memcpy(&h, at(boff), sizeof(h));
      h.csum = csum_of(h);
      std::memcpy(at(boff), &h, sizeof(h));
      for (size_t i = 0; i < kExtentsPerBlock; ++i) {
        uint64_t off = boff + sizeof(h) + i * sizeof(DiskExtent);
        DiskExtent e;
        std::memcpy(&e, at(off), sizeof(e));
        if (e.flags == 0) continue;
        seal_extent(&e);
        std::memcpy(at(off), &e, sizeof(e));
      }
    } else if (magic == kDirBlockMagic) {
      DirBlockHeader h;
      std::memcpy(&h, at(boff), sizeof(h));
      h.csum = csum_of(h);
      std::memcpy(at(boff), &h, sizeof(h));
      for (size_t s = 0; s < kDirSlots;) {
        uint64_t off = boff + (s + 1) * kDirSlotSize;
        DirentHeader e;
        std::memcpy(&e, at(off), sizeof(e));
        if (e.nslots == 0 || e.nslots > kDirSlots - s) {
          ++s;
          continue;
        }
        size_t namelen =
            std::min<size_t>(e.namelen, e.nslots * kDirSlotSize - sizeof(e));
        e.csum = dirent_csum(
            e, {reinterpret_cast<const char*>(at(off + sizeof(e))), namelen});
        std::memcpy(at(off), &e, sizeof(e));
        s += e.nslots;
      }
    } else if (magic == kXattrSlotBlockMagic) {
      XattrSlotBlockHeader h;
      std::memcpy(&h, at(boff), sizeof(h));
      h.csum = csum_of(h);
      std::memcpy(at(boff), &h, sizeof(h));
      for (size_t s = 0; s < kXattrSlots;) {
        uint64_t off = boff + (s + 1) * kXattrSlotSize;
        XattrSlotHeader e;
        std::memcpy(&e, at(off), sizeof(e));
        if (e.nslots == 0 || e.nslots > kXattrSlots - s) {
          ++s;
          continue;
        }
        const bool rec = e.flags & kXattrSlotRecord;
        size_t len = sizeof(e) + (rec ? sizeof(XattrRecordRef)
                                      : size_t(e.namelen) + e.valuelen);
        len = std::min<size_t>(len, e.nslots * kXattrSlotSize);
        seal_xattr_slot(at(off), len);
        if (rec && len >= sizeof(e) + sizeof(XattrRecordRef)) {
          XattrRecordRef ref;
          std::memcpy(&ref, at(off + sizeof(e)), sizeof(ref));
          if (ref.block < total) {
            uint64_t roff = ref.block * kBlockSize;
            XattrRecordHeader r;
            std::memcpy(&r, at(roff), sizeof(r));
            uint64_t rlen = sizeof(r) + uint64_t(r.namelen) + r.valuelen;
            if (fits(roff, rlen)) {
              std::memset(at(roff), 0, 4);
              r.csum = crc32c(at(roff), rlen);
              std::memcpy(at(roff), &r.csum, 4);
            }
          }
        }
        s += e.nslots;
      }
    } else if (magic == kXattrTableMagic) {
      XattrTableHeader h;
      std::memcpy(&h, at(boff), sizeof(h));
      h.csum = csum_of(h);
      std::memcpy(at(boff), &h, sizeof(h));
      for (size_t i = 0; i < kXattrsPerTable; ++i) {
        uint64_t off = boff + sizeof(h) + i * sizeof(XattrEntry);
        XattrEntry e;
        std::memcpy(&e, at(off), sizeof(e));
        if (e.block == 0) continue;
        seal_xattr_entry(&e);
        std::memcpy(at(off), &e, sizeof(e));
        if (e.block >= total) continue;
        uint64_t roff = e.block * kBlockSize;
        XattrRecordHeader r;
        std::memcpy(&r, at(roff), sizeof(r));
        uint64_t len = sizeof(r) + uint64_t(r.namelen) + r.valuelen;
        if (!fits(roff, len)) continue;
        std::memset(at(roff), 0, 4);
        r.csum = crc32c(at(roff), len);
        std::memcpy(at(roff), &r.csum, 4);
      }
    }
  }
}

}  // namespace zest::pmfs::sample
