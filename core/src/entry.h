// One cache entry: a single allocation holding, for an entry that expires,
// its TtlBlock (expiry and timer-wheel links), then the header (an Entry*
// points here), the key bytes and the value bytes. See docs/design.md for the
// layout budget.
//
// Ownership: `refs` counts owners. The cache holds one reference from insert
// until the entry, after being unlinked, has passed its epoch grace period;
// each PinnedValue and each pending removal notification holds one more. The
// last Unref frees the memory.
//
// Mutability: key, value, lengths, charge and expiry are written before the
// entry is published in the index and never change afterwards, so lock-free
// readers may read them. The LRU and timer links belong to the owning stripe
// and are touched only under its lock; flags is atomic (see its comment).
#ifndef LARDER_CORE_SRC_ENTRY_H_
#define LARDER_CORE_SRC_ENTRY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>

namespace larder::internal {

struct ListNode {
  ListNode* prev;
  ListNode* next;
};

// Present, just before the Entry, only in entries that expire (kHasTtl): most
// caches hold many entries without a TTL, and moving the expiry and the
// wheel links here took an entry of a 20-byte key and a 100-byte value from
// jemalloc's 192-byte class to its 160-byte one (issue 11, item 4).
struct TtlBlock {
  int64_t expiry_nanos;  // != 0 (an injected clock may run below zero)
  // How long the load that produced the entry took (XFetch, which only
  // refreshes entries that expire); 0: unknown.
  uint32_t delta_micros;
  uint32_t unused;
  // Links in the stripe's timer wheel while the entry is linked; next is
  // nullptr otherwise. Last, so the wheel finds the Entry right after them.
  ListNode timer;
};

struct Entry {
  // First member: a ListNode* of the LRU list is an Entry*. Once an entry is
  // unlinked the same bytes chain it into its stripe's retired list.
  union {
    ListNode lru;
    struct {
      Entry* next;
      uint64_t epoch;
    } retired;
  };
  uint32_t value_size;
  // The low 32 bits of the key's hash (they give the home slot and the tag),
  // so eviction and index rebuilds never re-hash keys; or, for an entry with
  // a custom charge (kCustomCharge), that charge.
  uint32_t hash_or_charge;
  std::atomic<uint32_t> refs;
  uint16_t key_size;
  // kLinked while the entry is in its stripe's index and LRU list (changed
  // under the stripe lock); kCustomCharge and kHasTtl (fixed at creation);
  // kRefreshStarted (set once, without a lock, by the hit that starts an
  // early refresh).
  std::atomic<uint8_t> flags;
  uint8_t kind;  // kValue, kNegative (cached "not found") or kError (cached error message)
  char data[1];  // key_size + value_size bytes, starting at offsetof(Entry, data)

  static constexpr uint8_t kLinked = 1;
  static constexpr uint8_t kCustomCharge = 2;  // set at creation, never changes
  static constexpr uint8_t kRefreshStarted = 4;
  static constexpr uint8_t kHasTtl = 8;  // set at creation, never changes: a TtlBlock precedes
  static constexpr uint8_t kValue = 0;
  static constexpr uint8_t kNegative = 1;
  static constexpr uint8_t kError = 2;

  std::string_view key() const { return {data, key_size}; }
  std::string_view value() const { return {data + key_size, value_size}; }
  bool expires() const { return (flags.load(std::memory_order_relaxed) & kHasTtl) != 0; }
  // Only for an entry that expires().
  TtlBlock& ttl() { return reinterpret_cast<TtlBlock*>(this)[-1]; }
  const TtlBlock& ttl() const { return reinterpret_cast<const TtlBlock*>(this)[-1]; }
  int64_t expiry_nanos() const { return expires() ? ttl().expiry_nanos : 0; }   // 0: never
  uint32_t delta_micros() const { return expires() ? ttl().delta_micros : 0; }  // 0: unknown
  // True while the entry is in its stripe's timer wheel.
  bool in_wheel() const { return expires() && ttl().timer.next != nullptr; }
  size_t allocation_size() const {
    return AllocationSize(key_size, value_size, expires() ? sizeof(TtlBlock) : 0);
  }
  // The start of the allocation (the TtlBlock, if any).
  void* allocation() { return reinterpret_cast<char*>(this) - (expires() ? sizeof(TtlBlock) : 0); }
  bool ExpiredAt(int64_t now) const { return expires() && ttl().expiry_nanos <= now; }
  bool is_value() const { return kind == kValue; }
  bool linked() const { return (flags.load(std::memory_order_relaxed) & kLinked) != 0; }
  bool has_custom_charge() const {
    return (flags.load(std::memory_order_relaxed) & kCustomCharge) != 0;
  }
  // True for the one caller that gets to start this entry's early refresh:
  // a plain load first, so hits of a hot key near expiry mostly just read.
  bool TryStartRefresh() {
    if ((flags.load(std::memory_order_relaxed) & kRefreshStarted) != 0) return false;
    return (flags.fetch_or(kRefreshStarted, std::memory_order_relaxed) & kRefreshStarted) == 0;
  }
  void AllowRefresh() { flags.fetch_and(static_cast<uint8_t>(~kRefreshStarted)); }
  // Bytes counted toward the capacity.
  size_t charge() const;

  static size_t AllocationSize(size_t key_size, size_t value_size, size_t prefix) {
    return prefix + offsetof(Entry, data) + key_size + value_size;
  }
  static Entry* FromNode(ListNode* node) { return reinterpret_cast<Entry*>(node); }
  static Entry* FromTimer(ListNode* node) {
    return reinterpret_cast<Entry*>(reinterpret_cast<char*>(node) + sizeof(ListNode));
  }
};
static_assert(std::is_standard_layout_v<Entry>, "offsetof and FromNode need standard layout");
static_assert(offsetof(Entry, data) == 32, "what every entry needs (docs/design.md, Entries)");
static_assert(sizeof(TtlBlock) % alignof(Entry) == 0 &&
                  offsetof(TtlBlock, timer) + sizeof(ListNode) == sizeof(TtlBlock),
              "Entry::FromTimer: the wheel links end where the Entry starts");

// An entry's share of the index: slots are 8 bytes at a load factor between
// 1/2 and 3/4 (see slot_table.h), so at most about 16 bytes per entry.
inline constexpr size_t kIndexBytesPerEntry = 16;
// Bytes charged per entry on top of its key and value: one number for every
// entry (what users see as EntryOverhead()), so it counts the TtlBlock even
// for entries without one. A bound in bytes then never undercounts, and a
// Touch that gives an entry its first TTL keeps its charge.
inline constexpr size_t kEntryOverheadBytes =
    offsetof(Entry, data) + sizeof(TtlBlock) + kIndexBytesPerEntry;

inline size_t Entry::charge() const {
  return has_custom_charge() ? hash_or_charge : key_size + value_size + kEntryOverheadBytes;
}

// Allocation goes through these two functions only, so the allocator can be
// swapped (jemalloc arena or system malloc) in one place.
void* AllocateEntryMemory(size_t size);
void FreeEntryMemory(void* p, size_t size);
int64_t LiveEntryAllocations();  // entries allocated and not yet freed
// The allocator's own count of bytes in use (for tests and tools): the private
// jemalloc's stats.allocated, the sanitizer allocator's, or glibc's mallinfo2.
// Under jemalloc it counts entry memory only; otherwise the whole process.
size_t AllocatorBytesInUse();
const char* AllocatorName();  // "jemalloc" or "system"

// custom_charge 0 means "key + value + overhead". Returns nullptr when memory
// is exhausted. refs starts at 1 (the cache's).
inline Entry* NewEntry(std::string_view key, std::string_view value, int64_t expiry_nanos,
                       uint64_t hash, uint32_t custom_charge = 0, uint8_t kind = Entry::kValue,
                       uint32_t delta_micros = 0) {
  const size_t prefix = expiry_nanos != 0 ? sizeof(TtlBlock) : 0;
  const size_t size = Entry::AllocationSize(key.size(), value.size(), prefix);
  void* memory = AllocateEntryMemory(size);
  if (memory == nullptr) return nullptr;
  char* header = static_cast<char*>(memory) + prefix;
  if ((reinterpret_cast<uintptr_t>(header) >> 48) != 0) {
    // The index packs a 16-bit tag above 48-bit addresses (slot_table.h).
    FreeEntryMemory(memory, size);
    return nullptr;
  }
  if (prefix != 0) {
    auto* ttl = new (memory) TtlBlock;
    ttl->expiry_nanos = expiry_nanos;
    ttl->delta_micros = delta_micros;
    ttl->unused = 0;
    ttl->timer.prev = ttl->timer.next = nullptr;
  }
  Entry* e = new (header) Entry;
  e->lru.prev = e->lru.next = nullptr;
  e->value_size = static_cast<uint32_t>(value.size());
  e->hash_or_charge = custom_charge != 0 ? custom_charge : static_cast<uint32_t>(hash);
  e->refs.store(1, std::memory_order_relaxed);
  e->kind = kind;
  e->key_size = static_cast<uint16_t>(key.size());
  e->flags.store(static_cast<uint8_t>((custom_charge != 0 ? Entry::kCustomCharge : 0) |
                                      (prefix != 0 ? Entry::kHasTtl : 0)),
                 std::memory_order_relaxed);
  if (!key.empty()) std::memcpy(e->data, key.data(), key.size());
  if (!value.empty()) std::memcpy(e->data + key.size(), value.data(), value.size());
  return e;
}

inline void Ref(Entry* e) { e->refs.fetch_add(1, std::memory_order_relaxed); }

inline void Unref(Entry* e) {
  if (e->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    const size_t size = e->allocation_size();
    void* memory = e->allocation();
    e->~Entry();
    FreeEntryMemory(memory, size);
  }
}

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_ENTRY_H_
