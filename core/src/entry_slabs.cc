// Slabs of entry slots (entry_slabs.h). Written here rather than taken from
// jemalloc because jemalloc's size classes are the cost being removed: its
// classes step by 32 bytes from 128 to 256, so a 136-byte entry took 160.
// jemalloc still serves the large keys and values stored outside the slabs.
//
// Layout: the region is reserved PROT_NONE and made writable 2 MiB at a time
// as slabs are first used. A slab starts with a SlabHeader; its slots all
// have one size (one class per multiple of 8 bytes). Free slots form a list
// through their first 4 bytes; never-used ones are handed out by a bump
// offset, so a new slab touches its pages only as it fills.
//
// Each shard keeps, per class, a list of its slabs that have a free slot. A
// slab belongs to the shard that created it until it empties: then, unless
// it is the only slab of its class in the list, its pages go back to the
// system (MADV_DONTNEED) and the slab to the region's free stack, for any
// class of any shard. So memory held is about what the slots need, plus at
// most one empty slab per shard and class.
#include "entry_slabs.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <mutex>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define LARDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LARDER_ASAN 1
#endif
#endif
#if LARDER_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace larder::internal {

char* g_entry_region = nullptr;

namespace {

constexpr size_t kClasses = kMaxSlabAllocation / kEntryGranule;
constexpr uint32_t kHeaderBytes = 64;
constexpr uint32_t kNoSlab = UINT32_MAX;
constexpr size_t kCommitBytes = size_t{2} << 20;
constexpr size_t kShards = 32;
// 2^32 references of 8 bytes: the most the region may span.
constexpr size_t kLargestRegion = (size_t{1} << 32) * kEntryGranule;
constexpr size_t kSmallestRegion = size_t{256} << 20;

// Under AddressSanitizer the slots are poisoned while free, so a use of a
// freed entry is reported as it would be for malloc's memory.
void Poison(void* p, size_t n) {
#if LARDER_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}
void Unpoison(void* p, size_t n) {
#if LARDER_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

// A lock held for a few list operations. Not absl::Mutex: a child process
// must be able to release what its parent's fork handler took, and a spin
// lock has no waiter queue naming the parent's threads.
class SpinLock {
 public:
  void Lock() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          sched_yield();  // the holder may have been preempted
        }
      }
    }
  }
  void Unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

struct SlabHeader {
  uint32_t free_head;  // offset of the first free slot; 0: none
  uint32_t bump;       // offset of the first never-used slot
  uint32_t live;       // slots in use
  uint32_t slot_size;
  uint32_t shard;
  uint32_t prev, next;  // neighbours in the shard's list for the class
  bool listed;          // in that list (it has a free slot)
};
static_assert(sizeof(SlabHeader) <= kHeaderBytes);

struct alignas(64) Shard {
  SpinLock lock;
  std::atomic<int64_t> live{0};  // written under lock, read without
  uint32_t with_room[kClasses];  // first slab with a free slot, per class
};

// Region-wide state, under g_region_lock.
SpinLock g_region_lock;
void* g_mapping = nullptr;  // the reservation as mmap returned it (g_entry_region is aligned)
size_t g_mapping_bytes = 0;
size_t g_region_bytes = 0;
size_t g_region_slabs = 0;
size_t g_next_slab = 0;        // slabs [0, g_next_slab) were handed out at least once
size_t g_committed_slabs = 0;  // slabs made writable
// Given back, pages returned. Never destroyed: a host's static cache may
// free its entries after this file's static objects are gone.
std::vector<uint32_t>* g_free_slabs = nullptr;
std::atomic<size_t> g_slabs_held{0};
Shard g_shards[kShards];
std::once_flag g_region_once;

SlabHeader* Slab(uint32_t n) {
  return reinterpret_cast<SlabHeader*>(g_entry_region + size_t{n} * kSlabBytes);
}
uint32_t SlabNumberOf(const void* p) {
  return static_cast<uint32_t>(static_cast<size_t>(static_cast<const char*>(p) - g_entry_region) /
                               kSlabBytes);
}

void LockAll() {
  for (Shard& s : g_shards) s.lock.Lock();
  g_region_lock.Lock();
}
void UnlockAll() {
  g_region_lock.Unlock();
  for (Shard& s : g_shards) s.lock.Unlock();
}

void ReserveRegion() {
  for (Shard& s : g_shards) {
    for (uint32_t& head : s.with_room) head = kNoSlab;
  }
  for (size_t bytes = kLargestRegion; bytes >= kSmallestRegion; bytes /= 2) {
    // One slab more, to align the start to a slab (a slot's slab is then its
    // address rounded down).
    void* p = mmap(nullptr, bytes + kSlabBytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) continue;  // a host limit on address space: try less
    const uintptr_t start = (reinterpret_cast<uintptr_t>(p) + kSlabBytes - 1) & ~(kSlabBytes - 1);
    g_mapping = p;
    g_mapping_bytes = bytes + kSlabBytes;
    g_entry_region = reinterpret_cast<char*>(start);
    g_region_bytes = bytes;
    g_region_slabs = bytes / kSlabBytes;
    break;
  }
  g_free_slabs = new std::vector<uint32_t>;
  // Registered once per load of the library; glibc drops a library's fork
  // handlers when it is unloaded.
  pthread_atfork(&LockAll, &UnlockAll, &UnlockAll);
}

// Under g_region_lock: a slab for a shard, its pages untouched; kNoSlab when
// the region is full or the system refuses memory.
uint32_t TakeSlabLocked() {
  if (!g_free_slabs->empty()) {
    const uint32_t n = g_free_slabs->back();
    g_free_slabs->pop_back();
    return n;
  }
  if (g_next_slab == g_region_slabs) return kNoSlab;
  if (g_next_slab == g_committed_slabs) {
    const size_t step = std::min(kCommitBytes / kSlabBytes, g_region_slabs - g_committed_slabs);
    if (mprotect(g_entry_region + g_committed_slabs * kSlabBytes, step * kSlabBytes,
                 PROT_READ | PROT_WRITE) != 0) {
      return kNoSlab;  // ENOMEM: the system's commit limit
    }
    g_committed_slabs += step;
  }
  return static_cast<uint32_t>(g_next_slab++);
}

uint32_t NewSlab(uint32_t shard, uint32_t slot_size) {
  g_region_lock.Lock();
  const uint32_t n = g_entry_region == nullptr ? kNoSlab : TakeSlabLocked();
  g_region_lock.Unlock();
  if (n == kNoSlab) return kNoSlab;
  g_slabs_held.fetch_add(1, std::memory_order_relaxed);
  SlabHeader* h = Slab(n);
  Unpoison(h, kSlabBytes);
  h->free_head = 0;
  h->bump = kHeaderBytes;
  h->live = 0;
  h->slot_size = slot_size;
  h->shard = shard;
  h->prev = h->next = kNoSlab;
  h->listed = false;
  Poison(reinterpret_cast<char*>(h) + kHeaderBytes, kSlabBytes - kHeaderBytes);
  return n;
}

void GiveBackSlab(uint32_t n) {
  void* start = Slab(n);
  madvise(start, kSlabBytes, MADV_DONTNEED);  // reads as zeros until reused
  Poison(start, kSlabBytes);                  // a stale entry pointer into it is reported
  g_slabs_held.fetch_sub(1, std::memory_order_relaxed);
  g_region_lock.Lock();
  try {
    g_free_slabs->push_back(n);
  } catch (const std::bad_alloc&) {
    // Not reused, but its pages are returned already.
  }
  g_region_lock.Unlock();
}

// Under the shard's lock.
void Link(Shard& s, size_t cls, uint32_t n, SlabHeader* h) {
  h->prev = kNoSlab;
  h->next = s.with_room[cls];
  if (h->next != kNoSlab) Slab(h->next)->prev = n;
  s.with_room[cls] = n;
  h->listed = true;
}
void Unlink(Shard& s, size_t cls, SlabHeader* h) {
  if (h->prev != kNoSlab) {
    Slab(h->prev)->next = h->next;
  } else {
    s.with_room[cls] = h->next;
  }
  if (h->next != kNoSlab) Slab(h->next)->prev = h->prev;
  h->prev = h->next = kNoSlab;
  h->listed = false;
}

size_t ShardHere() {
  const int cpu = sched_getcpu();  // glibc reads it from rseq: no system call
  return cpu < 0 ? 0 : static_cast<size_t>(cpu) % kShards;
}

// At unload (dlclose) or exit: with no slot in use, the region goes back.
// With slots in use (a cache the host never destroyed) it stays.
struct RegionReleaser {
  ~RegionReleaser() {
    if (g_entry_region == nullptr) return;
    LockAll();
    int64_t live = 0;
    for (Shard& s : g_shards) live += s.live.load(std::memory_order_relaxed);
    if (live == 0) {
      // Only slabs ever made writable were poisoned; leave no poison behind
      // for whatever is mapped here next.
      Unpoison(g_entry_region, g_committed_slabs * kSlabBytes);
      munmap(g_mapping, g_mapping_bytes);
      g_entry_region = nullptr;  // later allocations fail instead of using it
      g_slabs_held.store(0, std::memory_order_relaxed);
      for (Shard& s : g_shards) {
        for (uint32_t& head : s.with_room) head = kNoSlab;
      }
    }
    UnlockAll();
  }
} g_region_releaser;

}  // namespace

void* AllocateSlot(size_t size) {
  assert(size > 0 && size <= kMaxSlabAllocation);
  std::call_once(g_region_once, ReserveRegion);
  const size_t slot_size = (size + kEntryGranule - 1) & ~(kEntryGranule - 1);
  const size_t cls = slot_size / kEntryGranule - 1;
  const size_t shard_index = ShardHere();
  Shard& s = g_shards[shard_index];
  s.lock.Lock();
  uint32_t n = s.with_room[cls];
  if (n == kNoSlab) {
    n = NewSlab(static_cast<uint32_t>(shard_index), static_cast<uint32_t>(slot_size));
    if (n == kNoSlab) {
      s.lock.Unlock();
      return nullptr;
    }
    Link(s, cls, n, Slab(n));
  }
  SlabHeader* h = Slab(n);
  char* base = reinterpret_cast<char*>(h);
  char* p;
  if (h->free_head != 0) {
    p = base + h->free_head;
    Unpoison(p, sizeof(uint32_t));
    h->free_head = *reinterpret_cast<uint32_t*>(p);
  } else {
    p = base + h->bump;
    h->bump += static_cast<uint32_t>(slot_size);
  }
  ++h->live;
  if (h->free_head == 0 && h->bump + slot_size > kSlabBytes) Unlink(s, cls, h);  // full
  s.live.store(s.live.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  s.lock.Unlock();
  // Exactly the bytes asked for: an overrun into the slot's padding is
  // reported too.
  Poison(p, slot_size);
  Unpoison(p, size);
  return p;
}

void FreeSlot(void* p) {
  const uint32_t n = SlabNumberOf(p);
  SlabHeader* h = Slab(n);
  Shard& s = g_shards[h->shard];
  const size_t slot_size = h->slot_size;  // fixed while the slab holds a slot
  const size_t cls = slot_size / kEntryGranule - 1;
  bool give_back = false;
  s.lock.Lock();
  Unpoison(p, sizeof(uint32_t));  // the slot may have been smaller than the link
  *static_cast<uint32_t*>(p) = h->free_head;
  h->free_head = static_cast<uint32_t>(static_cast<char*>(p) - reinterpret_cast<char*>(h));
  --h->live;
  s.live.store(s.live.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  if (!h->listed) {
    Link(s, cls, n, h);
  } else if (h->live == 0 && !(s.with_room[cls] == n && h->next == kNoSlab)) {
    Unlink(s, cls, h);  // empty, and not the class's last slab with room
    give_back = true;
  }
  Poison(p, slot_size);
  s.lock.Unlock();
  if (give_back) GiveBackSlab(n);
}

int64_t LiveSlots() {
  int64_t live = 0;
  for (const Shard& s : g_shards) live += s.live.load(std::memory_order_relaxed);
  return live;
}

size_t SlabBytesHeld() { return g_slabs_held.load(std::memory_order_relaxed) * kSlabBytes; }

size_t EntryRegionBytes() {
  g_region_lock.Lock();
  const size_t bytes = g_entry_region == nullptr ? 0 : g_region_bytes;
  g_region_lock.Unlock();
  return bytes;
}

}  // namespace larder::internal
