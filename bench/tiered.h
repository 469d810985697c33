#ifndef LARDER_BENCH_TIERED_H_
#define LARDER_BENCH_TIERED_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace larder::bench {

// `larder-bench tiered`: several processes share one Redis the bench starts
// itself (127.0.0.1, a free port; no other Redis is used). Each runs Zipfian
// reads with a share of writes through each contender in turn: Larder as L1
// in front of Redis (larder::TieredCache), Redis alone, Redis alone with
// pipelined reads. Reports throughput, read latency, the L1 hit ratio and
// the invalidation delay (a probe key written every 20 ms by process 0,
// polled by a thread in every process).
struct TieredConfig {
  int procs = 4;
  int threads = 1;  // worker threads per process
  uint32_t keys = 100'000;
  double zipf_s = 0.99;
  double write_ratio = 0.01;
  size_t value_size = 100;
  double seconds = 3.0;  // per contender and round, measured
  double warmup = 1.0;   // before each measurement: the workload, untimed
  int rounds = 2;        // contenders take turns each round
  int pipeline = 16;     // GETs per round trip for redis_pipelined
  uint64_t seed = 42;
};

int RunTiered(const TieredConfig& config);
// The child side (larder-bench tiered-child ...), started by RunTiered.
int TieredChild(int argc, char** argv);

}  // namespace larder::bench

#endif  // LARDER_BENCH_TIERED_H_
