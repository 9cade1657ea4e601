// Parsing of human sizes for the tools: "4096", "64K", "512M", "1G", "2T"
// (binary units, optional trailing "iB" or "B").
#pragma once

#include <cstdint>
#include <string_view>

namespace zest::tools {

// False if `text` is not a size or overflows 64 bits.
bool parse_size(std::string_view text, uint64_t* out);

}  // namespace zest::tools
