#ifndef LARDER_CORE_SRC_HASH_H_
#define LARDER_CORE_SRC_HASH_H_

#include <cstdint>
#include <string_view>

// Header-only xxHash: no runtime library to link or to load.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace larder::internal {

// The top bits pick the stripe, the low bits the home slot, bits 16..31 the
// slot tag. Entries store the low 32 bits (Entry::hash_or_charge), enough
// for the index to re-place an entry without hashing its key again.
inline uint64_t HashKey(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_HASH_H_
