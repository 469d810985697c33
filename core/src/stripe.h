// A stripe: one lock, one index, one LRU list, one timer wheel. The cache
// routes each key to one stripe by hash; a stripe knows nothing of the others.
//
// Read path (no lock, no shared write in the common case):
//   ReadGuard -> table_ -> SlotTable::Find -> expiry check -> use the value ->
//   record the access in this thread's lane.
// Write path: everything under mu_, starting with MaintainLocked(), which
//   1. applies the buffered accesses of every lane to the LRU order, in lane
//      order (one thread's accesses stay in order, so a single-threaded
//      replay is exact LRU: every promotion is applied before any insert or
//      eviction decision),
//   2. removes entries whose TTL has passed (O(expired), from a timer wheel),
//   3. frees retired entries and tables whose epoch grace period has ended.
//
// Invariants (under mu_):
//  * An entry is kLinked iff it is in table_, in the LRU list, and (when it
//    has a TTL) in the timer wheel; bytes_ and entries_ sum the linked entries.
//  * An unlinked entry is on the retired list (holding the cache's reference)
//    until its grace period ends. A lane may still name it; a retired entry
//    is freed only after the lanes were consumed up to the tails they had
//    when the freeing epoch was read (see MaintainLocked), so a lane never
//    names freed memory.
//  * The bounds belong to the whole cache (budget.h): every linked entry is
//    counted in *budget_, so the stripes together stay within them. A
//    stripe links an entry only with a reservation for it (or the count of
//    the entry it replaces), and gives the count back when it unlinks one.
//  * linked_bytes_ publishes bytes_ (the linked entries' charges) for the
//    cache's choice of a stripe to evict from when a put's own stripe cannot
//    make room; it is rewritten, when it changed, whenever a write releases
//    the lock and at the end of CleanUp.
#ifndef LARDER_CORE_SRC_STRIPE_H_
#define LARDER_CORE_SRC_STRIPE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "budget.h"
#include "entry.h"
#include "epoch.h"
#include "flight.h"
#include "larder/cache.h"
#include "larder/clock.h"
#include "larder/status.h"
#include "mutex.h"
#include "removals.h"
#include "slot_table.h"
#include "timer_wheel.h"

namespace larder::internal {

struct StripeCounters {
  uint64_t hits = 0, misses = 0, puts = 0, evictions = 0, expirations = 0, invalidations = 0;
  uint64_t entries = 0, bytes = 0, dropped_promotions = 0;
  uint64_t stale_hits = 0, negative_hits = 0, load_timeouts = 0;
  uint64_t loads = 0, load_failures = 0, load_time_nanos = 0, coalesced_waits = 0;
  uint64_t refreshes_started = 0, refreshes_discarded = 0, loads_discarded = 0;
};

// What a caller holds in the cache's Budget for one put.
struct Reservation {
  uint64_t bytes = 0;
  uint64_t entries = 0;
};

// What the locked part of a miss found.
struct JoinOutcome {
  Entry* entry = nullptr;  // a fresh entry installed meanwhile (one reference held)
  std::shared_ptr<Flight> flight;
  bool lead = false;  // the caller must run the loader and complete `flight`
};

// What the locked part of a flight's completion did.
struct FinishOutcome {
  bool installed = false;
  Entry* fallback = nullptr;  // stale-if-error: the old value (one reference held)
};

class Stripe {
 public:
  // retain_grace: how long past its expiry an entry is kept for stale serving.
  // retired_bytes_bound: how many bytes of unlinked entries may wait for
  // their grace period before a write (or a read) forces the epoch on.
  Stripe(Budget* budget, Clock* clock, bool collect_removals, int64_t retain_grace,
         size_t retired_bytes_bound);
  ~Stripe();
  Stripe(const Stripe&) = delete;
  Stripe& operator=(const Stripe&) = delete;

  // The charges of the entries the stripe holds (0: none), as of its last
  // write. Read without the lock (a hint: EvictTail looks under it).
  uint64_t linked_bytes() const { return linked_bytes_.load(std::memory_order_relaxed); }

  // ---- lock-free read side; the caller holds a ReadGuard ----

  // The live entry for key, or nullptr (absent or expired).
  Entry* FindLive(uint64_t hash, std::string_view key) {
    Entry* e = table_.load(std::memory_order_seq_cst)->Find(hash, key);
    if (e != nullptr && e->expires() && e->ExpiredAt(clock_->NowNanos())) return nullptr;
    return e;
  }
  // The entry for key, expired or not (expired ones linger for stale serving).
  Entry* FindAny(uint64_t hash, std::string_view key) {
    return table_.load(std::memory_order_seq_cst)->Find(hash, key);
  }
  // `lane` is the calling thread's lane choice (ReadGuard::lane()); a push
  // that meets another thread's in the same lane moves this thread on to the
  // next lane, so threads running at once spread over the lanes.
  //
  // A hit of an entry is counted by its push alone: the lane's tail counts
  // pushes, and the hit counter is tail - stale_pushes + unpushed_hits, so the
  // tail's compare-and-swap is the only shared write of a hit.
  // e may be null for a hit served from elsewhere (a pending write).
  void RecordHit(Entry* e, uint32_t& lane) {
    Lane& l = LaneFor(lane);
    if (e == nullptr) {
      l.unpushed_hits.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!Push(l, e, lane)) RecordAccessSlow(l, e, /*stale=*/false);
  }
  void RecordMiss(uint32_t& lane) { LaneFor(lane).misses.fetch_add(1, std::memory_order_relaxed); }
  void RecordStaleHit(Entry* e, uint32_t& lane) {
    Lane& l = LaneFor(lane);
    l.stale_hits.fetch_add(1, std::memory_order_relaxed);
    if (Push(l, e, lane)) {
      l.stale_pushes.fetch_add(1, std::memory_order_release);  // after the tail: Counters()
    } else {
      RecordAccessSlow(l, e, /*stale=*/true);
    }
  }
  void RecordNegativeHit(uint32_t& lane) {
    LaneFor(lane).negative_hits.fetch_add(1, std::memory_order_relaxed);
  }
  void RecordTimeout() { load_timeouts_.fetch_add(1, std::memory_order_relaxed); }

  // Called by readers after their ReadGuard ended: when unlinked entries hold
  // more than the bound (a reader kept the epoch back while they were
  // retired), the next read of the stripe frees them, without waiting for a
  // write. One relaxed load of a line the read has loaded anyway.
  void ReclaimIfDue() {
    if (reclaim_due_.load(std::memory_order_relaxed)) ReclaimFromReader();
  }

  // Calls fn(e) for every live value entry (unexpired at `now`, not a cached
  // "not found" or error) whose key starts with prefix, walking the index
  // without the lock; the caller holds a ReadGuard. Entries written or removed
  // meanwhile may or may not be seen; each one seen is whole.
  template <typename Fn>
  void ForEachLive(std::string_view prefix, int64_t now, Fn&& fn) {
    SlotTable* table = table_.load(std::memory_order_seq_cst);
    const size_t slots = table->slot_count();
    for (size_t i = 0; i < slots; ++i) {
      Entry* e = table->Get(i);
      if (e == nullptr || !e->is_value() || e->ExpiredAt(now)) continue;
      if (e->key_length() < prefix.size() || e->key().substr(0, prefix.size()) != prefix) continue;
      fn(e);
    }
  }

  // ---- writers: each takes mu_ ----

  // Publishes e (allocated by the caller, refs == 1) replacing any entry
  // with the same key. `reserved` is what the caller holds in the budget for
  // it: if the put needs more than that (the key it expected to replace is
  // gone) and the budget cannot give it, even after evicting this stripe's
  // own LRU tail, it returns kBusy and changes nothing (e is not consumed,
  // the reservation is still the caller's). Otherwise the reservation is
  // used up (any surplus given back) and e consumed.
  Status Put(uint64_t hash, Entry* e, int64_t now, Reservation reserved, Removals* removed);
  // Evicts the LRU tail for the cache (after applying the buffered uses and
  // reaping what expired); false if the stripe had nothing left to evict.
  bool EvictTail(int64_t now, Removals* removed);
  // Loading. JoinOrLead is the locked part of a miss: a fresh entry that
  // arrived meanwhile, else the key's flight (joined), else a new flight.
  JoinOutcome JoinOrLead(const void* owner, uint64_t hash, std::string_view key, int64_t now,
                         Removals* removed);
  // Creates a refresh flight unless the key has one; nullptr if it had.
  std::shared_ptr<Flight> BeginRefresh(const void* owner, uint64_t hash, std::string_view key,
                                       int64_t now);
  // Unmaps the flight; unless a write superseded it, makes the cache agree
  // with the outcome: installs `e` (may be null), or, when nothing can be
  // installed for a successful load (not found without negative caching, a
  // value too large), removes the key's older entry. For a failed load
  // (`failed`), returns the old value within `stale_if_error` instead, and
  // installs `e` (a cached error) only if no fresh value is present.
  // `reserved` as for Put; a load whose entry finds no room is not cached
  // (the older entry, if any, is removed so it cannot outlive the load).
  FinishOutcome FinishFlight(Flight* flight, Entry* e, bool failed, int64_t now,
                             int64_t stale_if_error, Reservation reserved, Removals* removed);

  // Replaces key's live value by a copy that expires at `expiry` (0: never),
  // in the same LRU position, reporting nothing removed (Cache::Touch).
  Status Touch(uint64_t hash, std::string_view key, int64_t expiry, int64_t now, Removals* removed);
  // Appends one reference to each linked value, most recently used first,
  // after applying the buffered accesses; expired ones only if include_stale.
  void Snapshot(int64_t now, bool include_stale, std::vector<Entry*>* out);
  // A refresh the caller leads (Cache::BeginRefresh): a new refresh flight,
  // claimed (*lead = true); or the key's flight, to wait for (*lead =
  // false), unless it is a queued refresh nobody claimed yet, which the
  // caller then claims and leads.
  std::shared_ptr<Flight> LeadRefresh(const void* owner, uint64_t hash, std::string_view key,
                                      int64_t now, bool* lead);
  // Removes key's entry (cause kExplicit, or kReplaced for a rejected put).
  bool Remove(uint64_t hash, std::string_view key, RemovalCause cause, int64_t now,
              Removals* removed);
  // Progress of a chunked prefix removal over one stripe.
  struct PrefixWalk {
    size_t cursor = 0;
    uint64_t rebuilds_seen = UINT64_MAX;  // the table generation being walked
    int restarts = 0;
    size_t removed = 0;
  };
  // Removes matching entries from one bounded chunk of slots (and marks
  // matching loads as superseded); returns true once the whole stripe is done.
  bool RemovePrefixChunk(std::string_view prefix, PrefixWalk* walk, int64_t now, Removals* removed);
  // Applies buffered accesses, expires, and reclaims everything whose grace
  // period can be ended now (advancing the epoch when no reader blocks it).
  void CleanUp(int64_t now, Removals* removed);
  StripeCounters Counters();
  // The stripe's entry count when no entry in it has expired at `now` (the
  // smallest expiry inserted since the wheel was last empty is still in the
  // future): true and *count set; false when some entry may have expired and
  // only a walk can tell the live ones.
  bool CountIfNoneExpired(int64_t now, size_t* count);

 private:
  static constexpr uint32_t kLaneCapacity = 64;
  static constexpr size_t kMaxLanes = 64;
  static constexpr size_t kPrefixChunkSlots = 1024;
  static constexpr size_t kReclaimBatch = 32;    // retired entries that prompt an epoch advance
  static constexpr size_t kExpireBudget = 128;   // expired entries removed per write, at most
  static constexpr size_t kReclaimBudget = 512;  // retired entries freed per write, at most

  // A bounded multi-producer, single-consumer ring of accessed entries (the
  // consumer holds mu_). There are LaneCount() per stripe, and a thread
  // starts at the lane of its dense id and moves on when it meets another
  // thread in one (RecordHit), so threads that run at once each own their
  // lane's cache lines.
  struct alignas(64) Lane {
    // Pushes ever made (64 bits: never wraps); also the count of hits.
    std::atomic<uint64_t> tail{0};
    std::atomic<uint64_t> head{0};
    std::atomic<uint64_t> unpushed_hits{0};  // hits with no entry, or whose push was dropped
    std::atomic<uint64_t> stale_pushes{0};   // pushes that were stale hits, not hits
    std::atomic<uint64_t> misses{0};
    std::atomic<uint64_t> dropped{0};
    std::atomic<uint64_t> stale_hits{0};
    std::atomic<uint64_t> negative_hits{0};
    alignas(64) std::atomic<Entry*> slots[kLaneCapacity] = {};

    // False only when the lane is full. *contended: a push of another thread
    // took the slot this one first tried.
    bool TryPush(Entry* e, bool* contended) {
      uint64_t t = tail.load(std::memory_order_relaxed);
      for (;;) {
        if (t - head.load(std::memory_order_acquire) >= kLaneCapacity) return false;
        if (tail.compare_exchange_weak(t, t + 1, std::memory_order_relaxed)) break;
        *contended = true;
      }
      slots[t % kLaneCapacity].store(e, std::memory_order_release);
      return true;
    }
  };
  // Lanes per stripe: the machine's hardware threads rounded up to a power of
  // two, at least 4 and at most 64. Threads beyond the cores never push at
  // the same moment, so more lanes than cores would only lengthen each drain.
  static size_t LaneCount();
  Lane& LaneFor(uint32_t lane) { return lanes_[lane & lane_mask_]; }
  static bool Push(Lane& l, Entry* e, uint32_t& lane) {
    bool contended = false;
    const bool pushed = l.TryPush(e, &contended);
    if (contended) ++lane;
    return pushed;
  }

  struct RetiredTable {
    uint64_t epoch;
    SlotTable* table;
  };

  friend class StripeTestPeer;
  // The lock of every operation that can retire entries: on the way out it
  // bounds the bytes they hold (BoundRetiredLocked), publishes the stripe's
  // bytes for Cache::EvictOne, then unlocks.
  class ABSL_SCOPED_LOCKABLE WriteLock {
   public:
    explicit WriteLock(Stripe* stripe) ABSL_EXCLUSIVE_LOCK_FUNCTION(stripe->mu_) : stripe_(stripe) {
      stripe_->mu_.Lock();
    }
    ~WriteLock() ABSL_UNLOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      stripe_->BoundRetiredLocked();
      stripe_->PublishLinkedBytesLocked();
      stripe_->mu_.Unlock();
    }
    WriteLock(const WriteLock&) = delete;
    WriteLock& operator=(const WriteLock&) = delete;

   private:
    Stripe* const stripe_;
  };
  void RecordAccessSlow(Lane& lane, Entry* e, bool stale);
  void ReclaimFromReader();
  // Keeps the bytes of retired entries within retired_bytes_bound_: when
  // over it, pushes the epoch on and frees what no reader can see any more.
  // Every locked operation that can retire an entry ends with it.
  void BoundRetiredLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drains the lanes (up to tails noted after reading the epoch) and frees
  // retired entries and tables whose grace period ended: at most `budget`
  // entries, and more while retired bytes exceed the bound.
  void DrainAndReclaimLocked(size_t budget) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaintainLocked(int64_t now, Removals* removed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DrainLanesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetireLocked(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteRemovalLocked(Entry* e, RemovalCause cause, Removals* removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Inserts or replaces (see Put): kOk, kBusy (the room is short: nothing
  // changed, e not consumed), kNoMemory (the index could not grow: e dropped).
  Status PutLocked(uint64_t hash, Entry* e, Reservation reserved, Removals* removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes sure the budget holds `need` on top of `reserved` for a put into
  // this stripe (evicting this stripe's tail, but never `keep`), and gives
  // back what `reserved` has beyond `need`. False if it cannot.
  bool SettleLocked(int64_t need_bytes, int64_t need_entries, Reservation reserved,
                    const Entry* keep, Removals* removed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishLinkedBytesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A write to key: its flight, if any, must not install its result (L8).
  void SupersedeFlightLocked(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SupersedeFlightsWithPrefixLocked(std::string_view prefix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLocked(int64_t now, Removals* removed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReclaimLocked(uint64_t epoch, size_t budget) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Unlinks the entry found at `slot` and retires it.
  void UnlinkLocked(Entry* e, size_t slot, RemovalCause cause, Removals* removed,
                    bool release_budget = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes a linked entry out of the LRU list, wheel and counters (not the index).
  // release_budget false: the entry's count goes to the entry replacing it.
  void DetachLocked(Entry* e, RemovalCause cause, Removals* removed, bool release_budget = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveByEntryLocked(Entry* e, RemovalCause cause, Removals* removed,
                           bool release_budget = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes room for one more used slot, rebuilding the table when needed.
  Status ReserveSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void LruPushFront(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LruUnlink(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Entry* LruTail() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return EntryOrNull(lru_tail_); }
  void PrefetchNextVictimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Budget* const budget_;
  Clock* const clock_;
  const bool collect_removals_;
  const int64_t retain_grace_;
  const size_t retired_bytes_bound_;

  const size_t lane_count_ = LaneCount();
  const size_t lane_mask_ = lane_count_ - 1;
  const std::unique_ptr<Lane[]> lanes_ = std::make_unique<Lane[]>(lane_count_);

  // Readers load it lock-free; written only under mu_, when the table is
  // replaced. On a line of its own: the lock and what every write changes
  // (from linked_bytes_ on) would otherwise take that line away from the readers of
  // the other cores at each write to the stripe.
  alignas(64) std::atomic<SlotTable*> table_;
  // Beside table_ (same line): retired bytes are over the bound and a reader
  // should try to free them. Written under mu_, only when it changes.
  std::atomic<bool> reclaim_due_{false};

  alignas(64) std::atomic<uint64_t> linked_bytes_{0};
  Mutex mu_;
  size_t used_slots_ ABSL_GUARDED_BY(mu_) = 0;         // live + tombstones
  EntryRef lru_head_ ABSL_GUARDED_BY(mu_) = kNoEntry;  // the most recently used
  EntryRef lru_tail_ ABSL_GUARDED_BY(mu_) = kNoEntry;  // the least recently used
  TimerWheel wheel_ ABSL_GUARDED_BY(mu_);              // the linked entries that have a TTL
  bool expire_backlog_ ABSL_GUARDED_BY(mu_) = false;   // due entries left over by the budget
  // No entry in the wheel expires before this (a lower bound: the smallest
  // expiry inserted since the wheel was last empty). CountIfNoneExpired.
  int64_t min_expiry_ ABSL_GUARDED_BY(mu_) = std::numeric_limits<int64_t>::max();
  // Unlinked entries in retirement order (epochs non-decreasing), chained
  // through Entry::retired so retiring never allocates.
  Entry* retired_head_ ABSL_GUARDED_BY(mu_) = nullptr;
  Entry* retired_tail_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t retired_count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t retired_bytes_ ABSL_GUARDED_BY(mu_) =
      0;  // footprints (slot + out-of-line bytes) of the retired list
  std::vector<RetiredTable> retired_tables_ ABSL_GUARDED_BY(mu_);
  uint64_t rebuilds_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t lost_notifications_ ABSL_GUARDED_BY(mu_) = 0;  // only when memory ran out
  // std::unordered_map, not absl::flat_hash_map: the engine uses Abseil only
  // header-only, so static consumers of liblarder.a need no Abseil libraries;
  // this map is touched on misses only. Heterogeneous lookup is C++20.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, std::shared_ptr<Flight>, StringHash, std::equal_to<>> flights_
      ABSL_GUARDED_BY(mu_);
  uint64_t loads_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t load_failures_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t load_time_nanos_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t coalesced_waits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t refreshes_started_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t refreshes_discarded_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t loads_discarded_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> load_timeouts_{0};
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t entries_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t puts_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t expirations_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t invalidations_ ABSL_GUARDED_BY(mu_) = 0;
};

// Declared just before a ReadGuard, so that it runs after the guard ended
// (a thread's own announcement would hold the epoch back).
class ReclaimAfterRead {
 public:
  explicit ReclaimAfterRead(Stripe& stripe) : stripe_(stripe) {}
  ~ReclaimAfterRead() { stripe_.ReclaimIfDue(); }
  ReclaimAfterRead(const ReclaimAfterRead&) = delete;
  ReclaimAfterRead& operator=(const ReclaimAfterRead&) = delete;

 private:
  Stripe& stripe_;
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_STRIPE_H_
