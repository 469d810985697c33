/* What a hit through larder_get_or_load pays for its pin (issue 12, item 2):
 * the pinned form (larder_get_or_load, then larder_value_release) against the
 * copy-out form (larder_get_or_load_copy), beside larder_get as the baseline,
 * in one process. 100-byte values under 20-byte keys, every key resident.
 * The three calls take turns in rounds, in alternating order (the median
 * round is reported), with THREADS threads reading either all KEYS keys
 * uniformly ("spread": memory-bound, so noisy on a shared machine) or the same
 * HOT keys ("hot", where a pin's reference count moves between cores).
 *   capi_get_or_load [threads] [gets per thread per round]
 * Prints one line per workload and call, and a JSON line each. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "larder.h"

#define KEYS 100000
#define HOT 16
#define ROUNDS 5
#define ORDER (1 << 20)

enum call { GET, PINNED, COPY, CALLS };
static const char *const kCallNames[CALLS] = {"get", "get_or_load+release", "get_or_load_copy"};

static char keys[KEYS][20];
static uint32_t order[ORDER];
static larder_cache *cache;

struct job {
  pthread_t thread;
  enum call call;
  uint32_t key_mask; /* 0: spread over KEYS; else index & key_mask over the hot keys */
  long gets;
  uint64_t bytes;
  int failures;
};

static int never_loads(void *user_data, const void *key, size_t key_size, larder_load_result *r) {
  (void)user_data, (void)key, (void)key_size;
  return larder_load_result_set_error(r, "every key is resident: a load is a bug");
}

static void *reader(void *arg) {
  struct job *j = (struct job *)arg;
  char out[128];
  larder_value v = LARDER_VALUE_INIT;
  size_t n = 0;
  long i;
  for (i = 0; i < j->gets; ++i) {
    uint32_t pick = order[i & (ORDER - 1)];
    const char *k = keys[j->key_mask != 0 ? pick & j->key_mask : pick];
    larder_status s;
    switch (j->call) {
      case GET:
        s = larder_get(cache, k, 19, out, sizeof out, &n);
        break;
      case PINNED:
        /* Copied out as the other two calls do (the bytes are what a caller
         * wants, and reading them is most of a miss's cost). */
        s = larder_get_or_load(cache, k, 19, never_loads, NULL, 0, &v, NULL);
        n = v.size;
        if (s == LARDER_OK && n <= sizeof out) memcpy(out, v.data, n);
        larder_value_release(&v);
        break;
      default:
        s = larder_get_or_load_copy(cache, k, 19, never_loads, NULL, 0, out, sizeof out, &n, &v,
                                    NULL);
        break;
    }
    if (s != LARDER_OK) ++j->failures;
    j->bytes += n;
  }
  return NULL;
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Nanoseconds per get per thread for one round of one call. */
static double round_ns(enum call call, int threads, uint32_t key_mask, long gets) {
  struct job jobs[64];
  double start, elapsed;
  int t;
  for (t = 0; t < threads; ++t) {
    memset(&jobs[t], 0, sizeof jobs[t]);
    jobs[t].call = call;
    jobs[t].key_mask = key_mask;
    jobs[t].gets = gets;
  }
  start = now_ns();
  for (t = 0; t < threads; ++t) pthread_create(&jobs[t].thread, NULL, reader, &jobs[t]);
  for (t = 0; t < threads; ++t) pthread_join(jobs[t].thread, NULL);
  elapsed = now_ns() - start;
  for (t = 0; t < threads; ++t) {
    if (jobs[t].failures != 0 || jobs[t].bytes != (uint64_t)gets * 100) {
      fprintf(stderr, "%s: not every get hit\n", kCallNames[call]);
      exit(1);
    }
  }
  return elapsed / (double)gets;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  long gets = argc > 2 ? atol(argv[2]) : 2000000;
  char value[100];
  uint64_t x = 88172645463325252ull;
  larder_options *o;
  long i;
  int w, r, c;
  if (threads < 1 || threads > 64 || gets < 1) {
    fprintf(stderr, "usage: capi_get_or_load [threads 1-64] [gets per thread per round]\n");
    return 2;
  }
  for (i = 0; i < 100; ++i) value[i] = (char)('a' + i % 26);
  o = larder_options_new();
  larder_options_set_capacity_bytes(o, 256u << 20);
  if (larder_cache_create(o, &cache) != LARDER_OK) return 1;
  larder_options_free(o);
  for (i = 0; i < KEYS; ++i) {
    snprintf(keys[i], sizeof keys[i], "key:%015ld", i);
    larder_put(cache, keys[i], 19, value, sizeof value, 0);
  }
  for (i = 0; i < ORDER; ++i) { /* xorshift, made before timing */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    order[i] = (uint32_t)(x % KEYS);
  }
  for (w = 0; w < 2; ++w) {
    const char *workload = w == 0 ? "spread" : "hot";
    uint32_t mask = w == 0 ? 0 : HOT - 1;
    double ns[CALLS][ROUNDS], median[CALLS];
    for (r = 0; r < ROUNDS; ++r) {
      for (c = 0; c < CALLS; ++c) { /* odd rounds run the calls in reverse order */
        enum call call = (enum call)(r % 2 == 0 ? c : CALLS - 1 - c);
        ns[call][r] = round_ns(call, threads, mask, gets);
      }
    }
    for (c = 0; c < CALLS; ++c) {
      qsort(ns[c], ROUNDS, sizeof(double), by_value);
      median[c] = ns[c][ROUNDS / 2];
    }
    for (c = 0; c < CALLS; ++c) {
      printf("%-6s %d thread(s) %-20s %7.1f ns/get  %.2fx get's time\n", workload, threads,
             kCallNames[c], median[c], median[c] / median[GET]);
      printf("{\"workload\":\"%s\",\"threads\":%d,\"call\":\"%s\",\"ns_per_get\":%.1f}\n", workload,
             threads, kCallNames[c], median[c]);
    }
  }
  larder_cache_destroy(cache);
  return 0;
}
