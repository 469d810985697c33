// Translations shared by the C ABI's files (larder.cc, tier.cc); not part of
// the ABI. Each is what larder.cc does for its own functions.
#ifndef LARDER_CAPI_CAPI_INTERNAL_H_
#define LARDER_CAPI_CAPI_INTERNAL_H_

#include <new>
#include <string>

#include "larder.h"
#include "larder/cache.h"

// Every entry point catches everything: no exception crosses the ABI.
#define LARDER_GUARD_BEGIN try {
#define LARDER_GUARD_END          \
  }                               \
  catch (const std::bad_alloc&) { \
    return LARDER_NO_MEMORY;      \
  }                               \
  catch (...) {                   \
    return LARDER_INTERNAL;       \
  }

namespace larder::capi {

// A consistent copy of live options (their loader already wrapped);
// LARDER_INVALID_ARGUMENT for NULL or freed options.
larder_status CopyOptions(const larder_options* options, larder::Options* out);
larder::Loader WrapLoaderFn(larder_loader_fn fn, void* user_data);
larder::StoreWriter WrapStoreWriterFn(larder_store_write_fn fn, void* user_data);
// LARDER_INVALID_ARGUMENT for a config larder_write_behind_open refuses.
larder_status WriteBehindOptionsFrom(const larder_write_behind_config* config,
                                     larder::WriteBehindOptions* out);
// Fills *out and *info from a fetch; returns its status.
larder_status DeliverFetch(larder::FetchResult r, larder_value* out, larder_fetch_info* info);
// A larder_value that may receive a pin.
bool ValueSlotOk(const larder_value* v);
larder_status FillStats(const larder::Stats& stats, larder_stats* out);
// NUL-terminated, truncated; nothing when error is NULL or error_size 0.
void CopyErrorText(const std::string& message, char* error, size_t error_size);

}  // namespace larder::capi

#endif  // LARDER_CAPI_CAPI_INTERNAL_H_
