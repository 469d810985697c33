// GetOrLoad, BeginFetch, refreshes, and the lease/ticket handles (loading.h).
#include <algorithm>
#include <limits>
#include <random>
#include <vector>

#include "entry.h"
#include "epoch.h"
#include "flight.h"
#include "hash.h"
#include "larder/cache.h"
#include "refresh_pool.h"
#include "stripe.h"
#include "test_point.h"
#include "xfetch.h"

namespace larder {

using internal::Entry;
using internal::Flight;
using internal::PinAccess;
using internal::ReadGuard;
using internal::Removals;
using internal::Stripe;

namespace {

// The flights whose loader this thread is running right now, innermost last:
// a loader that asks for its own key would wait for itself forever (L2).
thread_local std::vector<const Flight*> t_running_loads;

bool ThisThreadIsLoading(const void* owner, std::string_view key) {
  for (const Flight* f : t_running_loads) {
    if (f->owner == owner && f->key == key) return true;
  }
  return false;
}

// Per-thread XFetch coin; reseeded per cache when a seed is configured so a
// single-threaded test sees a reproducible sequence.
struct ThreadCoin {
  const void* seeded_for = nullptr;
  bool seeded = false;
  internal::XorShiftRng rng;
};
thread_local ThreadCoin t_coin;

internal::XorShiftRng& CoinFor(const void* cache, uint64_t seed) {
  if (seed != 0) {
    if (t_coin.seeded_for != cache) {
      t_coin.rng.Seed(seed ^ (uint64_t{internal::ThisThreadRecord()->id} << 32));
      t_coin.seeded_for = cache;
      t_coin.seeded = true;
    }
  } else if (!t_coin.seeded) {
    std::random_device device;
    t_coin.rng.Seed((uint64_t{device()} << 32) ^ device());
    t_coin.seeded = true;
  }
  return t_coin.rng;
}

FetchResult Answer(Status status, FetchSource source, std::string error = {}) {
  FetchResult r;
  r.status = status;
  r.source = source;
  r.error = std::move(error);
  return r;
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  return a > std::numeric_limits<int64_t>::max() - b ? std::numeric_limits<int64_t>::max() : a + b;
}

int64_t ExpiryFor(int64_t now, std::chrono::nanoseconds ttl) {
  if (ttl.count() <= 0) return 0;
  if (ttl.count() >= std::numeric_limits<int64_t>::max() - now) return 0;  // never
  return now + ttl.count();
}

}  // namespace

const char* FetchSourceName(FetchSource source) {
  switch (source) {
    case FetchSource::kNone:
      return "none";
    case FetchSource::kHit:
      return "hit";
    case FetchSource::kStale:
      return "stale";
    case FetchSource::kNegative:
      return "negative";
    case FetchSource::kLoaded:
      return "loaded";
    case FetchSource::kJoined:
      return "joined";
  }
  return "unknown";
}

// ---- Cache: loading ----

bool Cache::ShouldRefreshEarly(const Entry* e, int64_t now) const {
  if (!e->expires() || options_.refresh_beta <= 0) return false;
  const double delta = e->delta_micros() != 0
                           ? 1000.0 * e->delta_micros()
                           : static_cast<double>(options_.default_refresh_delta.count());
  if (delta <= 0) return false;
  return internal::XFetchTriggers(static_cast<double>(e->expiry_nanos() - now), delta,
                                  options_.refresh_beta, CoinFor(this, options_.random_seed));
}

// A bad key, or a loader asking for its own key: *refusal is the answer.
bool Cache::RefuseLookup(std::string_view key, FetchResult* refusal) const {
  if (Status s = CheckKey(key); s != Status::kOk) {
    *refusal = Answer(s, FetchSource::kNone);
    return true;
  }
  if (ThisThreadIsLoading(this, key)) {
    *refusal = Answer(Status::kRecursiveLoad, FetchSource::kNone,
                      "the loader of this key asked the cache for the same key");
    return true;
  }
  return false;
}

FetchLookup Cache::BeginFetch(std::string_view key, const FetchOptions& fetch) {
  (void)fetch;  // the per-call loader is run by the leader (GetOrLoad), never here
  return Lookup(key, nullptr, nullptr);
}

FetchLookup Cache::Lookup(std::string_view key, bool (*take)(std::string_view, void*),
                          void* context) {
  FetchLookup out;
  if (RefuseLookup(key, &out.result)) return out;
  const uint64_t hash = internal::HashKey(key);
  Stripe& stripe = StripeFor(hash);
  int64_t now = 0;  // read only for an entry with a TTL, and for a miss
  bool answered = false, refresh = false;
  // A hit's value: copied out by take if it will, else pinned.
  auto hand_out = [&](Entry* e) {
    if (take == nullptr || !take(e->value(), context)) {
      internal::Ref(e);
      out.result.value = PinAccess::Adopt(e);
    }
  };
  {
    internal::ReclaimAfterRead reclaim(stripe);
    ReadGuard guard;
    if (Entry* e = stripe.FindAny(hash, key); e != nullptr) {
      if (e->expires()) now = clock_->NowNanos();
      const bool fresh = !e->expires() || now < e->expiry_nanos();
      if (fresh && e->is_value()) {
        out.result = Answer(Status::kOk, FetchSource::kHit);
        hand_out(e);
        stripe.RecordHit(e, guard.lane());
        refresh = options_.loader && ShouldRefreshEarly(e, now) && e->TryStartRefresh();
        answered = true;
      } else if (fresh) {  // cached "not found" or cached error
        stripe.RecordNegativeHit(guard.lane());
        out.result =
            e->kind() == Entry::kNegative
                ? Answer(Status::kNotFound, FetchSource::kNegative)
                : Answer(Status::kLoadFailed, FetchSource::kNegative, std::string(e->value()));
        answered = true;
      } else if (e->is_value() && options_.loader &&
                 now < SaturatingAdd(e->expiry_nanos(), options_.stale_while_revalidate.count())) {
        // Stale-while-revalidate (L7). Only with the cache's loader: a
        // per-call loader may capture the caller's stack, so it never runs
        // after the call returns; without one, the caller loads instead.
        out.result = Answer(Status::kOk, FetchSource::kStale);
        hand_out(e);
        out.result.stale = true;
        stripe.RecordStaleHit(e, guard.lane());
        refresh = e->TryStartRefresh();
        answered = true;
      }
    }
    if (!answered) stripe.RecordMiss(guard.lane());
  }
  if (answered) {
    if (refresh) StartRefresh(stripe, hash, key, options_.loader);
    return out;
  }

  // Read-your-writes: a key with a pending write-behind write is answered
  // from the queue, never loaded from the store.
  if (std::optional<std::string> pending; LookupPending(key, &pending)) {
    if (!pending) {
      out.result = Answer(Status::kNotFound, FetchSource::kHit);
    } else if (take != nullptr && take(*pending, context)) {
      out.result = Answer(Status::kOk, FetchSource::kHit);
    } else {
      Entry* copy = internal::NewEntry(key, *pending, 0);
      if (copy == nullptr) {
        out.result = Answer(Status::kNoMemory, FetchSource::kNone);
      } else {
        out.result = Answer(Status::kOk, FetchSource::kHit);
        out.result.value = PinAccess::Adopt(copy);
      }
    }
    return out;
  }
  Removals removed;
  now = clock_->NowNanos();
  internal::JoinOutcome j = stripe.JoinOrLead(this, hash, key, now, &removed);
  internal::NotifyRemovals(options_.removal_listener, removed);
  if (j.entry != nullptr) {  // arrived between the lock-free look and the lock (rare)
    if (j.entry->is_value()) {
      out.result = Answer(Status::kOk, FetchSource::kHit);
      out.result.value = PinAccess::Adopt(j.entry);
    } else {
      out.result =
          j.entry->kind() == Entry::kNegative
              ? Answer(Status::kNotFound, FetchSource::kNegative)
              : Answer(Status::kLoadFailed, FetchSource::kNegative, std::string(j.entry->value()));
      internal::Unref(j.entry);
    }
  } else if (j.lead) {
    LoadLease lease(this, std::move(j.flight));
    // Now that the flight is registered, a write-behind write of the key
    // supersedes it (its cache update runs after its enqueue). A write
    // enqueued between the check above and the registration is found here;
    // the load must not read the store behind it (W2).
    internal::ReachTestPoint(internal::TestPoint::kLoadRegistered, key);
    if (std::optional<std::string> pending; LookupPending(key, &pending)) {
      out.result =
          lease.Complete(pending ? LoadResult::Value(std::move(*pending)) : LoadResult::NotFound());
      out.result.source = FetchSource::kHit;
      return out;
    }
    out.kind = FetchLookup::Kind::kLead;
    out.lease = std::move(lease);
  } else {
    out.kind = FetchLookup::Kind::kWait;
    out.ticket = LoadTicket(std::move(j.flight));
  }
  return out;
}

LoadResult Cache::RunLoader(const Loader& loader, const Flight& flight) {
  t_running_loads.push_back(&flight);
  LoadResult result;
  try {
    result = loader(flight.key);
  } catch (const std::exception& ex) {
    result = LoadResult::Error(ex.what());
  } catch (...) {
    result = LoadResult::Error("the loader threw a non-standard exception");
  }
  t_running_loads.pop_back();
  return result;
}

FetchResult Cache::GetOrLoad(std::string_view key, const FetchOptions& fetch) {
  return GetOrLoadWith(key, fetch, nullptr, nullptr);
}

FetchResult Cache::GetOrLoadWith(std::string_view key, const FetchOptions& fetch,
                                 bool (*take)(std::string_view, void*), void* context) {
  const Loader& loader = fetch.loader ? fetch.loader : options_.loader;
  if (!loader) return Answer(Status::kInvalidArgument, FetchSource::kNone, "no loader");
  FetchLookup lookup = Lookup(key, take, context);
  switch (lookup.kind) {
    case FetchLookup::Kind::kDone:
      return std::move(lookup.result);
    case FetchLookup::Kind::kWait:
      return lookup.ticket.Wait(fetch.timeout);
    case FetchLookup::Kind::kLead:
      break;
  }
  return lookup.lease.Complete(RunLoader(loader, *lookup.lease.flight_));
}

FetchResult Cache::GetOrLoad(std::string_view key, Loader loader) {
  FetchOptions fetch;
  fetch.loader = std::move(loader);
  return GetOrLoad(key, fetch);
}

FetchResult Cache::GetOrLoad(std::string_view key) { return GetOrLoad(key, FetchOptions{}); }

Status Cache::Refresh(std::string_view key) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  if (!options_.loader) return Status::kInvalidArgument;
  const uint64_t hash = internal::HashKey(key);
  StartRefresh(StripeFor(hash), hash, key, options_.loader);
  return Status::kOk;
}

FetchLookup Cache::BeginRefresh(std::string_view key) {
  FetchLookup out;
  if (RefuseLookup(key, &out.result)) return out;
  // As in StartRefresh: never refresh from a store a pending write-behind
  // write is ahead of; the queue answers instead.
  auto answer_from_queue = [&](std::optional<std::string>& pending) {
    if (!pending) {
      out.result = Answer(Status::kNotFound, FetchSource::kHit);
      return;
    }
    Entry* copy = internal::NewEntry(key, *pending, 0);
    if (copy == nullptr) {
      out.result = Answer(Status::kNoMemory, FetchSource::kNone);
      return;
    }
    out.result = Answer(Status::kOk, FetchSource::kHit);
    out.result.value = PinAccess::Adopt(copy);
  };
  if (std::optional<std::string> pending; LookupPending(key, &pending)) {
    answer_from_queue(pending);
    return out;
  }
  const uint64_t hash = internal::HashKey(key);
  bool lead = false;
  std::shared_ptr<Flight> flight =
      StripeFor(hash).LeadRefresh(this, hash, key, clock_->NowNanos(), &lead);
  if (!lead) {
    out.kind = FetchLookup::Kind::kWait;
    out.ticket = LoadTicket(std::move(flight));
    return out;
  }
  LoadLease lease(this, std::move(flight));
  // A write enqueued between the check above and the registration.
  internal::ReachTestPoint(internal::TestPoint::kRefreshRegistered, key);
  if (std::optional<std::string> pending; LookupPending(key, &pending)) {
    out.result =
        lease.Complete(pending ? LoadResult::Value(std::move(*pending)) : LoadResult::NotFound());
    out.result.source = FetchSource::kHit;
    return out;
  }
  out.kind = FetchLookup::Kind::kLead;
  out.lease = std::move(lease);
  return out;
}

namespace {

// A refresh waiting to run. Whoever claims the flight runs it; if the task is
// destroyed without having run (pool shut down, executor dropped it) and no
// caller claimed the flight, it fails the flight so no waiter is stranded.
struct RefreshTask {
  RefreshTask(Cache* cache, std::shared_ptr<Flight> flight, Loader loader,
              FetchResult (*complete)(Cache*, const std::shared_ptr<Flight>&, LoadResult, bool),
              LoadResult (*run)(Cache*, const Loader&, const Flight&))
      : cache(cache),
        flight(std::move(flight)),
        loader(std::move(loader)),
        complete(complete),
        run(run) {}
  ~RefreshTask() {
    if (Claim()) complete(cache, flight, LoadResult::Error("refresh dropped unrun"), false);
  }
  bool Claim() {
    bool expected = false;
    return flight->claimed.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
  }
  void Run() {
    if (Claim()) complete(cache, flight, run(cache, loader, *flight), true);
  }
  Cache* cache;
  std::shared_ptr<Flight> flight;
  Loader loader;
  FetchResult (*complete)(Cache*, const std::shared_ptr<Flight>&, LoadResult, bool);
  LoadResult (*run)(Cache*, const Loader&, const Flight&);
};

}  // namespace

void Cache::StartRefresh(Stripe& stripe, uint64_t hash, std::string_view key,
                         const Loader& loader) {
  internal::ReachTestPoint(internal::TestPoint::kRefreshRequested, key);
  // The store is behind a pending write-behind write: never refresh from it.
  if (std::optional<std::string> pending; LookupPending(key, &pending)) return;
  std::shared_ptr<Flight> flight = stripe.BeginRefresh(this, hash, key, clock_->NowNanos());
  if (flight == nullptr) return;  // a flight is already on its way: joined
  // As in BeginFetch: a write enqueued before the registration is found
  // now; one enqueued after it supersedes the flight.
  internal::ReachTestPoint(internal::TestPoint::kRefreshRegistered, key);
  if (std::optional<std::string> pending; LookupPending(key, &pending)) {
    bool unclaimed = false;
    if (flight->claimed.compare_exchange_strong(unclaimed, true, std::memory_order_acq_rel)) {
      CompleteFlight(
          flight, pending ? LoadResult::Value(std::move(*pending)) : LoadResult::NotFound(), true);
    }
    return;
  }
  auto task = std::make_shared<RefreshTask>(
      this, flight, loader,
      [](Cache* c, const std::shared_ptr<Flight>& f, LoadResult r, bool from_loader) {
        return c->CompleteFlight(f, std::move(r), from_loader);
      },
      [](Cache* c, const Loader& l, const Flight& f) { return c->RunLoader(l, f); });
  std::function<void()> run = [task] { task->Run(); };
  bool scheduled = false;
  try {
    if (options_.refresh_executor) {
      options_.refresh_executor(std::move(run));
      scheduled = true;
    } else {
      scheduled = refresh_pool_->Submit(std::move(run));
    }
  } catch (...) {
    scheduled = false;
  }
  if (!scheduled && task->Claim()) {
    CompleteFlight(flight, LoadResult::Error("refresh could not be scheduled"), false);
  }
}

FetchResult Cache::CompleteFlight(const std::shared_ptr<Flight>& flight, LoadResult result,
                                  bool from_loader) {
  if (flight->completed.exchange(true)) {
    return Answer(Status::kInvalidArgument, FetchSource::kNone, "load already completed");
  }
  const int64_t now = clock_->NowNanos();
  const uint32_t delta_micros = static_cast<uint32_t>(std::clamp<int64_t>(
      (now - flight->start_nanos) / 1000, 1, std::numeric_limits<uint32_t>::max()));
  Status status = Status::kOk;
  std::string error;
  Entry* e = nullptr;  // one reference: the flight's
  switch (result.kind) {
    case LoadResult::Kind::kValue: {
      const std::chrono::nanoseconds ttl =
          result.ttl.count() > 0 ? result.ttl : options_.default_ttl;
      const size_t charge = result.charge != 0
                                ? result.charge
                                : flight->key.size() + result.value.size() + EntryOverhead();
      if (result.value.size() > std::numeric_limits<uint32_t>::max() ||
          charge > std::numeric_limits<uint32_t>::max()) {
        status = Status::kValueTooLarge;
        break;
      }
      e = internal::NewEntry(flight->key, result.value, ExpiryFor(now, ttl),
                             static_cast<uint32_t>(result.charge), Entry::kValue, delta_micros);
      if (e == nullptr) status = Status::kNoMemory;
      break;
    }
    case LoadResult::Kind::kNotFound:
      status = Status::kNotFound;
      if (options_.negative_ttl.count() > 0) {
        e = internal::NewEntry(flight->key, {}, ExpiryFor(now, options_.negative_ttl), 0,
                               Entry::kNegative, delta_micros);
      }
      break;
    case LoadResult::Kind::kError:
      status = Status::kLoadFailed;
      error = result.error.empty() ? "the loader reported an error" : std::move(result.error);
      // Only a loader's own errors are cached, never "abandoned" or "dropped".
      if (from_loader && options_.error_ttl.count() > 0 &&
          error.size() < std::numeric_limits<uint32_t>::max() / 2) {
        e = internal::NewEntry(flight->key, error, ExpiryFor(now, options_.error_ttl), 0,
                               Entry::kError, delta_micros);
      }
      break;
  }

  Removals removed;
  // Room for the entry first (with no lock held: it may evict from any
  // stripe); FinishFlight gives back what it does not use.
  // (Usually the stripe makes room itself, as for a put; only when it holds
  // nothing it could evict is room made elsewhere first.)
  internal::Reservation reserved;
  if (e != nullptr && e->charge() <= options_.capacity_bytes &&
      flight->stripe->linked_bytes() == 0 &&
      ReserveRoom(*flight->stripe, flight->hash, flight->key, e->charge(), 1, &reserved,
                  &removed) != Status::kOk) {
    reserved = {};
  }
  internal::FinishOutcome outcome = flight->stripe->FinishFlight(
      flight.get(), e, status != Status::kOk && status != Status::kNotFound, now,
      options_.stale_if_error.count(), reserved, &removed);
  internal::NotifyRemovals(options_.removal_listener, removed);

  bool stale = false;
  if (outcome.fallback != nullptr) {  // stale-if-error (L7)
    status = Status::kOk;
    stale = true;
    error.clear();
    if (e != nullptr) internal::Unref(e);
    e = outcome.fallback;
  } else if (e != nullptr && !e->is_value()) {
    internal::Unref(e);  // only values travel to the waiters
    e = nullptr;
  }
  flight->Finish(status, e, stale, std::move(error));
  std::lock_guard<std::mutex> lock(flight->mu);
  return flight->ResultLocked(FetchSource::kLoaded);
}

// ---- LoadLease ----

LoadLease::LoadLease(Cache* cache, std::shared_ptr<Flight> flight)
    : cache_(cache), flight_(std::move(flight)) {}

LoadLease::LoadLease(LoadLease&& other) noexcept
    : cache_(other.cache_), flight_(std::move(other.flight_)) {
  other.cache_ = nullptr;
}

LoadLease& LoadLease::operator=(LoadLease&& other) noexcept {
  if (this != &other) {
    if (flight_ != nullptr) {
      cache_->CompleteFlight(flight_, LoadResult::Error("load abandoned"), false);
    }
    cache_ = other.cache_;
    flight_ = std::move(other.flight_);
    other.cache_ = nullptr;
  }
  return *this;
}

LoadLease::~LoadLease() {
  // A leader that walks away must not leave the key stuck (L3).
  if (flight_ != nullptr) {
    cache_->CompleteFlight(flight_, LoadResult::Error("load abandoned"), false);
  }
}

FetchResult LoadLease::Complete(LoadResult result) {
  if (flight_ == nullptr) {
    return Answer(Status::kInvalidArgument, FetchSource::kNone, "empty or completed lease");
  }
  std::shared_ptr<Flight> flight = std::move(flight_);
  return cache_->CompleteFlight(flight, std::move(result), true);
}

// ---- LoadTicket ----

bool LoadTicket::ready() const {
  if (flight_ == nullptr) return false;
  std::lock_guard<std::mutex> lock(flight_->mu);
  return flight_->done;
}

FetchResult LoadTicket::Wait(std::chrono::nanoseconds timeout) const {
  if (flight_ == nullptr)
    return Answer(Status::kInvalidArgument, FetchSource::kNone, "empty ticket");
  std::unique_lock<std::mutex> lock(flight_->mu);
  // Beyond a year counts as no limit (and keeps wait_for's arithmetic sane).
  if (timeout.count() <= 0 || timeout > std::chrono::hours(24 * 365)) {
    flight_->cv.wait(lock, [this] { return flight_->done; });
  } else if (!flight_->cv.wait_for(lock, timeout, [this] { return flight_->done; })) {
    flight_->stripe->RecordTimeout();
    return Answer(Status::kTimeout, FetchSource::kNone, "gave up waiting for the load");
  }
  return flight_->ResultLocked(FetchSource::kJoined);
}

void LoadTicket::OnReady(std::function<void(FetchResult)> callback) const {
  if (flight_ == nullptr || !callback) return;
  FetchResult now;
  {
    std::lock_guard<std::mutex> lock(flight_->mu);
    if (!flight_->done) {
      flight_->callbacks.push_back(std::move(callback));
      return;
    }
    now = flight_->ResultLocked(FetchSource::kJoined);
  }
  callback(std::move(now));
}

}  // namespace larder
