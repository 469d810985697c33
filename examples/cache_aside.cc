// Cache-aside in front of a slow "database", with TTL, eviction and stats.
// The full demo (SQLite, concurrent clients, stampedes) is its own program;
// this one shows the engine's basic promises in a few screens of output.
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

#include "larder/cache.h"

using namespace std::chrono_literals;

namespace {

// Stands in for a database: every query costs a millisecond.
class SlowStore {
 public:
  std::string Query(const std::string& key) {
    ++queries_;
    std::this_thread::sleep_for(1ms);
    return "profile-of-" + key;
  }
  int queries() const { return queries_; }

 private:
  int queries_ = 0;
};

std::string GetUser(larder::Cache& cache, SlowStore& db, const std::string& key) {
  std::string value;
  if (cache.Get(key, &value) == larder::Status::kOk) return value;  // hit
  value = db.Query(key);                                            // miss: load...
  cache.Put(key, value);                                            // ...and fill
  return value;
}

}  // namespace

int main() {
  auto clock = std::make_shared<larder::ManualClock>();
  std::map<larder::RemovalCause, int> removals;
  larder::Options options;
  options.capacity_bytes = 64 * 1024;
  options.capacity_entries = 100;  // at most 100 users in memory
  options.stripes = 1;             // a tiny cache: one stripe keeps exact LRU order
  options.default_ttl = 30s;
  options.clock = clock;  // simulated time, so the demo runs instantly
  options.removal_listener = [&](std::string_view, std::string_view, larder::RemovalCause c) {
    ++removals[c];
  };
  std::unique_ptr<larder::Cache> cache;
  if (larder::Cache::Create(options, &cache) != larder::Status::kOk) return 1;
  SlowStore db;

  std::printf("1. cache-aside: 1,000 reads over 50 users\n");
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) GetUser(*cache, db, "user:" + std::to_string(i % 50));
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  larder::Stats s = cache->GetStats();
  std::printf("   %d database queries for 1,000 reads (hit ratio %.1f%%), %.1f ms\n", db.queries(),
              100 * s.hit_ratio(), ms.count());

  std::printf("2. TTL: 31 simulated seconds later every entry has expired\n");
  clock->Advance(31s);
  int before = db.queries();
  for (int i = 0; i < 50; ++i) GetUser(*cache, db, "user:" + std::to_string(i));
  std::printf("   50 reads -> %d fresh database queries, %llu expirations so far\n",
              db.queries() - before,
              static_cast<unsigned long long>(cache->GetStats().expirations));

  std::printf("3. eviction: 300 distinct users into a 100-entry cache\n");
  for (int i = 0; i < 300; ++i) GetUser(*cache, db, "user:" + std::to_string(1000 + i));
  s = cache->GetStats();
  std::printf("   %llu entries resident (bound 100), %llu evictions, %llu bytes charged\n",
              static_cast<unsigned long long>(s.entries),
              static_cast<unsigned long long>(s.evictions),
              static_cast<unsigned long long>(s.bytes));

  std::printf("4. invalidation: a write to the store invalidates the cached copy\n");
  cache->Invalidate("user:1299");
  size_t dropped = cache->InvalidatePrefix("user:12");
  std::printf("   invalidate one key, then the prefix 'user:12' (%zu more entries)\n", dropped);

  s = cache->GetStats();
  std::printf(
      "\nstats: hits %llu, misses %llu, hit ratio %.1f%%, puts %llu, evictions %llu, "
      "expirations %llu, invalidations %llu, entries %llu\n",
      static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
      100 * s.hit_ratio(), static_cast<unsigned long long>(s.puts),
      static_cast<unsigned long long>(s.evictions), static_cast<unsigned long long>(s.expirations),
      static_cast<unsigned long long>(s.invalidations), static_cast<unsigned long long>(s.entries));
  std::printf("removal listener saw:");
  for (auto& [cause, n] : removals) std::printf(" %s=%d", larder::RemovalCauseName(cause), n);
  std::printf("\n");
  return 0;
}
