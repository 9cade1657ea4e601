#include "mirrorfs/caller_creds.h"

#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace zest::mirrorfs {
namespace {

bool cap_get(__user_cap_data_struct* data) {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  return ::syscall(SYS_capget, &h, data) == 0;
}

bool cap_set(const __user_cap_data_struct* data) {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  return ::syscall(SYS_capset, &h, data) == 0;
}

}  // namespace

CallerCreds::CallerCreds(const fs::Context& ctx, bool enabled) {
  if (!enabled || (ctx.uid == 0 && ctx.gid == 0)) return;
  if (ctx.uid != 0 && !cap_get(saved_)) {
    ok_ = false;
    return;
  }
  // setfsgid/setfsuid return the previous id; the new one is read back.
  if (ctx.gid != 0) {
    ::setfsgid(ctx.gid);
    switched_gid_ = true;
    if (static_cast<uint32_t>(::setfsgid(-1)) != ctx.gid) ok_ = false;
  }
  if (ctx.uid != 0) {
    ::setfsuid(ctx.uid);
    switched_uid_ = true;
    if (static_cast<uint32_t>(::setfsuid(-1)) != ctx.uid) ok_ = false;
    // The fsuid change cleared the file-system capabilities from the
    // effective set; take back what we had.
    if (ok_ && !cap_set(saved_)) ok_ = false;
  }
}

CallerCreds::~CallerCreds() {
  if (switched_uid_) {
    ::setfsuid(0);  // from nonzero to 0 restores the fs capabilities too
    cap_set(saved_);
  }
  if (switched_gid_) ::setfsgid(0);
}

}  // namespace zest::mirrorfs
