/* A plain C consumer of the installed package. */
#include <larder.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  larder_options *o = larder_options_new();
  larder_cache *c = NULL;
  char buf[32];
  size_t n = 0;
  larder_stats stats;
  if (o == NULL || larder_options_set_capacity_bytes(o, 1 << 20) != LARDER_OK ||
      larder_cache_create(o, &c) != LARDER_OK) {
    fprintf(stderr, "cannot create a cache\n");
    return 1;
  }
  larder_options_free(o);
  if (larder_put(c, "greeting", 8, "hello, C", 8, 0) != LARDER_OK ||
      larder_get(c, "greeting", 8, buf, sizeof buf, &n) != LARDER_OK || n != 8 ||
      memcmp(buf, "hello, C", 8) != 0) {
    fprintf(stderr, "put/get failed\n");
    return 1;
  }
  stats.struct_size = sizeof stats;
  larder_cache_stats(c, &stats);
  printf("larder %s: %.*s (hits %llu, entries %llu)\n", larder_version(), (int)n, buf,
         (unsigned long long)stats.hits, (unsigned long long)stats.entries);
  larder_cache_destroy(c);
  return stats.hits == 1 && stats.entries == 1 ? 0 : 1;
}
