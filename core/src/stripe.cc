#include "stripe.h"

#include <algorithm>

#include "hash.h"

namespace larder::internal {
namespace {

constexpr size_t kInitialSlots = 16;

size_t RoundUpPow2(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

Stripe::Stripe(size_t bytes_capacity, size_t entries_capacity, Clock* clock,
               bool collect_removals)
    : bytes_capacity_(bytes_capacity),
      entries_capacity_(entries_capacity),
      clock_(clock),
      collect_removals_(collect_removals) {
  SlotTable* table = SlotTable::Create(kInitialSlots);
  if (table == nullptr) throw std::bad_alloc();
  table_.store(table, std::memory_order_release);
  MutexLock lock(&mu_);
  lru_.next = lru_.prev = &lru_;
}

Stripe::~Stripe() {
  // No caller may use the cache while it is destroyed, so no reader is inside
  // this stripe and everything can be released at once. Pins keep their own
  // references and free their entries later.
  MutexLock lock(&mu_);
  for (ListNode* n = lru_.next; n != &lru_;) {
    Entry* e = Entry::FromNode(n);
    n = n->next;
    Unref(e);
  }
  for (RetiredEntry& r : retired_) Unref(r.entry);
  for (RetiredTable& r : retired_tables_) SlotTable::Destroy(r.table);
  SlotTable::Destroy(table_.load(std::memory_order_relaxed));
}

// ---- access buffering ----

void Stripe::RecordAccessSlow(Lane& lane, Entry* e) {
  // The lane is full: drain all lanes if the stripe is free, else drop this
  // access. Single-threaded, the lock is always free, so nothing is dropped.
  if (mu_.TryLock()) {
    DrainLanesLocked();
    mu_.Unlock();
    if (lane.TryPush(e)) return;
  }
  lane.dropped.fetch_add(1, std::memory_order_relaxed);
}

bool Stripe::DrainLanesLocked() {
  bool complete = true;
  for (Lane& lane : lanes_) {
    uint32_t head = lane.head.load(std::memory_order_relaxed);
    const uint32_t tail = lane.tail.load(std::memory_order_acquire);
    for (; head != tail; ++head) {
      std::atomic<Entry*>& slot = lane.slots[head % kLaneCapacity];
      Entry* e = slot.load(std::memory_order_acquire);
      if (e == nullptr) {  // a producer claimed the slot but has not filled it yet
        complete = false;
        break;
      }
      slot.store(nullptr, std::memory_order_relaxed);
      if ((e->flags & Entry::kLinked) != 0) {
        LruUnlink(e);
        LruPushFront(e);
      }
    }
    lane.head.store(head, std::memory_order_release);
  }
  return complete;
}

// ---- maintenance ----

void Stripe::Maintain(int64_t now, Removals* removed) {
  MutexLock lock(&mu_);
  MaintainLocked(now, removed);
}

void Stripe::MaintainLocked(int64_t now, Removals* removed) {
  if (retired_.size() >= kReclaimBatch || !retired_tables_.empty()) Epoch::TryAdvance();
  // Read the epoch before draining: any reader that could still name a retired
  // entry in a lane had finished its push before the epoch reached this value.
  const uint64_t epoch = Epoch::Current();
  const bool lanes_empty = DrainLanesLocked();
  ExpireLocked(now, removed);
  if (lanes_empty) ReclaimLocked(epoch);
}

void Stripe::ReclaimLocked(uint64_t epoch) {
  size_t n = 0;
  while (n < retired_.size() && retired_[n].epoch + 2 <= epoch) Unref(retired_[n++].entry);
  retired_.erase(retired_.begin(), retired_.begin() + static_cast<ptrdiff_t>(n));
  n = 0;
  while (n < retired_tables_.size() && retired_tables_[n].epoch + 2 <= epoch) {
    SlotTable::Destroy(retired_tables_[n++].table);
  }
  retired_tables_.erase(retired_tables_.begin(), retired_tables_.begin() + static_cast<ptrdiff_t>(n));
}

void Stripe::ExpireLocked(int64_t now, Removals* removed) {
  while (!heap_.empty() && heap_.front()->expiry_nanos <= now) {
    RemoveByEntryLocked(heap_.front(), RemovalCause::kExpired, removed);
  }
}

void Stripe::EvictLocked(Removals* removed) {
  while ((bytes_ > bytes_capacity_ || (entries_capacity_ != 0 && entries_ > entries_capacity_)) &&
         lru_.prev != &lru_) {
    RemoveByEntryLocked(Entry::FromNode(lru_.prev), RemovalCause::kEvicted, removed);
  }
}

// ---- writes ----

Status Stripe::Put(uint64_t hash, Entry* e, int64_t now, Removals* removed) {
  MutexLock lock(&mu_);
  MaintainLocked(now, removed);
  SlotTable* table = table_.load(std::memory_order_relaxed);
  ptrdiff_t slot = table->FindSlot(hash, e->key());
  if (slot >= 0) {
    Entry* old = SlotTable::Decode(table->slot(slot).load(std::memory_order_relaxed));
    // Readers see either the old or the new entry, never neither.
    table->slot(slot).store(SlotTable::Encode(e, hash), std::memory_order_seq_cst);
    DetachLocked(old, RemovalCause::kReplaced, removed);
    retired_.push_back({Epoch::Current(), old});
  } else {
    if (Status s = ReserveSlotLocked(); s != Status::kOk) {
      Unref(e);
      return s;
    }
    table = table_.load(std::memory_order_relaxed);
    bool was_empty = false;
    size_t free_slot = table->FindInsertSlot(hash, &was_empty);
    if (was_empty) ++used_slots_;
    table->slot(free_slot).store(SlotTable::Encode(e, hash), std::memory_order_seq_cst);
  }
  e->flags |= Entry::kLinked;
  LruPushFront(e);
  if (e->expiry_nanos != 0) HeapPush(e);
  bytes_ += e->charge;
  ++entries_;
  ++puts_;
  EvictLocked(removed);
  return Status::kOk;
}

Status Stripe::ReserveSlotLocked() {
  SlotTable* table = table_.load(std::memory_order_relaxed);
  if ((used_slots_ + 1) * 4 <= table->slot_count() * 3) return Status::kOk;
  // Rebuild: sized so the live entries fill at most half, which also drops
  // all tombstones. The old table stays readable until its grace period ends.
  SlotTable* fresh = SlotTable::Create(std::max(kInitialSlots, RoundUpPow2((entries_ + 1) * 2)));
  if (fresh == nullptr) return Status::kNoMemory;
  for (ListNode* n = lru_.next; n != &lru_; n = n->next) {
    Entry* e = Entry::FromNode(n);
    uint64_t hash = HashKey(e->key());
    bool was_empty = false;
    fresh->slot(fresh->FindInsertSlot(hash, &was_empty))
        .store(SlotTable::Encode(e, hash), std::memory_order_relaxed);
  }
  used_slots_ = entries_;
  table_.store(fresh, std::memory_order_seq_cst);
  retired_tables_.push_back({Epoch::Current(), table});
  return Status::kOk;
}

bool Stripe::Remove(uint64_t hash, std::string_view key, RemovalCause cause, int64_t now,
                    Removals* removed) {
  MutexLock lock(&mu_);
  MaintainLocked(now, removed);
  SlotTable* table = table_.load(std::memory_order_relaxed);
  ptrdiff_t slot = table->FindSlot(hash, key);
  if (slot < 0) return false;
  Entry* e = SlotTable::Decode(table->slot(slot).load(std::memory_order_relaxed));
  UnlinkLocked(e, static_cast<size_t>(slot), cause, removed);
  return true;
}

bool Stripe::RemovePrefixChunk(std::string_view prefix, size_t* cursor, const SlotTable** seen,
                               size_t* count, int64_t now, Removals* removed) {
  MutexLock lock(&mu_);
  MaintainLocked(now, removed);
  SlotTable* table = table_.load(std::memory_order_relaxed);
  if (table != *seen) {  // rebuilt since the last chunk: entries moved, rescan
    *seen = table;
    *cursor = 0;
  }
  const size_t end = std::min(*cursor + kPrefixChunkSlots, table->slot_count());
  for (size_t i = *cursor; i < end; ++i) {
    uint64_t word = table->slot(i).load(std::memory_order_relaxed);
    if (!SlotTable::IsEntry(word)) continue;
    Entry* e = SlotTable::Decode(word);
    if (e->key().substr(0, prefix.size()) == prefix) {
      UnlinkLocked(e, i, RemovalCause::kExplicit, removed);
      ++*count;
    }
  }
  *cursor = end;
  return end == table->slot_count();
}

void Stripe::RemoveByEntryLocked(Entry* e, RemovalCause cause, Removals* removed) {
  SlotTable* table = table_.load(std::memory_order_relaxed);
  ptrdiff_t slot = table->FindEntrySlot(HashKey(e->key()), e);
  // A linked entry is always in the table (stripe invariant).
  UnlinkLocked(e, static_cast<size_t>(slot), cause, removed);
}

void Stripe::UnlinkLocked(Entry* e, size_t slot, RemovalCause cause, Removals* removed) {
  table_.load(std::memory_order_relaxed)->slot(slot).store(SlotTable::kTombstone,
                                                            std::memory_order_seq_cst);
  DetachLocked(e, cause, removed);
  retired_.push_back({Epoch::Current(), e});
}

void Stripe::DetachLocked(Entry* e, RemovalCause cause, Removals* removed) {
  LruUnlink(e);
  if (e->heap_pos != Entry::kNotInHeap) HeapRemove(e);
  e->flags &= static_cast<uint8_t>(~Entry::kLinked);
  bytes_ -= e->charge;
  --entries_;
  switch (cause) {
    case RemovalCause::kEvicted: ++evictions_; break;
    case RemovalCause::kExpired: ++expirations_; break;
    case RemovalCause::kExplicit: ++invalidations_; break;
    case RemovalCause::kReplaced: break;
  }
  if (collect_removals_ && removed != nullptr) {
    Ref(e);
    removed->push_back({e, cause});
  }
}

StripeCounters Stripe::Counters() {
  StripeCounters c;
  for (Lane& lane : lanes_) {
    c.hits += lane.hits.load(std::memory_order_relaxed);
    c.misses += lane.misses.load(std::memory_order_relaxed);
    c.dropped_promotions += lane.dropped.load(std::memory_order_relaxed);
  }
  MutexLock lock(&mu_);
  c.puts = puts_;
  c.evictions = evictions_;
  c.expirations = expirations_;
  c.invalidations = invalidations_;
  c.entries = entries_;
  c.bytes = bytes_;
  return c;
}

// ---- LRU list and expiry heap ----

void Stripe::LruPushFront(Entry* e) {
  e->lru.next = lru_.next;
  e->lru.prev = &lru_;
  lru_.next->prev = &e->lru;
  lru_.next = &e->lru;
}

void Stripe::LruUnlink(Entry* e) {
  e->lru.prev->next = e->lru.next;
  e->lru.next->prev = e->lru.prev;
  e->lru.prev = e->lru.next = nullptr;
}

void Stripe::HeapPush(Entry* e) {
  e->heap_pos = static_cast<uint32_t>(heap_.size());
  heap_.push_back(e);
  HeapSiftUp(heap_.size() - 1);
}

void Stripe::HeapRemove(Entry* e) {
  size_t i = e->heap_pos;
  size_t last = heap_.size() - 1;
  if (i != last) {
    HeapSwap(i, last);
    heap_.pop_back();
    HeapSiftUp(i);
    HeapSiftDown(i);
  } else {
    heap_.pop_back();
  }
  e->heap_pos = Entry::kNotInHeap;
}

void Stripe::HeapSwap(size_t a, size_t b) {
  std::swap(heap_[a], heap_[b]);
  heap_[a]->heap_pos = static_cast<uint32_t>(a);
  heap_[b]->heap_pos = static_cast<uint32_t>(b);
}

void Stripe::HeapSiftUp(size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap_[parent]->expiry_nanos <= heap_[i]->expiry_nanos) break;
    HeapSwap(i, parent);
    i = parent;
  }
}

void Stripe::HeapSiftDown(size_t i) {
  const size_t n = heap_.size();
  for (;;) {
    size_t smallest = i;
    size_t l = 2 * i + 1, r = l + 1;
    if (l < n && heap_[l]->expiry_nanos < heap_[smallest]->expiry_nanos) smallest = l;
    if (r < n && heap_[r]->expiry_nanos < heap_[smallest]->expiry_nanos) smallest = r;
    if (smallest == i) return;
    HeapSwap(i, smallest);
    i = smallest;
  }
}

}  // namespace larder::internal
