// The one place entry memory comes from.
//
// With LARDER_USE_JEMALLOC: a private jemalloc (prefix je_larder_, see
// scripts/jemalloc.sh) in a dedicated arena, so cache entries neither share
// arenas with the rest of the library nor touch the host's malloc, and the
// same allocator serves C, C++, Python and Node hosts (it is built without
// initial-exec TLS, so the library can be dlopen'ed). Otherwise, malloc.
#include <atomic>
#include <cstdlib>

#include "entry.h"

#if LARDER_USE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

namespace larder::internal {
namespace {
// Entries currently allocated, process-wide. Touched on allocation and free
// only (never on a hit); tests use it to check that memory is given back.
std::atomic<int64_t> g_live_entries{0};

#if LARDER_USE_JEMALLOC
int ArenaFlags() {
  static const int flags = [] {
    unsigned arena = 0;
    size_t size = sizeof arena;
    if (je_larder_mallctl("arenas.create", &arena, &size, nullptr, 0) != 0) {
      return MALLOCX_TCACHE_NONE;  // fall back to jemalloc's automatic arenas
    }
    // A manual arena is not served by the automatic thread caches.
    return MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
  }();
  return flags;
}
#endif
}  // namespace

void* AllocateEntryMemory(size_t size) {
#if LARDER_USE_JEMALLOC
  void* p = je_larder_mallocx(size, ArenaFlags());
#else
  void* p = std::malloc(size);
#endif
  if (p != nullptr) g_live_entries.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void FreeEntryMemory(void* p, size_t size) {
  g_live_entries.fetch_sub(1, std::memory_order_relaxed);
#if LARDER_USE_JEMALLOC
  je_larder_sdallocx(p, size, ArenaFlags());
#else
  (void)size;
  std::free(p);
#endif
}

int64_t LiveEntryAllocations() { return g_live_entries.load(std::memory_order_relaxed); }

const char* AllocatorName() {
#if LARDER_USE_JEMALLOC
  return "jemalloc";
#else
  return "system";
#endif
}

}  // namespace larder::internal
