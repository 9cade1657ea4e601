// Checks of file data: create, read and write, O_APPEND, truncate, sparse
// files and SEEK_DATA/SEEK_HOLE, fallocate, copy_file_range, O_DIRECT,
// shared mappings, the sync calls and statfs.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "conformance/check.h"

namespace zest::conformance {
namespace {

void CreateReadWrite(Probe& p) {
  UniqueFd fd = p.Open("open f O_CREAT|O_EXCL|O_RDWR 0640", "f",
                       O_CREAT | O_EXCL | O_RDWR, 0640);
  if (!fd) return;
  p.Stat("f");
  p.Open("open f O_CREAT|O_EXCL again", "f", O_CREAT | O_EXCL | O_RDWR);
  std::string big = Pattern((1 << 20) + 12345, 1);
  p.Ret("write 1 MiB + 12345 bytes", ::write(fd.get(), big.data(), big.size()));
  p.Ret("lseek SEEK_CUR after the write", ::lseek(fd.get(), 0, SEEK_CUR));
  p.Stat("f");
  p.Data("pread everything back", ReadAt(fd.get(), big.size() + 100, 0));
  std::string small = Pattern(777, 2);
  p.Ret("pwrite 777 bytes at 4095",
        ::pwrite(fd.get(), small.data(), small.size(), 4095));
  p.Data("pread 1000 bytes at 4000", ReadAt(fd.get(), 1000, 4000));
  p.Data("pread across the end of file", ReadAt(fd.get(), 10, big.size() - 3));
  p.Data("pread past the end of file", ReadAt(fd.get(), 10, big.size() + 10));
  fd.reset();
  UniqueFd r = p.Open("reopen f O_RDONLY", "f", O_RDONLY);
  if (!r) return;
  p.Data("read after reopen", ReadAt(r.get(), big.size(), 0));
  p.Ret("write to an O_RDONLY descriptor", ::write(r.get(), "x", 1));
  UniqueFd w = p.Open("open f O_WRONLY", "f", O_WRONLY);
  char c;
  p.Ret("read from an O_WRONLY descriptor", ::read(w.get(), &c, 1));
}

void LargeWrites(Probe& p) {
  UniqueFd fd = p.Open("open f O_CREAT|O_RDWR", "f", O_CREAT | O_RDWR);
  if (!fd) return;
  // 4 MiB in one call at 1 MiB: more than one FUSE request (max_write).
  std::string huge = Pattern(4 << 20, 3);
  p.Ret("pwrite 4 MiB at 1 MiB",
        ::pwrite(fd.get(), huge.data(), huge.size(), 1 << 20));
  p.Stat("f");
  p.Data("first MiB (never written)", ReadAt(fd.get(), 1 << 20, 0));
  p.Data("the 4 MiB back", ReadAt(fd.get(), huge.size(), 1 << 20));
  // Overwrite across a page boundary in the middle.
  std::string patch = Pattern(10000, 4);
  p.Ret("pwrite 10000 at 3 MiB - 5000",
        ::pwrite(fd.get(), patch.data(), patch.size(), (3 << 20) - 5000));
  p.Data("pread around the patch", ReadAt(fd.get(), 20000, (3 << 20) - 10000));
}

void Append(Probe& p) {
  UniqueFd fd = p.Open("open f O_CREAT|O_WRONLY|O_APPEND", "f",
                       O_CREAT | O_WRONLY | O_APPEND);
  if (!fd) return;
  p.Ret("write one", ::write(fd.get(), "one", 3));
  p.Ret("lseek 0 SEEK_SET", ::lseek(fd.get(), 0, SEEK_SET));
  p.Ret("write two (appends anyway)", ::write(fd.get(), "two", 3));
  p.Ret("lseek SEEK_CUR", ::lseek(fd.get(), 0, SEEK_CUR));
  // Linux: pwrite on an O_APPEND descriptor appends (pwrite(2), BUGS).
  p.Ret("pwrite X at 0", ::pwrite(fd.get(), "X", 1, 0));
  UniqueFd other =
      p.Open("second open O_WRONLY|O_APPEND", "f", O_WRONLY | O_APPEND);
  p.Ret("write via the second descriptor", ::write(other.get(), "[2]", 3));
  p.Ret("write via the first descriptor", ::write(fd.get(), "[1]", 3));
  int fl = ::fcntl(fd.get(), F_GETFL);
  p.Ok("fcntl F_SETFL without O_APPEND",
       ::fcntl(fd.get(), F_SETFL, fl & ~O_APPEND));
  p.Ret("lseek 1 SEEK_SET", ::lseek(fd.get(), 1, SEEK_SET));
  p.Ret("write ! at 1", ::write(fd.get(), "!", 1));
  UniqueFd r = p.Open("open f O_RDONLY", "f", O_RDONLY);
  p.Data("contents", ReadAt(r.get(), 100, 0));
  p.Stat("f");
}

void Truncate(Probe& p) {
  UniqueFd fd = p.Open("open t O_CREAT|O_RDWR", "t", O_CREAT | O_RDWR);
  if (!fd) return;
  std::string d = Pattern(10000, 7);
  WriteAll(fd.get(), d, 0);
  p.Ok("truncate t 3000", ::truncate(p.P("t").c_str(), 3000));
  p.Stat("t");
  p.Ok("ftruncate 9000", ::ftruncate(fd.get(), 9000));
  p.Stat("t");
  p.Data("contents (zeros after 3000)", ReadAt(fd.get(), 10000, 0));
  p.Ok("ftruncate 0", ::ftruncate(fd.get(), 0));
  p.Data("contents after ftruncate 0", ReadAt(fd.get(), 10, 0));
  p.Note("st_blocks after ftruncate 0",
         p.Lstat("t").st_blocks == 0 ? "0" : "not 0");
  p.Ok("ftruncate -1", ::ftruncate(fd.get(), -1));
  WriteAll(fd.get(), d, 0);
  UniqueFd t2 = p.Open("open t O_WRONLY|O_TRUNC", "t", O_WRONLY | O_TRUNC);
  p.Stat("t");
  p.Ok("truncate a missing file", ::truncate(p.P("nope").c_str(), 0));
  ::mkdir(p.P("dir").c_str(), 0755);
  p.Ok("truncate a directory", ::truncate(p.P("dir").c_str(), 0));
  UniqueFd ro = p.Open("open t O_RDONLY", "t", O_RDONLY);
  p.Ok("ftruncate an O_RDONLY descriptor", ::ftruncate(ro.get(), 0));
  // Growing far: a sparse tail that reads as zeros.
  p.Ok("truncate t 1 GiB", ::truncate(p.P("t").c_str(), off_t{1} << 30));
  p.Stat("t");
  p.Data("4 KiB at 512 MiB", ReadAt(ro.get(), 4096, off_t{512} << 20));
}

void Sparse(Probe& p) {
  UniqueFd fd = p.Open("open s O_CREAT|O_RDWR", "s", O_CREAT | O_RDWR);
  if (!fd) return;
  const off_t far = 8 << 20;
  WriteAll(fd.get(), Pattern(4096, 5), 0);
  WriteAll(fd.get(), Pattern(4096, 6), far);
  p.Stat("s");
  struct stat st = p.Lstat("s");
  p.Note("space allocated for 8 KiB of data in an 8 MiB file",
         st.st_blocks * 512 < (1 << 20) ? "less than 1 MiB" : "1 MiB or more");
  p.Data("a hole reads as zeros", ReadAt(fd.get(), 4096, 65536));
  p.Data("the data at 8 MiB", ReadAt(fd.get(), 4096, far));
}

void SeekDataHole(Probe& p) {
  UniqueFd fd = p.Open("open s O_CREAT|O_RDWR", "s", O_CREAT | O_RDWR);
  if (!fd) return;
  const off_t far = 8 << 20;
  WriteAll(fd.get(), Pattern(4096, 5), 0);
  WriteAll(fd.get(), Pattern(4096, 6), far);
  // Without lseek in the file system the kernel answers for it: data
  // everywhere, the only hole at the end of file.
  off_t hole = ::lseek(fd.get(), 0, SEEK_HOLE);
  if (hole >= far) errno = EOPNOTSUPP;
  if (!p.Feature("SEEK_HOLE finds a hole before the end of file",
                 hole >= 0 && hole < far ? 0 : -1))
    return;
  p.Ret("lseek 0 SEEK_DATA", ::lseek(fd.get(), 0, SEEK_DATA));
  p.Ret("lseek 0 SEEK_HOLE", ::lseek(fd.get(), 0, SEEK_HOLE));
  p.Ret("lseek 100 SEEK_HOLE", ::lseek(fd.get(), 100, SEEK_HOLE));
  p.Ret("lseek 65536 SEEK_DATA", ::lseek(fd.get(), 65536, SEEK_DATA));
  p.Ret("lseek 65536 SEEK_HOLE", ::lseek(fd.get(), 65536, SEEK_HOLE));
  p.Ret("lseek 8 MiB + 100 SEEK_HOLE", ::lseek(fd.get(), far + 100, SEEK_HOLE));
  p.Ret("lseek 8 MiB + 100 SEEK_DATA", ::lseek(fd.get(), far + 100, SEEK_DATA));
  p.Ret("lseek end of file SEEK_DATA",
        ::lseek(fd.get(), far + 4096, SEEK_DATA));
  p.Ret("lseek past end of file SEEK_HOLE",
        ::lseek(fd.get(), far + 5000, SEEK_HOLE));
  p.Ret("lseek -1 SEEK_DATA", ::lseek(fd.get(), -1, SEEK_DATA));
  // A punched hole in the middle of data.
  if (::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  4096) == 0) {
    p.Ret("after punching [0, 4096): lseek 0 SEEK_DATA",
          ::lseek(fd.get(), 0, SEEK_DATA));
  }
  UniqueFd empty = p.Open("open e O_CREAT|O_RDWR", "e", O_CREAT | O_RDWR);
  p.Ret("empty file: lseek 0 SEEK_DATA", ::lseek(empty.get(), 0, SEEK_DATA));
  p.Ret("empty file: lseek 0 SEEK_HOLE", ::lseek(empty.get(), 0, SEEK_HOLE));
}

void Fallocate(Probe& p) {
  UniqueFd fd = p.Open("open f O_CREAT|O_RDWR", "f", O_CREAT | O_RDWR);
  if (!fd) return;
  if (!p.Feature("fallocate mode 0", ::fallocate(fd.get(), 0, 0, 16384)))
    return;
  p.Stat("f");
  p.Note("space after fallocate of 16 KiB",
         p.Lstat("f").st_blocks >= 32 ? "16 KiB or more" : "less than 16 KiB");
  p.Data("allocated range reads as zeros", ReadAt(fd.get(), 16384, 0));
  p.Ok("fallocate KEEP_SIZE [16384, +65536)",
       ::fallocate(fd.get(), FALLOC_FL_KEEP_SIZE, 16384, 65536));
  p.Stat("f");
  p.Note("space after KEEP_SIZE beyond the end of file",
         p.Lstat("f").st_blocks >= (16384 + 65536) / 512 ? "80 KiB or more"
                                                         : "less than 80 KiB");
  std::string d = Pattern(65536, 9);
  WriteAll(fd.get(), d, 0);
  if (!p.Feature(
          "fallocate PUNCH_HOLE|KEEP_SIZE",
          ::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      4096, 8192)))
    return;
  p.Data("contents after punching [4096, 12288)", ReadAt(fd.get(), 65536, 0));
  p.Ok("fallocate PUNCH_HOLE|KEEP_SIZE [20001, +333) (unaligned)",
       ::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 20001,
                   333));
  p.Data("contents after the unaligned punch", ReadAt(fd.get(), 65536, 0));
  p.Stat("f");
  p.Ok("fallocate PUNCH_HOLE without KEEP_SIZE",
       ::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE, 0, 10));
  p.Ok("fallocate length 0", ::fallocate(fd.get(), 0, 0, 0));
  p.Ok("fallocate beyond the end of file extends",
       ::fallocate(fd.get(), 0, 100000, 5000));
  p.Stat("f");
}

void CopyFileRange(Probe& p) {
  UniqueFd a = p.Open("open a O_CREAT|O_RDWR", "a", O_CREAT | O_RDWR);
  UniqueFd b = p.Open("open b O_CREAT|O_RDWR", "b", O_CREAT | O_RDWR);
  if (!a || !b) return;
  std::string d = Pattern(300000, 10);
  WriteAll(a.get(), d, 0);
  loff_t in = 1000, out = 5000;
  size_t want = 200000, done = 0;
  while (done < want) {
    ssize_t n = ::copy_file_range(a.get(), &in, b.get(), &out, want - done, 0);
    if (n <= 0) {
      p.Ok("copy_file_range", n < 0 ? -1 : 0);
      break;
    }
    done += n;
  }
  p.Note("bytes copied", std::to_string(done));
  p.Note("offsets after", std::to_string(in) + " " + std::to_string(out));
  p.Stat("b");
  p.Data("b", ReadAt(b.get(), 300000, 0));
  // Past the source's end: nothing to copy.
  in = 400000;
  out = 0;
  p.Ret("copy_file_range from past the end",
        ::copy_file_range(a.get(), &in, b.get(), &out, 10, 0));
}

void DirectIo(Probe& p) {
  int raw =
      ::open(p.P("d").c_str(), O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0644);
  if (raw < 0 && errno == EINVAL) errno = EOPNOTSUPP;
  UniqueFd fd(raw);
  if (!p.Feature("open O_DIRECT", raw)) return;
  void* buf = nullptr;
  if (::posix_memalign(&buf, 4096, 65536) != 0) return;
  std::string data = Pattern(65536, 4);
  std::memcpy(buf, data.data(), data.size());
  p.Ret("aligned pwrite 64 KiB at 8192", ::pwrite(fd.get(), buf, 65536, 8192));
  std::memset(buf, 0, 65536);
  p.Ret("aligned pread 64 KiB at 8192", ::pread(fd.get(), buf, 65536, 8192));
  p.Data("the data", std::string(static_cast<char*>(buf), 65536));
  p.Ret("aligned pread of the hole at 0", ::pread(fd.get(), buf, 4096, 0));
  p.Data("the hole", std::string(static_cast<char*>(buf), 4096));
  std::free(buf);
  p.Stat("d");
  // Buffered readers see what O_DIRECT wrote.
  UniqueFd r = p.Open("open d O_RDONLY (buffered)", "d", O_RDONLY);
  p.Data("buffered read of the same range", ReadAt(r.get(), 65536, 8192));
}

void SharedMapping(Probe& p) {
  UniqueFd fd = p.Open("open m O_CREAT|O_RDWR", "m", O_CREAT | O_RDWR);
  if (!fd) return;
  std::string d = Pattern(8192, 11);
  WriteAll(fd.get(), d, 0);
  void* priv = ::mmap(nullptr, 8192, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  p.Ok("mmap MAP_PRIVATE", priv == MAP_FAILED ? -1 : 0);
  if (priv != MAP_FAILED) {
    p.Data("private mapping", std::string(static_cast<char*>(priv), 8192));
    ::munmap(priv, 8192);
  }
  void* m =
      ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (!p.Feature("mmap MAP_SHARED", m == MAP_FAILED ? -1 : 0)) return;
  std::memcpy(static_cast<char*>(m) + 100, "MAPPED", 6);
  p.Ok("msync MS_SYNC", ::msync(m, 8192, MS_SYNC));
  UniqueFd r = p.Open("open m O_RDONLY", "m", O_RDONLY);
  p.Data("read after a store through the mapping", ReadAt(r.get(), 8192, 0));
  WriteAll(fd.get(), "WRITTEN", 4000);
  p.Data("the mapping after pwrite",
         std::string(static_cast<char*>(m) + 3995, 20));
  ::munmap(m, 8192);
}

void SyncCalls(Probe& p) {
  UniqueFd f = p.Open("open s O_CREAT|O_RDWR", "s", O_CREAT | O_RDWR);
  if (!f) return;
  WriteAll(f.get(), "x", 0);
  p.Ok("fsync", ::fsync(f.get()));
  p.Ok("fdatasync", ::fdatasync(f.get()));
  p.Ok("syncfs", ::syncfs(f.get()));
  p.Ok("sync_file_range",
       ::sync_file_range(f.get(), 0, 1, SYNC_FILE_RANGE_WRITE));
  UniqueFd d(::open(p.root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  p.Ok("fsync a directory", ::fsync(d.get()));
  p.Ok("fdatasync a directory", ::fdatasync(d.get()));
}

void Statfs(Probe& p) {
  struct statfs s {};
  if (!p.Ok("statfs", ::statfs(p.root().c_str(), &s))) return;
  p.Note("f_bsize > 0", s.f_bsize > 0 ? "yes" : "no");
  p.Note("f_bfree <= f_blocks", s.f_bfree <= s.f_blocks ? "yes" : "no");
  p.Note("f_bavail <= f_bfree", s.f_bavail <= s.f_bfree ? "yes" : "no");
  p.Note("f_ffree <= f_files", s.f_ffree <= s.f_files ? "yes" : "no");
  p.Note("f_namelen >= 255", s.f_namelen >= 255 ? "yes" : "no");
  UniqueFd f = p.Open("open f O_CREAT|O_RDWR", "f", O_CREAT | O_RDWR);
  struct statfs fs2 {};
  p.Ok("fstatfs", ::fstatfs(f.get(), &fs2));
}

}  // namespace

void AddFileChecks(std::vector<Check>* out) {
  out->push_back({"file.create_read_write",
                  "create with O_EXCL, write, read back, reopen, EBADF on the "
                  "wrong access mode",
                  false, CreateReadWrite});
  out->push_back(
      {"file.large_writes",
       "a 4 MiB write at an offset (several requests), overwrite across pages",
       false, LargeWrites});
  out->push_back({"file.append",
                  "O_APPEND: writes, lseek and pwrite append; two appenders; "
                  "clearing O_APPEND",
                  false, Append});
  out->push_back({"file.truncate",
                  "truncate, ftruncate, O_TRUNC, zeros after growth, errors",
                  false, Truncate});
  out->push_back({"file.sparse",
                  "a sparse file: size, allocated space, holes read as zeros",
                  false, Sparse});
  out->push_back({"file.seek_data_hole",
                  "SEEK_DATA and SEEK_HOLE offsets, ENXIO at the end of file",
                  false, SeekDataHole});
  out->push_back(
      {"file.fallocate",
       "fallocate: default, KEEP_SIZE, PUNCH_HOLE (aligned, unaligned), errors",
       false, Fallocate});
  out->push_back({"file.copy_file_range",
                  "copy_file_range: contents, offsets, size", false,
                  CopyFileRange});
  out->push_back({"file.direct_io",
                  "O_DIRECT aligned reads and writes, seen by buffered readers",
                  false, DirectIo});
  out->push_back({"file.mmap",
                  "private and shared mappings, coherent with read and write",
                  false, SharedMapping});
  out->push_back(
      {"file.sync",
       "fsync, fdatasync, syncfs, sync_file_range, fsync of a directory", false,
       SyncCalls});
  out->push_back(
      {"file.statfs", "statfs numbers are consistent", false, Statfs});
}

}  // namespace zest::conformance
