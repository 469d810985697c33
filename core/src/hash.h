#ifndef LARDER_CORE_SRC_HASH_H_
#define LARDER_CORE_SRC_HASH_H_

#include <cstdint>
#include <string_view>

// Header-only xxHash: no runtime library to link or to load.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace larder::internal {

// The top bits pick the stripe, the low 32 bits the home slot, bits 32..39
// the slot tag. Entries keep no hash: the index hashes an entry's key again
// to re-place or find it.
inline uint64_t HashKey(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_HASH_H_
