// The C ABI: argument checks, status codes, ownership. No caching logic here:
// every function forwards to the C++ engine (core/) and translates.
#include "larder.h"

#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "capi_internal.h"
#include "epoch.h"
#include "larder/cache.h"
#include "pin_access.h"

namespace {

using larder::FetchResult;
using larder::FetchSource;
using larder::LoadResult;
using larder::Status;

// The engine's codes are the ABI's codes; the C-only ones come after them.
static_assert(static_cast<int>(Status::kOk) == LARDER_OK);
static_assert(static_cast<int>(Status::kNotFound) == LARDER_NOT_FOUND);
static_assert(static_cast<int>(Status::kInvalidArgument) == LARDER_INVALID_ARGUMENT);
static_assert(static_cast<int>(Status::kEmptyKey) == LARDER_EMPTY_KEY);
static_assert(static_cast<int>(Status::kKeyTooLong) == LARDER_KEY_TOO_LONG);
static_assert(static_cast<int>(Status::kValueTooLarge) == LARDER_VALUE_TOO_LARGE);
static_assert(static_cast<int>(Status::kBufferTooSmall) == LARDER_BUFFER_TOO_SMALL);
static_assert(static_cast<int>(Status::kNoMemory) == LARDER_NO_MEMORY);
static_assert(static_cast<int>(Status::kLoadFailed) == LARDER_LOAD_FAILED);
static_assert(static_cast<int>(Status::kTimeout) == LARDER_TIMEOUT);
static_assert(static_cast<int>(Status::kRecursiveLoad) == LARDER_RECURSIVE_LOAD);
static_assert(static_cast<int>(Status::kBusy) == LARDER_BUSY);
static_assert(static_cast<int>(Status::kClosed) == LARDER_CLOSED);
static_assert(static_cast<int>(Status::kInternal) == LARDER_INTERNAL);
static_assert(static_cast<int>(Status::kWriteFailed) == LARDER_WRITE_FAILED);
static_assert(static_cast<int>(Status::kIoError) == LARDER_IO_ERROR);
static_assert(static_cast<int>(Status::kForked) == LARDER_FORKED);
static_assert(static_cast<int>(Status::kUnavailable) == LARDER_UNAVAILABLE);
static_assert(larder::kMaxKeyLength == LARDER_MAX_KEY_LENGTH);
static_assert(static_cast<int>(larder::RemovalCause::kExplicit) == LARDER_REMOVED_EXPLICIT);
static_assert(static_cast<int>(larder::RemovalCause::kReplaced) == LARDER_REMOVED_REPLACED);
static_assert(static_cast<int>(larder::RemovalCause::kExpired) == LARDER_REMOVED_EXPIRED);
static_assert(static_cast<int>(larder::RemovalCause::kEvicted) == LARDER_REMOVED_EVICTED);
static_assert(static_cast<int>(FetchSource::kNone) == LARDER_SOURCE_NONE);
static_assert(static_cast<int>(FetchSource::kHit) == LARDER_SOURCE_HIT);
static_assert(static_cast<int>(FetchSource::kStale) == LARDER_SOURCE_STALE);
static_assert(static_cast<int>(FetchSource::kNegative) == LARDER_SOURCE_NEGATIVE);
static_assert(static_cast<int>(FetchSource::kLoaded) == LARDER_SOURCE_LOADED);
static_assert(static_cast<int>(FetchSource::kJoined) == LARDER_SOURCE_JOINED);

constexpr uint32_t kCacheMagic = 0x4C415244;  // "LARD"
constexpr uint32_t kDeadMagic = 0xDEADCA5E;

larder_status Code(Status s) { return static_cast<larder_status>(s); }

// Options objects are few and cold, so a registry makes use after free and
// double free detectable without touching freed memory.
std::mutex g_options_mu;
std::unordered_set<const larder_options*>& LiveOptions() {
  // A static object, not a leaked one: the library may be dlclose'd.
  static std::unordered_set<const larder_options*> live;
  return live;
}
// A thread of the parent holding the registry's lock at fork() would leave
// it locked in the child forever: hold it across the fork instead.
void LockOptionsForFork() { g_options_mu.lock(); }
void UnlockOptionsAfterFork() { g_options_mu.unlock(); }
[[maybe_unused]] const bool g_options_fork_handlers =
    pthread_atfork(&LockOptionsForFork, &UnlockOptionsAfterFork, &UnlockOptionsAfterFork) == 0;

bool IsLive(const larder_options* o) {
  if (o == nullptr) return false;
  std::lock_guard<std::mutex> lock(g_options_mu);
  return LiveOptions().count(o) != 0;
}

class CallbackClock final : public larder::Clock {
 public:
  CallbackClock(larder_clock_fn fn, void* user_data) : fn_(fn), user_data_(user_data) {}
  int64_t NowNanos() override { return fn_(user_data_); }

 private:
  larder_clock_fn fn_;
  void* user_data_;
};

}  // namespace

struct larder_options {
  larder::Options options;
  larder_loader_fn loader = nullptr;
  void* loader_data = nullptr;
};

struct larder_cache {
  uint32_t magic = kCacheMagic;
  std::atomic<bool> closed{false};
  // A copy of the cache's, so the check on every call reads this line only.
  uint64_t fork_generation = larder::internal::ForkGeneration();
  std::unique_ptr<larder::Cache> cache;
};

struct larder_snapshot {
  std::vector<larder::SnapshotEntry> entries;
};

struct larder_load_result {
  LoadResult result;
  bool set = false;
};

struct larder_lease {
  larder::LoadLease lease;
};

struct larder_ticket {
  larder::LoadTicket ticket;
};

namespace {

larder_status CheckCache(const larder_cache* c) {
  if (c == nullptr || c->magic != kCacheMagic) return LARDER_INVALID_ARGUMENT;
  if (c->fork_generation != larder::internal::ForkGeneration()) return LARDER_FORKED;
  if (c->closed.load(std::memory_order_acquire)) return LARDER_CLOSED;
  return LARDER_OK;
}

// (NULL, n > 0) is invalid; (NULL, 0) is the empty string.
bool ValidBytes(const void* p, size_t n) { return p != nullptr || n == 0; }

std::string_view View(const void* p, size_t n) {
  return n == 0 ? std::string_view() : std::string_view(static_cast<const char*>(p), n);
}

larder::Loader WrapLoader(larder_loader_fn fn, void* user_data) {
  return [fn, user_data](std::string_view key) {
    larder_load_result r;
    int rc = fn(user_data, key.data(), key.size(), &r);
    if (rc != 0) {
      if (r.set && r.result.kind == LoadResult::Kind::kError) return std::move(r.result);
      return LoadResult::Error("the loader returned " + std::to_string(rc));
    }
    if (!r.set) return LoadResult::Error("the loader set no result");
    return std::move(r.result);
  };
}

void FillValue(larder_value* out, larder::PinnedValue pin) {
  if (out == nullptr) return;  // the pin's reference is dropped with `pin`
  out->data = pin ? pin.value().data() : nullptr;
  out->size = pin ? pin.value().size() : 0;
  out->internal_ = larder::internal::PinAccess::Release(pin);
}

void FillInfo(larder_fetch_info* info, const FetchResult& r) {
  if (info == nullptr) return;
  const size_t n = info->struct_size;
  if (n >= offsetof(larder_fetch_info, source) + sizeof info->source) {
    info->source = static_cast<int>(r.source);
  }
  if (n >= offsetof(larder_fetch_info, stale) + sizeof info->stale) info->stale = r.stale ? 1 : 0;
  if (n >= offsetof(larder_fetch_info, error) + sizeof info->error) {
    size_t len = std::min(r.error.size(), sizeof info->error - 1);
    std::memcpy(info->error, r.error.data(), len);
    info->error[len] = '\0';
  }
}

// For the results of fetches: fills the out-parameters, returns the status.
larder_status Deliver(FetchResult&& r, larder_value* out, larder_fetch_info* info) {
  FillInfo(info, r);
  larder_status status = Code(r.status);
  FillValue(out, std::move(r.value));
  return status;
}

void FillEntryInfo(larder_entry_info* info, const larder::EntryInfo& e) {
  if (info == nullptr) return;
  const size_t n = info->struct_size;
  if (n >= offsetof(larder_entry_info, stale) + sizeof info->stale) info->stale = e.stale;
  if (n >= offsetof(larder_entry_info, expires) + sizeof info->expires) info->expires = e.expires;
  if (n >= offsetof(larder_entry_info, remaining_ns) + sizeof info->remaining_ns) {
    info->remaining_ns = e.remaining.count();
  }
  if (n >= offsetof(larder_entry_info, refresh_due) + sizeof info->refresh_due) {
    info->refresh_due = e.refresh_due;
  }
}

bool EntryInfoUsable(const larder_entry_info* info) {
  return info == nullptr || info->struct_size >= offsetof(larder_entry_info, stale) + sizeof(int);
}

// The three answers of BeginFetch and BeginRefresh, as larder_fetch_begin
// and larder_refresh_begin give them.
larder_status HandOut(larder::FetchLookup lookup, std::unique_ptr<larder_lease> lease_handle,
                      std::unique_ptr<larder_ticket> ticket_handle, int* kind, larder_value* out,
                      larder_fetch_info* info, larder_lease** lease, larder_ticket** ticket);

bool ValueSlotUsable(const larder_value* v) {
  return v != nullptr && v->struct_size >= sizeof(larder_value) && v->internal_ == nullptr;
}

}  // namespace

namespace larder::capi {

larder_status FillStats(const larder::Stats& s, larder_stats* out) {
  if (out == nullptr || out->struct_size < offsetof(larder_stats, hits) + sizeof(uint64_t)) {
    return LARDER_INVALID_ARGUMENT;
  }
  larder_stats full;
  full.struct_size = out->struct_size;
  full.hits = s.hits;
  full.misses = s.misses;
  full.puts = s.puts;
  full.evictions = s.evictions;
  full.expirations = s.expirations;
  full.invalidations = s.invalidations;
  full.entries = s.entries;
  full.bytes = s.bytes;
  full.capacity_bytes = s.capacity_bytes;
  full.capacity_entries = s.capacity_entries;
  full.dropped_promotions = s.dropped_promotions;
  full.loads = s.loads;
  full.load_failures = s.load_failures;
  full.load_time_ns = s.load_time_nanos;
  full.coalesced_waits = s.coalesced_waits;
  full.refreshes_started = s.refreshes_started;
  full.refreshes_discarded = s.refreshes_discarded;
  full.loads_discarded = s.loads_discarded;
  full.stale_hits = s.stale_hits;
  full.negative_hits = s.negative_hits;
  full.load_timeouts = s.load_timeouts;
  // An older caller's struct is a prefix of ours: fill only what it has.
  std::memcpy(out, &full, std::min(out->struct_size, sizeof full));
  return LARDER_OK;
}

}  // namespace larder::capi

extern "C" {

#define LARDER_STR_(x) #x
#define LARDER_STR(x) LARDER_STR_(x)
const char* larder_version(void) {
  return LARDER_STR(LARDER_VERSION_MAJOR) "." LARDER_STR(LARDER_VERSION_MINOR) "." LARDER_STR(
      LARDER_VERSION_PATCH);
}
int larder_version_number(void) { return LARDER_VERSION_NUMBER; }

const char* larder_strerror(larder_status status) {
  if (status == LARDER_CLOSED) return "the cache is closed";
  if (status < 0 || status > LARDER_UNAVAILABLE) return "unknown status";
  return larder::StatusName(static_cast<Status>(status));
}

// ---- options ----

larder_options* larder_options_new(void) {
  try {
    auto* o = new larder_options;
    std::lock_guard<std::mutex> lock(g_options_mu);
    LiveOptions().insert(o);
    return o;
  } catch (...) {
    return nullptr;
  }
}

void larder_options_free(larder_options* o) {
  if (o == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(g_options_mu);
    if (LiveOptions().erase(o) == 0) return;  // already freed (or never ours)
  }
  delete o;
}

#define LARDER_OPTIONS_SETTER(name, type, check, assign)               \
  larder_status larder_options_set_##name(larder_options* o, type v) { \
    LARDER_GUARD_BEGIN                                                 \
    if (!IsLive(o) || !(check)) return LARDER_INVALID_ARGUMENT;        \
    assign;                                                            \
    return LARDER_OK;                                                  \
    LARDER_GUARD_END                                                   \
  }

LARDER_OPTIONS_SETTER(capacity_bytes, uint64_t, v > 0, o->options.capacity_bytes = v)
LARDER_OPTIONS_SETTER(capacity_entries, uint64_t, true, o->options.capacity_entries = v)
LARDER_OPTIONS_SETTER(stripes, uint32_t, v <= 65536, o->options.stripes = v)
LARDER_OPTIONS_SETTER(default_ttl, int64_t, v >= 0,
                      o->options.default_ttl = std::chrono::nanoseconds(v))
LARDER_OPTIONS_SETTER(negative_ttl, int64_t, v >= 0,
                      o->options.negative_ttl = std::chrono::nanoseconds(v))
LARDER_OPTIONS_SETTER(error_ttl, int64_t, v >= 0,
                      o->options.error_ttl = std::chrono::nanoseconds(v))
LARDER_OPTIONS_SETTER(refresh_beta, double, v >= 0 && v < 1e300, o->options.refresh_beta = v)
LARDER_OPTIONS_SETTER(default_refresh_delta, int64_t, v >= 0,
                      o->options.default_refresh_delta = std::chrono::nanoseconds(v))
LARDER_OPTIONS_SETTER(stale_while_revalidate, int64_t, v >= 0,
                      o->options.stale_while_revalidate = std::chrono::nanoseconds(v))
LARDER_OPTIONS_SETTER(stale_if_error, int64_t, v >= 0,
                      o->options.stale_if_error = std::chrono::nanoseconds(v))
LARDER_OPTIONS_SETTER(refresh_threads, uint32_t, v >= 1 && v <= 64, o->options.refresh_threads = v)
LARDER_OPTIONS_SETTER(random_seed, uint64_t, true, o->options.random_seed = v)

larder_status larder_options_set_removal_listener(larder_options* o, larder_removal_fn fn,
                                                  void* user_data) {
  LARDER_GUARD_BEGIN
  if (!IsLive(o)) return LARDER_INVALID_ARGUMENT;
  if (fn == nullptr) {
    o->options.removal_listener = nullptr;
  } else {
    o->options.removal_listener = [fn, user_data](std::string_view k, std::string_view v,
                                                  larder::RemovalCause cause) {
      fn(user_data, k.data(), k.size(), v.data(), v.size(), static_cast<int>(cause));
    };
  }
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_options_set_loader(larder_options* o, larder_loader_fn fn, void* user_data) {
  LARDER_GUARD_BEGIN
  if (!IsLive(o)) return LARDER_INVALID_ARGUMENT;
  o->options.loader = fn == nullptr ? larder::Loader() : WrapLoader(fn, user_data);
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_options_set_clock(larder_options* o, larder_clock_fn fn, void* user_data) {
  LARDER_GUARD_BEGIN
  if (!IsLive(o)) return LARDER_INVALID_ARGUMENT;
  o->options.clock = fn == nullptr ? nullptr : std::make_shared<CallbackClock>(fn, user_data);
  return LARDER_OK;
  LARDER_GUARD_END
}

// ---- cache ----

larder_status larder_cache_create(const larder_options* o, larder_cache** out) {
  LARDER_GUARD_BEGIN
  if (out == nullptr) return LARDER_INVALID_ARGUMENT;
  *out = nullptr;
  if (!IsLive(o)) return LARDER_INVALID_ARGUMENT;
  larder::Options copy;
  {
    std::lock_guard<std::mutex> lock(g_options_mu);  // a consistent copy
    copy = o->options;
  }
  auto handle = std::make_unique<larder_cache>();
  Status s = larder::Cache::Create(std::move(copy), &handle->cache);
  if (s != Status::kOk) return Code(s);
  *out = handle.release();
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_cache_close(larder_cache* c) {
  LARDER_GUARD_BEGIN
  if (c == nullptr || c->magic != kCacheMagic) return LARDER_INVALID_ARGUMENT;
  if (c->fork_generation != larder::internal::ForkGeneration()) return LARDER_FORKED;
  if (!c->closed.exchange(true, std::memory_order_acq_rel)) c->cache->Clear();
  return LARDER_OK;
  LARDER_GUARD_END
}

void larder_cache_destroy(larder_cache* c) {
  if (c == nullptr || c->magic != kCacheMagic) return;
  c->magic = kDeadMagic;
  delete c;
}

}  // extern "C"

namespace {

// Without a charge the engine computes it (key + value + overhead); a given
// charge is the caller's weight and must be > 0.
larder_status Put(larder_cache* c, const void* key, size_t key_size, const void* value,
                  size_t value_size, int64_t ttl_ns, std::optional<uint64_t> charge) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || !ValidBytes(value, value_size) || ttl_ns < 0 ||
      (charge.has_value() && *charge == 0)) {
    return LARDER_INVALID_ARGUMENT;
  }
  larder::PutOptions put;
  put.ttl = std::chrono::nanoseconds(ttl_ns);
  put.charge = charge.value_or(0);  // the engine's 0: compute it
  return Code(c->cache->Put(View(key, key_size), View(value, value_size), put));
  LARDER_GUARD_END
}

}  // namespace

extern "C" {

larder_status larder_put(larder_cache* c, const void* key, size_t key_size, const void* value,
                         size_t value_size, int64_t ttl_ns) {
  return Put(c, key, key_size, value, value_size, ttl_ns, std::nullopt);
}

larder_status larder_put_charged(larder_cache* c, const void* key, size_t key_size,
                                 const void* value, size_t value_size, int64_t ttl_ns,
                                 uint64_t charge) {
  return Put(c, key, key_size, value, value_size, ttl_ns, charge);
}

larder_status larder_get(larder_cache* c, const void* key, size_t key_size, void* buffer,
                         size_t buffer_size, size_t* value_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || value_size == nullptr || !ValidBytes(buffer, buffer_size)) {
    return LARDER_INVALID_ARGUMENT;
  }
  return Code(c->cache->GetInto(View(key, key_size), buffer, buffer_size, value_size));
  LARDER_GUARD_END
}

larder_status larder_get_alloc(larder_cache* c, const void* key, size_t key_size, void** value,
                               size_t* value_size) {
  LARDER_GUARD_BEGIN
  if (value == nullptr || value_size == nullptr) return LARDER_INVALID_ARGUMENT;
  // Whatever the outcome, the outputs say "no value" unless it is LARDER_OK.
  *value = nullptr;
  *value_size = 0;
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size)) return LARDER_INVALID_ARGUMENT;
  void* copy = nullptr;
  size_t size = 0;
  bool out_of_memory = false;
  Status s = c->cache->Visit(View(key, key_size), [&](std::string_view v) {
    copy = std::malloc(v.size() == 0 ? 1 : v.size());
    if (copy == nullptr) {
      out_of_memory = true;
      return;
    }
    if (!v.empty()) std::memcpy(copy, v.data(), v.size());
    size = v.size();
  });
  if (out_of_memory) return LARDER_NO_MEMORY;
  if (s == Status::kOk) {
    *value = copy;
    *value_size = size;
  }
  return Code(s);
  LARDER_GUARD_END
}

void larder_free(void* p) { std::free(p); }

larder_status larder_get_pinned(larder_cache* c, const void* key, size_t key_size,
                                larder_value* out) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || !ValueSlotUsable(out)) return LARDER_INVALID_ARGUMENT;
  std::string_view k = View(key, key_size);
  if (k.empty()) return LARDER_EMPTY_KEY;
  if (k.size() > larder::kMaxKeyLength) return LARDER_KEY_TOO_LONG;
  larder::PinnedValue pin = c->cache->Pin(k);
  if (!pin) return LARDER_NOT_FOUND;
  FillValue(out, std::move(pin));
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_value_release(larder_value* v) {
  LARDER_GUARD_BEGIN
  if (v == nullptr) return LARDER_INVALID_ARGUMENT;
  if (v->internal_ != nullptr) {
    // Rebuild the pin and let it drop its reference.
    larder::PinnedValue pin =
        larder::internal::PinAccess::Adopt(static_cast<larder::internal::Entry*>(v->internal_));
    v->internal_ = nullptr;
  }
  v->data = nullptr;
  v->size = 0;
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_read(larder_cache* c, const void* key, size_t key_size, unsigned flags,
                          void* buffer, size_t buffer_size, size_t* value_size,
                          larder_entry_info* info) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || value_size == nullptr || !ValidBytes(buffer, buffer_size) ||
      (flags & ~(LARDER_READ_PEEK | LARDER_READ_ALLOW_STALE)) != 0 || !EntryInfoUsable(info)) {
    return LARDER_INVALID_ARGUMENT;
  }
  larder::ReadOptions options;
  options.peek = (flags & LARDER_READ_PEEK) != 0;
  options.allow_stale = (flags & LARDER_READ_ALLOW_STALE) != 0;
  larder::EntryInfo details;
  bool fits = true;
  Status s = c->cache->Read(
      View(key, key_size), options,
      [&](std::string_view v) {
        *value_size = v.size();
        fits = v.size() <= buffer_size;
        if (fits && !v.empty()) std::memcpy(buffer, v.data(), v.size());
      },
      &details);
  FillEntryInfo(info, details);
  if (s == Status::kOk && !fits) return LARDER_BUFFER_TOO_SMALL;
  return Code(s);
  LARDER_GUARD_END
}

larder_status larder_touch(larder_cache* c, const void* key, size_t key_size, int64_t ttl_ns) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || ttl_ns < 0) return LARDER_INVALID_ARGUMENT;
  return Code(c->cache->Touch(View(key, key_size), std::chrono::nanoseconds(ttl_ns)));
  LARDER_GUARD_END
}

larder_status larder_snapshot_create(larder_cache* c, unsigned flags, larder_snapshot** out) {
  LARDER_GUARD_BEGIN
  if (out == nullptr) return LARDER_INVALID_ARGUMENT;
  *out = nullptr;
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if ((flags & ~LARDER_SNAPSHOT_INCLUDE_STALE) != 0) return LARDER_INVALID_ARGUMENT;
  auto snapshot = std::make_unique<larder_snapshot>();
  snapshot->entries = c->cache->Snapshot((flags & LARDER_SNAPSHOT_INCLUDE_STALE) != 0);
  *out = snapshot.release();
  return LARDER_OK;
  LARDER_GUARD_END
}

size_t larder_snapshot_size(const larder_snapshot* snapshot) {
  return snapshot == nullptr ? 0 : snapshot->entries.size();
}

larder_status larder_snapshot_entry(const larder_snapshot* snapshot, size_t index, const void** key,
                                    size_t* key_size, const void** value, size_t* value_size,
                                    larder_entry_info* info) {
  LARDER_GUARD_BEGIN
  if (snapshot == nullptr || index >= snapshot->entries.size() || !EntryInfoUsable(info)) {
    return LARDER_INVALID_ARGUMENT;
  }
  const larder::SnapshotEntry& e = snapshot->entries[index];
  if (key != nullptr) *key = e.pin.key().data();
  if (key_size != nullptr) *key_size = e.pin.key().size();
  if (value != nullptr) *value = e.pin.value().data();
  if (value_size != nullptr) *value_size = e.pin.value().size();
  FillEntryInfo(info, e.info);
  return LARDER_OK;
  LARDER_GUARD_END
}

void larder_snapshot_free(larder_snapshot* snapshot) {
  try {
    delete snapshot;
  } catch (...) {
  }
}

larder_status larder_contains(larder_cache* c, const void* key, size_t key_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size)) return LARDER_INVALID_ARGUMENT;
  std::string_view k = View(key, key_size);
  if (k.empty()) return LARDER_EMPTY_KEY;
  if (k.size() > larder::kMaxKeyLength) return LARDER_KEY_TOO_LONG;
  return c->cache->Contains(k) ? LARDER_OK : LARDER_NOT_FOUND;
  LARDER_GUARD_END
}

larder_status larder_invalidate(larder_cache* c, const void* key, size_t key_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size)) return LARDER_INVALID_ARGUMENT;
  return Code(c->cache->Invalidate(View(key, key_size)));
  LARDER_GUARD_END
}

larder_status larder_invalidate_prefix(larder_cache* c, const void* prefix, size_t prefix_size,
                                       uint64_t* removed) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(prefix, prefix_size)) return LARDER_INVALID_ARGUMENT;
  size_t n = c->cache->InvalidatePrefix(View(prefix, prefix_size));
  if (removed != nullptr) *removed = n;
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_count(larder_cache* c, const void* prefix, size_t prefix_size,
                           uint64_t* count) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(prefix, prefix_size) || count == nullptr) return LARDER_INVALID_ARGUMENT;
  *count = c->cache->CountLive(View(prefix, prefix_size));
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_copy_entries(larder_cache* c, const void* prefix, size_t prefix_size,
                                  int flags, void** data, size_t* size, uint64_t* count) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(prefix, prefix_size) || data == nullptr || size == nullptr ||
      (flags & ~LARDER_COPY_VALUES) != 0) {
    return LARDER_INVALID_ARGUMENT;
  }
  *data = nullptr;
  *size = 0;
  if (count != nullptr) *count = 0;
  const bool values = (flags & LARDER_COPY_VALUES) != 0;
  std::string blob;
  uint64_t n = 0;
  c->cache->ForEachLive(View(prefix, prefix_size), [&](std::string_view k, std::string_view v) {
    const uint32_t sizes[2] = {static_cast<uint32_t>(k.size()), static_cast<uint32_t>(v.size())};
    blob.append(reinterpret_cast<const char*>(sizes), sizeof sizes);
    blob.append(k);
    if (values) blob.append(v);
    ++n;
  });
  void* out = std::malloc(blob.empty() ? 1 : blob.size());
  if (out == nullptr) return LARDER_NO_MEMORY;
  if (!blob.empty()) std::memcpy(out, blob.data(), blob.size());
  *data = out;
  *size = blob.size();
  if (count != nullptr) *count = n;
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_clear(larder_cache* c) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  c->cache->Clear();
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_cleanup(larder_cache* c) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  c->cache->CleanUp();
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_cache_stats(larder_cache* c, larder_stats* out) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  return larder::capi::FillStats(c->cache->GetStats(), out);
  LARDER_GUARD_END
}

// ---- loading ----

larder_status larder_load_result_set_value(larder_load_result* r, const void* value,
                                           size_t value_size, int64_t ttl_ns) {
  LARDER_GUARD_BEGIN
  if (r == nullptr || !ValidBytes(value, value_size) || ttl_ns < 0) return LARDER_INVALID_ARGUMENT;
  r->result =
      LoadResult::Value(std::string(View(value, value_size)), std::chrono::nanoseconds(ttl_ns));
  r->set = true;
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_load_result_set_not_found(larder_load_result* r) {
  if (r == nullptr) return LARDER_INVALID_ARGUMENT;
  r->result = LoadResult::NotFound();
  r->set = true;
  return LARDER_OK;
}

larder_status larder_load_result_set_error(larder_load_result* r, const char* message) {
  LARDER_GUARD_BEGIN
  if (r == nullptr) return LARDER_INVALID_ARGUMENT;
  r->result = LoadResult::Error(message != nullptr ? message : "the loader reported an error");
  r->set = true;
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_get_or_load(larder_cache* c, const void* key, size_t key_size,
                                 larder_loader_fn fn, void* user_data, int64_t timeout_ns,
                                 larder_value* out, larder_fetch_info* info) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || timeout_ns < 0 || !ValueSlotUsable(out)) {
    return LARDER_INVALID_ARGUMENT;
  }
  larder::FetchOptions fetch;
  if (fn != nullptr) fetch.loader = WrapLoader(fn, user_data);
  fetch.timeout = std::chrono::nanoseconds(timeout_ns);
  return Deliver(c->cache->GetOrLoad(View(key, key_size), fetch), out, info);
  LARDER_GUARD_END
}

larder_status larder_get_or_load_copy(larder_cache* c, const void* key, size_t key_size,
                                      larder_loader_fn fn, void* user_data, int64_t timeout_ns,
                                      void* buffer, size_t buffer_size, size_t* value_size,
                                      larder_value* overflow, larder_fetch_info* info) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || timeout_ns < 0 || (buffer == nullptr && buffer_size != 0) ||
      value_size == nullptr || !ValueSlotUsable(overflow)) {
    return LARDER_INVALID_ARGUMENT;
  }
  larder::FetchOptions fetch;
  if (fn != nullptr) fetch.loader = WrapLoader(fn, user_data);
  fetch.timeout = std::chrono::nanoseconds(timeout_ns);
  struct Destination {
    void* buffer;
    size_t capacity;
    size_t size;  // copied out to *value_size only with LARDER_OK
    // A value that fits is copied, whether offered on a hit (unpinned) or
    // delivered pinned after a load.
    bool Take(std::string_view value) {
      size = value.size();
      if (value.size() > capacity) return false;
      if (!value.empty()) std::memcpy(buffer, value.data(), value.size());
      return true;
    }
  } to{buffer, buffer_size, 0};
  FetchResult r = c->cache->GetOrLoadWith(
      View(key, key_size), fetch,
      [](std::string_view value, void* d) { return static_cast<Destination*>(d)->Take(value); },
      &to);
  if (r.value && to.Take(r.value.value())) r.value = larder::PinnedValue();
  const larder_status status = Deliver(std::move(r), overflow, info);
  if (status == LARDER_OK) *value_size = to.size;
  return status;
  LARDER_GUARD_END
}

larder_status larder_refresh(larder_cache* c, const void* key, size_t key_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size)) return LARDER_INVALID_ARGUMENT;
  return Code(c->cache->Refresh(View(key, key_size)));
  LARDER_GUARD_END
}

}  // extern "C"

namespace {
larder_status HandOut(larder::FetchLookup lookup, std::unique_ptr<larder_lease> lease_handle,
                      std::unique_ptr<larder_ticket> ticket_handle, int* kind, larder_value* out,
                      larder_fetch_info* info, larder_lease** lease, larder_ticket** ticket) {
  switch (lookup.kind) {
    case larder::FetchLookup::Kind::kDone:
      return Deliver(std::move(lookup.result), out, info);
    case larder::FetchLookup::Kind::kLead:
      *kind = LARDER_FETCH_LEAD;
      lease_handle->lease = std::move(lookup.lease);
      *lease = lease_handle.release();
      return LARDER_OK;
    case larder::FetchLookup::Kind::kWait:
      *kind = LARDER_FETCH_WAIT;
      ticket_handle->ticket = std::move(lookup.ticket);
      *ticket = ticket_handle.release();
      return LARDER_OK;
  }
  return LARDER_INTERNAL;
}

// The outputs every fetch-style call must have. Every answer but LEAD and
// WAIT, argument errors included, leaves DONE and no handles behind.
bool FetchOutputsReset(int* kind, larder_lease** lease, larder_ticket** ticket) {
  if (kind == nullptr || lease == nullptr || ticket == nullptr) return false;
  *kind = LARDER_FETCH_DONE;
  *lease = nullptr;
  *ticket = nullptr;
  return true;
}

// larder_fetch_begin and larder_refresh_begin: the same checks and hand-out
// around the engine call `begin` makes.
template <typename Begin>
larder_status StartLookup(larder_cache* c, const void* key, size_t key_size, int* kind,
                          larder_value* out, larder_fetch_info* info, larder_lease** lease,
                          larder_ticket** ticket, Begin begin) {
  LARDER_GUARD_BEGIN
  if (!FetchOutputsReset(kind, lease, ticket)) return LARDER_INVALID_ARGUMENT;
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || !ValueSlotUsable(out)) return LARDER_INVALID_ARGUMENT;
  // Allocate the handles first, so running out of memory cannot strand a
  // flight that was already created.
  auto lease_handle = std::make_unique<larder_lease>();
  auto ticket_handle = std::make_unique<larder_ticket>();
  return HandOut(begin(*c->cache, View(key, key_size)), std::move(lease_handle),
                 std::move(ticket_handle), kind, out, info, lease, ticket);
  LARDER_GUARD_END
}
}  // namespace

extern "C" {

larder_status larder_fetch_begin(larder_cache* c, const void* key, size_t key_size, int* kind,
                                 larder_value* out, larder_fetch_info* info, larder_lease** lease,
                                 larder_ticket** ticket) {
  return StartLookup(c, key, key_size, kind, out, info, lease, ticket,
                     [](larder::Cache& cache, std::string_view k) { return cache.BeginFetch(k); });
}

larder_status larder_refresh_begin(larder_cache* c, const void* key, size_t key_size, int* kind,
                                   larder_value* out, larder_fetch_info* info, larder_lease** lease,
                                   larder_ticket** ticket) {
  return StartLookup(
      c, key, key_size, kind, out, info, lease, ticket,
      [](larder::Cache& cache, std::string_view k) { return cache.BeginRefresh(k); });
}

larder_status larder_lease_complete_value(larder_lease* lease, const void* value, size_t value_size,
                                          int64_t ttl_ns, larder_value* out) {
  return larder_lease_complete_value_charged(lease, value, value_size, ttl_ns, 0, out);
}

larder_status larder_lease_complete_value_charged(larder_lease* lease, const void* value,
                                                  size_t value_size, int64_t ttl_ns,
                                                  uint64_t charge, larder_value* out) {
  LARDER_GUARD_BEGIN
  if (lease == nullptr) return LARDER_INVALID_ARGUMENT;
  // The lease is consumed even when the arguments are bad: its flight then
  // fails ("load abandoned") rather than leaving the key stuck.
  std::unique_ptr<larder_lease> owned(lease);
  if (!ValidBytes(value, value_size) || ttl_ns < 0 || (out != nullptr && !ValueSlotUsable(out)) ||
      charge > UINT32_MAX) {
    return LARDER_INVALID_ARGUMENT;
  }
  LoadResult result =
      LoadResult::Value(std::string(View(value, value_size)), std::chrono::nanoseconds(ttl_ns));
  result.charge = static_cast<size_t>(charge);
  return Deliver(owned->lease.Complete(std::move(result)), out, nullptr);
  LARDER_GUARD_END
}

larder_status larder_lease_complete_not_found(larder_lease* lease) {
  LARDER_GUARD_BEGIN
  if (lease == nullptr) return LARDER_INVALID_ARGUMENT;
  std::unique_ptr<larder_lease> owned(lease);
  return Code(owned->lease.Complete(LoadResult::NotFound()).status);
  LARDER_GUARD_END
}

larder_status larder_lease_complete_error(larder_lease* lease, const char* message) {
  LARDER_GUARD_BEGIN
  if (lease == nullptr) return LARDER_INVALID_ARGUMENT;
  std::unique_ptr<larder_lease> owned(lease);
  return Code(owned->lease.Complete(LoadResult::Error(message != nullptr ? message : "load failed"))
                  .status);
  LARDER_GUARD_END
}

void larder_lease_abandon(larder_lease* lease) {
  try {
    delete lease;  // ~LoadLease fails the flight
  } catch (...) {
  }
}

larder_status larder_ticket_wait(larder_ticket* ticket, int64_t timeout_ns, larder_value* out,
                                 larder_fetch_info* info) {
  LARDER_GUARD_BEGIN
  if (ticket == nullptr || timeout_ns < 0 || !ValueSlotUsable(out)) {
    return LARDER_INVALID_ARGUMENT;
  }
  return Deliver(ticket->ticket.Wait(std::chrono::nanoseconds(timeout_ns)), out, info);
  LARDER_GUARD_END
}

larder_status larder_ticket_on_ready(larder_ticket* ticket, larder_ready_fn fn, void* user_data) {
  LARDER_GUARD_BEGIN
  if (ticket == nullptr || fn == nullptr) return LARDER_INVALID_ARGUMENT;
  ticket->ticket.OnReady([fn, user_data](FetchResult r) {
    larder_value value = LARDER_VALUE_INIT;
    larder_fetch_info info;
    info.struct_size = sizeof info;
    larder_status status = Deliver(std::move(r), &value, &info);
    fn(user_data, status, &value, &info);
  });
  return LARDER_OK;
  LARDER_GUARD_END
}

void larder_ticket_free(larder_ticket* ticket) { delete ticket; }

// ---- write-through and write-behind ----

}  // extern "C"

namespace {

larder::StoreWriter WrapStoreWriter(larder_store_write_fn fn, void* user_data) {
  return [fn, user_data](std::string_view key, std::optional<std::string_view> value) {
    char error[256] = "";
    int rc = fn(user_data, key.data(), key.size(), value ? value->data() : nullptr,
                value ? value->size() : 0, value ? 0 : 1, error, sizeof error);
    error[sizeof error - 1] = '\0';
    if (rc == 0) return larder::WriteOutcome::Ok();
    return larder::WriteOutcome::Failed(
        error[0] != '\0' ? error : "the writer returned " + std::to_string(rc));
  };
}

void CopyError(const std::string& message, char* error, size_t error_size) {
  if (error == nullptr || error_size == 0) return;
  size_t n = std::min(message.size(), error_size - 1);
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

larder_queued_write ToC(const larder::QueuedWrite& w) {
  larder_queued_write c;
  c.key = w.key.data();
  c.key_size = w.key.size();
  c.value = w.value ? w.value->data() : nullptr;
  c.value_size = w.value ? w.value->size() : 0;
  c.is_delete = w.value ? 0 : 1;
  c.attempt = w.attempt;
  c.replayed = w.replayed ? 1 : 0;
  c.sequence = w.sequence;
  return c;
}

}  // namespace

namespace larder::capi {

larder_status WriteBehindOptionsFrom(const larder_write_behind_config* config,
                                     larder::WriteBehindOptions* out) {
  if (config == nullptr || config->struct_size < sizeof(larder_write_behind_config) ||
      config->writer == nullptr || config->max_delay_ns < 0 || config->enqueue_timeout_ns < 0 ||
      config->journal_sync < 0 || config->journal_sync > LARDER_JOURNAL_SYNC_NEVER) {
    return LARDER_INVALID_ARGUMENT;
  }
  larder::WriteBehindOptions& o = *out;
  const larder_batch_write_fn writer = config->writer;
  void* const writer_data = config->writer_data;
  o.writer = [writer, writer_data](const std::vector<larder::QueuedWrite>& batch) {
    std::vector<larder_queued_write> writes;
    writes.reserve(batch.size());
    for (const larder::QueuedWrite& w : batch) writes.push_back(ToC(w));
    char error[256] = "";
    int rc = writer(writer_data, writes.data(), writes.size(), error, sizeof error);
    error[sizeof error - 1] = '\0';
    if (rc == 0) return larder::WriteOutcome::Ok();
    return larder::WriteOutcome::Failed(
        error[0] != '\0' ? error : "the writer returned " + std::to_string(rc));
  };
  if (config->dead_letter != nullptr) {
    const larder_dead_letter_fn dead = config->dead_letter;
    void* const dead_data = config->dead_letter_data;
    o.dead_letter = [dead, dead_data](const larder::QueuedWrite& w, const std::string& error) {
      larder_queued_write c = ToC(w);
      dead(dead_data, &c, error.c_str());
    };
  }
  o.max_batch = config->max_batch;
  o.max_delay = std::chrono::nanoseconds(config->max_delay_ns);
  o.max_queue_entries = config->max_queue_entries;
  o.max_queue_bytes = config->max_queue_bytes;
  o.enqueue_timeout = std::chrono::nanoseconds(config->enqueue_timeout_ns);
  o.max_attempts = config->max_attempts;
  o.retry_base = std::chrono::nanoseconds(config->retry_base_ns);
  o.retry_max = std::chrono::nanoseconds(config->retry_max_ns);
  if (config->journal_dir != nullptr) o.journal_dir = config->journal_dir;
  o.journal_sync =
      config->journal_sync == LARDER_JOURNAL_SYNC_EVERY_WRITE ? larder::JournalSync::kEveryWrite
      : config->journal_sync == LARDER_JOURNAL_SYNC_INTERVAL  ? larder::JournalSync::kInterval
                                                              : larder::JournalSync::kNever;
  o.journal_sync_interval = std::chrono::nanoseconds(config->journal_sync_interval_ns);
  o.journal_segment_bytes = config->journal_segment_bytes;
  return LARDER_OK;
}

larder::Loader WrapLoaderFn(larder_loader_fn fn, void* user_data) {
  return WrapLoader(fn, user_data);
}

larder::StoreWriter WrapStoreWriterFn(larder_store_write_fn fn, void* user_data) {
  return WrapStoreWriter(fn, user_data);
}

larder_status DeliverFetch(larder::FetchResult r, larder_value* out, larder_fetch_info* info) {
  return Deliver(std::move(r), out, info);
}

bool ValueSlotOk(const larder_value* v) { return ValueSlotUsable(v); }

void CopyErrorText(const std::string& message, char* error, size_t error_size) {
  CopyError(message, error, error_size);
}

larder_status CopyOptions(const larder_options* o, larder::Options* out) {
  if (!IsLive(o)) return LARDER_INVALID_ARGUMENT;
  std::lock_guard<std::mutex> lock(g_options_mu);  // a consistent copy
  *out = o->options;
  return LARDER_OK;
}

}  // namespace larder::capi

extern "C" {

struct larder_write_behind {
  std::unique_ptr<larder::WriteBehind> wb;
};

larder_status larder_write_through(larder_cache* c, const void* key, size_t key_size,
                                   const void* value, size_t value_size, int64_t ttl_ns,
                                   larder_store_write_fn fn, void* user_data, char* error,
                                   size_t error_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || !ValidBytes(value, value_size) || fn == nullptr || ttl_ns < 0 ||
      (error == nullptr && error_size != 0)) {
    return LARDER_INVALID_ARGUMENT;
  }
  larder::PutOptions put;
  put.ttl = std::chrono::nanoseconds(ttl_ns);
  std::string message;
  Status s = c->cache->WriteThrough(View(key, key_size), View(value, value_size),
                                    WrapStoreWriter(fn, user_data), put, &message);
  if (s == Status::kWriteFailed) CopyError(message, error, error_size);
  return Code(s);
  LARDER_GUARD_END
}

larder_status larder_delete_through(larder_cache* c, const void* key, size_t key_size,
                                    larder_store_write_fn fn, void* user_data, char* error,
                                    size_t error_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || fn == nullptr || (error == nullptr && error_size != 0)) {
    return LARDER_INVALID_ARGUMENT;
  }
  std::string message;
  Status s = c->cache->DeleteThrough(View(key, key_size), WrapStoreWriter(fn, user_data), &message);
  if (s == Status::kWriteFailed) CopyError(message, error, error_size);
  return Code(s);
  LARDER_GUARD_END
}

larder_status larder_write_behind_config_init(larder_write_behind_config* config) {
  if (config == nullptr) return LARDER_INVALID_ARGUMENT;
  const larder::WriteBehindOptions d;
  std::memset(config, 0, sizeof *config);
  config->struct_size = sizeof *config;
  config->max_batch = d.max_batch;
  config->max_delay_ns = d.max_delay.count();
  config->max_queue_entries = d.max_queue_entries;
  config->max_queue_bytes = d.max_queue_bytes;
  config->enqueue_timeout_ns = d.enqueue_timeout.count();
  config->max_attempts = d.max_attempts;
  config->retry_base_ns = d.retry_base.count();
  config->retry_max_ns = d.retry_max.count();
  config->journal_sync = LARDER_JOURNAL_SYNC_EVERY_WRITE;
  config->journal_sync_interval_ns = d.journal_sync_interval.count();
  config->journal_segment_bytes = d.journal_segment_bytes;
  return LARDER_OK;
}

larder_status larder_write_behind_open(larder_cache* c, const larder_write_behind_config* config,
                                       larder_write_behind** out) {
  LARDER_GUARD_BEGIN
  if (out == nullptr) return LARDER_INVALID_ARGUMENT;
  *out = nullptr;
  if (larder_status s = CheckCache(c); s != LARDER_OK) return s;
  larder::WriteBehindOptions o;
  if (larder_status s = larder::capi::WriteBehindOptionsFrom(config, &o); s != LARDER_OK) return s;
  auto handle = std::make_unique<larder_write_behind>();
  Status s = larder::WriteBehind::Open(c->cache.get(), std::move(o), &handle->wb);
  if (s != Status::kOk) return Code(s);
  *out = handle.release();
  return LARDER_OK;
  LARDER_GUARD_END
}

larder_status larder_write_behind_put(larder_write_behind* wb, const void* key, size_t key_size,
                                      const void* value, size_t value_size, int64_t ttl_ns) {
  LARDER_GUARD_BEGIN
  if (wb == nullptr || !ValidBytes(key, key_size) || !ValidBytes(value, value_size) || ttl_ns < 0) {
    return LARDER_INVALID_ARGUMENT;
  }
  larder::PutOptions put;
  put.ttl = std::chrono::nanoseconds(ttl_ns);
  return Code(wb->wb->Put(View(key, key_size), View(value, value_size), put));
  LARDER_GUARD_END
}

larder_status larder_write_behind_delete(larder_write_behind* wb, const void* key,
                                         size_t key_size) {
  LARDER_GUARD_BEGIN
  if (wb == nullptr || !ValidBytes(key, key_size)) return LARDER_INVALID_ARGUMENT;
  return Code(wb->wb->Delete(View(key, key_size)));
  LARDER_GUARD_END
}

larder_status larder_write_behind_flush(larder_write_behind* wb, int64_t timeout_ns) {
  LARDER_GUARD_BEGIN
  if (wb == nullptr || timeout_ns < 0) return LARDER_INVALID_ARGUMENT;
  return Code(wb->wb->Flush(std::chrono::nanoseconds(timeout_ns)));
  LARDER_GUARD_END
}

larder_status larder_write_behind_close(larder_write_behind* wb, int64_t timeout_ns) {
  LARDER_GUARD_BEGIN
  if (wb == nullptr || timeout_ns < 0) return LARDER_INVALID_ARGUMENT;
  return Code(wb->wb->Close(std::chrono::nanoseconds(timeout_ns)));
  LARDER_GUARD_END
}

larder_status larder_write_behind_stats_get(larder_write_behind* wb,
                                            larder_write_behind_stats* out) {
  LARDER_GUARD_BEGIN
  if (wb == nullptr || out == nullptr ||
      out->struct_size < offsetof(larder_write_behind_stats, queue_depth) + sizeof(uint64_t)) {
    return LARDER_INVALID_ARGUMENT;
  }
  if (wb->wb->InheritedAcrossFork()) return LARDER_FORKED;
  larder::WriteBehindStats s = wb->wb->GetStats();
  larder_write_behind_stats full;
  full.struct_size = out->struct_size;
  full.queue_depth = s.queue_depth;
  full.queue_bytes = s.queue_bytes;
  full.oldest_pending_ns = s.oldest_pending_nanos;
  full.writes = s.writes;
  full.coalesced = s.coalesced;
  full.delivered = s.delivered;
  full.batches = s.batches;
  full.retries = s.retries;
  full.dead_letters = s.dead_letters;
  full.rejected = s.rejected;
  full.journal_bytes = s.journal_bytes;
  full.replayed_writes = s.replayed_writes;
  full.journal_truncated_bytes = s.journal_truncated_bytes;
  std::memcpy(out, &full, std::min(out->struct_size, sizeof full));
  return LARDER_OK;
  LARDER_GUARD_END
}

void larder_write_behind_destroy(larder_write_behind* wb) {
  try {
    delete wb;
  } catch (...) {
  }
}

}  // extern "C"
