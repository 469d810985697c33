// Where entries live: fixed-size slots in 64 KiB slabs carved from one
// address range that the process reserves once, so that an entry is named
// by a 32-bit reference (its offset in 8-byte units) instead of a pointer.
// The LRU links and the index then take 4 bytes per reference, and a slot
// is the entry's exact size rounded to 8 bytes, where malloc's classes
// round a 152-byte entry to 160 (jemalloc) or add a 16-byte header (glibc).
// Issue 11, item 4; docs/design.md, "Entry memory".
//
// Only entries of at most kMaxSlabAllocation bytes are stored whole in a
// slot; a larger one keeps its header in a slot and its key and value in an
// allocation of jemalloc (or malloc) that the header points to (entry.h).
//
// Threads: AllocateSlot takes the slab shard of the CPU it runs on, FreeSlot
// the shard of the slot's slab (a free may come from any thread: the last
// unpin of a value). Each shard is a spin lock held for a few list
// operations; fork() waits for all of them (pthread_atfork), so a child
// inherits consistent slabs.
#ifndef LARDER_CORE_SRC_ENTRY_SLABS_H_
#define LARDER_CORE_SRC_ENTRY_SLABS_H_

#include <cstddef>
#include <cstdint>

namespace larder::internal {

// An entry's offset in the region in units of kEntryGranule; 0 names none
// (offset 0 is the first slab's header, which never holds an entry).
using EntryRef = uint32_t;
inline constexpr EntryRef kNoEntry = 0;
inline constexpr size_t kEntryGranule = 8;
inline constexpr size_t kSlabBytes = size_t{64} << 10;
inline constexpr size_t kMaxSlabAllocation = 512;

// The region's start, set once before the first slot is handed out (and so
// before any reference exists); 32 GiB of address space where the host
// allows it (the most 32-bit references in 8-byte units can name).
extern char* g_entry_region;

inline void* SlotAt(EntryRef ref) { return g_entry_region + uintptr_t{ref} * kEntryGranule; }
inline EntryRef RefOfSlot(const void* p) {
  return static_cast<EntryRef>(
      static_cast<uintptr_t>(static_cast<const char*>(p) - g_entry_region) / kEntryGranule);
}

// size in (0, kMaxSlabAllocation]; the slot is size rounded up to a multiple
// of kEntryGranule and 8-byte aligned. nullptr when the region or memory is
// exhausted.
void* AllocateSlot(size_t size);
// p as returned by AllocateSlot; any thread.
void FreeSlot(void* p);
// Slots allocated and not yet freed, process-wide.
int64_t LiveSlots();
// Bytes of the slabs that hold slots or wait, emptied, for reuse by a shard
// (a slab given back to the region is not counted: its pages were returned).
size_t SlabBytesHeld();
// The address range reserved (0 before the first allocation).
size_t EntryRegionBytes();

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_ENTRY_SLABS_H_
