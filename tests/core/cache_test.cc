// Basic promises of the engine: what goes in comes out, byte for byte.
#include "larder/cache.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "test_util.h"

namespace larder {
namespace {

using testing::GetOr;
using testing::MakeCache;
using testing::SmallCache;

TEST(Cache, PutThenGetReturnsTheValue) {
  auto cache = SmallCache(10);
  ASSERT_EQ(cache->Put("k", "v1"), Status::kOk);
  EXPECT_EQ(GetOr(*cache, "k"), "v1");
  EXPECT_EQ(cache->Get("k"), std::optional<std::string>("v1"));
}

TEST(Cache, MissReturnsNotFound) {
  auto cache = SmallCache(10);
  std::string v = "untouched";
  EXPECT_EQ(cache->Get("absent", &v), Status::kNotFound);
  EXPECT_EQ(v, "untouched");
  EXPECT_EQ(cache->Get("absent"), std::nullopt);
}

TEST(Cache, KeysAndValuesAreBinarySafe) {
  auto cache = SmallCache(10);
  const std::string key("a\0b\xff", 4);
  const std::string value("\0\0zero\0bytes\x80", 13);
  ASSERT_EQ(cache->Put(key, value), Status::kOk);
  EXPECT_EQ(GetOr(*cache, key), value);
  EXPECT_EQ(GetOr(*cache, std::string("a\0c\xff", 4)), "<miss>");  // differs after the NUL
}

TEST(Cache, EmptyValueIsAllowedAndDistinctFromMiss) {
  auto cache = SmallCache(10);
  ASSERT_EQ(cache->Put("empty", ""), Status::kOk);
  std::string v = "x";
  EXPECT_EQ(cache->Get("empty", &v), Status::kOk);
  EXPECT_EQ(v, "");
  EXPECT_TRUE(cache->Contains("empty"));
}

TEST(Cache, PutReplacesTheValue) {
  auto cache = SmallCache(10);
  cache->Put("k", "old");
  cache->Put("k", "new, and longer than the old one");
  EXPECT_EQ(GetOr(*cache, "k"), "new, and longer than the old one");
  EXPECT_EQ(cache->Size(), 1u);
}

TEST(Cache, ContainsDoesNotCountAsHitOrMiss) {
  auto cache = SmallCache(10);
  cache->Put("k", "v");
  EXPECT_TRUE(cache->Contains("k"));
  EXPECT_FALSE(cache->Contains("other"));
  Stats s = cache->GetStats();
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.misses, 0u);
}

TEST(Cache, InvalidateRemovesOneKey) {
  auto cache = SmallCache(10);
  cache->Put("a", "1");
  cache->Put("b", "2");
  EXPECT_EQ(cache->Invalidate("a"), Status::kOk);
  EXPECT_EQ(cache->Invalidate("a"), Status::kNotFound);
  EXPECT_FALSE(cache->Contains("a"));
  EXPECT_EQ(GetOr(*cache, "b"), "2");
}

TEST(Cache, InvalidatePrefixRemovesExactlyTheMatchingKeys) {
  Options o;
  o.capacity_bytes = 64 << 20;
  o.stripes = 8;
  auto cache = MakeCache(o);
  for (int i = 0; i < 5000; ++i) {
    cache->Put("user:" + std::to_string(i), "u");
    cache->Put("item:" + std::to_string(i), "i");
  }
  cache->Put("use", "shorter than the prefix");
  EXPECT_EQ(cache->InvalidatePrefix("user:"), 5000u);
  for (int i = 0; i < 5000; ++i) {
    ASSERT_FALSE(cache->Contains("user:" + std::to_string(i)));
    ASSERT_TRUE(cache->Contains("item:" + std::to_string(i)));
  }
  EXPECT_TRUE(cache->Contains("use"));
  EXPECT_EQ(cache->Size(), 5001u);
  EXPECT_EQ(cache->GetStats().invalidations, 5000u);
}

TEST(Cache, ClearEmptiesEveryStripe) {
  Options o;
  o.capacity_bytes = 64 << 20;
  o.stripes = 16;
  auto cache = MakeCache(o);
  for (int i = 0; i < 3000; ++i) cache->Put("k" + std::to_string(i), "v");
  cache->Clear();
  EXPECT_EQ(cache->Size(), 0u);
  EXPECT_EQ(cache->Charge(), 0u);
  EXPECT_FALSE(cache->Contains("k1"));
  cache->Put("k1", "again");  // usable after Clear
  EXPECT_EQ(GetOr(*cache, "k1"), "again");
}

TEST(Cache, SizeAndChargeFollowPutsAndRemovals) {
  auto cache = SmallCache(10);
  cache->Put("ab", "12345");
  cache->Put("cde", "");
  EXPECT_EQ(cache->Size(), 2u);
  EXPECT_EQ(cache->Charge(), (2 + 5) + (3 + 0) + 2 * EntryOverhead());
  cache->Invalidate("ab");
  EXPECT_EQ(cache->Charge(), 3 + EntryOverhead());
}

TEST(Cache, StatsArithmetic) {
  auto cache = SmallCache(2);
  cache->Put("a", "1");
  cache->Put("b", "2");
  cache->Get("a");          // hit
  cache->Get("zz");         // miss
  cache->Put("c", "3");     // evicts b (a was used more recently)
  cache->Get("b");          // miss
  cache->Put("a", "1bis");  // replace: a put, not an eviction
  cache->Invalidate("c");
  Stats s = cache->GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.puts, 4u);
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.invalidations, 1u);
  EXPECT_EQ(s.expirations, 0u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, 1 + 4 + EntryOverhead());
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 1.0 / 3.0);
  EXPECT_EQ(s.capacity_entries, 2u);
}

TEST(Cache, GetIntoCopiesOrReportsTheNeededSize) {
  auto cache = SmallCache(10);
  cache->Put("k", "0123456789");
  char buf[16];
  size_t n = 0;
  EXPECT_EQ(cache->GetInto("k", buf, sizeof buf, &n), Status::kOk);
  EXPECT_EQ(std::string(buf, n), "0123456789");
  char tiny[4] = {'x', 'x', 'x', 'x'};
  EXPECT_EQ(cache->GetInto("k", tiny, sizeof tiny, &n), Status::kBufferTooSmall);
  EXPECT_EQ(n, 10u);
  EXPECT_EQ(std::string(tiny, 4), "xxxx");  // nothing copied
  EXPECT_EQ(cache->GetInto("k", nullptr, 0, &n), Status::kBufferTooSmall);
  EXPECT_EQ(cache->GetInto("absent", buf, sizeof buf, &n), Status::kNotFound);
}

TEST(Cache, VisitSeesTheValueWithoutCopying) {
  auto cache = SmallCache(10);
  cache->Put("k", "value");
  size_t seen = 0;
  EXPECT_EQ(cache->Visit("k", [&](std::string_view v) { seen = v.size(); }), Status::kOk);
  EXPECT_EQ(seen, 5u);
  EXPECT_EQ(cache->Visit("none", [&](std::string_view) { seen = 99; }), Status::kNotFound);
  EXPECT_EQ(seen, 5u);
}

TEST(Cache, ManyKeysGrowTheIndexWithoutLosingAny) {
  auto cache = SmallCache(100000);
  for (int i = 0; i < 100000; ++i)
    ASSERT_EQ(cache->Put(std::to_string(i), std::to_string(i * 7)), Status::kOk);
  for (int i = 0; i < 100000; i += 7)
    ASSERT_EQ(GetOr(*cache, std::to_string(i)), std::to_string(i * 7));
  for (int i = 0; i < 100000; i += 2) ASSERT_EQ(cache->Invalidate(std::to_string(i)), Status::kOk);
  for (int i = 1; i < 100000; i += 2) ASSERT_TRUE(cache->Contains(std::to_string(i)));
  EXPECT_EQ(cache->Size(), 50000u);
}

TEST(Cache, DefaultStripesAreAPowerOfTwoAndShrinkForSmallCaches) {
  Options big;
  big.capacity_bytes = size_t{1} << 30;
  auto a = MakeCache(big);
  EXPECT_GE(a->stripe_count(), 16u);
  EXPECT_EQ(a->stripe_count() & (a->stripe_count() - 1), 0u);
  Options small;
  small.capacity_bytes = 64 * 1024;
  auto b = MakeCache(small);
  EXPECT_LE(b->stripe_count(), 2u);
  Options explicit_stripes;
  explicit_stripes.capacity_bytes = size_t{1} << 30;
  explicit_stripes.stripes = 5;
  EXPECT_EQ(MakeCache(explicit_stripes)->stripe_count(), 8u);
}

TEST(Cache, CountLiveAndForEachLiveSkipExpiredAndStaleEntries) {
  using namespace std::chrono_literals;
  auto clock = std::make_shared<ManualClock>();
  Options o;
  o.capacity_bytes = size_t{1} << 20;
  o.stripes = 4;
  o.clock = clock;
  o.stale_while_revalidate = 60s;  // expired entries linger for stale serving
  auto cache = MakeCache(std::move(o));
  PutOptions short_ttl;
  short_ttl.ttl = 1s;
  ASSERT_EQ(cache->Put("a:1", "one"), Status::kOk);
  ASSERT_EQ(cache->Put("a:2", "two", short_ttl), Status::kOk);
  ASSERT_EQ(cache->Put("b:3", "three"), Status::kOk);
  EXPECT_EQ(cache->CountLive(), 3u);
  EXPECT_EQ(cache->CountLive("a:"), 2u);
  clock->Advance(2s);
  EXPECT_EQ(cache->Size(), 3u);       // a:2 is kept for stale serving...
  EXPECT_EQ(cache->CountLive(), 2u);  // ...but is not live
  EXPECT_EQ(cache->CountLive("a:"), 1u);
  std::map<std::string, std::string> seen;
  cache->ForEachLive("", [&](std::string_view k, std::string_view v) {
    seen.emplace(std::string(k), std::string(v));
  });
  EXPECT_EQ(seen, (std::map<std::string, std::string>{{"a:1", "one"}, {"b:3", "three"}}));
  const Stats before = cache->GetStats();
  EXPECT_EQ(before.hits + before.misses, 0u);  // enumeration is neither
}

TEST(Cache, ForEachLiveRunsSafelyBesideWritersAndEvictions) {
  // Walks the index without a lock while other threads insert, replace,
  // evict (the table rebuilds as it grows) and invalidate: every entry seen
  // is whole (its value matches its key), under the sanitizers too.
  Options o;
  o.capacity_bytes = size_t{1} << 20;
  o.capacity_entries = 2000;
  o.stripes = 2;
  auto cache = MakeCache(std::move(o));
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const std::string key = "k" + std::to_string((i * 7 + t) % 5000);
        if (i % 5 == 0) {
          cache->Invalidate(key);
        } else {
          cache->Put(key, "value of " + key);
        }
      }
    });
  }
  size_t walks = 0, bad = 0;
  for (auto start = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - start < std::chrono::milliseconds(300); ++walks) {
    cache->ForEachLive("k1", [&](std::string_view k, std::string_view v) {
      if (v != "value of " + std::string(k) || k.substr(0, 2) != "k1") ++bad;
    });
    EXPECT_LE(cache->CountLive(), 2000u);
  }
  stop = true;
  for (auto& w : writers) w.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_GT(walks, 0u);
}

// A hit is counted by its push into an access lane (or, when the push is
// dropped because the lane is full and the stripe busy, by a counter beside
// it). Many threads sharing the lanes of one stripe, their pushes colliding
// and lanes overflowing, still count every hit once.
TEST(Stats, HitsAreExactWhileThreadsShareLanesAndPushesAreDropped) {
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 1;
  auto cache = MakeCache(o);
  for (int k = 0; k < 4; ++k) ASSERT_EQ(cache->Put("k" + std::to_string(k), "v"), Status::kOk);
  constexpr int kThreads = 8, kGets = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cache, t] {
      std::string value;
      for (int i = 0; i < kGets; ++i) cache->Get("k" + std::to_string((i + t) % 4), &value);
    });
  }
  for (auto& th : threads) th.join();
  const Stats s = cache->GetStats();
  EXPECT_EQ(s.hits, uint64_t{kThreads} * kGets);
  EXPECT_EQ(s.misses, 0u);
}

}  // namespace
}  // namespace larder
