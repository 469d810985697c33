/* The C ABI from C: every feature, and every function's error paths.
 * Compiled as C99. Prints "N passed, N failed" and exits non-zero on any
 * failure. */
#define _POSIX_C_SOURCE 200809L /* nanosleep under -std=c99 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "larder.h"

static larder_cache *new_cache(uint64_t bytes, uint64_t entries, uint32_t stripes) {
  larder_options *o = larder_options_new();
  larder_cache *c = NULL;
  CHECK(o != NULL);
  CHECK_STATUS(larder_options_set_capacity_bytes(o, bytes), LARDER_OK);
  CHECK_STATUS(larder_options_set_capacity_entries(o, entries), LARDER_OK);
  CHECK_STATUS(larder_options_set_stripes(o, stripes), LARDER_OK);
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_OK);
  larder_options_free(o);
  return c;
}

/* ---- versions and status text ---- */

static void test_version_and_strerror(void) {
  int code;
  CHECK(strcmp(larder_version(), "0.2.0") == 0);
  CHECK(larder_version_number() == LARDER_VERSION_NUMBER);
  for (code = -5; code < 40; ++code) CHECK(larder_strerror(code) != NULL);
  CHECK(strcmp(larder_strerror(LARDER_OK), "ok") == 0);
  CHECK(strcmp(larder_strerror(LARDER_CLOSED), "the cache is closed") == 0);
  CHECK(strcmp(larder_strerror(9999), "unknown status") == 0);
}

/* ---- options ---- */

static void test_options_errors(void) {
  larder_options *o = larder_options_new();
  larder_cache *c = (larder_cache *)&c; /* must be reset to NULL on failure */
  CHECK_STATUS(larder_options_set_capacity_bytes(NULL, 1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_capacity_bytes(o, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_default_ttl(o, -1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_negative_ttl(o, -1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_error_ttl(o, -5), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_refresh_beta(o, -0.5), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_stale_if_error(o, -1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_stale_while_revalidate(o, -1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_default_refresh_delta(o, -1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_refresh_threads(o, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_options_set_stripes(o, 1u << 20), LARDER_INVALID_ARGUMENT);
  /* No capacity set yet: creation refuses, *out is NULL. */
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_INVALID_ARGUMENT);
  CHECK(c == NULL);
  CHECK_STATUS(larder_cache_create(o, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_cache_create(NULL, &c), LARDER_INVALID_ARGUMENT);
  /* Fewer entries than stripes is fine: the bounds are the whole cache's. */
  CHECK_STATUS(larder_options_set_capacity_bytes(o, 1 << 20), LARDER_OK);
  CHECK_STATUS(larder_options_set_capacity_entries(o, 3), LARDER_OK);
  CHECK_STATUS(larder_options_set_stripes(o, 8), LARDER_OK);
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_OK);
  CHECK_STATUS(larder_put(c, "a", 1, "1", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_put(c, "b", 1, "2", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_put(c, "c", 1, "3", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_contains(c, "a", 1), LARDER_OK);
  CHECK_STATUS(larder_contains(c, "b", 1), LARDER_OK);
  CHECK_STATUS(larder_contains(c, "c", 1), LARDER_OK);
  CHECK_STATUS(larder_put(c, "d", 1, "4", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_contains(c, "d", 1), LARDER_OK);
  CHECK((larder_contains(c, "a", 1) == LARDER_OK) + (larder_contains(c, "b", 1) == LARDER_OK) +
            (larder_contains(c, "c", 1) == LARDER_OK) ==
        2); /* three entries, the newest among them */
  larder_cache_destroy(c);
  c = NULL;
  larder_options_free(o);
  /* Destroyed options are detected, and a second free is ignored. */
  CHECK_STATUS(larder_options_set_capacity_bytes(o, 1024), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_INVALID_ARGUMENT);
  larder_options_free(o);
  larder_options_free(NULL);
}

/* ---- basic operations ---- */

static void test_put_get_forms(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  char buf[32];
  size_t n = 0;
  void *copy = NULL;
  larder_value v = LARDER_VALUE_INIT;
  const char binary_key[] = {'a', 0, 'b'};
  CHECK_STATUS(larder_put(c, KEY("k"), "hello", 5, 0), LARDER_OK);
  CHECK_STATUS(larder_get(c, KEY("k"), buf, sizeof buf, &n), LARDER_OK);
  CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
  /* Too small a buffer: the size needed, nothing copied. */
  memset(buf, 'x', sizeof buf);
  CHECK_STATUS(larder_get(c, KEY("k"), buf, 2, &n), LARDER_BUFFER_TOO_SMALL);
  CHECK(n == 5 && buf[0] == 'x');
  CHECK_STATUS(larder_get(c, KEY("k"), NULL, 0, &n), LARDER_BUFFER_TOO_SMALL);
  CHECK(n == 5);
  /* Library-allocated copy. */
  CHECK_STATUS(larder_get_alloc(c, KEY("k"), &copy, &n), LARDER_OK);
  CHECK(n == 5 && memcmp(copy, "hello", 5) == 0);
  larder_free(copy);
  larder_free(NULL);
  /* Pinned, surviving invalidation and the cache. */
  CHECK_STATUS(larder_get_pinned(c, KEY("k"), &v), LARDER_OK);
  CHECK(v.size == 5 && memcmp(v.data, "hello", 5) == 0);
  CHECK_STATUS(larder_invalidate(c, KEY("k")), LARDER_OK);
  CHECK_STATUS(larder_invalidate(c, KEY("k")), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_contains(c, KEY("k")), LARDER_NOT_FOUND);
  /* Binary keys, empty values. */
  CHECK_STATUS(larder_put(c, binary_key, 3, NULL, 0, 0), LARDER_OK);
  CHECK_STATUS(larder_get_alloc(c, binary_key, 3, &copy, &n), LARDER_OK);
  CHECK(copy != NULL && n == 0);
  larder_free(copy);
  CHECK_STATUS(larder_get(c, binary_key, 2, buf, sizeof buf, &n), LARDER_NOT_FOUND);
  larder_cache_destroy(c);
  CHECK(v.size == 5 && memcmp(v.data, "hello", 5) == 0);
  CHECK_STATUS(larder_value_release(&v), LARDER_OK);
  CHECK(v.data == NULL && v.internal_ == NULL);
  /* Double release is detected (a no-op). */
  CHECK_STATUS(larder_value_release(&v), LARDER_OK);
  CHECK_STATUS(larder_value_release(NULL), LARDER_INVALID_ARGUMENT);
}

static void test_bad_arguments_everywhere(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  char buf[8];
  size_t n;
  void *p;
  uint64_t removed;
  larder_value v = LARDER_VALUE_INIT;
  larder_value used = LARDER_VALUE_INIT;
  char *huge_key = (char *)calloc(LARDER_MAX_KEY_LENGTH + 2, 1);
  larder_stats stats;
  memset(huge_key, 'k', LARDER_MAX_KEY_LENGTH + 1);
  /* NULL handles. */
  CHECK_STATUS(larder_put(NULL, KEY("k"), "v", 1, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get(NULL, KEY("k"), buf, sizeof buf, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_alloc(NULL, KEY("k"), &p, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_pinned(NULL, KEY("k"), &v), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_contains(NULL, KEY("k")), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_invalidate(NULL, KEY("k")), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_invalidate_prefix(NULL, KEY("k"), &removed), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_clear(NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_cleanup(NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_cache_stats(NULL, &stats), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_cache_close(NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_refresh(NULL, KEY("k")), LARDER_INVALID_ARGUMENT);
  larder_cache_destroy(NULL);
  /* NULL key with a non-zero length; NULL value with a non-zero length. */
  CHECK_STATUS(larder_put(c, NULL, 3, "v", 1, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_put(c, KEY("k"), NULL, 4, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get(c, NULL, 1, buf, sizeof buf, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_contains(c, NULL, 1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_invalidate(c, NULL, 2), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_invalidate_prefix(c, NULL, 2, &removed), LARDER_INVALID_ARGUMENT);
  /* Empty and oversized keys. */
  CHECK_STATUS(larder_put(c, NULL, 0, "v", 1, 0), LARDER_EMPTY_KEY);
  CHECK_STATUS(larder_put(c, "", 0, "v", 1, 0), LARDER_EMPTY_KEY);
  CHECK_STATUS(larder_get(c, "", 0, buf, sizeof buf, &n), LARDER_EMPTY_KEY);
  CHECK_STATUS(larder_get_pinned(c, "", 0, &v), LARDER_EMPTY_KEY);
  CHECK_STATUS(larder_contains(c, "", 0), LARDER_EMPTY_KEY);
  CHECK_STATUS(larder_put(c, huge_key, LARDER_MAX_KEY_LENGTH + 1, "v", 1, 0), LARDER_KEY_TOO_LONG);
  CHECK_STATUS(larder_get(c, huge_key, LARDER_MAX_KEY_LENGTH + 1, buf, sizeof buf, &n),
               LARDER_KEY_TOO_LONG);
  CHECK_STATUS(larder_get_pinned(c, huge_key, LARDER_MAX_KEY_LENGTH + 1, &v), LARDER_KEY_TOO_LONG);
  CHECK_STATUS(larder_put(c, huge_key, LARDER_MAX_KEY_LENGTH, "v", 1, 0), LARDER_OK);
  /* Output pointers, buffers and TTLs. */
  CHECK_STATUS(larder_get(c, KEY("k"), buf, sizeof buf, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get(c, KEY("k"), NULL, 5, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_alloc(c, KEY("k"), NULL, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_alloc(c, KEY("k"), &p, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_pinned(c, KEY("k"), NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_put(c, KEY("k"), "v", 1, -1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_put(c, KEY("k"), "v", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_get_pinned(c, KEY("k"), &used), LARDER_OK);
  /* A value slot still holding a pin may not be overwritten (it would leak). */
  CHECK_STATUS(larder_get_pinned(c, KEY("k"), &used), LARDER_INVALID_ARGUMENT);
  larder_value_release(&used);
  v.struct_size = 0; /* an uninitialised struct */
  CHECK_STATUS(larder_get_pinned(c, KEY("k"), &v), LARDER_INVALID_ARGUMENT);
  /* Stats with a too-small struct. */
  stats.struct_size = 4;
  CHECK_STATUS(larder_cache_stats(c, &stats), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_cache_stats(c, NULL), LARDER_INVALID_ARGUMENT);
  /* A value larger than the cache. */
  {
    larder_cache *tiny = new_cache(4096, 0, 1);
    char *big = (char *)calloc(8192, 1);
    CHECK_STATUS(larder_put(tiny, KEY("k"), "old", 3, 0), LARDER_OK);
    CHECK_STATUS(larder_put(tiny, KEY("k"), big, 8192, 0), LARDER_VALUE_TOO_LARGE);
    CHECK_STATUS(larder_contains(tiny, KEY("k")), LARDER_NOT_FOUND);
    free(big);
    larder_cache_destroy(tiny);
  }
  free(huge_key);
  larder_cache_destroy(c);
}

static void test_closed_cache(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  char buf[8];
  size_t n;
  larder_value v = LARDER_VALUE_INIT, other = LARDER_VALUE_INIT;
  larder_stats stats;
  stats.struct_size = sizeof stats;
  CHECK_STATUS(larder_put(c, KEY("k"), "v", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_get_pinned(c, KEY("k"), &v), LARDER_OK);
  CHECK_STATUS(larder_cache_close(c), LARDER_OK);
  CHECK_STATUS(larder_cache_close(c), LARDER_OK); /* idempotent */
  CHECK_STATUS(larder_put(c, KEY("k"), "v", 1, 0), LARDER_CLOSED);
  CHECK_STATUS(larder_get(c, KEY("k"), buf, sizeof buf, &n), LARDER_CLOSED);
  CHECK_STATUS(larder_contains(c, KEY("k")), LARDER_CLOSED);
  CHECK_STATUS(larder_cache_stats(c, &stats), LARDER_CLOSED);
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("k"), NULL, NULL, 0, buf, sizeof buf, &n, &other, NULL),
      LARDER_CLOSED);
  CHECK(v.size == 1 && memcmp(v.data, "v", 1) == 0); /* pins outlive close */
  larder_value_release(&v);
  larder_cache_destroy(c);
}

/* ---- prefix, clear, stats, listener ---- */

struct removals {
  int count[4];
  char last_key[32];
};

static void on_removal(void *user_data, const void *key, size_t key_size, const void *value,
                       size_t value_size, int cause) {
  struct removals *r = (struct removals *)user_data;
  (void)value;
  (void)value_size;
  if (cause >= 0 && cause < 4) r->count[cause]++;
  if (key_size < sizeof r->last_key) {
    memcpy(r->last_key, key, key_size);
    r->last_key[key_size] = 0;
  }
}

static void test_prefix_clear_stats_listener(void) {
  struct removals seen;
  larder_options *o = larder_options_new();
  larder_cache *c = NULL;
  larder_stats stats;
  uint64_t removed = 0;
  int i;
  char key[32];
  memset(&seen, 0, sizeof seen);
  larder_options_set_capacity_bytes(o, 1 << 20);
  larder_options_set_capacity_entries(o, 100);
  larder_options_set_stripes(o, 1);
  CHECK_STATUS(larder_options_set_removal_listener(o, on_removal, &seen), LARDER_OK);
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_OK);
  larder_options_free(o);
  for (i = 0; i < 150; ++i) {
    snprintf(key, sizeof key, "%s:%d", i % 2 ? "odd" : "even", i);
    CHECK_STATUS(larder_put(c, key, strlen(key), "v", 1, 0), LARDER_OK);
  }
  CHECK(seen.count[LARDER_REMOVED_EVICTED] == 50);
  CHECK_STATUS(larder_put(c, KEY("odd:149"), "w", 1, 0), LARDER_OK);
  CHECK(seen.count[LARDER_REMOVED_REPLACED] == 1);
  CHECK_STATUS(larder_invalidate_prefix(c, KEY("odd:"), &removed), LARDER_OK);
  CHECK(removed == 50);
  CHECK_STATUS(larder_invalidate_prefix(c, KEY("none"), NULL), LARDER_OK);
  stats.struct_size = sizeof stats;
  CHECK_STATUS(larder_cache_stats(c, &stats), LARDER_OK);
  CHECK(stats.entries == 50 && stats.puts == 151 && stats.evictions == 50);
  CHECK(stats.invalidations == 50 && stats.capacity_entries == 100);
  CHECK_STATUS(larder_clear(c), LARDER_OK);
  CHECK_STATUS(larder_cleanup(c), LARDER_OK);
  CHECK(seen.count[LARDER_REMOVED_EXPLICIT] == 100);
  /* An "older caller": a stats struct that ends after `misses`. */
  {
    larder_stats old;
    memset(&old, 0xAB, sizeof old);
    old.struct_size = offsetof(larder_stats, misses) + sizeof old.misses;
    CHECK_STATUS(larder_cache_stats(c, &old), LARDER_OK);
    CHECK(old.hits == 0 && old.misses == 0);
    CHECK(old.puts == 0xABABABABABABABABull); /* untouched beyond its size */
  }
  larder_cache_destroy(c);
}

/* ---- TTL with a caller's clock ---- */

static int64_t fake_now = 1000000000;
static int64_t fake_clock(void *user_data) {
  (void)user_data;
  return fake_now;
}

static void test_ttl_with_injected_clock(void) {
  larder_options *o = larder_options_new();
  larder_cache *c = NULL;
  larder_options_set_capacity_bytes(o, 1 << 20);
  CHECK_STATUS(larder_options_set_clock(o, fake_clock, NULL), LARDER_OK);
  CHECK_STATUS(larder_options_set_default_ttl(o, 5000000000LL), LARDER_OK);
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_OK);
  larder_options_free(o);
  CHECK_STATUS(larder_put(c, KEY("default"), "v", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_put(c, KEY("short"), "v", 1, 1000000000LL), LARDER_OK);
  fake_now += 2000000000LL;
  CHECK_STATUS(larder_contains(c, KEY("short")), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_contains(c, KEY("default")), LARDER_OK);
  fake_now += 4000000000LL;
  CHECK_STATUS(larder_contains(c, KEY("default")), LARDER_NOT_FOUND);
  larder_cache_destroy(c);
}

/* ---- larder_read, larder_touch, snapshots, larder_refresh_begin ---- */

static void test_read_touch_snapshot_refresh(void) {
  larder_options *o = larder_options_new();
  larder_cache *c = NULL;
  larder_snapshot *snap = (larder_snapshot *)&snap;
  larder_entry_info info;
  char buf[16];
  size_t n = 0, key_size = 0, value_size = 0;
  const void *k = NULL, *v = NULL;
  int kind = -1;
  larder_lease *lease = NULL;
  larder_ticket *ticket = NULL;
  larder_value val = LARDER_VALUE_INIT;
  larder_stats st;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  larder_options_set_capacity_bytes(o, 1 << 20);
  larder_options_set_capacity_entries(o, 3);
  larder_options_set_stripes(o, 1);
  larder_options_set_clock(o, fake_clock, NULL);
  larder_options_set_stale_while_revalidate(o, 60000000000LL); /* keep expired values a minute */
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_OK);
  larder_options_free(o);
  CHECK_STATUS(larder_put(c, KEY("a"), "1", 1, 10000000000LL), LARDER_OK);
  CHECK_STATUS(larder_put(c, KEY("b"), "22", 2, 0), LARDER_OK);
  CHECK_STATUS(larder_put(c, KEY("c"), "333", 3, 0), LARDER_OK);

  /* A peek neither promotes nor counts; remaining time and staleness. */
  CHECK_STATUS(larder_read(c, KEY("a"), LARDER_READ_PEEK, buf, sizeof buf, &n, &info), LARDER_OK);
  CHECK(n == 1 && buf[0] == '1' && info.expires == 1 && info.stale == 0);
  CHECK(info.remaining_ns == 10000000000LL);
  CHECK_STATUS(larder_read(c, KEY("b"), LARDER_READ_PEEK, buf, 1, &n, &info),
               LARDER_BUFFER_TOO_SMALL);
  CHECK(n == 2 && info.expires == 0);
  CHECK_STATUS(larder_read(c, KEY("zz"), LARDER_READ_PEEK, buf, sizeof buf, &n, NULL),
               LARDER_NOT_FOUND);
  st.struct_size = sizeof st;
  CHECK_STATUS(larder_cache_stats(c, &st), LARDER_OK);
  CHECK(st.hits == 0 && st.misses == 0);
  CHECK_STATUS(larder_read(c, KEY("a"), 0x80u, buf, sizeof buf, &n, NULL), LARDER_INVALID_ARGUMENT);
  info.struct_size = 1;
  CHECK_STATUS(larder_read(c, KEY("a"), 0, buf, sizeof buf, &n, &info), LARDER_INVALID_ARGUMENT);
  info.struct_size = sizeof info;

  /* Snapshot: most recently used first; entries outlive the cache's changes. */
  CHECK_STATUS(larder_get(c, KEY("b"), buf, sizeof buf, &n), LARDER_OK);
  CHECK_STATUS(larder_snapshot_create(c, 0, &snap), LARDER_OK);
  CHECK(larder_snapshot_size(snap) == 3);
  CHECK_STATUS(larder_snapshot_entry(snap, 0, &k, &key_size, &v, &value_size, &info), LARDER_OK);
  CHECK(key_size == 1 && memcmp(k, "b", 1) == 0 && value_size == 2 && memcmp(v, "22", 2) == 0);
  CHECK_STATUS(larder_snapshot_entry(snap, 2, &k, &key_size, NULL, NULL, &info), LARDER_OK);
  CHECK(key_size == 1 && memcmp(k, "a", 1) == 0 && info.expires == 1);
  CHECK_STATUS(larder_snapshot_entry(snap, 3, &k, NULL, NULL, NULL, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_clear(c), LARDER_OK);
  CHECK_STATUS(larder_snapshot_entry(snap, 1, NULL, NULL, &v, &value_size, NULL), LARDER_OK);
  CHECK(value_size == 3 && memcmp(v, "333", 3) == 0);
  larder_snapshot_free(snap);
  larder_snapshot_free(NULL);
  CHECK(larder_snapshot_size(NULL) == 0);
  CHECK_STATUS(larder_snapshot_create(c, 8u, &snap), LARDER_INVALID_ARGUMENT);
  CHECK(snap == NULL);
  CHECK_STATUS(larder_snapshot_create(NULL, 0, &snap), LARDER_INVALID_ARGUMENT);

  /* Touch restarts a TTL; stale values are read only when allowed. */
  CHECK_STATUS(larder_put(c, KEY("t"), "x", 1, 2000000000LL), LARDER_OK);
  fake_now += 1500000000LL;
  CHECK_STATUS(larder_touch(c, KEY("t"), 2000000000LL), LARDER_OK);
  fake_now += 1500000000LL;
  CHECK_STATUS(larder_contains(c, KEY("t")), LARDER_OK);
  fake_now += 1000000000LL;
  CHECK_STATUS(larder_contains(c, KEY("t")), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_touch(c, KEY("t"), 0), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_touch(c, KEY("t"), -1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_read(c, KEY("t"), LARDER_READ_ALLOW_STALE, buf, sizeof buf, &n, &info),
               LARDER_OK);
  CHECK(info.stale == 1 && info.remaining_ns == -500000000LL);
  CHECK_STATUS(larder_snapshot_create(c, 0, &snap), LARDER_OK);
  CHECK(larder_snapshot_size(snap) == 0);
  larder_snapshot_free(snap);
  CHECK_STATUS(larder_snapshot_create(c, LARDER_SNAPSHOT_INCLUDE_STALE, &snap), LARDER_OK);
  CHECK(larder_snapshot_size(snap) == 1);
  larder_snapshot_free(snap);

  /* A refresh the caller leads; a second caller waits for it. */
  CHECK_STATUS(larder_put(c, KEY("r"), "old", 3, 0), LARDER_OK);
  CHECK_STATUS(larder_refresh_begin(c, KEY("r"), &kind, &val, NULL, &lease, &ticket), LARDER_OK);
  CHECK(kind == LARDER_FETCH_LEAD && lease != NULL);
  {
    int kind2 = -1;
    larder_lease *lease2 = NULL;
    larder_ticket *ticket2 = NULL;
    larder_value unused = LARDER_VALUE_INIT;
    CHECK_STATUS(larder_refresh_begin(c, KEY("r"), &kind2, &unused, NULL, &lease2, &ticket2),
                 LARDER_OK);
    CHECK(kind2 == LARDER_FETCH_WAIT && ticket2 != NULL);
    CHECK_STATUS(larder_get(c, KEY("r"), buf, sizeof buf, &n), LARDER_OK);
    CHECK(n == 3 && memcmp(buf, "old", 3) == 0);
    CHECK_STATUS(larder_lease_complete_value(lease, "new", 3, 0, NULL), LARDER_OK);
    CHECK_STATUS(larder_ticket_wait(ticket2, 0, &val, NULL), LARDER_OK);
    CHECK(val.size == 3 && memcmp(val.data, "new", 3) == 0);
    larder_value_release(&val);
    larder_ticket_free(ticket2);
  }
  CHECK_STATUS(larder_get(c, KEY("r"), buf, sizeof buf, &n), LARDER_OK);
  CHECK(n == 3 && memcmp(buf, "new", 3) == 0);
  /* A loaded value may carry its own weight. */
  CHECK_STATUS(larder_fetch_begin(c, KEY("w"), &kind, &val, NULL, &lease, &ticket), LARDER_OK);
  CHECK(kind == LARDER_FETCH_LEAD);
  CHECK_STATUS(larder_lease_complete_value_charged(lease, "heavy", 5, 0, 1u << 20, NULL),
               LARDER_OK); /* all the capacity: kept alone */
  CHECK_STATUS(larder_contains(c, KEY("w")), LARDER_OK);
  CHECK_STATUS(larder_contains(c, KEY("r")), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_fetch_begin(c, KEY("w2"), &kind, &val, NULL, &lease, &ticket), LARDER_OK);
  CHECK_STATUS(larder_lease_complete_value_charged(lease, "x", 1, 0, (uint64_t)1 << 33, NULL),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_put(c, KEY("r"), "new", 3, 0), LARDER_OK);
  CHECK_STATUS(larder_refresh_begin(c, KEY("r"), NULL, NULL, NULL, &lease, &ticket),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_refresh_begin(c, KEY("r"), &kind, NULL, NULL, &lease, &ticket),
               LARDER_INVALID_ARGUMENT); /* the value's out is required */
  CHECK(kind == LARDER_FETCH_DONE);
  CHECK_STATUS(larder_refresh_begin(c, "", 0, &kind, &val, NULL, &lease, &ticket),
               LARDER_EMPTY_KEY);
  CHECK(kind == LARDER_FETCH_DONE);
  larder_cache_close(c);
  CHECK_STATUS(larder_read(c, KEY("r"), 0, buf, sizeof buf, &n, NULL), LARDER_CLOSED);
  CHECK_STATUS(larder_touch(c, KEY("r"), 0), LARDER_CLOSED);
  CHECK_STATUS(larder_snapshot_create(c, 0, &snap), LARDER_CLOSED);
  CHECK_STATUS(larder_refresh_begin(c, KEY("r"), &kind, &val, NULL, &lease, &ticket),
               LARDER_CLOSED);
  larder_cache_destroy(c);
}

/* ---- loading ---- */

struct load_ctx {
  larder_cache *cache;
  int calls;
  int mode; /* 0 value, 1 not found, 2 error, 3 no result, 4 nonzero return, 5 reenter */
  larder_status inner;
};

static int loader(void *user_data, const void *key, size_t key_size, larder_load_result *r) {
  struct load_ctx *ctx = (struct load_ctx *)user_data;
  __atomic_fetch_add(&ctx->calls, 1, __ATOMIC_SEQ_CST); /* also runs on refresh threads */
  switch (ctx->mode) {
    case 0:
      return larder_load_result_set_value(r, key, key_size, 0);
    case 1:
      return larder_load_result_set_not_found(r);
    case 2:
      return larder_load_result_set_error(r, "database down");
    case 3:
      return 0;
    case 4:
      return 42;
    case 5: {
      /* Re-enter the cache: other keys work, its own key is refused. */
      larder_value v = LARDER_VALUE_INIT;
      larder_put(ctx->cache, KEY("side"), "effect", 6, 0);
      ctx->inner = larder_get_or_load(ctx->cache, key, key_size, loader, ctx, 0, &v, NULL);
      return larder_load_result_set_value(r, "outer", 5, 0);
    }
  }
  return 1;
}

/* ---- enumeration: larder_count and larder_copy_entries ---- */

static void test_count_and_snapshot(void) {
  larder_options *o = larder_options_new();
  larder_cache *c = NULL;
  uint64_t n = 99;
  void *data = NULL;
  size_t size = 0, off = 0;
  int seen_a = 0, seen_b = 0;
  uint64_t i;
  larder_options_set_capacity_bytes(o, 1 << 20);
  larder_options_set_stripes(o, 4);
  CHECK_STATUS(larder_options_set_clock(o, fake_clock, NULL), LARDER_OK);
  CHECK_STATUS(larder_options_set_negative_ttl(o, 60000000000LL), LARDER_OK);
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_OK);
  larder_options_free(o);
  CHECK_STATUS(larder_count(c, NULL, 0, &n), LARDER_OK);
  CHECK(n == 0);
  CHECK_STATUS(larder_put(c, KEY("p:a"), "alpha", 5, 0), LARDER_OK);
  CHECK_STATUS(larder_put(c, KEY("p:b"), "", 0, 0), LARDER_OK);
  CHECK_STATUS(larder_put(c, KEY("q:c"), "gamma", 5, 1000000000LL), LARDER_OK);
  {
    /* A cached "not found" is an entry, but not a live value. */
    struct load_ctx ctx = {NULL, 0, 1, LARDER_OK};
    larder_value v = LARDER_VALUE_INIT;
    CHECK_STATUS(larder_get_or_load(c, KEY("p:ghost"), loader, &ctx, 0, &v, NULL),
                 LARDER_NOT_FOUND);
  }
  CHECK_STATUS(larder_count(c, NULL, 0, &n), LARDER_OK);
  CHECK(n == 3);
  CHECK_STATUS(larder_count(c, KEY("p:"), &n), LARDER_OK);
  CHECK(n == 2);
  fake_now += 2000000000LL; /* q:c expires */
  CHECK_STATUS(larder_count(c, NULL, 0, &n), LARDER_OK);
  CHECK(n == 2);
  CHECK_STATUS(larder_copy_entries(c, KEY("p:"), LARDER_COPY_VALUES, &data, &size, &n), LARDER_OK);
  CHECK(n == 2 && data != NULL && size == 2 * 8 + 3 + 5 + 3 + 0);
  for (i = 0; i < n && off + 8 <= size; ++i) {
    uint32_t sizes[2];
    const char *p = (const char *)data + off;
    memcpy(sizes, p, sizeof sizes);
    if (sizes[0] == 3 && memcmp(p + 8, "p:a", 3) == 0) {
      seen_a = sizes[1] == 5 && memcmp(p + 11, "alpha", 5) == 0;
    } else if (sizes[0] == 3 && memcmp(p + 8, "p:b", 3) == 0) {
      seen_b = sizes[1] == 0;
    }
    off += 8 + sizes[0] + sizes[1];
  }
  CHECK(seen_a && seen_b && off == size);
  larder_free(data);
  /* Keys only: the value sizes are still given. */
  CHECK_STATUS(larder_copy_entries(c, NULL, 0, 0, &data, &size, NULL), LARDER_OK);
  CHECK(size == 2 * 8 + 3 + 3);
  larder_free(data);
  /* Nothing matches: a non-NULL, empty buffer. */
  CHECK_STATUS(larder_copy_entries(c, KEY("zzz"), 0, &data, &size, &n), LARDER_OK);
  CHECK(data != NULL && size == 0 && n == 0);
  larder_free(data);
  /* Bad arguments. */
  CHECK_STATUS(larder_count(NULL, NULL, 0, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_count(c, NULL, 0, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_count(c, NULL, 3, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_copy_entries(c, NULL, 0, 0, NULL, &size, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_copy_entries(c, NULL, 0, 0, &data, NULL, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_copy_entries(c, NULL, 0, 4, &data, &size, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_copy_entries(NULL, NULL, 0, 0, &data, &size, &n), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_cache_close(c), LARDER_OK);
  CHECK_STATUS(larder_count(c, NULL, 0, &n), LARDER_CLOSED);
  CHECK_STATUS(larder_copy_entries(c, NULL, 0, 0, &data, &size, &n), LARDER_CLOSED);
  larder_cache_destroy(c);
}

static void test_get_or_load(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  struct load_ctx ctx;
  larder_value v = LARDER_VALUE_INIT;
  larder_fetch_info info;
  char buf[16];
  size_t n;
  memset(&ctx, 0, sizeof ctx);
  ctx.cache = c;
  info.struct_size = sizeof info;
  CHECK_STATUS(larder_get_or_load(c, KEY("alpha"), loader, &ctx, 0, &v, &info), LARDER_OK);
  CHECK(v.size == 5 && memcmp(v.data, "alpha", 5) == 0);
  CHECK(info.source == LARDER_SOURCE_LOADED);
  larder_value_release(&v);
  CHECK_STATUS(larder_get_or_load(c, KEY("alpha"), loader, &ctx, 0, &v, &info), LARDER_OK);
  CHECK(info.source == LARDER_SOURCE_HIT && ctx.calls == 1);
  larder_value_release(&v);
  ctx.mode = 1;
  CHECK_STATUS(larder_get_or_load(c, KEY("beta"), loader, &ctx, 0, &v, &info), LARDER_NOT_FOUND);
  ctx.mode = 2;
  CHECK_STATUS(larder_get_or_load(c, KEY("gamma"), loader, &ctx, 0, &v, &info), LARDER_LOAD_FAILED);
  CHECK(strcmp(info.error, "database down") == 0);
  CHECK(v.internal_ == NULL);
  ctx.mode = 3;
  CHECK_STATUS(larder_get_or_load(c, KEY("delta"), loader, &ctx, 0, &v, &info), LARDER_LOAD_FAILED);
  CHECK(strstr(info.error, "no result") != NULL);
  ctx.mode = 4;
  CHECK_STATUS(larder_get_or_load(c, KEY("epsilon"), loader, &ctx, 0, &v, NULL),
               LARDER_LOAD_FAILED);
  ctx.mode = 5;
  CHECK_STATUS(larder_get_or_load(c, KEY("zeta"), loader, &ctx, 0, &v, &info), LARDER_OK);
  CHECK(ctx.inner == LARDER_RECURSIVE_LOAD);
  CHECK_STATUS(larder_get(c, KEY("side"), buf, sizeof buf, &n), LARDER_OK);
  larder_value_release(&v);
  /* No loader anywhere; bad arguments. */
  CHECK_STATUS(larder_get_or_load(c, KEY("eta"), NULL, NULL, 0, &v, &info),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_or_load(c, KEY("eta"), loader, &ctx, -1, &v, &info),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_or_load(c, "", 0, loader, &ctx, 0, &v, &info), LARDER_EMPTY_KEY);
  CHECK_STATUS(larder_refresh(c, KEY("alpha")), LARDER_INVALID_ARGUMENT); /* no cache loader */
  CHECK_STATUS(larder_load_result_set_value(NULL, "v", 1, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_load_result_set_not_found(NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_load_result_set_error(NULL, "x"), LARDER_INVALID_ARGUMENT);
  larder_cache_destroy(c);
}

/* The copy-out form: a hit is copied without a pin; a value too large for the
 * buffer comes pinned instead; a load is copied the same way. */
static void test_get_or_load_copy(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  struct load_ctx ctx;
  larder_value v = LARDER_VALUE_INIT;
  larder_fetch_info info;
  char buf[16], big[4096];
  size_t n = 0;
  memset(&ctx, 0, sizeof ctx);
  ctx.cache = c;
  info.struct_size = sizeof info;
  /* Loaded, fits: in the buffer, nothing pinned. */
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("alpha"), loader, &ctx, 0, buf, sizeof buf, &n, &v, &info),
      LARDER_OK);
  CHECK(n == 5 && memcmp(buf, "alpha", 5) == 0 && v.internal_ == NULL && v.data == NULL);
  CHECK(info.source == LARDER_SOURCE_LOADED && ctx.calls == 1);
  /* A hit, fits. */
  memset(buf, 0, sizeof buf);
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("alpha"), loader, &ctx, 0, buf, sizeof buf, &n, &v, &info),
      LARDER_OK);
  CHECK(n == 5 && memcmp(buf, "alpha", 5) == 0 && v.internal_ == NULL);
  CHECK(info.source == LARDER_SOURCE_HIT && ctx.calls == 1);
  /* A hit too large for the buffer: pinned, the buffer untouched, no reload. */
  memset(big, 'x', sizeof big);
  CHECK_STATUS(larder_put(c, KEY("large"), big, sizeof big, 0), LARDER_OK);
  memset(buf, 0, sizeof buf);
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("large"), loader, &ctx, 0, buf, sizeof buf, &n, &v, &info),
      LARDER_OK);
  CHECK(n == sizeof big && v.size == sizeof big && v.internal_ != NULL && buf[0] == 0);
  CHECK(memcmp(v.data, big, sizeof big) == 0 && ctx.calls == 1);
  /* An overflow slot still holding a pin is refused, as for larder_get_pinned. */
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("alpha"), loader, &ctx, 0, buf, sizeof buf, &n, &v, NULL),
      LARDER_INVALID_ARGUMENT);
  larder_value_release(&v);
  /* Loaded, too large: pinned. A zero-size buffer may be NULL. */
  CHECK_STATUS(larder_get_or_load_copy(c, KEY("a-long-key-for-its-value"), loader, &ctx, 0, NULL, 0,
                                       &n, &v, &info),
               LARDER_OK);
  CHECK(n == 24 && v.size == 24 && memcmp(v.data, "a-long-key-for-its-value", 24) == 0);
  CHECK(info.source == LARDER_SOURCE_LOADED && ctx.calls == 2);
  larder_value_release(&v);
  /* Answers without a value leave both outputs alone. */
  n = 99;
  ctx.mode = 1;
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("beta"), loader, &ctx, 0, buf, sizeof buf, &n, &v, &info),
      LARDER_NOT_FOUND);
  CHECK(n == 99 && v.internal_ == NULL);
  ctx.mode = 2;
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("gamma"), loader, &ctx, 0, buf, sizeof buf, &n, &v, &info),
      LARDER_LOAD_FAILED);
  CHECK(strcmp(info.error, "database down") == 0 && n == 99 && v.internal_ == NULL);
  /* Bad arguments. */
  ctx.mode = 0;
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("alpha"), loader, &ctx, 0, buf, sizeof buf, NULL, &v, NULL),
      LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("alpha"), loader, &ctx, 0, buf, sizeof buf, &n, NULL, NULL),
      LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_or_load_copy(c, KEY("alpha"), loader, &ctx, 0, NULL, 8, &n, &v, NULL),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(
      larder_get_or_load_copy(c, KEY("alpha"), loader, &ctx, -1, buf, sizeof buf, &n, &v, NULL),
      LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_or_load_copy(c, "", 0, loader, &ctx, 0, buf, sizeof buf, &n, &v, NULL),
               LARDER_EMPTY_KEY);
  CHECK_STATUS(larder_get_or_load_copy(c, KEY("eta"), NULL, NULL, 0, buf, sizeof buf, &n, &v, NULL),
               LARDER_INVALID_ARGUMENT); /* no loader anywhere */
  CHECK(ctx.calls == 4);
  larder_cache_destroy(c);
}

static void test_cache_loader_and_refresh(void) {
  struct load_ctx ctx;
  larder_options *o = larder_options_new();
  larder_cache *c = NULL;
  larder_value v = LARDER_VALUE_INIT;
  larder_stats stats;
  int i;
  memset(&ctx, 0, sizeof ctx);
  larder_options_set_capacity_bytes(o, 1 << 20);
  CHECK_STATUS(larder_options_set_loader(o, loader, &ctx), LARDER_OK);
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_OK);
  larder_options_free(o);
  ctx.cache = c;
  CHECK_STATUS(larder_get_or_load(c, KEY("k"), NULL, NULL, 0, &v, NULL), LARDER_OK);
  larder_value_release(&v);
  CHECK_STATUS(larder_refresh(c, KEY("k")), LARDER_OK);
  /* The refresh runs on the cache's pool: wait for it to land. */
  stats.struct_size = sizeof stats;
  for (i = 0; i < 5000; ++i) {
    struct timespec ms = {0, 1000000};
    larder_cache_stats(c, &stats);
    if (__atomic_load_n(&ctx.calls, __ATOMIC_SEQ_CST) == 2) break; /* the refresh ran */
    nanosleep(&ms, NULL);
  }
  CHECK(stats.refreshes_started == 1 && stats.loads == 1);
  larder_cache_destroy(c); /* joins the pool */
  CHECK(ctx.calls == 2);
}

/* ---- the asynchronous form ---- */

struct ready_ctx {
  int calls;
  larder_status status;
  char value[16];
  int source;
};

static void on_ready(void *user_data, larder_status status, larder_value *value,
                     const larder_fetch_info *info) {
  struct ready_ctx *r = (struct ready_ctx *)user_data;
  r->calls++;
  r->status = status;
  r->source = info->source;
  if (status == LARDER_OK && value->size < sizeof r->value) {
    memcpy(r->value, value->data, value->size);
    r->value[value->size] = 0;
  }
  larder_value_release(value);
}

static void test_async_lead_wait(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  int kind = -1;
  larder_lease *lease = NULL;
  larder_ticket *ticket = NULL, *ticket2 = NULL, *unused = NULL;
  larder_lease *unused_lease = NULL;
  larder_value v = LARDER_VALUE_INIT;
  larder_fetch_info info;
  struct ready_ctx ready;
  memset(&ready, 0, sizeof ready);
  info.struct_size = sizeof info;
  CHECK_STATUS(larder_fetch_begin(c, KEY("k"), &kind, &v, &info, &lease, &unused), LARDER_OK);
  CHECK(kind == LARDER_FETCH_LEAD && lease != NULL && unused == NULL);
  CHECK_STATUS(larder_fetch_begin(c, KEY("k"), &kind, &v, &info, &unused_lease, &ticket),
               LARDER_OK);
  CHECK(kind == LARDER_FETCH_WAIT && ticket != NULL);
  CHECK_STATUS(larder_fetch_begin(c, KEY("k"), &kind, &v, &info, &unused_lease, &ticket2),
               LARDER_OK);
  CHECK_STATUS(larder_ticket_on_ready(ticket, on_ready, &ready), LARDER_OK);
  CHECK(ready.calls == 0);
  /* A waiter with a short deadline gives up; the load goes on. */
  CHECK_STATUS(larder_ticket_wait(ticket2, 1000000, &v, &info), LARDER_TIMEOUT);
  CHECK_STATUS(larder_lease_complete_value(lease, "loaded", 6, 0, &v), LARDER_OK);
  CHECK(v.size == 6);
  larder_value_release(&v);
  CHECK(ready.calls == 1 && ready.status == LARDER_OK && strcmp(ready.value, "loaded") == 0);
  CHECK(ready.source == LARDER_SOURCE_JOINED);
  CHECK_STATUS(larder_ticket_wait(ticket2, 0, &v, &info), LARDER_OK);
  CHECK(info.source == LARDER_SOURCE_JOINED && v.size == 6);
  larder_value_release(&v);
  larder_ticket_free(ticket);
  larder_ticket_free(ticket2);
  /* Now a hit. */
  CHECK_STATUS(larder_fetch_begin(c, KEY("k"), &kind, &v, &info, &lease, &ticket), LARDER_OK);
  CHECK(kind == LARDER_FETCH_DONE && info.source == LARDER_SOURCE_HIT && v.size == 6);
  larder_value_release(&v);
  /* Abandon and error completions reach waiters. */
  CHECK_STATUS(larder_fetch_begin(c, KEY("a"), &kind, &v, NULL, &lease, &ticket), LARDER_OK);
  CHECK(kind == LARDER_FETCH_LEAD);
  CHECK_STATUS(larder_fetch_begin(c, KEY("a"), &kind, &v, NULL, &unused_lease, &ticket), LARDER_OK);
  larder_lease_abandon(lease);
  CHECK_STATUS(larder_ticket_wait(ticket, 0, &v, &info), LARDER_LOAD_FAILED);
  CHECK(strcmp(info.error, "load abandoned") == 0);
  larder_ticket_free(ticket);
  CHECK_STATUS(larder_fetch_begin(c, KEY("b"), &kind, &v, NULL, &lease, &ticket), LARDER_OK);
  CHECK_STATUS(larder_lease_complete_error(lease, "nope"), LARDER_LOAD_FAILED);
  CHECK_STATUS(larder_fetch_begin(c, KEY("c"), &kind, &v, NULL, &lease, &ticket), LARDER_OK);
  CHECK_STATUS(larder_lease_complete_not_found(lease), LARDER_NOT_FOUND);
  /* Bad arguments. */
  CHECK_STATUS(larder_fetch_begin(c, KEY("d"), NULL, NULL, NULL, &lease, &ticket),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_fetch_begin(c, KEY("d"), &kind, &v, NULL, NULL, &ticket),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_lease_complete_value(NULL, "v", 1, 0, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_lease_complete_not_found(NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_lease_complete_error(NULL, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_ticket_wait(NULL, 0, &v, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_ticket_on_ready(NULL, on_ready, NULL), LARDER_INVALID_ARGUMENT);
  larder_lease_abandon(NULL);
  larder_ticket_free(NULL);
  larder_cache_destroy(c);
}

/* ---- threads: a stampede through the C ABI ---- */

struct stampede {
  larder_cache *cache;
  int loader_calls;
  pthread_mutex_t mu;
  int ok;
};

static int slow_loader(void *user_data, const void *key, size_t key_size, larder_load_result *r) {
  struct stampede *s = (struct stampede *)user_data;
  struct timespec ts = {0, 50 * 1000 * 1000};
  pthread_mutex_lock(&s->mu);
  s->loader_calls++;
  pthread_mutex_unlock(&s->mu);
  nanosleep(&ts, NULL);
  return larder_load_result_set_value(r, key, key_size, 0);
}

static void *stampede_thread(void *arg) {
  struct stampede *s = (struct stampede *)arg;
  larder_value v = LARDER_VALUE_INIT;
  if (larder_get_or_load(s->cache, KEY("hot"), slow_loader, s, 0, &v, NULL) == LARDER_OK &&
      v.size == 3) {
    pthread_mutex_lock(&s->mu);
    s->ok++;
    pthread_mutex_unlock(&s->mu);
  }
  larder_value_release(&v);
  return NULL;
}

static void test_stampede_through_the_c_abi(void) {
  enum { kThreads = 32 };
  pthread_t threads[kThreads];
  struct stampede s;
  int i;
  s.cache = new_cache(1 << 20, 0, 0);
  s.loader_calls = 0;
  s.ok = 0;
  pthread_mutex_init(&s.mu, NULL);
  for (i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, stampede_thread, &s);
  for (i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  CHECK(s.ok == kThreads);
  /* Threads that started after the load finished got hits: still one load. */
  CHECK(s.loader_calls == 1);
  pthread_mutex_destroy(&s.mu);
  larder_cache_destroy(s.cache);
}

/* ---- write-through and write-behind ---- */

struct store {
  pthread_mutex_t mu;
  char last_key[32];
  char last_value[32];
  int writes;
  int fail;
};

static int store_write(void *user_data, const void *key, size_t key_size, const void *value,
                       size_t value_size, int is_delete, char *error, size_t error_size) {
  struct store *s = (struct store *)user_data;
  if (s->fail) {
    snprintf(error, error_size, "store is read-only");
    return 1;
  }
  pthread_mutex_lock(&s->mu);
  s->writes++;
  memcpy(s->last_key, key, key_size < 31 ? key_size : 31);
  s->last_key[key_size < 31 ? key_size : 31] = 0;
  if (is_delete) {
    strcpy(s->last_value, "<deleted>");
  } else {
    memcpy(s->last_value, value, value_size < 31 ? value_size : 31);
    s->last_value[value_size < 31 ? value_size : 31] = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static int store_batch(void *user_data, const larder_queued_write *writes, size_t count,
                       char *error, size_t error_size) {
  size_t i;
  for (i = 0; i < count; ++i) {
    if (store_write(user_data, writes[i].key, writes[i].key_size, writes[i].value,
                    writes[i].value_size, writes[i].is_delete, error, error_size) != 0) {
      return 1;
    }
  }
  return 0;
}

static int dead_letters = 0;
static void on_dead_letter(void *user_data, const larder_queued_write *write, const char *error) {
  (void)user_data;
  (void)write;
  if (strcmp(error, "store is read-only") == 0)
    __atomic_fetch_add(&dead_letters, 1, __ATOMIC_SEQ_CST);
}

static void test_write_through(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  struct store s;
  char error[64] = "";
  char buf[32];
  size_t n;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  CHECK_STATUS(larder_write_through(c, KEY("k"), "v1", 2, 0, store_write, &s, error, sizeof error),
               LARDER_OK);
  CHECK(s.writes == 1 && strcmp(s.last_value, "v1") == 0);
  CHECK_STATUS(larder_get(c, KEY("k"), buf, sizeof buf, &n), LARDER_OK);
  s.fail = 1;
  CHECK_STATUS(larder_write_through(c, KEY("k"), "v2", 2, 0, store_write, &s, error, sizeof error),
               LARDER_WRITE_FAILED);
  CHECK(strcmp(error, "store is read-only") == 0);
  CHECK_STATUS(larder_get(c, KEY("k"), buf, sizeof buf, &n), LARDER_OK);
  CHECK(n == 2 && memcmp(buf, "v1", 2) == 0); /* unchanged */
  s.fail = 0;
  CHECK_STATUS(larder_delete_through(c, KEY("k"), store_write, &s, NULL, 0), LARDER_OK);
  CHECK_STATUS(larder_contains(c, KEY("k")), LARDER_NOT_FOUND);
  CHECK(strcmp(s.last_value, "<deleted>") == 0);
  CHECK_STATUS(larder_write_through(c, KEY("k"), "v", 1, 0, NULL, &s, NULL, 0),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_write_through(NULL, KEY("k"), "v", 1, 0, store_write, &s, NULL, 0),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_write_through(c, "", 0, "v", 1, 0, store_write, &s, NULL, 0),
               LARDER_EMPTY_KEY);
  CHECK_STATUS(larder_delete_through(c, KEY("k"), NULL, NULL, NULL, 0), LARDER_INVALID_ARGUMENT);
  pthread_mutex_destroy(&s.mu);
  larder_cache_destroy(c);
}

static void test_write_behind(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  struct store s;
  larder_write_behind_config config;
  larder_write_behind *wb = NULL;
  larder_write_behind_stats stats;
  char buf[32];
  size_t n;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  CHECK_STATUS(larder_write_behind_config_init(&config), LARDER_OK);
  CHECK_STATUS(larder_write_behind_open(c, &config, &wb), LARDER_INVALID_ARGUMENT); /* no writer */
  CHECK(wb == NULL);
  config.writer = store_batch;
  config.writer_data = &s;
  config.dead_letter = on_dead_letter;
  config.max_delay_ns = 3600LL * 1000000000LL;
  config.max_attempts = 2;
  config.retry_base_ns = 1000000;
  config.retry_max_ns = 2000000;
  CHECK_STATUS(larder_write_behind_open(c, &config, &wb), LARDER_OK);
  CHECK_STATUS(larder_write_behind_put(wb, KEY("a"), "1", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_write_behind_put(wb, KEY("a"), "2", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_get(c, KEY("a"), buf, sizeof buf, &n), LARDER_OK); /* the cache at once */
  CHECK(s.writes == 0);
  CHECK_STATUS(larder_write_behind_flush(wb, 0), LARDER_OK);
  CHECK(s.writes == 1 && strcmp(s.last_value, "2") == 0); /* coalesced */
  CHECK_STATUS(larder_write_behind_delete(wb, KEY("a")), LARDER_OK);
  CHECK_STATUS(larder_write_behind_flush(wb, 0), LARDER_OK);
  CHECK(strcmp(s.last_value, "<deleted>") == 0);
  s.fail = 1;
  CHECK_STATUS(larder_write_behind_put(wb, KEY("b"), "x", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_write_behind_flush(wb, 0), LARDER_OK);
  CHECK(__atomic_load_n(&dead_letters, __ATOMIC_SEQ_CST) == 1);
  stats.struct_size = sizeof stats;
  CHECK_STATUS(larder_write_behind_stats_get(wb, &stats), LARDER_OK);
  CHECK(stats.writes == 4 && stats.coalesced == 1 && stats.dead_letters == 1);
  CHECK(stats.retries == 1 && stats.queue_depth == 0);
  CHECK_STATUS(larder_write_behind_close(wb, 0), LARDER_OK);
  CHECK_STATUS(larder_write_behind_put(wb, KEY("c"), "x", 1, 0), LARDER_CLOSED);
  /* Bad arguments. */
  CHECK_STATUS(larder_write_behind_put(NULL, KEY("c"), "x", 1, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_write_behind_put(wb, NULL, 3, "x", 1, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_write_behind_flush(NULL, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_write_behind_stats_get(wb, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_write_behind_config_init(NULL), LARDER_INVALID_ARGUMENT);
  larder_write_behind_destroy(wb);
  CHECK_STATUS(larder_write_behind_open(c, NULL, &wb), LARDER_INVALID_ARGUMENT);
  CHECK(wb == NULL);
  larder_write_behind_destroy(NULL);
  pthread_mutex_destroy(&s.mu);
  larder_cache_destroy(c);
}

/* ---- the argument rules at the top of larder.h ---- */

/* larder_put_charged: the charge is the caller's, and must be > 0. */
static void test_put_charged(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  larder_stats stats;
  stats.struct_size = sizeof stats;
  /* 0 is no charge at all, not "the default": larder_put computes one. */
  CHECK_STATUS(larder_put_charged(c, KEY("k"), "v", 1, 0, 0), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_contains(c, KEY("k")), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_put_charged(c, KEY("k"), "v", 1, 0, 1000), LARDER_OK);
  CHECK_STATUS(larder_cache_stats(c, &stats), LARDER_OK);
  CHECK(stats.entries == 1 && stats.bytes == 1000);
  /* The given charge replaces the computed one, also toward the bound. */
  CHECK_STATUS(larder_put_charged(c, KEY("k"), "v", 1, 0, (1u << 20) + 1), LARDER_VALUE_TOO_LARGE);
  CHECK_STATUS(larder_contains(c, KEY("k")), LARDER_NOT_FOUND); /* no older value left */
  CHECK_STATUS(larder_put_charged(c, KEY("k"), "v", 1, 0, (uint64_t)1 << 32),
               LARDER_VALUE_TOO_LARGE);
  CHECK_STATUS(larder_put_charged(NULL, KEY("k"), "v", 1, 0, 1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_put_charged(c, KEY("k"), "v", 1, -1, 1), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_put_charged(c, "", 0, "v", 1, 0, 1), LARDER_EMPTY_KEY);
  /* larder_put is the computed charge: key + value + the per-entry overhead. */
  CHECK_STATUS(larder_put(c, KEY("k"), "v", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_cache_stats(c, &stats), LARDER_OK);
  CHECK(stats.entries == 1 && stats.bytes > 2 && stats.bytes < 1000);
  larder_cache_destroy(c);
}

/* Output pointers are required unless the function says "may be NULL";
 * a refused call does nothing. */
static void test_output_pointers(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  struct load_ctx ctx;
  larder_value v = LARDER_VALUE_INIT;
  larder_fetch_info info;
  int kind = -1;
  larder_lease *lease = NULL, *lease2 = NULL;
  larder_ticket *ticket = NULL;
  void *p = &p;
  size_t n = 99;
  memset(&ctx, 0, sizeof ctx);
  ctx.cache = c;
  info.struct_size = sizeof info;
  /* larder_get_or_load: out is required, and a refused call loads nothing. */
  CHECK_STATUS(larder_get_or_load(c, KEY("k"), loader, &ctx, 0, NULL, &info),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_get_or_load(c, KEY("k"), loader, &ctx, 0, NULL, NULL),
               LARDER_INVALID_ARGUMENT);
  CHECK(ctx.calls == 0);
  CHECK_STATUS(larder_contains(c, KEY("k")), LARDER_NOT_FOUND);
  /* info may be NULL. */
  CHECK_STATUS(larder_get_or_load(c, KEY("k"), loader, &ctx, 0, &v, NULL), LARDER_OK);
  CHECK(ctx.calls == 1 && v.size == 1 && memcmp(v.data, "k", 1) == 0);
  larder_value_release(&v);
  /* larder_fetch_begin: out is required too (a DONE answer is delivered
   * there), and a refused call starts no flight. */
  CHECK_STATUS(larder_fetch_begin(c, KEY("f"), &kind, NULL, &info, &lease, &ticket),
               LARDER_INVALID_ARGUMENT);
  CHECK(kind == LARDER_FETCH_DONE && lease == NULL && ticket == NULL);
  CHECK_STATUS(larder_fetch_begin(c, KEY("f"), &kind, &v, NULL, &lease, &ticket), LARDER_OK);
  CHECK(kind == LARDER_FETCH_LEAD && lease != NULL);
  CHECK_STATUS(larder_fetch_begin(c, KEY("f"), &kind, &v, NULL, &lease2, &ticket), LARDER_OK);
  CHECK(kind == LARDER_FETCH_WAIT && ticket != NULL && lease2 == NULL);
  /* larder_ticket_wait: out is required; the ticket stays usable. */
  CHECK_STATUS(larder_ticket_wait(ticket, 1000000, NULL, &info), LARDER_INVALID_ARGUMENT);
  /* larder_lease_complete_value: out may be NULL (the leader has the value). */
  CHECK_STATUS(larder_lease_complete_value(lease, "F", 1, 0, NULL), LARDER_OK);
  CHECK_STATUS(larder_ticket_wait(ticket, 5000000000LL, &v, NULL), LARDER_OK);
  CHECK(v.size == 1 && memcmp(v.data, "F", 1) == 0);
  larder_value_release(&v);
  larder_ticket_free(ticket);
  /* Every argument error of larder_fetch_begin answers DONE, with no lease
   * and no ticket. */
  kind = -1;
  lease = (larder_lease *)&kind;
  ticket = (larder_ticket *)&kind;
  CHECK_STATUS(larder_fetch_begin(c, NULL, 3, &kind, &v, &info, &lease, &ticket),
               LARDER_INVALID_ARGUMENT);
  CHECK(kind == LARDER_FETCH_DONE && lease == NULL && ticket == NULL);
  kind = -1;
  CHECK_STATUS(larder_fetch_begin(c, "", 0, &kind, &v, &info, &lease, &ticket), LARDER_EMPTY_KEY);
  CHECK(kind == LARDER_FETCH_DONE && lease == NULL && ticket == NULL);
  /* larder_lease_complete_error: message may be NULL. */
  CHECK_STATUS(larder_fetch_begin(c, KEY("e"), &kind, &v, &info, &lease, &ticket), LARDER_OK);
  CHECK(kind == LARDER_FETCH_LEAD);
  CHECK_STATUS(larder_lease_complete_error(lease, NULL), LARDER_LOAD_FAILED);
  /* larder_get_alloc: on any status but LARDER_OK, *value is NULL and
   * *value_size 0. */
  CHECK_STATUS(larder_get_alloc(c, KEY("absent"), &p, &n), LARDER_NOT_FOUND);
  CHECK(p == NULL && n == 0);
  p = &p;
  n = 99;
  CHECK_STATUS(larder_get_alloc(c, "", 0, &p, &n), LARDER_EMPTY_KEY);
  CHECK(p == NULL && n == 0);
  /* larder_invalidate_prefix: removed may be NULL. */
  CHECK_STATUS(larder_invalidate_prefix(c, KEY("k"), NULL), LARDER_OK);
  CHECK_STATUS(larder_contains(c, KEY("k")), LARDER_NOT_FOUND);
  /* A closed cache: the same rules, LARDER_CLOSED for valid calls. */
  CHECK_STATUS(larder_cache_close(c), LARDER_OK);
  p = &p;
  n = 99;
  CHECK_STATUS(larder_get_alloc(c, KEY("k"), &p, &n), LARDER_CLOSED);
  CHECK(p == NULL && n == 0);
  kind = -1;
  lease = (larder_lease *)&kind;
  ticket = (larder_ticket *)&kind;
  CHECK_STATUS(larder_fetch_begin(c, KEY("k"), &kind, &v, &info, &lease, &ticket), LARDER_CLOSED);
  CHECK(kind == LARDER_FETCH_DONE && lease == NULL && ticket == NULL);
  CHECK_STATUS(larder_get_or_load(c, KEY("k"), loader, &ctx, 0, &v, &info), LARDER_CLOSED);
  CHECK(ctx.calls == 1 && v.internal_ == NULL);
  larder_cache_destroy(c);
}

/* The write side's output pointers and buffers. */
static void test_write_output_pointers(void) {
  larder_cache *c = new_cache(1 << 20, 0, 1);
  struct store s;
  larder_write_behind_config config;
  larder_write_behind *wb = (larder_write_behind *)&wb;
  larder_write_behind_stats stats;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.mu, NULL);
  /* The error buffer may be NULL, with error_size 0 (not with a size). */
  CHECK_STATUS(larder_write_through(c, KEY("k"), "v", 1, 0, store_write, &s, NULL, 0), LARDER_OK);
  CHECK_STATUS(larder_write_through(c, KEY("k"), "v", 1, 0, store_write, &s, NULL, 8),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_delete_through(c, KEY("k"), store_write, &s, NULL, 8),
               LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_contains(c, KEY("k")), LARDER_OK); /* the refused delete did nothing */
  s.fail = 1;
  CHECK_STATUS(larder_delete_through(c, KEY("k"), store_write, &s, NULL, 0), LARDER_WRITE_FAILED);
  s.fail = 0;
  CHECK(s.writes == 1);
  /* larder_write_behind_open: out is required; on failure *out is NULL. */
  CHECK_STATUS(larder_write_behind_config_init(&config), LARDER_OK);
  config.writer = store_batch;
  config.writer_data = &s;
  CHECK_STATUS(larder_write_behind_open(c, &config, NULL), LARDER_INVALID_ARGUMENT);
  config.struct_size = sizeof config - 1;
  CHECK_STATUS(larder_write_behind_open(c, &config, &wb), LARDER_INVALID_ARGUMENT);
  CHECK(wb == NULL);
  config.struct_size = sizeof config;
  CHECK_STATUS(larder_write_behind_open(c, &config, &wb), LARDER_OK);
  /* Write-behind stats: a struct too small for queue_depth is refused. */
  stats.struct_size = offsetof(larder_write_behind_stats, queue_depth);
  CHECK_STATUS(larder_write_behind_stats_get(wb, &stats), LARDER_INVALID_ARGUMENT);
  stats.struct_size = sizeof stats;
  CHECK_STATUS(larder_write_behind_stats_get(wb, &stats), LARDER_OK);
  larder_write_behind_destroy(wb);
  pthread_mutex_destroy(&s.mu);
  larder_cache_destroy(c);
}

/* Read-your-writes: until a write-behind write is delivered, reads that find
 * no live entry answer from the queue, past the TTL and past invalidation. */
static void test_write_behind_read_your_writes(void) {
  larder_options *o = larder_options_new();
  larder_cache *c = NULL;
  struct store s;
  struct load_ctx ctx;
  larder_write_behind_config config;
  larder_write_behind *wb = NULL;
  larder_value v = LARDER_VALUE_INIT;
  larder_fetch_info info;
  char buf[32];
  size_t n;
  void *p;
  memset(&s, 0, sizeof s);
  memset(&ctx, 0, sizeof ctx);
  pthread_mutex_init(&s.mu, NULL);
  info.struct_size = sizeof info;
  larder_options_set_capacity_bytes(o, 1 << 20);
  larder_options_set_stripes(o, 1);
  CHECK_STATUS(larder_options_set_clock(o, fake_clock, NULL), LARDER_OK);
  CHECK_STATUS(larder_cache_create(o, &c), LARDER_OK);
  larder_options_free(o);
  ctx.cache = c;
  CHECK_STATUS(larder_write_behind_config_init(&config), LARDER_OK);
  config.writer = store_batch;
  config.writer_data = &s;
  config.max_delay_ns = 3600LL * 1000000000LL; /* nothing is sent before a flush */
  CHECK_STATUS(larder_write_behind_open(c, &config, &wb), LARDER_OK);
  CHECK_STATUS(larder_write_behind_put(wb, KEY("ttl"), "pending", 7, 1000000000LL), LARDER_OK);
  CHECK_STATUS(larder_write_behind_put(wb, KEY("inv"), "queued", 6, 0), LARDER_OK);
  CHECK_STATUS(larder_write_behind_put(wb, KEY("del"), "x", 1, 0), LARDER_OK);
  CHECK_STATUS(larder_write_behind_delete(wb, KEY("del")), LARDER_OK);
  /* Past the TTL: the cached copy has expired, the queued write is served. */
  fake_now += 2000000000LL;
  CHECK_STATUS(larder_get(c, KEY("ttl"), buf, sizeof buf, &n), LARDER_OK);
  CHECK(n == 7 && memcmp(buf, "pending", 7) == 0);
  CHECK_STATUS(larder_contains(c, KEY("ttl")), LARDER_OK);
  CHECK_STATUS(larder_get_pinned(c, KEY("ttl"), &v), LARDER_OK);
  CHECK(v.size == 7 && memcmp(v.data, "pending", 7) == 0);
  larder_value_release(&v);
  CHECK_STATUS(larder_get_or_load(c, KEY("ttl"), loader, &ctx, 0, &v, &info), LARDER_OK);
  CHECK(v.size == 7 && info.source == LARDER_SOURCE_HIT && ctx.calls == 0);
  larder_value_release(&v);
  /* Past an invalidate (and a clear): the cached copy is gone, the queued
   * write is not. */
  CHECK_STATUS(larder_invalidate(c, KEY("inv")), LARDER_OK);
  CHECK_STATUS(larder_get_alloc(c, KEY("inv"), &p, &n), LARDER_OK);
  CHECK(n == 6 && memcmp(p, "queued", 6) == 0);
  larder_free(p);
  CHECK_STATUS(larder_clear(c), LARDER_OK);
  CHECK_STATUS(larder_get(c, KEY("inv"), buf, sizeof buf, &n), LARDER_OK);
  CHECK_STATUS(larder_get_or_load(c, KEY("inv"), loader, &ctx, 0, &v, &info), LARDER_OK);
  CHECK(v.size == 6 && ctx.calls == 0);
  larder_value_release(&v);
  /* A pending delete is a miss that never loads. */
  CHECK_STATUS(larder_get(c, KEY("del"), buf, sizeof buf, &n), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_contains(c, KEY("del")), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_get_or_load(c, KEY("del"), loader, &ctx, 0, &v, &info), LARDER_NOT_FOUND);
  CHECK(ctx.calls == 0);
  /* A live cached entry wins over the queue. */
  CHECK_STATUS(larder_put(c, KEY("inv"), "direct", 6, 0), LARDER_OK);
  CHECK_STATUS(larder_get(c, KEY("inv"), buf, sizeof buf, &n), LARDER_OK);
  CHECK(n == 6 && memcmp(buf, "direct", 6) == 0);
  CHECK_STATUS(larder_invalidate(c, KEY("inv")), LARDER_OK);
  /* Delivered: the cache alone answers. */
  CHECK_STATUS(larder_write_behind_flush(wb, 0), LARDER_OK);
  CHECK(s.writes == 3);
  CHECK_STATUS(larder_get(c, KEY("ttl"), buf, sizeof buf, &n), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_get(c, KEY("inv"), buf, sizeof buf, &n), LARDER_NOT_FOUND);
  CHECK_STATUS(larder_get_or_load(c, KEY("del"), loader, &ctx, 0, &v, &info), LARDER_OK);
  CHECK(ctx.calls == 1 && info.source == LARDER_SOURCE_LOADED);
  larder_value_release(&v);
  larder_write_behind_destroy(wb);
  pthread_mutex_destroy(&s.mu);
  larder_cache_destroy(c);
}

/* ---- runner ---- */

struct test_case {
  const char *name;
  void (*fn)(void);
};

int main(void) {
  static const struct test_case tests[] = {
      {"version_and_strerror", test_version_and_strerror},
      {"options_errors", test_options_errors},
      {"put_get_forms", test_put_get_forms},
      {"bad_arguments_everywhere", test_bad_arguments_everywhere},
      {"closed_cache", test_closed_cache},
      {"prefix_clear_stats_listener", test_prefix_clear_stats_listener},
      {"ttl_with_injected_clock", test_ttl_with_injected_clock},
      {"read_touch_snapshot_refresh", test_read_touch_snapshot_refresh},
      {"get_or_load", test_get_or_load},
      {"get_or_load_copy", test_get_or_load_copy},
      {"count_and_snapshot", test_count_and_snapshot},
      {"cache_loader_and_refresh", test_cache_loader_and_refresh},
      {"async_lead_wait", test_async_lead_wait},
      {"stampede_through_the_c_abi", test_stampede_through_the_c_abi},
      {"write_through", test_write_through},
      {"write_behind", test_write_behind},
      {"put_charged", test_put_charged},
      {"output_pointers", test_output_pointers},
      {"write_output_pointers", test_write_output_pointers},
      {"write_behind_read_your_writes", test_write_behind_read_your_writes},
  };
  size_t i;
  int passed = 0, failed = 0;
  for (i = 0; i < sizeof tests / sizeof tests[0]; ++i) {
    g_test_failed = 0;
    tests[i].fn();
    printf("[%s] %s\n", g_test_failed ? "FAIL" : " ok ", tests[i].name);
    if (g_test_failed) {
      ++failed;
    } else {
      ++passed;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && g_failed_checks == 0 ? 0 : 1;
}
