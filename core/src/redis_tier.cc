// The Redis second tier (larder/tiered.h): Larder as each process's L1, one
// Redis as the shared L2, kept coherent by CLIENT TRACKING (RESP2, REDIRECT to
// a connection subscribed to __redis__:invalidate).
//
// Invariants:
//  * A *session* is one life of the invalidation connection. `session_` grows
//    when one starts and again when it ends; `up_` is true only inside one.
//    Every L1 entry was installed by a flight (or a write-behind write) that
//    saw `up_` and the same `session_` after it was registered, and whose
//    Redis read went through a connection that Redis tracks into that
//    session: default mode, a data connection whose CLIENT TRACKING
//    redirects to the session's subscriber (`RedisConnection::session`);
//    BCAST mode, any connection, for keys under the prefixes.
//  * Ending a session (EOF, error, a ping not answered in command_timeout)
//    sets `up_` false, bumps `session_`, then clears L1. Clear supersedes
//    every registered flight, and a flight registered after it sees the new
//    `session_`: an answer read under a dead session never stays in L1.
//  * In default mode, losing a data connection that was tracked in the live
//    session also clears L1 (Redis forgets what that connection read).
//  * A flight that may not install its answer (Redis failed, the breaker was
//    open, tracking is down, the session changed) invalidates its own key
//    before returning: the cache's race rule then hands the answer to the
//    waiters without installing it.
//  * Readers use L1 only while `confirmed_until_` is in the future. The
//    background thread moves it to (send time of the last answered ping +
//    max_staleness - command_timeout - 10 ms), where the ping went out on the
//    invalidation connection before the idle data connections were checked.
//    Redis answers a ping after every invalidation queued before it, and the
//    thread applies messages in order, so when that ping's answer is handled
//    every write Redis completed before the ping went out has reached L1.
//  * No lock of this file is held while user code runs (loader, store
//    writer, removal listeners through cache_->Invalidate/Clear), except the
//    key's write lock around write-through's and write-behind's writes.
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "entry.h"
#include "epoch.h"
#include "hash.h"
#include "keyed_mutex.h"
#include "larder/tiered.h"
#include "pin_access.h"
#include "redis_connection.h"
#include "test_point.h"

namespace larder {

using internal::Command;
using internal::IsError;
using internal::RedisConnection;
using internal::Reply;
using internal::ReplyText;

namespace {

using std::chrono::nanoseconds;

int64_t NowOf(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
int64_t MonoNow() { return NowOf(CLOCK_MONOTONIC); }
// A few ns; lags CLOCK_MONOTONIC by at most one kernel tick (the 10 ms margin
// in the staleness window covers it).
int64_t CoarseNow() { return NowOf(CLOCK_MONOTONIC_COARSE); }

std::string Millis(nanoseconds d) {
  return std::to_string(std::max<int64_t>(1, (d.count() + 999'999) / 1'000'000));
}

uint64_t RandomBits() {
  thread_local std::mt19937_64 rng{(uint64_t{std::random_device{}()} << 32) ^
                                   std::random_device{}()};
  return rng();
}

std::string RandomToken() {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(RandomBits()),
                static_cast<unsigned long long>(RandomBits()));
  return buf;
}

// [d/2, d]: reconnects and lock polls of many processes do not line up.
nanoseconds Jittered(nanoseconds d) {
  if (d.count() < 2) return d;
  const int64_t half = d.count() / 2;
  return nanoseconds(half + static_cast<int64_t>(RandomBits() % static_cast<uint64_t>(half + 1)));
}

bool IsOk(const Reply& r) {
  return r && r->type == REDIS_REPLY_STATUS && ReplyText(r.get()) == "OK";
}

// Fills key from the loader while this caller still holds the stampede lock
// (a compare-and-set), releasing the lock in the same step. KEYS: key, lock;
// ARGV: token, value, ttl in ms.
constexpr std::string_view kFillAndReleaseScript =
    "if redis.call('GET', KEYS[2]) == ARGV[1] then "
    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
    "redis.call('DEL', KEYS[2]) return 1 end return 0";
// Compare-and-delete. KEYS: lock; ARGV: token.
constexpr std::string_view kReleaseScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

// ---- circuit breaker ----
// Closed: calls go to Redis; breaker_failures consecutive failures open it.
// Open: calls skip Redis until open_until, then one trial call (half-open):
// its success closes the breaker, its failure opens it again. Every call
// that Allow() let through reports Success() or Failure().
class Breaker {
 public:
  Breaker(int threshold, nanoseconds open) : threshold_(threshold), open_(open.count()) {}

  bool Allow(int64_t now) {
    int s = state_.load(std::memory_order_acquire);
    if (s == kClosed) return true;
    if (s == kOpen) {
      if (now < open_until_.load(std::memory_order_acquire)) return false;
      if (!state_.compare_exchange_strong(s, kHalfOpen, std::memory_order_acq_rel)) {
        if (s == kClosed) return true;
        if (s == kOpen) return false;
      }
    }
    // Half-open: one trial at a time (Open() re-arms it).
    return !trial_.exchange(true, std::memory_order_acq_rel);
  }
  void Success() {
    if (state_.load(std::memory_order_relaxed) == kClosed &&
        failures_.load(std::memory_order_relaxed) == 0) {
      return;  // the common case writes nothing shared
    }
    failures_.store(0, std::memory_order_relaxed);
    state_.store(kClosed, std::memory_order_release);
    trial_.store(false, std::memory_order_release);
  }
  void Failure(int64_t now) {
    int s = state_.load(std::memory_order_acquire);
    if (s == kHalfOpen) {
      Open(now);
      return;
    }
    if (s == kClosed && failures_.fetch_add(1, std::memory_order_acq_rel) + 1 >= threshold_) {
      Open(now);
    }
  }
  BreakerState state() const { return static_cast<BreakerState>(state_.load()); }
  uint64_t opens() const { return opens_.load(std::memory_order_relaxed); }

 private:
  static constexpr int kClosed = static_cast<int>(BreakerState::kClosed);
  static constexpr int kOpen = static_cast<int>(BreakerState::kOpen);
  static constexpr int kHalfOpen = static_cast<int>(BreakerState::kHalfOpen);
  void Open(int64_t now) {
    open_until_.store(now + open_, std::memory_order_release);
    trial_.store(false, std::memory_order_release);
    state_.store(kOpen, std::memory_order_release);
    opens_.fetch_add(1, std::memory_order_relaxed);
  }
  const int threshold_;
  const int64_t open_;
  std::atomic<int> state_{kClosed};
  std::atomic<int> failures_{0};
  std::atomic<int64_t> open_until_{0};
  std::atomic<bool> trial_{false};
  std::atomic<uint64_t> opens_{0};
};

// ---- data connection pool ----
// At most `max` connections exist (idle + handed out + being opened). A
// caller that finds none waits up to `wait`. Broken connections are never
// returned to the idle list.
class Pool {
 public:
  using Factory = std::function<std::unique_ptr<RedisConnection>(Status*, std::string*)>;
  Pool(size_t max, nanoseconds wait) : max_(max), wait_(wait) {}

  // want_session != 0: idle connections tracked in another session are
  // closed rather than handed out. prefer: a connection's serial to take if
  // it is idle (the one that read the key, for NOLOOP). The caller checks
  // the session of what it gets: a new connection may be untracked.
  std::unique_ptr<RedisConnection> Acquire(uint64_t want_session, uint64_t prefer,
                                           const Factory& make, Status* status,
                                           std::string* error) {
    std::vector<std::unique_ptr<RedisConnection>> stale;
    std::unique_ptr<RedisConnection> got;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const auto deadline = std::chrono::steady_clock::now() + wait_;
      for (;;) {
        for (size_t i = 0; i < idle_.size();) {
          if (want_session != 0 && idle_[i]->session != want_session) {
            stale.push_back(std::move(idle_[i]));
            idle_[i] = std::move(idle_.back());
            idle_.pop_back();
            --open_;
          } else {
            ++i;
          }
        }
        if (!idle_.empty()) {
          size_t pick = idle_.size() - 1;
          for (size_t i = 0; prefer != 0 && i < idle_.size(); ++i) {
            if (idle_[i]->serial == prefer) pick = i;
          }
          got = std::move(idle_[pick]);
          idle_[pick] = std::move(idle_.back());
          idle_.pop_back();
          break;
        }
        if (open_ < max_) {
          ++open_;
          lock.unlock();
          got = make(status, error);
          lock.lock();
          if (!got) {
            --open_;
            cv_.notify_one();
          } else {
            got->serial = ++serials_;
          }
          break;
        }
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
            open_ >= max_) {
          *status = Status::kUnavailable;
          *error = "no Redis connection free within command_timeout (max_connections " +
                   std::to_string(max_) + ")";
          break;
        }
      }
    }
    return got;  // `stale` closes its connections here, outside the lock
  }

  void Release(std::unique_ptr<RedisConnection> c) {
    if (!c) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c->broken()) {
        --open_;
      } else {
        idle_.push_back(std::move(c));
      }
    }
    cv_.notify_one();
  }  // a broken `c` is closed here

  std::vector<std::unique_ptr<RedisConnection>> TakeIdle() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(idle_, {});
  }

  void CloseIdle() {
    std::vector<std::unique_ptr<RedisConnection>> idle;
    std::lock_guard<std::mutex> lock(mu_);
    open_ -= idle_.size();
    idle.swap(idle_);
  }

 private:
  const size_t max_;
  const nanoseconds wait_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;  // guarded by mu_
  size_t open_ = 0;                                     // guarded by mu_
  uint64_t serials_ = 0;                                // guarded by mu_
};

struct Counters {
  std::atomic<uint64_t> l2_hits{0}, l2_misses{0}, l2_errors{0}, l2_skipped{0}, loads{0}, fills{0},
      fills_refused{0}, bypassed_reads{0}, invalidation_messages{0}, invalidated_keys{0},
      flushes{0}, tracking_losses{0}, connection_losses{0}, reconnects{0}, lock_acquired{0},
      lock_waits{0}, lock_wait_hits{0}, lock_fail_open{0}, writes{0}, write_failures{0};
};

void Bump(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

Status CheckKey(std::string_view key) {
  if (key.empty()) return Status::kEmptyKey;
  if (key.size() > kMaxKeyLength) return Status::kKeyTooLong;
  return Status::kOk;
}

}  // namespace

const char* BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half-open";
  }
  return "unknown";
}

class TieredCache::Impl {
 public:
  explicit Impl(TieredOptions o)
      : o_(std::move(o)),
        user_loader_(std::move(o_.l1.loader)),
        window_(o_.max_staleness.count() - o_.redis.command_timeout.count() - 10'000'000),
        pool_(o_.redis.max_connections, o_.redis.command_timeout),
        breaker_(o_.breaker_failures, o_.breaker_open) {}

  ~Impl() { Stop(); }

  Status Start(std::string* error);
  void Stop();

  FetchResult Get(std::string_view key, const FetchOptions& fetch);
  Status Set(std::string_view key, std::string_view value, const PutOptions& put,
             std::string* error);
  Status Delete(std::string_view key, std::string* error);
  Status Invalidate(std::string_view key, std::string* error);
  Status Flush(nanoseconds timeout) { return wb_ ? wb_->Flush(timeout) : Status::kOk; }
  bool Usable() const {
    return up_.load(std::memory_order_acquire) &&
           CoarseNow() < confirmed_until_.load(std::memory_order_acquire);
  }
  TieredStats Stats() const;
  Cache& cache() { return *cache_; }

 private:
  // What a read of Redis (and maybe the loader) found.
  struct Fetched {
    LoadResult result;
    FetchSource source = FetchSource::kNone;
    bool trackable = false;  // read through a connection tracked as asked
  };
  enum class L2 { kOk, kFailed, kSkipped };
  // A pooled connection, returned on destruction.
  class Conn {
   public:
    Conn(Pool* pool, std::unique_ptr<RedisConnection> c) : pool_(pool), c_(std::move(c)) {}
    Conn(Conn&&) = default;
    Conn& operator=(Conn&& other) {
      pool_->Release(std::move(c_));
      c_ = std::move(other.c_);
      pool_ = other.pool_;
      return *this;
    }
    ~Conn() { pool_->Release(std::move(c_)); }
    RedisConnection* operator->() { return c_.get(); }
    explicit operator bool() const { return c_ != nullptr; }
    uint64_t serial() const { return c_ ? c_->serial : 0; }

   private:
    Pool* pool_;
    std::unique_ptr<RedisConnection> c_;
  };

  bool Eligible(std::string_view key) const {
    if (o_.tracking != Tracking::kBroadcast || o_.broadcast_prefixes.empty()) return true;
    for (const std::string& p : o_.broadcast_prefixes) {
      if (key.starts_with(p)) return true;
    }
    return false;
  }
  uint64_t WantSession(uint64_t session) const {
    return o_.tracking == Tracking::kDefault ? session : 0;
  }

  LoadResult L1Loader(std::string_view key, const Loader* user);
  FetchResult Bypass(std::string_view key, const Loader* user);
  Fetched Fetch(std::string_view key, const Loader* user, uint64_t want_session);
  Fetched FetchUnderLock(std::string_view key, const Loader* user, uint64_t want_session, Conn conn,
                         bool trackable);
  LoadResult CallLoader(std::string_view key, const Loader* user);
  Fetched FromL2(const std::vector<Reply>& get_pttl, bool trackable);
  void Fill(std::string_view key, LoadResult* r, uint64_t want_session, uint64_t prefer,
            const std::string* lock_key, const std::string* token, bool* trackable);

  // Runs commands on a pooled connection with the breaker's accounting.
  // kOk: every reply arrived (error replies included: see RepliesOk).
  L2 Call(const std::vector<Command>& commands, std::vector<Reply>* replies, uint64_t want_session,
          uint64_t prefer, Conn* keep, std::string* error);
  bool RepliesOk(const std::vector<Reply>& replies, std::string* error);
  std::unique_ptr<RedisConnection> NewDataConnection(Status* status, std::string* error);
  Conn Acquire(uint64_t want_session, uint64_t prefer, Status* status, std::string* error);
  void ConnectionLost(RedisConnection* c);
  Status WriteL2(const std::vector<Command>& commands, std::string* error);
  std::vector<Command> DelCommands(std::string_view key, std::string* lock_key) const;

  // ---- the background thread ----
  // *subscribed_at: when the SUBSCRIBE that Redis answered last was sent.
  std::unique_ptr<RedisConnection> OpenSession(Status* status, std::string* error,
                                               int64_t* subscribed_at);
  void BecomeUp(RedisConnection* inv, int64_t subscribed_at);
  void BecomeDown();
  void ThreadMain();
  enum class SessionEnd { kLost, kStopping };
  SessionEnd RunSession(RedisConnection* inv);
  bool Handle(const redisReply* r);  // true: a pong
  void SweepIdleConnections();
  bool SleepUnlessStopping(nanoseconds d);

  TieredOptions o_;
  Loader user_loader_;
  const int64_t window_;  // how long an answered ping keeps L1 usable
  std::unique_ptr<Cache> cache_;
  std::unique_ptr<WriteBehind> wb_;
  Pool pool_;
  Breaker breaker_;
  internal::KeyedMutex key_locks_;
  mutable Counters n_;

  // Read by every Get (Usable): a cache line of their own, written only when
  // a session starts or ends and when a pong arrives, never by the counters.
  alignas(64) std::atomic<bool> up_{false};
  std::atomic<int64_t> confirmed_until_{0};
  std::atomic<uint64_t> session_{0};
  alignas(64) std::mutex session_mu_;  // serialises session changes with tracked connection setup
  long long redirect_id_ = 0;          // guarded by session_mu_

  std::atomic<bool> stopping_{false};
  int wake_fd_ = -1;
  std::unique_ptr<RedisConnection> first_inv_;  // handed to the thread
  std::thread thread_;
  bool stopped_ = false;
};

// ---- setup ----

namespace {

std::string Validate(const TieredOptions& o) {
  const RedisOptions& r = o.redis;
  if (r.host.empty()) return "redis.host is empty";
  if (r.port < 1 || r.port > 65535) return "redis.port must be 1..65535";
  if (r.connect_timeout.count() <= 0) return "redis.connect_timeout must be > 0";
  if (r.command_timeout.count() <= 0) return "redis.command_timeout must be > 0";
  if (r.max_connections < 1 || r.max_connections > 1024) {
    return "redis.max_connections must be 1..1024";
  }
  if (r.database < 0) return "redis.database must be >= 0";
  if (o.l1_max_ttl.count() <= 0) return "l1_max_ttl must be > 0";
  if (o.l2_ttl.count() <= 0) return "l2_ttl must be > 0";
  if (o.health_interval.count() <= 0) return "health_interval must be > 0";
  if (o.max_staleness < o.health_interval + 2 * r.command_timeout + std::chrono::milliseconds(50)) {
    return "max_staleness must be at least health_interval + 2 x redis.command_timeout + 50 ms";
  }
  if (o.reconnect_min.count() <= 0 || o.reconnect_max < o.reconnect_min) {
    return "reconnect_min must be > 0 and reconnect_max >= reconnect_min";
  }
  if (o.breaker_failures < 1) return "breaker_failures must be >= 1";
  if (o.breaker_open.count() <= 0) return "breaker_open must be > 0";
  if (o.stampede_lock) {
    if (o.lock_prefix.empty()) return "lock_prefix is empty";
    if (o.lock_lease.count() <= 0) return "lock_lease must be > 0";
    if (o.lock_poll_min.count() <= 0 || o.lock_poll_max < o.lock_poll_min) {
      return "lock_poll_min must be > 0 and lock_poll_max >= lock_poll_min";
    }
  }
  if (o.tracking != Tracking::kBroadcast && !o.broadcast_prefixes.empty()) {
    return "broadcast_prefixes need tracking = kBroadcast";
  }
  for (const std::string& p : o.broadcast_prefixes) {
    if (p.empty()) return "a broadcast prefix is empty (leave the list empty for every key)";
  }
  if (o.write_mode == WriteMode::kWriteThrough && !o.store_writer) {
    return "write_mode kWriteThrough needs store_writer";
  }
  if (o.write_mode == WriteMode::kWriteBehind && !o.write_behind.writer) {
    return "write_mode kWriteBehind needs write_behind.writer";
  }
  return {};
}

}  // namespace

Status TieredCache::Impl::Start(std::string* error) {
  if (std::string why = Validate(o_); !why.empty()) {
    *error = why;
    return Status::kInvalidArgument;
  }
  Options l1 = o_.l1;
  if (user_loader_) {
    // Refreshes of L1 entries (early refresh, stale-while-revalidate) go
    // through Redis too, and obey the same rules as misses.
    l1.loader = [this](std::string_view key) { return L1Loader(key, &user_loader_); };
  }
  if (Status s = Cache::Create(std::move(l1), &cache_); s != Status::kOk) {
    *error = "bad L1 options (TieredOptions::l1)";
    return s;
  }
  Status s = Status::kOk;
  int64_t subscribed_at = 0;
  first_inv_ = OpenSession(&s, error, &subscribed_at);
  if (!first_inv_) return s;
  BecomeUp(first_inv_.get(), subscribed_at);
  if (o_.tracking == Tracking::kDefault) {
    // Checks CLIENT TRACKING ... REDIRECT now, so a server without it (or
    // one that refuses) fails here rather than on the first read.
    Conn c = Acquire(session_.load(), 0, &s, error);
    if (!c) return s;
  }
  if (o_.write_mode == WriteMode::kWriteBehind) {
    if (Status w = WriteBehind::Open(cache_.get(), o_.write_behind, &wb_); w != Status::kOk) {
      *error = "cannot open the write-behind queue (TieredOptions::write_behind)";
      return w;
    }
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    *error = "eventfd failed";
    return Status::kInternal;
  }
  thread_ = std::thread([this] { ThreadMain(); });
  return Status::kOk;
}

void TieredCache::Impl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (wb_) wb_->Close();  // drains: the store gets every acknowledged write
  stopping_.store(true, std::memory_order_release);
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  wb_.reset();
  pool_.CloseIdle();
  // Not cache_.reset(), which clears the pointer before the destructor
  // runs: that destructor joins refreshes whose loader (L1Loader) may still
  // be running and reaches the cache through cache_. Released only once
  // the cache is gone.
  delete cache_.get();
  (void)cache_.release();
}

std::unique_ptr<RedisConnection> TieredCache::Impl::NewDataConnection(Status* status,
                                                                      std::string* error) {
  std::unique_ptr<RedisConnection> c = RedisConnection::Open(o_.redis, status, error);
  if (!c || o_.tracking != Tracking::kDefault) return c;
  std::lock_guard<std::mutex> lock(session_mu_);
  if (!up_.load()) return c;  // untracked: usable for reads that bypass L1
  // NOLOOP: writes through this connection are not reported back to it; the
  // writer invalidates its own L1 itself.
  Reply r =
      c->Run({"CLIENT", "TRACKING", "on", "REDIRECT", std::to_string(redirect_id_), "NOLOOP"});
  if (!r || IsError(r)) {
    *status = r ? Status::kInvalidArgument : Status::kUnavailable;
    *error =
        "Redis refused CLIENT TRACKING on REDIRECT (client-side caching needs Redis 6 or "
        "later): " +
        std::string(r ? ReplyText(r.get()) : std::string_view(c->error()));
    return nullptr;
  }
  c->session = session_.load();
  return c;
}

std::unique_ptr<RedisConnection> TieredCache::Impl::OpenSession(Status* status, std::string* error,
                                                                int64_t* subscribed_at) {
  std::unique_ptr<RedisConnection> c = RedisConnection::Open(o_.redis, status, error);
  if (!c) return nullptr;
  if (o_.tracking == Tracking::kBroadcast) {
    // BCAST needs no per-read state on the server: the subscriber tracks the
    // prefixes for itself (REDIRECT to its own ID), so tracking lives and
    // dies with this connection.
    std::vector<Command> cmd(1);
    const std::string id = std::to_string(c->client_id);
    cmd[0] = {"CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST"};
    for (const std::string& p : o_.broadcast_prefixes) {
      cmd[0].push_back("PREFIX");
      cmd[0].push_back(p);
    }
    std::vector<Reply> replies;
    if (!c->Pipeline(cmd, &replies) || IsError(replies[0])) {
      *status = c->broken() ? Status::kUnavailable : Status::kInvalidArgument;
      *error =
          "Redis refused CLIENT TRACKING ... BCAST (needs Redis 6 or later; prefixes must "
          "not overlap): " +
          std::string(c->broken() ? std::string_view(c->error()) : ReplyText(replies[0].get()));
      return nullptr;
    }
  }
  *subscribed_at = MonoNow();
  Reply r = c->Run({"SUBSCRIBE", "__redis__:invalidate"});
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      ReplyText(r->element[0]) != "subscribe") {
    *status = r ? Status::kInvalidArgument : Status::kUnavailable;
    *error = "Redis refused SUBSCRIBE __redis__:invalidate: " +
             std::string(r ? ReplyText(r.get()) : std::string_view(c->error()));
    return nullptr;
  }
  return c;
}

void TieredCache::Impl::BecomeUp(RedisConnection* inv, int64_t subscribed_at) {
  std::lock_guard<std::mutex> lock(session_mu_);
  redirect_id_ = inv->client_id;
  session_.fetch_add(1);
  // The SUBSCRIBE's answer is the session's first pong: L1 is confirmed from
  // when it was sent, as after a ping, not from now. (This thread may run
  // long after Redis answered, and Redis may have stopped answering since.)
  confirmed_until_.store(subscribed_at + window_);
  up_.store(true);
}

void TieredCache::Impl::BecomeDown() {
  {
    std::lock_guard<std::mutex> lock(session_mu_);
    if (!up_.load()) return;
    up_.store(false);
    session_.fetch_add(1);
  }
  // Every entry was read under the session that just ended; its
  // invalidations can no longer arrive. Clear also supersedes the flights.
  cache_->Clear();
  Bump(n_.tracking_losses);
}

// ---- the background thread ----

bool TieredCache::Impl::SleepUnlessStopping(nanoseconds d) {
  pollfd p{wake_fd_, POLLIN, 0};
  (void)poll(&p, 1, static_cast<int>(std::max<int64_t>(1, d.count() / 1'000'000)));
  return !stopping_.load(std::memory_order_acquire);
}

void TieredCache::Impl::ThreadMain() {
  std::unique_ptr<RedisConnection> inv = std::move(first_inv_);
  nanoseconds backoff = o_.reconnect_min;
  while (!stopping_.load(std::memory_order_acquire)) {
    if (!inv) {
      Status s = Status::kOk;
      std::string why;
      int64_t subscribed_at = 0;
      inv = OpenSession(&s, &why, &subscribed_at);
      if (!inv) {
        if (!SleepUnlessStopping(Jittered(backoff))) break;
        backoff = std::min(backoff * 2, o_.reconnect_max);
        continue;
      }
      backoff = o_.reconnect_min;
      internal::ReachTestPoint(internal::TestPoint::kTierSessionOpened, {});
      BecomeUp(inv.get(), subscribed_at);
      Bump(n_.reconnects);
    }
    SessionEnd end = RunSession(inv.get());
    inv.reset();
    if (end == SessionEnd::kStopping) break;
    BecomeDown();
    // Not at once: a server that drops every connection would be hammered.
    if (!SleepUnlessStopping(Jittered(backoff))) break;
  }
}

TieredCache::Impl::SessionEnd TieredCache::Impl::RunSession(RedisConnection* inv) {
  redisContext* c = inv->context();
  const int64_t ping_deadline = o_.redis.command_timeout.count();
  int64_t next_check = MonoNow() + o_.health_interval.count();
  bool outstanding = false;
  int64_t ping_sent = 0;
  for (;;) {
    if (stopping_.load(std::memory_order_acquire)) return SessionEnd::kStopping;
    // Everything already read, in order: invalidations before the pong that
    // follows them.
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(c, &raw) != REDIS_OK) return SessionEnd::kLost;
      if (raw == nullptr) break;
      Reply r(static_cast<redisReply*>(raw));
      if (Handle(r.get()) && outstanding) {
        outstanding = false;
        const int64_t until = ping_sent + window_;
        if (until > confirmed_until_.load()) confirmed_until_.store(until);
      }
    }
    const int64_t now = MonoNow();
    if (outstanding && now - ping_sent >= ping_deadline) {
      // Missed, unless the pong is already waiting on the socket: this thread
      // may itself have been held past the deadline (a sweep, a scheduler
      // that ran others), and that says nothing of the server.
      pollfd readable{inv->fd(), POLLIN, 0};
      int ready;
      do {
        ready = poll(&readable, 1, 0);
      } while (ready < 0 && errno == EINTR);
      if (ready == 1 && (readable.revents & POLLIN) != 0) {
        if (redisBufferRead(c) != REDIS_OK) return SessionEnd::kLost;
        continue;  // drained at the loop's top; the deadline is checked again after
      }
      return SessionEnd::kLost;
    }
    if (!outstanding && now >= next_check) {
      if (redisAppendCommand(c, "PING") != REDIS_OK) return SessionEnd::kLost;
      for (int done = 0; !done;) {
        if (redisBufferWrite(c, &done) != REDIS_OK) return SessionEnd::kLost;
      }
      ping_sent = now;
      outstanding = true;
      next_check = now + o_.health_interval.count();
      internal::ReachTestPoint(internal::TestPoint::kTierPingSent, {});
      // Data connections Redis dropped while idle are found now, not at their
      // next use: their tracking ended with them.
      SweepIdleConnections();
      continue;
    }
    const int64_t wait = (outstanding ? ping_sent + ping_deadline : next_check) - now;
    pollfd fds[2] = {{inv->fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int n = poll(fds, 2, static_cast<int>(std::max<int64_t>(1, (wait + 999'999) / 1'000'000)));
    if (n < 0 && errno != EINTR) return SessionEnd::kLost;
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      if (redisBufferRead(c) != REDIS_OK) return SessionEnd::kLost;
    }
  }
}

bool TieredCache::Impl::Handle(const redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) return false;
  const std::string_view kind = ReplyText(r->element[0]);
  if (kind == "pong") return true;
  if (kind != "message" || r->elements < 3) return false;
  const redisReply* keys = r->element[2];
  Bump(n_.invalidation_messages);
  if (keys->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < keys->elements; ++i) {
      cache_->Invalidate(ReplyText(keys->element[i]));
      Bump(n_.invalidated_keys);
    }
  } else if (keys->type == REDIS_REPLY_STRING) {
    cache_->Invalidate(ReplyText(keys));
    Bump(n_.invalidated_keys);
  } else {
    // A null payload: FLUSHALL or FLUSHDB. Counted once done, so a reader of
    // the stats never sees a flush whose entries are still there.
    cache_->Clear();
    Bump(n_.flushes);
  }
  return false;
}

void TieredCache::Impl::SweepIdleConnections() {
  std::vector<std::unique_ptr<RedisConnection>> idle = pool_.TakeIdle();
  const uint64_t session = session_.load();
  for (std::unique_ptr<RedisConnection>& c : idle) {
    if (stopping_.load(std::memory_order_acquire)) break;
    if (o_.tracking == Tracking::kDefault && c->session != session) {
      c->Break("tracked into an ended session");  // backs no L1 entry: close it
    } else {
      Reply r = c->Run({"PING"});
      if (!r) ConnectionLost(c.get());
    }
  }
  for (std::unique_ptr<RedisConnection>& c : idle) pool_.Release(std::move(c));
}

// ---- Redis calls ----

TieredCache::Impl::Conn TieredCache::Impl::Acquire(uint64_t want_session, uint64_t prefer,
                                                   Status* status, std::string* error) {
  return Conn(&pool_, pool_.Acquire(
                          want_session, prefer,
                          [this](Status* s, std::string* e) { return NewDataConnection(s, e); },
                          status, error));
}

void TieredCache::Impl::ConnectionLost(RedisConnection* c) {
  // Default mode: Redis forgets what this connection read, so no
  // invalidation of those keys will come. Drop everything (and supersede the
  // flights, whose reads may have used it).
  if (o_.tracking == Tracking::kDefault && c->session != 0 && c->session == session_.load()) {
    cache_->Clear();
  }
  // Counted once handled: whoever sees the count sees L1 dropped.
  Bump(n_.connection_losses);
}

TieredCache::Impl::L2 TieredCache::Impl::Call(const std::vector<Command>& commands,
                                              std::vector<Reply>* replies, uint64_t want_session,
                                              uint64_t prefer, Conn* keep, std::string* error) {
  if (!breaker_.Allow(MonoNow())) {
    Bump(n_.l2_skipped);
    if (error != nullptr) *error = "Redis skipped: the circuit breaker is open";
    return L2::kSkipped;
  }
  Status s = Status::kOk;
  std::string why;
  Conn c = Acquire(want_session, prefer, &s, &why);
  if (!c) {
    Bump(n_.l2_errors);
    breaker_.Failure(MonoNow());
    if (error != nullptr) *error = why;
    return L2::kFailed;
  }
  if (!c->Pipeline(commands, replies)) {
    Bump(n_.l2_errors);
    breaker_.Failure(MonoNow());
    if (error != nullptr) *error = "Redis: " + c->error();
    ConnectionLost(c.operator->());
    return L2::kFailed;
  }
  breaker_.Success();
  if (keep != nullptr) *keep = std::move(c);
  return L2::kOk;
}

bool TieredCache::Impl::RepliesOk(const std::vector<Reply>& replies, std::string* error) {
  for (const Reply& r : replies) {
    if (IsError(r)) {
      Bump(n_.l2_errors);
      breaker_.Failure(MonoNow());  // -LOADING, -OOM, -READONLY, ... count like timeouts
      if (error != nullptr) *error = "Redis: " + std::string(ReplyText(r.get()));
      return false;
    }
  }
  return true;
}

LoadResult TieredCache::Impl::CallLoader(std::string_view key, const Loader* user) {
  if (user == nullptr || !*user) return LoadResult::NotFound();
  Bump(n_.loads);
  try {
    return (*user)(key);
  } catch (const std::exception& e) {
    return LoadResult::Error(e.what());
  } catch (...) {
    return LoadResult::Error("the loader threw a non-standard exception");
  }
}

TieredCache::Impl::Fetched TieredCache::Impl::FromL2(const std::vector<Reply>& r, bool trackable) {
  Fetched f;
  Bump(n_.l2_hits);
  const long long pttl =
      r.size() > 1 && r[1] && r[1]->type == REDIS_REPLY_INTEGER ? r[1]->integer : 0;
  const int64_t max = o_.l1_max_ttl.count();
  int64_t ttl = pttl == -1 || pttl >= max / 1'000'000 ? max : pttl * 1'000'000;
  if (ttl <= 0) {
    // Expiring as we read it (or gone between GET and PTTL): the value is
    // the answer but is not kept.
    ttl = 1;
    trackable = false;
  }
  f.result = LoadResult::Value(std::string(ReplyText(r[0].get())), nanoseconds(ttl));
  f.source = FetchSource::kHit;
  f.trackable = trackable;
  return f;
}

void TieredCache::Impl::Fill(std::string_view key, LoadResult* r, uint64_t want_session,
                             uint64_t prefer, const std::string* lock_key, const std::string* token,
                             bool* trackable) {
  if (r->kind != LoadResult::Kind::kValue) {
    if (lock_key != nullptr) {
      std::vector<Reply> replies;
      (void)Call({{"EVAL", kReleaseScript, "1", *lock_key, *token}}, &replies, want_session, prefer,
                 nullptr, nullptr);
    }
    return;
  }
  const nanoseconds l2_ttl = r->ttl.count() > 0 ? r->ttl : o_.l2_ttl;
  r->ttl = std::min(l2_ttl, o_.l1_max_ttl);
  const std::string ms = Millis(l2_ttl);
  // Then GET on the same connection. Redis stops tracking a key once it was
  // written (by anyone, our own NOLOOP write included), so the GET is what
  // makes it report the next change; and what it returns says whether the
  // value we keep is still the one Redis has.
  std::vector<Command> commands;
  if (lock_key != nullptr) {
    commands.push_back({"EVAL", kFillAndReleaseScript, "2", key, *lock_key, *token, r->value, ms});
  } else {
    // NX: never overwrite what another process wrote meanwhile (it is as
    // new as ours or newer).
    commands.push_back({"SET", key, r->value, "PX", ms, "NX"});
  }
  commands.push_back({"GET", key});
  std::vector<Reply> replies;
  Conn c(&pool_, nullptr);
  const L2 done = Call(commands, &replies, want_session, prefer, &c, nullptr);
  if (done != L2::kOk || !RepliesOk(replies, nullptr)) {
    *trackable = false;
    return;
  }
  const bool filled = lock_key != nullptr
                          ? replies[0]->type == REDIS_REPLY_INTEGER && replies[0]->integer == 1
                          : IsOk(replies[0]);
  if (filled) {
    Bump(n_.fills);
  } else {
    // The key appeared (another writer), or our lease was lost: this load
    // may be older than what Redis has now. Answer with it, keep it out.
    Bump(n_.fills_refused);
    *trackable = false;
  }
  if (replies[1]->type != REDIS_REPLY_STRING || ReplyText(replies[1].get()) != r->value ||
      (want_session != 0 && c->session != want_session)) {
    *trackable = false;
  }
}

TieredCache::Impl::Fetched TieredCache::Impl::Fetch(std::string_view key, const Loader* user,
                                                    uint64_t want_session) {
  Fetched f;
  std::vector<Reply> replies;
  Conn c(&pool_, nullptr);
  L2 got = Call({{"GET", key}, {"PTTL", key}}, &replies, want_session, 0, &c, nullptr);
  if (got != L2::kOk || !RepliesOk(replies, nullptr)) {
    // Redis failed (or the breaker skipped it): an L2 miss that is neither
    // written back nor kept in L1.
    f.result = CallLoader(key, user);
    f.source = user != nullptr && *user ? FetchSource::kLoaded : FetchSource::kNone;
    return f;
  }
  const bool trackable = want_session == 0 || c->session == want_session;
  internal::ReachTestPoint(internal::TestPoint::kTierL2Answered, key);
  if (replies[0]->type == REDIS_REPLY_STRING) return FromL2(replies, trackable);
  Bump(n_.l2_misses);
  f.trackable = trackable;  // the GET registered the (absent) key: a later SET tells us
  if (user == nullptr || !*user) {
    f.result = LoadResult::NotFound();
    return f;
  }
  if (o_.stampede_lock) return FetchUnderLock(key, user, want_session, std::move(c), trackable);
  const uint64_t reader = c.serial();
  c = Conn(&pool_, nullptr);  // not held while the loader runs
  f.result = CallLoader(key, user);
  f.source = FetchSource::kLoaded;
  Fill(key, &f.result, want_session, reader, nullptr, nullptr, &f.trackable);
  return f;
}

TieredCache::Impl::Fetched TieredCache::Impl::FetchUnderLock(std::string_view key,
                                                             const Loader* user,
                                                             uint64_t want_session, Conn c,
                                                             bool trackable) {
  Fetched f;
  const std::string lock_key = o_.lock_prefix + std::string(key);
  const std::string token = RandomToken();
  const std::string lease_ms = Millis(o_.lock_lease);
  const int64_t give_up = MonoNow() + 2 * o_.lock_lease.count();
  nanoseconds backoff = o_.lock_poll_min;
  bool waited = false;
  auto load_without_l2 = [&] {
    f.result = CallLoader(key, user);
    f.source = FetchSource::kLoaded;
    f.trackable = false;
    return f;
  };
  for (;;) {
    std::vector<Reply> r;
    if (!c->Pipeline({{"SET", lock_key, token, "NX", "PX", lease_ms}}, &r)) {
      Bump(n_.l2_errors);
      breaker_.Failure(MonoNow());
      ConnectionLost(c.operator->());
      return load_without_l2();
    }
    if (IsOk(r[0])) {
      Bump(n_.lock_acquired);
      // The holder before us may have filled the key just before letting go.
      std::vector<Reply> g;
      if (!c->Pipeline({{"GET", key}, {"PTTL", key}}, &g) || IsError(g[0])) {
        if (c->broken()) ConnectionLost(c.operator->());
        return load_without_l2();
      }
      if (g[0]->type == REDIS_REPLY_STRING) {
        std::vector<Reply> ignored;
        (void)c->Pipeline({{"EVAL", kReleaseScript, "1", lock_key, token}}, &ignored);
        if (waited) Bump(n_.lock_wait_hits);
        return FromL2(g, trackable);
      }
      const uint64_t reader = c.serial();
      c = Conn(&pool_, nullptr);
      f.result = CallLoader(key, user);
      f.source = FetchSource::kLoaded;
      f.trackable = trackable;
      Fill(key, &f.result, want_session, reader, &lock_key, &token, &f.trackable);
      return f;
    }
    if (IsError(r[0])) {
      Bump(n_.l2_errors);
      return load_without_l2();
    }
    // Taken: wait for the holder's fill, polling with backoff.
    if (!waited) Bump(n_.lock_waits);
    waited = true;
    const int64_t now = MonoNow();
    if (now >= give_up) {
      // Fail open: the holder neither filled nor let its lease run out in
      // time (or others keep winning and failing). Load anyway.
      Bump(n_.lock_fail_open);
      c = Conn(&pool_, nullptr);
      f.result = CallLoader(key, user);
      f.source = FetchSource::kLoaded;
      f.trackable = trackable;
      Fill(key, &f.result, want_session, 0, nullptr, nullptr, &f.trackable);
      return f;
    }
    c = Conn(&pool_, nullptr);  // not held while sleeping
    std::this_thread::sleep_for(std::min(Jittered(backoff), nanoseconds(give_up - now)));
    backoff = std::min(backoff * 2, o_.lock_poll_max);
    std::vector<Reply> g;
    if (Call({{"GET", key}, {"PTTL", key}}, &g, want_session, 0, &c, nullptr) != L2::kOk ||
        !RepliesOk(g, nullptr)) {
      return load_without_l2();
    }
    trackable = want_session == 0 || c->session == want_session;
    if (g[0]->type == REDIS_REPLY_STRING) {
      Bump(n_.lock_wait_hits);
      return FromL2(g, trackable);
    }
  }
}

// ---- reads ----

// Where the answer of the L1 flight this thread just led came from (the
// cache reports every led flight as kLoaded; the caller wants to know).
thread_local FetchSource t_led_source = FetchSource::kNone;

LoadResult TieredCache::Impl::L1Loader(std::string_view key, const Loader* user) {
  // Runs as the loader of key's L1 flight: the flight is registered, so any
  // invalidation of the key from here on keeps this answer out of L1.
  const uint64_t session = session_.load();
  const bool usable = Usable() && Eligible(key);
  Fetched f = Fetch(key, user, usable ? WantSession(session) : 0);
  t_led_source = f.source;
  if (!(usable && f.trackable && up_.load() && session_.load() == session)) {
    cache_->Invalidate(key);  // supersede our own flight: answer, do not keep
  }
  return std::move(f.result);
}

FetchResult TieredCache::Impl::Bypass(std::string_view key, const Loader* user) {
  FetchResult out;
  if (Status s = CheckKey(key); s != Status::kOk) {
    out.status = s;
    return out;
  }
  Bump(n_.bypassed_reads);
  if (std::optional<std::string> pending; wb_ && PendingWrite(*cache_, key, &pending)) {
    // Read-your-writes (W2), as the L1 path would answer.
    if (!pending) {
      out.status = Status::kNotFound;
    } else if (internal::Entry* e = internal::NewEntry(key, *pending, 0); e == nullptr) {
      out.status = Status::kNoMemory;
      return out;
    } else {
      out.status = Status::kOk;
      out.value = internal::PinAccess::Adopt(e);
    }
    out.source = FetchSource::kHit;
    return out;
  }
  Fetched f = Fetch(key, user, 0);
  out.source = f.source;
  switch (f.result.kind) {
    case LoadResult::Kind::kValue: {
      // An unlinked entry, as for a pending write: the caller's pin owns it.
      internal::Entry* e = internal::NewEntry(key, f.result.value, 0);
      if (e == nullptr) {
        out.status = Status::kNoMemory;
        out.source = FetchSource::kNone;
        return out;
      }
      out.status = Status::kOk;
      out.value = internal::PinAccess::Adopt(e);
      break;
    }
    case LoadResult::Kind::kNotFound:
      out.status = Status::kNotFound;
      break;
    case LoadResult::Kind::kError:
      out.status = Status::kLoadFailed;
      out.error = std::move(f.result.error);
      break;
  }
  return out;
}

FetchResult TieredCache::Impl::Get(std::string_view key, const FetchOptions& fetch) {
  const Loader* user = fetch.loader ? &fetch.loader : (user_loader_ ? &user_loader_ : nullptr);
  if (!Usable() || !Eligible(key)) return Bypass(key, user);
  FetchOptions f;
  f.timeout = fetch.timeout;
  f.loader = [this, user](std::string_view k) { return L1Loader(k, user); };
  t_led_source = FetchSource::kNone;
  FetchResult r = cache_->GetOrLoad(key, f);
  if (r.source == FetchSource::kLoaded) r.source = t_led_source;
  return r;
}

// ---- writes ----

std::vector<Command> TieredCache::Impl::DelCommands(std::string_view key,
                                                    std::string* lock_key) const {
  if (!o_.stampede_lock) return {{"DEL", key}};
  // The lock goes too: a load under way when the store changed must not fill
  // Redis with what it read before (its fill needs the lock it held).
  *lock_key = o_.lock_prefix + std::string(key);
  return {{"DEL", key, *lock_key}};
}

Status TieredCache::Impl::WriteL2(const std::vector<Command>& commands, std::string* error) {
  std::vector<Reply> replies;
  std::string why;
  const L2 done = Call(commands, &replies, 0, 0, nullptr, &why);
  if (done == L2::kOk && RepliesOk(replies, &why)) return Status::kOk;
  if (error != nullptr) *error = why;
  return Status::kUnavailable;
}

Status TieredCache::Impl::Invalidate(std::string_view key, std::string* error) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  Bump(n_.writes);
  std::string lock_key;
  Status s = WriteL2(DelCommands(key, &lock_key), error);
  // After the DEL: a flight of ours that read the old value is superseded
  // even if Redis's message about our own DEL never comes (NOLOOP).
  cache_->Invalidate(key);
  if (s != Status::kOk) Bump(n_.write_failures);
  return s;
}

Status TieredCache::Impl::Set(std::string_view key, std::string_view value, const PutOptions& put,
                              std::string* error) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  if (put.ttl.count() < 0) return Status::kInvalidArgument;
  Bump(n_.writes);
  const nanoseconds l2_ttl = put.ttl.count() > 0 ? put.ttl : o_.l2_ttl;
  const std::string ms = Millis(l2_ttl);
  auto failed = [&](Status s) {
    if (s != Status::kOk) Bump(n_.write_failures);
    return s;
  };
  switch (o_.write_mode) {
    case WriteMode::kCacheAside: {
      Status s = WriteL2({{"SET", key, value, "PX", ms}}, error);
      cache_->Invalidate(key);
      return failed(s);
    }
    case WriteMode::kWriteThrough: {
      internal::KeyedMutex::Lock lock(&key_locks_, key);
      WriteOutcome w;
      try {
        w = o_.store_writer(key, value);
      } catch (const std::exception& e) {
        w = WriteOutcome::Failed(e.what());
      } catch (...) {
        w = WriteOutcome::Failed("the store writer threw");
      }
      if (!w.ok) {
        if (error != nullptr) *error = w.error;
        return failed(Status::kWriteFailed);
      }
      Status s = WriteL2({{"SET", key, value, "PX", ms}}, error);
      // The next read here fetches it through a tracked connection: an L1
      // copy is only ever made from a read Redis tracks.
      cache_->Invalidate(key);
      return failed(s);
    }
    case WriteMode::kWriteBehind: {
      internal::KeyedMutex::Lock lock(&key_locks_, key);
      const uint64_t session = session_.load();
      const bool usable = Usable() && Eligible(key);
      PutOptions l1put = put;
      l1put.ttl = std::min(l2_ttl, o_.l1_max_ttl);
      if (Status s = wb_->Put(key, value, l1put); s != Status::kOk) return failed(s);
      // SET, then GET on the same connection: the GET makes Redis track the
      // key for us. The L1 copy the queue just made stays only if Redis
      // still had our value when it started tracking; otherwise a write
      // between the two is newer than ours, or went unseen.
      std::vector<Reply> replies;
      Conn c(&pool_, nullptr);
      std::string why;
      const L2 done = Call({{"SET", key, value, "PX", ms}, {"GET", key}}, &replies,
                           usable ? WantSession(session) : 0, 0, &c, &why);
      const bool ok = done == L2::kOk && RepliesOk(replies, &why);
      const bool keep = ok && usable && (WantSession(session) == 0 || c->session == session) &&
                        replies[1]->type == REDIS_REPLY_STRING &&
                        ReplyText(replies[1].get()) == value && up_.load() &&
                        session_.load() == session;
      c = Conn(&pool_, nullptr);
      if (!keep) cache_->Invalidate(key);  // reads answer from the queue meanwhile
      if (!ok && error != nullptr) *error = why;
      return failed(ok ? Status::kOk : Status::kUnavailable);
    }
  }
  return Status::kInternal;
}

Status TieredCache::Impl::Delete(std::string_view key, std::string* error) {
  if (Status s = CheckKey(key); s != Status::kOk) return s;
  switch (o_.write_mode) {
    case WriteMode::kCacheAside:
      return Invalidate(key, error);
    case WriteMode::kWriteThrough: {
      Bump(n_.writes);
      internal::KeyedMutex::Lock lock(&key_locks_, key);
      WriteOutcome w;
      try {
        w = o_.store_writer(key, std::nullopt);
      } catch (const std::exception& e) {
        w = WriteOutcome::Failed(e.what());
      } catch (...) {
        w = WriteOutcome::Failed("the store writer threw");
      }
      if (!w.ok) {
        Bump(n_.write_failures);
        if (error != nullptr) *error = w.error;
        return Status::kWriteFailed;
      }
      std::string lock_key;
      Status s = WriteL2(DelCommands(key, &lock_key), error);
      cache_->Invalidate(key);
      if (s != Status::kOk) Bump(n_.write_failures);
      return s;
    }
    case WriteMode::kWriteBehind: {
      Bump(n_.writes);
      internal::KeyedMutex::Lock lock(&key_locks_, key);
      if (Status s = wb_->Delete(key); s != Status::kOk) {
        Bump(n_.write_failures);
        return s;
      }
      std::string lock_key;
      Status s = WriteL2(DelCommands(key, &lock_key), error);
      if (s != Status::kOk) Bump(n_.write_failures);
      return s;
    }
  }
  return Status::kInternal;
}

TieredStats TieredCache::Impl::Stats() const {
  TieredStats s;
  s.l1 = cache_->GetStats();
  s.l2_hits = n_.l2_hits.load();
  s.l2_misses = n_.l2_misses.load();
  s.l2_errors = n_.l2_errors.load();
  s.l2_skipped = n_.l2_skipped.load();
  s.loads = n_.loads.load();
  s.fills = n_.fills.load();
  s.fills_refused = n_.fills_refused.load();
  s.bypassed_reads = n_.bypassed_reads.load();
  s.invalidation_messages = n_.invalidation_messages.load();
  s.invalidated_keys = n_.invalidated_keys.load();
  s.flushes = n_.flushes.load();
  s.tracking_losses = n_.tracking_losses.load();
  s.connection_losses = n_.connection_losses.load();
  s.reconnects = n_.reconnects.load();
  s.tracking_up = Usable();
  s.breaker_state = breaker_.state();
  s.breaker_opens = breaker_.opens();
  s.lock_acquired = n_.lock_acquired.load();
  s.lock_waits = n_.lock_waits.load();
  s.lock_wait_hits = n_.lock_wait_hits.load();
  s.lock_fail_open = n_.lock_fail_open.load();
  s.writes = n_.writes.load();
  s.write_failures = n_.write_failures.load();
  return s;
}

// ---- TieredCache ----

Status TieredCache::Create(TieredOptions options, std::unique_ptr<TieredCache>* out,
                           std::string* error) {
  std::string why;
  if (out == nullptr) return Status::kInvalidArgument;
  out->reset();
  auto impl = std::make_unique<Impl>(std::move(options));
  Status s = impl->Start(&why);
  if (s != Status::kOk) {
    if (error != nullptr) *error = why;
    return s;
  }
  out->reset(new TieredCache(std::move(impl)));
  return Status::kOk;
}

TieredCache::TieredCache(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), fork_generation_(internal::ForkGeneration()) {}

TieredCache::~TieredCache() {
  if (InheritedAcrossFork()) {
    // The background thread, the flusher and any lock held at the fork are
    // the parent's; the sockets are shared with it. Leave it all.
    (void)impl_.release();
  }
}

bool TieredCache::InheritedAcrossFork() const {
  return fork_generation_ != internal::ForkGeneration();
}

bool TieredCache::PendingWrite(Cache& cache, std::string_view key,
                               std::optional<std::string>* value) {
  return cache.LookupPending(key, value);
}

FetchResult TieredCache::Get(std::string_view key, const FetchOptions& options) {
  if (InheritedAcrossFork()) {
    FetchResult r;
    r.status = Status::kForked;
    return r;
  }
  return impl_->Get(key, options);
}

Status TieredCache::Set(std::string_view key, std::string_view value, const PutOptions& options,
                        std::string* error) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Set(key, value, options, error);
}

Status TieredCache::Delete(std::string_view key, std::string* error) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Delete(key, error);
}

Status TieredCache::Invalidate(std::string_view key, std::string* error) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Invalidate(key, error);
}

Status TieredCache::Flush(std::chrono::nanoseconds timeout) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Flush(timeout);
}

bool TieredCache::tracking() const { return !InheritedAcrossFork() && impl_->Usable(); }

TieredStats TieredCache::GetStats() const {
  if (InheritedAcrossFork()) return TieredStats{};
  return impl_->Stats();
}

Cache& TieredCache::l1() { return impl_->cache(); }

}  // namespace larder
