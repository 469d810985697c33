// Pinned values: zero-copy views that outlive eviction, replacement and the
// cache itself. Run under ASan, any early free is a reported use-after-free.
#include <string>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using testing::SmallCache;

TEST(Pin, PinnedValueSurvivesEviction) {
  auto cache = SmallCache(1);
  cache->Put("a", std::string(1000, 'a'));
  PinnedValue pinned = cache->Pin("a");
  ASSERT_TRUE(pinned);
  for (int i = 0; i < 100; ++i) cache->Put("other" + std::to_string(i), std::string(1000, 'o'));
  EXPECT_FALSE(cache->Contains("a"));
  EXPECT_EQ(pinned.value(), std::string(1000, 'a'));
  EXPECT_EQ(pinned.key(), "a");
}

TEST(Pin, PinnedValueSurvivesReplacementAndInvalidation) {
  auto cache = SmallCache(10);
  cache->Put("k", "first");
  PinnedValue first = cache->Pin("k");
  cache->Put("k", "second");
  PinnedValue second = cache->Pin("k");
  cache->Invalidate("k");
  cache->Clear();
  EXPECT_EQ(first.value(), "first");
  EXPECT_EQ(second.value(), "second");
}

TEST(Pin, PinnedValueSurvivesTheCache) {
  PinnedValue pinned;
  {
    auto cache = SmallCache(10);
    cache->Put("k", "outlives the cache");
    pinned = cache->Pin("k");
  }
  EXPECT_EQ(pinned.value(), "outlives the cache");
}

TEST(Pin, MissGivesAnEmptyPin) {
  auto cache = SmallCache(10);
  PinnedValue p = cache->Pin("absent");
  EXPECT_FALSE(p);
  EXPECT_TRUE(p.value().empty());
  EXPECT_EQ(cache->GetStats().misses, 1u);
}

TEST(Pin, ResetAndMoveReleaseExactlyOnce) {
  auto cache = SmallCache(10);
  cache->Put("k", "v");
  PinnedValue a = cache->Pin("k");
  PinnedValue b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(b.value(), "v");
  b.Reset();
  b.Reset();  // a second release is a no-op
  EXPECT_FALSE(b);
  cache->Invalidate("k");
  PinnedValue c = cache->Pin("k");
  EXPECT_FALSE(c);
}

}  // namespace
}  // namespace larder
