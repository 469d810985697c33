// larder-demo: the caching lesson, run for real against SQLite.
//
// Shared pieces of the demo's phases: the configuration, the stop flag set by
// Ctrl-C, latency samples and their summaries, key popularity. Everything
// here uses Larder's public API only (core/include/larder/*.h).
#ifndef LARDER_EXAMPLES_DEMO_DEMO_H_
#define LARDER_EXAMPLES_DEMO_DEMO_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace demo {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Config {
  std::string db_path;      // --db, or a file in the temporary directory
  bool db_given = false;    // --db was given: never removed
  std::string journal_dir;  // --journal, or the temporary directory's "journal"
  std::string plot_dir;     // --plot
  std::string self_path;    // this program, for the crash phase's child
  int64_t users = 100'000;
  int64_t products = 10'000;
  int64_t orders = 1'000'000;
  int clients = 32;           // phases 1 to 3
  int stampede_clients = 64;  // phase 5
  double db_latency_ms = 2.0;
  double rate_per_client = 250;          // requests per second each client offers (phases 1, 2)
  double read_seconds = 3.0;             // phase 1; phase 2 runs twice as long
  double write_seconds = 2.5;            // each pattern of phase 3
  double crash_seconds = 1.0;            // how long a crash child writes, at most
  double leaderboard_ttl_seconds = 2.0;  // phase 5
  double refresh_beta = 1.0;             // phase 5, early refresh
  uint64_t seed = 42;
  bool quick = false;
  bool json = false;
  bool tty = false;
};

// Set by SIGINT/SIGTERM; every phase polls it and winds down.
extern std::atomic<int> g_signal;
inline bool Interrupted() { return g_signal.load(std::memory_order_relaxed) != 0; }

inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
inline double Millis(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// One request as a client saw it: when it started (since the phase began),
// how long it took, and whether the cache answered it.
struct Sample {
  float start_s;
  float latency_ms;
  uint8_t kind;  // what was asked (phase-specific)
  bool hit;
};

struct LatencySummary {
  uint64_t count = 0;
  double p50_ms = 0, p99_ms = 0, mean_ms = 0, max_ms = 0;
};
LatencySummary Summarize(const std::vector<Sample>& samples);
// Samples of many threads, one vector each, merged.
std::vector<Sample> Merge(std::vector<std::vector<Sample>>& per_thread);

// Zipf-distributed ids 1..n: a few are popular, most are rare.
class Zipf {
 public:
  Zipf(int64_t n, double s);
  int64_t operator()(std::mt19937_64& rng) const;

 private:
  std::vector<double> cdf_;
};

// "excellent", "good", "investigate" or "barely helping": the lesson's reading.
const char* HitRatioReading(double hit_ratio);

// 1234567 -> "1,234,567".
std::string Thousands(uint64_t n);

// Sleeps until `until` or until interrupted, in short steps.
void SleepUntil(Clock::time_point until);

}  // namespace demo

#endif  // LARDER_EXAMPLES_DEMO_DEMO_H_
