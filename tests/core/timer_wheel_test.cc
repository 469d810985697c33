// The expiry timer wheel (core/src/timer_wheel.h) against a model: an entry
// is reaped only once the tick holding its due time has ended, and no later
// than the first Advance after that; removal and the reaping budget keep the
// wheel consistent; long idle gaps and far-off expiries cascade correctly.
#include "timer_wheel.h"

#include <map>
#include <random>
#include <set>
#include <vector>

#include "entry.h"
#include "gtest/gtest.h"

namespace larder::internal {
namespace {

constexpr int64_t kTick = int64_t{1} << TimerWheel::kTickShift;

struct Model {
  explicit Model(int64_t now, int64_t grace = 0) : wheel(now, grace), grace(grace) {}
  ~Model() {
    for (auto& [e, due] : live) {
      wheel.Remove(e);
      Unref(e);
    }
  }
  Entry* Add(int64_t expiry) {
    Entry* e = NewEntry("k", "v", expiry, 0);
    wheel.Insert(e);
    live[e] = expiry + grace;
    return e;
  }
  // Advances to now; checks that exactly the due entries come out.
  void AdvanceTo(int64_t now, size_t budget = SIZE_MAX) {
    std::set<Entry*> reaped;
    bool done = wheel.Advance(now, budget, [&](Entry* e) {
      wheel.Remove(e);
      reaped.insert(e);
    });
    const int64_t ended = (now >> TimerWheel::kTickShift) << TimerWheel::kTickShift;
    for (Entry* e : reaped) {
      ASSERT_TRUE(live.count(e));
      EXPECT_LT(live[e], ended) << "reaped before its tick ended";
      live.erase(e);
      Unref(e);
    }
    if (done) {
      for (auto& [e, due] : live) EXPECT_GE(due, ended) << "due but not reaped";
    }
    EXPECT_EQ(wheel.size(), live.size());
  }
  TimerWheel wheel;
  int64_t grace;
  std::map<Entry*, int64_t> live;
};

TEST(TimerWheel, ReapsEachEntryWithinOneTickOfItsExpiry) {
  const int64_t start = int64_t{1} << 40;
  Model m(start);
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> within(1, 300 * kTick);
  for (int i = 0; i < 2000; ++i) m.Add(start + within(rng));
  for (int64_t now = start; now < start + 310 * kTick; now += kTick / 3) m.AdvanceTo(now);
  EXPECT_EQ(m.wheel.size(), 0u);
}

TEST(TimerWheel, FarExpiriesCascadeThroughEveryLevel) {
  const int64_t start = 12345 * kTick + 17;
  Model m(start);
  std::mt19937_64 rng(11);
  // Up to about 5 years: past the top level's span, so some wait there and
  // cascade more than once.
  std::uniform_int_distribution<int> exponent(0, 37);  // spans of 2^20 to 2^57 ns
  for (int i = 0; i < 3000; ++i) {
    const int64_t span = int64_t{1} << (20 + exponent(rng));
    m.Add(start + 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(span)));
  }
  int64_t now = start;
  std::uniform_int_distribution<int> jump(0, 52);
  while (!m.live.empty()) {
    now += int64_t{1} << jump(rng);  // from 1 ns to about 52 days at a time
    m.AdvanceTo(now);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(TimerWheel, RemovedEntriesNeverComeOut) {
  const int64_t start = kTick * 1000;
  Model m(start);
  std::vector<Entry*> all;
  for (int i = 1; i <= 500; ++i) all.push_back(m.Add(start + i * kTick * 7));
  for (size_t i = 0; i < all.size(); i += 2) {
    m.wheel.Remove(all[i]);
    m.live.erase(all[i]);
    Unref(all[i]);
  }
  m.AdvanceTo(start + 600 * kTick * 7);
  EXPECT_TRUE(m.live.empty());
}

TEST(TimerWheel, RemovingABucketsHeadLastOrMiddleEntryKeepsTheRest) {
  // A bucket is a circle of entries entered at its head: removing the head,
  // the last entry or one between them must leave the others reapable.
  const int64_t start = kTick * 1000;
  Model m(start);
  std::vector<Entry*> same_tick;
  for (int i = 0; i < 10; ++i) same_tick.push_back(m.Add(start + 3 * kTick + i));
  for (size_t i : {size_t{0}, size_t{9}, size_t{4}, size_t{1}}) {  // head, last, middle, new head
    m.wheel.Remove(same_tick[i]);
    m.live.erase(same_tick[i]);
    Unref(same_tick[i]);
  }
  EXPECT_EQ(m.wheel.size(), 6u);
  m.AdvanceTo(start + 5 * kTick);
  EXPECT_TRUE(m.live.empty());
  // A bucket emptied by removals takes entries again.
  Entry* alone = m.Add(start + 9 * kTick);
  m.wheel.Remove(alone);
  m.live.erase(alone);
  Unref(alone);
  m.Add(start + 9 * kTick);
  m.AdvanceTo(start + 11 * kTick);
  EXPECT_TRUE(m.live.empty());
}

TEST(TimerWheel, EntriesBeyondTheTopLevelsSpanCascadeBackIntoTheirOwnBucket) {
  // Due in 2^57 ns, twice the wheel's span: they wait in one top-level
  // bucket, which, when cascaded, places them into itself again.
  const int64_t start = kTick * 5;
  Model m(start);
  const int64_t far = start + (int64_t{1} << 57);
  for (int i = 0; i < 5; ++i) m.Add(far + i * kTick);
  m.Add(far + (int64_t{1} << 50));  // the next bucket of the top level
  for (int64_t now = start; now < far - kTick; now += int64_t{1} << 52) {
    m.AdvanceTo(now);
    ASSERT_EQ(m.live.size(), 6u);
  }
  for (int64_t now = far - kTick; now < far + 8 * kTick; now += kTick) m.AdvanceTo(now);
  EXPECT_EQ(m.live.size(), 1u);
  m.AdvanceTo(far + (int64_t{1} << 50) + 2 * kTick);
  EXPECT_TRUE(m.live.empty());
}

TEST(TimerWheel, TheBudgetStopsAndTheNextAdvanceResumes) {
  const int64_t start = kTick * 64 * 64;
  Model m(start);
  for (int i = 0; i < 1000; ++i) m.Add(start + kTick * 5);
  for (int i = 0; i < 1000; ++i) m.Add(start + kTick * 5000);
  m.AdvanceTo(start + kTick * 10, 300);
  EXPECT_EQ(m.live.size(), 1700u);
  m.AdvanceTo(start + kTick * 10, 300);
  m.AdvanceTo(start + kTick * 10, 1000);
  EXPECT_EQ(m.live.size(), 1000u);
  m.AdvanceTo(start + kTick * 6000);
  EXPECT_TRUE(m.live.empty());
}

TEST(TimerWheel, GraceDelaysReaping) {
  const int64_t start = kTick * 10;
  Model m(start, 100 * kTick);
  m.Add(start + kTick);
  m.AdvanceTo(start + 50 * kTick);
  EXPECT_EQ(m.live.size(), 1u);
  m.AdvanceTo(start + 102 * kTick);
  EXPECT_TRUE(m.live.empty());
}

TEST(TimerWheel, AnEntryAlreadyDueIsReapedAtTheNextTick) {
  const int64_t start = kTick * 100;
  Model m(start);
  m.Add(start - 50 * kTick);  // expired before it was inserted
  m.AdvanceTo(start + kTick);
  EXPECT_TRUE(m.live.empty());
}

}  // namespace
}  // namespace larder::internal
