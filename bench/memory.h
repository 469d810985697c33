#ifndef LARDER_BENCH_MEMORY_H_
#define LARDER_BENCH_MEMORY_H_

#include <cstdint>

namespace larder::bench {

struct MemoryConfig {
  uint64_t entries = 1'000'000;
  uint64_t churn_puts = 10'000'000;
  uint64_t churn_capacity = 256ull << 20;
  // The fill's values (keys are 20 bytes): the figures depend on where key +
  // value + header fall among the allocator's size classes.
  uint64_t value_size = 100;
};

int RunMemory(const MemoryConfig& config);
int MemoryChild(int argc, char** argv);  // internal: one measurement, one process

}  // namespace larder::bench

#endif  // LARDER_BENCH_MEMORY_H_
