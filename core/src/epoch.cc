#include "epoch.h"

namespace larder::internal {
namespace {

// Append-only list of records; records are never freed (a handful per thread
// that ever read a cache), only recycled.
std::atomic<ThreadRecord*> g_records{nullptr};
std::atomic<uint32_t> g_next_id{0};

ThreadRecord* AcquireRecord() {
  for (ThreadRecord* r = g_records.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    bool expected = false;
    if (!r->in_use.load(std::memory_order_relaxed) &&
        r->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      return r;
    }
  }
  auto* r = new ThreadRecord;
  r->id = g_next_id.fetch_add(1, std::memory_order_relaxed);
  r->in_use.store(true, std::memory_order_relaxed);
  ThreadRecord* head = g_records.load(std::memory_order_relaxed);
  do {
    r->next = head;
  } while (!g_records.compare_exchange_weak(head, r, std::memory_order_release,
                                            std::memory_order_relaxed));
  return r;
}

struct RecordHolder {
  ThreadRecord* record = AcquireRecord();
  ~RecordHolder() {
    record->state.store(0, std::memory_order_release);
    record->depth = 0;
    record->in_use.store(false, std::memory_order_release);
  }
};

}  // namespace

std::atomic<uint64_t> Epoch::global_{2};

ThreadRecord* ThisThreadRecord() {
  thread_local RecordHolder holder;
  return holder.record;
}

uint64_t Epoch::TryAdvance() {
  uint64_t epoch = global_.load(std::memory_order_seq_cst);
  for (ThreadRecord* r = g_records.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    uint64_t state = r->state.load(std::memory_order_seq_cst);
    if ((state & 1) != 0 && (state >> 1) != epoch) return epoch;
  }
  if (global_.compare_exchange_strong(epoch, epoch + 1, std::memory_order_seq_cst)) return epoch + 1;
  return epoch;  // someone else advanced; `epoch` now holds the new value
}

}  // namespace larder::internal
