// zest mkfs / zest fsck / zest stat: the pool tools of pmfs.
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "pmem/pool.h"
#include "pmfs/format.h"
#include "pmfs/fsck.h"
#include "pmfs/layout.h"
#include "tools/commands.h"
#include "tools/size_arg.h"

namespace zest::tools {
namespace {

void error(const std::string& what) { fmt::print(stderr, "zest: {}\n", what); }

std::string human(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string uuid_string(const uint8_t* u) {
  return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
                     "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
                     u[11], u[12], u[13], u[14], u[15]);
}

struct MkfsArgs {
  std::string pool;
  std::string size = "1G";
  std::string label;
  uint64_t journal_blocks = 256;
};

int run_mkfs(const MkfsArgs& a) {
  uint64_t size = 0;
  if (!parse_size(a.size, &size)) {
    error(fmt::format("mkfs: bad --size '{}' (e.g. 1G, 512M)", a.size));
    return 2;
  }
  size = size / pmfs::kBlockSize * pmfs::kBlockSize;
  pmfs::MkfsOptions o;
  o.label = a.label;
  o.journal_blocks = a.journal_blocks;
  o.root_uid = ::getuid();
  o.root_gid = ::getgid();
  std::string why;
  if (auto r = pmfs::mkfs(a.pool, size, o, &why); !r) {
    error(fmt::format("mkfs: {}: {}", a.pool, why));
    return 1;
  }
  fmt::print("zest: made a pmfs pool of {} at {}\n", human(size), a.pool);
  return 0;
}

int run_fsck(const std::string& pool, bool repair, bool verbose) {
  pmfs::FsckOptions o;
  o.repair = repair;
  o.verbose = verbose;
  o.progress = [](const std::string& line) { fmt::print(stderr, "fsck: {}\n", line); };
  std::string why;
  auto r = pmfs::fsck(pool, o, &why);
  if (!r) {
    error(fmt::format("fsck: {}: {}", pool, why));
    return 8;
  }
  const pmfs::FsckReport& rep = *r;
  if (!verbose) {
    for (auto& e : rep.errors) fmt::print("error: {}\n", e);
    for (auto& e : rep.repairs) fmt::print("repaired: {}\n", e);
  }
  for (auto& n : rep.notes) fmt::print("note: {}\n", n);
  fmt::print("{}: {} inodes, {} directory entries, {} extents, {} blocks in use; "
             "{} errors, {} repaired, {} left\n",
             pool, rep.inodes_checked, rep.dirents_checked, rep.extents_checked,
             rep.blocks_in_use, rep.errors.size(), rep.repairs.size(), rep.uncorrected.size());
  return rep.exit_code();
}

int run_stat(const std::string& path, const std::string& durability_text) {
  pmem::OpenOptions oo;
  oo.read_only = true;
  oo.lock = false;  // works on a mounted pool too
  if (!pmem::parse_durability(durability_text, &oo.durability)) {
    error(fmt::format("stat: bad --durability '{}' (auto, cache-line, page)", durability_text));
    return 2;
  }
  std::string why;
  auto pool = pmem::PoolMap::open(path, oo, &why);
  if (!pool) {
    error(fmt::format("stat: {}: {}", path, why));
    return 1;
  }
  const pmfs::Superblock* sb = nullptr;
  std::string bad_a, bad_b;
  const auto* a = pool->at<pmfs::Superblock>(0);
  const auto* b = pool->size() >= 2 * pmfs::kBlockSize
                      ? pool->at<pmfs::Superblock>(pmfs::kBlockSize) : nullptr;
  if (pool->size() >= sizeof(pmfs::Superblock) &&
      pmfs::superblock_valid(*a, pool->size(), &bad_a)) {
    sb = a;
  } else if (b && pmfs::superblock_valid(*b, pool->size(), &bad_b)) {
    sb = b;
  }
  if (!sb) {
    error(fmt::format("stat: {}: {}", path, bad_a.empty() ? "too small to be a pmfs pool" : bad_a));
    return 1;
  }
  time_t made = static_cast<time_t>(sb->mkfs_time_ns / 1000000000ull);
  char when[64];
  strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&made));
  std::string label(reinterpret_cast<const char*>(sb->label),
                    strnlen(reinterpret_cast<const char*>(sb->label), sizeof(sb->label)));
  fmt::print("pool:        {}\n", path);
  fmt::print("format:      pmfs version {}, block size {}\n", sb->version, sb->block_size);
  fmt::print("uuid:        {}\n", uuid_string(sb->uuid));
  if (!label.empty()) fmt::print("label:       {}\n", label);
  fmt::print("created:     {}\n", when);
  fmt::print("size:        {} ({} blocks)\n", human(sb->pool_size), sb->total_blocks);
  fmt::print("journal:     blocks {}..{} ({})\n", sb->journal_start,
             sb->journal_start + sb->journal_blocks - 1, human(sb->journal_blocks * pmfs::kBlockSize));
  fmt::print("inode table: blocks {}..{} ({} inodes)\n", sb->itable_start,
             sb->itable_start + sb->itable_blocks - 1, sb->inode_count);
  fmt::print("data:        blocks {}..{} ({})\n", sb->data_start, sb->total_blocks - 1,
             human((sb->total_blocks - sb->data_start) * pmfs::kBlockSize));
  fmt::print("superblocks: primary {}, secondary {}\n", sb == a ? "valid" : "DAMAGED (" + bad_a + ")",
             b && pmfs::superblock_valid(*b, pool->size(), &bad_b) ? "valid" : "DAMAGED (" + bad_b + ")");
  fmt::print("durability:  {}\n", pool->describe());
  // Usage by walking the metadata (the allocator is rebuilt at mount, not
  // stored). On a mounted pool this is a snapshot that may be mid-update.
  auto report = pmfs::fsck_image(std::span<const std::byte>(pool->base(), pool->size()));
  uint64_t data_blocks = sb->total_blocks - sb->data_start;
  fmt::print("usage:       {} of {} data blocks in use ({}), {} of {} inodes\n",
             report.blocks_in_use, data_blocks, human(report.blocks_in_use * pmfs::kBlockSize),
             report.inodes_checked, sb->inode_count);
  if (!report.errors.empty())
    fmt::print("consistency: {} problems (run zest fsck {})\n", report.errors.size(), path);
  return 0;
}

}  // namespace

std::function<int()> add_mkfs_command(CLI::App& app) {
  auto a = std::make_shared<MkfsArgs>();
  CLI::App* cmd = app.add_subcommand("mkfs", "Create a pmfs pool: zest mkfs [--size N] POOL");
  cmd->add_option("POOL", a->pool, "Pool file to create (sparse), or a /dev/dax device")->required();
  cmd->add_option("-s,--size", a->size, "Pool size, e.g. 1G, 512M (default 1G)");
  cmd->add_option("-L,--label", a->label, "A label of up to 31 bytes");
  cmd->add_option("--journal-blocks", a->journal_blocks, "Journal size in 4 KiB blocks (default 256)");
  return [a]() { return run_mkfs(*a); };
}

std::function<int()> add_fsck_command(CLI::App& app) {
  auto pool = std::make_shared<std::string>();
  auto repair = std::make_shared<bool>(false);
  auto verbose = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "fsck", "Check a pmfs pool (exit: 0 clean, 1 corrected, 4 uncorrected, 8 operational error)");
  cmd->add_option("POOL", *pool, "Pool to check (must not be mounted)")->required();
  cmd->add_flag("-r,--repair", *repair, "Repair what can be repaired");
  cmd->add_flag("-v,--verbose", *verbose, "Print every problem as it is found");
  return [pool, repair, verbose]() { return run_fsck(*pool, *repair, *verbose); };
}

std::function<int()> add_stat_command(CLI::App& app) {
  auto pool = std::make_shared<std::string>();
  auto durability = std::make_shared<std::string>("auto");
  CLI::App* cmd = app.add_subcommand("stat", "Show a pmfs pool: format, usage, durability");
  cmd->add_option("POOL", *pool, "Pool to describe (may be mounted)")->required();
  cmd->add_option("--durability", *durability,
                  "Durability mode to describe: auto, cache-line, page");
  return [pool, durability]() { return run_stat(*pool, *durability); };
}

}  // namespace zest::tools
