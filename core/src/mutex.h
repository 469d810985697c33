// An annotated exclusive lock for stripe state.
//
// Why std::mutex and not absl::Mutex: Debian's Abseil is not built with
// ThreadSanitizer, so absl::Mutex's happens-before edges are invisible to TSan
// and a TSan build would report false races on everything it guards. glibc's
// pthread mutex is intercepted by TSan, so races are reported exactly. The
// Abseil thread-safety macros still let clang's -Wthread-safety check every
// ABSL_GUARDED_BY field.
#ifndef LARDER_CORE_SRC_MUTEX_H_
#define LARDER_CORE_SRC_MUTEX_H_

#include <mutex>

#include "absl/base/thread_annotations.h"

namespace larder::internal {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }

 private:
  std::mutex mu_;
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
