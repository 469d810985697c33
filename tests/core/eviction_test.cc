// Capacity promises: LRU order, and the byte and entry bounds after every call.
#include <bit>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hash.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using testing::GetOr;
using testing::MakeCache;
using testing::SmallCache;

TEST(Eviction, LeastRecentlyUsedGoesFirst) {
  auto cache = SmallCache(3);
  cache->Put("a", "1");
  cache->Put("b", "2");
  cache->Put("c", "3");
  cache->Get("a");       // order, most recent first: a c b
  cache->Put("d", "4");  // evicts b
  EXPECT_FALSE(cache->Contains("b"));
  cache->Put("e", "5");  // evicts c
  EXPECT_FALSE(cache->Contains("c"));
  EXPECT_TRUE(cache->Contains("a"));
  EXPECT_TRUE(cache->Contains("d"));
  EXPECT_TRUE(cache->Contains("e"));
}

TEST(Eviction, PinAndVisitCountAsUseButContainsDoesNot) {
  auto cache = SmallCache(2);
  cache->Put("a", "1");
  cache->Put("b", "2");
  cache->Contains("a");  // not a use: a stays least recent
  cache->Put("c", "3");
  EXPECT_FALSE(cache->Contains("a"));
  { PinnedValue p = cache->Pin("b"); }  // a use: c becomes least recent
  cache->Put("d", "4");
  EXPECT_FALSE(cache->Contains("c"));
  EXPECT_TRUE(cache->Contains("b"));
}

TEST(Eviction, ReplacingMovesTheKeyToMostRecent) {
  auto cache = SmallCache(2);
  cache->Put("a", "1");
  cache->Put("b", "2");
  cache->Put("a", "1bis");
  cache->Put("c", "3");  // evicts b, not a
  EXPECT_EQ(GetOr(*cache, "a"), "1bis");
  EXPECT_FALSE(cache->Contains("b"));
}

TEST(Eviction, ExactLruOrderMatchesAReferenceModelUnderManyAccesses) {
  // Long random sequence on one stripe: the buffered promotions must give
  // exactly the order of a plain list-based LRU.
  constexpr size_t kCapacity = 50;
  auto cache = SmallCache(kCapacity);
  std::vector<std::string> model;  // front = most recent
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; ++step) {
    std::string key = "k" + std::to_string(rng() % 120);
    bool hit = cache->Visit(key, [](std::string_view) {}) == Status::kOk;
    auto it = std::find(model.begin(), model.end(), key);
    ASSERT_EQ(hit, it != model.end()) << "step " << step;
    if (hit) {
      model.erase(it);
      model.insert(model.begin(), key);
    } else {
      cache->Put(key, "v");
      model.insert(model.begin(), key);
      if (model.size() > kCapacity) model.pop_back();
    }
  }
}

TEST(Eviction, ByteBoundHoldsAfterEveryPut) {
  Options o;
  o.capacity_bytes = 256 * 1024;
  o.stripes = 4;
  auto cache = MakeCache(o);
  std::mt19937 rng(1);
  for (int i = 0; i < 20000; ++i) {
    std::string value(rng() % 3000, 'x');
    ASSERT_EQ(cache->Put("key" + std::to_string(rng() % 5000), value), Status::kOk);
    ASSERT_LE(cache->Charge(), o.capacity_bytes) << "after put " << i;
  }
  EXPECT_GT(cache->GetStats().evictions, 0u);
}

TEST(Eviction, EntryBoundHoldsAfterEveryPut) {
  Options o;
  o.capacity_bytes = size_t{1} << 30;
  o.capacity_entries = 1000;
  o.stripes = 8;
  auto cache = MakeCache(o);
  for (int i = 0; i < 10000; ++i) {
    cache->Put("key" + std::to_string(i), "v");
    ASSERT_LE(cache->Size(), 1000u) << "after put " << i;
  }
  Stats s = cache->GetStats();
  EXPECT_EQ(s.entries + s.evictions, 10000u);
}

TEST(Eviction, ValueLargerThanAStripeIsRejectedAndTheOldValueRemoved) {
  Options o;
  o.capacity_bytes = 4096;
  o.stripes = 1;
  auto cache = MakeCache(o);
  cache->Put("k", "small");
  EXPECT_EQ(cache->Put("k", std::string(5000, 'x')), Status::kValueTooLarge);
  EXPECT_FALSE(cache->Contains("k"));  // never a stale value after a failed put
  EXPECT_LE(cache->Charge(), o.capacity_bytes);
}

TEST(Eviction, CustomChargeReplacesTheComputedOne) {
  Options o;
  o.capacity_bytes = 1000;
  o.stripes = 1;
  auto cache = MakeCache(o);
  PutOptions heavy;
  heavy.charge = 400;
  cache->Put("a", "", heavy);
  cache->Put("b", "", heavy);
  EXPECT_EQ(cache->Charge(), 800u);
  cache->Put("c", "", heavy);  // 1200 > 1000: evicts a
  EXPECT_FALSE(cache->Contains("a"));
  EXPECT_EQ(cache->Charge(), 800u);
}

}  // namespace
}  // namespace larder

namespace larder {
namespace {

// ---- the bounds are the whole cache's (DESIGN.md section 2, "Capacity") ----

std::unique_ptr<Cache> EntryBoundedCache(size_t entries) {
  Options o;
  o.capacity_bytes = size_t{1} << 30;
  o.capacity_entries = entries;  // default stripes
  return testing::MakeCache(o);
}

TEST(GlobalBounds, ACacheOfNEntriesHoldsExactlyNKeysBeforeItEvicts) {
  for (size_t n : {1, 10, 100, 1000, 100000}) {
    auto cache = EntryBoundedCache(n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(cache->Put("k" + std::to_string(i), "v"), Status::kOk);
    EXPECT_EQ(cache->Size(), n);
    EXPECT_EQ(cache->GetStats().evictions, 0u) << "n = " << n;
    size_t present = 0;
    for (size_t i = 0; i < n; ++i) present += cache->Contains("k" + std::to_string(i));
    EXPECT_EQ(present, n) << "n = " << n;
    ASSERT_EQ(cache->Put("one more", "v"), Status::kOk);
    EXPECT_EQ(cache->Size(), n);
    EXPECT_EQ(cache->GetStats().evictions, 1u);
    EXPECT_TRUE(cache->Contains("one more"));
  }
}

TEST(GlobalBounds, APreloadedCacheServesEveryKey) {
  auto cache = EntryBoundedCache(100000);
  for (int i = 0; i < 100000; ++i) cache->Put("k" + std::to_string(i), "v");
  for (int i = 0; i < 100000; ++i) cache->Get("k" + std::to_string(i));
  const Stats s = cache->GetStats();
  EXPECT_EQ(s.hits, 100000u);
  EXPECT_EQ(s.misses, 0u);
}

TEST(GlobalBounds, ASmallCacheKeepsExactLruOrder) {
  auto cache = EntryBoundedCache(1000);  // one stripe by default
  for (int i = 0; i < 1000; ++i) cache->Put("k" + std::to_string(i), "v");
  for (int i = 0; i < 1000; i += 2) cache->Get("k" + std::to_string(i));
  for (int i = 0; i < 500; ++i) cache->Put("new" + std::to_string(i), "v");
  int read_kept = 0, unread_kept = 0;
  for (int i = 0; i < 1000; ++i) {
    (i % 2 == 0 ? read_kept : unread_kept) += cache->Contains("k" + std::to_string(i));
  }
  EXPECT_EQ(read_kept, 500);
  EXPECT_EQ(unread_kept, 0);
}

TEST(GlobalBounds, AcrossStripesEachEvictsItsOwnLeastRecentlyUsed) {
  // With several stripes the inserting stripe evicts its own LRU tail: keys
  // read since still outlive those never read, as long as each stripe has
  // unread keys left to give.
  Options o;
  o.capacity_bytes = size_t{1} << 30;
  o.capacity_entries = 4000;
  o.stripes = 8;
  auto cache = testing::MakeCache(o);
  for (int i = 0; i < 4000; ++i) cache->Put("k" + std::to_string(i), "v");
  for (int i = 0; i < 4000; i += 2) cache->Get("k" + std::to_string(i));
  for (int i = 0; i < 1000; ++i) cache->Put("new" + std::to_string(i), "v");
  int read_kept = 0, unread_kept = 0;
  for (int i = 0; i < 4000; ++i) {
    (i % 2 == 0 ? read_kept : unread_kept) += cache->Contains("k" + std::to_string(i));
  }
  EXPECT_EQ(read_kept, 2000);
  EXPECT_EQ(unread_kept, 1000);
  EXPECT_EQ(cache->Size(), 4000u);
}

TEST(GlobalBounds, AStripeWithNothingToEvictTakesRoomFromAnother) {
  Options o;
  o.capacity_bytes = size_t{1} << 30;
  o.capacity_entries = 1;
  o.stripes = 64;  // the next key almost surely lands in another, empty stripe
  auto cache = testing::MakeCache(o);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(cache->Put("k" + std::to_string(i), "v"), Status::kOk);
    ASSERT_EQ(cache->Size(), 1u);
    ASSERT_TRUE(cache->Contains("k" + std::to_string(i)));
  }
  EXPECT_EQ(cache->GetStats().evictions, 99u);
}

// A key of the given stripe, for a cache of `stripes` stripes (a power of
// two): the top bits of the key's hash pick it (Cache::StripeFor).
std::string KeyInStripe(const std::string& prefix, size_t stripe, size_t stripes) {
  const int shift = 64 - std::countr_zero(stripes);
  for (int i = 0;; ++i) {
    std::string key = prefix + std::to_string(i);
    if ((internal::HashKey(key) >> shift) == stripe) return key;
  }
}

TEST(GlobalBounds, RoomTakenElsewhereComesFromTheStripeHoldingTheMostBytes) {
  // A put whose own stripe holds nothing must evict elsewhere. One stripe
  // holds a single large entry, another a hundred small ones: the large one
  // goes, not the small ones one by one (a fallback that picked the stripe
  // with the most entries, in f32eff9, evicted small ones and failed this).
  Options o;
  o.capacity_bytes = 100'000;
  o.stripes = 4;
  auto cache = testing::MakeCache(o);
  const std::string large = KeyInStripe("large", 0, 4);
  ASSERT_EQ(cache->Put(large, std::string(55'000, 'l')), Status::kOk);
  std::vector<std::string> small;
  for (int i = 0; small.size() < 100; ++i) {
    small.push_back(KeyInStripe("small" + std::to_string(i) + "-", 1, 4));
    ASSERT_EQ(cache->Put(small.back(), "0123456789"), Status::kOk);
  }
  const std::string incoming = KeyInStripe("incoming", 2, 4);
  ASSERT_EQ(cache->Put(incoming, std::string(40'000, 'i')), Status::kOk);
  EXPECT_FALSE(cache->Contains(large));
  for (const std::string& key : small) EXPECT_TRUE(cache->Contains(key)) << key;
  EXPECT_TRUE(cache->Contains(incoming));
  EXPECT_EQ(cache->GetStats().evictions, 1u);
}

TEST(GlobalBounds, ReplacingAKeyInAFullCacheEvictsNothingElse) {
  auto cache = EntryBoundedCache(100);
  for (int i = 0; i < 100; ++i) cache->Put("k" + std::to_string(i), "v");
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 100; ++i) ASSERT_EQ(cache->Put("k" + std::to_string(i), "w"), Status::kOk);
  }
  EXPECT_EQ(cache->GetStats().evictions, 0u);
  EXPECT_EQ(cache->Size(), 100u);
}

TEST(GlobalBounds, OneEntryMayUseTheWholeByteCapacity) {
  Options o;
  o.capacity_bytes = 64 << 20;  // default stripes
  auto cache = testing::MakeCache(o);
  ASSERT_GT(cache->stripe_count(), 1u);
  for (int i = 0; i < 100; ++i) cache->Put("small" + std::to_string(i), "v");
  EXPECT_EQ(cache->Put("big", std::string(4200000, 'b')), Status::kOk);
  const std::string key = "whole";
  const std::string whole(o.capacity_bytes - key.size() - EntryOverhead(), 'w');
  EXPECT_EQ(cache->Put(key, whole), Status::kOk);
  EXPECT_EQ(cache->Size(), 1u);
  EXPECT_EQ(cache->Charge(), o.capacity_bytes);
  EXPECT_EQ(cache->Put("too big", whole + "xx"), Status::kValueTooLarge);
  EXPECT_TRUE(cache->Contains(key));
}

TEST(GlobalBounds, TheDefaultStripeCountFollowsTheCapacity) {
  EXPECT_EQ(EntryBoundedCache(1)->stripe_count(), 1u);
  EXPECT_EQ(EntryBoundedCache(100)->stripe_count(), 1u);
  EXPECT_EQ(EntryBoundedCache(4096)->stripe_count(), 4u);
  EXPECT_GE(EntryBoundedCache(100000)->stripe_count(), 16u);
}

}  // namespace
}  // namespace larder
