#ifndef LARDER_BENCH_RUN_H_
#define LARDER_BENCH_RUN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace larder::bench {

struct RunConfig {
  std::string dist = "zipf";
  double zipf_s = 0.99;
  uint32_t keys = 1'000'000;
  size_t value_size = 100;
  size_t value_size_max = 0;    // > value_size: sizes drawn from [value_size, value_size_max]
  uint64_t ops_per_thread = 0;  // > 0: run this many operations per thread instead of --seconds
  double read_ratio = 1.0;
  double delete_ratio = 0.0;
  int threads = 1;
  double seconds = 3.0;
  int rounds = 3;
  size_t capacity_entries = 0;  // 0: all keys fit
  size_t capacity_bytes = 0;    // 0: not the limit
  size_t stripes = 0;
  int64_t ttl_ms = 0;
  uint64_t seed = 42;
  size_t stream_length = 1 << 20;
  std::vector<std::string> baselines = {"mutex", "sharded"};
  std::string redis;  // HOST:PORT for the redis baselines
};

struct TargetSummary {
  std::string name;
  double ops_per_s = 0;
  uint32_t p50_ns = 0, p99_ns = 0, p999_ns = 0;
  double hit_ratio = 0;
};

// Prints a table and, as the last line, one JSON object. Returns an exit code.
// Fills *summary (optional) with one row per contender, Larder first.
int Run(const RunConfig& config, std::vector<TargetSummary>* summary = nullptr);

// Runs the workload at 1, 2, 4, ... up to config.threads threads and writes
// an SVG chart (throughput against threads; latency percentiles at the most
// threads) with gnuplot. Returns an exit code.
int RunAndPlot(const RunConfig& config, const std::string& svg_path);

}  // namespace larder::bench

#endif  // LARDER_BENCH_RUN_H_
