// Epoch-based reclamation (EBR): lets readers use entries and index tables
// without locks or reference counts while writers unlink and later free them.
//
// Invariants:
//  * A reader announces the global epoch it observed before it loads any
//    pointer to shared memory (ReadGuard), and withdraws the announcement
//    after its last use of such a pointer.
//  * A writer unlinks an object first, then reads the global epoch g (both
//    seq_cst) and records g with the object ("retired at g").
//  * The global epoch moves from g to g+1 only when every active reader has
//    announced g. Hence once the global epoch is >= r+2, no reader that could
//    have seen an object retired at r is still active, and it may be freed.
// All epoch operations are seq_cst; on x86 only the announcement (an xchg)
// costs anything, loads are plain moves.
//
// Scope and lifetime (the host's rules):
//  * Process-wide: one domain, one global epoch and one list of thread
//    records shared by every cache in the process. A thread's record is
//    created on its first read and recycled after the thread exits; records
//    are never freed.
//  * Thread exit: a pthread key destructor returns the record to the pool
//    (after the C++ thread_local destructors, which may still read a cache).
//  * fork(): in the child only the forking thread exists, so a child-side
//    handler withdraws every other thread's announcement and frees their
//    records; otherwise a parent thread caught inside a read would hold the
//    child's epoch back forever. ForkGeneration() changes in each child, so
//    objects can tell they were inherited from a parent (see Cache::~Cache).
//  * Unloading: the thread-exit hooks point into this library, so the
//    shared library and the Node addon are linked with -z nodelete: dlclose
//    leaves them loaded, and a later dlopen finds the same copy.
#ifndef LARDER_CORE_SRC_EPOCH_H_
#define LARDER_CORE_SRC_EPOCH_H_

#include <atomic>
#include <cstdint>

namespace larder::internal {

struct alignas(64) ThreadRecord {
  // 0 when quiescent, else (announced_epoch << 1) | 1. Written by the owner,
  // read by any thread trying to advance the epoch.
  std::atomic<uint64_t> state{0};
  // Owner-thread only: nesting depth of ReadGuards (listeners may re-enter).
  int depth = 0;
  // Small dense id (0, 1, 2, ...).
  uint32_t id = 0;
  // Owner-thread only: the access lane this thread pushes to in every stripe
  // (Stripe::RecordHit), starting at id and moved on when shared.
  uint32_t lane = 0;
  std::atomic<bool> in_use{false};
  ThreadRecord* next = nullptr;  // immutable once published
};

// This thread's record; the slow path registers the thread on first use.
ThreadRecord* AcquireThisThreadRecord();
extern thread_local constinit ThreadRecord* tls_record;
inline ThreadRecord* ThisThreadRecord() {
  ThreadRecord* r = tls_record;
  return r != nullptr ? r : AcquireThisThreadRecord();
}

// Incremented in the child by every fork(); 0 in a process that never forked.
extern std::atomic<uint64_t> g_fork_generation;
inline uint64_t ForkGeneration() { return g_fork_generation.load(std::memory_order_relaxed); }

class Epoch {
 public:
  static uint64_t Current() { return global_.load(std::memory_order_seq_cst); }
  // Advances the global epoch by one if every active reader has announced the
  // current one. Costs one load per thread record. Returns the epoch after.
  static uint64_t TryAdvance();

 private:
  friend class ReadGuard;
  static std::atomic<uint64_t> global_;
};

// Scoped read-side critical section. Nesting is allowed.
class ReadGuard {
 public:
  ReadGuard() : record_(ThisThreadRecord()) {
    if (record_->depth++ == 0) {
      uint64_t epoch = Epoch::global_.load(std::memory_order_seq_cst);
      record_->state.exchange((epoch << 1) | 1, std::memory_order_seq_cst);
    }
  }
  ~ReadGuard() {
    if (--record_->depth == 0) record_->state.store(0, std::memory_order_release);
  }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;
  uint32_t& lane() const { return record_->lane; }

 private:
  ThreadRecord* const record_;
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_EPOCH_H_
