// Check: one named conformance scenario (see probe.h for how it is judged).
//
// The checks live in four files by subject: checks_files.cc (data: create,
// read, write, append, truncate, sparse files, fallocate, copy_file_range,
// mmap, sync), checks_dirs.cc (directories, readdir, names, error paths),
// checks_links.cc (rename, hard links, symbolic links, special files) and
// checks_attrs.cc (xattrs, permissions and ownership, timestamps).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "conformance/probe.h"

namespace zest::conformance {

struct Check {
  std::string name;         // "rename.exchange": subject.case
  std::string what;         // one line for --list and docs
  bool needs_root = false;  // changes users (setfsuid) or ownership
  std::function<void(Probe&)> run;
};

// Every check, in the order they run.
std::vector<Check> AllChecks();

void AddFileChecks(std::vector<Check>* out);
void AddDirChecks(std::vector<Check>* out);
void AddLinkChecks(std::vector<Check>* out);
void AddAttrChecks(std::vector<Check>* out);

}  // namespace zest::conformance
