#ifndef LARDER_BENCH_STALLS_H_
#define LARDER_BENCH_STALLS_H_

#include <cstdint>

namespace larder::bench {

struct StallsConfig {
  uint32_t entries = 1'000'000;
  double phase_seconds = 3.0;  // steady, then mass expiry, then prefix invalidation
};

int RunStalls(const StallsConfig& config);

}  // namespace larder::bench

#endif  // LARDER_BENCH_STALLS_H_
