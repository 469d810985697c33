/*
 * larder.h: the stable C interface to Larder, an in-process cache engine.
 *
 * One header, C99, no includes beyond <stddef.h> and <stdint.h>. Link with
 * -llarder (shared: liblarder.so.1) or statically (`pkg-config --static
 * --libs larder` adds the C++ runtime and Abseil).
 *
 *   larder_options *o = larder_options_new();
 *   larder_options_set_capacity_bytes(o, 64u << 20);
 *   larder_cache *c;
 *   if (larder_cache_create(o, &c) != LARDER_OK) ...
 *   larder_options_free(o);
 *   larder_put(c, "k", 1, "v", 1, 0);
 *   char buf[64]; size_t n;
 *   if (larder_get(c, "k", 1, buf, sizeof buf, &n) == LARDER_OK) ...
 *   larder_cache_destroy(c);
 *
 * Conventions
 *  - Every fallible function returns a status code (LARDER_OK is 0). Codes
 *    are stable and never renumbered; larder_strerror() names them.
 *  - Keys and values are (pointer, length) pairs and binary-safe. A key is 1
 *    to LARDER_MAX_KEY_LENGTH bytes. Values may be empty; a NULL pointer is
 *    accepted only with length 0.
 *  - Durations are nanoseconds (int64_t). A TTL of 0 means "the default".
 *  - Pointers. An output pointer (one the library writes a result through)
 *    is required: NULL is LARDER_INVALID_ARGUMENT, and the call then does
 *    nothing (no read, load, flight or write). The only optional outputs say
 *    "may be NULL" at their function, and there NULL means "not wanted":
 *    every larder_fetch_info *info, the *removed of larder_invalidate_prefix,
 *    the *out of larder_lease_complete_value, and the error buffer of
 *    larder_write_through / larder_delete_through (with error_size 0).
 *    Handles and callbacks are required too, except where a function gives
 *    NULL a meaning ("fn NULL removes it", "NULL: the cache's loader") and in
 *    the free/destroy functions, where NULL is a no-op.
 *  - Zero. A size, count, duration or charge of 0 means only what its
 *    function says it means (buffer_size 0: no buffer; prefix_size 0: every
 *    key; a TTL of 0: the default; a timeout of 0: no limit); a parameter
 *    documented as "> 0" or ">= 1" refuses 0 with LARDER_INVALID_ARGUMENT.
 *    Negative durations are always LARDER_INVALID_ARGUMENT.
 *  - Thread-safety: a larder_cache may be used from any number of threads at
 *    once; options, leases and tickets belong to one thread at a time unless
 *    said otherwise.
 *  - Callbacks receive the user_data given with them, run with no engine lock
 *    held, and may call back into the cache. They must not unwind (no C++
 *    exceptions, no longjmp) through the library.
 *  - Structs the library fills start with `size_t struct_size`, which the
 *    caller sets to sizeof(the struct) as it knows it: older callers keep
 *    working when fields are added at the end.
 *  - No C++ exception crosses this interface: allocation failure is
 *    LARDER_NO_MEMORY, anything unexpected LARDER_INTERNAL.
 *  - fork(): a child may destroy the caches and write-behind queues its
 *    parent created (larder_cache_destroy, larder_write_behind_destroy return
 *    at once, free nothing of the parent's, and never touch the parent's
 *    journal); every other call on them returns LARDER_FORKED. The child may
 *    create and use caches of its own, even if other threads of the parent
 *    were inside a call at the moment of the fork.
 *  - Unloading: the shared library is linked with -z nodelete, so dlclose()
 *    leaves it loaded (threads that used it run its exit hooks later) and a
 *    later dlopen() finds the same copy.
 */
#ifndef LARDER_H_
#define LARDER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define LARDER_API
#else
#define LARDER_API __attribute__((visibility("default")))
#endif

/* ---- Versions ---------------------------------------------------------- */

#define LARDER_VERSION_MAJOR 0
#define LARDER_VERSION_MINOR 2
#define LARDER_VERSION_PATCH 0
#define LARDER_VERSION_NUMBER \
  (LARDER_VERSION_MAJOR * 10000 + LARDER_VERSION_MINOR * 100 + LARDER_VERSION_PATCH)
/* The ABI major, also the shared library's SONAME suffix (liblarder.so.1). */
#define LARDER_ABI_MAJOR 1

/* The version of the library actually linked, e.g. "0.2.0". Never NULL. */
LARDER_API const char *larder_version(void);
/* The same as LARDER_VERSION_NUMBER of the linked library. */
LARDER_API int larder_version_number(void);

/* ---- Status codes ------------------------------------------------------ */

typedef int larder_status;

#define LARDER_OK 0
#define LARDER_NOT_FOUND 1        /* no live entry; or the loader said "not found" */
#define LARDER_INVALID_ARGUMENT 2 /* NULL handle or pointer, bad option value, ... */
#define LARDER_EMPTY_KEY 3        /* keys are at least one byte */
#define LARDER_KEY_TOO_LONG 4     /* longer than LARDER_MAX_KEY_LENGTH */
#define LARDER_VALUE_TOO_LARGE 5  /* bigger than the cache's byte capacity */
#define LARDER_BUFFER_TOO_SMALL 6 /* larder_get: *value_size says how much is needed */
#define LARDER_NO_MEMORY 7        /* allocation failed; nothing changed */
#define LARDER_LOAD_FAILED 8      /* the loader reported an error (see larder_fetch_info) */
#define LARDER_TIMEOUT 9          /* a wait for another caller's load timed out */
#define LARDER_RECURSIVE_LOAD 10  /* a loader asked for the key it is loading */
#define LARDER_BUSY 11            /* a bounded queue was full */
#define LARDER_CLOSED 12          /* the cache (or write-behind queue) was closed */
#define LARDER_INTERNAL 13        /* an unexpected internal failure */
#define LARDER_WRITE_FAILED 14    /* the store writer reported a failure */
#define LARDER_IO_ERROR 15        /* the write-behind journal could not be read or written */
#define LARDER_FORKED 16          /* used in a child after fork(): the handle is the parent's */
#define LARDER_UNAVAILABLE 17     /* Redis (the L2 tier) unreachable or too slow */

/* A static, human-readable description of a status. Never NULL (unknown
 * codes give "unknown status"). Thread-safe. */
LARDER_API const char *larder_strerror(larder_status status);

#define LARDER_MAX_KEY_LENGTH 65535

/* ---- Removal causes and fetch sources ---------------------------------- */

#define LARDER_REMOVED_EXPLICIT 0 /* invalidate, invalidate_prefix, clear */
#define LARDER_REMOVED_REPLACED 1 /* a put of the same key */
#define LARDER_REMOVED_EXPIRED 2  /* its TTL passed */
#define LARDER_REMOVED_EVICTED 3  /* removed to stay within capacity */

#define LARDER_SOURCE_NONE 0     /* no value: error, timeout, bad call */
#define LARDER_SOURCE_HIT 1      /* a fresh cached value */
#define LARDER_SOURCE_STALE 2    /* an expired value within a grace period */
#define LARDER_SOURCE_NEGATIVE 3 /* a cached "not found" or cached error */
#define LARDER_SOURCE_LOADED 4   /* this caller ran the loader */
#define LARDER_SOURCE_JOINED 5   /* this caller waited for another's load */

/* ---- Callbacks ---------------------------------------------------------- */

/* Called once per removed entry, after the change, with no lock held, on the
 * thread whose call caused it. The pointers are valid only during the call. */
typedef void (*larder_removal_fn)(void *user_data, const void *key, size_t key_size,
                                  const void *value, size_t value_size, int cause);

/* What a loader fills in: exactly one of the three setters below. */
typedef struct larder_load_result larder_load_result;

/* Loads `key` (for larder_get_or_load, refreshes, or the cache's loader).
 * Runs on the calling thread (or a refresh thread) with no cache lock held;
 * may use the cache, except to load its own key (LARDER_RECURSIVE_LOAD).
 * Set the outcome on `result`; returning without setting one, or returning
 * a non-zero value, counts as an error. */
typedef int (*larder_loader_fn)(void *user_data, const void *key, size_t key_size,
                                larder_load_result *result);

/* The value, copied. ttl_ns 0 uses the cache's default TTL. */
LARDER_API larder_status larder_load_result_set_value(larder_load_result *result, const void *value,
                                                      size_t value_size, int64_t ttl_ns);
/* "There is no such key" (cached for the negative TTL when one is set). */
LARDER_API larder_status larder_load_result_set_not_found(larder_load_result *result);
/* A failure; `message` (NUL-terminated, may be NULL) reaches every waiter. */
LARDER_API larder_status larder_load_result_set_error(larder_load_result *result,
                                                      const char *message);

/* A monotonic clock in nanoseconds, for tests that control time. Must never
 * go backwards; called from any thread. */
typedef int64_t (*larder_clock_fn)(void *user_data);

/* ---- Options ------------------------------------------------------------ */

/* A set of settings for larder_cache_create. Not thread-safe: one thread
 * configures it. The cache copies what it needs; free the options any time
 * after create. Setters return LARDER_INVALID_ARGUMENT for a NULL or freed
 * options object or a value out of range, and change nothing then. */
typedef struct larder_options larder_options;

/* A new options object with defaults (no capacity: setting one is required),
 * or NULL when out of memory. Free with larder_options_free. */
LARDER_API larder_options *larder_options_new(void);
/* Frees; NULL is a no-op. Freeing twice is detected and ignored. */
LARDER_API void larder_options_free(larder_options *options);

/* Sum of charges (key + value + per-entry overhead) allowed. Required, > 0. */
LARDER_API larder_status larder_options_set_capacity_bytes(larder_options *o, uint64_t bytes);
/* Optional bound on the number of entries; 0 (default) means none. */
LARDER_API larder_status larder_options_set_capacity_entries(larder_options *o, uint64_t entries);
/* Stripes (rounded up to a power of two, at most 65536); 0 (default) picks. */
LARDER_API larder_status larder_options_set_stripes(larder_options *o, uint32_t stripes);
/* TTL of puts that give none; 0 (default): no expiry. Must be >= 0. */
LARDER_API larder_status larder_options_set_default_ttl(larder_options *o, int64_t ttl_ns);
/* How long a loader's "not found" is cached; 0 (default) disables. */
LARDER_API larder_status larder_options_set_negative_ttl(larder_options *o, int64_t ttl_ns);
/* How long a loader's error is cached; 0 (default) never caches errors. */
LARDER_API larder_status larder_options_set_error_ttl(larder_options *o, int64_t ttl_ns);
/* XFetch early refresh factor: >= 0 and finite (below 1e300), default 1.0,
 * 0 disables. */
LARDER_API larder_status larder_options_set_refresh_beta(larder_options *o, double beta);
/* Load time assumed for put entries (enables their early refresh); 0: none. */
LARDER_API larder_status larder_options_set_default_refresh_delta(larder_options *o,
                                                                  int64_t delta_ns);
/* Grace after expiry to serve stale values while refreshing (get_or_load). */
LARDER_API larder_status larder_options_set_stale_while_revalidate(larder_options *o,
                                                                   int64_t grace_ns);
/* Grace after expiry to serve stale values when a load fails. */
LARDER_API larder_status larder_options_set_stale_if_error(larder_options *o, int64_t grace_ns);
/* Threads of the background refresh pool (default 1, 1 to 64). */
LARDER_API larder_status larder_options_set_refresh_threads(larder_options *o, uint32_t threads);
/* Seed for the early-refresh draws (reproducible tests); 0: random. */
LARDER_API larder_status larder_options_set_random_seed(larder_options *o, uint64_t seed);
/* Removal listener; fn NULL removes it. user_data must outlive the cache. */
LARDER_API larder_status larder_options_set_removal_listener(larder_options *o,
                                                             larder_removal_fn fn, void *user_data);
/* The cache's own loader, used by get_or_load without a loader and by
 * background refreshes. fn NULL removes it. user_data must outlive the cache. */
LARDER_API larder_status larder_options_set_loader(larder_options *o, larder_loader_fn fn,
                                                   void *user_data);
/* A clock for expiry; fn NULL restores the system's monotonic clock. */
LARDER_API larder_status larder_options_set_clock(larder_options *o, larder_clock_fn fn,
                                                  void *user_data);

/* ---- The cache ---------------------------------------------------------- */

typedef struct larder_cache larder_cache;

/* Creates a cache. On success *out owns it (free with larder_cache_destroy);
 * on failure *out is NULL: LARDER_INVALID_ARGUMENT for NULL arguments or bad
 * options (capacity 0, negative durations). */
LARDER_API larder_status larder_cache_create(const larder_options *options, larder_cache **out);

/* Makes every later call on the cache return LARDER_CLOSED and drops its
 * entries now; the handle stays valid until destroy. Idempotent. Safe while
 * other threads use the cache (their calls finish against the old state). */
LARDER_API larder_status larder_cache_close(larder_cache *cache);

/* Frees the cache. No other thread may be using it, and every lease and
 * ticket of it must be finished first. Pinned values stay valid. NULL is a
 * no-op. */
LARDER_API void larder_cache_destroy(larder_cache *cache);

/* Inserts or replaces, evicting the least recently used entries of the whole
 * cache to stay within capacity_bytes and capacity_entries (one entry may
 * use all of capacity_bytes). ttl_ns 0: the default TTL; negative: invalid.
 * The entry's charge is key_size + value_size + a fixed per-entry overhead.
 * LARDER_VALUE_TOO_LARGE when the charge exceeds capacity_bytes, or the value
 * or the charge is 4 GiB or more; it leaves no older value of the key
 * readable. */
LARDER_API larder_status larder_put(larder_cache *cache, const void *key, size_t key_size,
                                    const void *value, size_t value_size, int64_t ttl_ns);
/* As larder_put, with the entry's weight toward capacity_bytes given
 * explicitly instead of computed from its size. charge must be > 0: 0 is
 * LARDER_INVALID_ARGUMENT (larder_put is the computed charge). A charge
 * over capacity_bytes, or of 4 GiB or more, is
 * LARDER_VALUE_TOO_LARGE as for larder_put. */
LARDER_API larder_status larder_put_charged(larder_cache *cache, const void *key, size_t key_size,
                                            const void *value, size_t value_size, int64_t ttl_ns,
                                            uint64_t charge);

/* Reads. A plain read (larder_get, _get_alloc, _get_pinned, _contains)
 * never returns an expired value, with one exception: while the key has a
 * pending write-behind write, a read that finds no live entry answers from
 * that write, even past its TTL and after larder_invalidate (see
 * "Read-your-writes" below larder_write_behind_open). All reads are
 * thread-safe. */

/* Copies the value into buffer. *value_size receives the value's length on
 * LARDER_OK and on LARDER_BUFFER_TOO_SMALL (then nothing is copied: retry
 * with a buffer that large); otherwise it is left alone. value_size is
 * required; buffer may be NULL when buffer_size is 0.
 * The size and the retry are two lookups, and another thread may replace the
 * value in between: the retry can again be LARDER_BUFFER_TOO_SMALL (or
 * LARDER_NOT_FOUND). To read a value of unknown size race-free, use
 * larder_get_alloc (a copy) or larder_get_pinned (no copy): each takes one
 * version of the value in a single lookup. */
LARDER_API larder_status larder_get(larder_cache *cache, const void *key, size_t key_size,
                                    void *buffer, size_t buffer_size, size_t *value_size);

/* Copies the value into memory the library allocates; free it with
 * larder_free. An empty value gives a non-NULL pointer and size 0. value and
 * value_size are required; on any status but LARDER_OK, *value is NULL and
 * *value_size 0. Race-free for values of unknown size (one lookup). */
LARDER_API larder_status larder_get_alloc(larder_cache *cache, const void *key, size_t key_size,
                                          void **value, size_t *value_size);
/* Frees memory from larder_get_alloc. NULL is a no-op. */
LARDER_API void larder_free(void *p);

/* A pinned, zero-copy value: data stays valid (even after eviction or cache
 * destruction) until larder_value_release. Caller-owned struct; set
 * struct_size before use. */
typedef struct larder_value {
  size_t struct_size;
  const void *data;
  size_t size;
  void *internal_; /* the library's reference; NULL when empty or released */
} larder_value;

#define LARDER_VALUE_INIT \
  { sizeof(larder_value), NULL, 0, NULL }

/* Pins the value into *out (required; it must be LARDER_VALUE_INIT or
 * released, else LARDER_INVALID_ARGUMENT). On any status but LARDER_OK *out
 * stays empty. Race-free and zero-copy: the pin holds one version of the
 * value, whatever later writes do. */
LARDER_API larder_status larder_get_pinned(larder_cache *cache, const void *key, size_t key_size,
                                           larder_value *out);
/* Releases a pinned value and empties the struct; releasing an empty or
 * already released value is a no-op returning LARDER_OK. Any thread. */
LARDER_API larder_status larder_value_release(larder_value *value);

/* LARDER_OK when a live entry exists (or the key has a pending write-behind
 * put), else LARDER_NOT_FOUND. Does not count as a hit or miss, nor refresh
 * the LRU position. */
LARDER_API larder_status larder_contains(larder_cache *cache, const void *key, size_t key_size);

/* LARDER_OK when an entry was removed, LARDER_NOT_FOUND when none existed.
 * Removes the cached entry only: a pending write-behind write of the key is
 * still served (use larder_write_behind_delete to drop both). The same holds
 * for larder_invalidate_prefix and larder_clear. */
LARDER_API larder_status larder_invalidate(larder_cache *cache, const void *key, size_t key_size);
/* Removes every entry whose key starts with prefix (prefix_size 0: all);
 * removed may be NULL, else *removed receives the count. */
LARDER_API larder_status larder_invalidate_prefix(larder_cache *cache, const void *prefix,
                                                  size_t prefix_size, uint64_t *removed);
LARDER_API larder_status larder_clear(larder_cache *cache);
/* Applies pending housekeeping now (expiry, memory reclamation). Optional. */
LARDER_API larder_status larder_cleanup(larder_cache *cache);

/* Counts the live entries whose key starts with prefix (prefix_size 0: all):
 * unexpired values, not cached "not found"s or errors. O(stripes) while no
 * entry has expired and no negative or error TTL is set; otherwise a walk of
 * the index, O(entries), that takes no lock. Entries written or removed
 * during the call may or may not be counted. Thread-safe. */
LARDER_API larder_status larder_count(larder_cache *cache, const void *prefix, size_t prefix_size,
                                      uint64_t *count);

/* larder_copy_entries's flags. */
#define LARDER_COPY_VALUES 1 /* copy the values too, not only the keys */

/* Copies the entries larder_count counts into one buffer the library
 * allocates (free it with larder_free; non-NULL even when empty). *data holds
 * *count records one after another, unaligned: the key's size and the value's
 * size as two uint32_t in native byte order, then the key's bytes, then, with
 * LARDER_COPY_VALUES, the value's bytes. *size is the buffer's length;
 * count may be NULL. Neither a hit nor a miss; the LRU order is unchanged.
 * Not one instant of the whole cache: entries written or removed during the
 * call may or may not appear, each one that does is whole. Thread-safe. */
LARDER_API larder_status larder_copy_entries(larder_cache *cache, const void *prefix,
                                             size_t prefix_size, int flags, void **data,
                                             size_t *size, uint64_t *count);

typedef struct larder_stats {
  size_t struct_size; /* set by the caller to sizeof(larder_stats) */
  uint64_t hits;
  uint64_t misses;
  uint64_t puts;
  uint64_t evictions;
  uint64_t expirations;
  uint64_t invalidations;
  uint64_t entries;
  uint64_t bytes;
  uint64_t capacity_bytes;
  uint64_t capacity_entries;
  uint64_t dropped_promotions;
  uint64_t loads;
  uint64_t load_failures;
  uint64_t load_time_ns;
  uint64_t coalesced_waits;
  uint64_t refreshes_started;
  uint64_t refreshes_discarded;
  uint64_t loads_discarded;
  uint64_t stale_hits;
  uint64_t negative_hits;
  uint64_t load_timeouts;
} larder_stats;

/* Fills the first out->struct_size bytes' worth of fields (a snapshot summed
 * over stripes). LARDER_INVALID_ARGUMENT if struct_size is smaller than
 * offsetof(larder_stats, hits) + 8. */
LARDER_API larder_status larder_cache_stats(larder_cache *cache, larder_stats *out);

/* ---- Reading with choices; snapshots ------------------------------------ */

#define LARDER_READ_PEEK 1u        /* a look only: no LRU promotion, no hit/miss, no refresh */
#define LARDER_READ_ALLOW_STALE 2u /* also an expired value the cache still keeps */

/* What larder_read and snapshots report about an entry. */
typedef struct larder_entry_info {
  size_t struct_size;   /* set by the caller */
  int stale;            /* 1: past its TTL (returned only with LARDER_READ_ALLOW_STALE) */
  int expires;          /* 0: the entry has no TTL */
  int64_t remaining_ns; /* time until expiry, negative once stale; 0 when it does not expire */
  int refresh_due;      /* early refresh drew for this hit and says refresh now (see below) */
} larder_entry_info;

/* larder_get with choices (flags: LARDER_READ_*) and details (info, may be
 * NULL). The cache keeps expired values for max(stale_while_revalidate,
 * stale_if_error) past their expiry; LARDER_READ_ALLOW_STALE returns them,
 * info->stale set. A cache without a loader does not refresh early by
 * itself: info->refresh_due tells the caller to (larder_refresh_begin).
 * Buffer and size as larder_get (LARDER_BUFFER_TOO_SMALL: retry; info is
 * filled either way). Thread-safe. */
LARDER_API larder_status larder_read(larder_cache *cache, const void *key, size_t key_size,
                                     unsigned flags, void *buffer, size_t buffer_size,
                                     size_t *value_size, larder_entry_info *info);

/* Restarts the TTL of key's live value: it expires ttl_ns from now (0: the
 * default TTL; none if that is 0 too). Keeps the value and its LRU position;
 * reports no removal. LARDER_NOT_FOUND when there is no live value.
 * Thread-safe. */
LARDER_API larder_status larder_touch(larder_cache *cache, const void *key, size_t key_size,
                                      int64_t ttl_ns);

/* A snapshot: every value in the cache with its key and info, most recently
 * used first. The order is exact LRU within a stripe; stripes are merged by
 * relative rank (exact with one stripe). Entries stay readable (pinned)
 * until larder_snapshot_free, whatever happens to the cache meanwhile. */
typedef struct larder_snapshot larder_snapshot;
#define LARDER_SNAPSHOT_INCLUDE_STALE 1u /* also expired values the cache still keeps */

/* Takes a snapshot (flags: LARDER_SNAPSHOT_*) into *out; free it with
 * larder_snapshot_free. Thread-safe; the snapshot belongs to one thread. */
LARDER_API larder_status larder_snapshot_create(larder_cache *cache, unsigned flags,
                                                larder_snapshot **out);
/* Entries in the snapshot (0 for NULL). */
LARDER_API size_t larder_snapshot_size(const larder_snapshot *snapshot);
/* Entry `index` (0: the most recently used): pointers valid until the
 * snapshot is freed; any out-parameter may be NULL. LARDER_INVALID_ARGUMENT
 * for an index out of range. */
LARDER_API larder_status larder_snapshot_entry(const larder_snapshot *snapshot, size_t index,
                                               const void **key, size_t *key_size,
                                               const void **value, size_t *value_size,
                                               larder_entry_info *info);
/* NULL is a no-op. */
LARDER_API void larder_snapshot_free(larder_snapshot *snapshot);

/* ---- Loading (single-flight) -------------------------------------------- */

/* Details of a fetch; optional everywhere (NULL). */
typedef struct larder_fetch_info {
  size_t struct_size; /* set by the caller */
  int source;         /* LARDER_SOURCE_* */
  int stale;          /* 1 when the value is past its TTL */
  char error[256];    /* the loader's error message, NUL-terminated, truncated */
} larder_fetch_info;

/* Returns the cached value or loads it with fn (NULL: the cache's loader):
 * at most one load per key at a time, however many callers miss at once.
 * Callers that wait for another's load give up after timeout_ns (0: no
 * limit) with LARDER_TIMEOUT. On LARDER_OK, *out holds a pinned value (release
 * it); out is required even to only warm the cache (NULL is
 * LARDER_INVALID_ARGUMENT, and nothing is loaded); info may be NULL.
 * LARDER_NOT_FOUND: the loader said so (or a cached negative);
 * LARDER_LOAD_FAILED: see info->error. A key with a pending write-behind
 * write is answered from it and never loaded (see "Read-your-writes"). */
LARDER_API larder_status larder_get_or_load(larder_cache *cache, const void *key, size_t key_size,
                                            larder_loader_fn fn, void *user_data,
                                            int64_t timeout_ns, larder_value *out,
                                            larder_fetch_info *info);

/* larder_get_or_load for callers that copy the value out: a hit copies it
 * into buffer without pinning the entry (a pin writes the entry's reference
 * count twice). On LARDER_OK *value_size is the value's length; when it fits
 * (*value_size <= buffer_size) the value is in buffer and *overflow stays
 * empty, otherwise *overflow holds it pinned (release it) and buffer is
 * untouched. Either way one lookup and at most one load, whatever the size.
 * value_size and overflow are required (overflow as out of larder_get_pinned);
 * buffer may be NULL when buffer_size is 0. On other statuses *overflow stays
 * empty, *value_size is left alone and the buffer's contents are
 * unspecified. fn, user_data, timeout_ns, info and the statuses as for
 * larder_get_or_load. */
LARDER_API larder_status larder_get_or_load_copy(larder_cache *cache, const void *key,
                                                 size_t key_size, larder_loader_fn fn,
                                                 void *user_data, int64_t timeout_ns, void *buffer,
                                                 size_t buffer_size, size_t *value_size,
                                                 larder_value *overflow, larder_fetch_info *info);

/* Starts a background refresh of key with the cache's loader; returns at
 * once. LARDER_INVALID_ARGUMENT when the cache has no loader. */
LARDER_API larder_status larder_refresh(larder_cache *cache, const void *key, size_t key_size);

/* The asynchronous form, for event loops: never blocks on a load. */
typedef struct larder_lease larder_lease;   /* the duty to load one key */
typedef struct larder_ticket larder_ticket; /* a place in line for a load */

#define LARDER_FETCH_DONE 0 /* the answer is in the return status, *out, *info */
#define LARDER_FETCH_LEAD 1 /* load the key, then complete *lease */
#define LARDER_FETCH_WAIT 2 /* someone else loads: use *ticket */

/* Looks key up. *kind says what to do next. DONE: the status is the answer
 * (LARDER_OK with *out pinned, or NOT_FOUND / LOAD_FAILED from a cached
 * negative, or any error, argument errors and LARDER_CLOSED included).
 * LEAD: *lease is yours: complete it with one of larder_lease_complete_*
 * (or larder_lease_abandon). WAIT: *ticket is yours: larder_ticket_wait or
 * larder_ticket_on_ready, then larder_ticket_free. Returns LARDER_OK for
 * LEAD and WAIT. kind, out, lease and ticket are required (with any of
 * them NULL: LARDER_INVALID_ARGUMENT, no flight starts); *lease and *ticket
 * are NULL unless handed to you. info may be NULL. */
LARDER_API larder_status larder_fetch_begin(larder_cache *cache, const void *key, size_t key_size,
                                            int *kind, larder_value *out, larder_fetch_info *info,
                                            larder_lease **lease, larder_ticket **ticket);

/* A refresh the caller runs itself (a binding's "force refresh", or early
 * refresh when larder_read says refresh_due), as larder_fetch_begin: LEAD
 * gives a lease to complete (the current value stays readable meanwhile; a
 * value replaces it, "not found" removes it, an error keeps it); WAIT a
 * ticket when a load or refresh of the key is already under way; DONE when
 * a pending write-behind write answers instead (the store is behind it). */
LARDER_API larder_status larder_refresh_begin(larder_cache *cache, const void *key, size_t key_size,
                                              int *kind, larder_value *out, larder_fetch_info *info,
                                              larder_lease **lease, larder_ticket **ticket);

/* Complete a lease (each consumes and frees it, even when it returns
 * LARDER_INVALID_ARGUMENT for bad value arguments: the flight then fails as
 * abandoned): delivers the outcome to all waiters, installs it unless a write
 * raced with the load, and reports this caller's own result in *out (out may
 * be NULL: the leader has the value already). larder_lease_complete_error's
 * message may be NULL. */
LARDER_API larder_status larder_lease_complete_value(larder_lease *lease, const void *value,
                                                     size_t value_size, int64_t ttl_ns,
                                                     larder_value *out);
/* As larder_lease_complete_value, with the entry's weight toward
 * capacity_bytes given explicitly (charge > 0), as larder_put_charged. */
LARDER_API larder_status larder_lease_complete_value_charged(larder_lease *lease, const void *value,
                                                             size_t value_size, int64_t ttl_ns,
                                                             uint64_t charge, larder_value *out);
LARDER_API larder_status larder_lease_complete_not_found(larder_lease *lease);
LARDER_API larder_status larder_lease_complete_error(larder_lease *lease, const char *message);
/* Gives the duty up: waiters get LARDER_LOAD_FAILED ("load abandoned").
 * NULL is a no-op. */
LARDER_API void larder_lease_abandon(larder_lease *lease);

/* Blocks until the load finishes or timeout_ns passes (0: no limit). May be
 * called more than once; each LARDER_OK pins a new reference into *out. out
 * is required (LARDER_INVALID_ARGUMENT, without waiting); info may be NULL. */
LARDER_API larder_status larder_ticket_wait(larder_ticket *ticket, int64_t timeout_ns,
                                            larder_value *out, larder_fetch_info *info);

/* Called once when the load finishes: on the completing thread (or at once,
 * on this thread, if it already has). The reference in *value is the
 * callback's: copy the struct if needed and larder_value_release it (it is
 * empty unless status is LARDER_OK). `info` is valid only during the call. */
typedef void (*larder_ready_fn)(void *user_data, larder_status status, larder_value *value,
                                const larder_fetch_info *info);
LARDER_API larder_status larder_ticket_on_ready(larder_ticket *ticket, larder_ready_fn fn,
                                                void *user_data);
/* Frees the ticket handle (a registered callback still runs). NULL: no-op. */
LARDER_API void larder_ticket_free(larder_ticket *ticket);

/* ---- Writing to a store: write-through and write-behind ----------------- */

/* Writes one key to the store: value is NULL and is_delete 1 for a delete.
 * Return 0 on success; anything else is a failure, described (optionally)
 * by copying a NUL-terminated message into error (error_size bytes). */
typedef int (*larder_store_write_fn)(void *user_data, const void *key, size_t key_size,
                                     const void *value, size_t value_size, int is_delete,
                                     char *error, size_t error_size);

/* Write-through: runs fn first (no cache lock held); on success installs the
 * value, on failure leaves the cache unchanged and returns
 * LARDER_WRITE_FAILED with fn's message in error. error may be NULL with
 * error_size 0 (NULL with a size is LARDER_INVALID_ARGUMENT). Writes of
 * one key are serialised; other keys proceed in parallel. */
LARDER_API larder_status larder_write_through(larder_cache *cache, const void *key, size_t key_size,
                                              const void *value, size_t value_size, int64_t ttl_ns,
                                              larder_store_write_fn fn, void *user_data,
                                              char *error, size_t error_size);
/* Deletes from the store through fn, then invalidates the key; errors and
 * the error buffer as for larder_write_through. */
LARDER_API larder_status larder_delete_through(larder_cache *cache, const void *key,
                                               size_t key_size, larder_store_write_fn fn,
                                               void *user_data, char *error, size_t error_size);

/* One write as a write-behind batch writer sees it. `sequence` grows with
 * every write ever queued (across restarts, with a journal), so the writer can
 * ignore writes not newer than what it stored: delivery is at least once. */
typedef struct larder_queued_write {
  const void *key;
  size_t key_size;
  const void *value; /* NULL for a delete */
  size_t value_size;
  int is_delete;
  int attempt;  /* 1 on the first delivery */
  int replayed; /* 1 if recovered from the journal at open */
  uint64_t sequence;
} larder_queued_write;

/* Writes a batch; 0 means all of it succeeded, anything else retries all. */
typedef int (*larder_batch_write_fn)(void *user_data, const larder_queued_write *writes,
                                     size_t count, char *error, size_t error_size);
/* Receives a write that failed max_attempts times (or, without a journal,
 * was still undelivered at close). */
typedef void (*larder_dead_letter_fn)(void *user_data, const larder_queued_write *write,
                                      const char *error);

#define LARDER_JOURNAL_SYNC_EVERY_WRITE 0 /* fdatasync before put returns */
#define LARDER_JOURNAL_SYNC_INTERVAL 1    /* every journal_sync_interval_ns */
#define LARDER_JOURNAL_SYNC_NEVER 2       /* leave it to the OS */

/* Write-behind settings; start from larder_write_behind_config_init. */
typedef struct larder_write_behind_config {
  size_t struct_size;
  larder_batch_write_fn writer; /* required */
  void *writer_data;
  larder_dead_letter_fn dead_letter; /* optional */
  void *dead_letter_data;
  uint64_t max_batch;
  int64_t max_delay_ns;
  uint64_t max_queue_entries;
  uint64_t max_queue_bytes;
  int64_t enqueue_timeout_ns; /* 0: a full queue fails at once with LARDER_BUSY */
  int32_t max_attempts;
  int64_t retry_base_ns;
  int64_t retry_max_ns;
  const char *journal_dir; /* NULL or "": memory only */
  int32_t journal_sync;    /* LARDER_JOURNAL_SYNC_* */
  int64_t journal_sync_interval_ns;
  uint64_t journal_segment_bytes;
} larder_write_behind_config;

/* Fills *config with the defaults (and struct_size). */
LARDER_API larder_status larder_write_behind_config_init(larder_write_behind_config *config);

typedef struct larder_write_behind larder_write_behind;

/* Opens write-behind for a cache (one per cache), first recovering the
 * journal: unacknowledged writes of earlier runs are queued first. The
 * callbacks run on the flusher thread. Destroy it before the cache. On
 * success *out owns it; out is required, and on failure *out is NULL:
 * LARDER_INVALID_ARGUMENT for a config whose struct_size is smaller than
 * this header's, no writer, zero or out-of-range limits, negative durations,
 * or a cache that already has write-behind; LARDER_IO_ERROR for the
 * journal. */
LARDER_API larder_status larder_write_behind_open(larder_cache *cache,
                                                  const larder_write_behind_config *config,
                                                  larder_write_behind **out);
/* Read-your-writes. From larder_write_behind_put or _delete until that
 * write is delivered (the writer returned 0 for it) or dead-lettered, or
 * until the write-behind is closed, the key has a pending write (as has a
 * key with a write replayed from the journal at open), and every read of the
 * cache that finds no live entry for the key answers from the newest
 * pending write instead of missing:
 *  - a pending put: larder_get, _get_alloc, _get_pinned and _contains
 *    return its value (LARDER_OK); larder_get_or_load and _fetch_begin
 *    return it too (DONE, info->source LARDER_SOURCE_HIT) and never run a
 *    loader; no refresh of the key is started;
 *  - a pending delete: all of them return LARDER_NOT_FOUND, again without
 *    loading.
 * So a pending value is served past its TTL (ttl_ns bounds only the cached
 * copy), after eviction, and after larder_invalidate, _invalidate_prefix or
 * _clear, which remove the cached copy but not the queued write. A live
 * cached entry still wins (after a plain larder_put of the key, reads see
 * that value while it lives); within stale_while_revalidate, get_or_load
 * may serve the expired cached copy, marked stale. Once the write is
 * delivered, reads see the cache alone. */

/* Queues the store write, then updates the cache. ttl_ns applies to the
 * cached copy (see Read-your-writes). LARDER_BUSY: the queue stayed full for
 * enqueue_timeout_ns; LARDER_CLOSED after close; LARDER_IO_ERROR: the
 * journal append or its fdatasync failed (nothing queued, not acknowledged;
 * the record may still be replayed after a restart, see docs/errors.md).
 * LARDER_FORKED in a child process. A value too large to cache is still
 * queued (LARDER_OK). Thread-safe. */
LARDER_API larder_status larder_write_behind_put(larder_write_behind *wb, const void *key,
                                                 size_t key_size, const void *value,
                                                 size_t value_size, int64_t ttl_ns);
/* Queues a store delete, then invalidates the key; statuses as
 * larder_write_behind_put. Thread-safe. */
LARDER_API larder_status larder_write_behind_delete(larder_write_behind *wb, const void *key,
                                                    size_t key_size);
/* Waits until everything queued before the call is delivered or
 * dead-lettered (its dead-letter callback has returned); LARDER_TIMEOUT after
 * timeout_ns (0: no limit); LARDER_CLOSED after a close that left writes
 * undelivered (they stay in the journal for the next open). */
LARDER_API larder_status larder_write_behind_flush(larder_write_behind *wb, int64_t timeout_ns);
/* Stops accepting writes and drains (as flush); idempotent. */
LARDER_API larder_status larder_write_behind_close(larder_write_behind *wb, int64_t timeout_ns);

typedef struct larder_write_behind_stats {
  size_t struct_size;
  uint64_t queue_depth;
  uint64_t queue_bytes;
  int64_t oldest_pending_ns;
  uint64_t writes;
  uint64_t coalesced;
  uint64_t delivered;
  uint64_t batches;
  uint64_t retries;
  uint64_t dead_letters;
  uint64_t rejected;
  uint64_t journal_bytes;
  uint64_t replayed_writes;
  uint64_t journal_truncated_bytes;
} larder_write_behind_stats;

/* Fills the first out->struct_size bytes' worth of fields (out required);
 * LARDER_INVALID_ARGUMENT if struct_size is smaller than
 * offsetof(larder_write_behind_stats, queue_depth) + 8. Thread-safe. */
LARDER_API larder_status larder_write_behind_stats_get(larder_write_behind *wb,
                                                       larder_write_behind_stats *out);
/* Closes (no time limit) and frees. NULL is a no-op. */
LARDER_API void larder_write_behind_destroy(larder_write_behind *wb);

/* ---- A shared second tier: Redis behind the cache ---------------------- */

/* When a service runs as many processes, each keeps its own cache (the L1)
 * in front of one Redis (the L2) that all of them share. Redis tells each
 * process which keys the others changed (server-assisted client-side
 * caching: CLIENT TRACKING with REDIRECT to a connection subscribed to
 * __redis__:invalidate, RESP2, Redis 6 or later), so after a write no
 * process keeps serving the old value from its L1: never longer than the
 * staleness bound (max_staleness_ns, 1 s by default), usually for well under
 * a millisecond. See README.md ("Many processes: Redis as the L2") and
 * docs/design.md ("Redis second tier") for the rules and the bound.
 *
 *   larder_tier_config config;
 *   larder_tier_config_init(&config);
 *   config.host = "10.0.0.5";
 *   larder_tier *tier;
 *   char why[256];
 *   if (larder_tier_create(l1_options, &config, &tier, why, sizeof why) != LARDER_OK) ...
 *   larder_tier_get(tier, "user:42", 7, NULL, NULL, 0, &value, NULL);
 *   ... write the database, then: larder_tier_invalidate(tier, "user:42", 7);
 *
 * Reads. An L1 hit never waits for Redis. On an L1 miss one caller per key
 * and process asks Redis (GET and PTTL); a Redis hit is kept in L1 for at
 * most the key's remaining Redis TTL and l1_max_ttl_ns; a Redis miss runs
 * the loader, writes the value to Redis (SET NX PX) and keeps it in L1.
 * A Redis error or timeout counts as a miss: the loader's answer is returned
 * and kept nowhere. While tracking is down (lost connection, unanswered
 * ping) every read skips L1 and asks Redis.
 *
 * The library is built with this tier when LARDER_REDIS is on (the default;
 * it then links libhiredis). Without it, larder_tier_create returns
 * LARDER_UNAVAILABLE. */

#define LARDER_TRACKING_DEFAULT 0 /* Redis reports the keys this process read */
#define LARDER_TRACKING_BCAST 1   /* Redis reports every key under the prefixes */

#define LARDER_TIER_CACHE_ASIDE 0   /* set/delete write Redis; the store is yours */
#define LARDER_TIER_WRITE_THROUGH 1 /* set/delete: store_writer first, then Redis */
#define LARDER_TIER_WRITE_BEHIND 2  /* set/delete: L1 and Redis now, the store later */

#define LARDER_BREAKER_CLOSED 0    /* calls go to Redis */
#define LARDER_BREAKER_OPEN 1      /* Redis failed breaker_failures times in a row: skipped */
#define LARDER_BREAKER_HALF_OPEN 2 /* one trial call after breaker_open_ns */

/* The tier's settings; start from larder_tier_config_init, which fills the
 * defaults given below. Strings are copied by larder_tier_create. */
typedef struct larder_tier_config {
  size_t struct_size;
  const char *host;           /* "127.0.0.1"; an address or a host name */
  int32_t port;               /* 6379 */
  const char *username;       /* NULL: AUTH with the password only (ACL user otherwise) */
  const char *password;       /* NULL: no AUTH */
  int32_t database;           /* 0; SELECT */
  int64_t connect_timeout_ns; /* 1 s */
  int64_t command_timeout_ns; /* 250 ms: a slower answer is a failure */
  uint32_t max_connections;   /* 8 data connections (1 to 1024) */
  int32_t tracking;           /* LARDER_TRACKING_DEFAULT */
  /* BCAST only: the prefixes Redis reports (none: every key); they must not
   * overlap. Keys outside them are never kept in L1. */
  const char *const *broadcast_prefixes;
  size_t broadcast_prefix_count;
  int64_t l1_max_ttl_ns;      /* 60 s: L1 keeps nothing longer */
  int64_t l2_ttl_ns;          /* 5 min: Redis TTL when the loader or the write gives none */
  int64_t max_staleness_ns;   /* 1 s: the bound (>= health + 2 x command timeout + 50 ms) */
  int64_t health_interval_ns; /* 100 ms between pings */
  int64_t reconnect_min_ns;   /* 50 ms: reconnection backoff, doubling ... */
  int64_t reconnect_max_ns;   /* ... up to 2 s, jittered */
  /* Stampedes across processes (an efficiency guard, not a lock anyone may
   * rely on): with stampede_lock 1, one caller across all processes loads a
   * missing key (SET <lock_prefix>key token NX PX lease); the others poll
   * Redis (lock_poll_min_ns doubling to lock_poll_max_ns) for its value; when
   * the lease runs out a poller takes over; after twice the lease a caller
   * loads anyway. */
  int32_t stampede_lock;              /* 0 */
  const char *lock_prefix;            /* "lock:" */
  int64_t lock_lease_ns;              /* 5 s */
  int64_t lock_poll_min_ns;           /* 2 ms */
  int64_t lock_poll_max_ns;           /* 50 ms */
  int32_t breaker_failures;           /* 5 consecutive failures open the breaker ... */
  int64_t breaker_open_ns;            /* ... for 1 s */
  int32_t write_mode;                 /* LARDER_TIER_CACHE_ASIDE */
  larder_store_write_fn store_writer; /* LARDER_TIER_WRITE_THROUGH: required */
  void *store_writer_data;
  /* LARDER_TIER_WRITE_BEHIND: required (its writer, the store's batch
   * writer, runs on the queue's flusher thread). Copied by create. */
  const larder_write_behind_config *write_behind;
} larder_tier_config;

/* Fills *config with the defaults (and struct_size). */
LARDER_API larder_status larder_tier_config_init(larder_tier_config *config);

typedef struct larder_tier larder_tier;

/* Builds the L1 from l1 (the options' loader, if any, is the source of truth
 * behind Redis), connects to Redis, checks that it supports tracking,
 * subscribes to invalidations and starts the tier's background thread.
 * On success *out owns the tier (free with larder_tier_destroy); on failure
 * *out is NULL and error (error_size bytes, may be NULL with error_size 0)
 * says why: LARDER_UNAVAILABLE when Redis cannot be reached within
 * connect_timeout_ns (or the library has no Redis support);
 * LARDER_INVALID_ARGUMENT for bad settings or a server that refused: wrong
 * password, no CLIENT TRACKING (Redis before 6), overlapping prefixes.
 * Thread-safe. */
LARDER_API larder_status larder_tier_create(const larder_options *l1,
                                            const larder_tier_config *config, larder_tier **out,
                                            char *error, size_t error_size);

/* Stops the background thread (a write-behind queue is drained first) and
 * frees the tier and its L1. No other thread may be using it. In a child
 * after fork(), returns at once and frees nothing of the parent's. NULL is a
 * no-op. */
LARDER_API void larder_tier_destroy(larder_tier *tier);

/* The value of key: from L1, else Redis, else the loader (fn, or NULL: the
 * L1 options' loader; with none at all, a Redis miss is LARDER_NOT_FOUND).
 * Statuses, out, info and timeout_ns as for larder_get_or_load (out is
 * required; on LARDER_OK it holds a pinned value to release);
 * info->source is LARDER_SOURCE_HIT for L1 and Redis hits. Thread-safe. */
LARDER_API larder_status larder_tier_get(larder_tier *tier, const void *key, size_t key_size,
                                         larder_loader_fn fn, void *user_data, int64_t timeout_ns,
                                         larder_value *out, larder_fetch_info *info);

/* Writes key by the configured write_mode; ttl_ns (0: l2_ttl_ns) is the
 * Redis TTL. Cache-aside: SET in Redis. Write-through: store_writer first
 * (its failure: LARDER_WRITE_FAILED, nothing changed), then SET.
 * Write-behind: queued for the store and put into L1 now, then SET. Every
 * other process drops its L1 copy (Redis tells it). LARDER_UNAVAILABLE: Redis
 * was not written (the store may have been): other processes may serve the
 * old value until its Redis TTL. error as for larder_tier_create.
 * Thread-safe; writes of one key are serialised in the store modes. */
LARDER_API larder_status larder_tier_set(larder_tier *tier, const void *key, size_t key_size,
                                         const void *value, size_t value_size, int64_t ttl_ns,
                                         char *error, size_t error_size);

/* Deletes key by the configured write_mode (cache-aside: the same as
 * larder_tier_invalidate). Statuses as larder_tier_set. Thread-safe. */
LARDER_API larder_status larder_tier_delete(larder_tier *tier, const void *key, size_t key_size,
                                            char *error, size_t error_size);

/* Cache-aside, after you wrote the store: DEL key (and its stampede lock) in
 * Redis, then invalidate L1 here; Redis tells the other processes.
 * LARDER_UNAVAILABLE when the DEL did not reach Redis. Thread-safe. */
LARDER_API larder_status larder_tier_invalidate(larder_tier *tier, const void *key,
                                                size_t key_size);

/* Write-behind: waits until every queued store write is delivered
 * (LARDER_TIMEOUT after timeout_ns, 0: no limit). LARDER_OK at once in the
 * other modes. Thread-safe. */
LARDER_API larder_status larder_tier_flush(larder_tier *tier, int64_t timeout_ns);

typedef struct larder_tier_stats {
  size_t struct_size;      /* set by the caller to sizeof(larder_tier_stats) */
  uint64_t l2_hits;        /* L1 misses answered by Redis */
  uint64_t l2_misses;      /* ... that Redis did not have */
  uint64_t l2_errors;      /* Redis errors and timeouts (handled as misses) */
  uint64_t l2_skipped;     /* calls that skipped Redis: the breaker was open */
  uint64_t loads;          /* loader calls */
  uint64_t fills;          /* loaded values written to Redis */
  uint64_t fills_refused;  /* not written: the key appeared, or the lock was lost */
  uint64_t bypassed_reads; /* reads that skipped L1 (tracking down; BCAST: key outside) */
  uint64_t invalidation_messages;
  uint64_t invalidated_keys;
  uint64_t flushes;           /* FLUSHALL / FLUSHDB messages */
  uint64_t tracking_losses;   /* invalidation connection lost or a ping missed */
  uint64_t connection_losses; /* data connections lost */
  uint64_t reconnects;        /* tracking sessions after the first */
  int32_t tracking_up;        /* 1 while L1 may answer reads */
  int32_t breaker_state;      /* LARDER_BREAKER_* */
  uint64_t breaker_opens;
  uint64_t lock_acquired;  /* stampede locks won */
  uint64_t lock_waits;     /* callers that found the lock taken and polled */
  uint64_t lock_wait_hits; /* ... and got the value another process loaded */
  uint64_t lock_fail_open; /* ... and loaded anyway after twice the lease */
  uint64_t writes;         /* set, delete and invalidate calls */
  uint64_t write_failures; /* ... that failed */
} larder_tier_stats;

/* Fills the first out->struct_size bytes' worth of fields (out required);
 * LARDER_INVALID_ARGUMENT if struct_size is smaller than
 * offsetof(larder_tier_stats, l2_hits) + 8. Thread-safe. */
LARDER_API larder_status larder_tier_stats_get(larder_tier *tier, larder_tier_stats *out);

/* The L1's own statistics (hits: reads L1 answered), as larder_cache_stats.
 * Thread-safe. */
LARDER_API larder_status larder_tier_l1_stats(larder_tier *tier, larder_stats *out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LARDER_H_ */
