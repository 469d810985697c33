// The seed problem at scale: a stampede on one expired hot key, and a hot key
// read continuously across many TTL periods with early refresh on.
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"

namespace larder {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kStampedeThreads = 200;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int kStampedeThreads = 200;
#else
constexpr int kStampedeThreads = 1000;
#endif
#else
constexpr int kStampedeThreads = 1000;
#endif

TEST(Stampede, ThousandThreadsMissingOneExpiredKeyCauseExactlyOneLoad) {
  auto clock = std::make_shared<ManualClock>();
  Options o;
  o.capacity_bytes = 1 << 20;
  o.clock = clock;
  std::unique_ptr<Cache> cache;
  ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);
  PutOptions p;
  p.ttl = 1s;
  cache->Put("hot", "old", p);
  clock->Advance(2s);  // the popular key has just expired

  std::atomic<int> loader_calls{0};
  auto loader = [&](std::string_view) {
    loader_calls.fetch_add(1);
    std::this_thread::sleep_for(50ms);  // a slow database query
    return LoadResult::Value("fresh", 60s);
  };
  std::barrier start(kStampedeThreads);
  std::atomic<int> got_fresh{0}, waited{0};
  std::vector<std::thread> threads;
  threads.reserve(kStampedeThreads);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kStampedeThreads; ++i) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      FetchResult r = cache->GetOrLoad("hot", loader);
      if (r.status == Status::kOk && r.value.value() == "fresh") got_fresh.fetch_add(1);
      if (r.source == FetchSource::kJoined) waited.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(loader_calls.load(), 1);
  EXPECT_EQ(got_fresh.load(), kStampedeThreads);
  Stats s = cache->GetStats();
  EXPECT_EQ(s.loads, 1u);
  std::printf(
      "stampede: %d threads, %d loader call(s), %d joined the flight, %llu coalesced, "
      "%.0f ms wall\n",
      kStampedeThreads, loader_calls.load(), waited.load(),
      static_cast<unsigned long long>(s.coalesced_waits), ms);
}

TEST(SustainedLoad, WithEarlyRefreshNoReaderWaitsAfterTheFirstLoad) {
  // A hot key with TTL T and load cost d, read every millisecond of
  // simulated time for 200 TTL periods. Refreshes run on a manual executor
  // right after the read that started them (the loader advances the clock by
  // d), so the run is deterministic.
  constexpr auto kTtl = 1s;
  constexpr auto kLoadCost = 50ms;
  constexpr auto kStep = 1ms;
  constexpr int kPeriods = 200;
  auto clock = std::make_shared<ManualClock>();
  std::vector<std::function<void()>> queued;
  int loads = 0;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.clock = clock;
  o.random_seed = 2015;
  o.loader = [&](std::string_view) {
    ++loads;
    clock->Advance(kLoadCost);
    return LoadResult::Value("v" + std::to_string(loads), kTtl);
  };
  o.refresh_executor = [&](std::function<void()> task) { queued.push_back(std::move(task)); };
  std::unique_ptr<Cache> cache;
  ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);
  uint64_t reads = 0, waits = 0;
  const int64_t end = clock->NowNanos() + kPeriods * std::chrono::nanoseconds(kTtl).count();
  while (clock->NowNanos() < end) {
    FetchResult r = cache->GetOrLoad("hot");
    ASSERT_EQ(r.status, Status::kOk);
    ++reads;
    if (reads > 1 && (r.source == FetchSource::kLoaded || r.source == FetchSource::kJoined)) {
      ++waits;
    }
    for (auto& task : queued) task();
    queued.clear();
    clock->Advance(kStep);
  }
  Stats s = cache->GetStats();
  const double refreshes_per_period = static_cast<double>(s.refreshes_started) / kPeriods;
  std::printf(
      "sustained load: %llu reads over %d TTL periods, %llu waits after the first load, "
      "%llu refreshes (%.2f per TTL period), %llu discarded\n",
      static_cast<unsigned long long>(reads), kPeriods, static_cast<unsigned long long>(waits),
      static_cast<unsigned long long>(s.refreshes_started), refreshes_per_period,
      static_cast<unsigned long long>(s.refreshes_discarded));
  EXPECT_EQ(waits, 0u);
  EXPECT_EQ(s.loads, 1u);
  EXPECT_GE(refreshes_per_period, 1.0);  // it kept the key fresh...
  EXPECT_LE(refreshes_per_period, 1.5);  // ...without refreshing much more than once per TTL
}

TEST(SustainedLoad, WithoutEarlyRefreshEveryExpiryMakesReadersWait) {
  // The control: the same workload with beta = 0 waits once per TTL period.
  auto clock = std::make_shared<ManualClock>();
  Options o;
  o.capacity_bytes = 1 << 20;
  o.clock = clock;
  o.refresh_beta = 0;
  std::unique_ptr<Cache> cache;
  ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);
  auto loader = [&](std::string_view) {
    clock->Advance(50ms);
    return LoadResult::Value("v", 1s);
  };
  uint64_t waits = 0;
  const int64_t end = clock->NowNanos() + 50 * 1'000'000'000ll;
  while (clock->NowNanos() < end) {
    if (cache->GetOrLoad("hot", loader).source == FetchSource::kLoaded) ++waits;
    clock->Advance(1ms);
  }
  EXPECT_GE(waits, 45u);
  std::printf("control without early refresh: %llu loads in the callers' path over 50 periods\n",
              static_cast<unsigned long long>(waits));
}

}  // namespace
}  // namespace larder
