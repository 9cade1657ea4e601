// Where a mount's client channel listens, found from the mount point alone:
// stat(2) the mount point, take st_dev, and look in the runtime directory
// for channel-MAJOR-MINOR. The server (root) uses /run/zest; a server
// started by another user uses $XDG_RUNTIME_DIR/zest. ZEST_RUNTIME_DIR
// overrides both, for the server and the client alike.
#pragma once

#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace zest::layout {

inline std::vector<std::string> channel_dirs() {
  if (const char* d = std::getenv("ZEST_RUNTIME_DIR"); d && *d) return {d};
  std::vector<std::string> out{"/run/zest"};
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) out.push_back(std::string(x) + "/zest");
  return out;
}

inline std::string channel_name(dev_t dev) {
  return "channel-" + std::to_string(major(dev)) + "-" + std::to_string(minor(dev));
}

}  // namespace zest::layout
