// Where hosts embed Larder: write-behind racing loads and refreshes, listeners
// that call back in, memory held by removed entries, a refresh pool torn down
// with work queued, CleanUp beside a paused reader. (Fork and dlclose are in
// fork_test.cc and tests/capi/.)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "entry.h"
#include "epoch.h"
#include "gtest/gtest.h"
#include "hash.h"
#include "larder/cache.h"
#include "larder/write_behind.h"
#include "stripe.h"
#include "stripe_test_peer.h"
#include "test_point.h"
#include "test_util.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::GetOr;
using testing::Latch;
using testing::MakeCache;

// Runs body on another thread; fails the test (and ends the process, since a
// deadlocked thread cannot be joined) if it does not finish within `limit`.
void FinishesWithin(std::chrono::seconds limit, std::function<void()> body) {
  std::packaged_task<void()> task(std::move(body));
  std::future<void> done = task.get_future();
  std::thread runner(std::move(task));
  if (done.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "did not finish within " << limit.count() << " s: a deadlock";
    std::fflush(nullptr);
    std::_Exit(1);
  }
  runner.join();
  done.get();
}

// ---- 1. a load or refresh never installs the store's old value over a
//         pending write-behind write (W2, read-your-writes) ----

// A store the write-behind queue writes to and the loader reads from.
struct Store {
  std::mutex mu;
  std::map<std::string, std::string> rows;
  int loads = 0;

  LoadResult Load(std::string_view key) {
    std::lock_guard<std::mutex> lock(mu);
    ++loads;
    auto it = rows.find(std::string(key));
    return it == rows.end() ? LoadResult::NotFound() : LoadResult::Value(it->second);
  }
  WriteOutcome Apply(const std::vector<QueuedWrite>& batch) {
    std::lock_guard<std::mutex> lock(mu);
    for (const QueuedWrite& w : batch) {
      if (w.value) {
        rows[w.key] = *w.value;
      } else {
        rows.erase(w.key);
      }
    }
    return WriteOutcome::Ok();
  }
};

// The write a test makes at a test point, once.
std::function<void(std::string_view)> g_at_point;
internal::TestPoint g_point;

void RunAtPoint(internal::TestPoint point, std::string_view key) {
  if (point != g_point || !g_at_point) return;
  auto action = std::move(g_at_point);
  g_at_point = nullptr;
  action(key);
}

class PendingWriteRace : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.rows["k"] = "old";
    Options o;
    o.capacity_bytes = 1 << 20;
    o.stripes = 1;
    o.default_refresh_delta = 1ms;
    o.loader = [this](std::string_view key) { return store_.Load(key); };
    o.refresh_executor = [](std::function<void()> task) { task(); };  // refresh inline
    cache_ = MakeCache(o);
    WriteBehindOptions w;
    w.writer = [this](const std::vector<QueuedWrite>& batch) { return store_.Apply(batch); };
    w.max_delay = std::chrono::hours(1);  // stays pending until Flush
    ASSERT_EQ(WriteBehind::Open(cache_.get(), w, &wb_), Status::kOk);
    internal::SetTestHook(&RunAtPoint);
  }
  void TearDown() override {
    internal::SetTestHook(nullptr);
    g_at_point = nullptr;
  }
  // Makes `write` happen inside the window at `point` of the next load.
  void AtPoint(internal::TestPoint point, std::function<void()> write) {
    g_point = point;
    g_at_point = [write = std::move(write)](std::string_view) { write(); };
  }

  Store store_;
  std::unique_ptr<Cache> cache_;
  std::unique_ptr<WriteBehind> wb_;
};

TEST_F(PendingWriteRace, RefreshRacingAWriteBehindPutKeepsTheNewValue) {
  ASSERT_EQ(cache_->Put("k", "old"), Status::kOk);
  AtPoint(internal::TestPoint::kRefreshRegistered,
          [this] { ASSERT_EQ(wb_->Put("k", "new"), Status::kOk); });
  ASSERT_EQ(cache_->Refresh("k"), Status::kOk);
  EXPECT_EQ(GetOr(*cache_, "k"), "new");
  ASSERT_EQ(wb_->Flush(), Status::kOk);
  EXPECT_EQ(GetOr(*cache_, "k"), "new");
}

TEST_F(PendingWriteRace, RefreshRacingAWriteBehindDeleteLeavesTheKeyDeleted) {
  ASSERT_EQ(cache_->Put("k", "old"), Status::kOk);
  AtPoint(internal::TestPoint::kRefreshRegistered,
          [this] { ASSERT_EQ(wb_->Delete("k"), Status::kOk); });
  ASSERT_EQ(cache_->Refresh("k"), Status::kOk);
  EXPECT_EQ(GetOr(*cache_, "k"), "<miss>");
  ASSERT_EQ(wb_->Flush(), Status::kOk);
  EXPECT_EQ(GetOr(*cache_, "k"), "<miss>");
}

TEST_F(PendingWriteRace, GetOrLoadRacingAWriteBehindDeleteNeverLoadsTheOldValue) {
  AtPoint(internal::TestPoint::kLoadRegistered,
          [this] { ASSERT_EQ(wb_->Delete("k"), Status::kOk); });
  FetchResult r = cache_->GetOrLoad("k");
  EXPECT_EQ(r.status, Status::kNotFound);
  EXPECT_EQ(GetOr(*cache_, "k"), "<miss>");
  ASSERT_EQ(wb_->Flush(), Status::kOk);
  EXPECT_EQ(GetOr(*cache_, "k"), "<miss>");
  EXPECT_EQ(cache_->GetOrLoad("k").status, Status::kNotFound);
}

TEST_F(PendingWriteRace, GetOrLoadRacingAWriteBehindPutAnswersWithThePendingValue) {
  // A value too large to cache lives only in the queue until it is flushed:
  // the race leaves the cache without an entry, so only the pending-write
  // check stands between the load and the store's old value.
  const std::string big(2 << 20, 'n');
  AtPoint(internal::TestPoint::kLoadRegistered,
          [this, &big] { ASSERT_EQ(wb_->Put("k", big), Status::kOk); });
  FetchResult r = cache_->GetOrLoad("k");
  ASSERT_EQ(r.status, Status::kOk);
  EXPECT_TRUE(r.value.value() == big);  // (no 2 MiB diagnostics)
  EXPECT_NE(GetOr(*cache_, "k"), "old");
  ASSERT_EQ(wb_->Flush(), Status::kOk);
  EXPECT_NE(GetOr(*cache_, "k"), "old");
  FetchResult after = cache_->GetOrLoad("k");
  ASSERT_EQ(after.status, Status::kOk);
  EXPECT_TRUE(after.value.value() == big);
}

// ---- 2. listeners run with no lock held, the per-key write locks included ----

WriteOutcome StoreOk(std::string_view, std::optional<std::string_view>) {
  return WriteOutcome::Ok();
}

TEST(ListenerReentry, AnExpiryListenerMayDeleteThroughTheKeyBeingWritten) {
  auto clock = std::make_shared<ManualClock>();
  Cache* cache_ptr = nullptr;
  int deletes = 0;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 1;
  o.clock = clock;
  o.removal_listener = [&](std::string_view key, std::string_view, RemovalCause cause) {
    if (cause != RemovalCause::kExpired) return;
    ++deletes;
    EXPECT_EQ(cache_ptr->DeleteThrough(key, &StoreOk), Status::kOk);
  };
  auto cache = MakeCache(o);
  cache_ptr = cache.get();
  ASSERT_EQ(cache->Put("k", "v1", {.ttl = 1s}), Status::kOk);
  clock->Advance(2s);
  // The write-through's own maintenance reaps the expired entry and calls the
  // listener, which writes the same key through again.
  FinishesWithin(10s, [&] { EXPECT_EQ(cache->WriteThrough("k", "v2", &StoreOk), Status::kOk); });
  EXPECT_EQ(deletes, 1);
}

TEST(ListenerReentry, ListenersOfTwoThreadsMayWriteEachOthersKeys) {
  // Thread A writes "a", and its listener (for the replaced "a") writes "b";
  // thread B the other way round. Both listeners run at once (a barrier), so
  // a per-key lock held across a listener would close a cycle.
  Cache* cache_ptr = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  int in_listener = 0;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.removal_listener = [&](std::string_view key, std::string_view, RemovalCause cause) {
    if (cause != RemovalCause::kReplaced || (key != "a" && key != "b")) return;
    {
      std::unique_lock<std::mutex> lock(mu);
      ++in_listener;
      cv.notify_all();
      cv.wait_for(lock, 2s, [&] { return in_listener >= 2; });
    }
    const std::string other = key == "a" ? "b-done" : "a-done";
    EXPECT_EQ(cache_ptr->DeleteThrough(key == "a" ? "b" : "a", &StoreOk), Status::kOk);
    EXPECT_EQ(cache_ptr->WriteThrough(other, "x", &StoreOk), Status::kOk);
  };
  auto cache = MakeCache(o);
  cache_ptr = cache.get();
  ASSERT_EQ(cache->Put("a", "1"), Status::kOk);
  ASSERT_EQ(cache->Put("b", "1"), Status::kOk);
  FinishesWithin(10s, [&] {
    std::thread a([&] { EXPECT_EQ(cache->WriteThrough("a", "2", &StoreOk), Status::kOk); });
    std::thread b([&] { EXPECT_EQ(cache->WriteThrough("b", "2", &StoreOk), Status::kOk); });
    a.join();
    b.join();
  });
  EXPECT_EQ(GetOr(*cache, "a-done"), "x");
  EXPECT_EQ(GetOr(*cache, "b-done"), "x");
}

TEST(ListenerReentry, AWriteBehindPutsListenerMayWriteTheSameKey) {
  Cache* cache_ptr = nullptr;
  WriteBehind* wb_ptr = nullptr;
  int calls = 0;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.removal_listener = [&](std::string_view key, std::string_view value, RemovalCause cause) {
    if (cause != RemovalCause::kReplaced || key != "k" || value != "v1") return;
    ++calls;
    EXPECT_EQ(wb_ptr->Put("k", "v3"), Status::kOk);
    EXPECT_EQ(cache_ptr->WriteThrough("k2", "x", &StoreOk), Status::kOk);
  };
  auto cache = MakeCache(o);
  cache_ptr = cache.get();
  WriteBehindOptions w;
  w.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Ok(); };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), w, &wb), Status::kOk);
  wb_ptr = wb.get();
  ASSERT_EQ(wb->Put("k", "v1"), Status::kOk);
  FinishesWithin(10s, [&] { EXPECT_EQ(wb->Put("k", "v2"), Status::kOk); });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(GetOr(*cache, "k"), "v3");
}

// ---- 8. the refresh pool drops queued tasks outside its lock ----

TEST(RefreshPoolTeardown, AQueuedRefreshDroppedAtDestructionMayTriggerAnother) {
  // Dropping a queued refresh fails its flight, whose completion reaps an
  // expired entry; that entry's listener starts another refresh, which asks
  // the pool being destroyed to take it.
  auto clock = std::make_shared<ManualClock>();
  Latch release_slow_load;
  Cache* cache_ptr = nullptr;
  int listener_calls = 0;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 1;
  o.clock = clock;
  o.refresh_threads = 1;
  o.loader = [&](std::string_view key) {
    if (key == "slow") release_slow_load.Wait();
    return LoadResult::Value("loaded");
  };
  o.removal_listener = [&](std::string_view key, std::string_view, RemovalCause cause) {
    if (key != "x" || cause != RemovalCause::kExpired) return;
    ++listener_calls;
    cache_ptr->Refresh("y");
    release_slow_load.Open();
  };
  auto cache = MakeCache(o);
  cache_ptr = cache.get();
  ASSERT_EQ(cache->Put("x", "v", {.ttl = 1s}), Status::kOk);
  ASSERT_EQ(cache->Refresh("slow"), Status::kOk);  // occupies the pool's one thread
  ASSERT_TRUE(testing::Eventually([&] { return cache->GetStats().refreshes_started == 1; }));
  ASSERT_EQ(cache->Refresh("queued"), Status::kOk);  // waits in the queue
  clock->Advance(2s);
  FinishesWithin(10s, [&] { cache.reset(); });
  EXPECT_EQ(listener_calls, 1);
}

// ---- 3. memory held by removed entries is bounded in bytes ----

constexpr size_t kMiB = size_t{1} << 20;

std::unique_ptr<Cache> SixteenMiBCache() {
  Options o;
  o.capacity_bytes = 16 * kMiB;
  o.stripes = 1;
  return MakeCache(o);
}

TEST(RemovedMemory, ReplacedLargeValuesAreFreedAsTheyGo) {
  auto cache = SixteenMiBCache();
  const std::string value(15 * kMiB, 'v');
  const size_t before = internal::AllocatorBytesInUse();
  ASSERT_EQ(cache->Put("k", value), Status::kOk);
  const size_t one = internal::AllocatorBytesInUse() - before;  // with the size class's rounding
  size_t peak = 0;
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(cache->Put("k", value), Status::kOk);
    peak = std::max(peak, internal::AllocatorBytesInUse());
  }
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(cache->Contains("k"));
  // A put allocates the new value before the old one is retired; removed
  // values beyond max(capacity / 8, 1 MiB) = 2 MiB are freed at once. (Slack
  // for whatever else the process allocates meanwhile.)
  EXPECT_LE(peak, before + 2 * one + kMiB) << "peak " << (peak - before) / kMiB << " MiB";
  EXPECT_LE(internal::AllocatorBytesInUse(), before + one + kMiB);
}

TEST(RemovedMemory, ReadsFreeWhatAReaderHeldBackWithoutAnotherWrite) {
  auto cache = SixteenMiBCache();
  const std::string value(15 * kMiB, 'v');
  ASSERT_EQ(cache->Put("k", value), Status::kOk);
  ASSERT_EQ(cache->Put("other", "x"), Status::kOk);
  const size_t before = internal::AllocatorBytesInUse();
  Latch in_read, release;
  std::thread reader([&] {
    // Inside a read: the epoch cannot pass this thread, so nothing retired
    // meanwhile can be freed.
    cache->Visit("other", [&](std::string_view) {
      in_read.Open();
      release.Wait();
    });
  });
  in_read.Wait();
  for (int i = 0; i < 10; ++i) ASSERT_EQ(cache->Put("k", value), Status::kOk);
  EXPECT_GE(internal::AllocatorBytesInUse(), before + 9 * 15 * kMiB);  // held back, as it must be
  release.Open();
  reader.join();
  // Only reads from here on.
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(GetOr(*cache, "other"), "x");
  EXPECT_LE(internal::AllocatorBytesInUse(), before + 2 * kMiB)
      << (internal::AllocatorBytesInUse() - before) / kMiB << " MiB over";
}

// ---- 9. CleanUp never spins on a reader paused mid-push ----

TEST(CleanUpBesideAPausedReader, ReturnsAndReclaimsOnceThePushCompletes) {
  ManualClock clock;
  internal::Budget budget(1 << 20, 0);
  internal::Stripe stripe(&budget, &clock, false, 0, 1 << 20);
  const int64_t before = internal::LiveEntryAllocations();
  internal::Removals removed;
  auto put = [&](std::string_view key) {
    const uint64_t hash = internal::HashKey(key);
    internal::Entry* e = internal::NewEntry(key, "v", 0);
    ASSERT_TRUE(budget.TryReserve(e->charge(), 1));
    ASSERT_EQ(stripe.Put(hash, e, clock.NowNanos(), {e->charge(), 1}, &removed), Status::kOk);
  };
  put("stays");
  put("goes");
  ASSERT_TRUE(stripe.Remove(internal::HashKey("goes"), "goes", RemovalCause::kExplicit,
                            clock.NowNanos(), &removed));
  const uint64_t ticket = internal::StripeTestPeer::ClaimSlotWithoutFilling(stripe);
  FinishesWithin(10s, [&] { stripe.CleanUp(clock.NowNanos(), &removed); });
  EXPECT_EQ(internal::LiveEntryAllocations() - before, 2);  // "goes" waits for the push
  // The paused reader completes its push (of an entry it found live).
  internal::Entry* stays = nullptr;
  {
    internal::ReadGuard guard;
    stays = stripe.FindLive(internal::HashKey("stays"), "stays");
  }
  ASSERT_NE(stays, nullptr);
  internal::StripeTestPeer::FillSlot(stripe, ticket, stays);
  stripe.CleanUp(clock.NowNanos(), &removed);
  EXPECT_EQ(internal::LiveEntryAllocations() - before, 1);
}

// ---- issue 12, item 4: a hot key near expiry is no lock convoy ----

std::atomic<int> g_refresh_requests{0};
void CountRefreshRequests(internal::TestPoint point, std::string_view) {
  if (point == internal::TestPoint::kRefreshRequested) g_refresh_requests.fetch_add(1);
}

TEST(EarlyRefresh, OneHitStartsTheRefreshTheOthersOnlyRead) {
  auto clock = std::make_shared<ManualClock>();
  Latch release;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.clock = clock;
  o.refresh_beta = 1000;  // near expiry every hit draws "refresh"
  o.default_refresh_delta = 1s;
  o.loader = [&](std::string_view) {
    release.Wait();
    return LoadResult::Value("new");
  };
  auto cache = MakeCache(o);
  ASSERT_EQ(cache->Put("hot", "old", {.ttl = 1s}), Status::kOk);
  clock->Advance(990ms);
  g_refresh_requests = 0;
  internal::SetTestHook(&CountRefreshRequests);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(GetOr(*cache, "hot"), "old");
  internal::SetTestHook(nullptr);
  EXPECT_EQ(g_refresh_requests.load(), 1);  // not one per hit
  release.Open();
  ASSERT_TRUE(testing::Eventually([&] { return GetOr(*cache, "hot") == "new"; }));
}

}  // namespace
}  // namespace larder
