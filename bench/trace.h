// Reading and replaying the shared cache traces (format: ../shared/traces/README.md).
#ifndef LARDER_BENCH_TRACE_H_
#define LARDER_BENCH_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "larder/cache.h"

namespace larder::bench {

struct Trace {
  std::vector<uint64_t> keys;
  std::vector<uint32_t> sizes;  // empty when the trace has no size column
  size_t unique_keys = 0;
};

// Reads a plain or gzip trace. Returns false and sets *error on failure.
bool LoadTrace(const std::string& path, Trace* trace, std::string* error);

struct ReplayResult {
  uint64_t requests = 0;
  uint64_t hits = 0;
  double hit_ratio() const { return requests ? static_cast<double>(hits) / requests : 0.0; }
};

// Demand-fill replay by one thread: a lookup; on a miss, a put. With
// charge_by_size, each entry's charge is its request size from the trace (the
// size recorded at first insert stays until eviction), matching libCacheSim's
// byte-capacity rules; otherwise values are empty and capacity is in entries.
ReplayResult Replay(const Trace& trace, Cache& cache, bool charge_by_size);

// The reference: a strict global LRU of `capacity` entries (or bytes, with
// charge_by_size), written as plainly as possible.
ReplayResult ReplayExactLru(const Trace& trace, uint64_t capacity, bool charge_by_size);

}  // namespace larder::bench

#endif  // LARDER_BENCH_TRACE_H_
