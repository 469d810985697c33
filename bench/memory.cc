// `larder-bench memory`: bytes per entry and resident memory per live byte,
// each measured in a fresh child process (so one figure's heap does not
// colour the next), with jemalloc and with glibc malloc side by side.
#include "memory.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "baselines.h"
#include "entry.h"
#include "larder/cache.h"
#if LARDER_BENCH_TIERED
#include <hiredis/hiredis.h>

#include "redis_server.h"
#endif

namespace larder::bench {
namespace {

size_t ResidentBytes(const char* statm = "/proc/self/statm") {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen(statm, "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

std::string Key20(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key:%016llu", static_cast<unsigned long long>(i));
  return buf;
}

// Runs `larder-bench memory-child ARGS` with LARDER_ALLOCATOR set; returns its
// last output line.
std::string RunChild(const std::string& allocator, const std::vector<std::string>& args) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return "";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    close(pipefd[0]);
    setenv("LARDER_ALLOCATOR", allocator.c_str(), 1);
    std::vector<char*> argv;
    std::string self = "/proc/self/exe", sub = "memory-child";
    argv.push_back(self.data());
    argv.push_back(sub.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  waitpid(pid, nullptr, 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  size_t nl = out.rfind('\n');
  return nl == std::string::npos ? out : out.substr(nl + 1);
}

double Field(const std::string& json, const std::string& name) {
  size_t at = json.find("\"" + name + "\":");
  return at == std::string::npos ? -1 : std::atof(json.c_str() + at + name.size() + 3);
}

#if LARDER_BENCH_TIERED
// A Redis of the bench's own (redis-server on PATH, no persistence, started
// with `args`) and one connection to it.
class OwnRedis {
 public:
  bool Start(const std::vector<std::string>& args, const char* figure) {
    std::string error;
    if (!server_.Start(args, &error)) {
      std::fprintf(stderr, "memory: no Redis %s: %s\n", figure, error.c_str());
      return false;
    }
    statm_ = "/proc/" + std::to_string(server_.pid()) + "/statm";
    c_ = redisConnect("127.0.0.1", server_.port());
    return c_ != nullptr && c_->err == 0;
  }
  ~OwnRedis() {
    if (c_ != nullptr) redisFree(c_);
  }
  size_t Resident() const { return ResidentBytes(statm_.c_str()); }
  // INFO memory's used_memory: what Redis's allocator counts as in use.
  double UsedMemory() const {
    const std::string info = server_.Command({"INFO", "memory"});
    const size_t at = info.find("used_memory:");
    return at == std::string::npos ? -1 : std::atof(info.c_str() + at + 12);
  }
  std::string Version() const {
    const std::string info = server_.Command({"INFO", "server"});
    const size_t at = info.find("redis_version:");
    return at == std::string::npos ? "?"
                                   : info.substr(at + 14, info.find_first_of("\r\n", at) - at - 14);
  }
  // Sends `count` commands, append(c, i) queueing the i-th, in pipelined
  // batches, and hands each reply to on_reply. False when the connection
  // failed.
  template <typename Append, typename OnReply>
  bool Pipeline(uint64_t count, Append&& append, OnReply&& on_reply) {
    constexpr uint64_t kBatch = 256;
    for (uint64_t i = 0; i < count; i += kBatch) {
      const uint64_t batch = std::min(kBatch, count - i);
      for (uint64_t j = 0; j < batch; ++j) append(c_, i + j);
      for (uint64_t j = 0; j < batch; ++j) {
        void* reply = nullptr;
        if (redisGetReply(c_, &reply) != REDIS_OK || reply == nullptr) return false;
        on_reply(*static_cast<const redisReply*>(reply));
        freeReplyObject(reply);
      }
    }
    return true;
  }

 private:
  testing::RedisServer server_;
  redisContext* c_ = nullptr;
  std::string statm_;
};

// The same entries in Redis, by pipelined SETs: the growth of the server
// process's resident set per entry, as Larder's figure is its process's, and
// of used_memory beside it. Empty when no Redis could be started.
std::string RedisFill(uint64_t n, uint64_t value_size) {
  OwnRedis redis;
  if (!redis.Start({}, "figure")) return "";
  const size_t rss_before = redis.Resident();
  const double used_before = redis.UsedMemory();
  const std::string value(value_size, 'v');
  const bool ok = redis.Pipeline(
      n,
      [&](redisContext* c, uint64_t i) {
        const std::string key = Key20(i);
        redisAppendCommand(c, "SET %b %b", key.data(), key.size(), value.data(), value.size());
      },
      [](const redisReply&) {});
  if (!ok) return "";
  char json[256];
  std::snprintf(json, sizeof json,
                "{\"rss_per_entry\":%.1f,\"used_memory_per_entry\":%.1f,\"version\":\"%s\"}",
                static_cast<double>(redis.Resident() - rss_before) / n,
                (redis.UsedMemory() - used_before) / n, redis.Version().c_str());
  return json;
}

// Larder's churn, replayed into a Redis bounded by maxmemory with
// allkeys-lru (the same keys, sizes and order): the server's resident bytes
// per live byte, live being the keys and values it holds at the end (asked
// with STRLEN).
std::string RedisChurn(uint64_t puts, uint64_t capacity) {
  OwnRedis redis;
  if (!redis.Start({"--maxmemory", std::to_string(capacity), "--maxmemory-policy", "allkeys-lru"},
                   "churn figure")) {
    return "";
  }
  const size_t rss_before = redis.Resident();
  std::mt19937_64 rng(42);
  const std::string big(4096, 'x');
  const uint64_t key_space = 4 * capacity / 2080;
  bool ok = redis.Pipeline(
      puts,
      [&](redisContext* c, uint64_t) {
        const size_t len = 64 + rng() % (4096 - 64 + 1);
        const std::string key = Key20(rng() % key_space);
        redisAppendCommand(c, "SET %b %b", key.data(), key.size(), big.data(), len);
      },
      [](const redisReply&) {});
  // What is left: every key's value length (0 for an evicted key).
  double live = 0;  // values and their 20-byte keys
  ok = ok && redis.Pipeline(
                 key_space,
                 [&](redisContext* c, uint64_t i) {
                   const std::string key = Key20(i);
                   redisAppendCommand(c, "STRLEN %b", key.data(), key.size());
                 },
                 [&](const redisReply& r) {
                   if (r.integer > 0) live += static_cast<double>(r.integer) + 20;
                 });
  if (!ok) return "";
  const size_t rss = redis.Resident() - rss_before;
  char json[256];
  std::snprintf(json, sizeof json,
                "{\"rss_per_live_byte\":%.3f,\"rss_mib\":%.1f,\"live_mib\":%.1f,"
                "\"used_memory_mib\":%.1f}",
                static_cast<double>(rss) / live, rss / 1048576.0, live / 1048576.0,
                redis.UsedMemory() / 1048576.0);
  return json;
}
#else
std::string RedisFill(uint64_t, uint64_t) { return ""; }
std::string RedisChurn(uint64_t, uint64_t) { return ""; }
#endif

}  // namespace

int MemoryChild(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::string mode = argv[0];
  const uint64_t n = std::strtoull(argv[1], nullptr, 10);
  // The fill's value size comes from RunMemory through the environment.
  const char* value_size = std::getenv("LARDER_BENCH_VALUE_SIZE");
  const std::string value(value_size != nullptr ? std::strtoull(value_size, nullptr, 10) : 100,
                          'v');
  const size_t before = ResidentBytes();
  if (mode == "fill-larder") {
    // argv[2], if given: a TTL in seconds for every put (the fill's cost
    // with expiry bookkeeping beside the same without).
    const int64_t ttl_seconds = argc > 2 ? std::strtoll(argv[2], nullptr, 10) : 0;
    Options o;
    o.capacity_bytes = size_t{1} << 40;
    o.capacity_entries = n;
    std::unique_ptr<Cache> cache;
    Cache::Create(o, &cache);
    std::vector<std::string> keys;
    keys.reserve(n);
    for (uint64_t i = 0; i < n; ++i) keys.push_back(Key20(i));
    const size_t keys_resident = ResidentBytes();
    PutOptions put;
    put.ttl = std::chrono::seconds(ttl_seconds);
    using SteadyClock = std::chrono::steady_clock;
    const uint64_t last_tenth = n - n / 10;
    const auto start = SteadyClock::now();
    auto tail_start = start;
    for (uint64_t i = 0; i < n; ++i) {
      if (i == last_tenth) tail_start = SteadyClock::now();
      cache->Put(keys[i], value, put);
    }
    const auto end = SteadyClock::now();
    const size_t after = ResidentBytes();
    keys.clear();
    keys.shrink_to_fit();
    const double ns = std::chrono::duration<double, std::nano>(end - start).count();
    const double tail_ns = std::chrono::duration<double, std::nano>(end - tail_start).count();
    std::printf(
        "{\"rss_per_entry\":%.1f,\"entries\":%zu,\"value_size\":%zu,\"header_bytes\":%zu,"
        "\"overhead_charged\":%zu,\"allocator\":\"%s\",\"fill_ns_per_put\":%.1f,"
        "\"fill_last_tenth_ns_per_put\":%.1f}\n",
        static_cast<double>(after - keys_resident) / n, cache->Size(), value.size(),
        offsetof(internal::Entry, data), EntryOverhead(), internal::AllocatorName(), ns / n,
        tail_ns / static_cast<double>(n - last_tenth));
  } else if (mode == "fill-mutex") {
    MutexLru lru(n);
    for (uint64_t i = 0; i < n; ++i) lru.Put(Key20(i), value);
    std::printf("{\"rss_per_entry\":%.1f}\n", static_cast<double>(ResidentBytes() - before) / n);
  } else if (mode == "churn") {
    const uint64_t capacity = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 256ull << 20;
    Options o;
    o.capacity_bytes = capacity;
    std::unique_ptr<Cache> cache;
    Cache::Create(o, &cache);
    std::mt19937_64 rng(42);
    std::string big(4096, 'x');
    // Keys over four times what fits, values 64 B to 4 KiB: constant eviction
    // and replacement with varied sizes, the allocator's hard case.
    const uint64_t key_space = 4 * capacity / 2080;
    for (uint64_t i = 0; i < n; ++i) {
      const size_t len = 64 + rng() % (4096 - 64 + 1);
      cache->Put(Key20(rng() % key_space), std::string_view(big.data(), len));
    }
    cache->CleanUp();
    const Stats s = cache->GetStats();
    const double live =
        static_cast<double>(s.bytes) - static_cast<double>(s.entries) * EntryOverhead();
    const size_t after = ResidentBytes();
    std::printf(
        "{\"rss_per_live_byte\":%.3f,\"rss_mib\":%.1f,\"live_mib\":%.1f,\"entries\":%llu,"
        "\"allocator\":\"%s\"}\n",
        static_cast<double>(after - before) / live, (after - before) / 1048576.0, live / 1048576.0,
        static_cast<unsigned long long>(s.entries), internal::AllocatorName());
  } else {
    return 2;
  }
  return 0;
}

int RunMemory(const MemoryConfig& c) {
  const std::string n = std::to_string(c.entries);
  setenv("LARDER_BENCH_VALUE_SIZE", std::to_string(c.value_size).c_str(), 1);  // for the fills
  const std::string jl = RunChild("jemalloc", {"fill-larder", n});
  const std::string jt = RunChild("jemalloc", {"fill-larder", n, "300"});
  const std::string gl = RunChild("system", {"fill-larder", n});
  const std::string gm = RunChild("system", {"fill-mutex", n});
  const std::string jc = RunChild(
      "jemalloc", {"churn", std::to_string(c.churn_puts), std::to_string(c.churn_capacity)});
  const std::string gc =
      RunChild("system", {"churn", std::to_string(c.churn_puts), std::to_string(c.churn_capacity)});
  const std::string redis = RedisFill(c.entries, c.value_size);
  // Every value crosses a socket: a fifth of the puts keeps this to seconds
  // and still replaces the cache's contents several times over.
  const uint64_t redis_churn_puts = std::max<uint64_t>(1, c.churn_puts / 5);
  const std::string redis_churn = RedisChurn(redis_churn_puts, c.churn_capacity);
  std::printf("memory: %llu entries of 20-byte keys and %llu-byte values\n",
              static_cast<unsigned long long>(c.entries),
              static_cast<unsigned long long>(c.value_size));
  std::printf("  metadata per entry: %.0f-byte header + index share (charged as %.0f)\n",
              Field(jl, "header_bytes"), Field(jl, "overhead_charged"));
  std::printf(
      "  resident per entry: larder+jemalloc %.1f B (with a TTL: %.1f B), larder+glibc %.1f B, "
      "mutex LRU (std containers, glibc) %.1f B\n",
      Field(jl, "rss_per_entry"), Field(jt, "rss_per_entry"), Field(gl, "rss_per_entry"),
      Field(gm, "rss_per_entry"));
  if (!redis.empty()) {
    const size_t v = redis.find("\"version\":\"");
    std::printf("  Redis %s, the same entries: %.1f B resident per entry (used_memory: %.1f B)\n",
                v == std::string::npos
                    ? "?"
                    : redis.substr(v + 11, redis.find('"', v + 11) - v - 11).c_str(),
                Field(redis, "rss_per_entry"), Field(redis, "used_memory_per_entry"));
  }
  std::printf(
      "  fill (jemalloc), ns per put over the whole fill / its last tenth: no TTL %.0f / %.0f, "
      "5-minute TTL %.0f / %.0f\n",
      Field(jl, "fill_ns_per_put"), Field(jl, "fill_last_tenth_ns_per_put"),
      Field(jt, "fill_ns_per_put"), Field(jt, "fill_last_tenth_ns_per_put"));
  std::printf("churn: %llu puts of 64 B-4 KiB values into a %llu MiB cache\n",
              static_cast<unsigned long long>(c.churn_puts),
              static_cast<unsigned long long>(c.churn_capacity >> 20));
  std::printf(
      "  resident per live byte: jemalloc %.3f (%.1f MiB for %.1f MiB live), glibc %.3f "
      "(%.1f MiB for %.1f MiB live)\n",
      Field(jc, "rss_per_live_byte"), Field(jc, "rss_mib"), Field(jc, "live_mib"),
      Field(gc, "rss_per_live_byte"), Field(gc, "rss_mib"), Field(gc, "live_mib"));
  if (!redis_churn.empty()) {
    std::printf(
        "  Redis (maxmemory %llu MiB, allkeys-lru, the first %llu of the same puts): %.3f "
        "(%.1f MiB for %.1f MiB live; used_memory %.1f MiB)\n",
        static_cast<unsigned long long>(c.churn_capacity >> 20),
        static_cast<unsigned long long>(redis_churn_puts), Field(redis_churn, "rss_per_live_byte"),
        Field(redis_churn, "rss_mib"), Field(redis_churn, "live_mib"),
        Field(redis_churn, "used_memory_mib"));
  }
  std::printf(
      "{\"entries\":%llu,\"value_size\":%llu,\"header_bytes\":%.0f,\"overhead_charged\":%.0f,"
      "\"rss_per_entry\":{\"larder_jemalloc\":%.1f,\"larder_jemalloc_ttl\":%.1f,"
      "\"larder_glibc\":%.1f,\"mutex_glibc\":%.1f,"
      "\"redis\":%.1f},"
      "\"churn_rss_per_live_byte\":{\"jemalloc\":%.3f,\"glibc\":%.3f,\"redis\":%.3f},"
      "\"fill_ns_per_put\":{\"no_ttl\":%.1f,\"ttl\":%.1f,\"no_ttl_last_tenth\":%.1f,"
      "\"ttl_last_tenth\":%.1f}}\n",
      static_cast<unsigned long long>(c.entries),
      static_cast<unsigned long long>(Field(jl, "value_size")), Field(jl, "header_bytes"),
      Field(jl, "overhead_charged"), Field(jl, "rss_per_entry"), Field(jt, "rss_per_entry"),
      Field(gl, "rss_per_entry"), Field(gm, "rss_per_entry"),
      redis.empty() ? -1.0 : Field(redis, "rss_per_entry"), Field(jc, "rss_per_live_byte"),
      Field(gc, "rss_per_live_byte"),
      redis_churn.empty() ? -1.0 : Field(redis_churn, "rss_per_live_byte"),
      Field(jl, "fill_ns_per_put"), Field(jt, "fill_ns_per_put"),
      Field(jl, "fill_last_tenth_ns_per_put"), Field(jt, "fill_last_tenth_ns_per_put"));
  return 0;
}

}  // namespace larder::bench
