// Bad input gets a clear status, never a crash.
#include <string>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using testing::SmallCache;

TEST(BadInput, ZeroCapacityIsRejected) {
  std::unique_ptr<Cache> cache;
  Options o;
  EXPECT_EQ(Cache::Create(o, &cache), Status::kInvalidArgument);
  EXPECT_EQ(cache, nullptr);
}

TEST(BadInput, NullOutputIsRejected) {
  Options o;
  o.capacity_bytes = 1024;
  EXPECT_EQ(Cache::Create(o, nullptr), Status::kInvalidArgument);
  auto cache = SmallCache(10);
  EXPECT_EQ(cache->Get("k", static_cast<std::string*>(nullptr)), Status::kInvalidArgument);
  EXPECT_EQ(cache->GetInto("k", nullptr, 0, nullptr), Status::kInvalidArgument);
  EXPECT_EQ(cache->GetInto("k", nullptr, 10, nullptr), Status::kInvalidArgument);
}

TEST(BadInput, NegativeDefaultTtlIsRejected) {
  std::unique_ptr<Cache> cache;
  Options o;
  o.capacity_bytes = 1024;
  o.default_ttl = std::chrono::seconds(-1);
  EXPECT_EQ(Cache::Create(o, &cache), Status::kInvalidArgument);
}

TEST(BadInput, FewerEntriesThanStripesIsAWholeCacheBound) {
  std::unique_ptr<Cache> cache;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.capacity_entries = 3;
  o.stripes = 8;
  ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);
  for (const char* k : {"a", "b", "c", "d"}) ASSERT_EQ(cache->Put(k, "v"), Status::kOk);
  EXPECT_EQ(cache->Size(), 3u);
  EXPECT_TRUE(cache->Contains("d"));
  EXPECT_EQ(cache->GetStats().evictions, 1u);
  o.stripes = 0;  // automatic: follows the capacity
  ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);
  EXPECT_EQ(cache->stripe_count(), 1u);
}

TEST(BadInput, AbsurdStripeCountIsRejected) {
  std::unique_ptr<Cache> cache;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.stripes = size_t{1} << 40;
  EXPECT_EQ(Cache::Create(o, &cache), Status::kInvalidArgument);
}

TEST(BadInput, EmptyKeyIsRejectedEverywhere) {
  auto cache = SmallCache(10);
  std::string v;
  size_t n;
  EXPECT_EQ(cache->Put("", "v"), Status::kEmptyKey);
  EXPECT_EQ(cache->Get("", &v), Status::kEmptyKey);
  EXPECT_EQ(cache->GetInto("", nullptr, 0, &n), Status::kEmptyKey);
  EXPECT_EQ(cache->Invalidate(""), Status::kEmptyKey);
  EXPECT_FALSE(cache->Contains(""));
  EXPECT_FALSE(cache->Pin(""));
  EXPECT_EQ(cache->Size(), 0u);
}

TEST(BadInput, OversizedKeyIsRejectedAndMaximalKeyWorks) {
  auto cache = SmallCache(10);
  const std::string longest(kMaxKeyLength, 'k');
  const std::string too_long(kMaxKeyLength + 1, 'k');
  EXPECT_EQ(cache->Put(too_long, "v"), Status::kKeyTooLong);
  EXPECT_EQ(cache->Invalidate(too_long), Status::kKeyTooLong);
  EXPECT_FALSE(cache->Contains(too_long));
  EXPECT_EQ(cache->Put(longest, "v"), Status::kOk);
  EXPECT_EQ(cache->Get(longest), std::optional<std::string>("v"));
}

TEST(BadInput, StatusNamesAreNeverNull) {
  for (int code = 0; code < 20; ++code) {
    EXPECT_NE(StatusName(static_cast<Status>(code)), nullptr);
  }
  EXPECT_STREQ(StatusName(Status::kKeyTooLong), "key too long");
}

}  // namespace
}  // namespace larder
