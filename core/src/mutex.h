// An annotated exclusive lock for stripe state.
//
// Why a pthread mutex and not absl::Mutex: Debian's Abseil is not built with
// ThreadSanitizer, so absl::Mutex's happens-before edges are invisible to TSan
// and a TSan build would report false races on everything it guards. glibc's
// pthread mutex is intercepted by TSan, so races are reported exactly. The
// Abseil thread-safety macros still let clang's -Wthread-safety check every
// ABSL_GUARDED_BY field.
#ifndef LARDER_CORE_SRC_MUTEX_H_
#define LARDER_CORE_SRC_MUTEX_H_

#include <pthread.h>

#include "absl/base/thread_annotations.h"

namespace larder::internal {

//
// Why adaptive: a stripe's critical sections last a few hundred nanoseconds,
// while a contended std::mutex sleeps in the kernel at once and its unlock
// wakes the sleeper with another system call, microseconds each (more in a
// virtual machine: at two threads and 50% puts, futex calls were the largest
// cost, and two threads ran slower than one). glibc's adaptive mutex first
// spins a bounded while, reading the lock word, before it sleeps.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  ~Mutex() { pthread_mutex_destroy(&mu_); }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { pthread_mutex_lock(&mu_); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { pthread_mutex_unlock(&mu_); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return pthread_mutex_trylock(&mu_) == 0; }

 private:
  pthread_mutex_t mu_ = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_MUTEX_H_
