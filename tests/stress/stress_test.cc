// Many threads, mixed operations, invariants checked during and after:
// bounds hold, no torn or resurrected values, stats add up. Built under TSan
// in CI, where it is the main race detector for the lock-free read path.
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"

namespace larder {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kOpsPerThread = 30000;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int kOpsPerThread = 30000;
#else
constexpr int kOpsPerThread = 300000;
#endif
#else
constexpr int kOpsPerThread = 300000;
#endif

constexpr int kThreads = 8;
constexpr int kOwnKeys = 300;     // per thread, written only by that thread
constexpr int kSharedKeys = 200;  // written by everyone

// value = "<key>#<version>#" + filler derived from both, so a torn or
// misattributed value fails Validate.
std::string MakeValue(const std::string& key, uint64_t version) {
  std::string v = key + "#" + std::to_string(version) + "#";
  size_t filler = (version * 31 + key.size()) % 200;
  for (size_t i = 0; i < filler; ++i) v.push_back(static_cast<char>('a' + (version + i) % 26));
  return v;
}

bool Validate(std::string_view key, std::string_view value, uint64_t* version) {
  if (value.substr(0, key.size()) != key || value.size() <= key.size() ||
      value[key.size()] != '#') {
    return false;
  }
  std::string rest(value.substr(key.size() + 1));
  *version = std::strtoull(rest.c_str(), nullptr, 10);
  return value == MakeValue(std::string(key), *version);
}

std::string OwnKey(int thread, int i) {
  return "t" + std::to_string(thread) + ":" + std::to_string(i);
}
std::string SharedKey(int i) { return "shared:" + std::to_string(i); }

TEST(Stress, MixedOperationsKeepEveryInvariant) {
  auto clock = std::make_shared<ManualClock>();
  std::mutex removal_mu;
  std::map<RemovalCause, uint64_t> removals;
  Options o;
  // Both bounds sit well below the live set: of the 2,600 keys, puts outnumber
  // invalidations about 4:1 and three puts in four carry no TTL, so about
  // 1,500 keys stay live if nothing is evicted (and 1,500 entries of ~180
  // charged bytes fill 256 KiB). Evicting then never hinges on scheduling.
  o.capacity_bytes = 160 * 1024;
  o.capacity_entries = 800;
  o.stripes = 8;
  o.clock = clock;
  o.removal_listener = [&](std::string_view k, std::string_view v, RemovalCause c) {
    uint64_t version;
    EXPECT_TRUE(Validate(k, v, &version)) << "listener saw a torn value for " << k;
    std::lock_guard<std::mutex> lock(removal_mu);
    ++removals[c];
  };
  std::unique_ptr<Cache> cache;
  ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);

  std::atomic<uint64_t> reads{0}, ok_puts{0}, bad_values{0}, bound_violations{0};
  std::atomic<bool> done{false};
  // Each thread's last written version of its own keys (0: invalidated).
  std::vector<std::vector<uint64_t>> last_version(kThreads, std::vector<uint64_t>(kOwnKeys, 0));

  std::thread watcher([&] {
    while (!done.load()) {
      if (cache->Charge() > o.capacity_bytes || cache->Size() > o.capacity_entries) {
        bound_violations.fetch_add(1);
      }
      clock->Advance(3ms);
      std::this_thread::yield();
    }
  });

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      uint64_t version = 1;
      uint64_t my_reads = 0, my_puts = 0;
      for (int op = 0; op < kOpsPerThread; ++op) {
        const int dice = static_cast<int>(rng() % 100);
        const bool own = rng() % 2 == 0;
        const int idx = static_cast<int>(rng() % (own ? kOwnKeys : kSharedKeys));
        const std::string key = own ? OwnKey(t, idx) : SharedKey(idx);
        if (dice < 55) {  // read, three ways
          ++my_reads;
          uint64_t seen_version = 0;
          bool hit = false;
          if (dice < 30) {
            hit = cache->Visit(key, [&](std::string_view v) {
              if (!Validate(key, v, &seen_version)) bad_values.fetch_add(1);
            }) == Status::kOk;
          } else if (dice < 45) {
            std::string v;
            hit = cache->Get(key, &v) == Status::kOk;
            if (hit && !Validate(key, v, &seen_version)) bad_values.fetch_add(1);
          } else {
            PinnedValue p = cache->Pin(key);
            hit = static_cast<bool>(p);
            if (hit) {
              std::this_thread::yield();  // let writers evict it meanwhile
              if (!Validate(key, p.value(), &seen_version)) bad_values.fetch_add(1);
            }
          }
          // Own keys: a hit must be the latest version this thread wrote.
          if (hit && own && seen_version != last_version[t][idx]) bad_values.fetch_add(1);
        } else if (dice < 88) {
          PutOptions p;
          if (rng() % 4 == 0) p.ttl = std::chrono::milliseconds(1 + rng() % 50);
          uint64_t v = version++;
          if (cache->Put(key, MakeValue(key, v), p) == Status::kOk) {
            ++my_puts;
            if (own) last_version[t][idx] = v;
          }
        } else if (dice < 97) {
          cache->Invalidate(key);
          if (own) last_version[t][idx] = 0;
        } else if (dice < 99) {
          cache->Contains(key);
        } else if (rng() % 50 == 0) {
          // Prefix invalidation of this thread's own keys only, so the
          // own-key bookkeeping stays exact.
          cache->InvalidatePrefix("t" + std::to_string(t) + ":");
          std::fill(last_version[t].begin(), last_version[t].end(), 0);
        }
      }
      reads.fetch_add(my_reads);
      ok_puts.fetch_add(my_puts);
    });
  }
  for (auto& th : threads) th.join();
  done = true;
  watcher.join();

  EXPECT_EQ(bad_values.load(), 0u) << "torn, foreign or stale values were returned";
  EXPECT_EQ(bound_violations.load(), 0u);

  // After the fact: every own key present holds exactly its last version.
  // (Expired entries count as absent.) Moving past the longest TTL first makes
  // the reads below expire any TTL entry the watcher's clock left alive.
  clock->Advance(51ms);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kOwnKeys; ++i) {
      std::string v;
      if (cache->Get(OwnKey(t, i), &v) == Status::kOk) {
        uint64_t version = 0;
        ASSERT_TRUE(Validate(OwnKey(t, i), v, &version));
        EXPECT_EQ(version, last_version[t][i]) << OwnKey(t, i);
      }
      ++reads;
    }
  }

  Stats s = cache->GetStats();
  EXPECT_EQ(s.hits + s.misses, reads.load());
  EXPECT_EQ(s.puts, ok_puts.load());
  std::lock_guard<std::mutex> lock(removal_mu);
  EXPECT_EQ(s.evictions, removals[RemovalCause::kEvicted]);
  EXPECT_EQ(s.expirations, removals[RemovalCause::kExpired]);
  EXPECT_EQ(s.invalidations, removals[RemovalCause::kExplicit]);
  EXPECT_EQ(s.entries, s.puts - s.evictions - s.expirations - s.invalidations -
                           removals[RemovalCause::kReplaced]);
  EXPECT_EQ(s.entries, cache->Size());
  EXPECT_LE(s.bytes, o.capacity_bytes);
  EXPECT_LE(s.entries, o.capacity_entries);
  EXPECT_GT(s.evictions, 0u);
  EXPECT_GT(s.expirations, 0u);
  std::printf(
      "stress: %llu reads (hit ratio %.3f), %llu puts, %llu evictions, %llu expirations, "
      "%llu dropped promotions\n",
      static_cast<unsigned long long>(reads.load()), s.hit_ratio(),
      static_cast<unsigned long long>(s.puts), static_cast<unsigned long long>(s.evictions),
      static_cast<unsigned long long>(s.expirations),
      static_cast<unsigned long long>(s.dropped_promotions));
}

TEST(Stress, HotKeyReadersRaceWithWritersOfTheSameKey) {
  // Readers hammer one key while writers replace and invalidate it: every
  // value read is whole and some version that was written.
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 2;
  std::unique_ptr<Cache> cache;
  ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0}, hits{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    // Each reader visits at least once, after the writer too if it is
    // scheduled late; the writer's last version stays cached, so a reader that
    // never runs before the writer ends still sees a hit.
    readers.emplace_back([&] {
      do {
        cache->Visit("hot", [&](std::string_view v) {
          uint64_t version;
          if (!Validate("hot", v, &version)) bad.fetch_add(1);
          hits.fetch_add(1, std::memory_order_relaxed);
        });
      } while (!stop.load(std::memory_order_relaxed));
    });
  }
  for (uint64_t v = 1; v <= static_cast<uint64_t>(kOpsPerThread / 3); ++v) {
    cache->Put("hot", MakeValue("hot", v));
    if (v % 7 == 0) cache->Invalidate("hot");
    if (v % 101 == 0) cache->Clear();
  }
  EXPECT_TRUE(cache->Contains("hot")) << "the last version must stay cached";
  stop = true;
  for (auto& th : readers) th.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(hits.load(), 0u);
}

}  // namespace
}  // namespace larder
