// Read (peek, stale values, entry info), Touch, Snapshot and BeginRefresh:
// what bindings need to mirror caches like lru-cache (peek, getRemainingTTL,
// allowStale, updateAgeOnGet, iteration in LRU order, forceRefresh).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::GetOr;
using testing::MakeCache;
using testing::SmallCache;

std::vector<std::string> Keys(Cache& cache, bool include_stale = false) {
  std::vector<std::string> keys;
  for (const SnapshotEntry& e : cache.Snapshot(include_stale)) keys.emplace_back(e.pin.key());
  return keys;
}

std::string ReadOr(Cache& cache, std::string_view key, ReadOptions options,
                   EntryInfo* info = nullptr) {
  std::string v = "<miss>";
  cache.Read(
      key, options, [&](std::string_view value) { v = std::string(value); }, info);
  return v;
}

TEST(Read, PeekNeitherPromotesNorCounts) {
  auto cache = SmallCache(3);
  cache->Put("a", "1");
  cache->Put("b", "2");
  cache->Put("c", "3");
  const Stats before = cache->GetStats();
  EXPECT_EQ(ReadOr(*cache, "a", {.peek = true}), "1");
  EXPECT_EQ(ReadOr(*cache, "zz", {.peek = true}), "<miss>");
  const Stats after = cache->GetStats();
  EXPECT_EQ(after.hits, before.hits);
  EXPECT_EQ(after.misses, before.misses);
  cache->Put("d", "4");  // evicts a: the peek did not make it recent
  EXPECT_EQ(GetOr(*cache, "a"), "<miss>");
  EXPECT_EQ(GetOr(*cache, "b"), "2");
}

TEST(Read, ANonPeekReadPromotesAndCountsLikeGet) {
  auto cache = SmallCache(3);
  cache->Put("a", "1");
  cache->Put("b", "2");
  cache->Put("c", "3");
  EXPECT_EQ(ReadOr(*cache, "a", {}), "1");
  EXPECT_EQ(cache->GetStats().hits, 1u);
  cache->Put("d", "4");  // evicts b, the least recently used
  EXPECT_EQ(GetOr(*cache, "b"), "<miss>");
  EXPECT_EQ(GetOr(*cache, "a"), "1");
}

TEST(Read, ReportsRemainingTimeAndStaleness) {
  auto clock = std::make_shared<ManualClock>();
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 1;
  o.clock = clock;
  o.stale_while_revalidate = 1h;  // keeps expired values this long
  auto cache = MakeCache(o);
  cache->Put("forever", "f");
  cache->Put("short", "s", {.ttl = 10s});
  EntryInfo info;
  EXPECT_EQ(ReadOr(*cache, "forever", {.peek = true}, &info), "f");
  EXPECT_FALSE(info.expires);
  EXPECT_EQ(info.remaining.count(), 0);
  EXPECT_EQ(ReadOr(*cache, "short", {.peek = true}, &info), "s");
  EXPECT_TRUE(info.expires);
  EXPECT_FALSE(info.stale);
  EXPECT_EQ(info.remaining, 10s);
  clock->Advance(15s);
  EXPECT_EQ(ReadOr(*cache, "short", {.peek = true}, &info), "<miss>");
  EXPECT_EQ(ReadOr(*cache, "short", {.peek = true, .allow_stale = true}, &info), "s");
  EXPECT_TRUE(info.stale);
  EXPECT_EQ(info.remaining, -5s);
  EXPECT_EQ(GetOr(*cache, "short"), "<miss>");  // plain reads stay strict
  EXPECT_EQ(ReadOr(*cache, "short", {.allow_stale = true}), "s");
  EXPECT_EQ(cache->GetStats().stale_hits, 1u);
}

TEST(Read, WithoutACacheLoaderEarlyRefreshIsReportedNotStarted) {
  auto clock = std::make_shared<ManualClock>();
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 1;
  o.clock = clock;
  o.default_refresh_delta = 1s;  // put entries refresh early too
  o.random_seed = 7;
  auto cache = MakeCache(o);
  cache->Put("k", "v", {.ttl = 10s});
  clock->Advance(9999ms);  // 1 ms left of a 1 s delta: exp(-0.001) ~ certain
  EntryInfo info;
  EXPECT_EQ(ReadOr(*cache, "k", {}, &info), "v");
  EXPECT_TRUE(info.refresh_due);
  EXPECT_EQ(cache->GetStats().refreshes_started, 0u);
  EXPECT_EQ(ReadOr(*cache, "k", {.peek = true}, &info), "v");
  EXPECT_FALSE(info.refresh_due);  // peeks never draw
}

TEST(Touch, RestartsTheTtlKeepingValuePositionAndListenerQuiet) {
  auto clock = std::make_shared<ManualClock>();
  int removals = 0;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.capacity_entries = 3;
  o.stripes = 1;
  o.clock = clock;
  o.removal_listener = [&](std::string_view, std::string_view, RemovalCause) { ++removals; };
  auto cache = MakeCache(o);
  cache->Put("a", "1", {.ttl = 10s});
  cache->Put("b", "2");
  cache->Put("c", "3");
  clock->Advance(8s);
  ASSERT_EQ(cache->Touch("a", 10s), Status::kOk);
  EXPECT_EQ(removals, 0);
  EXPECT_EQ(Keys(*cache), (std::vector<std::string>{"c", "b", "a"}));  // a stays the oldest
  clock->Advance(5s);  // 13 s after the put, 5 s after the touch
  EXPECT_EQ(GetOr(*cache, "a"), "1");
  clock->Advance(6s);
  EXPECT_EQ(GetOr(*cache, "a"), "<miss>");
  EXPECT_EQ(cache->Touch("a", 10s), Status::kNotFound);  // expired: nothing to touch
  EXPECT_EQ(cache->Touch("nope", 1s), Status::kNotFound);
  EXPECT_EQ(cache->Touch("b", -1s), Status::kInvalidArgument);
  // A touch of an entry without TTL gives it one; ttl 0 means the default
  // (none here), which takes it away again.
  ASSERT_EQ(cache->Touch("b", 1s), Status::kOk);
  EntryInfo info;
  ReadOr(*cache, "b", {.peek = true}, &info);
  EXPECT_TRUE(info.expires);
  ASSERT_EQ(cache->Touch("b", 0s), Status::kOk);
  ReadOr(*cache, "b", {.peek = true}, &info);
  EXPECT_FALSE(info.expires);
  EXPECT_EQ(cache->Size(), 2u);
}

TEST(Snapshot, ListsValuesMostRecentlyUsedFirst) {
  auto cache = SmallCache(10);
  for (const char* k : {"a", "b", "c", "d"}) cache->Put(k, std::string("v") + k);
  GetOr(*cache, "b");
  EXPECT_EQ(Keys(*cache), (std::vector<std::string>{"b", "d", "c", "a"}));
  std::vector<SnapshotEntry> snap = cache->Snapshot(false);
  cache->Clear();  // the snapshot's pins keep its values readable
  ASSERT_EQ(snap.size(), 4u);
  EXPECT_EQ(snap[0].pin.value(), "vb");
  EXPECT_EQ(snap[3].pin.value(), "va");
}

TEST(Snapshot, LeavesOutStaleValuesUnlessAsked) {
  auto clock = std::make_shared<ManualClock>();
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 1;
  o.clock = clock;
  o.stale_if_error = 1h;
  auto cache = MakeCache(o);
  cache->Put("old", "o", {.ttl = 1s});
  cache->Put("new", "n");
  clock->Advance(2s);
  EXPECT_EQ(Keys(*cache), (std::vector<std::string>{"new"}));
  std::vector<SnapshotEntry> all = cache->Snapshot(true);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].pin.key(), "old");
  EXPECT_TRUE(all[1].info.stale);
  EXPECT_EQ(all[1].info.remaining, -1s);
}

TEST(Snapshot, ManyStripesHoldEveryEntryOnce) {
  Options o;
  o.capacity_bytes = 64 << 20;
  o.stripes = 16;
  auto cache = MakeCache(o);
  for (int i = 0; i < 5000; ++i) cache->Put("k" + std::to_string(i), "v");
  std::vector<std::string> keys = Keys(*cache);
  EXPECT_EQ(keys.size(), 5000u);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(std::unique(keys.begin(), keys.end()), keys.end());
  // The most recent put comes early, the first put late (merged by rank).
  std::vector<std::string> order = Keys(*cache);
  auto pos = [&](const std::string& k) {
    return std::find(order.begin(), order.end(), k) - order.begin();
  };
  EXPECT_LT(pos("k4999"), 1000);
  EXPECT_GT(pos("k0"), 4000);
}

TEST(BeginRefresh, TheCallerLeadsWhileTheOldValueStaysReadable) {
  auto cache = SmallCache(10);
  cache->Put("k", "old");
  FetchLookup lead = cache->BeginRefresh("k");
  ASSERT_EQ(lead.kind, FetchLookup::Kind::kLead);
  EXPECT_EQ(GetOr(*cache, "k"), "old");
  FetchLookup joined = cache->BeginRefresh("k");
  ASSERT_EQ(joined.kind, FetchLookup::Kind::kWait);
  FetchResult mine = lead.lease.Complete(LoadResult::Value("new"));
  EXPECT_EQ(mine.status, Status::kOk);
  FetchResult theirs = joined.ticket.Wait();
  EXPECT_EQ(theirs.status, Status::kOk);
  EXPECT_EQ(theirs.value.value(), "new");
  EXPECT_EQ(GetOr(*cache, "k"), "new");
  EXPECT_EQ(cache->GetStats().refreshes_started, 1u);
}

TEST(BeginRefresh, AnErrorKeepsTheValueNotFoundRemovesItAWriteWins) {
  auto cache = SmallCache(10);
  cache->Put("k", "old");
  FetchLookup a = cache->BeginRefresh("k");
  ASSERT_EQ(a.kind, FetchLookup::Kind::kLead);
  EXPECT_EQ(a.lease.Complete(LoadResult::Error("down")).status, Status::kLoadFailed);
  EXPECT_EQ(GetOr(*cache, "k"), "old");

  FetchLookup b = cache->BeginRefresh("k");
  ASSERT_EQ(b.kind, FetchLookup::Kind::kLead);
  cache->Put("k", "written");  // a write during the refresh wins (L8)
  b.lease.Complete(LoadResult::Value("refreshed"));
  EXPECT_EQ(GetOr(*cache, "k"), "written");
  EXPECT_EQ(cache->GetStats().refreshes_discarded, 1u);

  FetchLookup c = cache->BeginRefresh("k");
  ASSERT_EQ(c.kind, FetchLookup::Kind::kLead);
  c.lease.Complete(LoadResult::NotFound());
  EXPECT_EQ(GetOr(*cache, "k"), "<miss>");
}

TEST(BeginRefresh, JoinsAMissLoadAndADroppedLeaseFreesTheKey) {
  auto cache = SmallCache(10);
  FetchLookup load = cache->BeginFetch("k");
  ASSERT_EQ(load.kind, FetchLookup::Kind::kLead);
  FetchLookup refresh = cache->BeginRefresh("k");
  EXPECT_EQ(refresh.kind, FetchLookup::Kind::kWait);
  load.lease.Complete(LoadResult::Value("v"));
  EXPECT_EQ(refresh.ticket.Wait().value.value(), "v");
  {
    FetchLookup dropped = cache->BeginRefresh("k");
    ASSERT_EQ(dropped.kind, FetchLookup::Kind::kLead);
  }  // abandoned: the key is free again, the value kept
  EXPECT_EQ(cache->BeginRefresh("k").kind, FetchLookup::Kind::kLead);
  EXPECT_EQ(GetOr(*cache, "k"), "v");
}

TEST(LoadResult, ACustomChargeWeighsTheLoadedEntry) {
  Options o;
  o.capacity_bytes = 100;  // units of the caller's choosing
  o.stripes = 1;
  auto cache = MakeCache(o);
  for (const char* k : {"a", "b", "c"}) {
    FetchLookup l = cache->BeginFetch(k);
    ASSERT_EQ(l.kind, FetchLookup::Kind::kLead);
    LoadResult r = LoadResult::Value(std::string(1000, 'x'));  // far more than 100 bytes
    r.charge = 40;
    EXPECT_EQ(l.lease.Complete(std::move(r)).status, Status::kOk);
  }
  EXPECT_EQ(cache->Size(), 2u);  // 3 x 40 > 100: the oldest went
  EXPECT_EQ(cache->Charge(), 80u);
  EXPECT_EQ(GetOr(*cache, "a"), "<miss>");
}

TEST(Touch, ReadersSnapshotsAndTouchesRunTogether) {
  Options o;
  o.capacity_bytes = 1 << 20;
  o.capacity_entries = 256;
  o.stripes = 2;
  auto cache = MakeCache(o);
  for (int i = 0; i < 200; ++i) cache->Put("k" + std::to_string(i), "value", {.ttl = 1h});
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::string v;
      for (int i = 0; !stop.load(); ++i) {
        if (cache->Get("k" + std::to_string((i * 7 + t) % 200), &v) == Status::kOk) {
          EXPECT_EQ(v, "value");
          reads.fetch_add(1);
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; !stop.load(); ++i) cache->Touch("k" + std::to_string(i % 200), 2h);
  });
  threads.emplace_back([&] {
    while (!stop.load()) {
      std::vector<SnapshotEntry> snap = cache->Snapshot(true);
      for (const SnapshotEntry& e : snap) EXPECT_EQ(e.pin.value(), "value");
      cache->Put("extra" + std::to_string(snap.size()), "value");
    }
  });
  // At least 200 ms together, and until the readers have read (a loaded
  // machine may start them late).
  const auto together = std::chrono::steady_clock::now() + 200ms;
  const auto give_up = together + 10s;
  while ((std::chrono::steady_clock::now() < together || reads.load() < 1000) &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(1ms);
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_GE(reads.load(), 1000);
  EXPECT_LE(cache->Size(), 256u);
}

}  // namespace
}  // namespace larder
