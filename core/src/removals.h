// Removals noted under a lock, for the removal listener to hear of once the
// caller holds no lock at all (stripe locks and per-key write locks alike).
#ifndef LARDER_CORE_SRC_REMOVALS_H_
#define LARDER_CORE_SRC_REMOVALS_H_

#include "absl/container/inlined_vector.h"
#include "entry.h"
#include "larder/cache.h"

namespace larder::internal {

// An entry removed under the lock whose listener call is still due. Holds a
// reference so the entry outlives the unlock.
struct Removal {
  Entry* entry;
  RemovalCause cause;
};
// A struct rather than an alias so that cache.h can declare it.
struct Removals : absl::InlinedVector<Removal, 4> {};

// Calls the listener (if any) for each removal, outside every lock, then
// drops the references; empties `removed`. A throwing listener cannot undo
// its removal and must not cost the remaining notifications.
void NotifyRemovals(const RemovalListener& listener, Removals& removed);

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_REMOVALS_H_
