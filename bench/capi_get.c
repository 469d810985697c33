/* The cost of a hit through the C ABI, the path Python and Node take:
 * larder_get of 100-byte values over 100,000 resident 20-byte keys, one
 * thread. Built three ways to show what the library's thread-local access
 * costs in each: linked with liblarder.a, linked with liblarder.so, and
 * dlopen()ed (as ctypes and Node load it: dynamic TLS).
 *   capi_get_static | capi_get_shared [gets]
 *   capi_get_dlopen PATH/liblarder.so [gets]
 * Prints "<mode> ns_per_get <value>" and a JSON line. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "larder.h"

#ifdef LARDER_CAPI_GET_DLOPEN
#include <dlfcn.h>
#define API(name) p_##name
static larder_options *(*p_larder_options_new)(void);
static larder_status (*p_larder_options_set_capacity_bytes)(larder_options *, uint64_t);
static void (*p_larder_options_free)(larder_options *);
static larder_status (*p_larder_cache_create)(const larder_options *, larder_cache **);
static larder_status (*p_larder_put)(larder_cache *, const void *, size_t, const void *, size_t,
                                     int64_t);
static larder_status (*p_larder_get)(larder_cache *, const void *, size_t, void *, size_t,
                                     size_t *);
static void (*p_larder_cache_destroy)(larder_cache *);
#define RESOLVE(name)                                      \
  do {                                                     \
    *(void **)(&p_##name) = dlsym(lib, #name);             \
    if (p_##name == NULL) {                                \
      fprintf(stderr, "dlsym %s: %s\n", #name, dlerror()); \
      return 1;                                            \
    }                                                      \
  } while (0)
#else
#define API(name) name
#endif

#define KEYS 100000

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  static char keys[KEYS][20];
  static uint32_t order[1 << 20];
  char value[100], out[128];
  larder_options *o;
  larder_cache *c = NULL;
  long gets = 20000000, i;
  size_t n = 0;
  uint64_t x = 88172645463325252ull, sink = 0;
  double start, elapsed;
  const char *mode;
  int arg = 1;
#ifdef LARDER_CAPI_GET_DLOPEN
  void *lib;
  if (argc < 2) return 2;
  lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  RESOLVE(larder_options_new);
  RESOLVE(larder_options_set_capacity_bytes);
  RESOLVE(larder_options_free);
  RESOLVE(larder_cache_create);
  RESOLVE(larder_put);
  RESOLVE(larder_get);
  RESOLVE(larder_cache_destroy);
  mode = "dlopen";
  arg = 2;
#elif defined(LARDER_CAPI_GET_SHARED)
  mode = "shared";
#else
  mode = "static";
#endif
  if (argc > arg) gets = atol(argv[arg]);
  for (i = 0; i < 100; ++i) value[i] = (char)('a' + i % 26);
  o = API(larder_options_new)();
  API(larder_options_set_capacity_bytes)(o, 64u << 20);
  if (API(larder_cache_create)(o, &c) != LARDER_OK) return 1;
  API(larder_options_free)(o);
  for (i = 0; i < KEYS; ++i) {
    snprintf(keys[i], sizeof keys[i], "key:%015ld", i);
    API(larder_put)(c, keys[i], 19, value, sizeof value, 0);
  }
  for (i = 0; i < (1 << 20); ++i) { /* xorshift: uniform over the keys, made before timing */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    order[i] = (uint32_t)(x % KEYS);
  }
  start = now_ns();
  for (i = 0; i < gets; ++i) {
    if (API(larder_get)(c, keys[order[i & ((1 << 20) - 1)]], 19, out, sizeof out, &n) ==
        LARDER_OK) {
      sink += (uint64_t)n;
    }
  }
  elapsed = now_ns() - start;
  API(larder_cache_destroy)(c);
  if (sink != (uint64_t)gets * 100) {
    fprintf(stderr, "not every get hit\n");
    return 1;
  }
  printf("%s ns_per_get %.1f\n", mode, elapsed / (double)gets);
  printf("{\"mode\":\"%s\",\"ns_per_get\":%.1f}\n", mode, elapsed / (double)gets);
  return 0;
}
