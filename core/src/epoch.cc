#include "epoch.h"

#include <pthread.h>

#include <cstdlib>

namespace larder::internal {

extern thread_local constinit ThreadRecord* tls_record;

std::atomic<uint64_t> g_fork_generation{0};

namespace {

// Append-only list of records; records are never freed (one per thread that
// is reading at once), only recycled after their thread exits.
std::atomic<ThreadRecord*> g_records{nullptr};
std::atomic<uint32_t> g_next_id{0};

ThreadRecord* AcquireRecord() {
  for (ThreadRecord* r = g_records.load(std::memory_order_seq_cst); r != nullptr; r = r->next) {
    bool expected = false;
    if (!r->in_use.load(std::memory_order_relaxed) &&
        r->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      return r;
    }
  }
  auto* r = new ThreadRecord;
  r->id = g_next_id.fetch_add(1, std::memory_order_relaxed);
  r->lane = r->id;
  r->in_use.store(true, std::memory_order_relaxed);
  ThreadRecord* head = g_records.load(std::memory_order_relaxed);
  do {
    r->next = head;
    // seq_cst, so a scanner that misses this record cannot miss the epoch
    // announcement its owner makes afterwards (store-buffering pattern).
  } while (!g_records.compare_exchange_weak(head, r, std::memory_order_seq_cst,
                                            std::memory_order_relaxed));
  return r;
}

// The record pointer is a trivially destructible thread_local, so it stays
// usable while other thread_local destructors run. The record goes back to
// the pool from a pthread key destructor, which glibc runs after the C++
// thread_local destructors and re-runs if one of them set the key again.
pthread_key_t g_release_key;

void ReleaseRecord(void* p) {
  auto* r = static_cast<ThreadRecord*>(p);
  if (tls_record == r) tls_record = nullptr;
  r->state.store(0, std::memory_order_release);
  r->depth = 0;
  r->in_use.store(false, std::memory_order_release);
}

// Runs in the child of fork(), where only the forking thread exists: every
// other record's thread is gone, mid-read or not.
void ResetRecordsInChild() {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
  for (ThreadRecord* r = g_records.load(std::memory_order_relaxed); r != nullptr; r = r->next) {
    if (r == tls_record) continue;
    r->state.store(0, std::memory_order_relaxed);
    r->depth = 0;
    r->in_use.store(false, std::memory_order_relaxed);
  }
}

// Registered when the library is loaded (glibc drops the handler again if
// the library is ever unloaded).
[[maybe_unused]] const bool g_fork_handler_registered =
    pthread_atfork(nullptr, nullptr, &ResetRecordsInChild) == 0;

pthread_key_t ReleaseKey() {
  static const bool created = [] {
    if (pthread_key_create(&g_release_key, &ReleaseRecord) != 0) std::abort();
    return true;
  }();
  (void)created;
  return g_release_key;
}

}  // namespace

std::atomic<uint64_t> Epoch::global_{2};
thread_local constinit ThreadRecord* tls_record = nullptr;

ThreadRecord* AcquireThisThreadRecord() {
  if (tls_record == nullptr) {
    tls_record = AcquireRecord();
    pthread_setspecific(ReleaseKey(), tls_record);
  }
  return tls_record;
}

uint64_t Epoch::TryAdvance() {
  uint64_t epoch = global_.load(std::memory_order_seq_cst);
  for (ThreadRecord* r = g_records.load(std::memory_order_seq_cst); r != nullptr; r = r->next) {
    uint64_t state = r->state.load(std::memory_order_seq_cst);
    if ((state & 1) != 0 && (state >> 1) != epoch) return epoch;
  }
  if (global_.compare_exchange_strong(epoch, epoch + 1, std::memory_order_seq_cst))
    return epoch + 1;
  return epoch;  // someone else advanced; `epoch` now holds the new value
}

}  // namespace larder::internal
