// zest/fs/posix_rules.h: the POSIX rules memfs and pmfs share, checked
// against what the kernel and tmpfs answer (the mount tests compare the
// file systems with tmpfs through real system calls; these pin each rule).
#include "zest/fs/posix_rules.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

namespace zest::fs {
namespace {

TEST(PosixRules, Names) {
  EXPECT_EQ(check_name("a"), 0);
  EXPECT_EQ(check_name(std::string(kNameMax, 'x')), 0);
  EXPECT_EQ(check_name(std::string(kNameMax + 1, 'x')), ENAMETOOLONG);
  EXPECT_EQ(check_name(""), ENOENT);
  EXPECT_EQ(check_name("a/b"), EINVAL);
  EXPECT_EQ(check_name("/"), EINVAL);
  EXPECT_EQ(check_name("."), 0);  // left to the operation
  EXPECT_EQ(check_name(".."), 0);
  EXPECT_EQ(check_name("..."), 0);
  EXPECT_TRUE(is_dot_name("."));
  EXPECT_TRUE(is_dot_name(".."));
  EXPECT_FALSE(is_dot_name("..."));
  EXPECT_FALSE(is_dot_name(".a"));
}

TEST(PosixRules, NewNames) {
  EXPECT_EQ(check_new_name("f"), 0);
  EXPECT_EQ(check_new_name("."), EEXIST);
  EXPECT_EQ(check_new_name(".."), EEXIST);
  EXPECT_EQ(check_new_name(""), ENOENT);
  EXPECT_EQ(check_new_name(std::string(256, 'n')), ENAMETOOLONG);
  EXPECT_EQ(check_new_name("x/y"), EINVAL);
}

TEST(PosixRules, RemoveNames) {
  EXPECT_EQ(check_remove_name("f", false), 0);
  EXPECT_EQ(check_remove_name("f", true), 0);
  EXPECT_EQ(check_remove_name(".", false), EISDIR);     // unlink(".")
  EXPECT_EQ(check_remove_name("..", false), EISDIR);    // unlink("..")
  EXPECT_EQ(check_remove_name(".", true), EINVAL);      // rmdir(".")
  EXPECT_EQ(check_remove_name("..", true), ENOTEMPTY);  // rmdir("..")
  EXPECT_EQ(check_remove_name(std::string(300, 'n'), true), ENAMETOOLONG);
}

TEST(PosixRules, RenameRequest) {
  EXPECT_EQ(check_rename_request(0, "a", "b"), 0);
  EXPECT_EQ(check_rename_request(RENAME_NOREPLACE, "a", "b"), 0);
  EXPECT_EQ(check_rename_request(RENAME_EXCHANGE, "a", "b"), 0);
  EXPECT_EQ(check_rename_request(RENAME_NOREPLACE | RENAME_EXCHANGE, "a", "b"),
            EINVAL);
  EXPECT_EQ(check_rename_request(RENAME_WHITEOUT, "a", "b"), EINVAL);
  EXPECT_EQ(check_rename_request(1u << 7, "a", "b"), EINVAL);
  // Flags are checked before names.
  EXPECT_EQ(check_rename_request(RENAME_WHITEOUT, "", "b"), EINVAL);
  EXPECT_EQ(check_rename_request(0, "", "b"), ENOENT);
  EXPECT_EQ(check_rename_request(0, "a", std::string(256, 'n')), ENAMETOOLONG);
  EXPECT_EQ(check_rename_request(0, ".", "b"), EBUSY);
  EXPECT_EQ(check_rename_request(0, "a", ".."), EBUSY);
  // A bad name wins over a dot name.
  EXPECT_EQ(check_rename_request(0, ".", "x/y"), EINVAL);
}

TEST(PosixRules, MknodMode) {
  EXPECT_EQ(*mknod_mode(0644), uint32_t{S_IFREG | 0644});  // no type: a file
  EXPECT_EQ(*mknod_mode(S_IFIFO | 0600), uint32_t{S_IFIFO | 0600});
  EXPECT_EQ(*mknod_mode(S_IFCHR | 06755), uint32_t{S_IFCHR | 06755});
  EXPECT_EQ(*mknod_mode(S_IFBLK | 0600), uint32_t{S_IFBLK | 0600});
  EXPECT_EQ(*mknod_mode(S_IFSOCK | 0600), uint32_t{S_IFSOCK | 0600});
  EXPECT_EQ(*mknod_mode(S_IFREG | 0600), uint32_t{S_IFREG | 0600});
  EXPECT_EQ(mknod_mode(S_IFDIR | 0755).error().value, EPERM);
  EXPECT_EQ(mknod_mode(S_IFLNK | 0777).error().value, EINVAL);
  EXPECT_EQ(mknod_mode(0170000 | 0644).error().value, EINVAL);
}

TEST(PosixRules, MkdirMode) {
  EXPECT_EQ(mkdir_mode(0755), uint32_t{S_IFDIR | 0755});
  EXPECT_EQ(mkdir_mode(01777), uint32_t{S_IFDIR | 01777});
  // No set-id bits from the caller.
  EXPECT_EQ(mkdir_mode(07777), uint32_t{S_IFDIR | 01777});
}

TEST(PosixRules, SetgidDirectoryInheritance) {
  Context ctx;
  ctx.uid = 1000;
  ctx.gid = 100;
  // A plain directory: the caller's group, the mode as asked.
  EXPECT_EQ(new_inode_gid(ctx, S_IFDIR | 0755, 50), 100u);
  EXPECT_EQ(inherit_mode(S_IFDIR | 0755, S_IFDIR | 0755),
            uint32_t{S_IFDIR | 0755});
  // A setgid directory: its group; subdirectories become setgid, files not.
  EXPECT_EQ(new_inode_gid(ctx, S_IFDIR | 02775, 50), 50u);
  EXPECT_EQ(inherit_mode(S_IFDIR | 0755, S_IFDIR | 02775),
            uint32_t{S_IFDIR | 02755});
  EXPECT_EQ(inherit_mode(S_IFREG | 0644, S_IFDIR | 02775),
            uint32_t{S_IFREG | 0644});
  EXPECT_EQ(inherit_mode(S_IFLNK | 0777, S_IFDIR | 02775),
            uint32_t{S_IFLNK | 0777});
  // A file that asked for S_ISGID keeps it (the kernel strips it before us
  // when the caller may not have it).
  EXPECT_EQ(inherit_mode(S_IFREG | 02755, S_IFDIR | 0755),
            uint32_t{S_IFREG | 02755});
}

TEST(PosixRules, KillSuidSgid) {
  EXPECT_EQ(kill_suid_sgid(S_IFREG | 04755), uint32_t{S_IFREG | 0755});
  EXPECT_EQ(kill_suid_sgid(S_IFREG | 02755), uint32_t{S_IFREG | 0755});
  EXPECT_EQ(kill_suid_sgid(S_IFREG | 06755), uint32_t{S_IFREG | 0755});
  // S_ISGID without group execute stays.
  EXPECT_EQ(kill_suid_sgid(S_IFREG | 02644), uint32_t{S_IFREG | 02644});
  EXPECT_EQ(kill_suid_sgid(S_IFREG | 06644), uint32_t{S_IFREG | 02644});
  // Nothing else changes; the sticky bit stays.
  EXPECT_EQ(kill_suid_sgid(S_IFREG | 01777), uint32_t{S_IFREG | 01777});
  EXPECT_EQ(kill_suid_sgid(S_IFREG | 0644), uint32_t{S_IFREG | 0644});
}

TEST(PosixRules, WhoKillsSuid) {
  EXPECT_TRUE(write_kills_suid(kWriteKillSuidGid));
  EXPECT_FALSE(write_kills_suid(0));
  Context root, user;
  user.uid = 1000;
  EXPECT_FALSE(open_trunc_kills_suid(root));
  EXPECT_TRUE(open_trunc_kills_suid(user));

  SetAttr s;
  // chown(f, -1, -1): nothing valid, still a chown.
  EXPECT_TRUE(setattr_kills_suid(s, S_IFREG | 04755));
  EXPECT_FALSE(setattr_kills_suid(s, S_IFDIR | 02755));
  s.valid = SetAttr::kUid;
  EXPECT_TRUE(setattr_kills_suid(s, S_IFREG | 04755));
  EXPECT_FALSE(setattr_kills_suid(s, S_IFDIR | 02755));
  s.valid = SetAttr::kGid | SetAttr::kMode;
  EXPECT_TRUE(setattr_kills_suid(s, S_IFREG | 04755));
  // chmod or a time alone keeps them.
  s.valid = SetAttr::kMode;
  EXPECT_FALSE(setattr_kills_suid(s, S_IFREG | 04755));
  s.valid = SetAttr::kMtimeNow;
  EXPECT_FALSE(setattr_kills_suid(s, S_IFREG | 04755));
  // A truncate the kernel marks: any type (only files have a size).
  s.valid = SetAttr::kSize | SetAttr::kKillSuidGid;
  EXPECT_TRUE(setattr_kills_suid(s, S_IFREG | 04755));
  s.valid = SetAttr::kSize;
  EXPECT_FALSE(setattr_kills_suid(s, S_IFREG | 04755));
}

TEST(PosixRules, Victims) {
  EXPECT_EQ(check_victim(false, false, false), 0);  // unlink a file
  EXPECT_EQ(check_victim(false, true, true), EISDIR);
  EXPECT_EQ(check_victim(true, false, false), ENOTDIR);
  EXPECT_EQ(check_victim(true, true, true), 0);  // rmdir an empty directory
  EXPECT_EQ(check_victim(true, true, false), ENOTEMPTY);
  EXPECT_EQ(check_victim(false, true, false), EISDIR);  // type before emptiness
}

TEST(PosixRules, Rename) {
  RenameFacts f;
  EXPECT_EQ(check_rename(f), 0);  // a file to a new name

  // Replacing.
  f.dst_exists = true;
  EXPECT_EQ(check_rename(f), 0);  // file over file
  f.dst_is_dir = true;
  f.dst_empty = true;
  EXPECT_EQ(check_rename(f), EISDIR);  // file over directory
  f.src_is_dir = true;
  EXPECT_EQ(check_rename(f), 0);  // directory over empty directory
  f.dst_empty = false;
  EXPECT_EQ(check_rename(f), ENOTEMPTY);
  f.dst_is_dir = false;
  EXPECT_EQ(check_rename(f), ENOTDIR);  // directory over file

  // RENAME_NOREPLACE: any existing target, before anything else.
  f.flags = RENAME_NOREPLACE;
  f.src_into_itself = true;
  EXPECT_EQ(check_rename(f), EEXIST);
  f.dst_exists = false;
  EXPECT_EQ(check_rename(f), EINVAL);  // into its own subtree
  f.src_into_itself = false;
  EXPECT_EQ(check_rename(f), 0);

  // RENAME_EXCHANGE replaces nothing: no type or emptiness checks.
  RenameFacts x;
  x.flags = RENAME_EXCHANGE;
  x.dst_exists = true;
  x.src_is_dir = true;
  x.dst_is_dir = false;
  EXPECT_EQ(check_rename(x), 0);
  x.dst_is_dir = true;
  x.dst_empty = false;
  EXPECT_EQ(check_rename(x), 0);
  x.dst_into_itself = true;
  EXPECT_EQ(check_rename(x), EINVAL);
}

TEST(PosixRules, TimesForEachOperation) {
  auto eq = [](TimeChanges c, bool a, bool m, bool ct) {
    return c.atime == a && c.mtime == m && c.ctime == ct;
  };
  EXPECT_TRUE(eq(times_for(TimeOp::Create).inode, true, true, true));
  EXPECT_TRUE(eq(times_for(TimeOp::Create).dir, false, true, true));
  for (TimeOp op : {TimeOp::Link, TimeOp::Remove, TimeOp::Rename}) {
    EXPECT_TRUE(eq(times_for(op).inode, false, false, true));
    EXPECT_TRUE(eq(times_for(op).dir, false, true, true));
  }
  for (TimeOp op : {TimeOp::Write, TimeOp::Truncate, TimeOp::Fallocate}) {
    EXPECT_TRUE(eq(times_for(op).inode, false, true, true));
    EXPECT_TRUE(eq(times_for(op).dir, false, false, false));
  }
  EXPECT_TRUE(eq(times_for(TimeOp::Xattr).inode, false, false, true));
  EXPECT_TRUE(eq(times_for(TimeOp::Read).inode, true, false, false));
  EXPECT_TRUE(eq(times_for(TimeOp::Read).dir, false, false, false));

  const timespec old{1, 1}, now{5, 5};
  timespec a = old, m = old, c = old;
  stamp(times_for(TimeOp::Write).inode, now, &a, &m, &c);
  EXPECT_EQ(a.tv_sec, 1);
  EXPECT_EQ(m.tv_sec, 5);
  EXPECT_EQ(c.tv_nsec, 5);
}

bool same(const std::optional<timespec>& t, const timespec& want) {
  return t && t->tv_sec == want.tv_sec && t->tv_nsec == want.tv_nsec;
}

TEST(PosixRules, SetattrTimes) {
  const timespec now{100, 1}, given{7, 7}, given_c{8, 8};
  SetAttr s;
  // chown(f, -1, -1): ctime only.
  SetAttrTimes t = setattr_times(s, false, false, now);
  EXPECT_FALSE(t.atime);
  EXPECT_FALSE(t.mtime);
  EXPECT_TRUE(same(t.ctime, now));

  // truncate(2) to the same size of a file without data: nothing.
  s.valid = SetAttr::kSize;
  EXPECT_FALSE(truncate_stamps(s, false, false));
  t = setattr_times(s, false, false, now);
  EXPECT_FALSE(t.atime || t.mtime || t.ctime);
  // ... unless set-id bits went with it.
  s.valid = SetAttr::kSize | SetAttr::kKillSuidGid;
  t = setattr_times(s, false, true, now);
  EXPECT_FALSE(t.mtime);
  EXPECT_TRUE(same(t.ctime, now));
  // A size change, data held, or an open file: mtime and ctime.
  s.valid = SetAttr::kSize;
  EXPECT_TRUE(truncate_stamps(s, true, false));
  EXPECT_TRUE(truncate_stamps(s, false, true));
  s.has_fh = true;
  EXPECT_TRUE(truncate_stamps(s, false, false));
  t = setattr_times(s, true, false, now);
  EXPECT_TRUE(same(t.mtime, now));
  EXPECT_TRUE(same(t.ctime, now));

  // utimensat with explicit times, and UTIME_NOW.
  SetAttr u;
  u.valid = SetAttr::kAtime | SetAttr::kMtimeNow;
  u.atime = given;
  t = setattr_times(u, false, false, now);
  EXPECT_TRUE(same(t.atime, given));
  EXPECT_TRUE(same(t.mtime, now));
  EXPECT_TRUE(same(t.ctime, now));
  // An explicit mtime wins over the truncation's.
  u.valid = SetAttr::kSize | SetAttr::kMtime;
  u.mtime = given;
  t = setattr_times(u, true, false, now);
  EXPECT_TRUE(same(t.mtime, given));
  // An explicit ctime wins over now.
  u.valid = SetAttr::kMode | SetAttr::kCtime;
  u.ctime = given_c;
  t = setattr_times(u, false, false, now);
  EXPECT_TRUE(same(t.ctime, given_c));
  EXPECT_FALSE(t.atime || t.mtime);
}

}  // namespace
}  // namespace zest::fs
