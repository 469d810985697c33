/* What a child may do with its parent's caches after fork() (larder.h,
 * "fork()"): the parent has a refresh thread, a write-behind flusher, a
 * journal with its own sync thread and a reader caught inside a call when it
 * forks. The child destroys the inherited objects promptly (an alarm fails
 * the test on a hang), gets LARDER_FORKED from any other use, leaves the
 * journal byte for byte as it was, and creates and uses a cache of its own.
 * Usage: fork_host <scratch dir> */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "larder.h"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                                \
    }                                                                          \
  } while (0)

static void sleep_ms(long ms) {
  struct timespec t;
  t.tv_sec = ms / 1000;
  t.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&t, NULL);
}

static int load_value(void *user_data, const void *key, size_t key_size,
                      larder_load_result *result) {
  (void)user_data;
  (void)key;
  (void)key_size;
  return larder_load_result_set_value(result, "loaded", 6, 0);
}

/* The store is down while the parent forks: writes stay queued (retrying). */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static int store_up = 0;
static void set_store_up(void) {
  pthread_mutex_lock(&store_mu);
  store_up = 1;
  pthread_mutex_unlock(&store_mu);
}
static int write_batch(void *user_data, const larder_queued_write *writes, size_t count,
                       char *error, size_t error_size) {
  int up;
  (void)user_data;
  (void)writes;
  (void)count;
  pthread_mutex_lock(&store_mu);
  up = store_up;
  pthread_mutex_unlock(&store_mu);
  if (up) return 0;
  snprintf(error, error_size, "store down");
  return 1;
}

/* A reader held inside larder_get_or_load's loader when the fork happens. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int in_loader = 0, release_loader = 0;
static int slow_load(void *user_data, const void *key, size_t key_size,
                     larder_load_result *result) {
  (void)user_data;
  (void)key;
  (void)key_size;
  pthread_mutex_lock(&gate_mu);
  in_loader = 1;
  pthread_cond_broadcast(&gate_cv);
  while (!release_loader) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
  return larder_load_result_set_value(result, "slow", 4, 0);
}
static larder_cache *shared_cache;
static void *reader_thread(void *arg) {
  larder_value v = LARDER_VALUE_INIT;
  (void)arg;
  if (larder_get_or_load(shared_cache, "slow", 4, slow_load, NULL, 0, &v, NULL) == LARDER_OK) {
    larder_value_release(&v);
  }
  return NULL;
}

/* Concatenates every file of dir (sorted by readdir order is fine: same dir,
 * nothing changes between the two reads unless someone writes). */
static size_t snapshot_dir(const char *dir, char *out, size_t cap) {
  size_t used = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL) {
    char path[4096];
    FILE *f;
    size_t got;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    used += (size_t)snprintf(out + used, cap - used, "[%s]", e->d_name);
    f = fopen(path, "rb");
    if (f == NULL) continue;
    got = fread(out + used, 1, cap - used, f);
    used += got;
    fclose(f);
  }
  closedir(d);
  return used;
}

static int child(larder_cache *c, larder_write_behind *wb) {
  char buf[64];
  size_t n = 0;
  larder_options *o;
  larder_cache *own = NULL;
  alarm(10); /* a hang is a failure, not a stuck test */
  CHECK(larder_get(c, "k", 1, buf, sizeof buf, &n) == LARDER_FORKED);
  CHECK(larder_put(c, "k", 1, "x", 1, 0) == LARDER_FORKED);
  CHECK(larder_cache_close(c) == LARDER_FORKED);
  CHECK(larder_write_behind_put(wb, "w", 1, "x", 1, 0) == LARDER_FORKED);
  CHECK(larder_write_behind_flush(wb, 0) == LARDER_FORKED);
  CHECK(larder_write_behind_close(wb, 0) == LARDER_FORKED);
  CHECK(strstr(larder_strerror(LARDER_FORKED), "fork") != NULL);
  larder_write_behind_destroy(wb);
  larder_cache_destroy(c);
  /* A cache of the child's own works, options registry included. */
  o = larder_options_new();
  CHECK(o != NULL);
  CHECK(larder_options_set_capacity_bytes(o, 1 << 20) == LARDER_OK);
  CHECK(larder_cache_create(o, &own) == LARDER_OK);
  larder_options_free(o);
  CHECK(larder_put(own, "mine", 4, "v", 1, 0) == LARDER_OK);
  CHECK(larder_get(own, "mine", 4, buf, sizeof buf, &n) == LARDER_OK && n == 1);
  larder_cache_destroy(own);
  return 0;
}

int main(int argc, char **argv) {
  static char before[1 << 16], after[1 << 16];
  char journal[4096];
  larder_options *o;
  larder_cache *c = NULL;
  larder_write_behind_config cfg;
  larder_write_behind *wb = NULL;
  pthread_t reader;
  size_t before_size, after_size;
  pid_t pid;
  int status, i;
  if (argc != 2) return 2;
  snprintf(journal, sizeof journal, "%s/fork-host-journal-%d", argv[1], (int)getpid());
  mkdir(argv[1], 0755);

  o = larder_options_new();
  CHECK(larder_options_set_capacity_bytes(o, 1 << 20) == LARDER_OK);
  CHECK(larder_options_set_loader(o, load_value, NULL) == LARDER_OK);
  CHECK(larder_cache_create(o, &c) == LARDER_OK);
  larder_options_free(o);
  shared_cache = c;
  CHECK(larder_put(c, "k", 1, "v", 1, 0) == LARDER_OK);
  CHECK(larder_refresh(c, "k", 1) == LARDER_OK); /* starts the refresh pool's thread */

  CHECK(larder_write_behind_config_init(&cfg) == LARDER_OK);
  cfg.writer = write_batch;
  cfg.max_delay_ns = 1000000;
  cfg.retry_base_ns = 1000000;
  cfg.retry_max_ns = 2000000;
  cfg.max_attempts = 1000000;
  cfg.journal_dir = journal;
  cfg.journal_sync = LARDER_JOURNAL_SYNC_INTERVAL; /* a sync thread too */
  cfg.journal_sync_interval_ns = 1000000;
  CHECK(larder_write_behind_open(c, &cfg, &wb) == LARDER_OK);
  for (i = 0; i < 10; ++i) {
    char key[16];
    snprintf(key, sizeof key, "w%d", i);
    CHECK(larder_write_behind_put(wb, key, strlen(key), "queued", 6, 0) == LARDER_OK);
  }
  sleep_ms(20); /* the flusher is retrying, the syncer has synced */

  CHECK(pthread_create(&reader, NULL, reader_thread, NULL) == 0);
  pthread_mutex_lock(&gate_mu);
  while (!in_loader) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);

  before_size = snapshot_dir(journal, before, sizeof before);
  CHECK(before_size > 0);
  pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(child(c, wb));
  CHECK(waitpid(pid, &status, 0) == pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "child failed: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return 1;
  }
  after_size = snapshot_dir(journal, after, sizeof after);
  CHECK(after_size == before_size && memcmp(before, after, before_size) == 0);

  /* The parent goes on as if nothing happened. */
  pthread_mutex_lock(&gate_mu);
  release_loader = 1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
  pthread_join(reader, NULL);
  set_store_up();
  CHECK(larder_write_behind_flush(wb, 0) == LARDER_OK);
  CHECK(larder_write_behind_close(wb, 0) == LARDER_OK);
  larder_write_behind_destroy(wb);
  larder_cache_destroy(c);
  printf("fork_host: child destroyed the inherited cache and queue; journal untouched\n");
  return 0;
}
