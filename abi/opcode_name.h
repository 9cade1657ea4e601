// The name of a FUSE opcode for log lines ("lookup", "write"), or
// "unknown".
#pragma once

#include <cstdint>

namespace zest::abi {

constexpr const char* opcode_name(uint32_t opcode) {
  switch (opcode) {
    case 1: return "lookup";
    case 2: return "forget";
    case 3: return "getattr";
    case 4: return "setattr";
    case 5: return "readlink";
    case 6: return "symlink";
    case 8: return "mknod";
    case 9: return "mkdir";
    case 10: return "unlink";
    case 11: return "rmdir";
    case 12: return "rename";
    case 13: return "link";
    case 14: return "open";
    case 15: return "read";
    case 16: return "write";
    case 17: return "statfs";
    case 18: return "release";
    case 20: return "fsync";
    case 21: return "setxattr";
    case 22: return "getxattr";
    case 23: return "listxattr";
    case 24: return "removexattr";
    case 25: return "flush";
    case 26: return "init";
    case 27: return "opendir";
    case 28: return "readdir";
    case 29: return "releasedir";
    case 30: return "fsyncdir";
    case 31: return "getlk";
    case 32: return "setlk";
    case 33: return "setlkw";
    case 34: return "access";
    case 35: return "create";
    case 36: return "interrupt";
    case 37: return "bmap";
    case 38: return "destroy";
    case 39: return "ioctl";
    case 40: return "poll";
    case 41: return "notify_reply";
    case 42: return "batch_forget";
    case 43: return "fallocate";
    case 44: return "readdirplus";
    case 45: return "rename2";
    case 46: return "lseek";
    case 47: return "copy_file_range";
    case 48: return "setupmapping";
    case 49: return "removemapping";
    case 50: return "syncfs";
    case 51: return "tmpfile";
    case 52: return "statx";
    case 53: return "copy_file_range_64";
    default: return "unknown";
  }
}

}  // namespace zest::abi
