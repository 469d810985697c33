// TieredCache against a real redis-server the test starts itself (127.0.0.1,
// a free port). Each test names the promise it checks (larder/tiered.h,
// docs/design.md "Redis second tier").
#include "larder/tiered.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "redis_server.h"
#include "test_point.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::RedisServer;

// Short timings so the tests are quick; the bound is 400 ms.
TieredOptions Opts(int port) {
  TieredOptions o;
  o.l1.capacity_bytes = 16 << 20;
  o.redis.port = port;
  o.redis.connect_timeout = 1s;
  o.redis.command_timeout = 100ms;
  o.health_interval = 20ms;
  o.max_staleness = 400ms;
  o.reconnect_min = 20ms;
  o.reconnect_max = 200ms;
  o.breaker_failures = 3;
  o.breaker_open = 200ms;
  return o;
}

// Polls cond every ms until it holds or `limit` passes.
template <typename Cond>
bool WaitFor(Cond cond, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::string ValueOf(const FetchResult& r) {
  return r.status == Status::kOk ? std::string(r.value.value())
                                 : "<" + std::string(StatusName(r.status)) + ">";
}

class Tier : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(redis_.Start({}, &why)) << why;
  }
  std::unique_ptr<TieredCache> Make(TieredOptions o) {
    std::unique_ptr<TieredCache> t;
    std::string why;
    Status s = TieredCache::Create(std::move(o), &t, &why);
    EXPECT_EQ(s, Status::kOk) << why;
    return t;
  }
  std::unique_ptr<TieredCache> Make() { return Make(Opts(redis_.port())); }
  RedisServer redis_;
};

Loader CountingLoader(std::atomic<int>* calls, std::string value,
                      std::chrono::nanoseconds ttl = 0ns) {
  return [calls, value, ttl](std::string_view) {
    calls->fetch_add(1);
    return LoadResult::Value(value, ttl);
  };
}

// ---- creation: bad configuration gets a clear error ----

TEST(TierCreate, UnreachableRedisIsUnavailableWithAMessage) {
  TieredOptions o = Opts(testing::FreePort());  // nothing listens there
  std::unique_ptr<TieredCache> t;
  std::string why;
  const auto start = Clock::now();
  EXPECT_EQ(TieredCache::Create(o, &t, &why), Status::kUnavailable);
  EXPECT_EQ(t, nullptr);
  EXPECT_NE(why.find("cannot connect to Redis at 127.0.0.1:"), std::string::npos) << why;
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(TierCreate, WrongOrMissingPasswordIsRefusedWithAMessage) {
  RedisServer redis;
  std::string why;
  ASSERT_TRUE(redis.Start({"--requirepass", "sekret"}, &why)) << why;
  std::unique_ptr<TieredCache> t;
  TieredOptions o = Opts(redis.port());
  o.redis.password = "wrong";
  EXPECT_EQ(TieredCache::Create(o, &t, &why), Status::kInvalidArgument);
  EXPECT_NE(why.find("AUTH"), std::string::npos) << why;
  EXPECT_NE(why.find("WRONGPASS"), std::string::npos) << why;
  o.redis.password = "";
  EXPECT_EQ(TieredCache::Create(o, &t, &why), Status::kInvalidArgument);
  EXPECT_NE(why.find("requires a password"), std::string::npos) << why;
  o.redis.password = "sekret";
  EXPECT_EQ(TieredCache::Create(o, &t, &why), Status::kOk) << why;
}

TEST(TierCreate, ARedisWithoutTrackingIsRefusedWithAMessage) {
  RedisServer redis;
  std::string why;
  // CLIENT renamed away: as a server before Redis 6 answers CLIENT TRACKING.
  ASSERT_TRUE(redis.Start({"--rename-command", "CLIENT", ""}, &why)) << why;
  std::unique_ptr<TieredCache> t;
  EXPECT_EQ(TieredCache::Create(Opts(redis.port()), &t, &why), Status::kInvalidArgument);
  EXPECT_NE(why.find("client-side caching"), std::string::npos) << why;
}

TEST_F(Tier, OverlappingBroadcastPrefixesAreRefused) {
  TieredOptions o = Opts(redis_.port());
  o.tracking = Tracking::kBroadcast;
  o.broadcast_prefixes = {"user:", "user:1"};
  std::unique_ptr<TieredCache> t;
  std::string why;
  EXPECT_EQ(TieredCache::Create(o, &t, &why), Status::kInvalidArgument);
  EXPECT_NE(why.find("overlap"), std::string::npos) << why;
}

TEST_F(Tier, BadOptionsAreRefusedBeforeConnecting) {
  std::unique_ptr<TieredCache> t;
  std::string why;
  TieredOptions o = Opts(redis_.port());
  o.max_staleness = 100ms;  // < health + 2 x command timeout + 50 ms
  EXPECT_EQ(TieredCache::Create(o, &t, &why), Status::kInvalidArgument);
  EXPECT_NE(why.find("max_staleness"), std::string::npos) << why;
  o = Opts(redis_.port());
  o.write_mode = WriteMode::kWriteThrough;  // without a store writer
  EXPECT_EQ(TieredCache::Create(o, &t, &why), Status::kInvalidArgument);
  o = Opts(redis_.port());
  o.l1.capacity_bytes = 0;
  EXPECT_EQ(TieredCache::Create(o, &t, &why), Status::kInvalidArgument);
}

// ---- reads ----

TEST_F(Tier, L2MissLoadsWritesRedisAndFillsL1) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.l1.loader = CountingLoader(&loads, "v1", 10s);
  auto t = Make(o);
  FetchResult r = t->Get("k");
  EXPECT_EQ(ValueOf(r), "v1");
  EXPECT_EQ(r.source, FetchSource::kLoaded);
  EXPECT_EQ(redis_.Command({"GET", "k"}), "v1");
  const long pttl = std::stol(redis_.Command({"PTTL", "k"}));
  EXPECT_GT(pttl, 9000);
  EXPECT_LE(pttl, 10000);
  r = t->Get("k");
  EXPECT_EQ(ValueOf(r), "v1");
  EXPECT_EQ(r.source, FetchSource::kHit);
  TieredStats s = t->GetStats();
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(s.l2_misses, 1u);
  EXPECT_EQ(s.l2_hits, 0u);
  EXPECT_EQ(s.fills, 1u);
  EXPECT_EQ(s.l1.hits, 1u);  // the second read never asked Redis
}

TEST_F(Tier, L2HitFillsL1NoLongerThanTheRedisTtlNorL1Max) {
  auto clock = std::make_shared<ManualClock>();
  TieredOptions o = Opts(redis_.port());
  o.l1.clock = clock;
  o.l1_max_ttl = 10s;
  auto t = Make(o);
  // Redis's TTLs run in real time: "shorter" has 5 s, so this thread may be
  // held a while before its GET and still find it.
  ASSERT_EQ(redis_.Command({"SET", "short", "a", "PX", "300000"}), "OK");  // 300 s in Redis
  ASSERT_EQ(redis_.Command({"SET", "shorter", "b", "PX", "5000"}), "OK");  // 5 s in Redis
  ASSERT_EQ(redis_.Command({"SET", "forever", "c"}), "OK");
  for (const char* k : {"short", "shorter", "forever"}) {
    EXPECT_EQ(t->Get(k).source, FetchSource::kHit);
  }
  EXPECT_EQ(t->GetStats().l2_hits, 3u);
  clock->Advance(5001ms);  // "shorter" is past its Redis TTL: gone from L1
  EXPECT_FALSE(t->l1().Contains("shorter"));
  EXPECT_TRUE(t->l1().Contains("short"));
  EXPECT_TRUE(t->l1().Contains("forever"));
  clock->Advance(5000ms);  // past l1_max_ttl: the others go too
  EXPECT_FALSE(t->l1().Contains("short"));
  EXPECT_FALSE(t->l1().Contains("forever"));
  EXPECT_EQ(ValueOf(t->Get("forever")), "c");
  EXPECT_EQ(t->GetStats().l2_hits, 4u);
}

TEST_F(Tier, AnL1HitNeverWaitsForRedis) {
  TieredOptions o = Opts(redis_.port());
  // Long enough that L1 stays usable however late this thread runs after
  // the pause: the check below is of what the hit asked, not of how long.
  o.redis.command_timeout = 2s;
  o.max_staleness = 5s;
  auto t = Make(o);
  ASSERT_EQ(redis_.Command({"SET", "k", "v"}), "OK");
  ASSERT_EQ(ValueOf(t->Get("k")), "v");
  const TieredStats before = t->GetStats();
  redis_.Pause();  // Redis hangs: every command would time out
  FetchResult r = t->Get("k");
  const TieredStats after = t->GetStats();
  redis_.Resume();
  EXPECT_EQ(ValueOf(r), "v");
  EXPECT_EQ(r.source, FetchSource::kHit);
  // Nothing was asked of Redis (a GET that timed out would count an error).
  EXPECT_EQ(after.l2_hits, before.l2_hits);
  EXPECT_EQ(after.l2_misses, before.l2_misses);
  EXPECT_EQ(after.l2_errors, before.l2_errors);
  EXPECT_EQ(after.l2_skipped, before.l2_skipped);
}

TEST_F(Tier, OneFlightPerKeyAcrossThreads) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.l1.loader = [&](std::string_view) {
    loads.fetch_add(1);
    std::this_thread::sleep_for(50ms);
    return LoadResult::Value("v");
  };
  auto t = Make(o);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] { ok += ValueOf(t->Get("hot")) == "v"; });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(loads.load(), 1);
  EXPECT_EQ(t->GetStats().l2_misses, 1u);  // one GET for all eight
}

TEST_F(Tier, AnExpiredL1EntryIsServedStaleWhileItRefreshesThroughRedis) {
  auto clock = std::make_shared<ManualClock>();
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.l1.clock = clock;
  o.l1.stale_while_revalidate = 10s;  // the L1's own serve-stale (DESIGN.md L7)
  o.l1.loader = CountingLoader(&loads, "db");
  o.l1_max_ttl = 1s;
  auto t = Make(o);
  ASSERT_EQ(redis_.Command({"SET", "k", "v1"}), "OK");
  ASSERT_EQ(ValueOf(t->Get("k")), "v1");
  ASSERT_EQ(redis_.Command({"SET", "k", "v2"}), "OK");
  // The write's message drops the entry: nothing stale is served after a
  // write, only after a TTL.
  ASSERT_TRUE(WaitFor([&] { return !t->l1().Contains("k"); }));
  ASSERT_EQ(ValueOf(t->Get("k")), "v2");
  clock->Advance(1500ms);  // past l1_max_ttl, within the grace
  FetchResult r = t->Get("k");
  EXPECT_EQ(ValueOf(r), "v2");
  EXPECT_TRUE(r.stale);
  EXPECT_EQ(r.source, FetchSource::kStale);
  // The refresh went to Redis (not the loader) and put a fresh copy back.
  EXPECT_TRUE(WaitFor([&] { return t->GetStats().l2_hits == 3; }));
  EXPECT_TRUE(WaitFor([&] { return t->l1().Contains("k"); }));
  EXPECT_EQ(t->Get("k").source, FetchSource::kHit);
  EXPECT_EQ(loads.load(), 0);
}

// ---- invalidation ----

TEST_F(Tier, AWriteByAnotherClientInvalidatesL1) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.l1.loader = CountingLoader(&loads, "v1");
  auto a = Make(o);
  auto b = Make(o);  // another process, as far as Redis can tell
  ASSERT_EQ(ValueOf(a->Get("k")), "v1");
  ASSERT_EQ(b->Set("k", "v2"), Status::kOk);
  EXPECT_TRUE(WaitFor([&] { return ValueOf(a->Get("k")) == "v2"; }));
  ASSERT_EQ(redis_.Command({"SET", "k", "v3"}), "OK");  // any client's write
  EXPECT_TRUE(WaitFor([&] { return ValueOf(a->Get("k")) == "v3"; }));
  EXPECT_GE(a->GetStats().invalidated_keys, 2u);
  EXPECT_EQ(loads.load(), 1);
}

// The hook of InvalidationDuringTheGetKeepsItsResultOutOfL1.
struct RaceHook {
  RedisServer* redis = nullptr;
  TieredCache* tier = nullptr;
  std::atomic<bool> armed{false};
  bool saw_invalidation = false;
};
RaceHook g_race;

TEST_F(Tier, InvalidationDuringTheGetKeepsItsResultOutOfL1) {
  auto t = Make();
  ASSERT_EQ(redis_.Command({"SET", "race", "v1"}), "OK");
  g_race.redis = &redis_;
  g_race.tier = t.get();
  g_race.armed = true;
  internal::SetTestHook([](internal::TestPoint point, std::string_view key) {
    if (point != internal::TestPoint::kTierL2Answered || key != "race") return;
    if (!g_race.armed.exchange(false)) return;
    // The GET answered v1; now another client writes v2, and its
    // invalidation arrives before this flight completes.
    const uint64_t before = g_race.tier->GetStats().invalidated_keys;
    g_race.redis->Command({"SET", "race", "v2"});
    g_race.saw_invalidation =
        WaitFor([&] { return g_race.tier->GetStats().invalidated_keys > before; }, 2000ms);
  });
  FetchResult r = t->Get("race");
  internal::SetTestHook(nullptr);
  EXPECT_TRUE(g_race.saw_invalidation);
  EXPECT_EQ(ValueOf(r), "v1");             // the answer of the GET, to its caller...
  EXPECT_FALSE(t->l1().Contains("race"));  // ...but not kept
  EXPECT_EQ(t->GetStats().l1.loads_discarded, 1u);
  EXPECT_EQ(ValueOf(t->Get("race")), "v2");
}

// The hooks of AnAnsweredPingIsNotMissedBecauseTheSessionThreadWasHeld and
// ANewSessionIsConfirmedFromItsSubscribeNotFromWhenItIsMarkedUp.
std::atomic<int> g_held_pings{0};
std::atomic<RedisServer*> g_server{nullptr};  // atomic: set before the hook, read in it
Clock::time_point g_paused_at;

TEST_F(Tier, AnAnsweredPingIsNotMissedBecauseTheSessionThreadWasHeld) {
  auto t = Make();
  ASSERT_EQ(redis_.Command({"SET", "k", "v"}), "OK");
  ASSERT_EQ(ValueOf(t->Get("k")), "v");
  g_held_pings = 0;
  g_server = &redis_;
  // After each of three pings the session thread is held for three command
  // timeouts before it reads again (as a long sweep or a busy scheduler
  // would hold it). Redis has answered by then: it answers commands in the
  // order they arrive, so once it has answered a PING sent after ours, the
  // pong is on the session's socket.
  internal::SetTestHook([](internal::TestPoint point, std::string_view) {
    if (point != internal::TestPoint::kTierPingSent || g_held_pings.load() >= 3) return;
    std::this_thread::sleep_for(300ms);
    g_server.load()->Command({"PING"});
    g_held_pings.fetch_add(1);
  });
  const bool held = WaitFor([&] { return g_held_pings.load() >= 3; }, 10000ms);
  internal::SetTestHook(nullptr);
  ASSERT_TRUE(held);
  // A missed ping ends the session at once, before the next ping is sent:
  // the first hold's loss would be counted by now.
  EXPECT_EQ(t->GetStats().tracking_losses, 0u);
  EXPECT_EQ(t->GetStats().reconnects, 0u);
  EXPECT_TRUE(t->l1().Contains("k"));  // a lost session would have cleared L1
}

TEST_F(Tier, ANewSessionIsConfirmedFromItsSubscribeNotFromWhenItIsMarkedUp) {
  TieredOptions o = Opts(redis_.port());
  o.reconnect_min = o.reconnect_max = 1ms;
  // The first ping of the new session comes a second after it opens, so only
  // the confirmation's own start decides what tracking() says below.
  o.health_interval = 1s;
  o.max_staleness = 1250ms;  // the least allowed: health + 2 x command timeout + 50 ms
  auto t = Make(o);
  g_server = &redis_;
  g_held_pings = 0;
  // The session thread reconnects; Redis answers its SUBSCRIBE, then stops
  // answering anything, and the thread is held 600 ms before it marks
  // tracking up.
  internal::SetTestHook([](internal::TestPoint point, std::string_view) {
    if (point != internal::TestPoint::kTierSessionOpened || g_held_pings.exchange(1) != 0) return;
    g_server.load()->Pause();
    g_paused_at = Clock::now();
    std::this_thread::sleep_for(600ms);
    g_held_pings.store(2, std::memory_order_release);  // publishes the two above
  });
  ASSERT_EQ(redis_.Command({"CLIENT", "KILL", "TYPE", "pubsub"}), "1");
  const bool held =
      WaitFor([&] { return g_held_pings.load(std::memory_order_acquire) == 2; }, 10000ms);
  const bool reconnected = WaitFor([&] { return t->GetStats().reconnects == 1; });
  internal::SetTestHook(nullptr);
  ASSERT_TRUE(held && reconnected);
  // Nothing Redis answered was asked after the pause, so L1 is unusable
  // max_staleness (plus a coarse clock tick) after it.
  std::this_thread::sleep_until(g_paused_at + 1250ms + 30ms);
  EXPECT_FALSE(t->tracking());
  redis_.Resume();
}

TEST_F(Tier, FlushMessageDropsEveryEntry) {
  auto t = Make();
  for (const char* k : {"a", "b", "c"}) ASSERT_EQ(redis_.Command({"SET", k, k}), "OK");
  for (const char* k : {"a", "b", "c"}) ASSERT_EQ(ValueOf(t->Get(k)), k);
  ASSERT_EQ(t->l1().Size(), 3u);
  ASSERT_EQ(redis_.Command({"FLUSHALL"}), "OK");
  EXPECT_TRUE(WaitFor([&] { return t->GetStats().flushes == 1; }));
  EXPECT_EQ(t->l1().Size(), 0u);
}

TEST_F(Tier, LostInvalidationConnectionBypassesL1UntilTrackingIsBack) {
  TieredOptions o = Opts(redis_.port());
  o.reconnect_min = 3s;  // long enough to observe the gap however late this thread runs
  o.reconnect_max = 3s;
  auto t = Make(o);
  ASSERT_EQ(redis_.Command({"SET", "k", "v1"}), "OK");
  ASSERT_EQ(ValueOf(t->Get("k")), "v1");
  ASSERT_TRUE(t->tracking());
  ASSERT_EQ(redis_.Command({"CLIENT", "KILL", "TYPE", "pubsub"}), "1");
  ASSERT_TRUE(WaitFor([&] { return t->GetStats().tracking_losses == 1; }));
  EXPECT_FALSE(t->tracking());
  EXPECT_EQ(t->l1().Size(), 0u);  // dropped: its invalidations could no longer arrive
  ASSERT_EQ(redis_.Command({"SET", "k", "v2"}), "OK");  // unseen by the dead subscriber
  FetchResult r = t->Get("k");
  EXPECT_EQ(ValueOf(r), "v2");  // from Redis, not from L1
  EXPECT_GE(t->GetStats().bypassed_reads, 1u);
  EXPECT_EQ(t->l1().Size(), 0u);
  ASSERT_TRUE(WaitFor([&] { return t->tracking(); }, 10000ms));
  EXPECT_EQ(t->GetStats().reconnects, 1u);
  EXPECT_EQ(ValueOf(t->Get("k")), "v2");
  EXPECT_EQ(t->Get("k").source, FetchSource::kHit);
  EXPECT_TRUE(t->l1().Contains("k"));
  ASSERT_EQ(redis_.Command({"SET", "k", "v3"}), "OK");  // the new session hears it
  EXPECT_TRUE(WaitFor([&] { return ValueOf(t->Get("k")) == "v3"; }));
}

TEST_F(Tier, AMissedPingStopsL1WithinTheBound) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.l1.loader = CountingLoader(&loads, "from-loader");
  auto t = Make(o);
  ASSERT_EQ(redis_.Command({"SET", "k", "v"}), "OK");
  ASSERT_EQ(ValueOf(t->Get("k")), "v");
  redis_.Pause();  // no EOF, no answers: only the pings can tell
  // Every ping answered from now on was sent before this moment, so L1 is
  // unusable max_staleness (plus a coarse clock tick) after it, however the
  // threads were scheduled in between.
  const auto paused = Clock::now();
  std::this_thread::sleep_until(paused + 400ms + 30ms);
  EXPECT_FALSE(t->tracking());
  FetchResult r = t->Get("k");  // not from L1: Redis times out, the loader answers
  EXPECT_EQ(ValueOf(r), "from-loader");
  EXPECT_EQ(r.source, FetchSource::kLoaded);
  redis_.Resume();
  EXPECT_TRUE(WaitFor([&] { return t->tracking(); }, 3000ms));
  EXPECT_EQ(ValueOf(t->Get("k")), "v");
}

TEST_F(Tier, RedisFailuresOpenTheCircuitBreaker) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.l1.loader = CountingLoader(&loads, "db");
  o.breaker_open = 2s;  // open for the whole check however late this thread runs
  auto t = Make(o);
  redis_.Pause();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ValueOf(t->Get("k" + std::to_string(i))), "db");
  TieredStats s = t->GetStats();
  EXPECT_EQ(s.breaker_state, BreakerState::kOpen);
  EXPECT_GE(s.l2_errors, 3u);
  EXPECT_EQ(s.breaker_opens, 1u);
  EXPECT_EQ(ValueOf(t->Get("k9")), "db");  // skipped: no timeout to wait for
  EXPECT_EQ(t->GetStats().l2_skipped, s.l2_skipped + 1);
  EXPECT_EQ(t->GetStats().l2_errors, s.l2_errors);  // Redis was not asked
  redis_.Resume();
  // After breaker_open one trial goes through and closes it.
  EXPECT_TRUE(WaitFor(
      [&] {
        t->Get("probe");
        return t->GetStats().breaker_state == BreakerState::kClosed;
      },
      10000ms));
}

TEST_F(Tier, LosingADataConnectionDropsL1InDefaultMode) {
  auto t = Make();
  ASSERT_EQ(redis_.Command({"SET", "k", "v"}), "OK");
  ASSERT_EQ(ValueOf(t->Get("k")), "v");
  ASSERT_TRUE(t->l1().Contains("k"));
  // Kills the tier's idle data connection (and this command's own): Redis
  // forgets what it read, so the tier must not keep what it read.
  redis_.Command({"CLIENT", "KILL", "TYPE", "normal"});
  EXPECT_TRUE(WaitFor([&] { return t->GetStats().connection_losses >= 1; }));
  EXPECT_FALSE(t->l1().Contains("k"));
  EXPECT_EQ(ValueOf(t->Get("k")), "v");
}

// ---- writes ----

TEST_F(Tier, CacheAsideInvalidateDeletesRedisAndTellsOthers) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.l1.loader = CountingLoader(&loads, "db");
  auto a = Make(o);
  auto b = Make(o);
  ASSERT_EQ(ValueOf(a->Get("k")), "db");
  ASSERT_EQ(ValueOf(b->Get("k")), "db");
  ASSERT_EQ(loads.load(), 1);  // b found it in Redis
  ASSERT_EQ(a->Invalidate("k"), Status::kOk);
  EXPECT_EQ(redis_.Command({"EXISTS", "k"}), "0");
  EXPECT_FALSE(a->l1().Contains("k"));
  EXPECT_TRUE(WaitFor([&] { return !b->l1().Contains("k"); }));
}

TEST_F(Tier, WriteThroughWritesTheStoreFirstThenRedis) {
  std::mutex mu;
  std::map<std::string, std::string> store;
  bool fail = false;
  TieredOptions o = Opts(redis_.port());
  o.write_mode = WriteMode::kWriteThrough;
  o.store_writer = [&](std::string_view k, std::optional<std::string_view> v) {
    std::lock_guard<std::mutex> lock(mu);
    if (fail) return WriteOutcome::Failed("disk full");
    if (v) {
      store[std::string(k)] = std::string(*v);
    } else {
      store.erase(std::string(k));
    }
    return WriteOutcome::Ok();
  };
  auto t = Make(o);
  auto other = Make(Opts(redis_.port()));
  ASSERT_EQ(t->Set("k", "v1"), Status::kOk);
  EXPECT_EQ(store["k"], "v1");
  EXPECT_EQ(redis_.Command({"GET", "k"}), "v1");
  EXPECT_EQ(ValueOf(other->Get("k")), "v1");
  fail = true;
  std::string why;
  EXPECT_EQ(t->Set("k", "v2", {}, &why), Status::kWriteFailed);
  EXPECT_EQ(why, "disk full");
  EXPECT_EQ(redis_.Command({"GET", "k"}), "v1");  // unchanged
  fail = false;
  ASSERT_EQ(t->Set("k", "v3"), Status::kOk);
  EXPECT_TRUE(WaitFor([&] { return ValueOf(other->Get("k")) == "v3"; }));
  ASSERT_EQ(t->Delete("k"), Status::kOk);
  EXPECT_EQ(store.count("k"), 0u);
  EXPECT_EQ(redis_.Command({"EXISTS", "k"}), "0");
}

TEST_F(Tier, WriteBehindUpdatesRedisNowAndTheStoreLater) {
  std::mutex mu;
  std::map<std::string, std::string> store;
  TieredOptions o = Opts(redis_.port());
  o.write_mode = WriteMode::kWriteBehind;
  // Only Flush delivers: "the store later" holds however late this thread runs.
  o.write_behind.max_delay = 1h;
  o.write_behind.writer = [&](const std::vector<QueuedWrite>& batch) {
    std::lock_guard<std::mutex> lock(mu);
    for (const QueuedWrite& w : batch) {
      if (w.value) store[w.key] = *w.value;
    }
    return WriteOutcome::Ok();
  };
  auto t = Make(o);
  auto other = Make(Opts(redis_.port()));
  ASSERT_EQ(t->Set("k", "v1"), Status::kOk);
  EXPECT_EQ(redis_.Command({"GET", "k"}), "v1");  // Redis now
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(store.count("k"), 0u);  // the store later
  }
  EXPECT_EQ(ValueOf(t->Get("k")), "v1");
  EXPECT_EQ(t->Get("k").source, FetchSource::kHit);
  EXPECT_EQ(ValueOf(other->Get("k")), "v1");
  ASSERT_EQ(t->Flush(2s), Status::kOk);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(store["k"], "v1");
}

// ---- BCAST ----

TEST_F(Tier, BroadcastModeKeepsOnlyKeysUnderItsPrefixes) {
  TieredOptions o = Opts(redis_.port());
  o.tracking = Tracking::kBroadcast;
  o.broadcast_prefixes = {"user:"};
  auto t = Make(o);
  ASSERT_EQ(redis_.Command({"SET", "user:1", "ada"}), "OK");
  ASSERT_EQ(redis_.Command({"SET", "order:1", "tea"}), "OK");
  // BCAST reports writes whether we read the key or not: the message about
  // this first SET could otherwise drop the entry we are about to check.
  ASSERT_TRUE(WaitFor([&] { return t->GetStats().invalidated_keys == 1; }));
  EXPECT_EQ(ValueOf(t->Get("user:1")), "ada");
  EXPECT_EQ(ValueOf(t->Get("order:1")), "tea");
  EXPECT_TRUE(t->l1().Contains("user:1"));
  EXPECT_FALSE(t->l1().Contains("order:1"));  // Redis would not report its changes
  EXPECT_EQ(t->GetStats().bypassed_reads, 1u);
  ASSERT_EQ(redis_.Command({"SET", "user:1", "grace"}), "OK");
  EXPECT_TRUE(WaitFor([&] { return ValueOf(t->Get("user:1")) == "grace"; }));
}

TEST_F(Tier, ARefreshStillLoadingWhenTheTierIsDestroyedFinishesSafely) {
  // The L1's destructor joins a refresh whose loader is running. The tier's
  // loader uses the L1 cache after the load (here: to keep an answer for a
  // key outside the broadcast prefixes out of it); it found the tier's
  // pointer to it already cleared, and called through null (seen as a
  // crash under UBSan in MultiProcess.StampedeLockMakesOneLoadPerExpiry...).
  std::promise<void> in_load_promise, release_promise;
  std::shared_future<void> release = release_promise.get_future().share();
  TieredOptions o = Opts(redis_.port());
  o.tracking = Tracking::kBroadcast;
  o.broadcast_prefixes = {"user:"};
  o.l1.loader = [&](std::string_view) {
    in_load_promise.set_value();
    release.wait();
    return LoadResult::Value("loaded");
  };
  auto t = Make(o);
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->l1().Put("order:1", "old"), Status::kOk);
  ASSERT_EQ(t->l1().Refresh("order:1"), Status::kOk);
  in_load_promise.get_future().wait();
  std::thread destroyer([&] { t.reset(); });
  std::this_thread::sleep_for(300ms);  // the destruction waits for the load
  release_promise.set_value();
  destroyer.join();
  EXPECT_EQ(t, nullptr);
}

// ---- stampedes across processes ----

TEST_F(Tier, StampedeLockLetsOneOfManyProcessesLoad) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.stampede_lock = true;
  o.lock_lease = 2s;
  std::vector<std::unique_ptr<TieredCache>> tiers;
  o.l1.loader = [&](std::string_view) {
    loads.fetch_add(1);
    // Hold the lock until the three other processes have found it taken. (A
    // fixed 100 ms sleep lost the race on a loaded machine: a thread that
    // started late found the value in Redis and never waited.) Not past
    // the 2 s lease, after which another process may take the lock.
    const auto give_up = Clock::now() + 1500ms;
    for (;;) {
      uint64_t waits = 0;
      for (auto& t : tiers) waits += t->GetStats().lock_waits;
      if (waits >= 3 || Clock::now() > give_up) break;
      std::this_thread::sleep_for(1ms);
    }
    return LoadResult::Value("v", 10s);
  };
  for (int i = 0; i < 4; ++i) tiers.push_back(Make(o));  // four "processes"
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { ok += ValueOf(tiers[i % 4]->Get("hot")) == "v"; });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(loads.load(), 1);
  uint64_t acquired = 0, waits = 0, wait_hits = 0;
  for (auto& t : tiers) {
    TieredStats s = t->GetStats();
    acquired += s.lock_acquired;
    waits += s.lock_waits;
    wait_hits += s.lock_wait_hits;
  }
  // A waiter whose poll found nothing just before the holder filled and let
  // go may take the lock next; it then finds the value and loads nothing, so
  // an acquisition beyond the first is not a second load.
  EXPECT_GE(acquired, 1u);
  EXPECT_EQ(waits, 3u);  // one flight per process: three processes waited
  EXPECT_EQ(wait_hits, 3u);
  EXPECT_EQ(redis_.Command({"EXISTS", "lock:hot"}), "0");  // released
}

TEST_F(Tier, StampedeLockOfAVanishedHolderRunsOutAndAPollerLoads) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.stampede_lock = true;
  o.lock_lease = 5s;  // fails open after 10 s, far past anything below
  o.l1.loader = CountingLoader(&loads, "v");
  auto t = Make(o);
  // A holder that died: nobody fills, and once the reader is polling, its
  // lock has 300 ms left.
  ASSERT_EQ(redis_.Command({"SET", "lock:k", "dead", "PX", "10000"}), "OK");
  Clock::time_point expiring;
  std::thread holder_vanishes([&] {
    if (!WaitFor([&] { return t->GetStats().lock_waits == 1; }, 10000ms)) return;
    expiring = Clock::now();
    redis_.Command({"PEXPIRE", "lock:k", "300"});
  });
  EXPECT_EQ(ValueOf(t->Get("k")), "v");
  const auto done = Clock::now();
  holder_vanishes.join();
  EXPECT_GE(done - expiring, 250ms);  // it waited for the lease to run out
  EXPECT_EQ(loads.load(), 1);
  TieredStats s = t->GetStats();
  EXPECT_EQ(s.lock_waits, 1u);
  EXPECT_EQ(s.lock_acquired, 1u);   // then took the lock...
  EXPECT_EQ(s.lock_fail_open, 0u);  // ...rather than fail open after 10 s
  EXPECT_EQ(redis_.Command({"GET", "k"}), "v");
}

TEST_F(Tier, StampedeLockFailsOpenAfterTwiceTheLease) {
  std::atomic<int> loads{0};
  TieredOptions o = Opts(redis_.port());
  o.stampede_lock = true;
  o.lock_lease = 200ms;
  o.l1.loader = CountingLoader(&loads, "v");
  auto t = Make(o);
  // A lock that outlives any lease we know of (someone else's settings).
  ASSERT_EQ(redis_.Command({"SET", "lock:k", "other", "PX", "10000"}), "OK");
  const auto start = Clock::now();
  EXPECT_EQ(ValueOf(t->Get("k")), "v");
  EXPECT_GE(Clock::now() - start, 350ms);  // twice the lease, less a poll's jitter
  EXPECT_EQ(t->GetStats().lock_fail_open, 1u);
  EXPECT_EQ(loads.load(), 1);
}

TEST_F(Tier, AnInvalidationDuringALockedLoadKeepsItsFillOutOfRedis) {
  std::mutex mu;
  std::condition_variable cv;
  bool loading = false, release = false;
  TieredOptions o = Opts(redis_.port());
  o.stampede_lock = true;
  o.l1.loader = [&](std::string_view) {
    std::unique_lock<std::mutex> lock(mu);
    loading = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return LoadResult::Value("read-before-the-write");
  };
  auto t = Make(o);
  auto writer = Make(o);  // another process with the same settings
  FetchResult r;
  std::thread reader([&] { r = t->Get("k"); });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return loading; });
  }
  // The store changed while the load ran: cache-aside invalidation.
  ASSERT_EQ(writer->Invalidate("k"), Status::kOk);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  reader.join();
  EXPECT_EQ(ValueOf(r), "read-before-the-write");   // its caller gets it...
  EXPECT_EQ(redis_.Command({"EXISTS", "k"}), "0");  // ...Redis does not
  EXPECT_FALSE(t->l1().Contains("k"));
  EXPECT_EQ(t->GetStats().fills_refused, 1u);
}

// ---- hosts ----

TEST_F(Tier, AChildAfterForkMayOnlyDestroyTheParentsTier) {
  auto t = Make();
  ASSERT_EQ(redis_.Command({"SET", "k", "v"}), "OK");
  ASSERT_EQ(ValueOf(t->Get("k")), "v");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    bool ok = t->InheritedAcrossFork() && t->Get("k").status == Status::kForked &&
              t->Set("k", "x") == Status::kForked && !t->tracking();
    const auto start = Clock::now();
    t.reset();                             // must not join the parent's thread
    ok = ok && Clock::now() - start < 5s;  // a join would hang for good
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(ValueOf(t->Get("k")), "v");  // the parent's tier is untouched
  EXPECT_TRUE(t->tracking());
}

TEST_F(Tier, DestroyingWhileRedisIsGoneIsPrompt) {
  auto t = Make();
  redis_.Stop();
  ASSERT_TRUE(WaitFor([&] { return !t->tracking(); }));
  std::this_thread::sleep_for(100ms);  // the thread is reconnecting now
  const auto start = Clock::now();
  t.reset();
  EXPECT_LT(Clock::now() - start, 5s);  // not a hang: the thread is woken, not waited out
}

}  // namespace
}  // namespace larder
