// A flight: one in-progress load or refresh of one key (DESIGN.md section 3).
//
// Invariants:
//  * A stripe maps a key to at most one flight (L1). The flight leaves the
//    map when it completes, or earlier when a write to its key supersedes it;
//    a superseded flight still completes for the callers already waiting but
//    its result is never installed (L8). `superseded` and `mapped` are
//    guarded by the owning stripe's lock.
//  * Completion happens once: `completed` flips first, then the result is
//    set under `mu`, `done` becomes true, waiters wake, callbacks run (outside
//    every lock). After `done`, the result fields never change.
//  * A refresh flight is run by whoever claims it first (`claimed`): its
//    queued task or a missing caller. A task dropped unrun fails the flight.
//  * The flight holds one reference on `entry` (the value delivered to
//    waiters), so waiters can pin it even if it was evicted or never
//    installed.
#ifndef LARDER_CORE_SRC_FLIGHT_H_
#define LARDER_CORE_SRC_FLIGHT_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "entry.h"
#include "larder/loading.h"
#include "pin_access.h"

namespace larder::internal {

class Stripe;

struct Flight {
  Flight(const void* owner, Stripe* stripe, std::string key, uint64_t hash, int64_t start_nanos,
         bool refresh)
      : owner(owner),
        stripe(stripe),
        key(std::move(key)),
        hash(hash),
        start_nanos(start_nanos),
        refresh(refresh) {}
  ~Flight() {
    if (entry != nullptr) Unref(entry);
  }

  // The result as one caller sees it (requires done).
  FetchResult ResultLocked(FetchSource source) {
    FetchResult r;
    r.status = status;
    r.stale = stale;
    r.error = error;
    r.source = source;
    if (entry != nullptr && status == Status::kOk) {
      Ref(entry);
      r.value = PinAccess::Adopt(entry);
    }
    return r;
  }

  // Publishes the result (adopting one reference on e, which may be null),
  // wakes the waiters and runs the callbacks on this thread.
  void Finish(Status s, Entry* e, bool is_stale, std::string message) {
    std::vector<std::function<void(FetchResult)>> to_call;
    {
      std::lock_guard<std::mutex> lock(mu);
      status = s;
      entry = e;
      stale = is_stale;
      error = std::move(message);
      done = true;
      to_call.swap(callbacks);
    }
    cv.notify_all();
    for (auto& callback : to_call) {
      FetchResult r;
      {
        std::lock_guard<std::mutex> lock(mu);
        r = ResultLocked(FetchSource::kJoined);
      }
      try {
        callback(std::move(r));
      } catch (...) {
        // A throwing callback must not keep the others from running.
      }
    }
  }

  const void* const owner;  // the Cache, for recursive-load detection
  Stripe* const stripe;
  const std::string key;
  const uint64_t hash;
  const int64_t start_nanos;
  const bool refresh;

  bool superseded = false;  // guarded by stripe's lock
  bool mapped = true;       // guarded by stripe's lock
  // A refresh flight is claimed by whoever runs its loader first: the queued
  // refresh task, or a caller that misses while the task still waits in the
  // queue (that caller leads it instead of waiting behind the queue).
  std::atomic<bool> claimed{false};
  std::atomic<bool> completed{false};

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // guarded by mu, as are the result fields below
  Status status = Status::kLoadFailed;
  Entry* entry = nullptr;
  bool stale = false;
  std::string error;
  std::vector<std::function<void(FetchResult)>> callbacks;
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_FLIGHT_H_
