// The five phases of the demo and what each one measured.
#ifndef LARDER_EXAMPLES_DEMO_PHASES_H_
#define LARDER_EXAMPLES_DEMO_PHASES_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "db.h"
#include "demo.h"
#include "progress.h"

namespace demo {

// ---- phases 1 and 2: reads, without and with a cache ----
struct ReadResult {
  uint64_t requests = 0;
  uint64_t db_queries = 0;
  uint64_t hits = 0, misses = 0, expirations = 0;  // phase 2 only
  double seconds = 0;
  LatencySummary latency;      // every request
  LatencySummary leaderboard;  // the leaderboard requests among them
  // (seconds since the phase started, hit ratio in that slice): phase 2 only.
  std::vector<std::pair<double, double>> hit_ratio_over_time;
  double hit_ratio() const {
    return hits + misses ? static_cast<double>(hits) / static_cast<double>(hits + misses) : 0;
  }
};
bool RunNoCache(const Config& cfg, const DataSet& data, Progress& progress, ReadResult* out);
bool RunCacheAside(const Config& cfg, const DataSet& data, Progress& progress, ReadResult* out);

// ---- phase 3: writes, each pattern, with a checker reading behind the writers ----
struct WriteResult {
  std::string name;
  uint64_t writes = 0, write_failures = 0;
  uint64_t reads = 0, hits = 0;
  // Reads that began after the write of version v had returned, yet saw an
  // older version: the cache served stale data.
  uint64_t stale_reads = 0;
  // Direct database reads (what another service would see) that were behind
  // the newest acknowledged write, and after the final flush.
  uint64_t db_checks = 0, db_behind = 0, db_behind_after_flush = 0;
  uint64_t db_queries = 0;
  uint64_t coalesced = 0, batches = 0;  // write-behind only
  double seconds = 0;
  LatencySummary write_latency, read_latency;
};
bool RunWrites(const Config& cfg, const DataSet& data, Progress& progress,
               std::vector<WriteResult>* out);

// ---- phase 4: a write-behind process killed mid-stream ----
struct CrashRound {
  uint64_t acknowledged = 0;  // Puts that returned kOk before the kill
  uint64_t lost = 0;          // of those, not in SQLite after recovery
  uint64_t replayed = 0;      // writes the reopened journal delivered
  double killed_after_s = 0;
};
// The writing child: its threads, and the pause between one thread's writes.
inline constexpr int kCrashWriters = 4;
inline constexpr std::chrono::microseconds kCrashWriteInterval{250};
struct CrashResult {
  CrashRound journaled, unjournaled;
};
bool RunCrash(const Config& cfg, const DataSet& data, Progress& progress, CrashResult* out,
              std::string* error);
// The child process (the hidden --crash-child subcommand).
int CrashChildMain(int argc, char** argv);

// ---- phase 5: a hot key expiring under many clients ----
struct StampedeVariant {
  std::string name;   // naive, single_flight, early_refresh
  std::string title;  // for people
  uint64_t reads = 0;
  uint64_t db_queries = 0;  // leaderboard queries sent while the clients read
  uint64_t expiries = 0;    // times the key expired and was loaded again
  uint64_t waited = 0;      // reads that waited for the database
  int max_concurrent_queries = 0;
  double first_query_s = 0;  // when the first query started, relative to the expiry
  double window_s = 0;
  LatencySummary latency;  // every read
  LatencySummary waits;    // the reads that waited for the database
  // For the chart: samples and query spans, times relative to the expiry.
  std::vector<Sample> samples;  // start_s relative to the expiry
  std::vector<std::pair<double, double>> query_spans;
};
struct StampedeResult {
  int clients = 0;
  double ttl_s = 0;
  double query_ms = 0;                    // one leaderboard query, measured before the variants
  std::vector<StampedeVariant> variants;  // naive, single-flight, early refresh
};
bool RunStampede(const Config& cfg, const DataSet& data, Progress& progress, StampedeResult* out);

// ---- the report ----
struct Results {
  DataSet data;
  ReadResult no_cache, cache_aside;
  std::vector<WriteResult> writes;
  CrashResult crash;
  StampedeResult stampede;
  double elapsed_s = 0;
};
void PrintReport(const Config& cfg, const Results& r);
std::string JsonSummary(const Config& cfg, const Results& r);
// Writes the charts' data, a gnuplot script and the charts (SVG and PNG) to
// cfg.plot_dir; false with *error when gnuplot is missing or fails.
bool WritePlots(const Config& cfg, const Results& r, std::vector<std::string>* charts,
                std::string* error);

}  // namespace demo

#endif  // LARDER_EXAMPLES_DEMO_PHASES_H_
