// The per-stripe index: an open-addressing table with linear probing whose
// slots are atomic, so readers probe it without a lock.
//
// A slot is a tag byte and a 32-bit entry reference (entry_slabs.h), twelve
// of each to a 64-byte line (Group), so a probe reads one line for a dozen
// slots. The tag is 0 (empty, ends a probe), 1 (tombstone, probe continues)
// or 8 bits of the key's hash mapped to 2..255; a probe loads the reference
// and the entry only where the tag matches. 5.3 bytes per slot, where a
// tagged 8-byte pointer took 8 (issue 11, item 4).
//
// Invariants (writers hold the stripe lock):
//  * An entry never moves within a table; only a rebuild into a new table
//    moves entries, and the old table stays readable until its epoch grace
//    period ends. So a reader that probes from a key's home slot reaches the
//    key's slot through non-empty slots, as long as the key is present.
//  * Slots never go from non-empty back to empty; removal writes a tombstone
//    tag (the reference stays, naming an entry that is retired, not freed).
//  * A slot's reference is written before its tag turns from empty or
//    tombstone to an entry's, both with release, so a reader that sees the
//    tag sees a reference at least that new, and a reader that saw an older
//    tag and then loads a newer reference (a tombstone reused for another
//    key) still sees that entry's bytes written. Any reference a reader
//    loads names an entry that is linked or retired within the reader's
//    grace period; the key comparison decides, never the tag alone.
//  * used (live + tombstones) stays <= 3/4 of the slots, so probes end.
//
// The slot count is any number (not a power of two): a rebuild sizes the
// table at twice the live entries, so a growing table's live load stays
// between 1/2 and 3/4 (lower only while removals leave tombstones, and in
// the minimum size).
// With powers of two it fell to 3/8 after each doubling, and a cache could
// sit anywhere in that range. A key's home slot comes from multiply-shift
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
  static constexpr uint8_t kEmpty = 0;
  static constexpr uint8_t kTombstone = 1;
  static constexpr size_t kGroupSlots = 12;

  // slot_count >= 1. Returns nullptr on allocation failure.
  static SlotTable* Create(size_t slot_count) {
    const size_t groups = (slot_count + kGroupSlots - 1) / kGroupSlots;
    // Aligned, so each group is one cache line (calloc aligns to 16 only).
    const size_t bytes = sizeof(SlotTable) + groups * sizeof(Group);
    void* memory = std::aligned_alloc(alignof(Group), bytes);
    if (memory == nullptr) return nullptr;
    std::memset(memory, 0, bytes);  // all-zero atomics: kEmpty tags, kNoEntry references
    auto* t = new (memory) SlotTable;
    t->slot_count_ = slot_count;
    return t;
  }
  static void Destroy(SlotTable* t) { std::free(t); }

  size_t slot_count() const { return slot_count_; }
  // Where the probe for a hash starts: Lemire's multiply-shift reduction of
  // the hash's low 32 bits. A probe then moves on with Next.
  size_t Home(uint64_t hash) const {
    return static_cast<size_t>((uint64_t{static_cast<uint32_t>(hash)} * slot_count_) >> 32);
  }
  size_t Next(size_t i) const { return i + 1 == slot_count_ ? 0 : i + 1; }
  // Bits 32..39, mapped to 2..255: the home slot uses the low 32 bits and
  // the stripe the top ones (up to 24 of them), which all of a stripe's
  // keys share.
  static uint8_t Tag(uint64_t hash) {
    const auto bits = static_cast<uint8_t>(hash >> 32);
    return bits < 2 ? static_cast<uint8_t>(bits + 2) : bits;
  }

  // The entry in slot i, or nullptr (empty or tombstone). Lock-free readers
  // (with a ReadGuard) and writers alike; `order` relaxed only under the
  // stripe lock.
  Entry* Get(size_t i, std::memory_order order = std::memory_order_seq_cst) {
    if (tag(i).load(order) <= kTombstone) return nullptr;
    return EntryAt(ref(i).load(order));
  }

  // ---- under the stripe lock ----
  // Puts e in an empty or tombstone slot (FindInsertSlot). Both stores
  // release: a reader that saw the slot's previous (live) tag may load this
  // reference, and must then see e's bytes written.
  void Publish(size_t i, Entry* e, uint64_t hash) {
    ref(i).store(RefOf(e), std::memory_order_seq_cst);
    tag(i).store(Tag(hash), std::memory_order_seq_cst);  // after the reference
  }
  // Puts e, of the same key, in place of the entry in slot i.
  void Replace(size_t i, Entry* e) { ref(i).store(RefOf(e), std::memory_order_seq_cst); }
  void Erase(size_t i) { tag(i).store(kTombstone, std::memory_order_seq_cst); }
  // For a table nobody reads yet (a rebuild before it is published).
  void PublishUnread(size_t i, Entry* e, uint64_t hash) {
    ref(i).store(RefOf(e), std::memory_order_relaxed);
    tag(i).store(Tag(hash), std::memory_order_relaxed);
  }

  // Lock-free lookup; the caller holds a ReadGuard (or the stripe lock).
  Entry* Find(uint64_t hash, std::string_view key) {
    const uint8_t want = Tag(hash);
    size_t i = Home(hash);
    for (size_t probes = 0; probes < slot_count_; ++probes, i = Next(i)) {
      const uint8_t t = tag(i).load(std::memory_order_seq_cst);
      if (t == kEmpty) return nullptr;
      if (t != want) continue;
      Entry* e = EntryAt(ref(i).load(std::memory_order_seq_cst));
      if (e->key() == key) return e;
    }
    return nullptr;
  }

  // Under the stripe lock: index of the slot holding key, or -1.
  ptrdiff_t FindSlot(uint64_t hash, std::string_view key) {
    const uint8_t want = Tag(hash);
    size_t i = Home(hash);
    for (size_t probes = 0; probes < slot_count_; ++probes, i = Next(i)) {
      const uint8_t t = tag(i).load(std::memory_order_relaxed);
      if (t == kEmpty) return -1;
      if (t != want) continue;
      if (EntryAt(ref(i).load(std::memory_order_relaxed))->key() == key) {
        return static_cast<ptrdiff_t>(i);
      }
    }
    return -1;
  }

  // Under the stripe lock, key known absent: the first tombstone or empty slot
  // on the probe path. *was_empty tells whether it consumes an empty slot.
  size_t FindInsertSlot(uint64_t hash, bool* was_empty) {
    for (size_t i = Home(hash);; i = Next(i)) {
      const uint8_t t = tag(i).load(std::memory_order_relaxed);
      if (t <= kTombstone) {
        *was_empty = t == kEmpty;
        return i;
      }
    }
  }

  // Under the stripe lock: the slot that holds exactly this entry, or -1.
  ptrdiff_t FindEntrySlot(uint64_t hash, const Entry* e) {
    const uint8_t want = Tag(hash);
    const EntryRef wanted = RefOf(e);
    size_t i = Home(hash);
    for (size_t probes = 0; probes < slot_count_; ++probes, i = Next(i)) {
      const uint8_t t = tag(i).load(std::memory_order_relaxed);
      if (t == kEmpty) return -1;
      if (t == want && ref(i).load(std::memory_order_relaxed) == wanted) {
        return static_cast<ptrdiff_t>(i);
      }
    }
    return -1;
  }

  // The line of slot i (to prefetch).
  const void* LineOf(size_t i) { return &groups()[i / kGroupSlots]; }

 private:
  struct alignas(64) Group {
    std::atomic<uint8_t> tags[kGroupSlots];
    uint32_t unused;
    std::atomic<EntryRef> refs[kGroupSlots];
  };
  static_assert(sizeof(Group) == 64);
  static_assert(alignof(Group) == 64);

  SlotTable() = default;
  Group* groups() { return reinterpret_cast<Group*>(this + 1); }
  std::atomic<uint8_t>& tag(size_t i) { return groups()[i / kGroupSlots].tags[i % kGroupSlots]; }
  std::atomic<EntryRef>& ref(size_t i) { return groups()[i / kGroupSlots].refs[i % kGroupSlots]; }

  alignas(64) size_t slot_count_ = 0;  // the groups start on the next line
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_SLOT_TABLE_H_
