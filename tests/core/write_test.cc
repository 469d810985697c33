// Writing promises W1-W4 of DESIGN.md section 4.
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crc32c.h"
#include "gtest/gtest.h"
#include "journal.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;
using testing::GetOr;
using testing::Latch;
using testing::MakeCache;

std::unique_ptr<Cache> NewCache(size_t entries = 0) {
  Options o;
  o.capacity_bytes = 16 << 20;
  o.capacity_entries = entries;
  o.stripes = 1;
  return MakeCache(o);
}

// A store that records every delivered write, in order.
struct Store {
  std::mutex mu;
  std::map<std::string, std::string> data;
  std::map<std::string, uint64_t> sequence;
  std::vector<QueuedWrite> log;
  int batches = 0;

  WriteOutcome Apply(const std::vector<QueuedWrite>& batch) {
    std::lock_guard<std::mutex> lock(mu);
    ++batches;
    for (const QueuedWrite& w : batch) {
      log.push_back(w);
      if (sequence[w.key] >= w.sequence) continue;  // idempotent by sequence
      sequence[w.key] = w.sequence;
      if (w.value) {
        data[w.key] = *w.value;
      } else {
        data.erase(w.key);
      }
    }
    return WriteOutcome::Ok();
  }
  std::string Value(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = data.find(key);
    return it == data.end() ? "<none>" : it->second;
  }
  size_t Writes() {
    std::lock_guard<std::mutex> lock(mu);
    return log.size();
  }
};

std::string TempDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "larder-" + name + "-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

// ---- W1: write-through ----

TEST(WriteThrough, TheWriterRunsFirstAndSuccessInstallsTheValue) {
  auto cache = NewCache();
  std::string seen_in_cache_during_write = "unset";
  Status s = cache->WriteThrough("k", "v1", [&](std::string_view key, auto value) {
    seen_in_cache_during_write = GetOr(*cache, key);
    EXPECT_EQ(*value, "v1");
    return WriteOutcome::Ok();
  });
  EXPECT_EQ(s, Status::kOk);
  EXPECT_EQ(seen_in_cache_during_write, "<miss>");  // the store first
  EXPECT_EQ(GetOr(*cache, "k"), "v1");
}

TEST(WriteThrough, AFailedWriteLeavesTheCacheUnchangedAndReportsTheError) {
  auto cache = NewCache();
  cache->Put("k", "old");
  std::string error;
  Status s = cache->WriteThrough(
      "k", "new", [](std::string_view, auto) { return WriteOutcome::Failed("disk full"); }, {},
      &error);
  EXPECT_EQ(s, Status::kWriteFailed);
  EXPECT_EQ(error, "disk full");
  EXPECT_EQ(GetOr(*cache, "k"), "old");
  s = cache->WriteThrough(
      "k", "new",
      [](std::string_view, auto) -> WriteOutcome { throw std::runtime_error("thrown"); }, {},
      &error);
  EXPECT_EQ(s, Status::kWriteFailed);
  EXPECT_EQ(error, "thrown");
  EXPECT_EQ(GetOr(*cache, "k"), "old");
}

TEST(WriteThrough, WritesOfOneKeyAreSerialisedAndTheLastCompletedWins) {
  auto cache = NewCache();
  std::mutex store_mu;
  std::string store;
  std::atomic<int> concurrent{0}, max_concurrent{0};
  auto writer = [&](std::string_view, std::optional<std::string_view> value) {
    int now = concurrent.fetch_add(1) + 1;
    int seen = max_concurrent.load();
    while (now > seen && !max_concurrent.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(100us);
    {
      std::lock_guard<std::mutex> lock(store_mu);
      store.assign(*value);
    }
    concurrent.fetch_sub(1);
    return WriteOutcome::Ok();
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        ASSERT_EQ(
            cache->WriteThrough("k", "t" + std::to_string(t) + "." + std::to_string(i), writer),
            Status::kOk);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(max_concurrent.load(), 1);  // never two store writes of the key at once
  std::lock_guard<std::mutex> lock(store_mu);
  EXPECT_EQ(GetOr(*cache, "k"), store);  // the cache agrees with the store
}

TEST(WriteThrough, OtherKeysProceedWhileOneKeyIsBeingWritten) {
  auto cache = NewCache();
  Latch started, release;
  std::thread slow([&] {
    cache->WriteThrough("slow", "v", [&](std::string_view, auto) {
      started.Open();
      release.Wait();
      return WriteOutcome::Ok();
    });
  });
  started.Wait();
  EXPECT_EQ(
      cache->WriteThrough("fast", "v", [](std::string_view, auto) { return WriteOutcome::Ok(); }),
      Status::kOk);
  EXPECT_EQ(GetOr(*cache, "fast"), "v");
  release.Open();
  slow.join();
}

TEST(WriteThrough, ALoadRunningDuringTheWriteCannotInstallItsOlderValue) {
  auto cache = NewCache();
  std::string store = "v1";
  Latch read_done, release;
  FetchResult loaded;
  std::thread reader([&] {
    loaded = cache->GetOrLoad("k", [&](std::string_view) {
      std::string v = store;  // reads v1
      read_done.Open();
      release.Wait();
      return LoadResult::Value(v);
    });
  });
  read_done.Wait();
  ASSERT_EQ(cache->WriteThrough("k", "v2",
                                [&](std::string_view, auto value) {
                                  store.assign(*value);
                                  return WriteOutcome::Ok();
                                }),
            Status::kOk);
  release.Open();
  reader.join();
  EXPECT_EQ(loaded.value.value(), "v1");  // the waiting caller's answer
  EXPECT_EQ(GetOr(*cache, "k"), "v2");    // but the cache keeps the write's value
}

TEST(WriteThrough, DeleteThroughDeletesFromTheStoreThenInvalidates) {
  auto cache = NewCache();
  cache->Put("k", "v");
  bool deleted = false;
  EXPECT_EQ(cache->DeleteThrough("k",
                                 [&](std::string_view, std::optional<std::string_view> value) {
                                   deleted = !value.has_value();
                                   return WriteOutcome::Ok();
                                 }),
            Status::kOk);
  EXPECT_TRUE(deleted);
  EXPECT_FALSE(cache->Contains("k"));
  cache->Put("k", "v");
  EXPECT_EQ(
      cache->DeleteThrough("k", [](std::string_view, auto) { return WriteOutcome::Failed("no"); }),
      Status::kWriteFailed);
  EXPECT_TRUE(cache->Contains("k"));
}

// ---- W2: write-behind ----

WriteBehindOptions Behind(Store* store) {
  WriteBehindOptions o;
  o.writer = [store](const std::vector<QueuedWrite>& batch) { return store->Apply(batch); };
  o.max_delay = 1h;  // only full batches, Flush and Close deliver
  return o;
}

TEST(WriteBehind, TheCacheChangesAtOnceAndTheStoreOnFlush) {
  auto cache = NewCache();
  Store store;
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), Behind(&store), &wb), Status::kOk);
  ASSERT_EQ(wb->Put("k", "v"), Status::kOk);
  EXPECT_EQ(GetOr(*cache, "k"), "v");
  EXPECT_EQ(store.Value("k"), "<none>");
  EXPECT_EQ(wb->GetStats().queue_depth, 1u);
  ASSERT_EQ(wb->Flush(), Status::kOk);
  EXPECT_EQ(store.Value("k"), "v");
  EXPECT_EQ(wb->GetStats().queue_depth, 0u);
  EXPECT_EQ(wb->GetStats().delivered, 1u);
}

TEST(WriteBehind, AFullBatchOrTheDelayTriggersDelivery) {
  auto cache = NewCache();
  Store store;
  WriteBehindOptions o = Behind(&store);
  o.max_batch = 10;
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  for (int i = 0; i < 10; ++i) wb->Put("k" + std::to_string(i), "v");
  EXPECT_TRUE(Eventually([&] { return store.Writes() == 10; }));
  wb.reset();
  o.max_delay = 20ms;
  o.max_batch = 1000;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  wb->Put("late", "v");
  EXPECT_TRUE(Eventually([&] { return store.Value("late") == "v"; }));
}

TEST(WriteBehind, WritesOfOneKeyCoalesceNewestWins) {
  auto cache = NewCache();
  Store store;
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), Behind(&store), &wb), Status::kOk);
  for (int i = 0; i < 100; ++i) wb->Put("k", std::to_string(i));
  wb->Put("gone", "x");
  wb->Delete("gone");  // a delete after a put: one delete reaches the store
  ASSERT_EQ(wb->Flush(), Status::kOk);
  EXPECT_EQ(store.Writes(), 2u);
  EXPECT_EQ(store.Value("k"), "99");
  EXPECT_EQ(store.Value("gone"), "<none>");
  EXPECT_FALSE(store.log.back().value.has_value() && store.log.front().value.has_value());
  EXPECT_EQ(wb->GetStats().coalesced, 100u);
}

TEST(WriteBehind, WritesOfOneKeyReachTheStoreInOrder) {
  auto cache = NewCache();
  Store store;
  WriteBehindOptions o = Behind(&store);
  o.max_delay = 0ns;  // deliver as soon as possible: writes overlap deliveries
  o.max_batch = 4;
  o.writer = [&](const std::vector<QueuedWrite>& batch) {
    std::this_thread::sleep_for(200us);
    return store.Apply(batch);
  };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) wb->Put("key" + std::to_string(i % 5), std::to_string(t));
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(wb->Flush(), Status::kOk);
  std::map<std::string, uint64_t> last;
  for (const QueuedWrite& w : store.log) {
    EXPECT_GT(w.sequence, last[w.key]) << "reordered write of " << w.key;
    last[w.key] = w.sequence;
  }
  for (int k = 0; k < 5; ++k) {  // the store ends with what the cache holds
    EXPECT_EQ(store.Value("key" + std::to_string(k)), GetOr(*cache, "key" + std::to_string(k)));
  }
}

TEST(WriteBehind, FailuresRetryWithBackoffAndFinallyGoToTheDeadLetterCallback) {
  auto cache = NewCache();
  std::atomic<int> attempts{0};
  std::vector<std::pair<QueuedWrite, std::string>> dead;
  std::mutex dead_mu;
  WriteBehindOptions o;
  o.max_delay = 0ns;
  o.max_attempts = 3;
  o.retry_base = 1ms;
  o.retry_max = 5ms;
  o.writer = [&](const std::vector<QueuedWrite>&) {
    attempts.fetch_add(1);
    return WriteOutcome::Failed("store unavailable");
  };
  o.dead_letter = [&](const QueuedWrite& w, const std::string& error) {
    std::lock_guard<std::mutex> lock(dead_mu);
    dead.emplace_back(w, error);
  };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  wb->Put("k", "v");
  ASSERT_EQ(wb->Flush(5s), Status::kOk);
  EXPECT_EQ(attempts.load(), 3);
  std::lock_guard<std::mutex> lock(dead_mu);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].first.key, "k");
  EXPECT_EQ(dead[0].first.attempt, 3);
  EXPECT_EQ(dead[0].second, "store unavailable");
  WriteBehindStats s = wb->GetStats();
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.dead_letters, 1u);
}

TEST(WriteBehind, ATransientFailureIsRetriedUntilItSucceeds) {
  auto cache = NewCache();
  Store store;
  std::atomic<int> calls{0};
  WriteBehindOptions o;
  o.max_delay = 0ns;
  o.retry_base = 1ms;
  o.writer = [&](const std::vector<QueuedWrite>& batch) {
    if (calls.fetch_add(1) < 2) return WriteOutcome::Failed("flaky");
    return store.Apply(batch);
  };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  wb->Put("k", "v");
  ASSERT_EQ(wb->Flush(5s), Status::kOk);
  EXPECT_EQ(store.Value("k"), "v");
  EXPECT_EQ(store.log.back().attempt, 3);
  EXPECT_EQ(wb->GetStats().dead_letters, 0u);
}

TEST(WriteBehind, TheQueueIsBoundedFailingOrWaitingAsConfigured) {
  auto cache = NewCache();
  Store store;
  Latch release;
  WriteBehindOptions o;
  o.max_delay = 0ns;
  o.max_queue_entries = 2;
  o.writer = [&](const std::vector<QueuedWrite>& batch) {
    release.Wait();
    return store.Apply(batch);
  };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  ASSERT_EQ(wb->Put("a", "1"), Status::kOk);
  ASSERT_EQ(wb->Put("b", "2"), Status::kOk);
  EXPECT_EQ(wb->Put("c", "3"), Status::kBusy);   // fail at once
  EXPECT_EQ(wb->Put("a", "1bis"), Status::kOk);  // coalescing takes no room
  EXPECT_EQ(wb->GetStats().rejected, 1u);
  release.Open();
  ASSERT_EQ(wb->Flush(5s), Status::kOk);
  EXPECT_EQ(store.Value("c"), "<none>");

  // With a timeout, a writer waits for room instead.
  Latch release2;
  o.enqueue_timeout = 5s;
  o.writer = [&](const std::vector<QueuedWrite>& batch) {
    release2.Wait();
    return store.Apply(batch);
  };
  wb.reset();
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  wb->Put("x", "1");
  wb->Put("y", "2");
  std::thread opener([&] {
    std::this_thread::sleep_for(20ms);
    release2.Open();
  });
  EXPECT_EQ(wb->Put("z", "3"), Status::kOk);  // waited for room
  opener.join();
  ASSERT_EQ(wb->Flush(5s), Status::kOk);
  EXPECT_EQ(store.Value("z"), "3");
}

TEST(WriteBehind, CloseDrainsThenRefusesWrites) {
  auto cache = NewCache();
  Store store;
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), Behind(&store), &wb), Status::kOk);
  for (int i = 0; i < 50; ++i) wb->Put("k" + std::to_string(i), "v");
  ASSERT_EQ(wb->Close(), Status::kOk);
  EXPECT_EQ(store.Writes(), 50u);
  EXPECT_EQ(wb->Put("late", "v"), Status::kClosed);
  EXPECT_EQ(wb->Close(), Status::kOk);  // idempotent
}

TEST(WriteBehind, WithoutAJournalUndeliveredWritesGoToTheDeadLetterCallbackAtClose) {
  auto cache = NewCache();
  std::atomic<int> dead{0};
  WriteBehindOptions o;
  o.max_delay = 0ns;
  o.retry_base = 10s;  // the first failure parks the write for a long time
  o.retry_max = 10s;
  o.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Failed("down"); };
  o.dead_letter = [&](const QueuedWrite&, const std::string& error) {
    EXPECT_EQ(error, "closed before delivery");
    dead.fetch_add(1);
  };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  wb->Put("k", "v");
  ASSERT_TRUE(Eventually([&] { return wb->GetStats().retries == 1; }));
  EXPECT_EQ(wb->Close(50ms), Status::kTimeout);
  EXPECT_EQ(dead.load(), 1);  // never dropped silently
}

TEST(WriteBehind, ReadsNeverLoadAKeyWithAPendingWriteEvenAfterEviction) {
  auto cache = NewCache(/*entries=*/1);
  Store store;
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), Behind(&store), &wb), Status::kOk);
  wb->Put("k1", "pending value");
  wb->Put("k2", "evicts k1 from the cache");
  wb->Delete("k3");
  auto must_not_load = [](std::string_view key) -> LoadResult {
    ADD_FAILURE() << "loaded " << key << " from the store";
    return LoadResult::Value("stale store value");
  };
  FetchResult r = cache->GetOrLoad("k1", must_not_load);
  ASSERT_EQ(r.status, Status::kOk);
  EXPECT_EQ(r.value.value(), "pending value");
  EXPECT_EQ(GetOr(*cache, "k1"), "pending value");  // plain reads too
  EXPECT_EQ(cache->Pin("k1").value(), "pending value");
  EXPECT_TRUE(cache->Contains("k1"));
  EXPECT_EQ(cache->GetOrLoad("k3", must_not_load).status, Status::kNotFound);
  const Stats before = cache->GetStats();
  EXPECT_EQ(cache->Get("k3"), std::nullopt);  // a pending delete still counts as a miss
  const Stats after = cache->GetStats();
  EXPECT_EQ(after.hits + after.misses, before.hits + before.misses + 1);
  ASSERT_EQ(wb->Flush(), Status::kOk);
  // Delivered: now a miss may load again.
  EXPECT_EQ(
      cache->GetOrLoad("k1", [](std::string_view) { return LoadResult::Value("from the store"); })
          .value.value(),
      "from the store");
}

TEST(WriteBehind, BadOptionsAreRejected) {
  auto cache = NewCache();
  std::unique_ptr<WriteBehind> wb;
  WriteBehindOptions o;
  EXPECT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kInvalidArgument);  // no writer
  o.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Ok(); };
  EXPECT_EQ(WriteBehind::Open(nullptr, o, &wb), Status::kInvalidArgument);
  o.max_batch = 0;
  EXPECT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kInvalidArgument);
  o.max_batch = 1;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  std::unique_ptr<WriteBehind> second;
  EXPECT_EQ(WriteBehind::Open(cache.get(), o, &second), Status::kInvalidArgument);  // one per cache
  EXPECT_EQ(wb->Put("", "v"), Status::kEmptyKey);
  EXPECT_EQ(wb->Put(std::string(kMaxKeyLength + 1, 'k'), "v"), Status::kKeyTooLong);
}

// ---- W3: the journal ----

TEST(Journal, Crc32cIsTheCastagnoliChecksum) {
  EXPECT_EQ(internal::Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(internal::Crc32c("", 0), 0u);
}

TEST(Journal, UnacknowledgedWritesAreReplayedToTheWriterOnOpen) {
  const std::string dir = TempDir("replay");
  auto cache = NewCache();
  {
    WriteBehindOptions o;
    o.journal_dir = dir;
    o.max_delay = 0ns;
    o.retry_base = 10s;
    o.retry_max = 10s;
    o.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Failed("down"); };
    std::unique_ptr<WriteBehind> wb;
    ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
    wb->Put("a", "1");
    wb->Put("b", "2");
    wb->Put("a", "1bis");
    wb->Delete("c");
    EXPECT_EQ(wb->Close(20ms), Status::kTimeout);  // undelivered: kept in the journal
  }
  Store store;
  WriteBehindOptions o;
  o.journal_dir = dir;
  bool expect_replayed = true;
  o.writer = [&](const std::vector<QueuedWrite>& batch) {
    for (const QueuedWrite& w : batch) EXPECT_EQ(w.replayed, expect_replayed);
    return store.Apply(batch);
  };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  EXPECT_EQ(wb->GetStats().replayed_writes, 3u);  // a (newest), b, c
  ASSERT_EQ(wb->Flush(), Status::kOk);
  EXPECT_EQ(store.Value("a"), "1bis");
  EXPECT_EQ(store.Value("b"), "2");
  EXPECT_EQ(store.Writes(), 3u);
  // Sequences keep growing across runs.
  uint64_t replayed_max = 0;
  for (const QueuedWrite& w : store.log) replayed_max = std::max(replayed_max, w.sequence);
  expect_replayed = false;
  wb->Put("d", "4");
  ASSERT_EQ(wb->Flush(), Status::kOk);
  EXPECT_GT(store.log.back().sequence, replayed_max);
  wb.reset();
  // Everything acknowledged: a third open replays nothing.
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  EXPECT_EQ(wb->GetStats().replayed_writes, 0u);
  std::filesystem::remove_all(dir);
}

TEST(Journal, ReadsAnswerAReplayedWriteNotAnOlderValueTheCacheHeld) {
  // The cache outlives the queue: closed in a hurry, the queue kept two
  // writes in its journal; meanwhile reads loaded the store's older values.
  // Once a new queue replays the writes, reads answer them, as they answer
  // any pending write (read-your-writes), before the store has them.
  const std::string dir = TempDir("replay-reads");
  std::map<std::string, std::string> store = {{"a", "old a"}, {"b", "old b"}};
  Options co;
  co.capacity_bytes = 16 << 20;
  co.stripes = 1;
  co.loader = [&](std::string_view key) {
    auto it = store.find(std::string(key));
    return it == store.end() ? LoadResult::NotFound() : LoadResult::Value(it->second);
  };
  auto cache = MakeCache(co);
  WriteBehindOptions o;
  o.journal_dir = dir;
  o.max_delay = 1h;
  o.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Failed("down"); };
  {
    std::unique_ptr<WriteBehind> wb;
    ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
    ASSERT_EQ(wb->Put("a", "new a"), Status::kOk);
    ASSERT_EQ(wb->Delete("b"), Status::kOk);
    EXPECT_EQ(wb->Close(1ms), Status::kTimeout);  // kept in the journal
  }
  EXPECT_EQ(GetOr(*cache, "a"), "new a");  // the Put left it in the cache
  cache->Invalidate("a");
  EXPECT_EQ(cache->GetOrLoad("a").value.value(), "old a");  // no queue now: the store
  EXPECT_EQ(cache->GetOrLoad("b").value.value(), "old b");
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);  // the writer still fails
  EXPECT_EQ(wb->GetStats().replayed_writes, 2u);
  EXPECT_EQ(GetOr(*cache, "a"), "new a");
  EXPECT_EQ(cache->GetOrLoad("a").value.value(), "new a");
  EXPECT_FALSE(cache->Contains("b"));
  EXPECT_EQ(cache->GetOrLoad("b").status, Status::kNotFound);
  wb->Close(1ms);
  wb.reset();
  std::filesystem::remove_all(dir);
}

TEST(Journal, FullyFlushedSegmentsAreDeleted) {
  const std::string dir = TempDir("segments");
  auto cache = NewCache();
  Store store;
  WriteBehindOptions o = Behind(&store);
  o.journal_dir = dir;
  o.journal_sync = JournalSync::kNever;
  o.journal_segment_bytes = 4096;
  o.max_batch = 10000;  // nothing is delivered before the Flush
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  for (int i = 0; i < 500; ++i) wb->Put("key" + std::to_string(i), std::string(100, 'v'));
  auto segments = [&] {
    size_t n = 0;
    for (auto& entry : std::filesystem::directory_iterator(dir)) n += entry.is_regular_file();
    return n;
  };
  EXPECT_GT(segments(), 10u);
  ASSERT_EQ(wb->Flush(), Status::kOk);
  wb->Put("one more", "to roll the segment");
  ASSERT_EQ(wb->Flush(), Status::kOk);
  EXPECT_LE(segments(), 2u);
  EXPECT_LT(wb->GetStats().journal_bytes, 2 * 4096u + 1024);
  std::filesystem::remove_all(dir);
}

TEST(Journal, ATornOrCorruptSegmentYieldsExactlyItsIntactPrefix) {
  // Encode 40 records, then truncate or corrupt the bytes at many seeded
  // offsets: decoding must never crash and must return exactly the records
  // that end before the damage.
  std::string bytes;
  std::vector<size_t> ends;
  for (int i = 0; i < 40; ++i) {
    internal::JournalRecord r;
    r.type = i % 7 == 0 ? internal::JournalRecord::kDelete : internal::JournalRecord::kPut;
    r.sequence = static_cast<uint64_t>(i + 1);
    r.key = "key" + std::to_string(i);
    if (r.type == internal::JournalRecord::kPut) r.value = std::string(i * 3, 'a' + i % 26);
    internal::EncodeJournalRecord(r, &bytes);
    ends.push_back(bytes.size());
  }
  std::mt19937 rng(99);
  for (int round = 0; round < 500; ++round) {
    const size_t offset = rng() % bytes.size();
    std::string damaged = bytes;
    if (round % 2 == 0) {
      damaged.resize(offset);  // torn
    } else {
      damaged[offset] = static_cast<char>(damaged[offset] ^ (1 + rng() % 255));  // corrupt
    }
    std::vector<internal::JournalRecord> records;
    const size_t intact = internal::DecodeJournalSegment(damaged, &records);
    size_t expected = 0;
    while (expected < ends.size() && ends[expected] <= offset) ++expected;
    ASSERT_EQ(records.size(), expected) << "round " << round << " offset " << offset;
    EXPECT_EQ(intact, expected == 0 ? 0 : ends[expected - 1]);
    for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i].sequence, i + 1);
  }
}

TEST(Journal, OpeningADamagedJournalTruncatesTheTailAndReplaysThePrefix) {
  const std::string dir = TempDir("torn");
  auto cache = NewCache();
  {
    WriteBehindOptions o;
    o.journal_dir = dir;
    o.max_delay = 1h;
    o.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Failed("down"); };
    o.retry_base = 10s;
    o.retry_max = 10s;
    std::unique_ptr<WriteBehind> wb;
    ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
    for (int i = 0; i < 10; ++i) wb->Put("k" + std::to_string(i), "v" + std::to_string(i));
    wb->Close(1ms);
  }
  std::string segment;
  for (auto& entry : std::filesystem::directory_iterator(dir)) {
    if (std::filesystem::file_size(entry.path()) > 0) segment = entry.path();
  }
  ASSERT_FALSE(segment.empty());
  {
    std::ofstream tail(segment, std::ios::app | std::ios::binary);
    tail << "\x30\x00\x00\x00garbage that is not a record";  // a torn append
  }
  Store store;
  WriteBehindOptions o = Behind(&store);
  o.journal_dir = dir;
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  EXPECT_GT(wb->GetStats().journal_truncated_bytes, 0u);
  EXPECT_EQ(wb->GetStats().replayed_writes, 10u);
  ASSERT_EQ(wb->Flush(), Status::kOk);
  EXPECT_EQ(store.Value("k9"), "v9");
  std::filesystem::remove_all(dir);
}

TEST(Journal, RecordsSharingASequenceReplayInTheOrderTheJournalHoldsThem) {
  // Our writer never repeats a sequence or writes 0, but a CRC is no
  // signature: an edited or forged journal can. Replay is still by sequence,
  // ties in journal order, and new writes number above everything read.
  const std::string dir = TempDir("ties");
  std::filesystem::create_directories(dir);
  std::string bytes;
  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) {
    internal::JournalRecord r;
    r.sequence = i % 2 == 0 ? 9 : 0;
    r.key = "k" + std::to_string(i);
    r.value = "v";
    internal::EncodeJournalRecord(r, &bytes);
  }
  for (int i = 1; i < 40; i += 2) expected.push_back("k" + std::to_string(i));  // sequence 0
  for (int i = 0; i < 40; i += 2) expected.push_back("k" + std::to_string(i));  // sequence 9
  {
    std::ofstream segment(dir + "/journal-00000001.log", std::ios::binary);
    segment << bytes;
  }
  std::unique_ptr<internal::Journal> journal;
  internal::Journal::Recovery recovery;
  ASSERT_EQ(
      internal::Journal::Open(dir, internal::FsyncPolicy::kNever, 0, 1 << 20, &journal, &recovery),
      Status::kOk);
  std::vector<std::string> replayed;
  for (const auto& p : recovery.pending) replayed.push_back(p.record.key);
  EXPECT_EQ(replayed, expected);
  EXPECT_EQ(recovery.next_sequence, 10u);
  journal.reset();
  std::filesystem::remove_all(dir);
}

// ---- W3: the journal's own writes fail ----

// Group commit: A's fdatasync fails while B's record, appended after A's
// but before that sync finished, waits for it.
std::atomic<internal::Journal*> g_journal{nullptr};
std::atomic<uint64_t> g_wait_for_bytes{0};
std::atomic<bool> g_in_sync{false};
int FailOnceBothAreAppended(int) {
  g_in_sync = true;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (g_journal.load()->bytes() < g_wait_for_bytes &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  errno = EIO;
  return -1;
}

internal::JournalRecord PutRecord(uint64_t sequence, std::string key) {
  internal::JournalRecord r;
  r.sequence = sequence;
  r.key = std::move(key);
  r.value = "value";
  return r;
}

TEST(Journal, OneFailedGroupCommitFailsEveryWriteItCovered) {
  const std::string dir = TempDir("group-commit");
  std::unique_ptr<internal::Journal> journal;
  internal::Journal::Recovery recovery;
  ASSERT_EQ(internal::Journal::Open(dir, internal::FsyncPolicy::kEveryWrite, 0, 1 << 20, &journal,
                                    &recovery),
            Status::kOk);
  const internal::JournalRecord a = PutRecord(1, "a"), b = PutRecord(2, "b");
  std::string encoded;
  internal::EncodeJournalRecord(a, &encoded);
  internal::EncodeJournalRecord(b, &encoded);
  g_journal = journal.get();
  g_wait_for_bytes = journal->bytes() + encoded.size();
  internal::journal_testing::fdatasync_fn = &FailOnceBothAreAppended;
  Status status_a = Status::kInternal, status_b = Status::kInternal;
  uint32_t segment_a = 0, segment_b = 0;
  std::thread thread_a([&] { status_a = journal->AppendWrite(a, &segment_a); });
  while (!g_in_sync) std::this_thread::sleep_for(1ms);
  std::thread thread_b([&] { status_b = journal->AppendWrite(b, &segment_b); });
  thread_a.join();
  thread_b.join();
  internal::journal_testing::fdatasync_fn = &::fdatasync;
  EXPECT_EQ(status_a, Status::kIoError);
  EXPECT_EQ(status_b, Status::kIoError) << "acknowledged as durable by a failed group commit";
  EXPECT_EQ(segment_a, segment_b);

  // The failed segment is not trusted again: the next write goes to a new
  // one and is durable.
  EXPECT_EQ(journal->sync_failures(), 1u);
  uint32_t segment_c = 0;
  EXPECT_EQ(journal->AppendWrite(PutRecord(3, "c"), &segment_c), Status::kOk);
  EXPECT_GT(segment_c, segment_a);
  // The refused records are not outstanding: they do not keep their segment.
  size_t segments = 0;
  for (auto& entry : std::filesystem::directory_iterator(dir)) segments += entry.is_regular_file();
  EXPECT_EQ(segments, 1u);
  journal.reset();
  std::filesystem::remove_all(dir);
}

int AlwaysEio(int) {
  errno = EIO;
  return -1;
}

TEST(Journal, IntervalSyncFailuresAreCountedAndStartANewSegment) {
  const std::string dir = TempDir("interval-fail");
  auto cache = NewCache();
  auto segments = [&] {
    size_t n = 0;
    for (auto& entry : std::filesystem::directory_iterator(dir)) n += entry.is_regular_file();
    return n;
  };
  {
    WriteBehindOptions o;
    o.journal_dir = dir;
    o.journal_sync = JournalSync::kInterval;
    o.journal_sync_interval = 1ms;
    o.retry_base = 10s;  // nothing delivered: every record stays in the journal
    o.retry_max = 10s;
    o.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Failed("down"); };
    std::unique_ptr<WriteBehind> wb;
    ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
    internal::journal_testing::fdatasync_fn = &AlwaysEio;
    EXPECT_EQ(wb->Put("a", "1"), Status::kOk);  // acknowledged before the sync, by design
    EXPECT_TRUE(Eventually([&] { return wb->GetStats().journal_sync_failures > 0; }));
    internal::journal_testing::fdatasync_fn = &::fdatasync;
    const size_t before = segments();
    EXPECT_EQ(wb->Put("b", "2"), Status::kOk);
    EXPECT_EQ(segments(), before + 1) << "appends went on into the segment whose sync failed";
    EXPECT_EQ(wb->Close(1ms), Status::kTimeout);
  }
  Store store;
  WriteBehindOptions o = Behind(&store);
  o.journal_dir = dir;
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  EXPECT_EQ(wb->GetStats().replayed_writes, 2u);
  ASSERT_EQ(wb->Flush(), Status::kOk);
  EXPECT_EQ(store.Value("a"), "1");
  EXPECT_EQ(store.Value("b"), "2");
  wb.reset();
  std::filesystem::remove_all(dir);
}

TEST(Journal, SequencesKeepGrowingAcrossARunWithNothingToReplay) {
  // A run that finds everything acknowledged deletes the old segments; the
  // largest sequence must survive it, or a later run's writes would sort
  // below older ones at an idempotent store.
  const std::string dir = TempDir("sequence-survives");
  uint64_t first = 0, last = 0;
  auto run = [&](bool write, uint64_t* sequence) {
    auto cache = NewCache();
    WriteBehindOptions o;
    o.journal_dir = dir;
    o.writer = [&](const std::vector<QueuedWrite>& batch) {
      for (const QueuedWrite& w : batch) *sequence = w.sequence;
      return WriteOutcome::Ok();
    };
    std::unique_ptr<WriteBehind> wb;
    ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
    EXPECT_EQ(wb->GetStats().replayed_writes, 0u);
    if (write) {
      ASSERT_EQ(wb->Put("k", "v"), Status::kOk);
      ASSERT_EQ(wb->Flush(), Status::kOk);
    }
    ASSERT_EQ(wb->Close(), Status::kOk);
  };
  for (int i = 0; i < 5; ++i) run(true, &first);
  uint64_t unused = 0;
  run(false, &unused);
  run(false, &unused);
  run(true, &last);
  EXPECT_GT(last, first);
}

TEST(WriteBehind, FlushAfterACloseThatTimedOutReturnsClosed) {
  // With a journal, writes still undelivered at a timed-out Close stay there
  // for the next open; a Flush must say so instead of waiting forever.
  const std::string dir = TempDir("flush-after-close");
  auto cache = NewCache();
  WriteBehindOptions o;
  o.journal_dir = dir;
  o.max_attempts = 1000000;
  o.retry_base = 1ms;
  o.retry_max = 2ms;
  o.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Failed("store down"); };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  ASSERT_EQ(wb->Put("k", "v"), Status::kOk);
  EXPECT_EQ(wb->Close(20ms), Status::kTimeout);
  auto flushed = std::async(std::launch::async, [&] { return wb->Flush(); });
  ASSERT_EQ(flushed.wait_for(10s), std::future_status::ready) << "Flush hung after Close";
  EXPECT_EQ(flushed.get(), Status::kClosed);
}

TEST(WriteBehind, FlushReturnsOnlyAfterTheDeadLetterCallbackRan) {
  auto cache = NewCache();
  Latch in_callback, release_callback;
  std::atomic<bool> callback_done{false};
  WriteBehindOptions o;
  o.max_attempts = 1;
  o.max_delay = 0ms;
  o.writer = [](const std::vector<QueuedWrite>& batch) {
    for (const QueuedWrite& w : batch) {
      if (w.key == "doomed") return WriteOutcome::Failed("no");
    }
    return WriteOutcome::Ok();
  };
  o.dead_letter = [&](const QueuedWrite&, const std::string&) {
    in_callback.Open();
    release_callback.Wait();
    callback_done = true;
  };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), o, &wb), Status::kOk);
  ASSERT_EQ(wb->Put("doomed", "v"), Status::kOk);
  auto flushed = std::async(std::launch::async, [&] { return wb->Flush(); });
  in_callback.Wait();
  // Another write wakes every Flush waiter; this one's write is dead-lettered
  // but its callback has not returned, so it must keep waiting.
  ASSERT_EQ(wb->Put("other", "v"), Status::kOk);
  EXPECT_EQ(flushed.wait_for(200ms), std::future_status::timeout);
  release_callback.Open();
  EXPECT_EQ(flushed.get(), Status::kOk);
  EXPECT_TRUE(callback_done.load());
}

}  // namespace
}  // namespace larder
