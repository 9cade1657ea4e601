// zest export: serves a mounted zest file system over NFS through
// NFS-Ganesha (docs/export.md). Ganesha's VFS FSAL reaches the files of
// the FUSE mount by handle (name_to_handle_at / open_by_handle_at), which
// a zest file system with Capabilities::export_support answers even after
// the kernel dropped its cached inodes (LOOKUP(ino, ".")).
//
// One ganesha.nfsd per exported mountpoint: its configuration, pid file,
// log and NFSv4 recovery directory live in the state directory
// (/run/zest/export for root, else $XDG_RUNTIME_DIR/zest/export), named
// after the mountpoint, so `zest export --stop MOUNTPOINT` finds the one
// it started and nothing else.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/fd.h"
#include "tools/commands.h"

namespace zest::tools {
namespace {

namespace fs = std::filesystem;

void error(const std::string& what) { fmt::print(stderr, "zest: export: {}\n", what); }

struct ExportCommand {
  std::string mountpoint;
  std::string pseudo;                 // default: the mountpoint's path
  std::string clients = "*";
  std::string nfs_versions = "4";
  std::string squash = "root";
  int port = 2049;
  std::string bind;                   // empty: every address
  bool read_only = false;
  bool print_config = false;
  bool foreground = false;
  bool stop = false;
  std::string log_file;               // default: in the state directory
  std::string ganesha;                // default: ganesha.nfsd on PATH
};

// What one export is made of, once the arguments are checked.
struct ExportPlan {
  std::string mountpoint;  // canonical
  std::string pseudo;
  std::string clients;
  std::vector<int> versions;
  std::string squash;      // Ganesha's spelling
  int port = 2049;
  std::string bind;
  bool read_only = false;
  fs::path state_dir;
  fs::path conf, pid, log, recovery;
};

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
      continue;
    }
    out.push_back(s[i]);
  }
  return out;
}

// The file system type of the topmost mount on `mountpoint`, "" if none.
std::string mount_type(const std::string& mountpoint) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, type;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mp, opts, field, fstype;
    ls >> id >> parent >> devno >> root >> mp >> opts;
    while (ls >> field && field != "-") {
    }
    ls >> fstype;
    if (unescape_mountinfo(mp) == mountpoint) type = fstype;  // topmost wins
  }
  return type;
}

// A file system without export support gets no fh_to_dentry from the
// kernel's FUSE (6.6 and later), and name_to_handle_at answers EOPNOTSUPP.
bool can_make_handles(const std::string& path, std::string* why) {
  std::vector<unsigned char> buf(sizeof(file_handle) + MAX_HANDLE_SZ);
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (::name_to_handle_at(AT_FDCWD, path.c_str(), fh, &mount_id, 0) == 0) return true;
  *why = errno == EOPNOTSUPP
             ? "the file system does not support NFS export (no export_support: it does not "
               "answer LOOKUP(ino, \".\"))"
             : fmt::format("name_to_handle_at: {}", std::strerror(errno));
  return false;
}

// systemd-escape style: /srv/data -> srv-data; '-' and odd bytes as \xNN.
std::string escape_path(const std::string& path) {
  std::string out;
  std::string p = path;
  while (p.size() > 1 && p.front() == '/') p.erase(p.begin());
  if (p == "/") return "-";
  for (unsigned char c : p) {
    if (c == '/')
      out += '-';
    else if (std::isalnum(c) || c == '_' || c == '.')
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

std::optional<fs::path> state_dir(std::string* why) {
  if (::geteuid() == 0) return fs::path("/run/zest/export");
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) return fs::path(x) / "zest/export";
  *why = "no state directory: not root and $XDG_RUNTIME_DIR is not set";
  return std::nullopt;
}

std::string find_ganesha(const std::string& given) {
  if (!given.empty()) return ::access(given.c_str(), X_OK) == 0 ? given : "";
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin";
  std::istringstream dirs(path);
  std::string d;
  while (std::getline(dirs, d, ':')) {
    if (d.empty()) continue;
    std::string p = d + "/ganesha.nfsd";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// Ganesha loads its FSALs from its build's library directory: on Debian
// /usr/lib/<multiarch>/ganesha, elsewhere /usr/lib64/ganesha.
bool have_vfs_fsal() {
  std::error_code ec;
  for (const char* d : {"/usr/lib64/ganesha", "/usr/lib/ganesha", "/usr/local/lib/ganesha",
                        "/usr/local/lib64/ganesha"})
    if (fs::exists(fs::path(d) / "libfsalvfs.so", ec)) return true;
  for (const auto& e : fs::directory_iterator("/usr/lib", ec))
    if (fs::exists(e.path() / "ganesha/libfsalvfs.so", ec)) return true;
  return false;
}

std::optional<ExportPlan> make_plan(const ExportCommand& c, std::string* why) {
  ExportPlan p;
  char buf[PATH_MAX];
  if (!::realpath(c.mountpoint.c_str(), buf)) {
    *why = fmt::format("{}: {}", c.mountpoint, std::strerror(errno));
    return std::nullopt;
  }
  p.mountpoint = buf;
  p.pseudo = c.pseudo.empty() ? p.mountpoint : c.pseudo;
  // Both go into the configuration between double quotes.
  for (const std::string* s : {&p.mountpoint, &p.pseudo}) {
    if (s->find_first_of("\"\n") != std::string::npos) {
      *why = fmt::format("{}: Ganesha's configuration cannot name a path with '\"' or a newline", *s);
      return std::nullopt;
    }
  }
  if (p.pseudo.front() != '/') {
    *why = fmt::format("--pseudo {}: must be an absolute path", p.pseudo);
    return std::nullopt;
  }
  p.clients = c.clients;
  if (p.clients.empty() || p.clients.find_first_of(";{}\"\n") != std::string::npos) {
    *why = fmt::format("--clients '{}': give host names, addresses or networks, comma separated",
                       c.clients);
    return std::nullopt;
  }
  std::istringstream vs(c.nfs_versions);
  std::string v;
  while (std::getline(vs, v, ',')) {
    if (v == "3" || v == "4") {
      p.versions.push_back(v[0] - '0');
    } else {
      *why = fmt::format("--nfs-versions {}: 3, 4 or 3,4", c.nfs_versions);
      return std::nullopt;
    }
  }
  if (p.versions.empty()) {
    *why = "--nfs-versions: none given";
    return std::nullopt;
  }
  if (c.squash == "root")
    p.squash = "Root_Squash";
  else if (c.squash == "all")
    p.squash = "All_Squash";
  else if (c.squash == "none")
    p.squash = "No_Root_Squash";
  else {
    *why = fmt::format("--squash {}: root, all or none", c.squash);
    return std::nullopt;
  }
  p.port = c.port;
  p.bind = c.bind;
  if (!p.bind.empty()) {
    in6_addr a6;
    in_addr a4;
    if (::inet_pton(AF_INET, p.bind.c_str(), &a4) != 1 &&
        ::inet_pton(AF_INET6, p.bind.c_str(), &a6) != 1) {
      *why = fmt::format("--bind {}: not an IP address", p.bind);
      return std::nullopt;
    }
  }
  p.read_only = c.read_only;
  auto dir = state_dir(why);
  if (!dir) return std::nullopt;
  p.state_dir = *dir;
  const std::string key = escape_path(p.mountpoint);
  p.conf = p.state_dir / (key + ".conf");
  p.pid = p.state_dir / (key + ".pid");
  p.log = c.log_file.empty() ? p.state_dir / (key + ".log") : fs::path(c.log_file);
  p.recovery = p.state_dir / (key + ".v4recov");
  return p;
}

std::string list(const std::vector<int>& v, const char* sep = ", ") {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : sep) + std::to_string(x);
  return s;
}

// The whole ganesha.conf for one export (docs/export.md explains it).
std::string ganesha_config(const ExportPlan& p) {
  const bool v3 = std::find(p.versions.begin(), p.versions.end(), 3) != p.versions.end();
  const std::string access = p.read_only ? "RO" : "RW";
  std::string s = fmt::format(
      "# Generated by zest export for {mp}; zest export --stop {mp} stops it.\n"
      "NFS_CORE_PARAM {{\n"
      "  NFS_Port = {port};\n"
      "{bind}"
      "  Protocols = {versions};\n"
      "  Enable_NLM = false;\n"
      "  Enable_RQUOTA = false;\n"
      "  Enable_UDP = false;\n"
      "}}\n"
      "NFS_KRB5 {{ Active_krb5 = false; }}\n"
      "NFSV4 {{\n"
      "  # No 90 s grace period after a start: clients cannot reclaim opens\n"
      "  # and locks across a restart, but can work at once.\n"
      "  Graceless = true;\n"
      "  # Owners as numbers (\"1000\"), not user@domain: AUTH_SYS clients see\n"
      "  # the uids the file system holds, with no idmapd domain to agree on.\n"
      "  Only_Numeric_Owners = true;\n"
      "  RecoveryBackend = fs;\n"
      "  RecoveryRoot = \"{recovery}\";\n"
      "}}\n"
      "EXPORT {{\n"
      "  Export_Id = 1;\n"
      "  Path = \"{mp}\";\n"
      "  Pseudo = \"{pseudo}\";\n"
      "  Protocols = {versions};\n"
      "  Transports = TCP;\n"
      "  SecType = sys;\n"
      "  Squash = {squash};\n"
      "  # Squashed users become nobody:nogroup (Ganesha's default is -2).\n"
      "  Anonymous_Uid = 65534;\n"
      "  Anonymous_Gid = 65534;\n",
      fmt::arg("mp", p.mountpoint), fmt::arg("port", p.port),
      fmt::arg("bind", p.bind.empty() ? "" : fmt::format("  Bind_Addr = {};\n", p.bind)),
      fmt::arg("versions", list(p.versions)), fmt::arg("recovery", p.recovery.string()),
      fmt::arg("pseudo", p.pseudo), fmt::arg("squash", p.squash));
  if (p.clients == "*") {
    s += fmt::format("  Access_Type = {};\n", access);
  } else {
    s += fmt::format("  Access_Type = None;\n  CLIENT {{\n    Clients = {};\n"
                     "    Access_Type = {};\n  }}\n",
                     p.clients, access);
  }
  s += "  FSAL { Name = VFS; }\n}\n";
  if (v3) s += "# NFSv3 registers with rpcbind, which must be running.\n";
  return s;
}

bool write_file(const fs::path& path, const std::string& text, std::string* why) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) {
      *why = fmt::format("{}: cannot write", tmp.string());
      return false;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) *why = fmt::format("{}: {}", path.string(), ec.message());
  return !ec;
}

// The pid in `pid_file` when that process is a ganesha.nfsd running
// `conf`; 0 otherwise (none, gone, or the pid reused by another program).
pid_t running_ganesha(const fs::path& pid_file, const fs::path& conf) {
  std::ifstream in(pid_file);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  std::ifstream cl(fmt::format("/proc/{}/cmdline", pid));
  std::string cmdline((std::istreambuf_iterator<char>(cl)), std::istreambuf_iterator<char>());
  std::ifstream st(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  if (paren != std::string::npos && stat.size() > paren + 2 && stat[paren + 2] == 'Z') return 0;
  if (cmdline.find("ganesha") == std::string::npos ||
      cmdline.find(conf.string()) == std::string::npos)
    return 0;
  return static_cast<pid_t>(pid);
}

bool accepts_connections(const std::string& bind, int port) {
  const std::string host = bind.empty() ? "127.0.0.1" : bind;
  const bool v6 = host.find(':') != std::string::npos;
  UniqueFd s(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return false;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET6, host.c_str(), &a.sin6_addr);
    return ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  return ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

// The lines of Ganesha's log that say why it stopped.
std::string log_errors(const fs::path& log) {
  std::ifstream in(log);
  std::string line, out;
  while (std::getline(in, line))
    if ((line.find(":CRIT :") != std::string::npos || line.find(":FATAL :") != std::string::npos ||
         line.find(":MAJ :") != std::string::npos) &&
        line.find("DBUS") == std::string::npos && line.find("krb5") == std::string::npos &&
        line.find("principal nfs") == std::string::npos)
      out += "  " + line + "\n";
  return out;
}

std::vector<std::string> ganesha_argv(const std::string& bin, const ExportPlan& p) {
  return {bin, "-F", "-f", p.conf.string(), "-L", p.log.string(), "-p", p.pid.string(),
          "-N", "NIV_EVENT"};
}

[[noreturn]] void exec(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  fmt::print(stderr, "zest: export: {}: {}\n", args[0], std::strerror(errno));
  ::_exit(127);
}

std::string where(const ExportPlan& p) {
  return fmt::format("{}:{}{}", p.bind.empty() ? "*" : p.bind, p.port, p.pseudo);
}

int stop(const ExportPlan& p) {
  const pid_t pid = running_ganesha(p.pid, p.conf);
  if (pid == 0) {
    error(fmt::format("{}: not exported by zest export (no running ganesha.nfsd for {})",
                      p.mountpoint, p.conf.string()));
    return 1;
  }
  ::kill(pid, SIGTERM);
  // Ganesha shuts down its workers and exports in a few seconds.
  for (int i = 0; i < 300 && running_ganesha(p.pid, p.conf) == pid; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (running_ganesha(p.pid, p.conf) == pid) {
    error(fmt::format("{}: ganesha.nfsd (pid {}) did not stop in 30 s after SIGTERM; killed",
                      p.mountpoint, pid));
    ::kill(pid, SIGKILL);
  }
  std::error_code ec;
  fs::remove(p.pid, ec);
  fs::remove(p.conf, ec);
  fmt::print("zest: export: {}: stopped ganesha.nfsd (pid {})\n", p.mountpoint, pid);
  return 0;
}

int start(const ExportCommand& c, const ExportPlan& p) {
  const std::string bin = find_ganesha(c.ganesha);
  if (bin.empty()) {
    error(c.ganesha.empty() ? "ganesha.nfsd not found: install nfs-ganesha nfs-ganesha-vfs"
                            : fmt::format("{}: not an executable", c.ganesha));
    return 1;
  }
  if (c.ganesha.empty() && !have_vfs_fsal()) {
    error("Ganesha's VFS FSAL (libfsalvfs.so) not found: install nfs-ganesha-vfs");
    return 1;
  }
  if (pid_t pid = running_ganesha(p.pid, p.conf)) {
    error(fmt::format("{}: already exported by ganesha.nfsd pid {} (zest export --stop {})",
                      p.mountpoint, pid, p.mountpoint));
    return 1;
  }
  if (accepts_connections(p.bind, p.port)) {
    error(fmt::format("port {} on {} is taken by another server; pick one with --port", p.port,
                      p.bind.empty() ? "127.0.0.1" : p.bind));
    return 1;
  }
  std::string why;
  std::error_code ec;
  fs::create_directories(p.recovery, ec);
  if (ec) {
    error(fmt::format("{}: {}", p.recovery.string(), ec.message()));
    return 1;
  }
  if (!write_file(p.conf, ganesha_config(p), &why)) {
    error(why);
    return 1;
  }
  const auto args = ganesha_argv(bin, p);
  if (c.foreground) exec(args);  // Ganesha's own signals: SIGTERM stops it

  const pid_t child = ::fork();
  if (child < 0) {
    error(fmt::format("fork: {}", std::strerror(errno)));
    return 1;
  }
  if (child == 0) {
    ::setsid();
    const int null = ::open("/dev/null", O_RDWR);
    const int log = ::open(p.log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    ::dup2(null, 0);
    ::dup2(log >= 0 ? log : null, 1);
    ::dup2(log >= 0 ? log : null, 2);
    exec(args);
  }
  // Up means it accepts connections; give up after 30 s.
  for (int i = 0; i < 300; ++i) {
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) {
      error(fmt::format("ganesha.nfsd exited ({}) before it served {}; its log {} says:\n{}",
                        WIFEXITED(status) ? fmt::format("status {}", WEXITSTATUS(status))
                                          : fmt::format("signal {}", WTERMSIG(status)),
                        p.mountpoint, p.log.string(), log_errors(p.log)));
      fs::remove(p.conf, ec);
      return 1;
    }
    if (accepts_connections(p.bind, p.port)) {
      fmt::print("zest: export: {} over NFSv{} at {} (ganesha.nfsd pid {}, log {}); "
                 "stop with: zest export --stop {}\n",
                 p.mountpoint, list(p.versions, "/"), where(p), child, p.log.string(), p.mountpoint);
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  error(fmt::format("ganesha.nfsd (pid {}) does not accept connections on port {} after 30 s; "
                    "stopped it; see {}",
                    child, p.port, p.log.string()));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return 1;
}

}  // namespace

std::function<int()> add_export_command(CLI::App& app) {
  auto c = std::make_shared<ExportCommand>();
  CLI::App* cmd = app.add_subcommand(
      "export", "Export a mounted zest file system over NFS through NFS-Ganesha: zest export "
                "[OPTIONS] MOUNTPOINT (docs/export.md)");
  cmd->add_option("MOUNTPOINT", c->mountpoint, "A mounted zest file system")->required();
  cmd->add_option("--pseudo", c->pseudo, "NFSv4 pseudo path (default: the mountpoint's path)");
  cmd->add_option("--clients", c->clients,
                  "Who may mount: host names, addresses, networks (10.0.0.0/8), comma "
                  "separated (default: *, everyone)");
  cmd->add_option("--nfs-versions", c->nfs_versions,
                  "4 (default), 3 or 3,4; NFSv3 needs rpcbind running");
  cmd->add_option("--squash", c->squash,
                  "root (default: root becomes nobody), all (everyone does), none");
  cmd->add_option("--port", c->port, "NFS port (default 2049)")->check(CLI::Range(1, 65535));
  cmd->add_option("--bind", c->bind, "Listen on this address only (default: all)");
  cmd->add_flag("--read-only", c->read_only, "Export read-only");
  cmd->add_option("--log-file", c->log_file, "Ganesha's log (default: in the state directory)");
  cmd->add_option("--ganesha", c->ganesha, "The ganesha.nfsd to run (default: from PATH)");
  cmd->add_flag("--print-config", c->print_config, "Print the Ganesha configuration and stop");
  cmd->add_flag("-f,--foreground", c->foreground, "Run ganesha.nfsd in the foreground");
  cmd->add_flag("--stop", c->stop, "Stop the ganesha.nfsd that zest export started");
  cmd->footer(
      "State (configuration, pid file, log): /run/zest/export for root, else "
      "$XDG_RUNTIME_DIR/zest/export.");
  return [c]() {
    std::string why;
    auto plan = make_plan(*c, &why);
    if (!plan) {
      error(why);
      return 2;
    }
    if (c->stop) return stop(*plan);
    const std::string type = mount_type(plan->mountpoint);
    if (type.empty()) {
      error(fmt::format("{}: not a mount point", plan->mountpoint));
      return 1;
    }
    if (type != "fuse.zest") {
      error(fmt::format("{}: not a zest file system (its type is {})", plan->mountpoint, type));
      return 1;
    }
    if (!can_make_handles(plan->mountpoint, &why)) {
      error(fmt::format("{}: {}", plan->mountpoint, why));
      return 1;
    }
    if (c->print_config) {
      fmt::print("{}", ganesha_config(*plan));
      return 0;
    }
    std::error_code ec;
    fs::create_directories(plan->state_dir, ec);
    if (ec) {
      error(fmt::format("{}: {}", plan->state_dir.string(), ec.message()));
      return 1;
    }
    return start(*c, *plan);
  };
}

}  // namespace zest::tools
