// Larder: an in-process, concurrent, size-bounded LRU cache with per-entry TTLs.
//
// Quick reference
//   auto cache = larder::Cache::Create(options);    // Status + unique_ptr
//   cache->Put("user:42", bytes, {.ttl = 30s});
//   std::string v; if (cache->Get("user:42", &v) == larder::Status::kOk) ...
//   larder::PinnedValue p = cache->Pin("user:42");  // zero-copy, survives eviction
//   cache->Invalidate("user:42"); cache->InvalidatePrefix("user:");
//
// Keys and values are byte strings: binary-safe, values may be empty, keys may
// not. A key is at most kMaxKeyLength bytes. Every method is thread-safe.
// Reads (Get, Pin, Contains) take no lock in the common case; writes lock one
// stripe. Removal listeners run with no lock of the cache held (stripe locks
// and the per-key locks of write-through and write-behind alike) and may call
// back into the cache, writing the same key included.
//
// No Abseil or xxHash type appears in this header on purpose: callers build
// against the standard library only.
#ifndef LARDER_CACHE_H_
#define LARDER_CACHE_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "larder/clock.h"
#include "larder/loading.h"
#include "larder/pinned_value.h"
#include "larder/status.h"
#include "larder/write_behind.h"

namespace larder {

class TieredCache;

namespace internal {
struct Entry;
struct Flight;
class Stripe;
class RefreshPool;
class KeyedMutex;
struct Removals;
struct Budget;
struct Reservation;
// What a write-behind queue tells the cache about keys with pending writes.
class PendingWrites {
 public:
  virtual ~PendingWrites() = default;
  // True if key has a pending write; *value is its value (nullopt: a delete).
  virtual bool Lookup(std::string_view key, std::optional<std::string>* value) = 0;
};
}  // namespace internal

// Longest accepted key, in bytes. Longer keys get Status::kKeyTooLong.
inline constexpr size_t kMaxKeyLength = 65535;

// Bytes charged to the capacity for every entry on top of its key and value:
// the entry header plus its share of the index. Stable within a release.
size_t EntryOverhead();

enum class RemovalCause {
  kExplicit,  // Invalidate, InvalidatePrefix, Clear
  kReplaced,  // a Put of the same key
  kExpired,   // its TTL passed
  kEvicted,   // removed to stay within capacity
};
const char* RemovalCauseName(RemovalCause cause);

// Called once per removed entry, with no cache lock held, on the thread that
// made the change (or, for expiry, on the thread whose call reclaimed it). The
// views are valid only during the call.
using RemovalListener =
    std::function<void(std::string_view key, std::string_view value, RemovalCause cause)>;

struct Options {
  // Upper bound on the sum of charges (key + value + EntryOverhead()) of the
  // whole cache. Required. One entry may use all of it.
  size_t capacity_bytes = 0;
  // Optional upper bound on the number of entries of the whole cache; 0 means
  // no entry bound. A cache of N entries holds N distinct keys before it
  // evicts.
  size_t capacity_entries = 0;
  // Number of stripes (lock and index shards), rounded up to a power of two;
  // 0 picks max(16, 4 x hardware threads), halved while a stripe would get
  // under 32 KiB or 32 entries of the capacity. The bounds are the whole
  // cache's whatever the stripes: eviction picks the least recently used of
  // the stripes' LRU tails.
  size_t stripes = 0;
  // TTL for puts that give none; zero means entries do not expire.
  std::chrono::nanoseconds default_ttl{0};
  // Monotonic time source; nullptr means the coarse system monotonic clock.
  std::shared_ptr<Clock> clock;
  RemovalListener removal_listener;

  // ---- loading (loading.h) ----
  // The cache's own loader (like Caffeine's LoadingCache): used by GetOrLoad
  // calls that give none, and by background refreshes that plain Gets start.
  Loader loader;
  // How long a loader's "not found" is cached; zero disables negative caching.
  std::chrono::nanoseconds negative_ttl{0};
  // How long a loader's error is cached; zero (the default) never caches one.
  std::chrono::nanoseconds error_ttl{0};
  // Probabilistic early refresh (XFetch): on a fresh hit with remaining time
  // r, a refresh starts with probability exp(-r / (delta * beta)), delta being
  // how long the entry took to load (kept with the entry's expiry: an entry
  // loaded without a TTL that gets one from Touch uses default_refresh_delta).
  // Zero disables; negative is invalid.
  double refresh_beta = 1.0;
  // Delta for entries that did not come from a loader (Put); zero means such
  // entries are not refreshed early.
  std::chrono::nanoseconds default_refresh_delta{0};
  // Stale-while-revalidate: within this long after expiry, GetOrLoad returns
  // the old value (stale) and starts one refresh. Background refreshes (this
  // and early refresh) use only `loader` above, never a loader passed to one
  // call, since that may capture the caller's stack: without a cache loader,
  // GetOrLoad loads in the caller instead.
  std::chrono::nanoseconds stale_while_revalidate{0};
  // Stale-if-error: within this long after expiry, a failed load returns the
  // old value (stale) instead of the error.
  std::chrono::nanoseconds stale_if_error{0};
  // Threads of the cache's own refresh pool, started on first use.
  size_t refresh_threads = 1;
  // Runs background refreshes instead of the pool when set.
  std::function<void(std::function<void()> task)> refresh_executor;
  // Seeds the early-refresh random draws (per thread) for reproducible tests;
  // zero seeds from std::random_device.
  uint64_t random_seed = 0;
};

struct PutOptions {
  // Time to live; zero uses Options::default_ttl. Negative is invalid.
  std::chrono::nanoseconds ttl{0};
  // When non-zero, the entry counts this many bytes toward capacity_bytes
  // instead of key + value + overhead (a custom weight, as Caffeine's weigher).
  size_t charge = 0;
};

// How Cache::Read looks an entry up.
struct ReadOptions {
  // A look only: no LRU promotion, no hit or miss counted, no early refresh.
  bool peek = false;
  // Also return an expired value the cache still keeps (it keeps them for
  // max(stale_while_revalidate, stale_if_error) past their expiry), marked
  // stale in the EntryInfo.
  bool allow_stale = false;
};

// What Cache::Read and Cache::Snapshot report about an entry.
struct EntryInfo {
  bool stale = false;    // past its TTL
  bool expires = false;  // false: the entry has no TTL
  // Time until expiry (negative once stale); zero when it does not expire.
  std::chrono::nanoseconds remaining{0};
  // Early refresh (L6) drew for this hit and says: refresh it now. Read only
  // reports it; a caller without a cache loader starts the refresh itself
  // (BeginRefresh). Never set by peeks or for stale values.
  bool refresh_due = false;
};

// One entry of Cache::Snapshot: its key and value (pinned) and its info.
struct SnapshotEntry {
  PinnedValue pin;  // pin.key(), pin.value()
  EntryInfo info;
};

struct Stats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t puts = 0;
  uint64_t evictions = 0;
  uint64_t expirations = 0;
  uint64_t invalidations = 0;  // entries removed by Invalidate/Prefix/Clear
  uint64_t entries = 0;        // current
  uint64_t bytes = 0;          // current sum of charges
  uint64_t capacity_bytes = 0;
  uint64_t capacity_entries = 0;
  // Accesses that were not applied to the LRU order because the stripe was
  // busy and its access buffer full (only under contention; see docs/design.md).
  uint64_t dropped_promotions = 0;
  // Loading (GetOrLoad, BeginFetch and refreshes).
  uint64_t loads = 0;                // flights started by a miss
  uint64_t load_failures = 0;        // loads and refreshes that ended in an error
  uint64_t load_time_nanos = 0;      // total time of loads and refreshes, start to completion
  uint64_t coalesced_waits = 0;      // callers that joined another caller's flight
  uint64_t refreshes_started = 0;    // early refreshes and stale-while-revalidate
  uint64_t refreshes_discarded = 0;  // refresh results not installed: a write raced
  uint64_t loads_discarded = 0;      // load results not installed: a write raced
  uint64_t stale_hits = 0;           // stale values served (not counted in hits)
  uint64_t negative_hits = 0;        // cached not-found / error answers (not in hits)
  uint64_t load_timeouts = 0;        // waiters whose deadline passed first
  double hit_ratio() const {
    uint64_t total = hits + misses;
    return total == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(total);
  }
};

class Cache {
 public:
  // Validates options (non-zero capacity, sane stripes) and builds a cache.
  static Status Create(Options options, std::unique_ptr<Cache>* out);
  // In a child process after fork(), a cache the parent created may only be
  // destroyed: its refresh threads and any locks held at the fork belong to
  // the parent, so the destructor then returns at once and releases nothing
  // (the memory is the parent's, shared copy-on-write). Any other use of it
  // in the child is undefined (the C ABI answers LARDER_FORKED). A child may
  // create and use caches of its own as usual.
  ~Cache();
  // True in a child process for a cache created before the fork.
  bool InheritedAcrossFork() const;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // Inserts or replaces, evicting least recently used entries (of the whole
  // cache) to stay within the bounds. kValueTooLarge when the charge exceeds
  // capacity_bytes: the value is not stored and any old value of the key is
  // removed (a failed put never leaves a stale value readable).
  Status Put(std::string_view key, std::string_view value, const PutOptions& options = {});

  // Copies the value into *out. kNotFound on a miss or an expired entry.
  Status Get(std::string_view key, std::string* out);
  std::optional<std::string> Get(std::string_view key);

  // Copies into a caller buffer. On kOk or kBufferTooSmall, *value_size is the
  // value's full length; on kBufferTooSmall nothing is copied.
  Status GetInto(std::string_view key, void* buffer, size_t buffer_size, size_t* value_size);

  // Zero-copy read: an empty PinnedValue on a miss (or a bad key).
  PinnedValue Pin(std::string_view key);

  // Calls fn(value) with the value while it is guaranteed alive; fn must not
  // block for long (it delays memory reclamation) and must not keep the view.
  // Returns kNotFound without calling fn on a miss.
  template <typename Fn>
  Status Visit(std::string_view key, Fn&& fn) {
    return VisitWith(key, &Cache::CallVisitor<std::remove_reference_t<Fn>>, &fn);
  }
  // The same without templates: fn(value, context).
  Status VisitWith(std::string_view key, void (*fn)(std::string_view value, void* context),
                   void* context);

  // Get with choices (ReadOptions) and details (EntryInfo, may be null):
  // calls fn(value, context) as VisitWith does. kNotFound on a miss, for an
  // expired entry unless allow_stale, and for a cached "not found" or error.
  Status ReadWith(std::string_view key, const ReadOptions& options,
                  void (*fn)(std::string_view value, void* context), void* context,
                  EntryInfo* info);
  template <typename Fn>
  Status Read(std::string_view key, const ReadOptions& options, Fn&& fn, EntryInfo* info) {
    return ReadWith(key, options, &Cache::CallVisitor<std::remove_reference_t<Fn>>, &fn, info);
  }

  // Restarts the TTL of key's live value: it now expires `ttl` from now (zero:
  // Options::default_ttl; no expiry if that is zero too). The value, its LRU
  // position and any running load are left alone and nothing is reported
  // removed. kNotFound when there is no live value.
  Status Touch(std::string_view key, std::chrono::nanoseconds ttl);

  // Every value in the cache with its key and info, most recently used first
  // (buffered accesses are applied first); expired values the cache still
  // keeps only when include_stale. Exact LRU order within a stripe; the
  // stripes' lists are merged by relative rank (exact with one stripe). The
  // pins keep the values readable however long the snapshot is kept.
  std::vector<SnapshotEntry> Snapshot(bool include_stale);

  // ---- loading (loading.h) ----
  // Returns the cached value or loads it: at most one load per key at a time
  // (L1), run on this thread with no lock held (L2).
  FetchResult GetOrLoad(std::string_view key, const FetchOptions& options);
  FetchResult GetOrLoad(std::string_view key, Loader loader);
  FetchResult GetOrLoad(std::string_view key);  // with Options::loader
  // GetOrLoad for callers that copy the value out (the C ABI's
  // larder_get_or_load_copy, the bindings): a hit offers the value to
  // take(value, context) while the entry is guarded, and pins nothing, so it
  // writes no reference count on the entry's line. take returns true when it
  // took (copied) the value: result.value then stays empty. When take
  // declines (the value does not fit the caller's buffer, say), and for a
  // value that was loaded or waited for, result.value holds the value pinned,
  // as GetOrLoad's does. As for VisitWith, take must be quick and must not
  // keep the view.
  FetchResult GetOrLoadWith(std::string_view key, const FetchOptions& options,
                            bool (*take)(std::string_view value, void* context), void* context);
  // The asynchronous form (L9): never blocks on a load.
  FetchLookup BeginFetch(std::string_view key, const FetchOptions& options = {});
  // Starts a background refresh of key with the cache's loader (joining any
  // flight for it); returns at once. kInvalidArgument without a cache loader.
  Status Refresh(std::string_view key);
  // A refresh the caller runs itself (for runtimes whose loaders are their
  // own, like forceRefresh or early refresh in a binding): kLead with a lease
  // to complete as BeginFetch's (the current value stays readable meanwhile;
  // a value installs, "not found" removes it, an error keeps it), or kWait
  // with a ticket when a load or refresh of the key is already under way, or
  // kDone when a pending write-behind write answers (the store is behind it).
  FetchLookup BeginRefresh(std::string_view key);

  // ---- writing to a store (write_behind.h) ----
  // Write-through (W1): runs writer(key, value) first, with no cache lock
  // held; on success installs the value, on failure leaves the cache as it
  // was and returns kWriteFailed (with the writer's message in *error).
  // Write-throughs of one key are serialised, so the cache ends with the
  // value of the last completed write; other keys run in parallel. A load of
  // the key that was running meanwhile will not install its older value.
  Status WriteThrough(std::string_view key, std::string_view value, const StoreWriter& writer,
                      const PutOptions& options = {}, std::string* error = nullptr);
  // Deletes from the store, then invalidates (same rules).
  Status DeleteThrough(std::string_view key, const StoreWriter& writer,
                       std::string* error = nullptr);

  // True when a live (unexpired) entry exists. Counts neither hit nor miss and
  // does not refresh the entry's LRU position.
  bool Contains(std::string_view key);

  // kOk when an entry was removed, kNotFound when there was none.
  Status Invalidate(std::string_view key);
  // Removes every entry whose key starts with prefix (an empty prefix matches
  // all); returns how many. Work is proportional to the cache size; stripes are
  // processed in short locked batches so other callers are never held up long.
  size_t InvalidatePrefix(std::string_view prefix);
  void Clear();

  // Does now the housekeeping that writes otherwise do as they go: applies
  // buffered LRU accesses, removes expired entries and frees the memory of
  // removed entries no reader can still see. Never required for correctness.
  void CleanUp();

  // The live entries whose key starts with prefix (an empty prefix matches
  // all): unexpired values, not cached "not found"s or errors. Neither counts
  // as a hit or miss nor changes the LRU order. Entries written or removed
  // during the call may or may not be seen (there is no global snapshot).
  // CountLive without a prefix is O(stripes) while no entry has expired and
  // no negative or error caching is configured; otherwise, like ForEachLive,
  // a lock-free walk of the index, O(entries).
  size_t CountLive(std::string_view prefix = {});
  // Calls fn(key, value, context) for each, stripe by stripe, with no lock
  // held but inside a read-side critical section: fn must not block for long
  // (it delays memory reclamation) nor keep the views.
  void ForEachLiveWith(std::string_view prefix,
                       void (*fn)(std::string_view key, std::string_view value, void* context),
                       void* context);
  template <typename Fn>
  void ForEachLive(std::string_view prefix, Fn&& fn) {
    ForEachLiveWith(
        prefix,
        [](std::string_view k, std::string_view v, void* f) {
          (*static_cast<std::remove_reference_t<Fn>*>(f))(k, v);
        },
        &fn);
  }

  // Entries and sum of charges right now, counting puts under way: never
  // above the bounds, and exact when no put is under way.
  size_t Size() const;
  size_t Charge() const;
  Stats GetStats() const;
  size_t stripe_count() const { return stripe_count_; }

 private:
  friend class LoadLease;
  friend class WriteBehind;
  friend class TieredCache;  // its reads that bypass L1 still answer from a pending write
  // Read-your-writes for write-behind: consulted on misses only.
  void AttachPendingWrites(std::shared_ptr<internal::PendingWrites> pending);
  std::shared_ptr<internal::PendingWrites> pending_writes() const;
  bool LookupPending(std::string_view key, std::optional<std::string>* value) const;
  internal::KeyedMutex& write_locks() { return *write_locks_; }
  // Put and Invalidate that leave the listener calls to the caller: the
  // removals go to *removed, to be passed to NotifyRemovals once the caller
  // holds no lock (a per-key write lock included: a listener may write the
  // same key, or another thread's).
  Status PutCollecting(std::string_view key, std::string_view value, const PutOptions& options,
                       internal::Removals* removed);
  Status InvalidateCollecting(std::string_view key, internal::Removals* removed);
  void NotifyRemovals(internal::Removals& removed) const;
  Cache(Options options, size_t stripe_count);
  // from_loader: false for failures the loader did not report ("load
  // abandoned", "refresh dropped"), which are never cached as errors.
  FetchResult CompleteFlight(const std::shared_ptr<internal::Flight>& flight, LoadResult result,
                             bool from_loader);
  void StartRefresh(internal::Stripe& stripe, uint64_t hash, std::string_view key,
                    const Loader& loader);
  bool ShouldRefreshEarly(const internal::Entry* e, int64_t now) const;
  LoadResult RunLoader(const Loader& loader, const internal::Flight& flight);
  template <typename Fn>
  static void CallVisitor(std::string_view value, void* fn) {
    (*static_cast<Fn*>(fn))(value);
  }
  internal::Stripe& StripeFor(uint64_t hash) const;
  // Global bounds (core/src/budget.h): takes room in the budget for a put of
  // `charge` into `stripe`, evicting from any stripe as needed; kBusy only if
  // other threads' puts hold the room for a whole second.
  Status ReserveRoom(internal::Stripe& stripe, uint64_t hash, std::string_view key, size_t charge,
                     int attempt, internal::Reservation* reserved, internal::Removals* removed);
  Status MakeRoom(uint64_t bytes, uint64_t entries, internal::Removals* removed);
  bool EvictOne(internal::Removals* removed);
  Status CheckKey(std::string_view key) const;
  bool RefuseLookup(std::string_view key, FetchResult* refusal) const;
  // BeginFetch, offering a hit's value to take first (see GetOrLoadWith).
  FetchLookup Lookup(std::string_view key, bool (*take)(std::string_view, void*), void* context);

  const Options options_;
  const uint64_t fork_generation_;  // internal::ForkGeneration() at creation
  const size_t stripe_count_;
  const int stripe_shift_;  // hash >> stripe_shift_ selects the stripe
  std::shared_ptr<Clock> clock_;
  std::unique_ptr<internal::Budget> budget_;  // before the stripes, which use it
  std::unique_ptr<std::unique_ptr<internal::Stripe>[]> stripes_;
  std::unique_ptr<internal::KeyedMutex> write_locks_;
  std::atomic<bool> has_pending_writes_{false};
  mutable std::mutex pending_mu_;
  std::shared_ptr<internal::PendingWrites> pending_writes_;  // guarded by pending_mu_
  // Declared last: destroyed (and joined) before the stripes its tasks use.
  std::unique_ptr<internal::RefreshPool> refresh_pool_;
};

}  // namespace larder

#endif  // LARDER_CACHE_H_
