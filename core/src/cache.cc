#include "larder/cache.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

#include "budget.h"
#include "entry.h"
#include "epoch.h"
#include "hash.h"
#include "keyed_mutex.h"
#include "pin_access.h"
#include "refresh_pool.h"
#include "stripe.h"

namespace larder {

using internal::Entry;
using internal::ReadGuard;
using internal::Removals;
using internal::Stripe;

namespace {

// Auto-sizing keeps each stripe big enough that equal per-stripe shares do not
// distort LRU order noticeably (see docs/design.md, "Striping").
constexpr size_t kMinBytesPerAutoStripe = size_t{1} << 20;
// A stripe evicts its own LRU tail (see docs/design.md, "Capacity"): with at
// least this many entries each, that stays within a tenth of a point of exact
// LRU on the shared traces, and a cache of fewer entries keeps exact LRU order
// in one stripe (users of small caches check the order; writes to them are few).
constexpr size_t kMinEntriesPerAutoStripe = 1024;
constexpr size_t kMaxStripes = size_t{1} << 16;
constexpr size_t kMinRetiredBytesBound = size_t{1} << 20;

size_t RoundUpPow2(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

int Log2(size_t pow2) {
  int bits = 0;
  while ((size_t{1} << bits) < pow2) ++bits;
  return bits;
}

size_t ChooseStripeCount(const Options& o) {
  if (o.stripes != 0) return RoundUpPow2(o.stripes);
  size_t hw = std::max(1u, std::thread::hardware_concurrency());
  size_t n = std::max<size_t>(16, RoundUpPow2(4 * hw));
  while (n > 1 &&
         (o.capacity_bytes / n < kMinBytesPerAutoStripe ||
          (o.capacity_entries != 0 && o.capacity_entries / n < kMinEntriesPerAutoStripe))) {
    n /= 2;
  }
  return n;
}

std::shared_ptr<Clock> DefaultClock() {
  static const std::shared_ptr<Clock> clock = std::make_shared<CoarseMonotonicClock>();
  return clock;
}

// Calls a store writer; an exception becomes a failed outcome.
WriteOutcome CallWriter(const StoreWriter& writer, std::string_view key,
                        std::optional<std::string_view> value) {
  try {
    return writer(key, value);
  } catch (const std::exception& ex) {
    return WriteOutcome::Failed(ex.what());
  } catch (...) {
    return WriteOutcome::Failed("the writer threw a non-standard exception");
  }
}

}  // namespace

size_t EntryOverhead() { return internal::kEntryOverheadBytes; }

const char* RemovalCauseName(RemovalCause cause) {
  switch (cause) {
    case RemovalCause::kExplicit:
      return "explicit";
    case RemovalCause::kReplaced:
      return "replaced";
    case RemovalCause::kExpired:
      return "expired";
    case RemovalCause::kEvicted:
      return "evicted";
  }
  return "unknown";
}

// ---- PinnedValue ----

PinnedValue& PinnedValue::operator=(PinnedValue&& other) noexcept {
  if (this != &other) {
    Reset();
    entry_ = other.entry_;
    other.entry_ = nullptr;
  }
  return *this;
}

std::string_view PinnedValue::value() const {
  return entry_ ? entry_->value() : std::string_view();
}
std::string_view PinnedValue::key() const { return entry_ ? entry_->key() : std::string_view(); }

void PinnedValue::Reset() {
  if (entry_ != nullptr) {
    internal::Unref(entry_);
    entry_ = nullptr;
  }
}

// ---- Cache ----

Status Cache::Create(Options options, std::unique_ptr<Cache>* out) {
  if (out == nullptr) return Status::kInvalidArgument;
  out->reset();
  if (options.capacity_bytes == 0) return Status::kInvalidArgument;
  if (options.default_ttl.count() < 0 || options.negative_ttl.count() < 0 ||
      options.error_ttl.count() < 0 || options.default_refresh_delta.count() < 0 ||
      options.stale_while_revalidate.count() < 0 || options.stale_if_error.count() < 0) {
    return Status::kInvalidArgument;
  }
  if (!(options.refresh_beta >= 0) || std::isinf(options.refresh_beta)) {
    return Status::kInvalidArgument;  // negative, NaN or infinite
  }
  if (options.stripes > kMaxStripes) return Status::kInvalidArgument;
  const size_t stripes = ChooseStripeCount(options);
  try {
    out->reset(new Cache(std::move(options), stripes));
  } catch (const std::bad_alloc&) {
    return Status::kNoMemory;
  }
  return Status::kOk;
}

Cache::Cache(Options options, size_t stripe_count)
    : options_(std::move(options)),
      fork_generation_(internal::ForkGeneration()),
      stripe_count_(stripe_count),
      stripe_shift_(64 - Log2(stripe_count)),
      clock_(options_.clock ? options_.clock : DefaultClock()),
      budget_(
          std::make_unique<internal::Budget>(options_.capacity_bytes, options_.capacity_entries)),
      stripes_(new std::unique_ptr<Stripe>[stripe_count]),
      write_locks_(std::make_unique<internal::KeyedMutex>()) {
  const bool collect = static_cast<bool>(options_.removal_listener);
  const int64_t retain_grace =
      std::max(options_.stale_while_revalidate, options_.stale_if_error).count();
  // Removed entries awaiting their grace period hold at most an eighth of
  // the capacity or 1 MiB, whichever is larger, across all stripes (unless a
  // reader holds the epoch back: nothing can be freed under it).
  const size_t retired_bytes_bound =
      std::max<size_t>(options_.capacity_bytes / 8, kMinRetiredBytesBound) / stripe_count_;
  for (size_t i = 0; i < stripe_count_; ++i) {
    stripes_[i] = std::make_unique<Stripe>(budget_.get(), clock_.get(), collect, retain_grace,
                                           retired_bytes_bound);
  }
  if (!options_.refresh_executor) {
    refresh_pool_ = std::make_unique<internal::RefreshPool>(options_.refresh_threads);
  }
}

Cache::~Cache() {
  if (!InheritedAcrossFork()) return;  // the members release everything
  // A child of the process that made this cache: joining the refresh pool
  // would wait for threads that do not exist here, and a stripe lock or
  // write lock held at the fork is held forever. Leave it all as it is.
  (void)refresh_pool_.release();
  (void)stripes_.release();
  (void)budget_.release();
  (void)write_locks_.release();
  new std::shared_ptr<internal::PendingWrites>(std::move(pending_writes_));
}

bool Cache::InheritedAcrossFork() const { return fork_generation_ != internal::ForkGeneration(); }

Stripe& Cache::StripeFor(uint64_t hash) const {
  // A shift by 64 is undefined, and one stripe needs no bits.
  return stripe_count_ == 1 ? *stripes_[0] : *stripes_[hash >> stripe_shift_];
}

Status Cache::CheckKey(std::string_view key) const {
  if (key.empty()) return Status::kEmptyKey;
  if (key.size() > kMaxKeyLength) return Status::kKeyTooLong;
  return Status::kOk;
}

void Cache::NotifyRemovals(Removals& removed) const {
  internal::NotifyRemovals(options_.removal_listener, removed);
}

Status Cache::Put(std::string_view key, std::string_view value, const PutOptions& put) {
  Removals removed;
  Status s = PutCollecting(key, value, put, &removed);
  NotifyRemovals(removed);
  return s;
}

Status Cache::PutCollecting(std::string_view key, std::string_view value, const PutOptions& put,
                            Removals* removed) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  if (put.ttl.count() < 0) return Status::kInvalidArgument;
  const uint64_t hash = internal::HashKey(key);
  Stripe& stripe = StripeFor(hash);
  const int64_t now = clock_->NowNanos();
  const size_t charge = put.charge != 0 ? put.charge : key.size() + value.size() + EntryOverhead();
  if (value.size() > std::numeric_limits<uint32_t>::max() || charge > options_.capacity_bytes ||
      charge > std::numeric_limits<uint32_t>::max()) {
    // Never leave the previous value readable after a put that did not land.
    stripe.Remove(hash, key, RemovalCause::kReplaced, now, removed);
    return Status::kValueTooLarge;
  }
  const int64_t ttl = (put.ttl.count() != 0 ? put.ttl : options_.default_ttl).count();
  int64_t expiry = 0;
  if (ttl > 0 && ttl < std::numeric_limits<int64_t>::max() - now) expiry = now + ttl;
  Entry* e = internal::NewEntry(key, value, expiry, static_cast<uint32_t>(put.charge));
  Status s = Status::kNoMemory;
  for (int attempt = 0; e != nullptr; ++attempt) {
    // First the stripe alone: under its lock it takes from the budget what
    // the put needs (the exact difference for a replacement), evicting its
    // own LRU tail when the cache is full: one lock, no look ahead. Only if
    // it cannot (it holds nothing to evict) is room made elsewhere first.
    internal::Reservation reserved;
    if (attempt > 0) {
      s = ReserveRoom(stripe, hash, key, charge, attempt, &reserved, removed);
      if (s != Status::kOk) {
        internal::Unref(e);
        break;
      }
    }
    s = stripe.Put(hash, e, now, reserved, removed);
    if (s != Status::kBusy) break;
    budget_->Release(reserved.bytes, reserved.entries);
  }
  if (s == Status::kNoMemory || s == Status::kBusy) {
    // As for a value that does not fit: a failed put leaves no stale value.
    stripe.Remove(hash, key, RemovalCause::kReplaced, now, removed);
  }
  return s;
}

Status Cache::ReserveRoom(Stripe& stripe, uint64_t hash, std::string_view key, size_t charge,
                          int attempt, internal::Reservation* reserved, Removals* removed) {
  // A put that replaces an entry needs only the difference: look (without
  // the lock) for the entry it will replace. If that guess is wrong by the
  // time the stripe is locked, Stripe::Put settles the difference or asks
  // again; the third time, reserve in full, which always suffices.
  size_t old_charge = 0;
  bool replaces = false;
  if (attempt < 2) {
    ReadGuard guard;
    if (const Entry* old = stripe.FindAny(hash, key); old != nullptr) {
      replaces = true;
      old_charge = old->charge();
    }
  }
  reserved->bytes = charge > old_charge ? charge - old_charge : 0;
  reserved->entries = replaces ? 0 : 1;
  return MakeRoom(reserved->bytes, reserved->entries, removed);
}

Status Cache::MakeRoom(uint64_t bytes, uint64_t entries, Removals* removed) {
  // Evicts the cache's least recently used entries until the reservation
  // fits. Each eviction locks one stripe, the caller holds none.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (int spins = 0; !budget_->TryReserve(bytes, entries);) {
    if (EvictOne(removed)) continue;
    // Nothing to evict: the room is held by puts of other threads that have
    // reserved but not yet linked their entries. They will, shortly.
    if (++spins % 64 == 0 && std::chrono::steady_clock::now() > give_up) return Status::kBusy;
    std::this_thread::yield();
  }
  return Status::kOk;
}

bool Cache::EvictOne(Removals* removed) {
  // Only for a put or load whose own stripe could not make room (it holds
  // nothing to evict, or too little for a large value): the victim is the
  // LRU tail of the stripe holding the most bytes. That frees the most where
  // bytes are short, and a stripe holding one cold large entry gives it up
  // before hot small ones elsewhere; with entries of similar sizes it is the
  // stripe with the most entries, whose tail is the likeliest to be old.
  // The byte counts are published hints; a stripe emptied meanwhile makes
  // the choice again.
  for (size_t attempt = 0; attempt <= stripe_count_; ++attempt) {
    size_t best = stripe_count_;
    uint64_t most = 0;
    for (size_t i = 0; i < stripe_count_; ++i) {
      const uint64_t n = stripes_[i]->linked_bytes();
      if (n > most) {
        most = n;
        best = i;
      }
    }
    if (best == stripe_count_) return false;
    if (stripes_[best]->EvictTail(clock_->NowNanos(), removed)) return true;
  }
  return false;
}

Status Cache::VisitWith(std::string_view key, void (*fn)(std::string_view, void*), void* context) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  const uint64_t hash = internal::HashKey(key);
  Stripe& stripe = StripeFor(hash);
  bool refresh = false;
  {
    internal::ReclaimAfterRead reclaim(stripe);
    ReadGuard guard;
    Entry* e = stripe.FindAny(hash, key);
    int64_t now = 0;
    // Only entries with a TTL pay for reading the clock.
    if (e != nullptr && e->expires() && e->ExpiredAt(now = clock_->NowNanos())) {
      e = nullptr;  // plain reads are strict: stale values only through GetOrLoad
    }
    if (e == nullptr) {
      std::optional<std::string> pending;
      if (LookupPending(key, &pending)) {  // read-your-writes (write-behind)
        if (!pending) {                    // a pending delete: a miss that must not load
          stripe.RecordMiss(guard.lane());
          return Status::kNotFound;
        }
        fn(*pending, context);
        stripe.RecordHit(nullptr, guard.lane());
        return Status::kOk;
      }
      stripe.RecordMiss(guard.lane());
      return Status::kNotFound;
    }
    if (!e->is_value()) {  // a cached "not found" or error
      stripe.RecordNegativeHit(guard.lane());
      return Status::kNotFound;
    }
    fn(e->value(), context);
    stripe.RecordHit(e, guard.lane());
    // The bit makes one hit start the refresh; the others of a hot key near
    // expiry never reach the stripe lock.
    refresh = e->expires() && options_.loader && ShouldRefreshEarly(e, now) && e->TryStartRefresh();
  }
  if (refresh) StartRefresh(stripe, hash, key, options_.loader);
  return Status::kOk;
}

namespace {
void FillEntryInfo(const Entry* e, int64_t now, EntryInfo* info) {
  info->expires = e->expires();
  info->stale = e->ExpiredAt(now);
  int64_t left = 0;
  if (e->expires() && __builtin_sub_overflow(e->expiry_nanos(), now, &left)) {
    left = std::numeric_limits<int64_t>::max();  // an injected clock far in the past
  }
  info->remaining = std::chrono::nanoseconds(left);
}
}  // namespace

Status Cache::ReadWith(std::string_view key, const ReadOptions& options,
                       void (*fn)(std::string_view, void*), void* context, EntryInfo* info) {
  if (info != nullptr) *info = EntryInfo{};
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  const uint64_t hash = internal::HashKey(key);
  Stripe& stripe = StripeFor(hash);
  bool refresh = false;
  {
    internal::ReclaimAfterRead reclaim(stripe);
    ReadGuard guard;
    Entry* e = stripe.FindAny(hash, key);
    int64_t now = 0;
    bool stale = false;
    if (e != nullptr && e->expires() && e->ExpiredAt(now = clock_->NowNanos())) {
      if (options.allow_stale && e->is_value()) {
        stale = true;
      } else {
        e = nullptr;
      }
    }
    if (e == nullptr) {
      std::optional<std::string> pending;
      if (LookupPending(key, &pending)) {  // read-your-writes (write-behind)
        if (!pending) {
          if (!options.peek) stripe.RecordMiss(guard.lane());
          return Status::kNotFound;
        }
        if (fn != nullptr) fn(*pending, context);
        if (!options.peek) stripe.RecordHit(nullptr, guard.lane());
        return Status::kOk;
      }
      if (!options.peek) stripe.RecordMiss(guard.lane());
      return Status::kNotFound;
    }
    if (!e->is_value()) {
      if (!options.peek) stripe.RecordNegativeHit(guard.lane());
      return Status::kNotFound;
    }
    if (fn != nullptr) fn(e->value(), context);
    if (info != nullptr) {
      if (e->expires() && now == 0) now = clock_->NowNanos();
      FillEntryInfo(e, now, info);
    }
    if (!options.peek) {
      if (stale) {
        stripe.RecordStaleHit(e, guard.lane());
      } else {
        stripe.RecordHit(e, guard.lane());
        if (e->expires() && ShouldRefreshEarly(e, now)) {
          // With a cache loader the engine refreshes, as on every read;
          // without one the caller hears that it should.
          if (options_.loader) {
            refresh = true;
          } else if (info != nullptr) {
            info->refresh_due = true;
          }
        }
      }
    }
  }
  if (refresh) StartRefresh(stripe, hash, key, options_.loader);
  return Status::kOk;
}

Status Cache::Touch(std::string_view key, std::chrono::nanoseconds ttl) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  if (ttl.count() < 0) return Status::kInvalidArgument;
  const uint64_t hash = internal::HashKey(key);
  const int64_t now = clock_->NowNanos();
  const int64_t t = (ttl.count() != 0 ? ttl : options_.default_ttl).count();
  int64_t expiry = 0;
  if (t > 0 && t < std::numeric_limits<int64_t>::max() - now) expiry = now + t;
  Removals removed;
  Status s = StripeFor(hash).Touch(hash, key, expiry, now, &removed);
  NotifyRemovals(removed);
  return s;
}

std::vector<SnapshotEntry> Cache::Snapshot(bool include_stale) {
  const int64_t now = clock_->NowNanos();
  std::vector<std::vector<Entry*>> lists(stripe_count_);
  size_t total = 0;
  for (size_t i = 0; i < stripe_count_; ++i) {
    stripes_[i]->Snapshot(now, include_stale, &lists[i]);
    total += lists[i].size();
  }
  // Merge: the j-th of a stripe's n entries goes at relative rank (j+0.5)/n,
  // the best guess of its global position when keys spread evenly.
  struct Ranked {
    double rank;
    Entry* e;
  };
  std::vector<Ranked> all;
  all.reserve(total);
  for (const std::vector<Entry*>& list : lists) {
    const double n = static_cast<double>(list.size());
    for (size_t j = 0; j < list.size(); ++j) {
      all.push_back({(static_cast<double>(j) + 0.5) / n, list[j]});
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Ranked& a, const Ranked& b) { return a.rank < b.rank; });
  std::vector<SnapshotEntry> out(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    FillEntryInfo(all[i].e, now, &out[i].info);
    out[i].pin = internal::PinAccess::Adopt(all[i].e);  // the snapshot's reference
  }
  return out;
}

Status Cache::Get(std::string_view key, std::string* out) {
  if (out == nullptr) return Status::kInvalidArgument;
  return Visit(key, [out](std::string_view v) { out->assign(v.data(), v.size()); });
}

std::optional<std::string> Cache::Get(std::string_view key) {
  std::string value;
  if (Get(key, &value) != Status::kOk) return std::nullopt;
  return value;
}

Status Cache::GetInto(std::string_view key, void* buffer, size_t buffer_size, size_t* value_size) {
  if (value_size == nullptr || (buffer == nullptr && buffer_size != 0)) {
    return Status::kInvalidArgument;
  }
  bool fits = true;
  Status s = Visit(key, [&](std::string_view v) {
    *value_size = v.size();
    fits = v.size() <= buffer_size;
    if (fits && !v.empty()) std::memcpy(buffer, v.data(), v.size());
  });
  if (s == Status::kOk && !fits) return Status::kBufferTooSmall;
  return s;
}

PinnedValue Cache::Pin(std::string_view key) {
  if (CheckKey(key) != Status::kOk) return PinnedValue();
  const uint64_t hash = internal::HashKey(key);
  Stripe& stripe = StripeFor(hash);
  internal::ReclaimAfterRead reclaim(stripe);
  ReadGuard guard;
  Entry* e = stripe.FindLive(hash, key);
  if (e == nullptr) {
    std::optional<std::string> pending;
    if (LookupPending(key, &pending) && pending) {  // read-your-writes (write-behind)
      Entry* copy = internal::NewEntry(key, *pending, 0);
      if (copy != nullptr) {
        stripe.RecordHit(nullptr, guard.lane());
        return internal::PinAccess::Adopt(copy);
      }
    }
    stripe.RecordMiss(guard.lane());
    return PinnedValue();
  }
  if (!e->is_value()) {
    stripe.RecordNegativeHit(guard.lane());
    return PinnedValue();
  }
  // The guard keeps e's memory alive until the reference is taken, even if e
  // was unlinked meanwhile; the reference then keeps it alive past the guard.
  internal::Ref(e);
  stripe.RecordHit(e, guard.lane());
  return internal::PinAccess::Adopt(e);
}

bool Cache::Contains(std::string_view key) {
  if (CheckKey(key) != Status::kOk) return false;
  const uint64_t hash = internal::HashKey(key);
  {
    ReadGuard guard;
    Entry* e = StripeFor(hash).FindLive(hash, key);
    if (e != nullptr) return e->is_value();
  }
  std::optional<std::string> pending;
  return LookupPending(key, &pending) && pending.has_value();
}

bool Cache::LookupPending(std::string_view key, std::optional<std::string>* value) const {
  if (!has_pending_writes_.load(std::memory_order_acquire)) return false;
  std::shared_ptr<internal::PendingWrites> pending = pending_writes();
  return pending != nullptr && pending->Lookup(key, value);
}

void Cache::AttachPendingWrites(std::shared_ptr<internal::PendingWrites> pending) {
  std::lock_guard<std::mutex> lock(pending_mu_);
  has_pending_writes_.store(pending != nullptr, std::memory_order_release);
  pending_writes_ = std::move(pending);
}

std::shared_ptr<internal::PendingWrites> Cache::pending_writes() const {
  std::lock_guard<std::mutex> lock(pending_mu_);
  return pending_writes_;
}

Status Cache::WriteThrough(std::string_view key, std::string_view value, const StoreWriter& writer,
                           const PutOptions& options, std::string* error) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  if (!writer || options.ttl.count() < 0) return Status::kInvalidArgument;
  Removals removed;
  Status s;
  {
    internal::KeyedMutex::Lock key_lock(write_locks_.get(), key);  // one write of a key at a time
    const WriteOutcome outcome = CallWriter(writer, key, value);
    if (!outcome.ok) {
      if (error != nullptr) *error = outcome.error;
      return Status::kWriteFailed;  // the store did not change, so neither does the cache
    }
    // Put supersedes any load of the key that is running, so it cannot
    // install what it read before this write (L8).
    s = PutCollecting(key, value, options, &removed);
  }
  NotifyRemovals(removed);  // with no lock held: the listener may write this key
  if (s == Status::kValueTooLarge) s = Status::kOk;  // stored; too big to cache (and not stale)
  return s;
}

Status Cache::DeleteThrough(std::string_view key, const StoreWriter& writer, std::string* error) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  if (!writer) return Status::kInvalidArgument;
  Removals removed;
  {
    internal::KeyedMutex::Lock key_lock(write_locks_.get(), key);
    const WriteOutcome outcome = CallWriter(writer, key, std::nullopt);
    if (!outcome.ok) {
      if (error != nullptr) *error = outcome.error;
      return Status::kWriteFailed;
    }
    InvalidateCollecting(key, &removed);
  }
  NotifyRemovals(removed);
  return Status::kOk;
}

Status Cache::Invalidate(std::string_view key) {
  Removals removed;
  Status s = InvalidateCollecting(key, &removed);
  NotifyRemovals(removed);
  return s;
}

Status Cache::InvalidateCollecting(std::string_view key, Removals* removed) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  const uint64_t hash = internal::HashKey(key);
  bool found =
      StripeFor(hash).Remove(hash, key, RemovalCause::kExplicit, clock_->NowNanos(), removed);
  return found ? Status::kOk : Status::kNotFound;
}

size_t Cache::InvalidatePrefix(std::string_view prefix) {
  size_t count = 0;
  Removals removed;
  for (size_t i = 0; i < stripe_count_; ++i) {
    Stripe::PrefixWalk walk;
    bool done = false;
    while (!done) {
      done = stripes_[i]->RemovePrefixChunk(prefix, &walk, clock_->NowNanos(), &removed);
      internal::NotifyRemovals(options_.removal_listener, removed);
    }
    count += walk.removed;
  }
  if (count > 0) CleanUp();  // give the memory back now, not at the next writes
  return count;
}

void Cache::CleanUp() {
  Removals removed;
  for (size_t i = 0; i < stripe_count_; ++i) {
    stripes_[i]->CleanUp(clock_->NowNanos(), &removed);
    internal::NotifyRemovals(options_.removal_listener, removed);
  }
}

void Cache::Clear() { InvalidatePrefix(std::string_view()); }

size_t Cache::CountLive(std::string_view prefix) {
  const bool only_values = options_.negative_ttl.count() == 0 && options_.error_ttl.count() == 0;
  size_t n = 0;
  for (size_t i = 0; i < stripe_count_; ++i) {
    Stripe& stripe = *stripes_[i];
    const int64_t now = clock_->NowNanos();
    size_t count = 0;
    if (prefix.empty() && only_values && stripe.CountIfNoneExpired(now, &count)) {
      n += count;
      continue;
    }
    internal::ReclaimAfterRead reclaim(stripe);
    ReadGuard guard;
    stripe.ForEachLive(prefix, now, [&n](const internal::Entry*) { ++n; });
  }
  // Stripes are counted one after another while entries come and go: an
  // entry evicted from one stripe after it was counted and replaced in
  // another before that one is counted would count twice. The budget's count
  // bounds what the cache holds at any instant.
  return std::min(n, Size());
}

void Cache::ForEachLiveWith(std::string_view prefix,
                            void (*fn)(std::string_view key, std::string_view value, void* context),
                            void* context) {
  for (size_t i = 0; i < stripe_count_; ++i) {
    Stripe& stripe = *stripes_[i];
    const int64_t now = clock_->NowNanos();
    internal::ReclaimAfterRead reclaim(stripe);
    ReadGuard guard;
    stripe.ForEachLive(prefix, now,
                       [&](const internal::Entry* e) { fn(e->key(), e->value(), context); });
  }
}

// The budget's counts: what the stripes hold plus puts under way, so never
// above the bounds, even while stripes are being changed (a sum of per-stripe
// counts read one after another could be).
size_t Cache::Size() const { return budget_->entries.load(std::memory_order_relaxed); }

size_t Cache::Charge() const { return budget_->bytes.load(std::memory_order_relaxed); }

Stats Cache::GetStats() const {
  Stats s;
  for (size_t i = 0; i < stripe_count_; ++i) {
    internal::StripeCounters c = stripes_[i]->Counters();
    s.hits += c.hits;
    s.misses += c.misses;
    s.puts += c.puts;
    s.evictions += c.evictions;
    s.expirations += c.expirations;
    s.invalidations += c.invalidations;
    s.entries += c.entries;
    s.bytes += c.bytes;
    s.dropped_promotions += c.dropped_promotions;
    s.loads += c.loads;
    s.load_failures += c.load_failures;
    s.load_time_nanos += c.load_time_nanos;
    s.coalesced_waits += c.coalesced_waits;
    s.refreshes_started += c.refreshes_started;
    s.refreshes_discarded += c.refreshes_discarded;
    s.loads_discarded += c.loads_discarded;
    s.stale_hits += c.stale_hits;
    s.negative_hits += c.negative_hits;
    s.load_timeouts += c.load_timeouts;
  }
  s.capacity_bytes = options_.capacity_bytes;
  s.capacity_entries = options_.capacity_entries;
  return s;
}

}  // namespace larder
