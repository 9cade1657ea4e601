// CallerCreds: makes new backing objects belong to the caller.
//
// The server runs as root; a file created through the mount must belong to
// the caller (and to the parent's group in a setgid directory, with the
// setgid bit kept or dropped as the kernel decided). Switching this thread's
// fsuid/fsgid around the creating call gets all of that from the backing
// file system itself, which a chown after the fact cannot: chown drops
// S_ISUID (even for root) and does not know setgid-directory inheritance.
//
// Permission checks were already made by the kernel on the mount
// (default_permissions) with the caller's supplementary groups, which we do
// not have; so while switched, the capabilities that override permission
// checks (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, ...) are raised again
// (a fsuid change from 0 clears them), and the backing file system does not
// check a second time with fewer groups.
//
// Per thread: setfsuid/setfsgid/capset act on the calling thread only.
#pragma once

#include <linux/capability.h>

#include "zest/fs/types.h"

namespace zest::mirrorfs {

class CallerCreds {
 public:
  // Switches when `enabled` (the server runs as root) and `ctx` is not root.
  CallerCreds(const fs::Context& ctx, bool enabled);
  ~CallerCreds();
  CallerCreds(const CallerCreds&) = delete;
  CallerCreds& operator=(const CallerCreds&) = delete;

  // False when the switch was needed and failed: the caller should answer
  // an error rather than create a file owned by root.
  bool ok() const { return ok_; }

 private:
  bool switched_uid_ = false;
  bool switched_gid_ = false;
  bool ok_ = true;
  __user_cap_data_struct saved_[_LINUX_CAPABILITY_U32S_3]{};
};

}  // namespace zest::mirrorfs
