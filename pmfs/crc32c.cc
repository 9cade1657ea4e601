#include <isa-l/crc.h>

#include "pmfs/layout.h"

namespace zest::pmfs {

uint32_t crc32c(const void* data, size_t len, uint32_t seed) {
  // ISA-L's iSCSI CRC is CRC32C; it takes and returns the inverted form,
  // so chaining calls with the previous result as seed works as expected.
  return crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)),
                     static_cast<int>(len), seed);
}

}  // namespace zest::pmfs
