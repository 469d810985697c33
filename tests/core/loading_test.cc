// Loading promises L1-L9 of DESIGN.md section 3, one or more tests each.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "test_util.h"
#include "xfetch.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;
using testing::GetOr;
using testing::Latch;
using testing::MakeCache;

// The "database" behind the cache.
class Store {
 public:
  void Set(const std::string& v) {
    std::lock_guard<std::mutex> lock(mu_);
    value_ = v;
  }
  std::string Read() {
    reads_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    return value_;
  }
  int reads() const { return reads_.load(); }

 private:
  std::mutex mu_;
  std::string value_ = "v1";
  std::atomic<int> reads_{0};
};

std::unique_ptr<Cache> LoadingCache(std::shared_ptr<Clock> clock = nullptr,
                                    std::function<void(Options&)> tweak = nullptr) {
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 1;
  o.clock = std::move(clock);
  if (tweak) tweak(o);
  return MakeCache(o);
}

std::string ValueOf(const FetchResult& r) { return std::string(r.value.value()); }

// ---- L1: one flight per key ----

TEST(LoadingL1, ConcurrentMissesShareOneLoad) {
  auto cache = LoadingCache();
  std::atomic<int> calls{0};
  Latch release;
  auto loader = [&](std::string_view) {
    calls.fetch_add(1);
    release.Wait();
    return LoadResult::Value("loaded");
  };
  std::vector<std::thread> threads;
  std::vector<FetchResult> results(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] { results[i] = cache->GetOrLoad("k", loader); });
  }
  ASSERT_TRUE(Eventually([&] { return cache->GetStats().coalesced_waits == 15; }));
  release.Open();
  for (auto& t : threads) t.join();
  EXPECT_EQ(calls.load(), 1);
  int loaded = 0;
  for (const FetchResult& r : results) {
    ASSERT_EQ(r.status, Status::kOk);
    EXPECT_EQ(ValueOf(r), "loaded");
    loaded += r.source == FetchSource::kLoaded;
  }
  EXPECT_EQ(loaded, 1);
  Stats s = cache->GetStats();
  EXPECT_EQ(s.loads, 1u);
  EXPECT_EQ(s.coalesced_waits, 15u);
}

TEST(LoadingL1, AHitDoesNotCallTheLoader) {
  auto cache = LoadingCache();
  cache->Put("k", "cached");
  FetchResult r = cache->GetOrLoad("k", [](std::string_view) -> LoadResult {
    ADD_FAILURE() << "loader called on a hit";
    return LoadResult::Value("x");
  });
  EXPECT_EQ(r.source, FetchSource::kHit);
  EXPECT_EQ(ValueOf(r), "cached");
}

// GetOrLoadWith's copy-out: a hit's value goes to the taker and nothing is
// pinned; a declined value, and a loaded one, come pinned as from GetOrLoad.
struct Taker {
  std::string taken;
  int offers = 0;
  bool accept = true;
  static bool Take(std::string_view value, void* self) {
    auto* t = static_cast<Taker*>(self);
    ++t->offers;
    if (t->accept) t->taken.assign(value);
    return t->accept;
  }
};

TEST(LoadingL1, ACopiedOutHitPinsNothing) {
  auto cache = LoadingCache();
  cache->Put("k", "cached");
  Taker taker;
  FetchOptions fetch;
  fetch.loader = [](std::string_view) -> LoadResult {
    ADD_FAILURE() << "loader called on a hit";
    return LoadResult::Value("x");
  };
  FetchResult r = cache->GetOrLoadWith("k", fetch, &Taker::Take, &taker);
  EXPECT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.source, FetchSource::kHit);
  EXPECT_FALSE(r.value);  // no pin: the value was copied out
  EXPECT_EQ(taker.taken, "cached");
  taker.accept = false;  // the caller's buffer is too small, say
  r = cache->GetOrLoadWith("k", fetch, &Taker::Take, &taker);
  EXPECT_EQ(ValueOf(r), "cached");
  EXPECT_EQ(taker.offers, 2);
  EXPECT_EQ(cache->GetStats().hits, 2u);
}

TEST(LoadingL1, ALoadedValueComesPinnedEvenWhenCopiedOut) {
  auto cache = LoadingCache();
  Taker taker;
  FetchResult r = cache->GetOrLoadWith(
      "k", FetchOptions{[](std::string_view) { return LoadResult::Value("new"); }}, &Taker::Take,
      &taker);
  EXPECT_EQ(r.source, FetchSource::kLoaded);
  EXPECT_EQ(ValueOf(r), "new");
  EXPECT_EQ(taker.offers, 0);
}

TEST(LoadingL1, ALoadedValueIsCachedWithItsTtl) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = LoadingCache(clock);
  int calls = 0;
  auto loader = [&](std::string_view key) {
    ++calls;
    return LoadResult::Value("for " + std::string(key), 10s);
  };
  EXPECT_EQ(ValueOf(cache->GetOrLoad("k", loader)), "for k");
  EXPECT_EQ(cache->GetOrLoad("k", loader).source, FetchSource::kHit);
  clock->Advance(11s);
  EXPECT_EQ(cache->GetOrLoad("k", loader).source, FetchSource::kLoaded);
  EXPECT_EQ(calls, 2);
}

// ---- L2: no lock held while loading; no self-deadlock ----

TEST(LoadingL2, OtherKeysOfTheSameStripeProceedWhileALoaderRuns) {
  auto cache = LoadingCache();  // one stripe: every key shares it
  Latch started, release;
  std::thread loading([&] {
    cache->GetOrLoad("slow", [&](std::string_view) {
      started.Open();
      release.Wait();
      return LoadResult::Value("slow value");
    });
  });
  started.Wait();
  // All of these would block if the loader held the stripe lock.
  EXPECT_EQ(cache->Put("other", "x"), Status::kOk);
  EXPECT_EQ(GetOr(*cache, "other"), "x");
  EXPECT_EQ(cache->Invalidate("other"), Status::kOk);
  EXPECT_EQ(ValueOf(cache->GetOrLoad("third",
                                     [](std::string_view) { return LoadResult::Value("fast"); })),
            "fast");
  release.Open();
  loading.join();
  EXPECT_EQ(GetOr(*cache, "slow"), "slow value");
}

TEST(LoadingL2, ALoaderMayUseTheCacheForOtherKeys) {
  auto cache = LoadingCache();
  FetchResult r = cache->GetOrLoad("outer", [&](std::string_view) {
    FetchResult inner = cache->GetOrLoad(
        "inner", [](std::string_view) { return LoadResult::Value("inner value"); });
    cache->Put("side", "effect");
    return LoadResult::Value("outer+" + std::string(inner.value.value()));
  });
  EXPECT_EQ(ValueOf(r), "outer+inner value");
  EXPECT_EQ(GetOr(*cache, "side"), "effect");
}

TEST(LoadingL2, ALoaderAskingForItsOwnKeyGetsAnErrorNotADeadlock) {
  auto cache = LoadingCache();
  Status inner_status = Status::kOk;
  FetchResult r = cache->GetOrLoad("k", [&](std::string_view key) {
    inner_status =
        cache->GetOrLoad(key, [](std::string_view) { return LoadResult::Value("never"); }).status;
    return LoadResult::Value("outer");
  });
  EXPECT_EQ(inner_status, Status::kRecursiveLoad);
  EXPECT_EQ(ValueOf(r), "outer");
}

// ---- L3: outcomes; errors reach all waiters; nothing gets stuck ----

TEST(LoadingL3, LoaderErrorReachesEveryWaiterAndIsNotCached) {
  auto cache = LoadingCache();
  std::atomic<int> calls{0};
  Latch release;
  auto failing = [&](std::string_view) {
    calls.fetch_add(1);
    release.Wait();
    return LoadResult::Error("database down");
  };
  std::vector<std::thread> threads;
  std::vector<FetchResult> results(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = cache->GetOrLoad("k", failing); });
  }
  ASSERT_TRUE(Eventually([&] { return cache->GetStats().coalesced_waits == 3; }));
  release.Open();
  for (auto& t : threads) t.join();
  for (const FetchResult& r : results) {
    EXPECT_EQ(r.status, Status::kLoadFailed);
    EXPECT_EQ(r.error, "database down");
    EXPECT_FALSE(r.value);
  }
  EXPECT_EQ(calls.load(), 1);
  // Not cached: the next call loads again.
  EXPECT_EQ(ValueOf(cache->GetOrLoad(
                "k", [](std::string_view) { return LoadResult::Value("recovered"); })),
            "recovered");
  EXPECT_EQ(cache->GetStats().load_failures, 1u);
}

TEST(LoadingL3, AThrowingLoaderBecomesAnErrorAndTheKeyIsNotStuck) {
  auto cache = LoadingCache();
  FetchResult r = cache->GetOrLoad(
      "k", [](std::string_view) -> LoadResult { throw std::runtime_error("boom"); });
  EXPECT_EQ(r.status, Status::kLoadFailed);
  EXPECT_EQ(r.error, "boom");
  FetchResult again =
      cache->GetOrLoad("k", [](std::string_view) { return LoadResult::Value("fine"); });
  EXPECT_EQ(again.status, Status::kOk);
  EXPECT_EQ(again.source, FetchSource::kLoaded);
}

TEST(LoadingL3, NotFoundIsReportedAsNotFound) {
  auto cache = LoadingCache();
  FetchResult r = cache->GetOrLoad("k", [](std::string_view) { return LoadResult::NotFound(); });
  EXPECT_EQ(r.status, Status::kNotFound);
  EXPECT_FALSE(r.value);
  EXPECT_FALSE(cache->Contains("k"));
}

TEST(LoadingL3, AnAbandonedLeaseFailsTheFlightForItsWaiters) {
  auto cache = LoadingCache();
  LoadTicket ticket;
  {
    FetchLookup lead =
        cache->BeginFetch("k", {.loader = [](std::string_view) { return LoadResult::Value("x"); }});
    ASSERT_EQ(lead.kind, FetchLookup::Kind::kLead);
    FetchLookup wait =
        cache->BeginFetch("k", {.loader = [](std::string_view) { return LoadResult::Value("x"); }});
    ASSERT_EQ(wait.kind, FetchLookup::Kind::kWait);
    ticket = wait.ticket;
  }  // the lease is dropped without Complete
  FetchResult r = ticket.Wait(1s);
  EXPECT_EQ(r.status, Status::kLoadFailed);
  EXPECT_EQ(r.error, "load abandoned");
  EXPECT_EQ(
      cache->GetOrLoad("k", [](std::string_view) { return LoadResult::Value("next"); }).status,
      Status::kOk);
}

TEST(LoadingL3, ErrorsAreCachedOnlyWhenAnErrorTtlIsSet) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = LoadingCache(clock, [](Options& o) { o.error_ttl = 5s; });
  int calls = 0;
  auto failing = [&](std::string_view) {
    ++calls;
    return LoadResult::Error("down");
  };
  EXPECT_EQ(cache->GetOrLoad("k", failing).status, Status::kLoadFailed);
  FetchResult cached = cache->GetOrLoad("k", failing);
  EXPECT_EQ(cached.status, Status::kLoadFailed);
  EXPECT_EQ(cached.source, FetchSource::kNegative);
  EXPECT_EQ(cached.error, "down");
  EXPECT_EQ(calls, 1);
  clock->Advance(6s);
  cache->GetOrLoad("k", failing);
  EXPECT_EQ(calls, 2);
}

// ---- L4: per-waiter deadlines ----

TEST(LoadingL4, AWaiterThatGivesUpTimesOutAndTheLoadGoesOn) {
  auto cache = LoadingCache();
  Latch started, release;
  std::thread leader([&] {
    cache->GetOrLoad("k", [&](std::string_view) {
      started.Open();
      release.Wait();
      return LoadResult::Value("eventually");
    });
  });
  started.Wait();
  FetchResult impatient = cache->GetOrLoad(
      "k",
      {.loader = [](std::string_view) { return LoadResult::Value("unused"); }, .timeout = 20ms});
  EXPECT_EQ(impatient.status, Status::kTimeout);
  EXPECT_EQ(cache->GetStats().load_timeouts, 1u);
  release.Open();
  leader.join();
  EXPECT_EQ(GetOr(*cache, "k"), "eventually");
}

// ---- L5: negative caching ----

TEST(LoadingL5, NotFoundIsCachedForTheNegativeTtlAndSkipsTheLoader) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = LoadingCache(clock, [](Options& o) { o.negative_ttl = 10s; });
  int calls = 0;
  auto loader = [&](std::string_view) {
    ++calls;
    return LoadResult::NotFound();
  };
  EXPECT_EQ(cache->GetOrLoad("ghost", loader).status, Status::kNotFound);
  FetchResult again = cache->GetOrLoad("ghost", loader);
  EXPECT_EQ(again.status, Status::kNotFound);
  EXPECT_EQ(again.source, FetchSource::kNegative);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(cache->Contains("ghost"));          // a negative entry is not a value
  EXPECT_EQ(cache->Get("ghost"), std::nullopt);    // nor for plain reads
  EXPECT_EQ(cache->GetStats().negative_hits, 2u);  // the GetOrLoad and the Get
  clock->Advance(11s);
  cache->GetOrLoad("ghost", loader);
  EXPECT_EQ(calls, 2);
}

TEST(LoadingL5, PutOrInvalidateReplaceANegativeEntryAtOnce) {
  auto cache = LoadingCache(nullptr, [](Options& o) { o.negative_ttl = 1h; });
  auto not_found = [](std::string_view) { return LoadResult::NotFound(); };
  cache->GetOrLoad("a", not_found);
  cache->Put("a", "now exists");
  EXPECT_EQ(ValueOf(cache->GetOrLoad("a", not_found)), "now exists");
  cache->GetOrLoad("b", not_found);
  cache->Invalidate("b");
  EXPECT_EQ(
      ValueOf(cache->GetOrLoad("b", [](std::string_view) { return LoadResult::Value("created"); })),
      "created");
}

TEST(LoadingL5, ZeroNegativeTtlDisablesNegativeCaching) {
  auto cache = LoadingCache();
  int calls = 0;
  auto loader = [&](std::string_view) {
    ++calls;
    return LoadResult::NotFound();
  };
  cache->GetOrLoad("k", loader);
  cache->GetOrLoad("k", loader);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(cache->Size(), 0u);
}

// ---- L6: probabilistic early refresh (XFetch) ----

TEST(LoadingL6, TriggerProbabilityIsExpOfMinusRemainingOverDeltaBeta) {
  // 10^6 seeded draws at several remaining times: the observed frequency is
  // within 2% (relative) of exp(-r / (delta * beta)).
  internal::XorShiftRng rng(12345);
  const double delta = 50e6;  // a 50 ms load
  for (double beta : {1.0, 2.0}) {
    for (double r_over_delta : {0.1, 0.5, 1.0, 2.0, 3.0}) {
      const double r = r_over_delta * delta;
      const double expected = std::exp(-r / (delta * beta));
      int triggers = 0;
      constexpr int kDraws = 1'000'000;
      for (int i = 0; i < kDraws; ++i) triggers += internal::XFetchTriggers(r, delta, beta, rng);
      const double observed = static_cast<double>(triggers) / kDraws;
      EXPECT_NEAR(observed, expected, 0.02 * expected)
          << "beta " << beta << ", r = " << r_over_delta << " delta";
    }
  }
  EXPECT_TRUE(internal::XFetchTriggers(-1, delta, 1.0, rng));  // already expired
  EXPECT_FALSE(internal::XFetchTriggers(1e3 * delta, delta, 1.0, rng));
  EXPECT_FALSE(internal::XFetchTriggers(1, delta, 0.0, rng));  // beta 0 disables
}

TEST(LoadingL6, AHitNearExpiryStartsOneBackgroundRefreshAndReturnsAtOnce) {
  auto clock = std::make_shared<ManualClock>();
  std::vector<std::function<void()>> queued;  // a manual executor
  int calls = 0;
  auto cache = LoadingCache(clock, [&](Options& o) {
    o.loader = [&](std::string_view) {
      ++calls;
      clock->Advance(100ms);  // the load takes 100 ms: delta
      return LoadResult::Value("v" + std::to_string(calls), 10s);
    };
    o.refresh_executor = [&](std::function<void()> task) { queued.push_back(std::move(task)); };
    o.random_seed = 7;
  });
  EXPECT_EQ(ValueOf(cache->GetOrLoad("k")), "v1");
  clock->Advance(10s - 100ms - 1ms);  // 1 ms left: trigger probability ~0.99
  FetchResult r;
  for (int i = 0; i < 20 && queued.empty(); ++i) r = cache->GetOrLoad("k");
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(r.source, FetchSource::kHit);  // the caller did not wait
  EXPECT_EQ(ValueOf(r), "v1");
  for (int i = 0; i < 10; ++i) cache->GetOrLoad("k");
  EXPECT_EQ(queued.size(), 1u);  // joined the flight: still one refresh
  queued[0]();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(GetOr(*cache, "k"), "v2");
  EXPECT_EQ(cache->GetStats().refreshes_started, 1u);
}

TEST(LoadingL6, APerCallLoaderNeverRunsInTheBackground) {
  // It may capture the caller's stack by reference, so only the cache's own
  // loader refreshes in the background.
  auto clock = std::make_shared<ManualClock>();
  std::vector<std::function<void()>> queued;
  auto cache = LoadingCache(clock, [&](Options& o) {
    o.refresh_executor = [&](std::function<void()> task) { queued.push_back(std::move(task)); };
    o.stale_while_revalidate = 10s;
  });
  auto loader = [&](std::string_view) {
    clock->Advance(100ms);
    return LoadResult::Value("v", 10s);
  };
  cache->GetOrLoad("k", loader);
  clock->Advance(10s - 101ms);
  for (int i = 0; i < 100; ++i) cache->GetOrLoad("k", loader);
  EXPECT_TRUE(queued.empty());
  clock->Advance(2s);  // inside the stale window: the caller loads instead
  EXPECT_EQ(cache->GetOrLoad("k", loader).source, FetchSource::kLoaded);
  EXPECT_TRUE(queued.empty());
}

TEST(LoadingL6, PlainGetsRefreshEarlyWithTheCacheLoader) {
  auto clock = std::make_shared<ManualClock>();
  std::vector<std::function<void()>> queued;
  auto cache = LoadingCache(clock, [&](Options& o) {
    o.loader = [](std::string_view) { return LoadResult::Value("refreshed", 10s); };
    o.refresh_executor = [&](std::function<void()> task) { queued.push_back(std::move(task)); };
    o.default_refresh_delta = 1s;  // entries from Put take part
  });
  PutOptions p;
  p.ttl = 10s;
  cache->Put("k", "put", p);
  clock->Advance(10s - 1ms);
  for (int i = 0; i < 20 && queued.empty(); ++i) EXPECT_EQ(GetOr(*cache, "k"), "put");
  ASSERT_EQ(queued.size(), 1u);
  queued[0]();
  EXPECT_EQ(GetOr(*cache, "k"), "refreshed");
}

TEST(LoadingL6, PutEntriesAreNotRefreshedEarlyWithoutADefaultDelta) {
  auto clock = std::make_shared<ManualClock>();
  std::vector<std::function<void()>> queued;
  auto cache = LoadingCache(clock, [&](Options& o) {
    o.loader = [](std::string_view) { return LoadResult::Value("refreshed"); };
    o.refresh_executor = [&](std::function<void()> task) { queued.push_back(std::move(task)); };
  });
  PutOptions p;
  p.ttl = 10s;
  cache->Put("k", "put", p);
  clock->Advance(10s - 1ns);
  for (int i = 0; i < 1000; ++i) cache->GetOrLoad("k");
  EXPECT_TRUE(queued.empty());
}

TEST(LoadingL6, ZeroBetaDisablesAndNegativeBetaIsRejected) {
  auto clock = std::make_shared<ManualClock>();
  std::vector<std::function<void()>> queued;
  auto cache = LoadingCache(clock, [&](Options& o) {
    o.refresh_beta = 0;
    o.loader = [&](std::string_view) {
      clock->Advance(1s);
      return LoadResult::Value("v", 10s);
    };
    o.refresh_executor = [&](std::function<void()> task) { queued.push_back(std::move(task)); };
  });
  cache->GetOrLoad("k");
  clock->Advance(9s - 1ms);
  for (int i = 0; i < 1000; ++i) cache->GetOrLoad("k");
  EXPECT_TRUE(queued.empty());

  Options bad;
  bad.capacity_bytes = 1024;
  bad.refresh_beta = -1;
  std::unique_ptr<Cache> rejected;
  EXPECT_EQ(Cache::Create(bad, &rejected), Status::kInvalidArgument);
}

TEST(LoadingL6, AMissTakesOverARefreshStillWaitingInTheQueue) {
  auto clock = std::make_shared<ManualClock>();
  std::vector<std::function<void()>> queued;  // never run until the end
  int calls = 0;
  auto cache = LoadingCache(clock, [&](Options& o) {
    o.loader = [&](std::string_view) {
      ++calls;
      return LoadResult::Value("v" + std::to_string(calls), 10s);
    };
    o.refresh_executor = [&](std::function<void()> task) { queued.push_back(std::move(task)); };
  });
  cache->GetOrLoad("k");
  ASSERT_EQ(cache->Refresh("k"), Status::kOk);
  ASSERT_EQ(queued.size(), 1u);
  clock->Advance(11s);  // expired; the refresh is still queued
  FetchResult r = cache->GetOrLoad("k");
  EXPECT_EQ(r.source, FetchSource::kLoaded);  // led it, did not wait behind the queue
  EXPECT_EQ(ValueOf(r), "v2");
  queued[0]();  // finds the flight claimed: no second load
  EXPECT_EQ(calls, 2);
}

TEST(LoadingL6, ARefreshDroppedUnrunDoesNotBlockLaterRefreshes) {
  auto cache = LoadingCache(nullptr, [&](Options& o) {
    o.loader = [](std::string_view) { return LoadResult::Value("v"); };
    o.refresh_executor = [](std::function<void()>) {};  // drops every task
  });
  cache->Put("k", "v0");
  ASSERT_EQ(cache->Refresh("k"), Status::kOk);
  ASSERT_EQ(cache->Refresh("k"), Status::kOk);  // not joined to a stuck flight
  EXPECT_EQ(cache->GetStats().refreshes_started, 2u);
  EXPECT_EQ(GetOr(*cache, "k"), "v0");  // a dropped refresh changes nothing
}

TEST(LoadingL6, ARefreshThatFindsTheKeyGoneRemovesTheOldValue) {
  auto cache = LoadingCache(nullptr, [&](Options& o) {
    o.loader = [](std::string_view) { return LoadResult::NotFound(); };
    o.refresh_executor = [](std::function<void()> task) { task(); };  // inline
  });
  cache->Put("k", "deleted in the store since");
  ASSERT_EQ(cache->Refresh("k"), Status::kOk);
  EXPECT_EQ(GetOr(*cache, "k"), "<miss>");
}

// ---- L7: stale-while-revalidate, stale-if-error ----

TEST(LoadingL7, StaleWhileRevalidateServesTheOldValueAndStartsOneRefresh) {
  auto clock = std::make_shared<ManualClock>();
  std::vector<std::function<void()>> queued;
  int calls = 0;
  auto loader = [&](std::string_view) {
    ++calls;
    return LoadResult::Value("v" + std::to_string(calls), 10s);
  };
  auto cache = LoadingCache(clock, [&](Options& o) {
    o.stale_while_revalidate = 5s;
    o.refresh_beta = 0;  // isolate L7 from L6
    o.loader = loader;
    o.refresh_executor = [&](std::function<void()> task) { queued.push_back(std::move(task)); };
  });
  cache->GetOrLoad("k", loader);
  clock->Advance(12s);  // expired 2 s ago, within the 5 s grace
  FetchResult r = cache->GetOrLoad("k", loader);
  EXPECT_EQ(r.status, Status::kOk);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.source, FetchSource::kStale);
  EXPECT_EQ(ValueOf(r), "v1");
  Taker taker;  // a stale hit copied out: the same answer, nothing pinned
  r = cache->GetOrLoadWith("k", FetchOptions{loader}, &Taker::Take, &taker);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.source, FetchSource::kStale);
  EXPECT_FALSE(r.value);
  EXPECT_EQ(taker.taken, "v1");
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(GetOr(*cache, "k"), "<miss>");  // plain reads never see stale values
  queued[0]();
  FetchResult fresh = cache->GetOrLoad("k", loader);
  EXPECT_FALSE(fresh.stale);
  EXPECT_EQ(ValueOf(fresh), "v2");
  EXPECT_EQ(cache->GetStats().stale_hits, 2u);
}

TEST(LoadingL7, BeyondTheGraceTheCallerLoads) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = LoadingCache(clock, [](Options& o) { o.stale_while_revalidate = 5s; });
  int calls = 0;
  auto loader = [&](std::string_view) {
    ++calls;
    return LoadResult::Value("v" + std::to_string(calls), 10s);
  };
  cache->GetOrLoad("k", loader);
  clock->Advance(16s);
  FetchResult r = cache->GetOrLoad("k", loader);
  EXPECT_FALSE(r.stale);
  EXPECT_EQ(r.source, FetchSource::kLoaded);
  EXPECT_EQ(ValueOf(r), "v2");
}

TEST(LoadingL7, StaleIfErrorReturnsTheOldValueInsteadOfTheError) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = LoadingCache(clock, [](Options& o) { o.stale_if_error = 30s; });
  cache->GetOrLoad("k", [](std::string_view) { return LoadResult::Value("good", 10s); });
  clock->Advance(20s);
  FetchResult r =
      cache->GetOrLoad("k", [](std::string_view) { return LoadResult::Error("database down"); });
  EXPECT_EQ(r.status, Status::kOk);
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(ValueOf(r), "good");
  clock->Advance(30s);  // now beyond the error grace
  r = cache->GetOrLoad("k", [](std::string_view) { return LoadResult::Error("still down"); });
  EXPECT_EQ(r.status, Status::kLoadFailed);
  EXPECT_EQ(r.error, "still down");
}

TEST(LoadingL7, WithoutStaleIfErrorAFailureIsReportedEvenIfAValueExists) {
  auto cache = LoadingCache();
  Latch started, release;
  FetchResult failed;
  std::thread loading([&] {
    failed = cache->GetOrLoad("k", [&](std::string_view) {
      started.Open();
      release.Wait();
      return LoadResult::Error("down");
    });
  });
  started.Wait();
  cache->Put("k", "written meanwhile");  // supersedes the load
  release.Open();
  loading.join();
  EXPECT_EQ(failed.status, Status::kLoadFailed);
  EXPECT_FALSE(failed.stale);
  EXPECT_EQ(GetOr(*cache, "k"), "written meanwhile");
}

TEST(LoadingL3, FailuresTheLoaderDidNotReportAreNeverCached) {
  auto cache = LoadingCache(nullptr, [](Options& o) { o.error_ttl = 1h; });
  {
    FetchLookup lead = cache->BeginFetch("k");
    ASSERT_EQ(lead.kind, FetchLookup::Kind::kLead);
  }  // abandoned
  FetchResult r = cache->GetOrLoad("k", [](std::string_view) { return LoadResult::Value("ok"); });
  EXPECT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.source, FetchSource::kLoaded);
}

// ---- L8: races between loads and writes ----

// The canonical test: the loader reads v1 and parks; another thread writes v2
// to the store and invalidates (or puts v2, or clears); the loader returns v1,
// which its waiting caller gets but which must not be cached.
class RaceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RaceTest, AWriteDuringALoadDiscardsTheLoadedValue) {
  const std::string write = GetParam();
  auto cache = LoadingCache();
  Store store;
  Latch read_done, release;
  auto loader = [&](std::string_view) {
    std::string v = store.Read();
    read_done.Open();
    release.Wait();
    return LoadResult::Value(v);
  };
  FetchResult first;
  std::thread reader([&] { first = cache->GetOrLoad("k", loader); });
  read_done.Wait();
  store.Set("v2");
  if (write == "invalidate") {
    EXPECT_EQ(cache->Invalidate("k"), Status::kNotFound);
  }
  if (write == "put") {
    EXPECT_EQ(cache->Put("k", "v2"), Status::kOk);
  }
  if (write == "clear") cache->Clear();
  if (write == "prefix") cache->InvalidatePrefix("k");
  release.Open();
  reader.join();
  EXPECT_EQ(ValueOf(first), "v1");  // the caller already waiting gets the result
  if (write == "put") {
    EXPECT_EQ(GetOr(*cache, "k"), "v2");  // the put's value survives
  } else {
    EXPECT_EQ(GetOr(*cache, "k"), "<miss>");  // v1 was not installed
  }
  EXPECT_EQ(ValueOf(cache->GetOrLoad(
                "k", [&](std::string_view) { return LoadResult::Value(store.Read()); })),
            "v2");
  EXPECT_EQ(cache->GetStats().loads_discarded, 1u);
}

TEST_P(RaceTest, AWriteDuringARefreshDiscardsTheRefreshedValue) {
  const std::string write = GetParam();
  Store store;
  Latch read_done, release;
  std::atomic<bool> park{false};
  auto cache = LoadingCache(nullptr, [&](Options& o) {
    o.loader = [&](std::string_view) {
      std::string v = store.Read();
      if (park.load()) {
        read_done.Open();
        release.Wait();
      }
      return LoadResult::Value(v);
    };
  });
  store.Set("v0");
  ASSERT_EQ(ValueOf(cache->GetOrLoad("k")), "v0");
  store.Set("v1");
  park = true;
  ASSERT_EQ(cache->Refresh("k"), Status::kOk);  // runs on the cache's pool
  read_done.Wait();
  store.Set("v2");
  if (write == "invalidate") cache->Invalidate("k");
  if (write == "put") cache->Put("k", "v2");
  if (write == "clear") cache->Clear();
  if (write == "prefix") cache->InvalidatePrefix("k");
  release.Open();
  ASSERT_TRUE(Eventually([&] { return cache->GetStats().refreshes_discarded == 1; }));
  park = false;
  if (write == "put") {
    EXPECT_EQ(GetOr(*cache, "k"), "v2");
  } else {
    EXPECT_EQ(GetOr(*cache, "k"), "<miss>");
    EXPECT_EQ(ValueOf(cache->GetOrLoad("k")), "v2");
  }
}

INSTANTIATE_TEST_SUITE_P(Writes, RaceTest,
                         ::testing::Values("invalidate", "put", "clear", "prefix"));

TEST(LoadingL8, PutAndInvalidateNeverWaitForARunningLoader) {
  auto cache = LoadingCache();
  Latch started, release;
  std::thread loading([&] {
    cache->GetOrLoad("k", [&](std::string_view) {
      started.Open();
      release.Wait();
      return LoadResult::Value("late");
    });
  });
  started.Wait();
  // If either call waited for the parked loader, this test would hang.
  EXPECT_EQ(cache->Put("k", "now"), Status::kOk);
  EXPECT_EQ(cache->Invalidate("k"), Status::kOk);
  EXPECT_EQ(cache->Put("k", "again"), Status::kOk);
  release.Open();
  loading.join();
  EXPECT_EQ(GetOr(*cache, "k"), "again");
}

TEST(LoadingL8, ANewCallerAfterAWriteStartsAFreshLoad) {
  // Callers arriving after the write must not join the superseded flight.
  auto cache = LoadingCache();
  Latch started, release;
  std::thread old_load([&] {
    cache->GetOrLoad("k", [&](std::string_view) {
      started.Open();
      release.Wait();
      return LoadResult::Value("old");
    });
  });
  started.Wait();
  cache->Invalidate("k");
  FetchResult fresh =
      cache->GetOrLoad("k", [](std::string_view) { return LoadResult::Value("new"); });
  EXPECT_EQ(fresh.source, FetchSource::kLoaded);
  EXPECT_EQ(ValueOf(fresh), "new");
  release.Open();
  old_load.join();
  EXPECT_EQ(GetOr(*cache, "k"), "new");
}

// ---- L9: the asynchronous form ----

TEST(LoadingL9, BeginFetchAnswersHitLeadOrWait) {
  auto cache = LoadingCache();
  FetchOptions with_loader{.loader = [](std::string_view) { return LoadResult::Value("x"); }};
  FetchLookup lead = cache->BeginFetch("k", with_loader);
  ASSERT_EQ(lead.kind, FetchLookup::Kind::kLead);
  FetchLookup wait = cache->BeginFetch("k", with_loader);
  ASSERT_EQ(wait.kind, FetchLookup::Kind::kWait);
  EXPECT_FALSE(wait.ticket.ready());
  FetchResult mine = lead.lease.Complete(LoadResult::Value("async value"));
  EXPECT_EQ(mine.source, FetchSource::kLoaded);
  EXPECT_TRUE(wait.ticket.ready());
  FetchResult theirs = wait.ticket.Wait();
  EXPECT_EQ(theirs.source, FetchSource::kJoined);
  EXPECT_EQ(ValueOf(theirs), "async value");
  FetchLookup hit = cache->BeginFetch("k", with_loader);
  ASSERT_EQ(hit.kind, FetchLookup::Kind::kDone);
  EXPECT_EQ(ValueOf(hit.result), "async value");
  // Completing twice is refused.
  EXPECT_EQ(lead.lease.Complete(LoadResult::Value("again")).status, Status::kInvalidArgument);
}

TEST(LoadingL9, ATicketCallbackRunsOnceOnCompletionOrAtOnceIfDone) {
  auto cache = LoadingCache();
  FetchOptions with_loader{.loader = [](std::string_view) { return LoadResult::Value("x"); }};
  FetchLookup lead = cache->BeginFetch("k", with_loader);
  FetchLookup wait = cache->BeginFetch("k", with_loader);
  std::vector<std::string> seen;
  wait.ticket.OnReady([&](FetchResult r) { seen.push_back("before:" + ValueOf(r)); });
  EXPECT_TRUE(seen.empty());
  std::thread completer([&] { lead.lease.Complete(LoadResult::Value("done")); });
  completer.join();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "before:done");
  wait.ticket.OnReady([&](FetchResult r) { seen.push_back("after:" + ValueOf(r)); });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], "after:done");
}

TEST(LoadingL9, GetOrLoadWithoutAnyLoaderIsAnError) {
  auto cache = LoadingCache();
  EXPECT_EQ(cache->GetOrLoad("k").status, Status::kInvalidArgument);
  EXPECT_EQ(cache->Refresh("k"), Status::kInvalidArgument);
  EXPECT_EQ(cache->GetOrLoad("", [](std::string_view) { return LoadResult::Value(""); }).status,
            Status::kEmptyKey);
}

// ---- stats ----

TEST(LoadingStats, CountersAddUp) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = LoadingCache(clock, [](Options& o) { o.negative_ttl = 1h; });
  auto slow = [&](std::string_view key) {
    clock->Advance(3ms);
    if (key == "missing") return LoadResult::NotFound();
    if (key == "broken") return LoadResult::Error("no");
    return LoadResult::Value("v");
  };
  cache->GetOrLoad("a", slow);        // load
  cache->GetOrLoad("a", slow);        // hit
  cache->GetOrLoad("missing", slow);  // load, negative cached
  cache->GetOrLoad("missing", slow);  // negative hit
  cache->GetOrLoad("broken", slow);   // load failure
  Stats s = cache->GetStats();
  EXPECT_EQ(s.loads, 3u);
  EXPECT_EQ(s.load_failures, 1u);
  EXPECT_EQ(s.load_time_nanos, 3u * 3'000'000);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.negative_hits, 1u);
  EXPECT_EQ(s.coalesced_waits, 0u);
}

}  // namespace
}  // namespace larder
