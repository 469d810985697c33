// The one place entry memory comes from. System malloc for now; the jemalloc
// arena (issue: benchmarks and jemalloc) plugs in here.
#include <cstdlib>

#include "entry.h"

namespace larder::internal {

void* AllocateEntryMemory(size_t size) { return std::malloc(size); }
void FreeEntryMemory(void* p, size_t /*size*/) { std::free(p); }

}  // namespace larder::internal
