// Hit ratios on the real traces of ../shared/traces (see its README):
//  * one stripe, one thread: exactly the published LRU figures;
//  * default stripes: within 0.5 points of exact LRU at 5% and 10% sizes.
#include "trace.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "larder/cache.h"

namespace larder {
namespace {

using bench::ReplayResult;
using bench::Trace;

std::string TracePath(const std::string& name) {
  const char* dir = std::getenv("LARDER_TRACES_DIR");
  return std::string(dir ? dir : LARDER_TRACES_DIR) + "/" + name;
}

const Trace& LoadOnce(const std::string& name) {
  static std::map<std::string, Trace> traces;
  auto it = traces.find(name);
  if (it == traces.end()) {
    Trace t;
    std::string error;
    EXPECT_TRUE(bench::LoadTrace(TracePath(name), &t, &error)) << error;
    it = traces.emplace(name, std::move(t)).first;
  }
  return it->second;
}

ReplayResult ReplayLarder(const Trace& trace, uint64_t capacity, bool by_bytes, size_t stripes) {
  Options o;
  o.capacity_entries = by_bytes ? 0 : capacity;
  o.capacity_bytes = by_bytes ? capacity : (uint64_t{1} << 50);
  o.stripes = stripes;
  std::unique_ptr<Cache> cache;
  EXPECT_EQ(Cache::Create(o, &cache), Status::kOk);
  return bench::Replay(trace, *cache, by_bytes);
}

TEST(TraceReplay, TracesHaveTheDocumentedShape) {
  EXPECT_EQ(LoadOnce("cache2k_web07.txt").keys.size(), 76118u);
  EXPECT_EQ(LoadOnce("cache2k_web07.txt").unique_keys, 20484u);
  EXPECT_EQ(LoadOnce("arc_oltp.txt.gz").keys.size(), 914145u);
  EXPECT_EQ(LoadOnce("arc_oltp.txt.gz").unique_keys, 186880u);
  EXPECT_EQ(LoadOnce("cloudphysics_io.txt").keys.size(), 113872u);
  EXPECT_EQ(LoadOnce("cloudphysics_io.txt").sizes.size(), 113872u);
}

TEST(TraceReplay, OneStripeReproducesArcOltpLruHitsExactly) {
  const Trace& t = LoadOnce("arc_oltp.txt.gz");
  const std::map<uint64_t, uint64_t> expected_hits = {
      {250, 150591},  {500, 214325},   {750, 258527},  {1000, 300122},
      {1250, 331009}, {1500, 353738},  {1750, 372863}, {2000, 388235},
      {5000, 490443}, {10000, 554906}, {15000, 590851}};
  for (auto [capacity, hits] : expected_hits) {
    EXPECT_EQ(ReplayLarder(t, capacity, false, 1).hits, hits) << "capacity " << capacity;
  }
}

TEST(TraceReplay, OneStripeReproducesCloudPhysicsCountMisses) {
  const Trace& t = LoadOnce("cloudphysics_io.txt");
  const std::map<uint64_t, uint64_t> expected_misses = {{128, 99411}, {256, 96397}, {384, 95652},
                                                        {512, 95370}, {640, 95182}, {768, 94997},
                                                        {896, 94891}, {1024, 94816}};
  for (auto [capacity, misses] : expected_misses) {
    ReplayResult r = ReplayLarder(t, capacity, false, 1);
    EXPECT_EQ(r.requests - r.hits, misses) << "capacity " << capacity;
  }
}

TEST(TraceReplay, OneStripeReproducesCloudPhysicsByteCapacityMisses) {
  const Trace& t = LoadOnce("cloudphysics_io.txt");
  constexpr uint64_t kMiB = 1 << 20;
  const std::map<uint64_t, uint64_t> expected_misses = {
      {128 * kMiB, 93151}, {256 * kMiB, 87793}, {384 * kMiB, 83135}, {512 * kMiB, 81609},
      {640 * kMiB, 72481}, {768 * kMiB, 72106}, {896 * kMiB, 71973}, {1024 * kMiB, 71702}};
  for (auto [capacity, misses] : expected_misses) {
    ReplayResult r = ReplayLarder(t, capacity, true, 1);
    EXPECT_EQ(r.requests - r.hits, misses) << "capacity " << capacity / kMiB << " MiB";
  }
}

TEST(TraceReplay, OneStripeReproducesCache2kWeb07Ratios) {
  const Trace& t = LoadOnce("cache2k_web07.txt");
  const std::map<uint64_t, double> expected_percent = {
      {20, 21.32}, {205, 39.17}, {1024, 50.56}, {2048, 55.66}};
  for (auto [capacity, percent] : expected_percent) {
    ReplayResult r = ReplayLarder(t, capacity, false, 1);
    EXPECT_NEAR(100 * r.hit_ratio(), percent, 0.005) << "capacity " << capacity;
    EXPECT_EQ(r.hits, bench::ReplayExactLru(t, capacity, false).hits);
  }
}

TEST(TraceReplay, DefaultStripesStayWithinHalfAPointOfExactLru) {
  for (const char* name : {"cache2k_web07.txt", "arc_oltp.txt.gz", "cloudphysics_io.txt"}) {
    const Trace& t = LoadOnce(name);
    for (double fraction : {0.05, 0.10}) {
      const uint64_t capacity = std::llround(fraction * t.unique_keys);
      const double exact = bench::ReplayExactLru(t, capacity, false).hit_ratio();
      const double striped = ReplayLarder(t, capacity, false, /*stripes=*/0).hit_ratio();
      EXPECT_NEAR(100 * striped, 100 * exact, 0.5) << name << " at " << capacity << " entries";
      std::printf("%s capacity %llu: exact %.3f%%, default stripes %.3f%%\n", name,
                  static_cast<unsigned long long>(capacity), 100 * exact, 100 * striped);
    }
  }
}

}  // namespace
}  // namespace larder
