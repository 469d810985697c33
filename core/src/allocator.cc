// The one place entry memory comes from. System malloc for now; the jemalloc
// arena (issue: benchmarks and jemalloc) plugs in here.
#include <atomic>
#include <cstdlib>

#include "entry.h"

namespace larder::internal {
namespace {
// Entries currently allocated, process-wide. Touched on allocation and free
// only (never on a hit); tests use it to check that memory is given back.
std::atomic<int64_t> g_live_entries{0};
}  // namespace

void* AllocateEntryMemory(size_t size) {
  void* p = std::malloc(size);
  if (p != nullptr) g_live_entries.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void FreeEntryMemory(void* p, size_t /*size*/) {
  g_live_entries.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}

int64_t LiveEntryAllocations() { return g_live_entries.load(std::memory_order_relaxed); }

}  // namespace larder::internal
