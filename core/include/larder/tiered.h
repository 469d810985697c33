// TieredCache: Larder as the L1 of each process in front of one shared Redis
// (the L2), kept coherent by Redis's server-assisted client-side caching.
//
//   larder::TieredOptions o;
//   o.l1.capacity_bytes = 64 << 20;
//   o.l1.loader = [&](std::string_view key) { return LoadFromDatabase(key); };
//   o.redis.host = "10.0.0.5";
//   std::unique_ptr<larder::TieredCache> tier;
//   std::string why;
//   if (larder::TieredCache::Create(o, &tier, &why) != larder::Status::kOk) die(why);
//   larder::FetchResult r = tier->Get("user:42");      // L1, else Redis, else the loader
//   db.Update(...); tier->Invalidate("user:42");        // cache-aside: every process drops it
//
// Reads. An L1 hit never waits for Redis. On an L1 miss one caller per key
// (the cache's single flight) sends `GET k` + `PTTL k`: an L2 hit fills L1
// with a TTL of at most the key's remaining Redis TTL and `l1_max_ttl`; an L2
// miss calls the loader, writes `SET k v PX ttl NX` and fills L1.
//
// Coherence. Every L1 entry was read through a connection Redis tracks
// (CLIENT TRACKING ... REDIRECT to this tier's subscriber of
// __redis__:invalidate, RESP2). Each invalidation message invalidates the key
// in L1, which also keeps the answer of a GET still in flight out of L1 (the
// cache's race rule, DESIGN.md L8). A flush message, a lost connection or a
// missed ping drops every L1 entry, and L1 is bypassed (reads go to Redis)
// until tracking is back. The bound: a value served from L1 is never older
// than a write Redis completed more than `max_staleness` before the read (see
// docs/design.md, "Redis second tier").
//
// Threads. Every method is thread-safe. Each tier runs one background thread
// (the invalidation connection: subscribe, pings, reconnects with backoff).
// The loader, the store writer and removal listeners run with no lock of the
// tier or the cache held; write-through holds the key's own write lock while
// its writer runs (as Cache::WriteThrough does), so writes of one key are
// serialised.
//
// fork(): in a child, a tier created by the parent may only be destroyed (the
// destructor returns at once, joins nothing, frees nothing of the parent's);
// every other call returns kForked.
#ifndef LARDER_TIERED_H_
#define LARDER_TIERED_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "larder/cache.h"
#include "larder/loading.h"
#include "larder/status.h"
#include "larder/write_behind.h"

namespace larder {

// Where Redis is and how long to wait for it.
struct RedisOptions {
  std::string host = "127.0.0.1";  // an address or a host name
  int port = 6379;
  std::string username;  // ACL user for AUTH; empty: AUTH with the password only
  std::string password;  // empty: no AUTH
  int database = 0;      // SELECT
  std::chrono::nanoseconds connect_timeout{std::chrono::seconds(1)};
  // One command's round trip; a slower answer is a failure (an L2 miss).
  std::chrono::nanoseconds command_timeout{std::chrono::milliseconds(250)};
  // Data connections in the pool (the invalidation connection is extra).
  size_t max_connections = 8;
};

enum class Tracking {
  // Redis remembers the keys each connection read and tells about those
  // only. The default: invalidations are proportional to what is cached.
  kDefault,
  // BCAST: Redis tells about every key under `broadcast_prefixes` (all keys
  // when empty), read or not. Keys outside the prefixes are never held in
  // L1. No per-connection state on the server, more messages.
  kBroadcast,
};

enum class WriteMode {
  kCacheAside,    // Set/Delete write Redis only; the store is the caller's
  kWriteThrough,  // Set/Delete run store_writer first, then Redis
  kWriteBehind,   // Set/Delete update L1 and Redis now, the store later
};

enum class BreakerState { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

struct TieredOptions {
  // The L1. `l1.loader` is the source of truth behind Redis (a database);
  // without one, an L2 miss is "not found". Refreshes of L1 entries (early
  // refresh, stale-while-revalidate) also go through Redis first.
  Options l1;
  RedisOptions redis;

  Tracking tracking = Tracking::kDefault;
  std::vector<std::string> broadcast_prefixes;  // kBroadcast only; must not overlap

  // L1 entries live at most this long (and never past the key's Redis TTL).
  std::chrono::nanoseconds l1_max_ttl{std::chrono::seconds(60)};
  // TTL of values this tier writes to Redis when the loader or the write
  // gives none.
  std::chrono::nanoseconds l2_ttl{std::chrono::minutes(5)};
  // The staleness bound. L1 is used only while a ping of the invalidation
  // connection (and of the idle data connections) sent less than this long
  // ago was answered; otherwise reads bypass L1. At least health_interval +
  // 2 x command_timeout + 50 ms.
  std::chrono::nanoseconds max_staleness{std::chrono::seconds(1)};
  // How often the background thread pings Redis.
  std::chrono::nanoseconds health_interval{std::chrono::milliseconds(100)};
  // Reconnection backoff of the invalidation connection (doubling, jittered).
  std::chrono::nanoseconds reconnect_min{std::chrono::milliseconds(50)};
  std::chrono::nanoseconds reconnect_max{std::chrono::seconds(2)};

  // Stampedes across processes (an efficiency guard, not a correctness lock):
  // on an L2 miss, `SET <lock_prefix>k <token> NX PX <lock_lease>`; the winner
  // loads and fills Redis only while it still holds the lock (a
  // compare-and-set script that also releases it); the others poll Redis with
  // backoff from lock_poll_min to lock_poll_max. When the lease runs out a
  // poller takes the lock and loads; after 2 x lock_lease a caller loads
  // without it (fail open).
  bool stampede_lock = false;
  std::string lock_prefix = "lock:";
  std::chrono::nanoseconds lock_lease{std::chrono::seconds(5)};
  std::chrono::nanoseconds lock_poll_min{std::chrono::milliseconds(2)};
  std::chrono::nanoseconds lock_poll_max{std::chrono::milliseconds(50)};

  // Circuit breaker: after this many consecutive Redis failures (errors,
  // timeouts) Redis is skipped for breaker_open (reads go to the loader and
  // are not cached in L1), then one call tries it again.
  int breaker_failures = 5;
  std::chrono::nanoseconds breaker_open{std::chrono::seconds(1)};

  WriteMode write_mode = WriteMode::kCacheAside;
  StoreWriter store_writer;         // kWriteThrough: required
  WriteBehindOptions write_behind;  // kWriteBehind: `writer` required
};

struct TieredStats {
  Stats l1;                     // the L1's own counters (l1.hits: reads answered by L1)
  uint64_t l2_hits = 0;         // L1 misses answered by Redis
  uint64_t l2_misses = 0;       // ... that Redis did not have
  uint64_t l2_errors = 0;       // Redis errors and timeouts: handled as L2 misses (the loader runs)
  uint64_t l2_skipped = 0;      // calls that did not ask Redis: the breaker was open
  uint64_t loads = 0;           // loader calls
  uint64_t fills = 0;           // loaded values written to Redis
  uint64_t fills_refused = 0;   // not written: the key appeared meanwhile, or the lock was lost
  uint64_t bypassed_reads = 0;  // reads that skipped L1: tracking down (or key outside BCAST)
  uint64_t invalidation_messages = 0;
  uint64_t invalidated_keys = 0;
  uint64_t flushes = 0;            // flush messages (FLUSHALL / FLUSHDB)
  uint64_t tracking_losses = 0;    // invalidation connection lost or a ping missed
  uint64_t connection_losses = 0;  // data connections lost (default mode: L1 dropped)
  uint64_t reconnects = 0;         // tracking sessions started after the first
  bool tracking_up = false;        // L1 usable right now
  BreakerState breaker_state = BreakerState::kClosed;
  uint64_t breaker_opens = 0;
  uint64_t lock_acquired = 0;   // stampede locks won
  uint64_t lock_waits = 0;      // callers that found the lock taken and polled
  uint64_t lock_wait_hits = 0;  // ... and got the value another process loaded
  uint64_t lock_fail_open = 0;  // ... and loaded anyway after 2 x lock_lease
  uint64_t writes = 0;          // Set/Delete/Invalidate calls
  uint64_t write_failures = 0;  // ... that returned an error
};

class TieredCache {
 public:
  // Builds the L1, connects, checks that this Redis supports tracking (and
  // the password, the prefixes), subscribes and starts the background thread.
  // Fails with kUnavailable when Redis cannot be reached (in
  // connect_timeout), kInvalidArgument for bad options or a server that
  // refused (wrong password, no CLIENT TRACKING, overlapping prefixes); *error
  // (optional) says which.
  static Status Create(TieredOptions options, std::unique_ptr<TieredCache>* out,
                       std::string* error = nullptr);
  // Closes the write-behind queue (draining it), stops the background thread
  // and closes the connections. No call may be running. In a child after
  // fork(), returns at once (see above).
  ~TieredCache();
  TieredCache(const TieredCache&) = delete;
  TieredCache& operator=(const TieredCache&) = delete;
  bool InheritedAcrossFork() const;

  // The value of key: from L1, else Redis, else options.loader (or the
  // options' l1.loader). Single flight per key in this process. A Redis
  // failure is an L2 miss (the loader runs; the result is returned, written
  // to nothing and not kept in L1). With L1 bypassed (tracking down), reads
  // go to Redis on every call. source: kHit (L1 or Redis), kLoaded, kJoined,
  // kStale (the L1's stale_while_revalidate).
  FetchResult Get(std::string_view key, const FetchOptions& options = {});

  // Writes by the configured WriteMode; ttl (zero: l2_ttl) is the Redis TTL.
  //  kCacheAside:   SET k v PX ttl in Redis; L1 invalidated here, elsewhere
  //                 by Redis.
  //  kWriteThrough: store_writer first (failure: kWriteFailed, nothing
  //                 changed), then SET, then the local invalidation.
  //  kWriteBehind:  the write-behind queue and L1 now (read-your-writes),
  //                 then SET; the store gets it from the flusher.
  // kUnavailable when Redis could not be written (the store, in the two
  // store modes, already has the value): other processes may serve the old
  // value until its Redis TTL. *error (optional) says what failed.
  Status Set(std::string_view key, std::string_view value, const PutOptions& options = {},
             std::string* error = nullptr);
  // Deletes by the configured mode (in kCacheAside the same as Invalidate).
  Status Delete(std::string_view key, std::string* error = nullptr);
  // Cache-aside, after the caller wrote the store: DEL k (and its stampede
  // lock) in Redis, then invalidate L1 here; Redis tells the other
  // processes. kUnavailable when the DEL did not reach Redis.
  Status Invalidate(std::string_view key, std::string* error = nullptr);
  // kWriteBehind: waits until every queued store write was delivered
  // (WriteBehind::Flush). kOk at once in the other modes.
  Status Flush(std::chrono::nanoseconds timeout = {});

  // True while L1 may answer reads (tracking up and confirmed within
  // max_staleness).
  bool tracking() const;
  TieredStats GetStats() const;
  // The L1, for its statistics and for what the tier does not offer. Reads
  // through it skip the tier's checks (they may be served while tracking is
  // down); writes through it are not seen by other processes.
  Cache& l1();

  class Impl;

 private:
  explicit TieredCache(std::unique_ptr<Impl> impl);
  // Cache::LookupPending, for Impl (reads that bypass L1 still answer from a
  // pending write-behind write).
  static bool PendingWrite(Cache& cache, std::string_view key, std::optional<std::string>* value);
  std::unique_ptr<Impl> impl_;
  uint64_t fork_generation_;
};

const char* BreakerStateName(BreakerState state);

}  // namespace larder

#endif  // LARDER_TIERED_H_
