/* The Redis second tier through the C ABI (larder_tier_*), compiled as C99.
 * Run by with_redis (tests/redis/with_redis.cc), which starts a private
 * redis-server and passes its port in LARDER_TEST_REDIS_PORT; without it the
 * test refuses to run rather than talk to some other Redis. Prints
 * "N passed, N failed" and exits non-zero on any failure. */
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime under -std=c99 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "larder.h"

static int g_port = 0;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

static int g_loads = 0;
static int loader(void *user_data, const void *key, size_t key_size, larder_load_result *result) {
  (void)key;
  (void)key_size;
  ++g_loads;
  return larder_load_result_set_value(result, user_data, strlen((const char *)user_data), 0);
}

static larder_options *l1_options(const char *loader_value) {
  larder_options *o = larder_options_new();
  CHECK(o != NULL);
  CHECK_STATUS(larder_options_set_capacity_bytes(o, 1u << 20), LARDER_OK);
  if (loader_value != NULL) {
    CHECK_STATUS(larder_options_set_loader(o, loader, (void *)loader_value), LARDER_OK);
  }
  return o;
}

static void quick_config(larder_tier_config *config) {
  CHECK_STATUS(larder_tier_config_init(config), LARDER_OK);
  config->port = g_port;
  config->command_timeout_ns = 100000000; /* 100 ms */
  config->health_interval_ns = 20000000;  /* 20 ms */
  config->max_staleness_ns = 400000000;   /* 400 ms */
}

static larder_tier *new_tier(const char *loader_value) {
  larder_options *o = l1_options(loader_value);
  larder_tier_config config;
  larder_tier *t = NULL;
  char why[256];
  quick_config(&config);
  CHECK_STATUS(larder_tier_create(o, &config, &t, why, sizeof why), LARDER_OK);
  if (t == NULL) fprintf(stderr, "larder_tier_create: %s\n", why);
  larder_options_free(o);
  return t;
}

/* The value of key as a string in buf ("<status>" when not LARDER_OK). */
static const char *get(larder_tier *t, const char *key, char *buf, size_t size, int *source) {
  larder_value v = LARDER_VALUE_INIT;
  larder_fetch_info info;
  larder_status s;
  info.struct_size = sizeof info;
  s = larder_tier_get(t, KEY(key), NULL, NULL, 0, &v, &info);
  if (source != NULL) *source = info.source;
  if (s != LARDER_OK) {
    snprintf(buf, size, "<%s>", larder_strerror(s));
    return buf;
  }
  snprintf(buf, size, "%.*s", (int)v.size, (const char *)v.data);
  larder_value_release(&v);
  return buf;
}

/* Reads key until it is `want` (at least once, however late this thread runs),
 * for up to 5 s. Returns whether it was. */
static int eventually_value(larder_tier *t, const char *key, const char *want) {
  double give_up = now_seconds() + 5.0;
  char buf[64];
  for (;;) {
    if (strcmp(get(t, key, buf, sizeof buf, NULL), want) == 0) return 1;
    if (now_seconds() > give_up) return 0;
    sleep_ms(1);
  }
}

/* The staleness bound: a read that starts max_staleness (400 ms here) plus a
 * coarse clock tick after a write returned sees it, whatever the scheduling.
 * Waits until then and reads. A wrong value from a cache (L1, or Redis, which
 * holds the write) breaks the bound; a read whose Redis call failed (on a
 * loaded machine it can time out, and the loader answers) is tried again,
 * for up to 5 s. */
static int value_past_bound(larder_tier *t, const char *key, const char *want, double written) {
  const double until = written + 0.43;
  const double give_up = until + 5.0;
  char buf[64];
  double now;
  int source = LARDER_SOURCE_NONE;
  while ((now = now_seconds()) < until) sleep_ms((long)((until - now) * 1000.0) + 1);
  for (;;) {
    if (strcmp(get(t, key, buf, sizeof buf, &source), want) == 0) return 1;
    if (source == LARDER_SOURCE_HIT || source == LARDER_SOURCE_STALE) return 0;
    if (now_seconds() > give_up) return 0;
    sleep_ms(1);
  }
}

/* ---- tests ---- */

static void test_config_defaults_and_bad_arguments(void) {
  larder_tier_config config;
  larder_options *o = l1_options(NULL);
  larder_tier *t = (larder_tier *)&config; /* must be reset to NULL */
  char why[128];
  CHECK_STATUS(larder_tier_config_init(NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_tier_config_init(&config), LARDER_OK);
  CHECK(config.struct_size == sizeof config);
  CHECK(strcmp(config.host, "127.0.0.1") == 0 && config.port == 6379);
  CHECK(config.tracking == LARDER_TRACKING_DEFAULT);
  CHECK(config.write_mode == LARDER_TIER_CACHE_ASIDE);
  CHECK(config.max_staleness_ns == 1000000000 && config.command_timeout_ns == 250000000);
  CHECK(strcmp(config.lock_prefix, "lock:") == 0 && config.stampede_lock == 0);
  quick_config(&config);
  CHECK_STATUS(larder_tier_create(o, &config, NULL, why, sizeof why), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_tier_create(o, NULL, &t, why, sizeof why), LARDER_INVALID_ARGUMENT);
  CHECK(t == NULL);
  CHECK_STATUS(larder_tier_create(NULL, &config, &t, why, sizeof why), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_tier_create(o, &config, &t, NULL, 8), LARDER_INVALID_ARGUMENT);
  config.struct_size = 8;
  CHECK_STATUS(larder_tier_create(o, &config, &t, why, sizeof why), LARDER_INVALID_ARGUMENT);
  quick_config(&config);
  config.max_staleness_ns = 1000; /* below health + 2 x command timeout */
  CHECK_STATUS(larder_tier_create(o, &config, &t, why, sizeof why), LARDER_INVALID_ARGUMENT);
  CHECK(strstr(why, "max_staleness") != NULL);
  quick_config(&config);
  config.write_mode = LARDER_TIER_WRITE_THROUGH; /* without store_writer */
  CHECK_STATUS(larder_tier_create(o, &config, &t, why, sizeof why), LARDER_INVALID_ARGUMENT);
  quick_config(&config);
  config.tracking = 7;
  CHECK_STATUS(larder_tier_create(o, &config, &t, why, sizeof why), LARDER_INVALID_ARGUMENT);
  CHECK(t == NULL);
  larder_options_free(o);
  larder_tier_destroy(NULL); /* a no-op */
  CHECK(strstr(larder_strerror(LARDER_UNAVAILABLE), "Redis") != NULL);
}

static void test_unreachable_redis_is_unavailable(void) {
  larder_options *o = l1_options(NULL);
  larder_tier_config config;
  larder_tier *t = NULL;
  char why[256] = "";
  quick_config(&config);
  config.port = 1; /* nothing listens on 127.0.0.1:1 */
  CHECK_STATUS(larder_tier_create(o, &config, &t, why, sizeof why), LARDER_UNAVAILABLE);
  CHECK(t == NULL);
  CHECK(strstr(why, "cannot connect to Redis at 127.0.0.1:1") != NULL);
  larder_options_free(o);
}

static void test_reads_go_l1_then_redis_then_the_loader(void) {
  larder_tier *t = new_tier("from-db");
  larder_tier_stats s;
  larder_stats l1;
  char buf[64];
  int source = -1;
  g_loads = 0;
  CHECK(strcmp(get(t, "user:1", buf, sizeof buf, &source), "from-db") == 0);
  CHECK(source == LARDER_SOURCE_LOADED);
  CHECK(strcmp(get(t, "user:1", buf, sizeof buf, &source), "from-db") == 0);
  CHECK(source == LARDER_SOURCE_HIT);
  CHECK(g_loads == 1);
  s.struct_size = sizeof s;
  CHECK_STATUS(larder_tier_stats_get(t, &s), LARDER_OK);
  CHECK(s.l2_misses == 1 && s.l2_hits == 0 && s.fills == 1 && s.loads == 1);
  CHECK(s.tracking_up == 1 && s.breaker_state == LARDER_BREAKER_CLOSED);
  l1.struct_size = sizeof l1;
  CHECK_STATUS(larder_tier_l1_stats(t, &l1), LARDER_OK);
  CHECK(l1.hits == 1);
  /* An older caller's smaller struct gets its prefix; too small is refused. */
  s.struct_size = offsetof(larder_tier_stats, l2_misses);
  s.l2_misses = 12345;
  CHECK_STATUS(larder_tier_stats_get(t, &s), LARDER_OK);
  CHECK(s.l2_hits == 0 && s.l2_misses == 12345);
  s.struct_size = 4;
  CHECK_STATUS(larder_tier_stats_get(t, &s), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_tier_get(t, KEY("k"), NULL, NULL, 0, NULL, NULL), LARDER_INVALID_ARGUMENT);
  CHECK_STATUS(larder_tier_get(NULL, KEY("k"), NULL, NULL, 0, NULL, NULL), LARDER_INVALID_ARGUMENT);
  larder_tier_destroy(t);
}

static void test_a_write_in_one_process_reaches_the_others(void) {
  larder_tier *a = new_tier("from-db");
  larder_tier *b = new_tier("from-db");
  char buf[64];
  double written;
  g_loads = 0;
  CHECK(strcmp(get(a, "k", buf, sizeof buf, NULL), "from-db") == 0);
  CHECK(strcmp(get(b, "k", buf, sizeof buf, NULL), "from-db") == 0);
  CHECK(g_loads == 1); /* b found it in Redis */
  /* cache-aside set: Redis now holds v2, a's L1 copy goes */
  CHECK_STATUS(larder_tier_set(b, KEY("k"), "v2", 2, 0, NULL, 0), LARDER_OK);
  written = now_seconds();
  CHECK(value_past_bound(a, "k", "v2", written));
  /* cache-aside invalidate after a "database write": everyone reloads */
  CHECK_STATUS(larder_tier_invalidate(b, KEY("k")), LARDER_OK);
  written = now_seconds();
  CHECK(value_past_bound(a, "k", "from-db", written));
  CHECK_STATUS(larder_tier_delete(a, KEY("k"), NULL, 0), LARDER_OK);
  CHECK_STATUS(larder_tier_flush(a, 0), LARDER_OK); /* nothing queued in cache-aside */
  CHECK_STATUS(larder_tier_invalidate(a, "", 0), LARDER_EMPTY_KEY);
  larder_tier_destroy(a);
  larder_tier_destroy(b);
}

static int g_store_fails = 0;
static char g_store_value[64];
static int store_writer(void *user_data, const void *key, size_t key_size, const void *value,
                        size_t value_size, int is_delete, char *error, size_t error_size) {
  (void)user_data;
  (void)key;
  (void)key_size;
  if (g_store_fails) {
    snprintf(error, error_size, "store is read-only");
    return 1;
  }
  snprintf(g_store_value, sizeof g_store_value, "%.*s", is_delete ? 6 : (int)value_size,
           is_delete ? "<gone>" : (const char *)value);
  return 0;
}

static void test_write_through(void) {
  larder_options *o = l1_options(NULL);
  larder_tier_config config;
  larder_tier *t = NULL, *other = new_tier(NULL);
  char why[256], buf[64];
  quick_config(&config);
  config.write_mode = LARDER_TIER_WRITE_THROUGH;
  config.store_writer = store_writer;
  CHECK_STATUS(larder_tier_create(o, &config, &t, why, sizeof why), LARDER_OK);
  larder_options_free(o);
  if (t == NULL) return;
  CHECK_STATUS(larder_tier_set(t, KEY("wt"), "v1", 2, 0, why, sizeof why), LARDER_OK);
  CHECK(strcmp(g_store_value, "v1") == 0);
  CHECK(strcmp(get(other, "wt", buf, sizeof buf, NULL), "v1") == 0);
  g_store_fails = 1;
  CHECK_STATUS(larder_tier_set(t, KEY("wt"), "v2", 2, 0, why, sizeof why), LARDER_WRITE_FAILED);
  CHECK(strcmp(why, "store is read-only") == 0);
  g_store_fails = 0;
  CHECK(strcmp(get(t, "wt", buf, sizeof buf, NULL), "v1") == 0);
  CHECK_STATUS(larder_tier_delete(t, KEY("wt"), why, sizeof why), LARDER_OK);
  CHECK(strcmp(g_store_value, "<gone>") == 0);
  CHECK(eventually_value(other, "wt", "<not found>"));
  larder_tier_destroy(t);
  larder_tier_destroy(other);
}

int main(void) {
  const char *port = getenv("LARDER_TEST_REDIS_PORT");
  struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {
      {"config_defaults_and_bad_arguments", test_config_defaults_and_bad_arguments},
      {"unreachable_redis_is_unavailable", test_unreachable_redis_is_unavailable},
      {"reads_go_l1_then_redis_then_the_loader", test_reads_go_l1_then_redis_then_the_loader},
      {"a_write_in_one_process_reaches_the_others", test_a_write_in_one_process_reaches_the_others},
      {"write_through", test_write_through},
  };
  size_t i;
  int passed = 0, failed = 0;
  if (port == NULL || atoi(port) <= 0) {
    fprintf(stderr, "run me under with_redis (LARDER_TEST_REDIS_PORT is not set)\n");
    return 2;
  }
  g_port = atoi(port);
  for (i = 0; i < sizeof tests / sizeof tests[0]; ++i) {
    g_test_failed = 0;
    tests[i].fn();
    printf("%s %s\n", g_test_failed ? "FAIL" : "ok  ", tests[i].name);
    if (g_test_failed) {
      ++failed;
    } else {
      ++passed;
    }
  }
  printf("%d passed, %d failed (%d failed checks)\n", passed, failed, g_failed_checks);
  return failed == 0 ? 0 : 1;
}
