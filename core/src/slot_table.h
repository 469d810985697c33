// The per-stripe index: an open-addressing table with linear probing whose
// slots are single atomic words, so readers probe it without a lock.
//
// A slot word is 0 (empty, ends a probe), 1 (tombstone, probe continues) or an
// Entry pointer with 16 bits of the key's hash in its top bits (x86-64 and
// AArch64 user addresses fit in 48 bits). The tag lets a probe skip
// non-matching slots without touching the entry.
//
// Invariants (writers hold the stripe lock):
//  * An entry never moves within a table; only a rebuild into a new table
//    moves entries, and the old table stays readable until its epoch grace
//    period ends. So a reader that probes from a key's home slot reaches the
//    key's slot through non-empty slots, as long as the key is present.
//  * Slots never go from non-empty back to empty; removal writes a tombstone.
//  * used (live + tombstones) stays <= 3/4 of the slots, so probes end.
//
// The slot count is any number (not a power of two): a rebuild sizes the
// table at twice the live entries, so a growing table's live load stays
// between 1/2 and 3/4 (lower only while removals leave tombstones, and in
// the 16-slot minimum).
// With powers of two it fell to 3/8 after each doubling, and a cache could
// sit anywhere in that range: 1 M entries in 16 stripes sat at 0.48, 16.8
// bytes of index per entry. A key's home slot comes from multiply-shift
// range reduction (one multiplication) instead of a mask.
#ifndef LARDER_CORE_SRC_SLOT_TABLE_H_
#define LARDER_CORE_SRC_SLOT_TABLE_H_

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>

#include "entry.h"

namespace larder::internal {

class SlotTable {
 public:
  static constexpr uint64_t kEmpty = 0;
  static constexpr uint64_t kTombstone = 1;
  static constexpr int kTagShift = 48;
  static constexpr uint64_t kPointerMask = (uint64_t{1} << kTagShift) - 1;

  // slot_count >= 1. Returns nullptr on allocation failure.
  static SlotTable* Create(size_t slot_count) {
    void* memory = std::calloc(1, sizeof(SlotTable) + slot_count * sizeof(std::atomic<uint64_t>));
    if (memory == nullptr) return nullptr;
    auto* t = new (memory) SlotTable;
    t->slot_count_ = slot_count;
    // calloc zeroed the slots; std::atomic<uint64_t> of all-zero bits is kEmpty.
    return t;
  }
  static void Destroy(SlotTable* t) { std::free(t); }

  size_t slot_count() const { return slot_count_; }
  std::atomic<uint64_t>& slot(size_t i) { return slots()[i]; }  // i < slot_count()
  // Where the probe for a hash starts: Lemire's multiply-shift reduction of
  // the hash's low 32 bits (all an entry keeps), rotated so that the tag's
  // bits (16..31) weigh least in it. A probe then moves on with Next.
  size_t Home(uint64_t hash) const {
    const auto low = static_cast<uint32_t>(hash);
    const uint32_t rotated = (low << 16) | (low >> 16);
    return static_cast<size_t>((uint64_t{rotated} * slot_count_) >> 32);
  }
  size_t Next(size_t i) const { return i + 1 == slot_count_ ? 0 : i + 1; }

  // False when the address does not fit below the tag bits (an allocator
  // handing out addresses above 2^48: 5-level paging, tagged heaps).
  static bool Encodable(const void* p) {
    return (reinterpret_cast<uintptr_t>(p) & ~kPointerMask) == 0;
  }
  // Bits 16..31: entries keep only the low 32 bits of their hash, and a
  // rebuild must recompute the tag (for tables above 2^16 slots the tag and
  // the home slot share a few bits, which only weakens the tag for
  // neighbours).
  static uint64_t Tag(uint64_t hash) { return (hash >> 16) & 0xFFFF; }
  static uint64_t Encode(Entry* e, uint64_t hash) {
    return (Tag(hash) << kTagShift) | reinterpret_cast<uintptr_t>(e);
  }
  static Entry* Decode(uint64_t word) { return reinterpret_cast<Entry*>(word & kPointerMask); }
  static bool IsEntry(uint64_t word) { return word > kTombstone; }

  // Lock-free lookup; the caller holds a ReadGuard (or the stripe lock).
  Entry* Find(uint64_t hash, std::string_view key) {
    const uint64_t tag = Tag(hash);
    size_t i = Home(hash);
    for (size_t probes = 0; probes < slot_count_; ++probes, i = Next(i)) {
      uint64_t word = slots()[i].load(std::memory_order_seq_cst);
      if (word == kEmpty) return nullptr;
      if (word == kTombstone || (word >> kTagShift) != tag) continue;
      Entry* e = Decode(word);
      if (e->key_size == key.size() && std::memcmp(e->data, key.data(), key.size()) == 0) return e;
    }
    return nullptr;
  }

  // Under the stripe lock: index of the slot holding key, or -1.
  ptrdiff_t FindSlot(uint64_t hash, std::string_view key) {
    const uint64_t tag = Tag(hash);
    size_t i = Home(hash);
    for (size_t probes = 0; probes < slot_count_; ++probes, i = Next(i)) {
      uint64_t word = slots()[i].load(std::memory_order_relaxed);
      if (word == kEmpty) return -1;
      if (word == kTombstone || (word >> kTagShift) != tag) continue;
      Entry* e = Decode(word);
      if (e->key() == key) return static_cast<ptrdiff_t>(i);
    }
    return -1;
  }

  // Under the stripe lock, key known absent: the first tombstone or empty slot
  // on the probe path. *was_empty tells whether it consumes an empty slot.
  size_t FindInsertSlot(uint64_t hash, bool* was_empty) {
    for (size_t i = Home(hash);; i = Next(i)) {
      uint64_t word = slots()[i].load(std::memory_order_relaxed);
      if (word == kEmpty || word == kTombstone) {
        *was_empty = word == kEmpty;
        return i;
      }
    }
  }

  // Under the stripe lock: the slot that holds exactly this entry, or -1.
  ptrdiff_t FindEntrySlot(uint64_t hash, const Entry* e) {
    size_t i = Home(hash);
    for (size_t probes = 0; probes < slot_count_; ++probes, i = Next(i)) {
      uint64_t word = slots()[i].load(std::memory_order_relaxed);
      if (word == kEmpty) return -1;
      if (IsEntry(word) && Decode(word) == e) return static_cast<ptrdiff_t>(i);
    }
    return -1;
  }

 private:
  SlotTable() = default;
  std::atomic<uint64_t>* slots() { return reinterpret_cast<std::atomic<uint64_t>*>(this + 1); }

  size_t slot_count_ = 0;
  [[maybe_unused]] char pad_[64 - sizeof(size_t)];  // slots start on their own cache line
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_SLOT_TABLE_H_
