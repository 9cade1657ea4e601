#include "tools/size_arg.h"

#include <cctype>
#include <charconv>

namespace zest::tools {

bool parse_size(std::string_view text, uint64_t* out) {
  uint64_t value = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), value);
  if (r.ec != std::errc() || r.ptr == text.data()) return false;
  std::string_view unit(r.ptr, text.data() + text.size() - r.ptr);
  if (unit.ends_with("iB")) unit.remove_suffix(2);
  else if (unit.size() > 1 && unit.ends_with("B")) unit.remove_suffix(1);
  int shift = 0;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit.size() == 1) {
    switch (std::toupper(static_cast<unsigned char>(unit[0]))) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      case 'T': shift = 40; break;
      default: return false;
    }
  } else {
    return false;
  }
  if (shift && value > (UINT64_MAX >> shift)) return false;
  *out = value << shift;
  return true;
}

}  // namespace zest::tools
