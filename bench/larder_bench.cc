// larder-bench: measurements you can rerun with one command.
//
//   larder-bench replay --trace FILE [--capacity-entries N | --capacity-bytes B]
//                       [--stripes S] [--compare-exact]
//   larder-bench run [--dist zipf|uniform] [--zipf-s S] [--keys N] [--value-size B|MIN-MAX]
//                    [--ops N (per thread, instead of --seconds)]
//                    [--read-ratio R] [--delete-ratio D] [--threads T] [--seconds S]
//                    [--rounds R] [--capacity-entries N] [--capacity-bytes B]
//                    [--stripes S] [--ttl MS] [--baselines mutex,sharded,flat,limit,redis,...]
//                    [--redis HOST:PORT] [--seed N] [--plot FILE.svg]
//   larder-bench writes [--threads T] [--seconds S] [--store-micros US] [--journal-dir DIR]
//   larder-bench memory [--entries N] [--value-size B] [--churn-puts N] [--churn-capacity BYTES]
//   larder-bench stalls [--entries N] [--phase-seconds S]
//   larder-bench tiered [--procs P] [--threads T] [--keys N] [--zipf-s S] [--write-ratio W]
//                       [--value-size B] [--seconds S] [--warmup S] [--rounds R] [--pipeline N]
//                       [--seed N]
//
// The last line printed is always one JSON object.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "larder/cache.h"
#include "memory.h"
#include "run.h"
#include "stalls.h"
#if LARDER_BENCH_TIERED
#include "tiered.h"
#endif
#include "trace.h"
#include "writes.h"

namespace {

int Usage(const char* why) {
  std::fprintf(
      stderr,
      "error: %s\n"
      "usage: larder-bench replay --trace FILE [--capacity-entries N | "
      "--capacity-bytes B] [--stripes S] [--compare-exact]\n"
      "       larder-bench run [--dist zipf|uniform] [--zipf-s S] [--keys N] "
      "[--value-size B|MIN-MAX] [--ops N] [--read-ratio R] [--delete-ratio D] [--threads T] "
      "[--seconds S] [--rounds R] [--capacity-entries N] [--capacity-bytes B] "
      "[--stripes S] [--ttl MS] [--baselines mutex,sharded,flat,limit] [--seed N]\n",
      why);
  return 2;
}

// Parses "--name value" pairs and bare "--flag"s.
bool ParseFlags(int argc, char** argv, int first, std::map<std::string, std::string>* flags,
                std::string* error) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      *error = "unexpected argument " + arg;
      return false;
    }
    if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) {
      (*flags)[arg.substr(2)] = argv[++i];
    } else {
      (*flags)[arg.substr(2)] = "";
    }
  }
  return true;
}

bool ParseSize(const std::string& text, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || errno != 0 || end == text.c_str()) return false;
  uint64_t mult = 1;
  std::string suffix = end;
  if (suffix == "K" || suffix == "KiB")
    mult = 1ull << 10;
  else if (suffix == "M" || suffix == "MiB")
    mult = 1ull << 20;
  else if (suffix == "G" || suffix == "GiB")
    mult = 1ull << 30;
  else if (!suffix.empty())
    return false;
  *out = v * mult;
  return true;
}

int Replay(const std::map<std::string, std::string>& flags) {
  auto get = [&](const char* name) -> const std::string* {
    auto it = flags.find(name);
    return it == flags.end() ? nullptr : &it->second;
  };
  const std::string* path = get("trace");
  if (path == nullptr || path->empty()) return Usage("--trace is required");
  uint64_t entries = 0, bytes = 0, stripes = 0;
  if (const std::string* v = get("capacity-entries"); v && !ParseSize(*v, &entries)) {
    return Usage("bad --capacity-entries");
  }
  if (const std::string* v = get("capacity-bytes"); v && !ParseSize(*v, &bytes)) {
    return Usage("bad --capacity-bytes");
  }
  if (const std::string* v = get("stripes"); v && !ParseSize(*v, &stripes)) {
    return Usage("bad --stripes");
  }
  if ((entries == 0) == (bytes == 0)) {
    return Usage("give exactly one of --capacity-entries and --capacity-bytes (non-zero)");
  }

  larder::bench::Trace trace;
  std::string error;
  if (!larder::bench::LoadTrace(*path, &trace, &error)) return Usage(error.c_str());
  const bool by_bytes = bytes != 0;
  if (by_bytes && trace.sizes.empty()) return Usage("--capacity-bytes needs a trace with sizes");

  larder::Options options;
  options.capacity_entries = entries;
  // Count mode: bytes are not the limit. Byte mode: each entry's charge is the
  // request size, so the byte capacity is exactly the trace's capacity.
  options.capacity_bytes = by_bytes ? bytes : (uint64_t{1} << 50);
  options.stripes = stripes;
  std::unique_ptr<larder::Cache> cache;
  if (larder::Status s = larder::Cache::Create(options, &cache); s != larder::Status::kOk) {
    return Usage(larder::StatusName(s));
  }

  auto start = std::chrono::steady_clock::now();
  larder::bench::ReplayResult r = larder::bench::Replay(trace, *cache, by_bytes);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  larder::Stats stats = cache->GetStats();

  std::printf("trace %s: %llu requests, %zu unique keys\n", path->c_str(),
              static_cast<unsigned long long>(r.requests), trace.unique_keys);
  std::printf("larder: %llu hits, hit ratio %.4f%%, %zu stripes, %.0f requests/s\n",
              static_cast<unsigned long long>(r.hits), 100 * r.hit_ratio(), cache->stripe_count(),
              r.requests / seconds);
  std::string exact_json;
  if (flags.count("compare-exact")) {
    larder::bench::ReplayResult exact =
        larder::bench::ReplayExactLru(trace, by_bytes ? bytes : entries, by_bytes);
    std::printf("exact LRU: %llu hits, hit ratio %.4f%% (difference %+.3f points)\n",
                static_cast<unsigned long long>(exact.hits), 100 * exact.hit_ratio(),
                100 * (r.hit_ratio() - exact.hit_ratio()));
    char buf[160];
    std::snprintf(buf, sizeof buf, ",\"exact_hits\":%llu,\"exact_hit_ratio\":%.6f",
                  static_cast<unsigned long long>(exact.hits), exact.hit_ratio());
    exact_json = buf;
  }
  std::printf(
      "{\"trace\":\"%s\",\"requests\":%llu,\"hits\":%llu,\"hit_ratio\":%.6f,"
      "\"capacity\":%llu,\"capacity_unit\":\"%s\",\"stripes\":%zu,\"unique_keys\":%zu,"
      "\"dropped_promotions\":%llu,\"requests_per_s\":%.0f%s}\n",
      path->c_str(), static_cast<unsigned long long>(r.requests),
      static_cast<unsigned long long>(r.hits), r.hit_ratio(),
      static_cast<unsigned long long>(by_bytes ? bytes : entries), by_bytes ? "bytes" : "entries",
      cache->stripe_count(), trace.unique_keys,
      static_cast<unsigned long long>(stats.dropped_promotions), r.requests / seconds,
      exact_json.c_str());
  return 0;
}

int RunCommand(const std::map<std::string, std::string>& flags) {
  larder::bench::RunConfig c;
  std::string plot;
  for (const auto& flag : flags) {
    const std::string& name = flag.first;   // not a structured binding: clang 14
    const std::string& text = flag.second;  // cannot capture those in lambdas
    uint64_t n = 0;
    char* end = nullptr;
    auto number = [&](double lo, double hi, double* out) {
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || v < lo || v > hi) return false;
      *out = v;
      return true;
    };
    double d = 0;
    if (name == "dist" && (text == "zipf" || text == "uniform"))
      c.dist = text;
    else if (name == "zipf-s" && number(0, 10, &d))
      c.zipf_s = d;
    else if (name == "keys" && ParseSize(text, &n) && n > 0 && n < (1ull << 32))
      c.keys = static_cast<uint32_t>(n);
    else if (name == "value-size" && text.find('-') != std::string::npos) {
      uint64_t lo = 0, hi = 0;  // a range: MIN-MAX
      if (!ParseSize(text.substr(0, text.find('-')), &lo) ||
          !ParseSize(text.substr(text.find('-') + 1), &hi) || hi < lo) {
        return Usage("bad --value-size range (MIN-MAX)");
      }
      c.value_size = lo;
      c.value_size_max = hi;
    } else if (name == "value-size" && ParseSize(text, &n))
      c.value_size = n;
    else if (name == "ops" && ParseSize(text, &n) && n > 0)
      c.ops_per_thread = n;
    else if (name == "read-ratio" && number(0, 1, &d))
      c.read_ratio = d;
    else if (name == "delete-ratio" && number(0, 1, &d))
      c.delete_ratio = d;
    else if (name == "threads" && ParseSize(text, &n) && n > 0 && n <= 1024)
      c.threads = static_cast<int>(n);
    else if (name == "seconds" && number(0.01, 86400, &d))
      c.seconds = d;
    else if (name == "rounds" && ParseSize(text, &n) && n > 0)
      c.rounds = static_cast<int>(n);
    else if (name == "capacity-entries" && ParseSize(text, &n))
      c.capacity_entries = n;
    else if (name == "capacity-bytes" && ParseSize(text, &n))
      c.capacity_bytes = n;
    else if (name == "stripes" && ParseSize(text, &n))
      c.stripes = n;
    else if (name == "ttl" && ParseSize(text, &n))
      c.ttl_ms = static_cast<int64_t>(n);
    else if (name == "seed" && ParseSize(text, &n))
      c.seed = n;
    else if (name == "plot" && !text.empty())
      plot = text;
    else if (name == "redis" && text.find(':') != std::string::npos) {
      c.redis = text;
      bool listed = false;
      for (const std::string& b : c.baselines) listed = listed || b.rfind("redis", 0) == 0;
      if (!listed && flags.count("baselines") == 0) {
        c.baselines.push_back("redis");
        c.baselines.push_back("redis_pipelined");
      }
    } else if (name == "baselines") {
      c.baselines.clear();
      size_t start = 0;
      while (start <= text.size()) {
        size_t comma = text.find(',', start);
        std::string item =
            text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) c.baselines.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else {
      return Usage(("bad or unknown flag --" + name + " " + text).c_str());
    }
  }
  if (c.read_ratio + c.delete_ratio > 1.0) return Usage("--read-ratio + --delete-ratio > 1");
  if (!plot.empty()) return larder::bench::RunAndPlot(c, plot);
  return larder::bench::Run(c);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage("missing subcommand");
  std::string command = argv[1];
  if (command == "memory-child") return larder::bench::MemoryChild(argc - 2, argv + 2);
#if LARDER_BENCH_TIERED
  if (command == "tiered-child") return larder::bench::TieredChild(argc - 2, argv + 2);
#endif
  std::map<std::string, std::string> flags;
  std::string error;
  if (!ParseFlags(argc, argv, 2, &flags, &error)) return Usage(error.c_str());
  if (command == "replay") return Replay(flags);
  if (command == "run") return RunCommand(flags);
  if (command == "stalls") {
    larder::bench::StallsConfig c;
    for (const auto& flag : flags) {
      uint64_t n = 0;
      if (flag.first == "entries" && ParseSize(flag.second, &n) && n > 0)
        c.entries = static_cast<uint32_t>(n);
      else if (flag.first == "phase-seconds")
        c.phase_seconds = std::atof(flag.second.c_str());
      else
        return Usage(("bad or unknown flag --" + flag.first).c_str());
    }
    if (!(c.phase_seconds > 0)) return Usage("--phase-seconds must be positive");
    return larder::bench::RunStalls(c);
  }
  if (command == "memory") {
    larder::bench::MemoryConfig c;
    for (const auto& flag : flags) {
      uint64_t n = 0;
      if (!ParseSize(flag.second, &n) || n == 0) return Usage(("bad --" + flag.first).c_str());
      if (flag.first == "entries")
        c.entries = n;
      else if (flag.first == "churn-puts")
        c.churn_puts = n;
      else if (flag.first == "churn-capacity")
        c.churn_capacity = n;
      else if (flag.first == "value-size")
        c.value_size = n;
      else
        return Usage(("unknown flag --" + flag.first).c_str());
    }
    return larder::bench::RunMemory(c);
  }
  if (command == "tiered") {
#if LARDER_BENCH_TIERED
    larder::bench::TieredConfig c;
    for (const auto& flag : flags) {
      const std::string& name = flag.first;
      const std::string& text = flag.second;
      uint64_t n = 0;
      char* end = nullptr;
      const double d = std::strtod(text.c_str(), &end);
      const bool number = !text.empty() && *end == '\0';
      if (name == "procs" && ParseSize(text, &n) && n >= 1 && n <= 64)
        c.procs = static_cast<int>(n);
      else if (name == "threads" && ParseSize(text, &n) && n >= 1 && n <= 64)
        c.threads = static_cast<int>(n);
      else if (name == "keys" && ParseSize(text, &n) && n >= 1 && n < (1ull << 32))
        c.keys = static_cast<uint32_t>(n);
      else if (name == "zipf-s" && number && d >= 0 && d <= 10)
        c.zipf_s = d;
      else if (name == "write-ratio" && number && d >= 0 && d <= 1)
        c.write_ratio = d;
      else if (name == "value-size" && ParseSize(text, &n) && n <= (64u << 20))
        c.value_size = n;
      else if (name == "seconds" && number && d > 0 && d <= 3600)
        c.seconds = d;
      else if (name == "warmup" && number && d >= 0 && d <= 3600)
        c.warmup = d;
      else if (name == "rounds" && ParseSize(text, &n) && n >= 1)
        c.rounds = static_cast<int>(n);
      else if (name == "pipeline" && ParseSize(text, &n) && n >= 1 && n <= 64)
        c.pipeline = static_cast<int>(n);
      else if (name == "seed" && ParseSize(text, &n))
        c.seed = n;
      else
        return Usage(("bad or unknown flag --" + name + " " + text).c_str());
    }
    return larder::bench::RunTiered(c);
#else
    return Usage("this larder-bench was built without the Redis tier (LARDER_REDIS=OFF)");
#endif
  }
  if (command == "writes") {
    larder::bench::WritesConfig c;
    for (const auto& flag : flags) {
      uint64_t n = 0;
      if (flag.first == "threads" && ParseSize(flag.second, &n) && n > 0)
        c.threads = static_cast<int>(n);
      else if (flag.first == "seconds")
        c.seconds = std::atof(flag.second.c_str());
      else if (flag.first == "store-micros" && ParseSize(flag.second, &n))
        c.store_micros = static_cast<int64_t>(n);
      else if (flag.first == "journal-dir")
        c.journal_dir = flag.second;
      else
        return Usage(("bad or unknown flag --" + flag.first).c_str());
    }
    if (!(c.seconds > 0)) return Usage("--seconds must be positive");
    return larder::bench::RunWrites(c);
  }
  return Usage(("unknown subcommand " + command).c_str());
}
