// Loading through the cache: single-flight loads, early refresh, stale
// serving, negative caching and race safety (DESIGN.md section 3, L1-L9).
//
//   larder::FetchResult r = cache->GetOrLoad("user:42", [&](std::string_view key) {
//     auto row = db.Find(key);
//     if (!row) return larder::LoadResult::NotFound();
//     return larder::LoadResult::Value(row->Serialize(), 30s);
//   });
//   if (r.status == larder::Status::kOk) use(r.value.value());
//
// However many threads miss one key at once, the loader runs once (on the
// first caller's thread, with no cache lock held) and every caller gets its
// result. A Put, Invalidate, InvalidatePrefix or Clear touching the key while
// the loader runs makes the result go only to the callers already waiting; it
// is never installed, so a slow load cannot put back an older value.
//
// Runtimes with an event loop use the asynchronous form, BeginFetch: it
// answers at once with a hit, a lease to lead the load, or a ticket to wait on
// (with a deadline or a callback), so no runtime thread blocks on another's
// load.
//
// Contract: leases and tickets must be completed or dropped before their
// cache is destroyed, and an executor given in Options must not run a task
// after the cache is destroyed.
#ifndef LARDER_LOADING_H_
#define LARDER_LOADING_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "larder/pinned_value.h"
#include "larder/status.h"

namespace larder {

class Cache;
namespace internal {
struct Flight;
}

// What a loader returns: a value (with an optional TTL), "not found", or an
// error. A loader that throws is treated as returning Error(what()).
struct LoadResult {
  enum class Kind { kValue, kNotFound, kError };
  static LoadResult Value(std::string value, std::chrono::nanoseconds ttl = {}) {
    return LoadResult{Kind::kValue, std::move(value), ttl, {}};
  }
  static LoadResult NotFound() { return LoadResult{Kind::kNotFound, {}, {}, {}}; }
  static LoadResult Error(std::string message) {
    return LoadResult{Kind::kError, {}, {}, std::move(message)};
  }

  Kind kind = Kind::kError;
  std::string value;
  std::chrono::nanoseconds ttl{0};  // zero: the cache's default TTL
  std::string error;
  // For a value: its weight toward capacity_bytes, as PutOptions::charge
  // (zero: key + value + overhead).
  size_t charge = 0;
};

using Loader = std::function<LoadResult(std::string_view key)>;

// Where a fetch's answer came from.
enum class FetchSource {
  kNone,      // no answer: bad argument, timeout, recursive load
  kHit,       // a fresh cached value
  kStale,     // an expired value served within a grace period
  kNegative,  // a cached "not found" or a cached error
  kLoaded,    // this caller ran the loader
  kJoined,    // this caller waited for another caller's load or refresh
};
const char* FetchSourceName(FetchSource source);

struct FetchResult {
  // kOk: `value` holds the value. kNotFound: the loader (or a cached negative
  // entry) said there is none. kLoadFailed: the loader failed; `error` says
  // why. kTimeout: this caller's wait ended first. kRecursiveLoad: a loader
  // asked for its own key. kInvalidArgument, kEmptyKey, kKeyTooLong: bad call.
  Status status = Status::kInvalidArgument;
  PinnedValue value;
  bool stale = false;  // the value is past its TTL (stale-while-revalidate or stale-if-error)
  FetchSource source = FetchSource::kNone;
  std::string error;
};

struct FetchOptions {
  // The loader for this call; empty means Options::loader.
  Loader loader;
  // How long this caller waits for another caller's load; zero waits without
  // limit. A caller that gives up gets kTimeout and the load goes on.
  std::chrono::nanoseconds timeout{0};
};

// The obligation to load one key, held by the one caller that leads its
// flight. Complete it exactly once; a lease dropped without completing fails
// the flight ("load abandoned") so the key is never left stuck. Move-only.
class LoadLease {
 public:
  LoadLease() = default;
  LoadLease(LoadLease&&) noexcept;
  LoadLease& operator=(LoadLease&&) noexcept;
  ~LoadLease();
  explicit operator bool() const { return flight_ != nullptr; }

  // Delivers the outcome to every waiter, installs it when no write raced
  // with the load, and returns this caller's own result.
  FetchResult Complete(LoadResult result);

 private:
  friend class Cache;
  LoadLease(Cache* cache, std::shared_ptr<internal::Flight> flight);
  Cache* cache_ = nullptr;
  std::shared_ptr<internal::Flight> flight_;
};

// A place in the queue for another caller's load. Copyable; thread-safe.
class LoadTicket {
 public:
  LoadTicket() = default;
  explicit operator bool() const { return flight_ != nullptr; }
  bool ready() const;
  // Blocks until the load finishes or `timeout` passes (zero: no limit).
  FetchResult Wait(std::chrono::nanoseconds timeout = {}) const;
  // Calls `callback` exactly once with the result: at once (on this thread)
  // if the load already finished, else on the thread that completes it, with
  // no cache lock held. The callback must not throw.
  void OnReady(std::function<void(FetchResult)> callback) const;

 private:
  friend class Cache;
  explicit LoadTicket(std::shared_ptr<internal::Flight> flight) : flight_(std::move(flight)) {}
  std::shared_ptr<internal::Flight> flight_;
};

// BeginFetch's answer.
struct FetchLookup {
  enum class Kind {
    kDone,  // `result` is the answer: a hit (fresh, stale or negative) or an error
    kLead,  // this caller must load and complete `lease`
    kWait,  // another caller is loading: wait on `ticket`
  };
  Kind kind = Kind::kDone;
  FetchResult result;
  LoadLease lease;
  LoadTicket ticket;
};

}  // namespace larder

#endif  // LARDER_LOADING_H_
