// Memory of removed entries goes back once no reader can see it, and the
// per-thread epoch records survive threads that use the cache while exiting.
#include <thread>
#include <vector>

#include "entry.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using testing::MakeCache;
using testing::SmallCache;

TEST(Reclamation, ClearGivesEveryEntryBack) {
  const int64_t before = internal::LiveEntryAllocations();
  Options o;
  o.capacity_bytes = 64 << 20;
  o.stripes = 8;
  auto cache = MakeCache(o);
  for (int i = 0; i < 10000; ++i) cache->Put("k" + std::to_string(i), "v");
  for (int i = 0; i < 10000; i += 3) cache->Get("k" + std::to_string(i));
  EXPECT_EQ(internal::LiveEntryAllocations() - before, 10000);
  cache->Clear();
  EXPECT_EQ(internal::LiveEntryAllocations() - before, 0);
}

TEST(Reclamation, ReplacedAndEvictedEntriesAreFreedWhileTheCacheRuns) {
  const int64_t before = internal::LiveEntryAllocations();
  auto cache = SmallCache(100);
  for (int i = 0; i < 100000; ++i) {
    cache->Put("k" + std::to_string(i % 300), std::to_string(i));
    cache->Get("k" + std::to_string((i * 7) % 300));
  }
  // Resident entries plus at most a small batch awaiting its grace period.
  EXPECT_LE(internal::LiveEntryAllocations() - before, 100 + 64);
  cache->CleanUp();
  EXPECT_EQ(internal::LiveEntryAllocations() - before, 100);
}

TEST(Reclamation, APinDelaysTheFreeUntilItIsReleased) {
  const int64_t before = internal::LiveEntryAllocations();
  auto cache = SmallCache(10);
  cache->Put("k", "v");
  PinnedValue pin = cache->Pin("k");
  cache->Invalidate("k");
  cache->CleanUp();
  EXPECT_EQ(internal::LiveEntryAllocations() - before, 1);
  EXPECT_EQ(pin.value(), "v");
  pin.Reset();
  EXPECT_EQ(internal::LiveEntryAllocations() - before, 0);
}

Cache* g_cache_for_exit_test = nullptr;

struct UsesTheCacheWhenDestroyed {
  ~UsesTheCacheWhenDestroyed() {
    g_cache_for_exit_test->Get("shared");
    g_cache_for_exit_test->Put("exiting", "v");
  }
};

TEST(Reclamation, ThreadsMayUseTheCacheFromThreadLocalDestructors) {
  auto cache = SmallCache(1000);
  g_cache_for_exit_test = cache.get();
  cache->Put("shared", "v");
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) cache->Get("shared");
  });
  for (int round = 0; round < 20; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        thread_local UsesTheCacheWhenDestroyed at_exit;  // constructed before the first Get
        (void)&at_exit;
        for (int i = 0; i < 100; ++i) {
          cache->Get("shared");
          cache->Put("k" + std::to_string(i), "v");
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  stop = true;
  reader.join();
  EXPECT_TRUE(cache->Contains("exiting"));
  g_cache_for_exit_test = nullptr;
}

}  // namespace
}  // namespace larder
