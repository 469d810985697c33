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

// Every key of the workload in one array of 20-byte records: a key costs the
// harness one address computation, not a std::string (and its cache miss).
class KeyTable {
 public:
  static constexpr size_t kKeyBytes = 20;
  explicit KeyTable(uint32_t n) : bytes_(static_cast<size_t>(n) * kKeyBytes), n_(n) {
    char buf[32];
    for (uint32_t i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof buf, "key:%016u", i);  // 20 bytes
      std::memcpy(bytes_.data() + static_cast<size_t>(i) * kKeyBytes, buf, kKeyBytes);
    }
  }
  std::string_view operator[](uint32_t i) const {
    return {bytes_.data() + static_cast<size_t>(i) * kKeyBytes, kKeyBytes};
  }
  uint32_t size() const { return n_; }

 private:
  std::vector<char> bytes_;
  uint32_t n_;
};

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

// What one thread of a run needs.
struct ThreadJob {
  const Stream* stream;
  const KeyTable* keys;
  const std::string* value;
  double seconds;
  uint64_t op_limit;
  std::atomic<int>* ready;
  std::atomic<bool>* go;
  ThreadResult* out;
};

// The contenders' calls are direct: the loop is instantiated per contender
// type, so no operation goes through a std::function or a virtual call (that
// cost, about 400 ns per operation in the first harness, squeezed every
// ratio toward 1). A contender has Get, Put and Erase; one with kPipeline > 1
// also has GetPipelined (a batch of gets in one round trip).
template <typename C>
void RunThread(C& contender, const ThreadJob& job) {
  const Stream& s = *job.stream;
  const KeyTable& keys = *job.keys;
  const std::string& value = *job.value;
  std::vector<char> buf(value.size() + 64);
  job.ready->fetch_add(1);
  while (!job.go->load(std::memory_order_acquire)) {
  }
  const auto deadline = Clock::now() + std::chrono::duration<double>(job.seconds);
  size_t i = 0;
  const size_t n = s.keys.size();
  ThreadResult r;
  r.latency_ns.reserve(1 << 16);
  for (;;) {
    for (size_t batch = 0; batch < 1024; ++batch, i = (i + 1 == n ? 0 : i + 1)) {
      const std::string_view key = keys[s.keys[i]];
      const std::string_view v = s.value_sizes.empty()
                                     ? std::string_view(value)
                                     : std::string_view(value.data(), s.value_sizes[i]);
      const bool sample = (r.ops & kLatencySampleMask) == 0;
      Clock::time_point start;
      if (sample) start = Clock::now();
      if constexpr (C::kPipeline > 1) {
        if (s.ops[i] == Op::kGet) {
          // A pipelined batch of gets counts as that many operations; the
          // latency sample is the batch's, divided by its size.
          std::string_view group[C::kPipeline];
          int m = 0;
          while (m < C::kPipeline) {
            group[m++] = keys[s.keys[i]];
            if (m < C::kPipeline) i = (i + 1 == n ? 0 : i + 1);
          }
          r.hits += contender.GetPipelined(group, m);
          r.gets += m;
          r.ops += m - 1;
          if (sample) {
            r.latency_ns.push_back(static_cast<uint32_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count() /
                m));
          }
          ++r.ops;
          continue;
        }
      }
      switch (s.ops[i]) {
        case Op::kGet: {
          size_t len = 0;
          ++r.gets;
          if (contender.Get(key, buf.data(), buf.size(), &len)) {
            ++r.hits;
          } else {
            contender.Put(key, v);  // cache-aside fill
          }
          break;
        }
        case Op::kPut:
          contender.Put(key, v);
          break;
        case Op::kDelete:
          contender.Erase(key);
          break;
      }
      if (sample) {
        r.latency_ns.push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
      }
      ++r.ops;
    }
    if (job.op_limit != 0 ? r.ops >= job.op_limit : Clock::now() >= deadline) break;
  }
  *job.out = std::move(r);
}

// The harness alone: every get hits without touching memory. Its rate is the
// ceiling any contender could reach in this harness; reported beside them.
struct NoopCache {
  static constexpr int kPipeline = 1;
  bool Get(std::string_view key, char*, size_t, size_t* len) {
    *len = key.size();
    return true;
  }
  void Put(std::string_view, std::string_view) {}
  void Erase(std::string_view) {}
};

struct LarderContender {
  static constexpr int kPipeline = 1;
  bool Get(std::string_view k, char* b, size_t cap, size_t* len) {
    return cache->GetInto(k, b, cap, len) == Status::kOk;
  }
  void Put(std::string_view k, std::string_view v) { cache->Put(k, v, put); }
  void Erase(std::string_view k) { cache->Invalidate(k); }
  std::unique_ptr<Cache> cache;
  PutOptions put;
};

// A baseline class (baselines.h) as a contender.
template <typename B>
struct Baseline {
  static constexpr int kPipeline = 1;
  bool Get(std::string_view k, char* b, size_t cap, size_t* len) {
    return impl->Get(k, b, cap, len);
  }
  void Put(std::string_view k, std::string_view v) { impl->Put(k, v); }
  void Erase(std::string_view k) { impl->Erase(k); }
  std::unique_ptr<B> impl;
};

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

template <int kBatch>
struct RedisContender {
  static constexpr int kPipeline = kBatch;
  redisContext* Ctx() const { return RedisFor(host, port, name); }
  bool Get(std::string_view k, char* buf, size_t cap, size_t* len) {
    auto* reply = static_cast<redisReply*>(redisCommand(Ctx(), "GET %b", k.data(), k.size()));
    bool hit = reply != nullptr && reply->type == REDIS_REPLY_STRING;
    if (hit) {
      *len = reply->len;
      std::memcpy(buf, reply->str, std::min(cap, static_cast<size_t>(reply->len)));
    }
    if (reply != nullptr) freeReplyObject(reply);
    return hit;
  }
  int GetPipelined(const std::string_view* keys, int n) {
    redisContext* ctx = Ctx();
    for (int i = 0; i < n; ++i) redisAppendCommand(ctx, "GET %b", keys[i].data(), keys[i].size());
    int hits = 0;
    for (int i = 0; i < n; ++i) {
      void* reply = nullptr;
      if (redisGetReply(ctx, &reply) == REDIS_OK && reply != nullptr) {
        hits += static_cast<redisReply*>(reply)->type == REDIS_REPLY_STRING;
        freeReplyObject(reply);
      }
    }
    return hits;
  }
  void Put(std::string_view k, std::string_view v) {
    redisReply* reply =
        ttl_ms > 0 ? static_cast<redisReply*>(redisCommand(Ctx(), "SET %b %b PX %lld", k.data(),
                                                           k.size(), v.data(), v.size(),
                                                           static_cast<long long>(ttl_ms)))
                   : static_cast<redisReply*>(
                         redisCommand(Ctx(), "SET %b %b", k.data(), k.size(), v.data(), v.size()));
    if (reply != nullptr) freeReplyObject(reply);
  }
  void Erase(std::string_view k) {
    auto* reply = static_cast<redisReply*>(redisCommand(Ctx(), "DEL %b", k.data(), k.size()));
    if (reply != nullptr) freeReplyObject(reply);
  }
  // Empties the server and preloads every key, pipelined (outside timing).
  void Reset(const KeyTable& keys, const std::string& value) {
    redisContext* ctx = Ctx();
    freeReplyObject(redisCommand(ctx, "FLUSHALL"));
    freeReplyObject(redisCommand(ctx, "CONFIG SET maxmemory-policy allkeys-lru"));
    for (uint32_t i = 0; i < keys.size(); ++i) {
      redisAppendCommand(ctx, "SET %b %b", keys[i].data(), keys[i].size(), value.data(),
                         value.size());
      if (i % 1000 == 999 || i + 1 == keys.size()) {
        for (uint32_t j = i - i % 1000; j <= i; ++j) {
          void* reply = nullptr;
          if (redisGetReply(ctx, &reply) == REDIS_OK && reply) freeReplyObject(reply);
        }
      }
    }
  }
  std::string host, name;
  int port = 0;
  int64_t ttl_ms = 0;
};
#endif

// A contender as the rounds see it: type-erased once per thread, not per op.
struct Target {
  std::string name;
  std::function<void()> reset;  // a fresh instance, warmed (every key once, the most popular last)
  std::function<void(const ThreadJob&)> run;
};

template <typename C>
Target MakeTarget(std::string name, std::shared_ptr<C> contender, std::function<void(C&)> reset) {
  Target t;
  t.name = std::move(name);
  t.reset = [contender, reset] { reset(*contender); };
  t.run = [contender](const ThreadJob& job) { RunThread(*contender, job); };
  return t;
}

}  // namespace

int Run(const RunConfig& c, std::vector<TargetSummary>* summary) {
  // ---- workload, generated before any timing ----
  const KeyTable keys(c.keys);
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
  // Every key once, least popular first (key i has Zipf rank i): a cache
  // smaller than the key space starts with the most popular keys, near its
  // steady state. In rank order it started with the least popular ones, and
  // each contender's hit ratio then depended on how many operations it
  // managed in its time slice: the faster, the smaller the share of the
  // cold start.
  auto warm = [&](auto& contender) {
    for (uint32_t i = static_cast<uint32_t>(keys.size()); i-- > 0;) contender.Put(keys[i], value);
  };

  // ---- contenders: Larder first (without TTLs), the harness last ----
  std::vector<Target> targets;
  auto add_larder = [&](const std::string& name, int64_t ttl_ms) {
    targets.push_back(MakeTarget<LarderContender>(
        name, std::make_shared<LarderContender>(), [&, ttl_ms](LarderContender& l) {
          l.cache.reset();
          Options o;
          o.capacity_entries = capacity;
          o.capacity_bytes = c.capacity_bytes ? c.capacity_bytes : size_t{1} << 40;
          o.stripes = c.stripes;
          Cache::Create(o, &l.cache);
          l.put.ttl = std::chrono::milliseconds(ttl_ms);
          warm(l);
        }));
  };
  add_larder("larder", 0);
  // Real caches set TTLs: with --ttl, Larder runs with and without them, side
  // by side (the LRU baselines have no TTL).
  if (c.ttl_ms > 0) add_larder("larder_ttl", c.ttl_ms);
  for (const std::string& b : c.baselines) {
    if (b == "mutex") {
      targets.push_back(MakeTarget<Baseline<MutexLru>>(
          "mutex", std::make_shared<Baseline<MutexLru>>(), [&](Baseline<MutexLru>& m) {
            m.impl = std::make_unique<MutexLru>(capacity);
            warm(m);
          }));
    } else if (b == "sharded") {
      targets.push_back(MakeTarget<Baseline<ShardedLru>>(
          "sharded", std::make_shared<Baseline<ShardedLru>>(), [&](Baseline<ShardedLru>& m) {
            m.impl = std::make_unique<ShardedLru>(capacity);
            warm(m);
          }));
    } else if (b == "flat") {
      if (c.read_ratio < 1.0) {
        std::fprintf(stderr, "note: 'flat' is a read-only ceiling; skipped (read ratio < 1)\n");
        continue;
      }
      targets.push_back(MakeTarget<Baseline<FlatCeiling>>(
          "flat", std::make_shared<Baseline<FlatCeiling>>(), [&](Baseline<FlatCeiling>& m) {
            m.impl = std::make_unique<FlatCeiling>();
            warm(m);
          }));
    } else if (b == "limit") {
      if (c.read_ratio < 1.0) {
        std::fprintf(stderr, "note: 'limit' is a read-only floor; skipped (read ratio < 1)\n");
        continue;
      }
      targets.push_back(MakeTarget<Baseline<LookupLimit>>(
          "limit", std::make_shared<Baseline<LookupLimit>>(), [&](Baseline<LookupLimit>& m) {
            m.impl = std::make_unique<LookupLimit>(keys.size(), KeyTable::kKeyBytes, largest);
            warm(m);
          }));
    } else if (b == "redis" || b == "redis_pipelined") {
#if LARDER_BENCH_HIREDIS
      if (c.redis.empty()) {
        std::fprintf(stderr, "the redis baselines need --redis HOST:PORT\n");
        return 2;
      }
      auto configure = [&](auto& r) {
        r.host = c.redis.substr(0, c.redis.rfind(':'));
        r.port = std::atoi(c.redis.c_str() + c.redis.rfind(':') + 1);
        r.name = b;
        r.ttl_ms = c.ttl_ms;
      };
      if (b == "redis") {
        auto r = std::make_shared<RedisContender<1>>();
        configure(*r);
        targets.push_back(MakeTarget<RedisContender<1>>(
            b, r, [&](RedisContender<1>& x) { x.Reset(keys, value); }));
      } else {
        auto r = std::make_shared<RedisContender<16>>();  // 16 GETs per round trip
        configure(*r);
        targets.push_back(MakeTarget<RedisContender<16>>(
            b, r, [&](RedisContender<16>& x) { x.Reset(keys, value); }));
      }
#else
      std::fprintf(stderr, "this larder-bench was built without hiredis\n");
      return 2;
#endif
    } else {
      std::fprintf(stderr,
                   "unknown baseline '%s' (known: mutex, sharded, flat, limit, redis, "
                   "redis_pipelined)\n",
                   b.c_str());
      return 2;
    }
  }
  targets.push_back(
      MakeTarget<NoopCache>("harness", std::make_shared<NoopCache>(), [](NoopCache&) {}));

  // ---- rounds: every contender runs once per round, in turn ----
  std::vector<Totals> totals(targets.size());
  for (int round = 0; round < c.rounds; ++round) {
    for (size_t ti = 0; ti < targets.size(); ++ti) {
      Target& t = targets[ti];
      t.reset();
      std::vector<ThreadResult> results(c.threads);
      std::vector<std::thread> threads;
      std::atomic<int> ready{0};
      std::atomic<bool> go{false};
      for (int th = 0; th < c.threads; ++th) {
        ThreadJob job{&streams[th],
                      &keys,
                      &value,
                      c.seconds / c.rounds,
                      c.ops_per_thread / static_cast<uint64_t>(c.rounds),
                      &ready,
                      &go,
                      &results[th]};
        threads.emplace_back([&t, job] { t.run(job); });
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
    if (summary != nullptr && targets[i].name != "harness") {  // the plot shows caches only
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
  // "larder_ttl" (with --ttl) sits beside "larder"; the harness is reported
  // on its own: ns per operation of the loop with a cache that does nothing.
  const size_t harness = targets.size() - 1;
  size_t first_baseline = 1;
  if (targets.size() > 2 && targets[1].name == "larder_ttl") {
    json << "\"larder_ttl\":" << stats_json(1) << ",";
    first_baseline = 2;
  }
  json << "\"larder\":" << stats_json(0) << ",\"baselines\":{";
  for (size_t i = first_baseline; i < harness; ++i) {
    json << (i > first_baseline ? "," : "") << "\"" << targets[i].name << "\":" << stats_json(i);
  }
  json << "},\"ratios\":{";
  for (size_t i = first_baseline; i < harness; ++i) {
    std::snprintf(buf, sizeof buf, "%s\"%s\":%.3f", i > first_baseline ? "," : "",
                  targets[i].name.c_str(),
                  totals[0].ops_per_s() / std::max(1.0, totals[i].ops_per_s()));
    json << buf;
  }
  if (first_baseline == 2) {
    std::snprintf(buf, sizeof buf, "},\"ttl_ratios\":{\"larder_ttl_vs_larder\":%.3f",
                  totals[1].ops_per_s() / std::max(1.0, totals[0].ops_per_s()));
    json << buf;
    for (size_t i = first_baseline; i < harness; ++i) {
      std::snprintf(buf, sizeof buf, ",\"%s\":%.3f", targets[i].name.c_str(),
                    totals[1].ops_per_s() / std::max(1.0, totals[i].ops_per_s()));
      json << buf;
    }
  }
  std::snprintf(
      buf, sizeof buf, "},\"harness\":{\"ops_per_s\":%.0f,\"ns_per_op_per_thread\":%.1f}}",
      totals[harness].ops_per_s(),
      totals[harness].ops_per_s() > 0 ? 1e9 * c.threads / totals[harness].ops_per_s() : 0.0);
  json << buf;
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
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::fprintf(g,
               "set title 'throughput (M ops/s)%s'; set xlabel 'threads'; set key top left; set "
               "yrange [0:*]\n",
               thread_counts.back() > static_cast<int>(cores)
                   ? (" - past " + std::to_string(cores) + " threads: oversubscribed").c_str()
                   : "");
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
