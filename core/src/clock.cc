#include "larder/clock.h"

#include <time.h>

namespace larder {

int64_t CoarseMonotonicClock::NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace larder
