// Where the key and value bytes of entries too large for a slab slot come
// from (entry_slabs.h holds every entry's header and the small entries).
//
// With LARDER_USE_JEMALLOC: a private jemalloc (prefix je_larder_, see
// scripts/jemalloc.sh) in a dedicated arena, so cache entries neither share
// arenas with the rest of the library nor touch the host's malloc, and the
// same allocator serves C, C++, Python and Node hosts (it is built without
// initial-exec TLS, so the library can be dlopen'ed). Otherwise, malloc.
#include <malloc.h>
#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <string_view>

#include "entry.h"
#include "entry_slabs.h"

#if LARDER_USE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LARDER_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LARDER_SANITIZER_ALLOCATOR 1
#endif
#endif
#if LARDER_SANITIZER_ALLOCATOR
#include <sanitizer/allocator_interface.h>
#endif

namespace larder::internal {
namespace {
#if LARDER_USE_JEMALLOC
// LARDER_ALLOCATOR=system in the environment switches a jemalloc build back
// to malloc at startup (read once), for side-by-side measurements.
bool UseSystemMalloc() {
  static const bool system = [] {
    const char* v = std::getenv("LARDER_ALLOCATOR");
    return v != nullptr && std::string_view(v) == "system";
  }();
  return system;
}

int ArenaFlag() {
  static const int flag = [] {
    unsigned arena = 0;
    size_t size = sizeof arena;
    if (je_larder_mallctl("arenas.create", &arena, &size, nullptr, 0) != 0) return 0;
    return MALLOCX_ARENA(arena);
  }();
  return flag;
}

// A manual arena is not served by jemalloc's automatic thread caches, and
// without one every allocation takes the arena's bin lock (measured: the
// 90%-get workload ran at 58% of glibc's speed). So each thread gets an
// explicit thread cache, destroyed when the thread exits.
//
// The state is a trivially destructible thread_local, so it stays readable
// during other thread_local destructors (which may free entries); a separate
// object's destructor retires the cache and marks the state. (Marking fields
// of the object being destroyed would not work: the compiler may drop stores
// to an object whose lifetime is ending.)
struct ThreadCacheState {
  unsigned id;
  bool created;
  bool dead;
};
thread_local ThreadCacheState t_cache = {0, false, false};

struct ThreadCacheRetirer {
  ~ThreadCacheRetirer() {
    if (t_cache.created) {
      unsigned id = t_cache.id;
      je_larder_mallctl("tcache.destroy", nullptr, nullptr, &id, sizeof id);
    }
    t_cache.created = false;
    t_cache.dead = true;  // later frees on this thread go without a cache
  }
};

int ArenaFlags() {
  ThreadCacheState& tc = t_cache;
  if (!tc.created && !tc.dead) {
    thread_local ThreadCacheRetirer retirer;  // registered before the cache exists
    (void)retirer;
    size_t size = sizeof tc.id;
    if (je_larder_mallctl("tcache.create", &tc.id, &size, nullptr, 0) == 0) {
      tc.created = true;
    } else {
      tc.dead = true;  // out of explicit caches: go without
    }
  }
  return ArenaFlag() | (tc.created ? MALLOCX_TCACHE(tc.id) : MALLOCX_TCACHE_NONE);
}
#endif
}  // namespace

void* AllocateEntryMemory(size_t size) {
#if LARDER_USE_JEMALLOC
  void* p = UseSystemMalloc() ? std::malloc(size) : je_larder_mallocx(size, ArenaFlags());
#else
  void* p = std::malloc(size);
#endif
  return p;
}

void FreeEntryMemory(void* p, size_t size) {
#if LARDER_USE_JEMALLOC
  if (UseSystemMalloc()) {
    std::free(p);
  } else {
    je_larder_sdallocx(p, size, ArenaFlags());
  }
#else
  (void)size;
  std::free(p);
#endif
}

int64_t LiveEntryAllocations() { return LiveSlots(); }

namespace {
// What the out-of-line allocator counts (see AllocatorBytesInUse).
size_t OutOfLineBytesInUse() {
#if LARDER_USE_JEMALLOC
  if (!UseSystemMalloc()) {
    // Statistics are refreshed by writing the epoch.
    uint64_t epoch = 1;
    size_t size = sizeof epoch;
    je_larder_mallctl("epoch", &epoch, &size, &epoch, size);
    size_t allocated = 0;
    size = sizeof allocated;
    if (je_larder_mallctl("stats.allocated", &allocated, &size, nullptr, 0) == 0) return allocated;
    return 0;
  }
#endif
#if LARDER_SANITIZER_ALLOCATOR
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#endif
}
}  // namespace

size_t AllocatorBytesInUse() { return SlabBytesHeld() + OutOfLineBytesInUse(); }

const char* AllocatorName() {
#if LARDER_USE_JEMALLOC
  return UseSystemMalloc() ? "system" : "jemalloc";
#else
  return "system";
#endif
}

}  // namespace larder::internal
