// CRC-32C (Castagnoli), for journal records. Written by hand because Debian
// 12 packages no CRC-32C library for C++ (zlib's crc32 is the other
// polynomial, and Abseil's absl::crc32c arrived after the packaged 20220623).
// Uses the SSE4.2 instruction when the CPU has it, a table otherwise; both
// give the standard CRC-32C (check value of "123456789": 0xE3069283).
#ifndef LARDER_CORE_SRC_CRC32C_H_
#define LARDER_CORE_SRC_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace larder::internal {

uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_CRC32C_H_
