// The removal listener: one call per removal, with its cause, outside locks.
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::MakeCache;

struct Seen {
  std::string key, value;
  RemovalCause cause;
};

class ListenerTest : public ::testing::Test {
 protected:
  void Make(size_t entries, std::function<void(const Seen&)> extra = nullptr) {
    Options o;
    o.capacity_bytes = 1 << 20;
    o.capacity_entries = entries;
    o.stripes = 1;
    o.clock = clock_;
    o.removal_listener = [this, extra](std::string_view k, std::string_view v, RemovalCause c) {
      Seen s{std::string(k), std::string(v), c};
      seen_.push_back(s);
      if (extra) extra(s);
    };
    cache_ = MakeCache(o);
  }
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::vector<Seen> seen_;
  std::unique_ptr<Cache> cache_;
};

TEST_F(ListenerTest, ExplicitInvalidateReportsExplicit) {
  Make(10);
  cache_->Put("k", "v");
  cache_->Invalidate("k");
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].key, "k");
  EXPECT_EQ(seen_[0].value, "v");
  EXPECT_EQ(seen_[0].cause, RemovalCause::kExplicit);
}

TEST_F(ListenerTest, PutOverExistingReportsReplacedWithTheOldValue) {
  Make(10);
  cache_->Put("k", "old");
  cache_->Put("k", "new");
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].value, "old");
  EXPECT_EQ(seen_[0].cause, RemovalCause::kReplaced);
}

TEST_F(ListenerTest, CapacityReportsEvicted) {
  Make(1);
  cache_->Put("a", "1");
  cache_->Put("b", "2");
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].key, "a");
  EXPECT_EQ(seen_[0].cause, RemovalCause::kEvicted);
}

TEST_F(ListenerTest, TtlReportsExpired) {
  Make(10);
  PutOptions p;
  p.ttl = 1s;
  cache_->Put("a", "1", p);
  clock_->Advance(2s);
  cache_->Put("b", "2");
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].key, "a");
  EXPECT_EQ(seen_[0].cause, RemovalCause::kExpired);
}

TEST_F(ListenerTest, PrefixAndClearReportExplicitForEachEntry) {
  Make(100);
  for (int i = 0; i < 10; ++i) cache_->Put("p" + std::to_string(i), "v");
  cache_->Put("q", "v");
  cache_->InvalidatePrefix("p");
  EXPECT_EQ(seen_.size(), 10u);
  cache_->Clear();
  ASSERT_EQ(seen_.size(), 11u);
  for (const Seen& s : seen_) EXPECT_EQ(s.cause, RemovalCause::kExplicit);
}

TEST_F(ListenerTest, ListenerMayCallBackIntoTheCache) {
  // Runs with no lock held: re-entering the same stripe must not deadlock.
  Make(2, [this](const Seen& s) {
    if (s.cause == RemovalCause::kEvicted && s.key.rfind("evicted:", 0) != 0) {
      cache_->Get(s.key);
      cache_->Put("evicted:" + s.key, s.value);
    }
  });
  cache_->Put("a", "1");
  cache_->Put("b", "2");
  cache_->Put("c", "3");  // evicts a; the listener writes evicted:a, which evicts b,
                          // whose listener call writes evicted:b, which evicts c...
  EXPECT_TRUE(cache_->Contains("evicted:b"));
  EXPECT_LE(cache_->Size(), 2u);
}

TEST_F(ListenerTest, AThrowingListenerDoesNotBreakTheCache) {
  Make(1, [](const Seen&) { throw std::runtime_error("listener failed"); });
  cache_->Put("a", "1");
  EXPECT_EQ(cache_->Put("b", "2"), Status::kOk);
  EXPECT_EQ(cache_->Put("c", "3"), Status::kOk);
  EXPECT_EQ(seen_.size(), 2u);
  EXPECT_TRUE(cache_->Contains("c"));
}

TEST_F(ListenerTest, RejectedPutReportsTheRemovedOldValueAsReplaced) {
  Options o;
  o.capacity_bytes = 4096;
  o.stripes = 1;
  o.removal_listener = [this](std::string_view k, std::string_view v, RemovalCause c) {
    seen_.push_back({std::string(k), std::string(v), c});
  };
  cache_ = MakeCache(o);
  cache_->Put("k", "old");
  EXPECT_EQ(cache_->Put("k", std::string(8192, 'x')), Status::kValueTooLarge);
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].value, "old");
  EXPECT_EQ(seen_[0].cause, RemovalCause::kReplaced);
}

}  // namespace
}  // namespace larder
