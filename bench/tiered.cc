// `larder-bench tiered`: Larder as each process's L1 in front of one Redis,
// against Redis alone, measured by several processes at once.
//
// The parent starts redis-server (tests/redis/redis_server.h), preloads the
// keys, and for each contender starts `procs` children (this binary,
// `tiered-child`), which generate their key streams, say "ready", wait for
// "go" on stdin, run for the given time and print one line of results. Only
// the parent's own Redis is ever used.
#include "tiered.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "larder/tiered.h"
#include "redis_server.h"

namespace larder::bench {
namespace {

using namespace std::chrono_literals;

int64_t MonoNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string KeyName(uint32_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key:%016u", i);  // 20 bytes, as `run`
  return buf;
}

const char* const kContenders[] = {"tiered", "redis", "redis_pipelined"};

// ---- the child ----

// One Redis connection per thread, for the Redis-alone contenders and the
// probe writer.
struct Redis {
  explicit Redis(int port) : c(redisConnect("127.0.0.1", port)) {
    if (c == nullptr || c->err != 0) {
      std::fprintf(stderr, "tiered-child: cannot connect to 127.0.0.1:%d\n", port);
      std::exit(2);
    }
  }
  ~Redis() { redisFree(c); }
  bool Get(const std::string& key, std::string* value) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()));
    bool hit = r != nullptr && r->type == REDIS_REPLY_STRING;
    if (hit) value->assign(r->str, r->len);
    if (r != nullptr) freeReplyObject(r);
    return hit;
  }
  void Set(const std::string& key, const std::string& value) {
    void* r = redisCommand(c, "SET %b %b", key.data(), key.size(), value.data(), value.size());
    if (r != nullptr) freeReplyObject(r);
  }
  int GetMany(const std::string* const* keys, int n) {
    for (int i = 0; i < n; ++i) redisAppendCommand(c, "GET %b", keys[i]->data(), keys[i]->size());
    int hits = 0;
    for (int i = 0; i < n; ++i) {
      void* r = nullptr;
      if (redisGetReply(c, &r) == REDIS_OK && r != nullptr) {
        hits += static_cast<redisReply*>(r)->type == REDIS_REPLY_STRING;
        freeReplyObject(r);
      }
    }
    return hits;
  }
  redisContext* c;
};

struct WorkerResult {
  uint64_t reads = 0, writes = 0;
  std::vector<uint32_t> latency_ns;  // sampled reads (per read, for pipelined batches)
};

int TieredChildMain(const std::map<std::string, std::string>& flags) {
  auto get = [&](const char* name) { return flags.at(name); };
  const std::string mode = get("mode");
  const int port = std::stoi(get("port"));
  const int proc = std::stoi(get("proc"));
  const int threads = std::stoi(get("threads"));
  const uint32_t keys = static_cast<uint32_t>(std::stoul(get("keys")));
  const double zipf_s = std::stod(get("zipf-s"));
  const double write_ratio = std::stod(get("write-ratio"));
  const size_t value_size = std::stoul(get("value-size"));
  const double seconds = std::stod(get("seconds"));
  const double warmup = std::stod(get("warmup"));
  const int pipeline = std::stoi(get("pipeline"));
  const uint64_t seed = std::stoull(get("seed"));
  if (port <= 0) return 2;

  // Streams, before any timing.
  std::vector<double> cdf(keys);
  double sum = 0;
  for (uint32_t i = 0; i < keys; ++i) cdf[i] = (sum += 1.0 / std::pow(i + 1.0, zipf_s));
  for (double& c : cdf) c /= sum;
  std::vector<std::string> names(keys);
  for (uint32_t i = 0; i < keys; ++i) names[i] = KeyName(i);
  constexpr size_t kStream = 1 << 18;
  std::vector<std::vector<uint32_t>> streams(threads);
  std::vector<std::vector<uint8_t>> is_write(threads);
  for (int t = 0; t < threads; ++t) {
    std::mt19937_64 rng(seed * 1000 + proc * 16 + t);
    std::uniform_real_distribution<double> u(0, 1);
    streams[t].resize(kStream);
    is_write[t].resize(kStream);
    for (size_t i = 0; i < kStream; ++i) {
      streams[t][i] =
          static_cast<uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
      is_write[t][i] = u(rng) < write_ratio;
    }
  }
  const std::string value(value_size, 'v');

  std::unique_ptr<TieredCache> tier;
  if (mode == "tiered") {
    TieredOptions o;
    o.l1.capacity_bytes = size_t{keys} * (value_size + 200) + (8 << 20);
    o.redis.port = port;
    o.l1.loader = [value](std::string_view) { return LoadResult::Value(value); };
    std::string why;
    if (TieredCache::Create(std::move(o), &tier, &why) != Status::kOk) {
      std::fprintf(stderr, "tiered-child: %s\n", why.c_str());
      return 2;
    }
  }
  if (tier) {
    // As `run` does: every key once, untimed, so the L1 starts warm (a
    // long-running service's L1 is; the timed warm-up below then lets the
    // writes' invalidations reach their steady state).
    for (const std::string& k : names) (void)tier->Get(k);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  char go[8];
  if (std::fgets(go, sizeof go, stdin) == nullptr) return 2;

  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false};  // after the warm-up
  std::vector<WorkerResult> results(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      WorkerResult& r = results[t];
      r.latency_ns.reserve(1 << 16);
      std::unique_ptr<Redis> redis;
      if (mode != "tiered") redis = std::make_unique<Redis>(port);
      std::string buf;
      const std::vector<uint32_t>& stream = streams[t];
      const std::vector<uint8_t>& writes = is_write[t];
      size_t i = 0;
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int batch = 0; batch < 256; ++batch) {
          const std::string& key = names[stream[i]];
          if (writes[i]) {
            if (tier) {
              tier->Set(key, value);
            } else {
              redis->Set(key, value);
            }
            r.writes += measuring.load(std::memory_order_relaxed);
            i = (i + 1) % kStream;
            continue;
          }
          const bool counted = measuring.load(std::memory_order_relaxed);
          const bool sample = counted && (n++ & 15) == 0;
          const int64_t start = sample ? MonoNanos() : 0;
          int done = 1;
          if (tier) {
            (void)tier->Get(key);
          } else if (mode == "redis") {
            redis->Get(key, &buf);
          } else {
            // Up to `pipeline` consecutive reads of the stream in one round
            // trip (a write ends the batch).
            const std::string* batch_keys[64];
            done = 0;
            size_t j = i;
            while (done < pipeline && done < 64 && !writes[j]) {
              batch_keys[done++] = &names[stream[j]];
              j = (j + 1) % kStream;
            }
            redis->GetMany(batch_keys, done);
            i = (j + kStream - 1) % kStream;  // the increment below moves past the batch
          }
          if (sample) {
            r.latency_ns.push_back(static_cast<uint32_t>((MonoNanos() - start) / done));
          }
          if (counted) r.reads += done;
          i = (i + 1) % kStream;
        }
      }
    });
  }
  // The probe: process 0 writes it every 20 ms; every process polls it.
  std::vector<uint32_t> probe_delays_us;
  std::thread probe_reader([&] {
    std::unique_ptr<Redis> redis;
    if (!tier) redis = std::make_unique<Redis>(port);
    long seen = -1;
    std::string v;
    while (!stop.load(std::memory_order_relaxed)) {
      bool ok = false;
      if (tier) {
        FetchResult r = tier->Get("probe");
        ok = r.status == Status::kOk;
        if (ok) v.assign(r.value.value());
      } else {
        ok = redis->Get("probe", &v);
      }
      const int64_t now = MonoNanos();
      if (ok) {
        char* end = nullptr;
        const long seq = std::strtol(v.c_str(), &end, 10);
        const long long written = std::strtoll(end + 1, nullptr, 10);
        if (seq > seen) {
          if (seen >= 0 && measuring.load(std::memory_order_relaxed)) {
            probe_delays_us.push_back(static_cast<uint32_t>((now - written) / 1000));
          }
          seen = seq;
        }
      }
      timespec pause{0, 100'000};
      nanosleep(&pause, nullptr);
    }
  });
  std::thread probe_writer;
  if (proc == 0) {
    probe_writer = std::thread([&] {
      std::unique_ptr<Redis> redis;
      if (!tier) redis = std::make_unique<Redis>(port);
      for (long seq = 1; !stop.load(std::memory_order_relaxed); ++seq) {
        std::this_thread::sleep_for(20ms);
        const std::string v = std::to_string(seq) + ":" + std::to_string(MonoNanos());
        if (tier) {
          tier->Set("probe", v);
        } else {
          redis->Set("probe", v);
        }
      }
    });
  }
  // Warm-up: every process fills its L1 (and Redis its caches) untimed.
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  TieredStats before;
  if (tier) before = tier->GetStats();
  const int64_t start = MonoNanos();
  measuring.store(true);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& w : workers) w.join();
  const double elapsed = static_cast<double>(MonoNanos() - start) / 1e9;
  probe_reader.join();
  if (probe_writer.joinable()) probe_writer.join();

  uint64_t reads = 0, writes = 0, l1_hits = 0, l1_reads = 0;
  std::vector<uint32_t> latency;
  for (WorkerResult& r : results) {
    reads += r.reads;
    writes += r.writes;
    latency.insert(latency.end(), r.latency_ns.begin(), r.latency_ns.end());
  }
  if (tier) {
    TieredStats s = tier->GetStats();
    l1_hits = s.l1.hits - before.l1.hits;
    l1_reads =
        l1_hits + (s.l1.misses - before.l1.misses) + (s.bypassed_reads - before.bypassed_reads);
  }
  std::printf("result %llu %llu %llu %llu %.6f\n", static_cast<unsigned long long>(reads),
              static_cast<unsigned long long>(writes), static_cast<unsigned long long>(l1_hits),
              static_cast<unsigned long long>(l1_reads), elapsed);
  std::printf("latency");
  for (uint32_t l : latency) std::printf(" %u", l);
  std::printf("\nprobe");
  for (uint32_t d : probe_delays_us) std::printf(" %u", d);
  std::printf("\n");
  std::fflush(stdout);
  return 0;
}

// ---- the parent ----

class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> args) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      execv("/proc/self/exe", argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~ChildProcess() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool Send(const char* line) { return write(to_, line, std::strlen(line)) > 0; }
  // The next line, or "" after `limit` or at EOF.
  std::string ReadLine(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd p{from_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[65536];
      ssize_t n = read(from_, chunk, sizeof chunk);
      if (n <= 0) return "";
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  bool Wait(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buf_;
};

struct Totals {
  uint64_t reads = 0, writes = 0, l1_hits = 0, l1_reads = 0;
  double seconds = 0;  // summed over rounds (each round's slowest process)
  std::vector<uint32_t> latency_ns, probe_us;
  double reads_per_s() const { return seconds > 0 ? reads / seconds : 0; }
};

template <typename T>
T Pct(std::vector<T>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

bool Preload(int port, uint32_t keys, size_t value_size) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (c == nullptr || c->err != 0) return false;
  freeReplyObject(redisCommand(c, "FLUSHALL"));
  const std::string value(value_size, 'v');
  for (uint32_t i = 0; i < keys; ++i) {
    const std::string k = KeyName(i);
    redisAppendCommand(c, "SET %b %b", k.data(), k.size(), value.data(), value.size());
    if (i % 1000 == 999 || i + 1 == keys) {
      for (uint32_t j = i - i % 1000; j <= i; ++j) {
        void* r = nullptr;
        if (redisGetReply(c, &r) != REDIS_OK) {
          redisFree(c);
          return false;
        }
        freeReplyObject(r);
      }
    }
  }
  freeReplyObject(redisCommand(c, "SET probe 0:0"));
  redisFree(c);
  return true;
}

}  // namespace

int TieredChild(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 0; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) return 2;
    flags[argv[i] + 2] = argv[i + 1];
  }
  try {
    return TieredChildMain(flags);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tiered-child: %s\n", e.what());
    return 2;
  }
}

int RunTiered(const TieredConfig& c) {
  testing::RedisServer redis;
  std::string why;
  if (!redis.Start({}, &why)) {
    std::fprintf(stderr, "larder-bench tiered: cannot start redis-server: %s\n", why.c_str());
    return 1;
  }
  const int ncontenders = 3;
  std::vector<Totals> totals(ncontenders);
  for (int round = 0; round < c.rounds; ++round) {
    for (int ci = 0; ci < ncontenders; ++ci) {
      if (!Preload(redis.port(), c.keys, c.value_size)) {
        std::fprintf(stderr, "larder-bench tiered: preload failed\n");
        return 1;
      }
      std::vector<std::unique_ptr<ChildProcess>> procs;
      for (int p = 0; p < c.procs; ++p) {
        procs.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
            "larder-bench",  "tiered-child",
            "--mode",        kContenders[ci],
            "--port",        std::to_string(redis.port()),
            "--proc",        std::to_string(p),
            "--threads",     std::to_string(c.threads),
            "--keys",        std::to_string(c.keys),
            "--zipf-s",      std::to_string(c.zipf_s),
            "--write-ratio", std::to_string(c.write_ratio),
            "--value-size",  std::to_string(c.value_size),
            "--seconds",     std::to_string(c.seconds),
            "--warmup",      std::to_string(c.warmup),
            "--pipeline",    std::to_string(c.pipeline),
            "--seed",        std::to_string(c.seed + static_cast<uint64_t>(round))}));
      }
      for (auto& p : procs) {
        if (p->ReadLine(60s) != "ready") {
          std::fprintf(stderr, "larder-bench tiered: a child did not start\n");
          return 1;
        }
      }
      for (auto& p : procs) p->Send("go\n");
      Totals& t = totals[ci];
      double slowest = 0;
      for (auto& p : procs) {
        const auto limit =
            std::chrono::milliseconds(static_cast<int64_t>(c.seconds * 1000) + 60000);
        for (int line = 0; line < 3; ++line) {
          std::istringstream in(p->ReadLine(limit));
          std::string kind;
          in >> kind;
          if (kind == "result") {
            uint64_t reads, writes, hits, l1_reads;
            double seconds;
            in >> reads >> writes >> hits >> l1_reads >> seconds;
            t.reads += reads;
            t.writes += writes;
            t.l1_hits += hits;
            t.l1_reads += l1_reads;
            slowest = std::max(slowest, seconds);
          } else if (kind == "latency") {
            for (uint32_t v; in >> v;) t.latency_ns.push_back(v);
          } else if (kind == "probe") {
            for (uint32_t v; in >> v;) t.probe_us.push_back(v);
          }
        }
        if (!p->Wait(10s)) {
          std::fprintf(stderr, "larder-bench tiered: a child failed\n");
          return 1;
        }
      }
      t.seconds += slowest;
    }
  }
  redis.Stop();

  std::printf(
      "workload: %d processes x %d thread(s), zipf(%.2f) over %u keys, %zu-byte values, "
      "%.1f%% writes, %.1f s (after %.1f s untimed) x %d rounds per contender\n",
      c.procs, c.threads, c.zipf_s, c.keys, c.value_size, 100 * c.write_ratio, c.seconds, c.warmup,
      c.rounds);
  std::printf("%-16s %12s %10s %10s %10s %12s %12s %12s\n", "contender", "reads/s", "p50 ns",
              "p99 ns", "L1 hit %", "probe p50 us", "probe p99 us", "probe max us");
  std::ostringstream json;
  json << "{\"workload\":{\"procs\":" << c.procs << ",\"threads\":" << c.threads
       << ",\"keys\":" << c.keys << ",\"zipf_s\":" << c.zipf_s
       << ",\"write_ratio\":" << c.write_ratio << ",\"value_size\":" << c.value_size
       << ",\"seconds\":" << c.seconds << ",\"warmup\":" << c.warmup << ",\"rounds\":" << c.rounds
       << "}";
  for (int ci = 0; ci < ncontenders; ++ci) {
    Totals& t = totals[ci];
    const uint32_t p50 = Pct(t.latency_ns, 0.5), p99 = Pct(t.latency_ns, 0.99);
    const uint32_t q50 = Pct(t.probe_us, 0.5), q99 = Pct(t.probe_us, 0.99),
                   qmax = Pct(t.probe_us, 1.0);
    const double hit = t.l1_reads ? 100.0 * t.l1_hits / t.l1_reads : 0;
    std::printf("%-16s %12.0f %10u %10u %10.2f %12u %12u %12u\n", kContenders[ci], t.reads_per_s(),
                p50, p99, hit, q50, q99, qmax);
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  ",\"%s\":{\"reads_per_s\":%.0f,\"p50_ns\":%u,\"p99_ns\":%u,\"l1_hit_ratio\":%.6f,"
                  "\"writes\":%llu,\"probe_p50_us\":%u,\"probe_p99_us\":%u,\"probe_max_us\":%u,"
                  "\"probe_samples\":%zu}",
                  kContenders[ci], t.reads_per_s(), p50, p99, hit / 100,
                  static_cast<unsigned long long>(t.writes), q50, q99, qmax, t.probe_us.size());
    json << buf;
  }
  const double r_plain = totals[0].reads_per_s() / std::max(1.0, totals[1].reads_per_s());
  const double r_pipe = totals[0].reads_per_s() / std::max(1.0, totals[2].reads_per_s());
  std::printf("tiered vs redis: %.1fx the reads/s; vs redis pipelined (%d per round trip): %.1fx\n",
              r_plain, c.pipeline, r_pipe);
  char buf[160];
  std::snprintf(buf, sizeof buf, ",\"ratios\":{\"redis\":%.3f,\"redis_pipelined\":%.3f}}", r_plain,
                r_pipe);
  json << buf;
  std::printf("%s\n", json.str().c_str());
  return 0;
}

}  // namespace larder::bench
