/* A host that already uses glibc's malloc dlopen()s liblarder.so (with its
 * private jemalloc inside) and uses it through dlsym alone. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "larder.h"

#define LOAD(name)                                       \
  name##_t name = (name##_t)dlsym(lib, #name);           \
  if (name == NULL) {                                    \
    fprintf(stderr, "dlsym %s: %s\n", #name, dlerror()); \
    return 1;                                            \
  }

typedef larder_options *(*larder_options_new_t)(void);
typedef larder_status (*larder_options_set_capacity_bytes_t)(larder_options *, uint64_t);
typedef void (*larder_options_free_t)(larder_options *);
typedef larder_status (*larder_cache_create_t)(const larder_options *, larder_cache **);
typedef larder_status (*larder_put_t)(larder_cache *, const void *, size_t, const void *, size_t,
                                      int64_t);
typedef larder_status (*larder_get_t)(larder_cache *, const void *, size_t, void *, size_t,
                                      size_t *);
typedef void (*larder_cache_destroy_t)(larder_cache *);

int main(int argc, char **argv) {
  void *host_block = malloc(1000); /* the host's allocator is in use before the load */
  void *lib;
  larder_options *o;
  larder_cache *c = NULL;
  int i, ok = 0;
  if (argc != 2) return 2;
  lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  {
    LOAD(larder_options_new)
    LOAD(larder_options_set_capacity_bytes)
    LOAD(larder_options_free)
    LOAD(larder_cache_create)
    LOAD(larder_put)
    LOAD(larder_get)
    LOAD(larder_cache_destroy)
    o = larder_options_new();
    larder_options_set_capacity_bytes(o, 64u << 20);
    if (larder_cache_create(o, &c) != LARDER_OK) return 1;
    larder_options_free(o);
    for (i = 0; i < 100000; ++i) {
      char key[32], value[64];
      int n = snprintf(key, sizeof key, "key:%d", i);
      memset(value, 'a' + i % 26, sizeof value);
      if (larder_put(c, key, (size_t)n, value, (size_t)(i % 64), 0) != LARDER_OK) return 1;
    }
    for (i = 0; i < 100000; ++i) {
      char key[32], value[64];
      size_t size;
      int n = snprintf(key, sizeof key, "key:%d", i);
      if (larder_get(c, key, (size_t)n, value, sizeof value, &size) == LARDER_OK &&
          size == (size_t)(i % 64)) {
        ++ok;
      }
    }
    larder_cache_destroy(c);
  }
  free(host_block);
  printf("dlopen host: %d of 100000 values read back through a dlopen'ed liblarder\n", ok);
  return ok == 100000 && dlclose(lib) == 0 ? 0 : 1;
}
