// zest run [--] CMD ARGS...: runs a program with libzest-preload.so, so
// that its file I/O on zest mounts takes the direct path (docs/preload.md).
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tools/commands.h"

namespace zest::tools {
namespace {

// The shim: $ZEST_PRELOAD_LIB, else next to this binary in the build tree
// (build/tools/zest -> build/preload/), else the installed place
// (bin/zest -> lib/zest/).
std::string find_shim() {
  if (const char* e = std::getenv("ZEST_PRELOAD_LIB"); e && *e) return e;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (const char* rel : {"../preload/libzest-preload.so", "../" ZEST_LIBDIR "/zest/libzest-preload.so"}) {
    const std::filesystem::path p = (exe.parent_path() / rel).lexically_normal();
    if (std::filesystem::exists(p, ec)) return p.string();
  }
  return "";
}

}  // namespace

int run_program(std::vector<std::string> args) {
  if (!args.empty() && args.front() == "--") args.erase(args.begin());
  if (args.empty()) {
    fmt::print(stderr, "zest run: usage: zest run [--] COMMAND [ARGS...]\n");
    return 2;
  }
  const std::string shim = find_shim();
  if (shim.empty()) {
    fmt::print(stderr, "zest run: cannot find libzest-preload.so (set ZEST_PRELOAD_LIB)\n");
    return 127;
  }
  std::string preload = shim;
  if (const char* old = std::getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;
  ::setenv("LD_PRELOAD", preload.c_str(), 1);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  const int e = errno;
  fmt::print(stderr, "zest run: {}: {}\n", args[0], std::strerror(e));
  return e == ENOENT ? 127 : 126;
}

std::function<int()> add_run_command(CLI::App& app) {
  // Only for --help: main() hands `zest run ...` to run_program before
  // parsing, so that the command's own options stay its own.
  auto* cmd = app.add_subcommand(
      "run", "Run COMMAND [ARGS...] with libzest-preload: its reads and writes on zest mounts "
             "go straight to the pool (docs/preload.md). ZEST_PRELOAD_DEBUG=1 prints at exit "
             "how many calls went direct.");
  cmd->prefix_command();
  cmd->allow_extras();
  return [cmd]() { return run_program(cmd->remaining()); };
}

}  // namespace zest::tools
