// pmfs POSIX ACLs (pmfs/acl.cc): the checks every file system with
// Capabilities::posix_acl shares (tests/fs_harness/acl_checks.h), then that
// they persist, each change in one transaction, and leave fsck nothing to
// say.
#include "tests/fs_harness/acl_checks.h"
#include "tests/pmfs/harness.h"

namespace zest::pmfs::test {
namespace {

namespace acl = fs_harness::acl;
using acl::kAccess;
using acl::kDefault;
using acl::kNamed;

class PmFsAclTest : public ::testing::Test, public PmFsHarness {
 protected:
  void TearDown() override {
    close();
    EXPECT_EQ(fsck_errors(), std::vector<std::string>{});
  }
};

TEST_F(PmFsAclTest, DeclaresPosixAcl) {
  EXPECT_TRUE(fs().capabilities().posix_acl);
}
TEST_F(PmFsAclTest, AccessAclSetsTheMode) { acl::AccessAclSetsTheMode(*this); }
TEST_F(PmFsAclTest, KillSgidFlag) { acl::KillSgidFlag(*this); }
TEST_F(PmFsAclTest, Rules) { acl::Rules(*this); }
TEST_F(PmFsAclTest, ChmodRewritesTheAcl) { acl::ChmodRewritesTheAcl(*this); }
TEST_F(PmFsAclTest, Inheritance) { acl::Inheritance(*this); }
TEST_F(PmFsAclTest, SetgidDirectory) { acl::SetgidDirectory(*this); }
TEST_F(PmFsAclTest, ListsAclsFirst) { acl::ListsAclsFirst(*this); }

TEST_F(PmFsAclTest, AclsAndTheirModesPersist) {
  auto d = mkdir(fs::kRootIno, "d", 0755);
  auto f = create(fs::kRootIno, "f", 0644);
  ASSERT_TRUE(d && f);
  ASSERT_EQ(setxattr(d->ino, kDefault, kNamed), 0);
  ASSERT_EQ(setxattr(f->ino, kAccess, kNamed), 0);
  ASSERT_TRUE(setattr(f->ino, acl::chmod_to(0640)));
  ctx.umask = 077;
  auto s = mkdir(d->ino, "s", 0777);
  auto t = tmpfile(d->ino, 0666);
  ASSERT_TRUE(s && t);
  ASSERT_TRUE(link(t->ino, d->ino, "t")) << "link of the tmpfile";
  ctx.umask = 0;
  const std::string f_acl = *acl::get(*this, f->ino, kAccess);
  const std::string t_acl = *acl::get(*this, t->ino, kAccess);

  ASSERT_TRUE(remount());
  EXPECT_EQ(acl::mode(*this, f->ino), uint32_t{S_IFREG | 0640});
  EXPECT_EQ(*acl::get(*this, f->ino, kAccess), f_acl);
  EXPECT_EQ(*acl::get(*this, d->ino, kDefault), kNamed);
  EXPECT_EQ(acl::mode(*this, s->ino), uint32_t{S_IFDIR | 0674});
  EXPECT_EQ(*acl::get(*this, s->ino, kAccess), kNamed);
  EXPECT_EQ(*acl::get(*this, s->ino, kDefault), kNamed);
  EXPECT_EQ(acl::mode(*this, t->ino), uint32_t{S_IFREG | 0664});
  EXPECT_EQ(*acl::get(*this, t->ino, kAccess), t_acl);
  // Dropping an ACL that became a mode persists too.
  ASSERT_EQ(setxattr(f->ino, kAccess,
                     acl::value({{acl::E::kUserObj, 7, acl::U},
                                 {acl::E::kGroupObj, 0, acl::U},
                                 {acl::E::kOther, 0, acl::U}})),
            0);
  ASSERT_EQ(removexattr(d->ino, kDefault), 0);
  ASSERT_TRUE(remount());
  EXPECT_EQ(acl::mode(*this, f->ino), uint32_t{S_IFREG | 0700});
  EXPECT_EQ(acl::list(*this, f->ino), "");
  EXPECT_EQ(acl::list(*this, d->ino), "");
}

}  // namespace
}  // namespace zest::pmfs::test
