/* A host that loads and unloads liblarder.so over and over, as Node does with
 * an addon when the worker that loaded it ends: each cycle dlopen()s the
 * library, reads from a cache on a second thread, destroys the cache,
 * dlclose()s, and only then lets the reader thread exit (running whatever
 * thread-exit hooks the library left behind). More cycles than there are
 * pthread keys, so a key leaked per load would show up too. The main thread
 * never calls into the cache itself (short-lived threads create and destroy
 * it): a thread-exit destructor it registered would keep glibc from ever
 * unloading the library and hide the problem.
 * Usage: dlclose_host <path to liblarder.so> <cycles> */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "larder.h"

typedef larder_options *(*options_new_t)(void);
typedef larder_status (*options_set_capacity_bytes_t)(larder_options *, uint64_t);
typedef void (*options_free_t)(larder_options *);
typedef larder_status (*cache_create_t)(const larder_options *, larder_cache **);
typedef larder_status (*put_t)(larder_cache *, const void *, size_t, const void *, size_t, int64_t);
typedef larder_status (*get_t)(larder_cache *, const void *, size_t, void *, size_t, size_t *);
typedef void (*cache_destroy_t)(larder_cache *);

struct reader {
  get_t get;
  larder_cache *cache;
  int ok;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stage; /* 0: start, 1: has read, 2: may exit */
};

struct setup {
  options_new_t options_new;
  options_set_capacity_bytes_t set_capacity;
  options_free_t options_free;
  cache_create_t cache_create;
  put_t put;
  cache_destroy_t cache_destroy;
  larder_cache *cache;
  int ok;
};

static void *create_and_fill(void *arg) {
  struct setup *s = arg;
  larder_options *o = s->options_new();
  s->ok = o != NULL && s->set_capacity(o, 1 << 20) == LARDER_OK &&
          s->cache_create(o, &s->cache) == LARDER_OK &&
          s->put(s->cache, "k", 1, "v", 1, 0) == LARDER_OK;
  s->options_free(o);
  return NULL;
}

static void *destroy(void *arg) {
  struct setup *s = arg;
  s->cache_destroy(s->cache);
  return NULL;
}

/* Runs fn(arg) on a thread of its own and waits for that thread to end. */
static int on_own_thread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, arg) != 0) return 0;
  return pthread_join(t, NULL) == 0;
}

static void *read_then_wait(void *arg) {
  struct reader *r = arg;
  char buf[8];
  size_t n = 0;
  r->ok = r->get(r->cache, "k", 1, buf, sizeof buf, &n) == LARDER_OK && n == 1 && buf[0] == 'v';
  pthread_mutex_lock(&r->mu);
  r->stage = 1;
  pthread_cond_broadcast(&r->cv);
  while (r->stage != 2) pthread_cond_wait(&r->cv, &r->mu);
  pthread_mutex_unlock(&r->mu);
  return NULL; /* the thread exits after the library was closed */
}

int main(int argc, char **argv) {
  int cycles, i;
  if (argc != 3) return 2;
  cycles = atoi(argv[2]);
  for (i = 0; i < cycles; ++i) {
    struct reader r;
    struct setup setup;
    pthread_t thread;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
      fprintf(stderr, "cycle %d: dlopen: %s\n", i, dlerror());
      return 1;
    }
    setup.options_new = (options_new_t)dlsym(lib, "larder_options_new");
    setup.set_capacity =
        (options_set_capacity_bytes_t)dlsym(lib, "larder_options_set_capacity_bytes");
    setup.options_free = (options_free_t)dlsym(lib, "larder_options_free");
    setup.cache_create = (cache_create_t)dlsym(lib, "larder_cache_create");
    setup.put = (put_t)dlsym(lib, "larder_put");
    setup.cache_destroy = (cache_destroy_t)dlsym(lib, "larder_cache_destroy");
    r.get = (get_t)dlsym(lib, "larder_get");
    if (!setup.options_new || !setup.set_capacity || !setup.options_free || !setup.cache_create ||
        !setup.put || !setup.cache_destroy || !r.get) {
      fprintf(stderr, "dlsym failed\n");
      return 1;
    }
    setup.cache = NULL;
    setup.ok = 0;
    if (!on_own_thread(create_and_fill, &setup) || !setup.ok) {
      fprintf(stderr, "cycle %d: cannot create and fill a cache\n", i);
      return 1;
    }
    larder_cache *c = setup.cache;
    r.cache = c;
    r.ok = 0;
    r.stage = 0;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    if (pthread_create(&thread, NULL, read_then_wait, &r) != 0) return 1;
    pthread_mutex_lock(&r.mu);
    while (r.stage != 1) pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
    if (!on_own_thread(destroy, &setup)) return 1;
    if (dlclose(lib) != 0) {
      fprintf(stderr, "cycle %d: dlclose: %s\n", i, dlerror());
      return 1;
    }
    pthread_mutex_lock(&r.mu);
    r.stage = 2;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    pthread_join(thread, NULL);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    if (!r.ok) {
      fprintf(stderr, "cycle %d: the reader did not read the value\n", i);
      return 1;
    }
  }
  printf("dlclose_host: %d load/use/unload cycles\n", cycles);
  return 0;
}
