#ifndef LARDER_BENCH_MEMORY_H_
#define LARDER_BENCH_MEMORY_H_

#include <cstdint>

namespace larder::bench {

struct MemoryConfig {
  uint64_t entries = 1'000'000;
  uint64_t churn_puts = 10'000'000;
  uint64_t churn_capacity = 256ull << 20;
};

int RunMemory(const MemoryConfig& config);
int MemoryChild(int argc, char** argv);  // internal: one measurement, one process

}  // namespace larder::bench

#endif  // LARDER_BENCH_MEMORY_H_
