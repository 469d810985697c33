// The C ABI of the Redis second tier (larder_tier_*): argument checks, status
// codes, ownership; the work is larder::TieredCache's (core/src/redis_tier.cc).
// Without LARDER_HAVE_REDIS the same functions exist and create answers
// LARDER_UNAVAILABLE, so the exported ABI does not depend on the build.
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "capi_internal.h"
#include "epoch.h"
#include "larder.h"
#if LARDER_HAVE_REDIS
#include "larder/tiered.h"
#endif

namespace {

constexpr uint32_t kTierMagic = 0x54494552;  // "TIER"
constexpr uint32_t kDeadTierMagic = 0xDEAD71E5;

bool ValidBytes(const void* p, size_t n) { return p != nullptr || n == 0; }

[[maybe_unused]] std::string_view View(const void* p, size_t n) {
  return n == 0 ? std::string_view() : std::string_view(static_cast<const char*>(p), n);
}

bool ValidErrorBuffer(const char* error, size_t error_size) {
  return error != nullptr || error_size == 0;
}

}  // namespace

struct larder_tier {
  uint32_t magic = kTierMagic;
  uint64_t fork_generation = larder::internal::ForkGeneration();
#if LARDER_HAVE_REDIS
  std::unique_ptr<larder::TieredCache> tier;
#endif
};

namespace {

larder_status CheckTier(const larder_tier* t) {
  if (t == nullptr || t->magic != kTierMagic) return LARDER_INVALID_ARGUMENT;
  if (t->fork_generation != larder::internal::ForkGeneration()) return LARDER_FORKED;
  return LARDER_OK;
}

#if LARDER_HAVE_REDIS
larder_status Code(larder::Status s) { return static_cast<larder_status>(s); }

larder_status ToOptions(const larder_tier_config* c, larder::TieredOptions* o) {
  if (c->struct_size < sizeof(larder_tier_config) || c->host == nullptr) {
    return LARDER_INVALID_ARGUMENT;
  }
  const int64_t durations[] = {c->connect_timeout_ns, c->command_timeout_ns, c->l1_max_ttl_ns,
                               c->l2_ttl_ns,          c->max_staleness_ns,   c->health_interval_ns,
                               c->reconnect_min_ns,   c->reconnect_max_ns,   c->lock_lease_ns,
                               c->lock_poll_min_ns,   c->lock_poll_max_ns,   c->breaker_open_ns};
  for (int64_t d : durations) {
    if (d < 0) return LARDER_INVALID_ARGUMENT;
  }
  if (c->tracking != LARDER_TRACKING_DEFAULT && c->tracking != LARDER_TRACKING_BCAST) {
    return LARDER_INVALID_ARGUMENT;
  }
  if (c->write_mode < LARDER_TIER_CACHE_ASIDE || c->write_mode > LARDER_TIER_WRITE_BEHIND) {
    return LARDER_INVALID_ARGUMENT;
  }
  if (c->broadcast_prefix_count != 0 && c->broadcast_prefixes == nullptr) {
    return LARDER_INVALID_ARGUMENT;
  }
  using std::chrono::nanoseconds;
  larder::RedisOptions& r = o->redis;
  r.host = c->host;
  r.port = c->port;
  r.username = c->username != nullptr ? c->username : "";
  r.password = c->password != nullptr ? c->password : "";
  r.database = c->database;
  r.connect_timeout = nanoseconds(c->connect_timeout_ns);
  r.command_timeout = nanoseconds(c->command_timeout_ns);
  r.max_connections = c->max_connections;
  o->tracking = c->tracking == LARDER_TRACKING_BCAST ? larder::Tracking::kBroadcast
                                                     : larder::Tracking::kDefault;
  for (size_t i = 0; i < c->broadcast_prefix_count; ++i) {
    if (c->broadcast_prefixes[i] == nullptr) return LARDER_INVALID_ARGUMENT;
    o->broadcast_prefixes.emplace_back(c->broadcast_prefixes[i]);
  }
  o->l1_max_ttl = nanoseconds(c->l1_max_ttl_ns);
  o->l2_ttl = nanoseconds(c->l2_ttl_ns);
  o->max_staleness = nanoseconds(c->max_staleness_ns);
  o->health_interval = nanoseconds(c->health_interval_ns);
  o->reconnect_min = nanoseconds(c->reconnect_min_ns);
  o->reconnect_max = nanoseconds(c->reconnect_max_ns);
  o->stampede_lock = c->stampede_lock != 0;
  o->lock_prefix = c->lock_prefix != nullptr ? c->lock_prefix : "";
  o->lock_lease = nanoseconds(c->lock_lease_ns);
  o->lock_poll_min = nanoseconds(c->lock_poll_min_ns);
  o->lock_poll_max = nanoseconds(c->lock_poll_max_ns);
  o->breaker_failures = c->breaker_failures;
  o->breaker_open = nanoseconds(c->breaker_open_ns);
  switch (c->write_mode) {
    case LARDER_TIER_WRITE_THROUGH:
      o->write_mode = larder::WriteMode::kWriteThrough;
      if (c->store_writer == nullptr) return LARDER_INVALID_ARGUMENT;
      o->store_writer = larder::capi::WrapStoreWriterFn(c->store_writer, c->store_writer_data);
      break;
    case LARDER_TIER_WRITE_BEHIND:
      o->write_mode = larder::WriteMode::kWriteBehind;
      if (larder_status s = larder::capi::WriteBehindOptionsFrom(c->write_behind, &o->write_behind);
          s != LARDER_OK) {
        return s;
      }
      break;
    default:
      o->write_mode = larder::WriteMode::kCacheAside;
  }
  return LARDER_OK;
}
#endif

}  // namespace

extern "C" {

larder_status larder_tier_config_init(larder_tier_config* c) {
  if (c == nullptr) return LARDER_INVALID_ARGUMENT;
  std::memset(c, 0, sizeof *c);
  c->struct_size = sizeof *c;
  // The defaults of larder::TieredOptions and larder::RedisOptions.
  c->host = "127.0.0.1";
  c->port = 6379;
  c->connect_timeout_ns = 1000000000;
  c->command_timeout_ns = 250000000;
  c->max_connections = 8;
  c->tracking = LARDER_TRACKING_DEFAULT;
  c->l1_max_ttl_ns = 60000000000LL;
  c->l2_ttl_ns = 300000000000LL;
  c->max_staleness_ns = 1000000000;
  c->health_interval_ns = 100000000;
  c->reconnect_min_ns = 50000000;
  c->reconnect_max_ns = 2000000000;
  c->lock_prefix = "lock:";
  c->lock_lease_ns = 5000000000LL;
  c->lock_poll_min_ns = 2000000;
  c->lock_poll_max_ns = 50000000;
  c->breaker_failures = 5;
  c->breaker_open_ns = 1000000000;
  c->write_mode = LARDER_TIER_CACHE_ASIDE;
  return LARDER_OK;
}

larder_status larder_tier_create(const larder_options* l1, const larder_tier_config* config,
                                 larder_tier** out, char* error, size_t error_size) {
  LARDER_GUARD_BEGIN
  if (out == nullptr || !ValidErrorBuffer(error, error_size)) return LARDER_INVALID_ARGUMENT;
  *out = nullptr;
  if (error_size != 0) error[0] = '\0';
#if LARDER_HAVE_REDIS
  if (config == nullptr) return LARDER_INVALID_ARGUMENT;
  larder::TieredOptions o;
  if (larder_status s = larder::capi::CopyOptions(l1, &o.l1); s != LARDER_OK) {
    larder::capi::CopyErrorText("bad or freed L1 options", error, error_size);
    return s;
  }
  if (larder_status s = ToOptions(config, &o); s != LARDER_OK) {
    larder::capi::CopyErrorText("bad larder_tier_config", error, error_size);
    return s;
  }
  auto handle = std::make_unique<larder_tier>();
  std::string why;
  larder::Status s = larder::TieredCache::Create(std::move(o), &handle->tier, &why);
  if (s != larder::Status::kOk) {
    larder::capi::CopyErrorText(why, error, error_size);
    return Code(s);
  }
  *out = handle.release();
  return LARDER_OK;
#else
  (void)l1;
  (void)config;
  larder::capi::CopyErrorText("this liblarder was built without the Redis tier (LARDER_REDIS=OFF)",
                              error, error_size);
  return LARDER_UNAVAILABLE;
#endif
  LARDER_GUARD_END
}

void larder_tier_destroy(larder_tier* t) {
  if (t == nullptr || t->magic != kTierMagic) return;
  t->magic = kDeadTierMagic;
  try {
    delete t;  // in a child after fork(), ~TieredCache leaves the parent's state alone
  } catch (...) {
  }
}

larder_status larder_tier_get(larder_tier* t, const void* key, size_t key_size, larder_loader_fn fn,
                              void* user_data, int64_t timeout_ns, larder_value* out,
                              larder_fetch_info* info) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckTier(t); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || timeout_ns < 0 || !larder::capi::ValueSlotOk(out)) {
    return LARDER_INVALID_ARGUMENT;
  }
#if LARDER_HAVE_REDIS
  larder::FetchOptions fetch;
  if (fn != nullptr) fetch.loader = larder::capi::WrapLoaderFn(fn, user_data);
  fetch.timeout = std::chrono::nanoseconds(timeout_ns);
  return larder::capi::DeliverFetch(t->tier->Get(View(key, key_size), fetch), out, info);
#else
  (void)fn;
  (void)user_data;
  (void)info;
  return LARDER_UNAVAILABLE;
#endif
  LARDER_GUARD_END
}

larder_status larder_tier_set(larder_tier* t, const void* key, size_t key_size, const void* value,
                              size_t value_size, int64_t ttl_ns, char* error, size_t error_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckTier(t); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || !ValidBytes(value, value_size) || ttl_ns < 0 ||
      !ValidErrorBuffer(error, error_size)) {
    return LARDER_INVALID_ARGUMENT;
  }
#if LARDER_HAVE_REDIS
  larder::PutOptions put;
  put.ttl = std::chrono::nanoseconds(ttl_ns);
  std::string why;
  larder::Status s = t->tier->Set(View(key, key_size), View(value, value_size), put, &why);
  if (s != larder::Status::kOk) larder::capi::CopyErrorText(why, error, error_size);
  return Code(s);
#else
  return LARDER_UNAVAILABLE;
#endif
  LARDER_GUARD_END
}

larder_status larder_tier_delete(larder_tier* t, const void* key, size_t key_size, char* error,
                                 size_t error_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckTier(t); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size) || !ValidErrorBuffer(error, error_size)) {
    return LARDER_INVALID_ARGUMENT;
  }
#if LARDER_HAVE_REDIS
  std::string why;
  larder::Status s = t->tier->Delete(View(key, key_size), &why);
  if (s != larder::Status::kOk) larder::capi::CopyErrorText(why, error, error_size);
  return Code(s);
#else
  return LARDER_UNAVAILABLE;
#endif
  LARDER_GUARD_END
}

larder_status larder_tier_invalidate(larder_tier* t, const void* key, size_t key_size) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckTier(t); s != LARDER_OK) return s;
  if (!ValidBytes(key, key_size)) return LARDER_INVALID_ARGUMENT;
#if LARDER_HAVE_REDIS
  return Code(t->tier->Invalidate(View(key, key_size)));
#else
  return LARDER_UNAVAILABLE;
#endif
  LARDER_GUARD_END
}

larder_status larder_tier_flush(larder_tier* t, int64_t timeout_ns) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckTier(t); s != LARDER_OK) return s;
  if (timeout_ns < 0) return LARDER_INVALID_ARGUMENT;
#if LARDER_HAVE_REDIS
  return Code(t->tier->Flush(std::chrono::nanoseconds(timeout_ns)));
#else
  return LARDER_UNAVAILABLE;
#endif
  LARDER_GUARD_END
}

larder_status larder_tier_stats_get(larder_tier* t, larder_tier_stats* out) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckTier(t); s != LARDER_OK) return s;
  if (out == nullptr ||
      out->struct_size < offsetof(larder_tier_stats, l2_hits) + sizeof(uint64_t)) {
    return LARDER_INVALID_ARGUMENT;
  }
#if LARDER_HAVE_REDIS
  const larder::TieredStats s = t->tier->GetStats();
  larder_tier_stats full;
  std::memset(&full, 0, sizeof full);
  full.struct_size = out->struct_size;
  full.l2_hits = s.l2_hits;
  full.l2_misses = s.l2_misses;
  full.l2_errors = s.l2_errors;
  full.l2_skipped = s.l2_skipped;
  full.loads = s.loads;
  full.fills = s.fills;
  full.fills_refused = s.fills_refused;
  full.bypassed_reads = s.bypassed_reads;
  full.invalidation_messages = s.invalidation_messages;
  full.invalidated_keys = s.invalidated_keys;
  full.flushes = s.flushes;
  full.tracking_losses = s.tracking_losses;
  full.connection_losses = s.connection_losses;
  full.reconnects = s.reconnects;
  full.tracking_up = s.tracking_up ? 1 : 0;
  full.breaker_state = static_cast<int32_t>(s.breaker_state);
  full.breaker_opens = s.breaker_opens;
  full.lock_acquired = s.lock_acquired;
  full.lock_waits = s.lock_waits;
  full.lock_wait_hits = s.lock_wait_hits;
  full.lock_fail_open = s.lock_fail_open;
  full.writes = s.writes;
  full.write_failures = s.write_failures;
  // An older caller's struct is a prefix of ours: fill only what it has.
  std::memcpy(out, &full, std::min(out->struct_size, sizeof full));
  return LARDER_OK;
#else
  return LARDER_UNAVAILABLE;
#endif
  LARDER_GUARD_END
}

larder_status larder_tier_l1_stats(larder_tier* t, larder_stats* out) {
  LARDER_GUARD_BEGIN
  if (larder_status s = CheckTier(t); s != LARDER_OK) return s;
#if LARDER_HAVE_REDIS
  return larder::capi::FillStats(t->tier->l1().GetStats(), out);
#else
  (void)out;
  return LARDER_UNAVAILABLE;
#endif
  LARDER_GUARD_END
}

}  // extern "C"
