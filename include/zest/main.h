// zest/main.h: serve a file system with the zest command line, in one call.
//
//   int main(int argc, char** argv) { return zest::main(argc, argv, my_plugin()); }
//
// gives the program the command line of the built-in file systems:
//
//   PROG [options] [SOURCE] MOUNTPOINT
//     -f, --foreground     stay in the foreground (default: daemon)
//     -d, --debug          log every request (implies -f)
//     -o OPT[,OPT...]      mount options (mount(8)'s ro, noexec, noatime...,
//                          allow_other, fsname=NAME), the server's own
//                          (transport=, direct_io, ...) and the file
//                          system's (Plugin::options_help)
//     --threads N, --transport dev|uring|auto, --uring-depth N, --spin-us N
//     --log-file PATH      append the daemon's log to PATH
//     -h, --help, -V, --version
//
// As a daemon, the program returns once the mount exists (exit 0) or with
// the reason it could not mount (exit 1); the server's log then goes to
// syslog (the journal), or to --log-file. SIGINT, SIGTERM and SIGHUP, or
// an unmount (zest umount, fusermount3 -u, umount), end it cleanly: the
// requests in flight are answered, FileSystem::destroy runs and the
// file system is destroyed.
//
// The same command line is also accepted as libfuse programs take it from
// mount.fuse3 (fuse.PROG in /etc/fstab): `PROG SOURCE MOUNTPOINT -o OPTS`.
#pragma once

#include "zest/plugin.h"

namespace zest {

// Parses the command line, builds the file system with plugin.make, mounts
// it and serves it until it is unmounted. Returns the exit status for
// main(): 0, 1 (could not mount or serve), 2 (bad command line).
int main(int argc, char** argv, const Plugin& plugin);

// The library's version, "MAJOR.MINOR.PATCH".
const char* version();

}  // namespace zest
