// One cache entry: a slot (entry_slabs.h) holding, for an entry with a custom
// charge, its ChargeBlock; for an entry that expires, its TtlBlock (expiry
// and timer-wheel links); then the 16-byte header (an Entry* points here),
// and the key and value bytes, or, for an entry too large for a slot, an
// OutOfLine block naming where they are. See docs/design.md, "Entries".
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

#include "entry_slabs.h"

namespace larder::internal {

// Present, just before the Entry, only in entries that expire (kHasTtl): most
// caches hold many entries without a TTL, and moving the expiry and the
// wheel links here took an entry of a 20-byte key and a 100-byte value from
// jemalloc's 192-byte class to its 160-byte one (issue 11, item 4).
struct TtlBlock {
  int64_t expiry_nanos;  // != 0 (an injected clock may run below zero)
  // How long the load that produced the entry took (XFetch, which only
  // refreshes entries that expire); 0: unknown.
  uint32_t delta_micros;
  // The entry's neighbours in its timer-wheel bucket, a circular list of
  // entries (timer_wheel.h); timer_next is kNoEntry while the entry is not in
  // the wheel.
  EntryRef timer_prev;
  EntryRef timer_next;
  uint16_t timer_bucket;  // level * 64 + index of that bucket, while in the wheel
  uint16_t unused;
};

// First in the slot, only in entries with a custom charge (kCustomCharge).
struct ChargeBlock {
  uint32_t charge;
  uint32_t unused;
};

// In place of the key and value of an entry that does not fit a slot
// (kOutOfLine): they are in one allocation of the entry allocator
// (AllocateEntryMemory), key first.
struct OutOfLine {
  char* bytes;
  uint32_t key_size;
  uint32_t value_size;
};

struct Entry {
  // First member. While linked: the neighbours in the stripe's LRU list as
  // 32-bit references (kNoEntry at the ends). Once unlinked the same bytes
  // chain the entry into its stripe's retired list, with the low 32 bits of
  // the epoch it was retired in (GracePeriodEnded).
  union {
    struct {
      EntryRef prev;
      EntryRef next;
    } lru;
    struct {
      EntryRef next;
      uint32_t epoch;
    } retired;
  };
  std::atomic<uint32_t> refs;
  uint8_t key_size;  // these two only without kOutOfLine (OutOfLine has them)
  // kLinked while the entry is in its stripe's index and LRU list (changed
  // under the stripe lock); kCustomCharge, kHasTtl, kOutOfLine and the kind
  // (bits 5 and 6) fixed at creation; kRefreshStarted (set once, without a
  // lock, by the hit that starts an early refresh).
  std::atomic<uint8_t> flags;
  uint16_t value_size;
  char data[1];  // key_size + value_size bytes, or an OutOfLine

  static constexpr uint8_t kLinked = 1;
  static constexpr uint8_t kCustomCharge = 2;  // set at creation: a ChargeBlock comes first
  static constexpr uint8_t kRefreshStarted = 4;
  static constexpr uint8_t kHasTtl = 8;      // set at creation: a TtlBlock precedes the header
  static constexpr uint8_t kOutOfLine = 16;  // set at creation: data holds an OutOfLine
  static constexpr int kKindShift = 5;
  static constexpr uint8_t kValue = 0;
  static constexpr uint8_t kNegative = 1;  // a cached "not found"
  static constexpr uint8_t kError = 2;     // a cached error message

  uint8_t flag_bits() const { return flags.load(std::memory_order_relaxed); }
  bool out_of_line() const { return (flag_bits() & kOutOfLine) != 0; }
  const OutOfLine& outside() const { return *reinterpret_cast<const OutOfLine*>(data); }
  size_t key_length() const { return out_of_line() ? outside().key_size : key_size; }
  size_t value_length() const { return out_of_line() ? outside().value_size : value_size; }
  std::string_view key() const {
    if (out_of_line()) return {outside().bytes, outside().key_size};
    return {data, key_size};
  }
  std::string_view value() const {
    if (out_of_line()) return {outside().bytes + outside().key_size, outside().value_size};
    return {data + key_size, value_size};
  }
  uint8_t kind() const { return static_cast<uint8_t>((flag_bits() >> kKindShift) & 3); }
  bool expires() const { return (flag_bits() & kHasTtl) != 0; }
  // Only for an entry that expires().
  TtlBlock& ttl() { return reinterpret_cast<TtlBlock*>(this)[-1]; }
  const TtlBlock& ttl() const { return reinterpret_cast<const TtlBlock*>(this)[-1]; }
  int64_t expiry_nanos() const { return expires() ? ttl().expiry_nanos : 0; }   // 0: never
  uint32_t delta_micros() const { return expires() ? ttl().delta_micros : 0; }  // 0: unknown
  // True while the entry is in its stripe's timer wheel.
  bool in_wheel() const { return expires() && ttl().timer_next != kNoEntry; }
  size_t prefix_size() const {
    return (expires() ? sizeof(TtlBlock) : 0) + (has_custom_charge() ? sizeof(ChargeBlock) : 0);
  }
  // The slot's bytes as requested (AllocateSlot rounds them up to 8).
  size_t allocation_size() const {
    return prefix_size() + offsetof(Entry, data) +
           (out_of_line() ? sizeof(OutOfLine) : size_t{key_size} + value_size);
  }
  // All the memory the entry holds: its slot and any out-of-line bytes.
  size_t footprint() const {
    return allocation_size() +
           (out_of_line() ? size_t{outside().key_size} + outside().value_size : 0);
  }
  // The start of the slot (the first block, if any).
  void* allocation() { return reinterpret_cast<char*>(this) - prefix_size(); }
  const void* allocation() const { return reinterpret_cast<const char*>(this) - prefix_size(); }
  bool ExpiredAt(int64_t now) const { return expires() && ttl().expiry_nanos <= now; }
  bool is_value() const { return kind() == kValue; }
  bool linked() const { return (flag_bits() & kLinked) != 0; }
  bool has_custom_charge() const { return (flag_bits() & kCustomCharge) != 0; }
  // The charge given at creation (0: none, the default charge applies).
  uint32_t custom_charge() const {
    return has_custom_charge() ? static_cast<const ChargeBlock*>(allocation())->charge : 0;
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
  // Whether the epoch `now` (Epoch::Current()) is two or more past the one
  // this retired entry was retired in. Only 32 bits of the retiring epoch are
  // kept: a difference of 2^32 or more may read as less than 2, which only
  // delays the free until the epoch moves on twice more.
  bool GracePeriodEnded(uint64_t now) const {
    return static_cast<uint32_t>(static_cast<uint32_t>(now) - retired.epoch) >= 2;
  }
};
static_assert(std::is_standard_layout_v<Entry>, "offsetof needs standard layout");
static_assert(offsetof(Entry, data) == 16, "what every entry needs (docs/design.md, Entries)");
static_assert(sizeof(OutOfLine) == 16 && sizeof(ChargeBlock) == 8 && sizeof(TtlBlock) == 24,
              "blocks keep the header 8-byte aligned (references count 8-byte units)");

inline Entry* EntryAt(EntryRef ref) { return static_cast<Entry*>(SlotAt(ref)); }
inline EntryRef RefOf(const Entry* e) { return RefOfSlot(e); }
// The entry a link names, or nullptr for kNoEntry (a list's end).
inline Entry* EntryOrNull(EntryRef ref) { return ref == kNoEntry ? nullptr : EntryAt(ref); }

// An entry's share of the index: 12 slots of 5 bytes (a tag byte and a
// reference) per 64-byte line, at a load factor between 1/2 and 3/4 (see
// slot_table.h), so at most about 11 bytes per entry; 16 also covers an
// OutOfLine block.
inline constexpr size_t kIndexBytesPerEntry = 16;
// Bytes charged per entry on top of its key and value: one number for every
// entry (what users see as EntryOverhead()), so it counts the TtlBlock even
// for entries without one. A bound in bytes then never undercounts, and a
// Touch that gives an entry its first TTL keeps its charge.
inline constexpr size_t kEntryOverheadBytes =
    offsetof(Entry, data) + sizeof(TtlBlock) + kIndexBytesPerEntry;

inline size_t Entry::charge() const {
  return has_custom_charge() ? custom_charge()
                             : key_length() + value_length() + kEntryOverheadBytes;
}

// Memory for the key and value of entries too large for a slot: a private
// jemalloc arena, or system malloc.
void* AllocateEntryMemory(size_t size);
void FreeEntryMemory(void* p, size_t size);
int64_t LiveEntryAllocations();  // entries allocated and not yet freed
// Bytes of entry memory in use (for tests and tools): the slabs held, plus
// the private jemalloc's stats.allocated, or else the sanitizer allocator's
// count or glibc's mallinfo2 (the whole process).
size_t AllocatorBytesInUse();
const char* AllocatorName();  // of the out-of-line bytes: "jemalloc" or "system"

// custom_charge 0 means "key + value + overhead". Returns nullptr when memory
// is exhausted. refs starts at 1 (the cache's).
inline Entry* NewEntry(std::string_view key, std::string_view value, int64_t expiry_nanos,
                       uint32_t custom_charge = 0, uint8_t kind = Entry::kValue,
                       uint32_t delta_micros = 0) {
  const size_t prefix =
      (custom_charge != 0 ? sizeof(ChargeBlock) : 0) + (expiry_nanos != 0 ? sizeof(TtlBlock) : 0);
  const size_t whole = prefix + offsetof(Entry, data) + key.size() + value.size();
  const bool inline_bytes = key.size() <= UINT8_MAX && whole <= kMaxSlabAllocation;
  char* outside = nullptr;
  if (!inline_bytes) {
    // Not empty: a key over 255 bytes or a whole over 512 bytes.
    outside = static_cast<char*>(AllocateEntryMemory(key.size() + value.size()));
    if (outside == nullptr) return nullptr;
  }
  const size_t size = inline_bytes ? whole : prefix + offsetof(Entry, data) + sizeof(OutOfLine);
  char* memory = static_cast<char*>(AllocateSlot(size));
  if (memory == nullptr) {
    if (outside != nullptr) FreeEntryMemory(outside, key.size() + value.size());
    return nullptr;
  }
  char* header = memory;
  if (custom_charge != 0) {
    auto* block = new (header) ChargeBlock;
    block->charge = custom_charge;
    block->unused = 0;
    header += sizeof(ChargeBlock);
  }
  if (expiry_nanos != 0) {
    auto* ttl = new (header) TtlBlock;
    ttl->expiry_nanos = expiry_nanos;
    ttl->delta_micros = delta_micros;
    ttl->timer_prev = ttl->timer_next = kNoEntry;
    ttl->timer_bucket = 0;
    ttl->unused = 0;
    header += sizeof(TtlBlock);
  }
  Entry* e = new (header) Entry;
  e->lru.prev = e->lru.next = kNoEntry;
  e->refs.store(1, std::memory_order_relaxed);
  e->flags.store(
      static_cast<uint8_t>((custom_charge != 0 ? Entry::kCustomCharge : 0) |
                           (expiry_nanos != 0 ? Entry::kHasTtl : 0) |
                           (inline_bytes ? 0 : Entry::kOutOfLine) | (kind << Entry::kKindShift)),
      std::memory_order_relaxed);
  char* bytes = e->data;
  if (inline_bytes) {
    e->key_size = static_cast<uint8_t>(key.size());
    e->value_size = static_cast<uint16_t>(value.size());
  } else {
    e->key_size = 0;
    e->value_size = 0;
    auto* block = new (e->data) OutOfLine;
    block->bytes = outside;
    block->key_size = static_cast<uint32_t>(key.size());
    block->value_size = static_cast<uint32_t>(value.size());
    bytes = outside;
  }
  if (!key.empty()) std::memcpy(bytes, key.data(), key.size());
  if (!value.empty()) std::memcpy(bytes + key.size(), value.data(), value.size());
  return e;
}

inline void Ref(Entry* e) { e->refs.fetch_add(1, std::memory_order_relaxed); }

inline void Unref(Entry* e) {
  if (e->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (e->out_of_line()) {
      const OutOfLine& outside = e->outside();
      FreeEntryMemory(outside.bytes, size_t{outside.key_size} + outside.value_size);
    }
    void* memory = e->allocation();
    e->~Entry();
    FreeSlot(memory);
  }
}

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_ENTRY_H_
