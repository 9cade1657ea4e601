#include "tests/crash/fs_snapshot.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cstring>

namespace zest::crash {
namespace {

using pmfs::test::Call;
using pmfs::test::FakeSink;

const fs::Context kCtx{0, 0, 1};

inline uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// Reads the tree without adding kernel references.
class Walker {
 public:
  Walker(fs::FileSystem& fs, FakeSink& sink) : fs_(fs), sink_(sink) {}

  FsSnapshot run() {
    FsSnapshot snap;
    snap_ = &snap;
    visit("/", fs::kRootIno);
    return snap;
  }

 private:
  void fail(const std::string& what) {
    if (snap_->error.empty()) snap_->error = what;
  }

  // Returns false (and records why) when the call answered an error.
  bool getattr(fs::Ino ino, fs::Attr* out) {
    Call c;
    fs_.getattr(kCtx, ino, nullptr, fs::AttrReply(&sink_, &c));
    if (c.kind != Call::kAttr) return false;
    *out = c.attr;
    return true;
  }

  void visit(const std::string& path, fs::Ino ino) {
    fs::Attr a;
    if (!getattr(ino, &a)) {
      fail(fmt::format("getattr of {} (inode {}) failed", path, ino));
      return;
    }
    NodeState n;
    n.ino = ino;
    n.mode = a.mode;
    n.nlink = a.nlink;
    n.uid = a.uid;
    n.gid = a.gid;
    n.rdev = a.rdev;
    n.size = a.size;
    n.blocks = a.blocks;
    n.atime_sec = a.atime.tv_sec;
    n.atime_nsec = a.atime.tv_nsec;
    n.mtime_sec = a.mtime.tv_sec;
    n.mtime_nsec = a.mtime.tv_nsec;
    n.ctime_sec = a.ctime.tv_sec;
    n.ctime_nsec = a.ctime.tv_nsec;
    if (S_ISREG(a.mode)) {
      n.content = content(path, ino, a.size);
    } else if (S_ISLNK(a.mode)) {
      Call c;
      fs_.readlink(kCtx, ino, fs::DataReply(&sink_, &c));
      if (c.kind != Call::kData)
        fail(fmt::format("readlink of {} failed: {}", path, c.err));
      n.target = c.data;
    }
    xattrs(path, ino, &n.xattrs);
    snap_->nodes.emplace(path, std::move(n));
    if (S_ISDIR(a.mode)) {
      for (const auto& [name, child] : list(path, ino)) {
        visit(path == "/" ? "/" + name : path + "/" + name, child);
      }
    }
  }

  uint64_t content(const std::string& path, fs::Ino ino, uint64_t size) {
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    uint64_t off = 0;
    while (off < size) {
      const uint32_t want =
          static_cast<uint32_t>(std::min<uint64_t>(size - off, 1 << 20));
      Call c;
      fs_.read(kCtx, ino, 0, off, want, fs::DataReply(&sink_, &c));
      if (c.kind != Call::kData) {
        fail(fmt::format("read of {} at {} failed: {}", path, off, c.err));
        return 0;
      }
      if (c.data.size() != want) {
        fail(fmt::format("read of {} at {} returned {} bytes, not {}", path,
                         off, c.data.size(), want));
        return 0;
      }
      h = hash_bytes(c.data.data(), c.data.size(), h);
      off += want;
    }
    return h;
  }

  void xattrs(const std::string& path, fs::Ino ino,
              std::map<std::string, uint64_t>* out) {
    Call c;
    fs_.listxattr(kCtx, ino, 1 << 16, fs::XattrReply(&sink_, &c));
    if (c.kind != Call::kData) {
      fail(fmt::format("listxattr of {} failed: {}", path, c.err));
      return;
    }
    size_t pos = 0;
    while (pos < c.data.size()) {
      size_t end = c.data.find('\0', pos);
      if (end == std::string::npos) end = c.data.size();
      std::string name = c.data.substr(pos, end - pos);
      pos = end + 1;
      Call g;
      fs_.getxattr(kCtx, ino, name, 1 << 17, fs::XattrReply(&sink_, &g));
      if (g.kind != Call::kData && !(g.kind == Call::kNone)) {
        fail(fmt::format("getxattr {} of {} failed: {}", name, path, g.err));
        continue;
      }
      (*out)[name] = hash_bytes(g.data.data(), g.data.size(), g.data.size());
    }
  }

  std::vector<std::pair<std::string, fs::Ino>> list(const std::string& path,
                                                    fs::Ino ino) {
    std::vector<std::pair<std::string, fs::Ino>> out;
    uint64_t off = 0;
    for (;;) {
      Call c;
      c.dir_capacity = 1 << 16;
      fs_.readdir(kCtx, ino, 0, off, fs::DirReply(&sink_, &c, false));
      if (c.kind != Call::kDir) {
        fail(fmt::format("readdir of {} failed: {}", path, c.err));
        break;
      }
      if (c.dir.empty()) break;
      for (auto& d : c.dir) {
        if (d.name != "." && d.name != "..") out.emplace_back(d.name, d.ino);
      }
      off = c.dir.back().next_off;
    }
    return out;
  }

  fs::FileSystem& fs_;
  FakeSink& sink_;
  FsSnapshot* snap_ = nullptr;
};

}  // namespace

uint64_t hash_bytes(const void* data, size_t len, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t lanes[4] = {
      seed ^ 0x243f6a8885a308d3ULL, seed ^ 0x13198a2e03707344ULL,
      seed ^ 0xa4093822299f31d0ULL, seed ^ 0x082efa98ec4e6c89ULL};
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    for (int k = 0; k < 4; ++k) {
      uint64_t w;
      std::memcpy(&w, p + i + 8 * k, 8);
      lanes[k] = (lanes[k] ^ w) * 0x9e3779b97f4a7c15ULL;
      lanes[k] ^= lanes[k] >> 29;
    }
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, len - i < 8 ? len - i : 8);
  uint64_t h = len;
  for (int k = 0; k < 4; ++k) h = mix(h ^ lanes[k]);
  h = mix(h ^ tail);
  for (i += 8; i < len; ++i) h = mix(h ^ p[i]);
  return h;
}

FsSnapshot take_snapshot(fs::FileSystem& fs, FakeSink& sink) {
  return Walker(fs, sink).run();
}

std::string describe(const NodeState& n) {
  std::string s = fmt::format(
      "ino {} mode {:o} nlink {} uid {} gid {} size {} blocks {} mtime "
      "{}.{:09} ctime {}.{:09}",
      n.ino, n.mode, n.nlink, n.uid, n.gid, n.size, n.blocks, n.mtime_sec,
      n.mtime_nsec, n.ctime_sec, n.ctime_nsec);
  if (S_ISREG(n.mode)) s += fmt::format(" data {:016x}", n.content);
  if (S_ISLNK(n.mode)) s += fmt::format(" -> \"{}\"", n.target);
  if (!n.xattrs.empty()) {
    s += " xattrs {";
    for (const auto& [k, v] : n.xattrs)
      s += fmt::format(" {}={:08x}", k, v & 0xffffffff);
    s += " }";
  }
  return s;
}

std::string diff(const FsSnapshot& a, const char* a_label, const FsSnapshot& b,
                 const char* b_label, size_t max_lines) {
  std::string out;
  size_t lines = 0, more = 0;
  auto line = [&](const std::string& s) {
    if (lines < max_lines) {
      out += "    " + s + "\n";
      ++lines;
    } else {
      ++more;
    }
  };
  if (!a.error.empty())
    line(fmt::format("{}: incomplete: {}", a_label, a.error));
  if (!b.error.empty())
    line(fmt::format("{}: incomplete: {}", b_label, b.error));
  auto ia = a.nodes.begin(), ib = b.nodes.begin();
  while (ia != a.nodes.end() || ib != b.nodes.end()) {
    if (ib == b.nodes.end() || (ia != a.nodes.end() && ia->first < ib->first)) {
      line(fmt::format("{}: only in {}: {}", ia->first, a_label,
                       describe(ia->second)));
      ++ia;
    } else if (ia == a.nodes.end() || ib->first < ia->first) {
      line(fmt::format("{}: only in {}: {}", ib->first, b_label,
                       describe(ib->second)));
      ++ib;
    } else {
      if (!(ia->second == ib->second)) {
        line(fmt::format("{}: {}: {}", ia->first, a_label,
                         describe(ia->second)));
        line(fmt::format("{}: {}: {}", ib->first, b_label,
                         describe(ib->second)));
      }
      ++ia;
      ++ib;
    }
  }
  if (more) out += fmt::format("    ... {} more lines\n", more);
  return out;
}

}  // namespace zest::crash
