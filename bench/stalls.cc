// `larder-bench stalls`: latency of get and put (with eviction) on a cache of
// 1 M entries while half of them expire at once, and while another thread
// invalidates a prefix matching 1% of the keys. Every operation is timed.
#include "stalls.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "larder/cache.h"

namespace larder::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string KeyOf(uint32_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "g%02u:%015u", i % 100, i);  // 20 bytes; g07: is 1%
  return buf;
}

struct Window {
  std::vector<uint32_t> get_ns, put_ns;
};

uint32_t Pct(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

}  // namespace

int RunStalls(const StallsConfig& c) {
  Options o;
  o.capacity_entries = c.entries;
  o.capacity_bytes = size_t{1} << 34;
  std::unique_ptr<Cache> cache;
  Cache::Create(o, &cache);
  const std::string value(100, 'v');
  std::vector<std::string> keys(c.entries + c.entries / 10);
  for (uint32_t i = 0; i < keys.size(); ++i) keys[i] = KeyOf(i);
  // Half the entries expire together, two phases after the fill began; the
  // measurement starts one phase after it began, so the first window sees no
  // expiry, the second sees all of it, the third a prefix invalidation.
  const auto phase = std::chrono::duration<double>(c.phase_seconds);
  PutOptions short_ttl;
  short_ttl.ttl = std::chrono::duration_cast<std::chrono::nanoseconds>(2 * phase);
  const auto fill_start = Clock::now();
  for (uint32_t i = 0; i < c.entries; ++i) {
    if (i % 2 == 0) {
      cache->Put(keys[i], value, short_ttl);
    } else {
      cache->Put(keys[i], value);
    }
  }
  if (Clock::now() > fill_start + phase) {
    std::fprintf(stderr, "the fill took longer than a phase: use a longer --phase-seconds\n");
    return 1;
  }
  std::this_thread::sleep_until(fill_start + phase);
  const auto start = Clock::now();
  Window windows[3];  // steady, mass expiry, prefix invalidation
  std::atomic<int64_t> prefix_ms{-1};
  std::thread invalidator([&] {
    std::this_thread::sleep_until(start + 2 * phase + phase / 4);
    auto t0 = Clock::now();
    size_t n = cache->InvalidatePrefix("g07:");
    prefix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    std::printf("prefix invalidation removed %zu entries in %lld ms (another thread)\n", n,
                static_cast<long long>(prefix_ms.load()));
  });
  std::mt19937_64 rng(1);
  std::vector<uint32_t> stream(1 << 20);
  for (uint32_t& k : stream) k = static_cast<uint32_t>(rng() % keys.size());
  std::string out;
  size_t i = 0;
  for (;;) {
    const auto now = Clock::now();
    if (now - start >= 3 * phase) break;
    Window& w = windows[std::min<int>(2, static_cast<int>((now - start) / phase))];
    const std::string& key = keys[stream[i++ & (stream.size() - 1)]];
    const bool put = (i % 10) == 0;
    const auto t0 = Clock::now();
    if (put) {
      cache->Put(key, value);  // keys beyond the capacity: evictions
    } else {
      cache->Get(key, &out);
    }
    const uint32_t ns = static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    (put ? w.put_ns : w.get_ns).push_back(ns);
  }
  invalidator.join();
  const char* names[3] = {"steady", "mass_expiry", "prefix_invalidation"};
  std::printf("%-20s %10s %10s %10s %10s %10s %10s\n", "window", "get p99", "get p99.9", "get max",
              "put p99", "put p99.9", "put max");
  std::string json = "{";
  for (int k = 0; k < 3; ++k) {
    Window& w = windows[k];
    const uint32_t g99 = Pct(w.get_ns, 0.99), g999 = Pct(w.get_ns, 0.999),
                   gmax = Pct(w.get_ns, 1.0), p99 = Pct(w.put_ns, 0.99),
                   p999 = Pct(w.put_ns, 0.999), pmax = Pct(w.put_ns, 1.0);
    std::printf("%-20s %10u %10u %10u %10u %10u %10u   (ns)\n", names[k], g99, g999, gmax, p99,
                p999, pmax);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s\"%s\":{\"get_p999_ns\":%u,\"put_p999_ns\":%u,\"get_max_ns\":%u,"
                  "\"put_max_ns\":%u}",
                  k ? "," : "", names[k], g999, p999, gmax, pmax);
    json += buf;
  }
  Stats s = cache->GetStats();
  std::printf("expirations %llu, evictions %llu, invalidations %llu\n",
              static_cast<unsigned long long>(s.expirations),
              static_cast<unsigned long long>(s.evictions),
              static_cast<unsigned long long>(s.invalidations));
  std::printf("%s,\"prefix_ms\":%lld}\n", json.c_str(), static_cast<long long>(prefix_ms.load()));
  return 0;
}

}  // namespace larder::bench
