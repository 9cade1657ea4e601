// memfs POSIX ACLs (memfs/acl.h): the checks every file system with
// Capabilities::posix_acl shares (tests/fs_harness/acl_checks.h).
#include "tests/fs_harness/acl_checks.h"
#include "tests/memfs/fake_sink.h"

namespace zest::memfs::test {
namespace {

namespace acl = fs_harness::acl;

class MemFsAclTest : public ::testing::Test, public MemFsHarness {};

TEST_F(MemFsAclTest, DeclaresPosixAcl) {
  EXPECT_TRUE(fs().capabilities().posix_acl);
}
TEST_F(MemFsAclTest, AccessAclSetsTheMode) { acl::AccessAclSetsTheMode(*this); }
TEST_F(MemFsAclTest, KillSgidFlag) { acl::KillSgidFlag(*this); }
TEST_F(MemFsAclTest, Rules) { acl::Rules(*this); }
TEST_F(MemFsAclTest, ChmodRewritesTheAcl) { acl::ChmodRewritesTheAcl(*this); }
TEST_F(MemFsAclTest, Inheritance) { acl::Inheritance(*this); }
TEST_F(MemFsAclTest, SetgidDirectory) { acl::SetgidDirectory(*this); }
TEST_F(MemFsAclTest, ListsAclsFirst) { acl::ListsAclsFirst(*this); }

}  // namespace
}  // namespace zest::memfs::test
