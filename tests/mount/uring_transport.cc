// Linked into the uring.* variants of the mount tests: every zest mount
// they start is served over FUSE over io_uring (--transport=uring), unless
// ZEST_TEST_TRANSPORT says otherwise.
#include "tests/mount/zest_mount.h"

namespace {
const bool kSet = (zest::testing::SetDefaultTransport("uring"), true);
}  // namespace
