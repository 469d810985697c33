// `larder-bench run`: one workload, run against Larder and the baselines in
// the same process, rounds interleaved so machine noise hits all alike.
#include "run.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "baselines.h"
#if LARDER_BENCH_HIREDIS
#include <hiredis/hiredis.h>
#endif
#include "larder/cache.h"

namespace larder::bench {
namespace {

using Clock = std::chrono::steady_clock;

enum class Op : uint8_t { kGet, kPut, kDelete };

struct Stream {
  std::vector<uint32_t> keys;
  std::vector<Op> ops;
  std::vector<uint32_t> value_sizes;  // empty: every value is value_size bytes
};

// Zipf(s) over [0, n) by inverse CDF: exact, and built before timing.
class ZipfSampler {
 public:
  ZipfSampler(size_t n, double s) : cdf_(n) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) cdf_[i] = (sum += 1.0 / std::pow(static_cast<double>(i + 1), s));
    for (double& c : cdf_) c /= sum;
  }
  uint32_t operator()(std::mt19937_64& rng) const {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<uint32_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

std::string KeyName(uint32_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key:%016u", i);  // 20 bytes
  return buf;
}

// The interface each contender implements for the harness.
struct Target {
  std::string name;
  std::function<bool(std::string_view, char*, size_t, size_t*)> get;
  std::function<void(std::string_view, std::string_view)> put;
  std::function<void(std::string_view)> erase;
  std::function<void()> reset;  // fresh, empty instance
  // Pipelined gets (Redis): sends n GETs, then reads n replies; returns hits.
  std::function<int(const std::string* const* keys, int n)> get_pipelined;
  int pipeline = 1;
};

// A contender that answers one operation per call (all but pipelined Redis).
Target Plain(std::string name, decltype(Target::get) get, decltype(Target::put) put,
             decltype(Target::erase) erase, decltype(Target::reset) reset) {
  Target t;
  t.name = std::move(name);
  t.get = std::move(get);
  t.put = std::move(put);
  t.erase = std::move(erase);
  t.reset = std::move(reset);
  return t;
}

#if LARDER_BENCH_HIREDIS
// One connection per thread and target: Redis as an application uses it.
redisContext* RedisFor(const std::string& host, int port, const std::string& target) {
  thread_local std::map<std::string, redisContext*> connections;
  redisContext*& c = connections[target];
  if (c == nullptr) {
    c = redisConnect(host.c_str(), port);
    if (c == nullptr || c->err) {
      std::fprintf(stderr, "cannot connect to Redis at %s:%d\n", host.c_str(), port);
      std::exit(1);
    }
  }
  return c;
}
#endif

struct ThreadResult {
  uint64_t ops = 0, gets = 0, hits = 0;
  std::vector<uint32_t> latency_ns;  // sampled
};

struct Totals {
  uint64_t ops = 0, gets = 0, hits = 0;
  double seconds = 0;
  std::vector<uint32_t> latency_ns;
  double ops_per_s() const { return seconds > 0 ? ops / seconds : 0; }
  double hit_ratio() const { return gets ? static_cast<double>(hits) / gets : 0; }
  uint32_t Percentile(double p) {
    if (latency_ns.empty()) return 0;
    size_t k = std::min(latency_ns.size() - 1, static_cast<size_t>(p * latency_ns.size()));
    std::nth_element(latency_ns.begin(), latency_ns.begin() + k, latency_ns.end());
    return latency_ns[k];
  }
};

constexpr uint32_t kLatencySampleMask = 127;  // time one op in 128

void RunThread(const Target& t, const Stream& s, const std::vector<std::string>& names,
               const std::string& value, double seconds, uint64_t op_limit, std::atomic<int>* ready,
               std::atomic<bool>* go, ThreadResult* out) {
  std::vector<char> buf(value.size() + 64);
  ready->fetch_add(1);
  while (!go->load(std::memory_order_acquire)) {
  }
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  size_t i = 0;
  const size_t n = s.keys.size();
  ThreadResult r;
  r.latency_ns.reserve(1 << 16);
  for (;;) {
    for (size_t batch = 0; batch < 1024; ++batch, i = (i + 1 == n ? 0 : i + 1)) {
      const std::string& key = names[s.keys[i]];
      const std::string_view v = s.value_sizes.empty()
                                     ? std::string_view(value)
                                     : std::string_view(value.data(), s.value_sizes[i]);
      const bool sample = (r.ops & kLatencySampleMask) == 0;
      Clock::time_point start;
      if (sample) start = Clock::now();
      if (t.pipeline > 1 && s.ops[i] == Op::kGet) {
        // A pipelined batch of gets counts as that many operations; the
        // latency sample is the batch's, divided by its size.
        const std::string* batch[64];
        int n = 0;
        while (n < t.pipeline && n < 64) {
          batch[n++] = &names[s.keys[i]];
          if (n < t.pipeline) i = (i + 1 == s.keys.size() ? 0 : i + 1);
        }
        r.hits += t.get_pipelined(batch, n);
        r.gets += n;
        r.ops += n - 1;
        if (sample) {
          r.latency_ns.push_back(static_cast<uint32_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count() /
              n));
        }
        ++r.ops;
        continue;
      }
      switch (s.ops[i]) {
        case Op::kGet: {
          size_t len = 0;
          ++r.gets;
          if (t.get(key, buf.data(), buf.size(), &len)) {
            ++r.hits;
          } else {
            t.put(key, v);  // cache-aside fill
          }
          break;
        }
        case Op::kPut:
          t.put(key, v);
          break;
        case Op::kDelete:
          t.erase(key);
          break;
      }
      if (sample) {
        r.latency_ns.push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
      }
      ++r.ops;
    }
    if (op_limit != 0 ? r.ops >= op_limit : Clock::now() >= deadline) break;
  }
  *out = std::move(r);
}

}  // namespace

int Run(const RunConfig& c, std::vector<TargetSummary>* summary) {
  // ---- workload, generated before any timing ----
  std::vector<std::string> names(c.keys);
  for (uint32_t i = 0; i < c.keys; ++i) names[i] = KeyName(i);
  // Values: fixed size, or a size drawn per operation from [value_size,
  // value_size_max] (a prefix of one buffer: no allocation while timing).
  const size_t largest = std::max(c.value_size, c.value_size_max);
  const std::string value(largest, 'v');
  std::unique_ptr<ZipfSampler> zipf;
  if (c.dist == "zipf") zipf = std::make_unique<ZipfSampler>(c.keys, c.zipf_s);
  std::vector<Stream> streams(c.threads);
  for (int t = 0; t < c.threads; ++t) {
    std::mt19937_64 rng(c.seed + t);
    Stream& s = streams[t];
    s.keys.resize(c.stream_length);
    s.ops.resize(c.stream_length);
    for (size_t i = 0; i < c.stream_length; ++i) {
      s.keys[i] = zipf ? (*zipf)(rng) : static_cast<uint32_t>(rng() % c.keys);
      double u = std::uniform_real_distribution<double>(0, 1)(rng);
      s.ops[i] = u < c.read_ratio                    ? Op::kGet
                 : u < c.read_ratio + c.delete_ratio ? Op::kDelete
                                                     : Op::kPut;
    }
    if (c.value_size_max > c.value_size) {
      s.value_sizes.resize(c.stream_length);
      for (uint32_t& size : s.value_sizes) {
        size = static_cast<uint32_t>(c.value_size + rng() % (c.value_size_max - c.value_size + 1));
      }
    }
  }
  const size_t capacity = c.capacity_entries ? c.capacity_entries : c.keys;

  // ---- contenders ----
  std::unique_ptr<Cache> larder;
  std::unique_ptr<MutexLru> mutex_lru;
  std::unique_ptr<ShardedLru> sharded;
  std::unique_ptr<FlatCeiling> flat;
  std::vector<Target> targets;
  targets.push_back(Plain(
      "larder",
      [&](std::string_view k, char* b, size_t cap, size_t* len) {
        Status s = larder->GetInto(k, b, cap, len);
        return s == Status::kOk;
      },
      [&](std::string_view k, std::string_view v) {
        PutOptions p;
        p.ttl = std::chrono::milliseconds(c.ttl_ms);
        larder->Put(k, v, p);
      },
      [&](std::string_view k) { larder->Invalidate(k); },
      [&] {
        larder.reset();
        Options o;
        o.capacity_entries = capacity;
        o.capacity_bytes = c.capacity_bytes ? c.capacity_bytes : size_t{1} << 40;
        o.stripes = c.stripes;
        Cache::Create(o, &larder);
      }));
  for (const std::string& b : c.baselines) {
    if (b == "mutex") {
      targets.push_back(Plain(
          "mutex",
          [&](std::string_view k, char* buf, size_t cap, size_t* len) {
            return mutex_lru->Get(k, buf, cap, len);
          },
          [&](std::string_view k, std::string_view v) { mutex_lru->Put(k, v); },
          [&](std::string_view k) { mutex_lru->Erase(k); },
          [&] { mutex_lru = std::make_unique<MutexLru>(capacity); }));
    } else if (b == "sharded") {
      targets.push_back(Plain(
          "sharded",
          [&](std::string_view k, char* buf, size_t cap, size_t* len) {
            return sharded->Get(k, buf, cap, len);
          },
          [&](std::string_view k, std::string_view v) { sharded->Put(k, v); },
          [&](std::string_view k) { sharded->Erase(k); },
          [&] { sharded = std::make_unique<ShardedLru>(capacity); }));
    } else if (b == "flat") {
      if (c.read_ratio < 1.0) {
        std::fprintf(stderr, "note: 'flat' is a read-only ceiling; skipped (read ratio < 1)\n");
        continue;
      }
      targets.push_back(Plain(
          "flat",
          [&](std::string_view k, char* buf, size_t cap, size_t* len) {
            return flat->Get(k, buf, cap, len);
          },
          [&](std::string_view, std::string_view) {},  // never reached on a full, read-only map
          [&](std::string_view) {}, [&] { flat = std::make_unique<FlatCeiling>(); }));
    } else if (b == "redis" || b == "redis_pipelined") {
#if LARDER_BENCH_HIREDIS
      if (c.redis.empty()) {
        std::fprintf(stderr, "the redis baselines need --redis HOST:PORT\n");
        return 2;
      }
      const std::string host = c.redis.substr(0, c.redis.rfind(':'));
      const int port = std::atoi(c.redis.c_str() + c.redis.rfind(':') + 1);
      const std::string name = b;
      Target t;
      t.name = name;
      t.get = [host, port, name](std::string_view k, char* buf, size_t cap, size_t* len) {
        auto* reply = static_cast<redisReply*>(
            redisCommand(RedisFor(host, port, name), "GET %b", k.data(), k.size()));
        bool hit = reply != nullptr && reply->type == REDIS_REPLY_STRING;
        if (hit) {
          *len = reply->len;
          std::memcpy(buf, reply->str, std::min(cap, static_cast<size_t>(reply->len)));
        }
        if (reply != nullptr) freeReplyObject(reply);
        return hit;
      };
      t.put = [host, port, name, ttl = c.ttl_ms](std::string_view k, std::string_view v) {
        redisReply* reply =
            ttl > 0
                ? static_cast<redisReply*>(
                      redisCommand(RedisFor(host, port, name), "SET %b %b PX %lld", k.data(),
                                   k.size(), v.data(), v.size(), static_cast<long long>(ttl)))
                : static_cast<redisReply*>(redisCommand(RedisFor(host, port, name), "SET %b %b",
                                                        k.data(), k.size(), v.data(), v.size()));
        if (reply != nullptr) freeReplyObject(reply);
      };
      t.erase = [host, port, name](std::string_view k) {
        auto* reply = static_cast<redisReply*>(
            redisCommand(RedisFor(host, port, name), "DEL %b", k.data(), k.size()));
        if (reply != nullptr) freeReplyObject(reply);
      };
      t.reset = [host, port, name, capacity, &names, &value]() {
        redisContext* ctx = RedisFor(host, port, name);
        freeReplyObject(redisCommand(ctx, "FLUSHALL"));
        // An LRU bound like the caches' (in bytes: Redis has no entry bound).
        freeReplyObject(redisCommand(ctx, "CONFIG SET maxmemory-policy allkeys-lru"));
        (void)capacity;
        // Preload every key, pipelined (outside timing).
        for (size_t i = 0; i < names.size(); ++i) {
          redisAppendCommand(ctx, "SET %b %b", names[i].data(), names[i].size(), value.data(),
                             value.size());
          if (i % 1000 == 999 || i + 1 == names.size()) {
            for (size_t j = i - i % 1000; j <= i; ++j) {
              void* reply = nullptr;
              if (redisGetReply(ctx, &reply) == REDIS_OK && reply) freeReplyObject(reply);
            }
          }
        }
      };
      if (b == "redis_pipelined") {
        t.pipeline = 16;
        t.get_pipelined = [host, port, name](const std::string* const* keys, int n) {
          redisContext* ctx = RedisFor(host, port, name);
          for (int i = 0; i < n; ++i) {
            redisAppendCommand(ctx, "GET %b", keys[i]->data(), keys[i]->size());
          }
          int hits = 0;
          for (int i = 0; i < n; ++i) {
            void* reply = nullptr;
            if (redisGetReply(ctx, &reply) == REDIS_OK && reply != nullptr) {
              hits += static_cast<redisReply*>(reply)->type == REDIS_REPLY_STRING;
              freeReplyObject(reply);
            }
          }
          return hits;
        };
      }
      targets.push_back(std::move(t));
#else
      std::fprintf(stderr, "this larder-bench was built without hiredis\n");
      return 2;
#endif
    } else {
      std::fprintf(stderr,
                   "unknown baseline '%s' (known: mutex, sharded, flat, redis, "
                   "redis_pipelined)\n",
                   b.c_str());
      return 2;
    }
  }

  // ---- rounds: every contender runs once per round, in turn ----
  std::vector<Totals> totals(targets.size());
  for (int round = 0; round < c.rounds; ++round) {
    for (size_t ti = 0; ti < targets.size(); ++ti) {
      Target& t = targets[ti];
      t.reset();
      // Warm: every key once (the capacity keeps what fits), outside timing.
      if (t.name == "flat") {
        for (const std::string& k : names) flat->Put(k, value);
      } else if (t.name.rfind("redis", 0) != 0) {  // Redis preloads in reset()
        for (const std::string& k : names) t.put(k, value);
      }
      std::vector<ThreadResult> results(c.threads);
      std::vector<std::thread> threads;
      std::atomic<int> ready{0};
      std::atomic<bool> go{false};
      for (int th = 0; th < c.threads; ++th) {
        threads.emplace_back(RunThread, std::cref(t), std::cref(streams[th]), std::cref(names),
                             std::cref(value), c.seconds / c.rounds,
                             c.ops_per_thread / static_cast<uint64_t>(c.rounds), &ready, &go,
                             &results[th]);
      }
      while (ready.load() < c.threads) std::this_thread::yield();
      const auto start = Clock::now();
      go.store(true, std::memory_order_release);
      for (auto& th : threads) th.join();
      totals[ti].seconds += std::chrono::duration<double>(Clock::now() - start).count();
      for (ThreadResult& r : results) {
        totals[ti].ops += r.ops;
        totals[ti].gets += r.gets;
        totals[ti].hits += r.hits;
        totals[ti].latency_ns.insert(totals[ti].latency_ns.end(), r.latency_ns.begin(),
                                     r.latency_ns.end());
      }
    }
  }

  // ---- report ----
  std::printf(
      "workload: %s%s keys=%u value=%zuB read=%.2f delete=%.2f threads=%d capacity=%zu "
      "seconds=%.1f rounds=%d\n",
      c.dist.c_str(), c.dist == "zipf" ? ("(" + std::to_string(c.zipf_s) + ")").c_str() : "",
      c.keys, c.value_size, c.read_ratio, c.delete_ratio, c.threads, capacity, c.seconds, c.rounds);
  std::printf("%-10s %14s %9s %9s %9s %9s %9s\n", "target", "ops/s", "p50 ns", "p99 ns", "p99.9 ns",
              "hit %", "vs larder");
  std::vector<uint32_t> p50(targets.size()), p99(targets.size()), p999(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    p50[i] = totals[i].Percentile(0.50);
    p99[i] = totals[i].Percentile(0.99);
    p999[i] = totals[i].Percentile(0.999);
    if (summary != nullptr) {
      summary->push_back(
          {targets[i].name, totals[i].ops_per_s(), p50[i], p99[i], p999[i], totals[i].hit_ratio()});
    }
    std::printf("%-10s %14.0f %9u %9u %9u %9.2f %9.2fx\n", targets[i].name.c_str(),
                totals[i].ops_per_s(), p50[i], p99[i], p999[i], 100 * totals[i].hit_ratio(),
                totals[0].ops_per_s() / std::max(1.0, totals[i].ops_per_s()));
  }
  std::ostringstream json;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"workload\":{\"dist\":\"%s\",\"zipf_s\":%.3f,\"keys\":%u,\"value_size\":%zu,"
                "\"read_ratio\":%.3f,\"threads\":%d,\"capacity_entries\":%zu,\"seconds\":%.2f},",
                c.dist.c_str(), c.zipf_s, c.keys, c.value_size, c.read_ratio, c.threads, capacity,
                c.seconds);
  json << buf;
  auto stats_json = [&](size_t i) {
    std::snprintf(
        buf, sizeof buf,
        "{\"ops_per_s\":%.0f,\"p50_ns\":%u,\"p99_ns\":%u,\"p999_ns\":%u,\"hit_ratio\":%.6f}",
        totals[i].ops_per_s(), p50[i], p99[i], p999[i], totals[i].hit_ratio());
    return std::string(buf);
  };
  json << "\"larder\":" << stats_json(0) << ",\"baselines\":{";
  for (size_t i = 1; i < targets.size(); ++i) {
    json << (i > 1 ? "," : "") << "\"" << targets[i].name << "\":" << stats_json(i);
  }
  json << "},\"ratios\":{";
  for (size_t i = 1; i < targets.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s\"%s\":%.3f", i > 1 ? "," : "", targets[i].name.c_str(),
                  totals[0].ops_per_s() / std::max(1.0, totals[i].ops_per_s()));
    json << buf;
  }
  json << "}}";
  std::printf("%s\n", json.str().c_str());
  return 0;
}

int RunAndPlot(const RunConfig& config, const std::string& svg_path) {
  std::vector<int> thread_counts;
  for (int t = 1; t < config.threads; t *= 2) thread_counts.push_back(t);
  thread_counts.push_back(config.threads);
  std::vector<std::vector<TargetSummary>> rows;
  for (int t : thread_counts) {
    RunConfig c = config;
    c.threads = t;
    std::vector<TargetSummary> summary;
    if (int rc = Run(c, &summary); rc != 0) return rc;
    rows.push_back(std::move(summary));
  }
  const std::string data = svg_path + ".dat";
  FILE* f = std::fopen(data.c_str(), "w");
  if (f == nullptr) return 1;
  std::fprintf(f, "# threads");
  for (const TargetSummary& t : rows[0]) std::fprintf(f, " %s", t.name.c_str());
  std::fprintf(f, "\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    std::fprintf(f, "%d", thread_counts[i]);
    for (const TargetSummary& t : rows[i]) std::fprintf(f, " %.3f", t.ops_per_s / 1e6);
    std::fprintf(f, "\n");
  }
  std::fprintf(f, "\n\n# target p50 p99 p99.9 (ns, at %d threads)\n", thread_counts.back());
  for (const TargetSummary& t : rows.back()) {
    std::fprintf(f, "%s %u %u %u\n", t.name.c_str(), t.p50_ns, t.p99_ns, t.p999_ns);
  }
  std::fclose(f);
  FILE* g = popen("gnuplot", "w");
  if (g == nullptr) {
    std::fprintf(stderr, "gnuplot not found (Debian package gnuplot-nox)\n");
    return 1;
  }
  std::fprintf(g, "set terminal svg size 1000,420 dynamic font 'sans,11'\n");
  std::fprintf(g, "set output '%s'\n", svg_path.c_str());
  std::fprintf(g, "set multiplot layout 1,2\n");
  std::fprintf(g,
               "set title 'throughput (M ops/s)'; set xlabel 'threads'; set key top left; set "
               "yrange [0:*]\n");
  std::fprintf(g, "set xtics (");
  for (size_t i = 0; i < thread_counts.size(); ++i) {
    std::fprintf(g, "%s%d", i ? "," : "", thread_counts[i]);
  }
  std::fprintf(g, ")\n");
  std::fprintf(g, "plot ");
  for (size_t col = 0; col < rows[0].size(); ++col) {
    std::fprintf(g, "%s'%s' index 0 using 1:%zu with linespoints lw 2 title '%s'", col ? ", " : "",
                 data.c_str(), col + 2, rows[0][col].name.c_str());
  }
  std::fprintf(g, "\n");
  std::fprintf(g,
               "set title 'latency at %d threads (ns, log)'; set xlabel ''; set logscale y; set "
               "yrange [10:*]\n",
               thread_counts.back());
  std::fprintf(g, "set style data histograms; set style fill solid 0.8; set key top left\n");
  std::fprintf(g, "unset xtics; set xtics rotate by -30\n");
  std::fprintf(g,
               "plot '%s' index 1 using 2:xtic(1) title 'p50', '' index 1 using 3 title 'p99', "
               "'' index 1 using 4 title 'p99.9'\n",
               data.c_str());
  std::fprintf(g, "unset multiplot\n");
  int rc = pclose(g);
  if (rc != 0) return 1;
  std::printf("plot: %s (data in %s)\n", svg_path.c_str(), data.c_str());
  return 0;
}

}  // namespace larder::bench
