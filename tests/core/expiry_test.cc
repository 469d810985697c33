// TTL promises, on a clock the test moves by hand.
#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::GetOr;
using testing::MakeCache;
using testing::SmallCache;

PutOptions Ttl(std::chrono::nanoseconds ttl) {
  PutOptions p;
  p.ttl = ttl;
  return p;
}

TEST(Expiry, EntryExpiresExactlyAtItsTtl) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(10, clock);
  cache->Put("k", "v", Ttl(10s));
  clock->Advance(10s - 1ns);
  EXPECT_EQ(GetOr(*cache, "k"), "v");
  clock->Advance(1ns);
  EXPECT_EQ(GetOr(*cache, "k"), "<miss>");
  EXPECT_FALSE(cache->Contains("k"));
  PinnedValue p = cache->Pin("k");
  EXPECT_FALSE(p);
}

TEST(Expiry, ExpiredEntryIsNeverReturnedEvenBeforeItIsReclaimed) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(10, clock);
  cache->Put("k", "v", Ttl(1s));
  clock->Advance(2s);
  // No write has happened, so nothing reclaimed it yet; reads still miss.
  EXPECT_EQ(cache->Size(), 1u);
  EXPECT_EQ(cache->Get("k"), std::nullopt);
  EXPECT_EQ(cache->GetStats().misses, 1u);
}

TEST(Expiry, DefaultTtlAppliesWhenThePutGivesNone) {
  auto clock = std::make_shared<ManualClock>();
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = 1;
  o.default_ttl = 5s;
  o.clock = clock;
  auto cache = MakeCache(o);
  cache->Put("default", "v");
  cache->Put("longer", "v", Ttl(60s));
  clock->Advance(6s);
  EXPECT_FALSE(cache->Contains("default"));
  EXPECT_TRUE(cache->Contains("longer"));
}

TEST(Expiry, NoTtlMeansNoExpiry) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(10, clock);
  cache->Put("k", "v");
  clock->Advance(std::chrono::hours(24 * 365 * 100));
  EXPECT_TRUE(cache->Contains("k"));
}

TEST(Expiry, HugeTtlDoesNotOverflow) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(10, clock);
  cache->Put("k", "v", Ttl(std::chrono::nanoseconds::max()));
  clock->Advance(std::chrono::hours(24 * 365));
  EXPECT_TRUE(cache->Contains("k"));
}

TEST(Expiry, ReplacingResetsTheTtl) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(10, clock);
  cache->Put("k", "v1", Ttl(10s));
  clock->Advance(8s);
  cache->Put("k", "v2", Ttl(10s));
  clock->Advance(8s);
  EXPECT_EQ(GetOr(*cache, "k"), "v2");
}

TEST(Expiry, ExpiredEntriesAreReclaimedByLaterWritesInBoundedBatchesWithoutAScan) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(100000, clock);
  for (int i = 0; i < 10000; ++i) cache->Put("short" + std::to_string(i), "v", Ttl(1s));
  for (int i = 0; i < 10000; ++i) cache->Put("long" + std::to_string(i), "v", Ttl(1h));
  clock->Advance(2s);
  cache->Put("trigger", "v");  // one write removes a bounded batch from the heap top
  Stats s = cache->GetStats();
  EXPECT_GT(s.expirations, 0u);
  EXPECT_LE(s.expirations, 128u);
  for (int i = 0; i < 100; ++i) cache->Put("more" + std::to_string(i), "v");
  EXPECT_EQ(cache->GetStats().expirations, 10000u);  // each write removed more than it added
  s = cache->GetStats();
  EXPECT_EQ(s.entries, 10101u);
  EXPECT_EQ(s.bytes, cache->Charge());
  EXPECT_TRUE(cache->Contains("long9999"));
}

TEST(Expiry, MemoryDoesNotGrowWithDeadEntries) {
  // Churn of short-lived entries, far more than the capacity would ever
  // evict: the resident count stays at what is alive.
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(1000000, clock);
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 1000; ++i) {
      cache->Put("r" + std::to_string(round) + ":" + std::to_string(i), "v", Ttl(1s));
    }
    clock->Advance(2s);
  }
  cache->Put("last", "v");
  // The writes kept pace: only the last round's entries (dead by now, not
  // yet reached) remain, not the 49,000 of the rounds before.
  EXPECT_LE(cache->Size(), 1u + 1000u);
  cache->CleanUp();
  EXPECT_EQ(cache->Size(), 1u);
  EXPECT_EQ(cache->GetStats().expirations, 50000u);
  EXPECT_EQ(cache->GetStats().evictions, 0u);
}

TEST(Expiry, NegativeTtlIsRejected) {
  auto cache = SmallCache(10);
  EXPECT_EQ(cache->Put("k", "v", Ttl(-1s)), Status::kInvalidArgument);
  EXPECT_FALSE(cache->Contains("k"));
}

TEST(Expiry, ExpiredEntriesAreReclaimedWithinOneWheelTick) {
  // The timer wheel's tick is 2^20 ns (about 1 ms): once that much more has
  // passed, the next write to the stripe (or CleanUp) reclaims the entry.
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(10, clock);
  cache->Put("k", "v", Ttl(10ms));
  clock->Advance(10ms);
  cache->Put("other", "x");
  EXPECT_EQ(cache->GetStats().expirations, 0u);  // expired, but its tick has not ended
  clock->Advance(2100us);
  cache->Put("other", "y");
  EXPECT_EQ(cache->GetStats().expirations, 1u);
  EXPECT_EQ(cache->Size(), 1u);
}

TEST(Expiry, ManyTtlsReapOnlyWhatIsDue) {
  auto clock = std::make_shared<ManualClock>();
  auto cache = SmallCache(100000, clock);
  for (int i = 0; i < 10000; ++i) {
    cache->Put("k" + std::to_string(i), "v", Ttl(std::chrono::milliseconds(1 + i % 5000) * 60));
  }
  for (int minute = 1; minute <= 300; ++minute) {
    clock->Advance(1min);
    cache->CleanUp();
    // Entries with TTL 60 ms x (1 + i % 5000): those up to this minute are gone.
    const uint64_t due = static_cast<uint64_t>(std::min(5000, minute * 1000 - 1)) * 2;
    EXPECT_EQ(cache->GetStats().expirations, due) << "minute " << minute;
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_EQ(cache->Size(), 0u);
}

}  // namespace
}  // namespace larder
