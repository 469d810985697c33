// One process of the multi-process tests (multiprocess_test.cc): a service
// instance with its own TieredCache in front of the test's Redis. The parent
// starts it, waits for "ready", and stops it by closing its stdin; it then
// prints what it saw on stdout and exits.
//
//   tier_proc reader --port P --key K
//     Reads K in a loop (a short pause between reads) and prints one line
//     per run of reads that returned the same version:
//       run <version> <first start ns> <last start ns> <last end ns> <reads>
//     (CLOCK_MONOTONIC, shared by every process of the machine), then
//       stats <tracking_losses> <reconnects> <bypassed_reads> <l1 hits> <l2 hits>
//   tier_proc stampede --port P --key K --lock 0|1 --threads N --ttl-ms T --load-ms L
//     N threads read K in a loop; the loader appends "<start ns> <pid>" to the
//     Redis list loads:K, sleeps L ms and returns a value with TTL T; prints
//       stats <loads> <lock_acquired> <lock_waits> <lock_wait_hits> <lock_fail_open>
#include <hiredis/hiredis.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "larder/tiered.h"

namespace {

using namespace std::chrono_literals;

int64_t MonoNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::atomic<bool> g_stop{false};

// The parent closes our stdin to stop us.
void WatchStdin() {
  std::thread([] {
    char c;
    while (read(0, &c, 1) > 0) {
    }
    g_stop.store(true);
  }).detach();
}

larder::TieredOptions Options(int port) {
  larder::TieredOptions o;
  o.l1.capacity_bytes = 1 << 20;
  o.redis.port = port;
  o.redis.command_timeout = 100ms;
  o.health_interval = 50ms;
  o.max_staleness = 500ms;  // the bound the parent checks
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  return o;
}

std::unique_ptr<larder::TieredCache> Make(larder::TieredOptions o) {
  std::unique_ptr<larder::TieredCache> t;
  std::string why;
  if (larder::TieredCache::Create(std::move(o), &t, &why) != larder::Status::kOk) {
    std::fprintf(stderr, "tier_proc: %s\n", why.c_str());
    std::exit(2);
  }
  return t;
}

void Pause(int64_t nanos) {
  timespec ts{0, nanos};
  nanosleep(&ts, nullptr);
}

int Reader(int port, const std::string& key) {
  auto tier = Make(Options(port));
  struct Run {
    long version;
    int64_t first_start, last_start, last_end;
    uint64_t reads;
  };
  std::vector<Run> runs;
  runs.reserve(4096);
  bool ready = false;
  while (!g_stop.load()) {
    const int64_t start = MonoNanos();
    larder::FetchResult r = tier->Get(key);
    const int64_t end = MonoNanos();
    if (r.status == larder::Status::kOk) {
      const long version = std::strtol(std::string(r.value.value()).c_str(), nullptr, 10);
      if (runs.empty() || runs.back().version != version) {
        runs.push_back({version, start, start, end, 0});
      }
      runs.back().last_start = start;
      runs.back().last_end = end;
      ++runs.back().reads;
      if (!ready) {
        std::printf("ready\n");
        std::fflush(stdout);
        ready = true;
      }
    }
    Pause(50'000);  // a service reads often, but not in a tight spin
  }
  for (const Run& run : runs) {
    std::printf("run %ld %lld %lld %lld %llu\n", run.version,
                static_cast<long long>(run.first_start), static_cast<long long>(run.last_start),
                static_cast<long long>(run.last_end), static_cast<unsigned long long>(run.reads));
  }
  larder::TieredStats s = tier->GetStats();
  std::printf(
      "stats %llu %llu %llu %llu %llu\n", static_cast<unsigned long long>(s.tracking_losses),
      static_cast<unsigned long long>(s.reconnects),
      static_cast<unsigned long long>(s.bypassed_reads), static_cast<unsigned long long>(s.l1.hits),
      static_cast<unsigned long long>(s.l2_hits));
  return 0;
}

int Stampede(int port, const std::string& key, bool lock, int threads, int ttl_ms, int load_ms) {
  redisContext* log = redisConnect("127.0.0.1", port);
  if (log == nullptr || log->err != 0) return 2;
  std::mutex log_mu;
  std::atomic<uint64_t> loads{0};
  larder::TieredOptions o = Options(port);
  o.stampede_lock = lock;
  o.lock_lease = 2s;
  o.l1.loader = [&](std::string_view k) {
    loads.fetch_add(1);
    {
      std::lock_guard<std::mutex> guard(log_mu);
      const std::string entry =
          std::to_string(MonoNanos()) + " " + std::to_string(static_cast<long>(getpid()));
      const std::string list = "loads:" + std::string(k);
      void* reply =
          redisCommand(log, "RPUSH %b %b", list.data(), list.size(), entry.data(), entry.size());
      if (reply != nullptr) freeReplyObject(reply);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(load_ms));
    return larder::LoadResult::Value("value", std::chrono::milliseconds(ttl_ms));
  };
  auto tier = Make(o);
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<std::thread> readers;
  for (int i = 0; i < threads; ++i) {
    readers.emplace_back([&] {
      while (!g_stop.load()) {
        (void)tier->Get(key);
        Pause(200'000);
      }
    });
  }
  for (auto& t : readers) t.join();
  larder::TieredStats s = tier->GetStats();
  std::printf("stats %llu %llu %llu %llu %llu\n", static_cast<unsigned long long>(loads.load()),
              static_cast<unsigned long long>(s.lock_acquired),
              static_cast<unsigned long long>(s.lock_waits),
              static_cast<unsigned long long>(s.lock_wait_hits),
              static_cast<unsigned long long>(s.lock_fail_open));
  tier.reset();
  redisFree(log);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::map<std::string, std::string> flags;
  for (int i = 2; i + 1 < argc; i += 2) flags[argv[i]] = argv[i + 1];
  auto flag = [&](const char* name, const char* fallback) {
    auto it = flags.find(name);
    return it == flags.end() ? std::string(fallback) : it->second;
  };
  const int port = std::atoi(flag("--port", "0").c_str());
  if (port <= 0) return 2;  // never a default port: only the test's own Redis
  WatchStdin();
  const std::string role = argv[1];
  if (role == "reader") return Reader(port, flag("--key", "hot"));
  if (role == "stampede") {
    return Stampede(port, flag("--key", "hot"), flag("--lock", "1") == "1",
                    std::atoi(flag("--threads", "2").c_str()),
                    std::atoi(flag("--ttl-ms", "300").c_str()),
                    std::atoi(flag("--load-ms", "50").c_str()));
  }
  return 2;
}
