#include "stripe.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <limits>
#include <thread>

#include "hash.h"

namespace larder::internal {
namespace {

constexpr size_t kInitialSlots = 24;  // two lines of slots

// a + b for a, b >= 0, stopping at INT64_MAX instead of overflowing.
int64_t SaturatingAdd(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

}  // namespace

namespace {
// Entries keep no hash (4 bytes each): the few paths that need one for an
// entry they hold (eviction, expiry, rebuilds) hash its key again.
uint64_t IndexHash(const Entry* e) { return HashKey(e->key()); }
}  // namespace

void NotifyRemovals(const RemovalListener& listener, Removals& removed) {
  for (const Removal& r : removed) {
    if (listener) {
      try {
        listener(r.entry->key(), r.entry->value(), r.cause);
      } catch (...) {
      }
    }
    Unref(r.entry);
  }
  removed.clear();
}

Stripe::Stripe(Budget* budget, Clock* clock, bool collect_removals, int64_t retain_grace,
               size_t retired_bytes_bound)
    : budget_(budget),
      clock_(clock),
      collect_removals_(collect_removals),
      retain_grace_(retain_grace),
      retired_bytes_bound_(retired_bytes_bound),
      wheel_(clock->NowNanos(), retain_grace) {
  SlotTable* table = SlotTable::Create(kInitialSlots);
  if (table == nullptr) throw std::bad_alloc();
  table_.store(table, std::memory_order_release);
}

Stripe::~Stripe() {
  // No caller may use the cache while it is destroyed, so no reader is inside
  // this stripe and everything can be released at once. Pins keep their own
  // references and free their entries later.
  MutexLock lock(&mu_);
  for (EntryRef r = lru_head_; r != kNoEntry;) {
    Entry* e = EntryAt(r);
    r = e->lru.next;
    Unref(e);
  }
  for (Entry* e = retired_head_; e != nullptr;) {
    Entry* next = EntryOrNull(e->retired.next);
    Unref(e);
    e = next;
  }
  for (RetiredTable& r : retired_tables_) SlotTable::Destroy(r.table);
  SlotTable::Destroy(table_.load(std::memory_order_relaxed));
}

// ---- access buffering ----

size_t Stripe::LaneCount() {
  static const size_t count = [] {
    const unsigned threads = std::thread::hardware_concurrency();
    return std::clamp<size_t>(std::bit_ceil(std::max(threads, 1u)), 4, kMaxLanes);
  }();
  return count;
}

void Stripe::RecordAccessSlow(Lane& lane, Entry* e, bool stale) {
  // The lane is full: drain all lanes if the stripe is free, else drop this
  // access. Single-threaded, the lock is always free, so nothing is dropped.
  // (Draining only the own lane, which leaves the other cores' lane lines
  // where they are, measured the same throughput with twice the p99 at two
  // threads: each thread then pays for every drain of its lane itself.)
  if (mu_.TryLock()) {
    DrainLanesLocked();
    mu_.Unlock();
    bool contended = false;
    if (lane.TryPush(e, &contended)) {
      if (stale) lane.stale_pushes.fetch_add(1, std::memory_order_release);
      return;
    }
  }
  lane.dropped.fetch_add(1, std::memory_order_relaxed);
  if (!stale) lane.unpushed_hits.fetch_add(1, std::memory_order_relaxed);
}

void Stripe::DrainLanesLocked() {
  for (size_t i = 0; i < lane_count_; ++i) {
    Lane& lane = lanes_[i];
    uint64_t head = lane.head.load(std::memory_order_relaxed);
    const uint64_t tail = lane.tail.load(std::memory_order_acquire);
    for (; head != tail; ++head) {
      std::atomic<Entry*>& slot = lane.slots[head % kLaneCapacity];
      Entry* e = slot.load(std::memory_order_acquire);
      if (e == nullptr) break;  // claimed but not yet filled: the next drain gets it
      slot.store(nullptr, std::memory_order_relaxed);
      if (!e->linked()) continue;
      // A key read again and again is at the front already: moving it would
      // write its neighbours' links and dirty lines other cores are reading.
      if (lru_head_ != RefOf(e)) {
        LruUnlink(e);
        LruPushFront(e);
      }
    }
    lane.head.store(head, std::memory_order_release);
  }
}

// ---- maintenance ----

void Stripe::CleanUp(int64_t now, Removals* removed) {
  // Two advances end the grace period of everything retired so far, unless
  // a reader is inside a guard right now.
  Epoch::TryAdvance();
  Epoch::TryAdvance();
  // In bounded batches, releasing the lock between them, like every write;
  // until nothing is left to do, or a batch makes no progress (a reader
  // holds the epoch back, or is paused between claiming a lane slot and
  // filling it): CleanUp is best effort and never waits for a reader.
  for (;;) {
    MutexLock lock(&mu_);
    const size_t retired_before = retired_count_;
    const uint64_t expirations_before = expirations_;
    MaintainLocked(now, removed);
    BoundRetiredLocked();
    PublishLinkedBytesLocked();
    const bool more_expired = expire_backlog_;
    const bool more_retired =
        retired_head_ != nullptr && retired_head_->GracePeriodEnded(Epoch::Current());
    const bool progressed = retired_count_ < retired_before || expirations_ > expirations_before;
    if ((!more_expired && !more_retired) || !progressed) return;
  }
}

void Stripe::MaintainLocked(int64_t now, Removals* removed) {
  if (retired_count_ >= kReclaimBatch || !retired_tables_.empty()) Epoch::TryAdvance();
  ExpireLocked(now, removed);
  DrainAndReclaimLocked(kReclaimBudget);
}

void Stripe::DrainAndReclaimLocked(size_t budget) {
  // A lane may name a retired entry. Every reader that could push an entry
  // retired at r finished its push before the epoch reached r + 2; so read
  // the epoch first, then note each lane's tail: once the drains have
  // consumed every lane up to those tails, nothing retired at or before
  // epoch - 2 can be named by a lane any more.
  const uint64_t epoch = Epoch::Current();
  uint64_t tails[kMaxLanes];
  for (size_t i = 0; i < lane_count_; ++i) {
    tails[i] = lanes_[i].tail.load(std::memory_order_acquire);
  }
  DrainLanesLocked();
  for (size_t i = 0; i < lane_count_; ++i) {
    if (lanes_[i].head.load(std::memory_order_relaxed) < tails[i]) return;  // a push in progress
  }
  ReclaimLocked(epoch, budget);
}

void Stripe::BoundRetiredLocked() {
  if (retired_bytes_ > retired_bytes_bound_) {
    // Large values were replaced or removed: do not wait for kReclaimBatch
    // entries (30 replaced 15 MiB values are 450 MiB). Without readers in
    // the way, two advances end every grace period at once.
    Epoch::TryAdvance();
    Epoch::TryAdvance();
    DrainAndReclaimLocked(0);
  }
  const bool due = retired_bytes_ > retired_bytes_bound_;
  if (reclaim_due_.load(std::memory_order_relaxed) != due) {
    reclaim_due_.store(due, std::memory_order_relaxed);
  }
}

void Stripe::ReclaimFromReader() {
  // Best effort: a writer holding the lock bounds the bytes itself.
  if (!mu_.TryLock()) return;
  BoundRetiredLocked();
  mu_.Unlock();
}

void Stripe::ReclaimLocked(uint64_t epoch, size_t budget) {
  // Bounded, so a write after a mass expiry or a Clear frees a batch and the
  // next writes the rest, instead of one write stalling on all of it; past
  // the budget only while the retired bytes exceed their bound.
  while (retired_head_ != nullptr && retired_head_->GracePeriodEnded(epoch) &&
         (budget > 0 || retired_bytes_ > retired_bytes_bound_)) {
    if (budget > 0) --budget;
    Entry* e = retired_head_;
    retired_head_ = EntryOrNull(e->retired.next);
    --retired_count_;
    retired_bytes_ -= e->footprint();
    Unref(e);
  }
  if (retired_head_ == nullptr) retired_tail_ = nullptr;
  size_t n = 0;
  while (n < retired_tables_.size() && retired_tables_[n].epoch + 2 <= epoch) {
    SlotTable::Destroy(retired_tables_[n++].table);
  }
  retired_tables_.erase(retired_tables_.begin(),
                        retired_tables_.begin() + static_cast<ptrdiff_t>(n));
}

void Stripe::RetireLocked(Entry* e) {
  // After the unlinking seq_cst store: the epoch read here is the one the
  // reclamation rule in epoch.h counts from.
  e->retired.next = kNoEntry;
  e->retired.epoch = static_cast<uint32_t>(Epoch::Current());
  if (retired_tail_ != nullptr) {
    retired_tail_->retired.next = RefOf(e);
  } else {
    retired_head_ = e;
  }
  retired_tail_ = e;
  ++retired_count_;
  retired_bytes_ += e->footprint();
}

void Stripe::ExpireLocked(int64_t now, Removals* removed) {
  // Entries stay retain_grace_ past expiry so GetOrLoad can serve them stale;
  // readers never return them as fresh meanwhile. At most kExpireBudget per
  // call: a mass expiry is reclaimed by the following writes (each removes
  // more than it adds), never by one stalled write.
  // (The wheel calls back while mu_ is held; the analysis cannot see into
  // the lambda.)
  expire_backlog_ =
      !wheel_.Advance(now, kExpireBudget, [&](Entry* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        RemoveByEntryLocked(e, RemovalCause::kExpired, removed);
      });
}

bool Stripe::EvictTail(int64_t now, Removals* removed) {
  WriteLock lock(this);
  MaintainLocked(now, removed);  // the buffered uses first: the tail may not be the LRU entry
  if (lru_tail_ == kNoEntry) return false;
  RemoveByEntryLocked(LruTail(), RemovalCause::kEvicted, removed);
  return true;
}

void Stripe::PublishLinkedBytesLocked() {
  // Only when it changed (a full stripe's put of a same-sized entry evicts
  // one and links one). The line is the lock's, which the writer holds.
  if (linked_bytes_.load(std::memory_order_relaxed) != bytes_) {
    linked_bytes_.store(bytes_, std::memory_order_relaxed);
  }
}

// ---- writes ----

Status Stripe::Put(uint64_t hash, Entry* e, int64_t now, Reservation reserved, Removals* removed) {
  WriteLock lock(this);
  MaintainLocked(now, removed);
  SupersedeFlightLocked(e->key());
  return PutLocked(hash, e, reserved, removed);
}

bool Stripe::SettleLocked(int64_t need_bytes, int64_t need_entries, Reservation reserved,
                          const Entry* keep, Removals* removed) {
  // What the put still needs beyond its reservation (negative: a surplus).
  int64_t short_bytes = need_bytes - static_cast<int64_t>(reserved.bytes);
  int64_t short_entries = need_entries - static_cast<int64_t>(reserved.entries);
  // Counts taken over from entries evicted here, handed back if this fails.
  uint64_t taken_bytes = 0, taken_entries = 0;
  while (short_bytes > 0 || short_entries > 0) {
    const uint64_t more_bytes = short_bytes > 0 ? static_cast<uint64_t>(short_bytes) : 0;
    const uint64_t more_entries = short_entries > 0 ? static_cast<uint64_t>(short_entries) : 0;
    if (budget_->TryReserve(more_bytes, more_entries)) {
      short_bytes -= static_cast<int64_t>(more_bytes);
      short_entries -= static_cast<int64_t>(more_entries);
      break;
    }
    // The cache is full: this stripe's own LRU tail makes the room, and the
    // new entry takes over its count directly (no release and re-reserve of
    // the budget's shared line). Other stripes' tails are the caller's
    // business: it holds no lock when it evicts elsewhere.
    Entry* victim = LruTail();
    if (victim != nullptr && victim == keep) {
      victim = EntryOrNull(victim->lru.prev);
    }
    if (victim == nullptr) {
      budget_->Release(taken_bytes, taken_entries);
      return false;
    }
    const uint64_t charge = victim->charge();
    RemoveByEntryLocked(victim, RemovalCause::kEvicted, removed, /*release_budget=*/false);
    PrefetchNextVictimLocked();
    taken_bytes += charge;
    taken_entries += 1;
    short_bytes -= static_cast<int64_t>(charge);
    short_entries -= 1;
  }
  budget_->Release(short_bytes < 0 ? static_cast<uint64_t>(-short_bytes) : 0,
                   short_entries < 0 ? static_cast<uint64_t>(-short_entries) : 0);
  return true;
}

Status Stripe::PutLocked(uint64_t hash, Entry* e, Reservation reserved, Removals* removed) {
  SlotTable* table = table_.load(std::memory_order_relaxed);
  ptrdiff_t slot = table->FindSlot(hash, e->key());
  if (slot >= 0) {
    Entry* old = table->Get(static_cast<size_t>(slot), std::memory_order_relaxed);
    // The new entry takes over the old one's count: settle the difference.
    if (!SettleLocked(static_cast<int64_t>(e->charge()) - static_cast<int64_t>(old->charge()), 0,
                      reserved, old, removed)) {
      return Status::kBusy;
    }
    // Readers see either the old or the new entry, never neither.
    table->Replace(static_cast<size_t>(slot), e);
    DetachLocked(old, RemovalCause::kReplaced, removed, /*release_budget=*/false);
    RetireLocked(old);
  } else {
    if (!SettleLocked(static_cast<int64_t>(e->charge()), 1, reserved, nullptr, removed)) {
      return Status::kBusy;
    }
    if (Status s = ReserveSlotLocked(); s != Status::kOk) {
      budget_->Release(e->charge(), 1);  // the entry is not linked after all
      Unref(e);
      return s;
    }
    table = table_.load(std::memory_order_relaxed);
    bool was_empty = false;
    size_t free_slot = table->FindInsertSlot(hash, &was_empty);
    if (was_empty) ++used_slots_;
    table->Publish(free_slot, e, hash);
  }
  // Under the lock, a load and a store (no locked instruction): the only
  // other writer is a hit setting kRefreshStarted, whose loss is harmless
  // (at worst one more refresh may start).
  e->flags.store(e->flags.load(std::memory_order_relaxed) | Entry::kLinked,
                 std::memory_order_relaxed);
  LruPushFront(e);
  if (e->expires()) {
    wheel_.Insert(e);
    min_expiry_ = std::min(min_expiry_, e->expiry_nanos());
  }
  bytes_ += e->charge();
  ++entries_;
  ++puts_;
  return Status::kOk;
}

Status Stripe::ReserveSlotLocked() {
  SlotTable* table = table_.load(std::memory_order_relaxed);
  if ((used_slots_ + 1) * 4 <= table->slot_count() * 3) return Status::kOk;
  // Rebuild: sized so the live entries fill at most half, which also drops
  // all tombstones. The old table stays readable until its grace period ends.
  // (The last line of slots may be partly used: rounding to whole lines of
  // 12 would lower the load of small tables below 1/2.)
  SlotTable* fresh = SlotTable::Create(std::max(kInitialSlots, (entries_ + 1) * 2));
  if (fresh == nullptr) return Status::kNoMemory;
  try {
    // Geometric growth: reserve(size() + 1) would copy the vector every time.
    if (retired_tables_.size() == retired_tables_.capacity()) {
      retired_tables_.reserve(std::max<size_t>(4, 2 * retired_tables_.capacity()));
    }
  } catch (const std::bad_alloc&) {
    SlotTable::Destroy(fresh);
    return Status::kNoMemory;
  }
  // The old table's slots name exactly the linked entries. Scanning them
  // (an array) instead of the LRU list (a chain of dependent loads) lets
  // the loads of entries' keys (hashed again to place them) overlap: each
  // entry is fetched kAhead entries before it is needed.
  constexpr size_t kAhead = 8;
  Entry* window[kAhead] = {};
  size_t queued = 0;
  auto place = [&](Entry* e) {
    const uint64_t hash = IndexHash(e);
    bool was_empty = false;
    fresh->PublishUnread(fresh->FindInsertSlot(hash, &was_empty), e, hash);
  };
  for (size_t i = 0; i < table->slot_count(); ++i) {
    Entry* e = table->Get(i, std::memory_order_relaxed);
    if (e == nullptr) continue;
    __builtin_prefetch(e);
    Entry*& oldest = window[queued++ % kAhead];
    if (oldest != nullptr) place(oldest);
    oldest = e;
  }
  for (Entry* e : window) {
    if (e != nullptr) place(e);
  }
  used_slots_ = entries_;
  table_.store(fresh, std::memory_order_seq_cst);
  ++rebuilds_;
  retired_tables_.push_back({Epoch::Current(), table});
  return Status::kOk;
}

bool Stripe::Remove(uint64_t hash, std::string_view key, RemovalCause cause, int64_t now,
                    Removals* removed) {
  WriteLock lock(this);
  MaintainLocked(now, removed);
  SupersedeFlightLocked(key);
  SlotTable* table = table_.load(std::memory_order_relaxed);
  ptrdiff_t slot = table->FindSlot(hash, key);
  if (slot < 0) return false;
  Entry* e = table->Get(static_cast<size_t>(slot), std::memory_order_relaxed);
  UnlinkLocked(e, static_cast<size_t>(slot), cause, removed);
  return true;
}

bool Stripe::RemovePrefixChunk(std::string_view prefix, PrefixWalk* walk, int64_t now,
                               Removals* removed) {
  constexpr int kMaxRestarts = 3;
  WriteLock lock(this);
  MaintainLocked(now, removed);
  SlotTable* table = table_.load(std::memory_order_relaxed);
  if (walk->rebuilds_seen != rebuilds_) {
    // First chunk, or the table was rebuilt since the last one and entries
    // moved: (re)start. After a few restarts, finish in one locked pass so a
    // stream of inserts cannot starve the walk.
    if (walk->rebuilds_seen != UINT64_MAX) ++walk->restarts;
    walk->rebuilds_seen = rebuilds_;
    walk->cursor = 0;
  }
  if (walk->cursor == 0) SupersedeFlightsWithPrefixLocked(prefix);
  const size_t chunk = walk->restarts >= kMaxRestarts ? table->slot_count() : kPrefixChunkSlots;
  const size_t end = std::min(walk->cursor + chunk, table->slot_count());
  for (size_t i = walk->cursor; i < end; ++i) {
    Entry* e = table->Get(i, std::memory_order_relaxed);
    if (e == nullptr) continue;
    if (e->key().substr(0, prefix.size()) == prefix) {
      UnlinkLocked(e, i, RemovalCause::kExplicit, removed);
      ++walk->removed;
    }
  }
  walk->cursor = end;
  return end == table->slot_count();
}

void Stripe::RemoveByEntryLocked(Entry* e, RemovalCause cause, Removals* removed,
                                 bool release_budget) {
  SlotTable* table = table_.load(std::memory_order_relaxed);
  ptrdiff_t slot = table->FindEntrySlot(IndexHash(e), e);
  // A linked entry is always in the table (stripe invariant). Were it ever
  // broken, the entry is still taken out of everything else (-1 is no
  // slot to erase).
  assert(slot >= 0);
  if (slot < 0) {
    DetachLocked(e, cause, removed, release_budget);
    RetireLocked(e);
    return;
  }
  UnlinkLocked(e, static_cast<size_t>(slot), cause, removed, release_budget);
}

void Stripe::UnlinkLocked(Entry* e, size_t slot, RemovalCause cause, Removals* removed,
                          bool release_budget) {
  table_.load(std::memory_order_relaxed)->Erase(slot);
  DetachLocked(e, cause, removed, release_budget);
  RetireLocked(e);
}

void Stripe::DetachLocked(Entry* e, RemovalCause cause, Removals* removed, bool release_budget) {
  LruUnlink(e);
  if (e->in_wheel()) {
    wheel_.Remove(e);
    if (wheel_.size() == 0) min_expiry_ = std::numeric_limits<int64_t>::max();
  }
  e->flags.store(e->flags.load(std::memory_order_relaxed) & ~Entry::kLinked,
                 std::memory_order_relaxed);
  bytes_ -= e->charge();
  --entries_;
  if (release_budget) budget_->Release(e->charge(), 1);
  switch (cause) {
    case RemovalCause::kEvicted:
      ++evictions_;
      break;
    case RemovalCause::kExpired:
      ++expirations_;
      break;
    case RemovalCause::kExplicit:
      ++invalidations_;
      break;
    case RemovalCause::kReplaced:
      break;
  }
  if (collect_removals_ && removed != nullptr) NoteRemovalLocked(e, cause, removed);
}

void Stripe::NoteRemovalLocked(Entry* e, RemovalCause cause, Removals* removed) {
  try {
    removed->push_back({e, cause});
    Ref(e);
  } catch (const std::bad_alloc&) {
    ++lost_notifications_;  // the removal stands; only its notification is lost
  }
}

bool Stripe::CountIfNoneExpired(int64_t now, size_t* count) {
  MutexLock lock(&mu_);
  if (min_expiry_ <= now) return false;  // some entry may have expired: the caller walks
  *count = entries_;
  return true;
}

StripeCounters Stripe::Counters() {
  StripeCounters c;
  for (size_t i = 0; i < lane_count_; ++i) {
    Lane& lane = lanes_[i];
    // Every push but a stale hit's was a hit (Lane). A stale push is counted
    // (release) after its tail increment, so reading the count first
    // (acquire) and the tail after never gives a negative difference.
    const uint64_t stale_pushes = lane.stale_pushes.load(std::memory_order_acquire);
    c.hits += lane.tail.load(std::memory_order_relaxed) - stale_pushes +
              lane.unpushed_hits.load(std::memory_order_relaxed);
    c.misses += lane.misses.load(std::memory_order_relaxed);
    c.dropped_promotions += lane.dropped.load(std::memory_order_relaxed);
    c.stale_hits += lane.stale_hits.load(std::memory_order_relaxed);
    c.negative_hits += lane.negative_hits.load(std::memory_order_relaxed);
  }
  c.load_timeouts = load_timeouts_.load(std::memory_order_relaxed);
  MutexLock lock(&mu_);
  c.loads = loads_;
  c.load_failures = load_failures_;
  c.load_time_nanos = load_time_nanos_;
  c.coalesced_waits = coalesced_waits_;
  c.refreshes_started = refreshes_started_;
  c.refreshes_discarded = refreshes_discarded_;
  c.loads_discarded = loads_discarded_;
  c.puts = puts_;
  c.evictions = evictions_;
  c.expirations = expirations_;
  c.invalidations = invalidations_;
  c.entries = entries_;
  c.bytes = bytes_;
  return c;
}

// ---- loading ----

JoinOutcome Stripe::JoinOrLead(const void* owner, uint64_t hash, std::string_view key, int64_t now,
                               Removals* removed) {
  WriteLock lock(this);
  MaintainLocked(now, removed);
  JoinOutcome out;
  SlotTable* table = table_.load(std::memory_order_relaxed);
  if (ptrdiff_t slot = table->FindSlot(hash, key); slot >= 0) {
    Entry* e = table->Get(static_cast<size_t>(slot), std::memory_order_relaxed);
    if (!e->ExpiredAt(now)) {  // installed between the caller's lock-free look and now
      LruUnlink(e);            // a use: promote it here, under the lock
      LruPushFront(e);
      Ref(e);
      out.entry = e;
      return out;
    }
  }
  auto it = flights_.find(key);
  if (it != flights_.end()) {
    out.flight = it->second;
    bool expected = false;
    if (out.flight->refresh &&
        out.flight->claimed.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      // A refresh still waiting in the queue: lead it rather than wait behind
      // the queue (its task will find it claimed and do nothing).
      out.lead = true;
      ++loads_;
      return out;
    }
    ++coalesced_waits_;
    return out;
  }
  out.flight = std::make_shared<Flight>(owner, this, std::string(key), hash, now, false);
  out.flight->claimed.store(true, std::memory_order_relaxed);
  flights_.emplace(out.flight->key, out.flight);
  ++loads_;
  out.lead = true;
  return out;
}

std::shared_ptr<Flight> Stripe::BeginRefresh(const void* owner, uint64_t hash, std::string_view key,
                                             int64_t now) {
  MutexLock lock(&mu_);
  if (flights_.contains(key)) return nullptr;  // joined
  auto flight = std::make_shared<Flight>(owner, this, std::string(key), hash, now, true);
  flights_.emplace(flight->key, flight);
  ++refreshes_started_;
  return flight;
}

FinishOutcome Stripe::FinishFlight(Flight* flight, Entry* e, bool failed, int64_t now,
                                   int64_t stale_if_error, Reservation reserved,
                                   Removals* removed) {
  WriteLock lock(this);
  MaintainLocked(now, removed);
  // The reservation goes back unless an entry is linked with it.
  struct GiveBack {
    Budget* budget;
    Reservation reserved;
    bool used = false;
    ~GiveBack() {
      if (!used) budget->Release(reserved.bytes, reserved.entries);
    }
  } give_back{budget_, reserved};
  FinishOutcome out;
  if (flight->mapped) {
    flights_.erase(flight->key);
    flight->mapped = false;
  }
  load_time_nanos_ += static_cast<uint64_t>(std::max<int64_t>(0, now - flight->start_nanos));
  if (failed) ++load_failures_;
  if (flight->superseded) {  // a write raced with the load: it wins (L8)
    ++(flight->refresh ? refreshes_discarded_ : loads_discarded_);
    return out;
  }
  SlotTable* table = table_.load(std::memory_order_relaxed);
  ptrdiff_t slot = table->FindSlot(flight->hash, flight->key);
  Entry* current =
      slot >= 0 ? table->Get(static_cast<size_t>(slot), std::memory_order_relaxed) : nullptr;
  if (failed) {
    // The entry stays: a later hit may try to refresh it again.
    if (current != nullptr) current->AllowRefresh();
    if (current != nullptr && current->is_value() && current->expires() && stale_if_error > 0 &&
        now < SaturatingAdd(current->expiry_nanos(), stale_if_error)) {
      Ref(current);  // stale-if-error (L7): the old value instead of the error
      out.fallback = current;
      return out;
    }
    // Never replace a good value by a cached error.
    if (current != nullptr && current->is_value() && !current->ExpiredAt(now)) return out;
  }
  const bool installable = e != nullptr && e->charge() <= budget_->max_bytes;
  if (!installable) {
    // The load's answer cannot be cached, so the older entry must not
    // survive it either (a refresh that learns the key is gone, say).
    if (current != nullptr && !failed) {
      UnlinkLocked(current, static_cast<size_t>(slot), RemovalCause::kReplaced, removed);
    }
    return out;
  }
  Ref(e);  // the cache's reference: PutLocked links it, or drops it on kNoMemory
  const Status s = PutLocked(flight->hash, e, reserved, removed);
  give_back.used = s != Status::kBusy;
  out.installed = s == Status::kOk;
  if (s == Status::kBusy) {
    // No room could be had (other threads hold what is free): the load is
    // not cached, and the older entry must not outlive it.
    Unref(e);
    if (current != nullptr) {
      UnlinkLocked(current, static_cast<size_t>(slot), RemovalCause::kReplaced, removed);
    }
  }
  return out;
}

void Stripe::SupersedeFlightLocked(std::string_view key) {
  if (flights_.empty()) return;
  auto it = flights_.find(key);
  if (it == flights_.end()) return;
  it->second->superseded = true;
  it->second->mapped = false;
  flights_.erase(it);
}

void Stripe::SupersedeFlightsWithPrefixLocked(std::string_view prefix) {
  for (auto it = flights_.begin(); it != flights_.end();) {
    if (std::string_view(it->first).substr(0, prefix.size()) == prefix) {
      it->second->superseded = true;
      it->second->mapped = false;
      flights_.erase(it++);
    } else {
      ++it;
    }
  }
}

// ---- inspection and caller-led refreshes ----

Status Stripe::Touch(uint64_t hash, std::string_view key, int64_t expiry, int64_t now,
                     Removals* removed) {
  WriteLock lock(this);
  MaintainLocked(now, removed);
  SlotTable* table = table_.load(std::memory_order_relaxed);
  ptrdiff_t slot = table->FindSlot(hash, key);
  if (slot < 0) return Status::kNotFound;
  Entry* old = table->Get(static_cast<size_t>(slot), std::memory_order_relaxed);
  if (!old->is_value() || old->ExpiredAt(now)) return Status::kNotFound;
  // Entries are immutable once published (readers copy them without a
  // lock), so the new expiry goes into a copy that takes the old one's place.
  Entry* e = NewEntry(old->key(), old->value(), expiry, old->custom_charge(), old->kind(),
                      old->delta_micros());
  if (e == nullptr) return Status::kNoMemory;
  table->Replace(static_cast<size_t>(slot), e);
  // Same place in the LRU list, same charge: bytes_, entries_ and the
  // budget's counts stay (the copy takes over the old entry's).
  const EntryRef ref = RefOf(e);
  e->lru = old->lru;
  if (e->lru.prev != kNoEntry) {
    EntryAt(e->lru.prev)->lru.next = ref;
  } else {
    lru_head_ = ref;
  }
  if (e->lru.next != kNoEntry) {
    EntryAt(e->lru.next)->lru.prev = ref;
  } else {
    lru_tail_ = ref;
  }
  old->lru.prev = old->lru.next = kNoEntry;
  if (old->in_wheel()) wheel_.Remove(old);
  old->flags.store(old->flags.load(std::memory_order_relaxed) & ~Entry::kLinked,
                   std::memory_order_relaxed);
  e->flags.store(e->flags.load(std::memory_order_relaxed) | Entry::kLinked,
                 std::memory_order_relaxed);
  if (expiry != 0) {
    wheel_.Insert(e);
    min_expiry_ = std::min(min_expiry_, expiry);
  } else if (wheel_.size() == 0) {
    min_expiry_ = std::numeric_limits<int64_t>::max();
  }
  RetireLocked(old);
  return Status::kOk;
}

void Stripe::Snapshot(int64_t now, bool include_stale, std::vector<Entry*>* out) {
  WriteLock lock(this);
  DrainLanesLocked();
  out->reserve(out->size() + entries_);
  for (EntryRef r = lru_head_; r != kNoEntry; r = EntryAt(r)->lru.next) {
    Entry* e = EntryAt(r);
    if (!e->is_value() || (!include_stale && e->ExpiredAt(now))) continue;
    Ref(e);
    out->push_back(e);
  }
}

std::shared_ptr<Flight> Stripe::LeadRefresh(const void* owner, uint64_t hash, std::string_view key,
                                            int64_t now, bool* lead) {
  MutexLock lock(&mu_);
  if (auto it = flights_.find(key); it != flights_.end()) {
    std::shared_ptr<Flight> flight = it->second;
    bool unclaimed = false;
    *lead = flight->refresh &&
            flight->claimed.compare_exchange_strong(unclaimed, true, std::memory_order_acq_rel);
    if (!*lead) ++coalesced_waits_;
    return flight;
  }
  auto flight = std::make_shared<Flight>(owner, this, std::string(key), hash, now, true);
  flight->claimed.store(true, std::memory_order_relaxed);
  flights_.emplace(flight->key, flight);
  ++refreshes_started_;
  *lead = true;
  return flight;
}

// ---- LRU list ----

void Stripe::LruPushFront(Entry* e) {
  const EntryRef ref = RefOf(e);
  e->lru.prev = kNoEntry;
  e->lru.next = lru_head_;
  if (lru_head_ != kNoEntry) {
    EntryAt(lru_head_)->lru.prev = ref;
  } else {
    lru_tail_ = ref;
  }
  lru_head_ = ref;
}

void Stripe::PrefetchNextVictimLocked() {
  // A full stripe's next insert evicts its new tail (this eviction just
  // loaded it). What that eviction writes besides the tail is cold: the
  // index slot, and the list and wheel neighbours it unlinks from. Start
  // loading them now, so they arrive while other work goes on.
  const Entry* tail = LruTail();
  if (tail == nullptr) return;
  if (tail->lru.prev != kNoEntry) __builtin_prefetch(EntryAt(tail->lru.prev), 1);
  if (tail->in_wheel()) {
    __builtin_prefetch(&EntryAt(tail->ttl().timer_prev)->ttl(), 1);
    __builtin_prefetch(&EntryAt(tail->ttl().timer_next)->ttl(), 1);
  }
  SlotTable* table = table_.load(std::memory_order_relaxed);
  __builtin_prefetch(table->LineOf(table->Home(IndexHash(tail))), 1);
}

void Stripe::LruUnlink(Entry* e) {
  const EntryRef prev = e->lru.prev;
  const EntryRef next = e->lru.next;
  if (prev != kNoEntry) {
    EntryAt(prev)->lru.next = next;
  } else {
    lru_head_ = next;
  }
  if (next != kNoEntry) {
    EntryAt(next)->lru.prev = prev;
  } else {
    lru_tail_ = prev;
  }
  e->lru.prev = e->lru.next = kNoEntry;
}

}  // namespace larder::internal
