// Decoding of each request into a call on the file system.
//
// Every argument is read through ArgReader, so a request that is shorter
// than its opcode needs, or whose names are not NUL-terminated, is answered
// EIO (Session::malformed) and never dereferenced past its end. Nothing here
// allocates: names and write data are views into the receive buffer.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "server/arg_reader.h"
#include "server/session.h"

namespace zest::server {

namespace {

constexpr uint16_t kMaxPages = 256;  // 1 MiB in 4 KiB pages

// The context of a request that creates an inode: the caller's umask too.
fs::Context with_umask(const fs::Context& ctx, uint32_t umask) {
  fs::Context c = ctx;
  c.umask = umask;
  return c;
}

// Reads the request extensions (the last total_extlen * 8 bytes of a
// creating request, after its arguments) into `c`: the supplementary
// groups (FUSE_EXT_GROUPS). Security contexts and unknown types are
// skipped. False when they do not add up (malformed).
bool read_extensions(const abi::fuse_in_header& h, ArgReader a, fs::Context* c) {
  const size_t n = size_t{h.total_extlen} * 8;
  if (n == 0) return true;
  std::span<const std::byte> ext;
  if (a.left() < n || !a.skip(a.left() - n) || !a.bytes(n, &ext)) return false;
  while (!ext.empty()) {
    abi::fuse_ext_header xh;
    if (ext.size() < sizeof(xh)) return false;
    std::memcpy(&xh, ext.data(), sizeof(xh));
    if (xh.size < sizeof(xh) || xh.size > ext.size() || xh.size % 8) return false;
    if (xh.type == abi::FUSE_EXT_GROUPS) {
      std::span<const std::byte> body = ext.subspan(sizeof(xh), xh.size - sizeof(xh));
      uint32_t nr = 0;
      if (body.size() < sizeof(nr)) return false;
      std::memcpy(&nr, body.data(), sizeof(nr));
      if (nr > (body.size() - sizeof(nr)) / sizeof(uint32_t)) return false;
      c->ngroups = std::min(nr, fs::Context::kMaxGroups);
      std::memcpy(c->groups, body.data() + sizeof(nr), c->ngroups * sizeof(uint32_t));
    }
    ext = ext.subspan(xh.size);
  }
  return true;
}

// time_gran must be 1, 10, ..., 1e9 ns (the kernel checks only the bound).
bool power_of_ten_ns(uint32_t g) {
  for (uint32_t p = 1;; p *= 10) {
    if (g == p) return true;
    if (p == 1000000000u) return false;
  }
}

fs::Lock decode_lock(const abi::fuse_file_lock& l) {
  fs::Lock k;
  k.type = l.type;
  k.start = l.start;
  k.end = l.end;
  k.pid = l.pid;
  return k;
}

}  // namespace

void Session::handle_init(RequestSlot* slot, ArgReader a) {
  abi::fuse_init_in in;
  if (!a.read_prefix(&in, 16)) return malformed(slot, "short INIT");
  if (in.major < 7) {
    log_error("kernel speaks FUSE {}.{}, too old (need 7.x)", in.major, in.minor);
    return finish(slot, EPROTO, nullptr, 0);
  }
  abi::fuse_init_out out{};
  out.major = abi::FUSE_KERNEL_VERSION;
  out.minor = abi::FUSE_KERNEL_MINOR_VERSION;
  if (in.major > 7) {
    // Newer major: answer with ours only; the kernel sends INIT again.
    iovec v{&out, abi::FUSE_COMPAT_22_INIT_OUT_SIZE};
    return finish(slot, 0, &v, 1);
  }
  uint64_t kernel = in.flags;
  if (in.flags & abi::FUSE_INIT_EXT) kernel |= uint64_t(in.flags2) << 32;

  fs::Capabilities caps = fs_.capabilities();
  uint64_t want = abi::FUSE_ASYNC_READ | abi::FUSE_ATOMIC_O_TRUNC |
                  abi::FUSE_BIG_WRITES | abi::FUSE_PARALLEL_DIROPS |
                  abi::FUSE_MAX_PAGES | abi::FUSE_INIT_EXT;
  using Caps = fs::Capabilities;
  if (caps.readdirplus != Caps::Readdirplus::kOff) want |= abi::FUSE_DO_READDIRPLUS;
  if (caps.readdirplus == Caps::Readdirplus::kAuto) want |= abi::FUSE_READDIRPLUS_AUTO;
  if (caps.cache_symlinks) want |= abi::FUSE_CACHE_SYMLINKS;
  // The kernel drops a file's cached pages when it sees its mtime or size
  // change in a GETATTR reply: needed where the data may change behind the
  // mount (mirrorfs), harmful where it cannot: that drop can come while a
  // write-through is in flight and let a read refill the page with the old
  // bytes (docs/architecture.md, "I/O modes and coherence").
  Caps::DataInval inval = caps.data_inval;
  if (inval == Caps::DataInval::kDefault)
    inval = caps.sole_writer ? Caps::DataInval::kSizeChange : Caps::DataInval::kAuto;
  if (inval == Caps::DataInval::kAuto) want |= abi::FUSE_AUTO_INVAL_DATA;
  if (inval == Caps::DataInval::kExplicit) want |= abi::FUSE_EXPLICIT_INVAL_DATA;
  // Locks held by the file system; without them the kernel keeps them.
  if (caps.posix_locks) want |= abi::FUSE_POSIX_LOCKS;
  if (caps.flock_locks) want |= abi::FUSE_FLOCK_LOCKS;
  // Answering the first OPEN/OPENDIR with ENOSYS stops them (the kernel
  // does that whatever we agree; agreeing says we know).
  if (caps.no_open) want |= abi::FUSE_NO_OPEN_SUPPORT;
  if (caps.no_opendir) want |= abi::FUSE_NO_OPENDIR_SUPPORT;
  if (caps.supp_groups) want |= abi::FUSE_CREATE_SUPP_GROUP;
  if (caps.export_support) want |= abi::FUSE_EXPORT_SUPPORT;
  if (caps.kills_suid) want |= abi::FUSE_HANDLE_KILLPRIV_V2;
  // ioctl(2) on directories too (FS_IOC_SHUTDOWN is issued on the mount).
  want |= abi::FUSE_HAS_IOCTL_DIR;
  if (caps.writeback_cache) want |= abi::FUSE_WRITEBACK_CACHE;
  // Shared mappings of FOPEN_DIRECT_IO files are incoherent with direct
  // writes (encode_open). Normally such files are only the ones opened with
  // O_DIRECT, whose owners accept that rule (open(2)). When every open of a
  // Direct file is one (-o direct_io, or the writeback cache), shared
  // mappings of them are refused (ENODEV) instead.
  const bool always_direct = opts_.direct_io || caps.writeback_cache;
  if (!always_direct) want |= abi::FUSE_DIRECT_IO_ALLOW_MMAP;
  // The ring only when asked for: once agreed, the kernel holds every
  // request until our ring entries are registered.
  if (opts_.transport != Transport::kDev) want |= abi::FUSE_OVER_IO_URING;
  // Passthrough for files the file system opens so (the kernel will not
  // combine it with the writeback cache).
  if (!caps.writeback_cache) want |= abi::FUSE_PASSTHROUGH;
  // Spliced read replies, when the file system answers reads from files
  // (ok_fd) and wants them spliced. Not SPLICE_MOVE: the kernel copies the
  // data out of the pipe (moving would steal the pages from the backing
  // file's page cache). Not SPLICE_READ: requests are read with read(2).
  if (caps.splice_write) want |= abi::FUSE_SPLICE_WRITE;
  // POSIX ACLs stored by the file system: the kernel checks permissions
  // against them, sends the umask unapplied (the file system applies it
  // unless a default ACL replaces it) and says when setting an ACL must
  // clear S_ISGID (setxattr_flags).
  if (caps.posix_acl)
    want |= abi::FUSE_POSIX_ACL | abi::FUSE_DONT_MASK | abi::FUSE_SETXATTR_EXT;
  uint64_t agreed = want & kernel;

  uint32_t max_write = std::clamp<uint32_t>(caps.max_write, 4096, 1u << 20);
  out.minor = std::min<uint32_t>(in.minor, abi::FUSE_KERNEL_MINOR_VERSION);
  out.max_readahead = std::min<uint32_t>(in.max_readahead, caps.max_readahead);
  out.flags = static_cast<uint32_t>(agreed);
  out.flags2 = static_cast<uint32_t>(agreed >> 32);
  out.max_background = 64;
  out.congestion_threshold = 48;
  out.max_write = max_write;
  out.time_gran = power_of_ten_ns(caps.time_gran) ? caps.time_gran : 1;
  out.max_pages = std::min<uint16_t>(kMaxPages, static_cast<uint16_t>(max_write / 4096));
  // Passthrough needs a stacking depth: ours is one (backing files on
  // ordinary file systems, not on other stacked ones).
  if (agreed & abi::FUSE_PASSTHROUGH) out.max_stack_depth = 1;

  neg_.major = 7;
  neg_.minor = out.minor;
  neg_.flags = agreed;
  neg_.max_write = max_write;
  neg_.max_readahead = out.max_readahead;
  neg_.max_pages = out.max_pages;
  neg_.uring = (agreed & abi::FUSE_OVER_IO_URING) != 0;
  // The ring's entries have no pipe to splice into: replies from files
  // are copied into the entry there.
  neg_.splice = (agreed & abi::FUSE_SPLICE_WRITE) != 0 && !neg_.uring;
  neg_.splice_min = caps.splice_min;
  neg_.always_direct = always_direct;
  neg_.no_open = caps.no_open;
  neg_.no_opendir = caps.no_opendir;

  fs_.set_notifier(this);
  fs_.init(&refs_);
  size_t size = out.minor < 23 ? abi::FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof(out);
  iovec v{&out, size};
  initialized_.store(true);
  finish(slot, 0, &v, 1);
}

void Session::dispatch(RequestSlot* s, const abi::fuse_in_header& h, ArgReader a) {
  fs::Context ctx;
  ctx.uid = h.uid;
  ctx.gid = h.gid;
  ctx.pid = h.pid;
  const fs::Ino ino = h.nodeid;
  fs::ReplySink* sink = this;

  if (h.opcode == abi::FUSE_INIT) return handle_init(s, a);
  if (!initialized_.load(std::memory_order_relaxed))
    return malformed(s, "request before INIT");
  if (shut_down_.load(std::memory_order_relaxed)) {
    switch (h.opcode) {
      case abi::FUSE_FORGET:
      case abi::FUSE_BATCH_FORGET:
      case abi::FUSE_INTERRUPT:
      case abi::FUSE_DESTROY:
      case abi::FUSE_RELEASE:
      case abi::FUSE_RELEASEDIR:
        break;
      default:
        return finish(s, EIO, nullptr, 0);
    }
  }

  switch (h.opcode) {
    case abi::FUSE_LOOKUP: {
      std::string_view name;
      if (!a.name(&name)) return malformed(s, "LOOKUP name");
      return fs_.lookup(ctx, ino, name, fs::EntryReply(sink, s));
    }
    case abi::FUSE_FORGET: {
      abi::fuse_forget_in in;
      if (a.read(&in)) handle_forget(ino, in.nlookup);
      else malformed_.fetch_add(1);
      return complete(s);  // FORGET has no reply
    }
    case abi::FUSE_BATCH_FORGET: {
      abi::fuse_batch_forget_in in;
      if (!a.read(&in)) {
        malformed_.fetch_add(1);
        return complete(s);
      }
      for (uint32_t i = 0; i < in.count; ++i) {
        abi::fuse_forget_one one;
        if (!a.read(&one)) {
          malformed_.fetch_add(1);
          break;
        }
        handle_forget(one.nodeid, one.nlookup);
      }
      return complete(s);
    }
    case abi::FUSE_GETATTR: {
      abi::fuse_getattr_in in;
      if (!a.read(&in)) return malformed(s, "GETATTR args");
      uint64_t fh = in.fh;
      return fs_.getattr(ctx, ino, (in.getattr_flags & abi::FUSE_GETATTR_FH) ? &fh : nullptr,
                         fs::AttrReply(sink, s));
    }
    case abi::FUSE_SETATTR: {
      abi::fuse_setattr_in in;
      if (!a.read(&in)) return malformed(s, "SETATTR args");
      fs::SetAttr sa;
      uint32_t v = in.valid;
      if (v & abi::FATTR_MODE) { sa.valid |= fs::SetAttr::kMode; sa.mode = in.mode; }
      if (v & abi::FATTR_UID) { sa.valid |= fs::SetAttr::kUid; sa.uid = in.uid; }
      if (v & abi::FATTR_GID) { sa.valid |= fs::SetAttr::kGid; sa.gid = in.gid; }
      if (v & abi::FATTR_SIZE) { sa.valid |= fs::SetAttr::kSize; sa.size = in.size; }
      if (v & abi::FATTR_ATIME) {
        if (v & abi::FATTR_ATIME_NOW) {
          sa.valid |= fs::SetAttr::kAtimeNow;
        } else {
          sa.valid |= fs::SetAttr::kAtime;
          sa.atime = {static_cast<time_t>(in.atime), static_cast<long>(in.atimensec)};
        }
      }
      if (v & abi::FATTR_MTIME) {
        if (v & abi::FATTR_MTIME_NOW) {
          sa.valid |= fs::SetAttr::kMtimeNow;
        } else {
          sa.valid |= fs::SetAttr::kMtime;
          sa.mtime = {static_cast<time_t>(in.mtime), static_cast<long>(in.mtimensec)};
        }
      }
      if (v & abi::FATTR_CTIME) {
        sa.valid |= fs::SetAttr::kCtime;
        sa.ctime = {static_cast<time_t>(in.ctime), static_cast<long>(in.ctimensec)};
      }
      if (v & abi::FATTR_KILL_SUIDGID) sa.valid |= fs::SetAttr::kKillSuidGid;
      if (v & abi::FATTR_FH) { sa.has_fh = true; sa.fh = in.fh; }
      if (opts_.debug) log_debug("setattr nodeid={} valid={:#x}", ino, v);
      if (!gate_ || !(sa.valid & fs::SetAttr::kSize)) return fs_.setattr(ctx, ino, sa, fs::AttrReply(sink, s));
      // A size change may free or move blocks anywhere past the new end.
      GateHold hold(gate_, ino, 0, AccessGate::kToEnd, true);
      return fs_.setattr(ctx, ino, sa, fs::AttrReply(sink, s));
    }
    case abi::FUSE_READLINK:
      s->max_out = 4095;  // the kernel reads at most a page less its NUL
      return fs_.readlink(ctx, ino, fs::DataReply(sink, s));
    case abi::FUSE_SYMLINK: {
      std::string_view name, target;
      if (!a.name(&name) || !a.name(&target)) return malformed(s, "SYMLINK names");
      if (!read_extensions(h, a, &ctx)) return malformed(s, "SYMLINK extensions");
      return fs_.symlink(ctx, target, ino, name, fs::EntryReply(sink, s));
    }
    case abi::FUSE_MKNOD: {
      abi::fuse_mknod_in in;
      std::string_view name;
      if (!a.read(&in) || !a.name(&name)) return malformed(s, "MKNOD args");
      if (!read_extensions(h, a, &ctx)) return malformed(s, "MKNOD extensions");
      return fs_.mknod(with_umask(ctx, in.umask), ino, name, in.mode, in.rdev,
                       fs::EntryReply(sink, s));
    }
    case abi::FUSE_MKDIR: {
      abi::fuse_mkdir_in in;
      std::string_view name;
      if (!a.read(&in) || !a.name(&name)) return malformed(s, "MKDIR args");
      if (!read_extensions(h, a, &ctx)) return malformed(s, "MKDIR extensions");
      return fs_.mkdir(with_umask(ctx, in.umask), ino, name, in.mode | S_IFDIR,
                       fs::EntryReply(sink, s));
    }
    case abi::FUSE_UNLINK: {
      std::string_view name;
      if (!a.name(&name)) return malformed(s, "UNLINK name");
      return fs_.unlink(ctx, ino, name, fs::StatusReply(sink, s));
    }
    case abi::FUSE_RMDIR: {
      std::string_view name;
      if (!a.name(&name)) return malformed(s, "RMDIR name");
      return fs_.rmdir(ctx, ino, name, fs::StatusReply(sink, s));
    }
    case abi::FUSE_RENAME: {
      abi::fuse_rename_in in;
      std::string_view from, to;
      if (!a.read(&in) || !a.name(&from) || !a.name(&to))
        return malformed(s, "RENAME args");
      return fs_.rename(ctx, ino, from, in.newdir, to, 0, fs::StatusReply(sink, s));
    }
    case abi::FUSE_RENAME2: {
      abi::fuse_rename2_in in;
      std::string_view from, to;
      if (!a.read(&in) || !a.name(&from) || !a.name(&to))
        return malformed(s, "RENAME2 args");
      return fs_.rename(ctx, ino, from, in.newdir, to, in.flags,
                        fs::StatusReply(sink, s));
    }
    case abi::FUSE_LINK: {
      abi::fuse_link_in in;
      std::string_view name;
      if (!a.read(&in) || !a.name(&name)) return malformed(s, "LINK args");
      return fs_.link(ctx, in.oldnodeid, ino, name, fs::EntryReply(sink, s));
    }
    case abi::FUSE_OPEN: {
      abi::fuse_open_in in;
      if (!a.read(&in)) return malformed(s, "OPEN args");
      if (neg_.no_open) return finish(s, ENOSYS, nullptr, 0);  // no more OPENs
      s->open_flags = in.flags;
      // O_TRUNC comes with OPEN (FUSE_ATOMIC_O_TRUNC), not as a SETATTR.
      if (!gate_ || !(in.flags & O_TRUNC)) return fs_.open(ctx, ino, in.flags, fs::OpenReply(sink, s));
      GateHold hold(gate_, ino, 0, AccessGate::kToEnd, true);
      return fs_.open(ctx, ino, in.flags, fs::OpenReply(sink, s));
    }
    case abi::FUSE_READ: {
      abi::fuse_read_in in;
      if (!a.read(&in)) return malformed(s, "READ args");
      s->max_out = in.size;
      if (!gate_) return fs_.read(ctx, ino, in.fh, in.offset, in.size, fs::DataReply(sink, s));
      GateHold hold(gate_, ino, in.offset, in.size, false);
      return fs_.read(ctx, ino, in.fh, in.offset, in.size, fs::DataReply(sink, s));
    }
    case abi::FUSE_WRITE: {
      abi::fuse_write_in in;
      std::span<const std::byte> data;
      if (!a.read(&in) || !a.bytes(in.size, &data)) return malformed(s, "WRITE args");
      uint32_t flags = (in.write_flags & abi::FUSE_WRITE_KILL_SUIDGID) ? 1u : 0u;
      if (!gate_) return fs_.write(ctx, ino, in.fh, in.offset, data, flags, fs::WriteReply(sink, s));
      GateHold hold(gate_, ino, in.offset, in.size, true);
      return fs_.write(ctx, ino, in.fh, in.offset, data, flags, fs::WriteReply(sink, s));
    }
    case abi::FUSE_STATFS:
      return fs_.statfs(ctx, ino, fs::StatfsReply(sink, s));
    case abi::FUSE_RELEASE: {
      abi::fuse_release_in in;
      if (!a.read(&in)) return malformed(s, "RELEASE args");
      passthrough_.release(ino, in.fh);
      if (in.release_flags & abi::FUSE_RELEASE_FLOCK_UNLOCK) {
        ctx.lock_owner = in.lock_owner;
        ctx.release_flock = true;
      }
      return fs_.release(ctx, ino, in.fh, in.flags, fs::StatusReply(sink, s));
    }
    case abi::FUSE_FSYNC: {
      abi::fuse_fsync_in in;
      if (!a.read(&in)) return malformed(s, "FSYNC args");
      return fs_.fsync(ctx, ino, in.fh, in.fsync_flags & abi::FUSE_FSYNC_FDATASYNC,
                       fs::StatusReply(sink, s));
    }
    case abi::FUSE_SETXATTR: {
      // Without FUSE_SETXATTR_EXT (agreed only with Capabilities::posix_acl)
      // the kernel sends only the first 8 bytes of the struct.
      abi::fuse_setxattr_in in{};
      std::string_view name;
      std::span<const std::byte> head, value;
      size_t hs = (neg_.flags & abi::FUSE_SETXATTR_EXT) ? sizeof(in)
                                                        : abi::FUSE_COMPAT_SETXATTR_IN_SIZE;
      if (!a.bytes(hs, &head)) return malformed(s, "SETXATTR args");
      std::memcpy(&in, head.data(), hs);
      if (!a.name(&name) || !a.bytes(in.size, &value)) return malformed(s, "SETXATTR name/value");
      const uint32_t ext =
          (in.setxattr_flags & abi::FUSE_SETXATTR_ACL_KILL_SGID) ? fs::kXattrAclKillSgid : 0;
      return fs_.setxattr(ctx, ino, name, value, in.flags, ext, fs::StatusReply(sink, s));
    }
    case abi::FUSE_GETXATTR: {
      abi::fuse_getxattr_in in;
      std::string_view name;
      if (!a.read(&in) || !a.name(&name)) return malformed(s, "GETXATTR args");
      s->max_out = in.size;
      return fs_.getxattr(ctx, ino, name, in.size, fs::XattrReply(sink, s));
    }
    case abi::FUSE_LISTXATTR: {
      abi::fuse_getxattr_in in;
      if (!a.read(&in)) return malformed(s, "LISTXATTR args");
      s->max_out = in.size;
      return fs_.listxattr(ctx, ino, in.size, fs::XattrReply(sink, s));
    }
    case abi::FUSE_REMOVEXATTR: {
      std::string_view name;
      if (!a.name(&name)) return malformed(s, "REMOVEXATTR name");
      return fs_.removexattr(ctx, ino, name, fs::StatusReply(sink, s));
    }
    case abi::FUSE_FLUSH: {
      abi::fuse_flush_in in;
      if (!a.read(&in)) return malformed(s, "FLUSH args");
      ctx.lock_owner = in.lock_owner;
      return fs_.flush(ctx, ino, in.fh, fs::StatusReply(sink, s));
    }
    case abi::FUSE_OPENDIR: {
      abi::fuse_open_in in;
      if (!a.read(&in)) return malformed(s, "OPENDIR args");
      if (neg_.no_opendir) return finish(s, ENOSYS, nullptr, 0);
      return fs_.opendir(ctx, ino, in.flags, fs::OpenReply(sink, s));
    }
    case abi::FUSE_READDIR:
    case abi::FUSE_READDIRPLUS: {
      abi::fuse_read_in in;
      if (!a.read(&in)) return malformed(s, "READDIR args");
      s->max_out = std::min<size_t>(in.size, kRequestBufferSize);
      s->plus = h.opcode == abi::FUSE_READDIRPLUS;
      return fs_.readdir(ctx, ino, in.fh, in.offset, fs::DirReply(sink, s, s->plus));
    }
    case abi::FUSE_RELEASEDIR: {
      abi::fuse_release_in in;
      if (!a.read(&in)) return malformed(s, "RELEASEDIR args");
      return fs_.releasedir(ctx, ino, in.fh, fs::StatusReply(sink, s));
    }
    case abi::FUSE_FSYNCDIR: {
      abi::fuse_fsync_in in;
      if (!a.read(&in)) return malformed(s, "FSYNCDIR args");
      return fs_.fsyncdir(ctx, ino, in.fh, in.fsync_flags & abi::FUSE_FSYNC_FDATASYNC,
                          fs::StatusReply(sink, s));
    }
    case abi::FUSE_ACCESS: {
      abi::fuse_access_in in;
      if (!a.read(&in)) return malformed(s, "ACCESS args");
      return fs_.access(ctx, ino, in.mask, fs::StatusReply(sink, s));
    }
    case abi::FUSE_CREATE: {
      abi::fuse_create_in in;
      std::string_view name;
      if (!a.read(&in) || !a.name(&name)) return malformed(s, "CREATE args");
      if (!read_extensions(h, a, &ctx)) return malformed(s, "CREATE extensions");
      s->open_flags = in.flags;
      return fs_.create(with_umask(ctx, in.umask), ino, name, in.mode, in.flags,
                        fs::CreateReply(sink, s));
    }
    case abi::FUSE_TMPFILE: {
      abi::fuse_create_in in;
      if (!a.read(&in)) return malformed(s, "TMPFILE args");
      if (!read_extensions(h, a, &ctx)) return malformed(s, "TMPFILE extensions");
      s->open_flags = in.flags;
      return fs_.tmpfile(with_umask(ctx, in.umask), ino, in.mode, in.flags,
                         fs::CreateReply(sink, s));
    }
    case abi::FUSE_INTERRUPT:
      handle_interrupt(a);
      return complete(s);  // no reply
    case abi::FUSE_DESTROY:
      if (!destroyed_.exchange(true)) fs_.destroy();
      return finish(s, 0, nullptr, 0);
    case abi::FUSE_FALLOCATE: {
      abi::fuse_fallocate_in in;
      if (!a.read(&in)) return malformed(s, "FALLOCATE args");
      GateHold hold(gate_, ino, in.offset, in.length, true);
      return fs_.fallocate(ctx, ino, in.fh, in.mode, in.offset, in.length, fs::StatusReply(sink, s));
    }
    case abi::FUSE_LSEEK: {
      abi::fuse_lseek_in in;
      if (!a.read(&in)) return malformed(s, "LSEEK args");
      return fs_.lseek(ctx, ino, in.fh, in.offset, static_cast<int>(in.whence),
                       fs::LseekReply(sink, s));
    }
    case abi::FUSE_COPY_FILE_RANGE:
    case abi::FUSE_COPY_FILE_RANGE_64: {
      abi::fuse_copy_file_range_in in;
      if (!a.read(&in)) return malformed(s, "COPY_FILE_RANGE args");
      uint64_t len = in.len;
      // The 32-bit variant answers in a 32-bit field.
      if (h.opcode == abi::FUSE_COPY_FILE_RANGE) len = std::min<uint64_t>(len, 1u << 30);
      GateHold hold_in(gate_, ino, in.off_in, len, false);
      GateHold hold_out(gate_, in.nodeid_out, in.off_out, len, true);
      return fs_.copy_file_range(ctx, ino, in.fh_in, in.off_in, in.nodeid_out, in.fh_out,
                                 in.off_out, len, static_cast<uint32_t>(in.flags),
                                 fs::WriteReply(sink, s));
    }
    case abi::FUSE_SYNCFS:
      return fs_.syncfs(ctx, fs::StatusReply(sink, s));
    case abi::FUSE_NOTIFY_REPLY:
      // The kernel's answer to a retrieve (Notifier::retrieve); no reply.
      handle_notify_reply(h, a);
      return complete(s);
    case abi::FUSE_GETLK: {
      abi::fuse_lk_in in;
      if (!a.read(&in)) return malformed(s, "GETLK args");
      ctx.lock_owner = in.owner;
      return fs_.getlk(ctx, ino, in.fh, in.owner, decode_lock(in.lk), fs::LockReply(sink, s));
    }
    case abi::FUSE_SETLK:
    case abi::FUSE_SETLKW: {
      abi::fuse_lk_in in;
      if (!a.read(&in)) return malformed(s, "SETLK args");
      ctx.lock_owner = in.owner;
      return fs_.setlk(ctx, ino, in.fh, in.owner, decode_lock(in.lk),
                       h.opcode == abi::FUSE_SETLKW, (in.lk_flags & abi::FUSE_LK_FLOCK) != 0,
                       fs::StatusReply(sink, s));
    }
    case abi::FUSE_POLL: {
      abi::fuse_poll_in in;
      if (!a.read(&in)) return malformed(s, "POLL args");
      const uint32_t flags =
          (in.flags & abi::FUSE_POLL_SCHEDULE_NOTIFY) ? fs::kPollScheduleNotify : 0;
      return fs_.poll(ctx, ino, in.fh, in.kh, flags, in.events, fs::PollReply(sink, s));
    }
    case abi::FUSE_BMAP: {
      abi::fuse_bmap_in in;
      if (!a.read(&in)) return malformed(s, "BMAP args");
      return fs_.bmap(ctx, ino, in.blocksize, in.block, fs::BmapReply(sink, s));
    }
    case abi::FUSE_STATX: {
      abi::fuse_statx_in in;
      if (!a.read(&in)) return malformed(s, "STATX args");
      uint64_t fh = in.fh;
      return fs_.statx(ctx, ino, (in.getattr_flags & abi::FUSE_GETATTR_FH) ? &fh : nullptr,
                       in.sx_flags, in.sx_mask, fs::StatxReply(sink, s));
    }
    case abi::FUSE_IOCTL: {
      abi::fuse_ioctl_in in;
      std::span<const std::byte> data;
      if (!a.read(&in) || !a.bytes(in.in_size, &data)) return malformed(s, "IOCTL args");
      // FUSE_IOCTL_UNRESTRICTED only comes from CUSE; 32-bit callers would
      // need their structures converted.
      if (in.flags & (abi::FUSE_IOCTL_UNRESTRICTED | abi::FUSE_IOCTL_32BIT))
        return finish(s, ENOTTY, nullptr, 0);
      s->ioctl_cmd = in.cmd;
      s->max_out = in.out_size;
      if (in.cmd == fs::kIocShutdown) {
        // As XFS and ext4: only for CAP_SYS_ADMIN. The request carries no
        // capabilities; root stands for them.
        if (h.uid != 0) return finish(s, EPERM, nullptr, 0);
        return fs_.shutdown(ctx, fs::kShutdownDefault, fs::StatusReply(sink, s));
      }
      return fs_.ioctl(ctx, ino, in.fh, in.cmd, data, in.out_size, fs::DataReply(sink, s));
    }
    default:
      // SETUPMAPPING/REMOVEMAPPING (DAX, virtiofs only), and any opcode
      // newer than us.
      return finish(s, ENOSYS, nullptr, 0);
  }
}

}  // namespace zest::server
