// zest/zest.h: everything a file system built on zest includes.
//
//   #include <zest/zest.h>
//   class MyFs : public zest::fs::FileSystem { ... };   // zest/fs/filesystem.h
//   int main(int argc, char** argv) { return zest::main(argc, argv, my_plugin()); }
//
// Build with `pkg-config --cflags --libs zest`, or in CMake with
// find_package(zest) and target_link_libraries(prog PRIVATE zest::zest).
// docs/writing-a-file-system.md is the tutorial.
#pragma once

#include "zest/fs/atime.h"
#include "zest/fs/filesystem.h"
#include "zest/fs/layout.h"
#include "zest/fs/lock_table.h"
#include "zest/fs/notifier.h"
#include "zest/fs/posix_acl.h"
#include "zest/fs/posix_rules.h"
#include "zest/fs/reply.h"
#include "zest/fs/types.h"
#include "zest/fs/xattr_rules.h"
#include "zest/main.h"
#include "zest/plugin.h"
#include "zest/result.h"
#include "zest/version.h"
