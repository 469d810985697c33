#ifndef LARDER_BENCH_WRITES_H_
#define LARDER_BENCH_WRITES_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace larder::bench {

struct WritesConfig {
  int threads = 2;
  uint32_t keys = 100000;
  size_t value_size = 100;
  double seconds = 2.0;
  int64_t store_micros = 1000;  // each store call (a write, or a batch) takes this long
  std::string journal_dir = "/tmp";
};

int RunWrites(const WritesConfig& config);

}  // namespace larder::bench

#endif  // LARDER_BENCH_WRITES_H_
