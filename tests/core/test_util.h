#ifndef LARDER_TESTS_CORE_TEST_UTIL_H_
#define LARDER_TESTS_CORE_TEST_UTIL_H_

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "larder/cache.h"

namespace larder::testing {

inline std::unique_ptr<Cache> MakeCache(Options options) {
  std::unique_ptr<Cache> cache;
  Status s = Cache::Create(std::move(options), &cache);
  EXPECT_EQ(s, Status::kOk) << StatusName(s);
  return cache;
}

// A one-stripe cache holding at most `entries` entries: exact LRU order.
inline std::unique_ptr<Cache> SmallCache(size_t entries, std::shared_ptr<Clock> clock = nullptr) {
  Options o;
  o.capacity_bytes = size_t{1} << 30;
  o.capacity_entries = entries;
  o.stripes = 1;
  o.clock = std::move(clock);
  return MakeCache(std::move(o));
}

inline std::string GetOr(Cache& cache, std::string_view key, std::string fallback = "<miss>") {
  std::string v;
  return cache.Get(key, &v) == Status::kOk ? v : fallback;
}

}  // namespace larder::testing

#endif  // LARDER_TESTS_CORE_TEST_UTIL_H_
