#ifndef LARDER_TESTS_CORE_TEST_UTIL_H_
#define LARDER_TESTS_CORE_TEST_UTIL_H_

#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

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

// A one-shot gate: Wait blocks until Open.
class Latch {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Polls pred for up to five seconds (for effects of background threads).
template <typename Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 5000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

// Keeps the calling thread on the CPU it runs on while it lives: the entry
// slabs pick a shard per CPU, so a test of what one shard holds stays on one.
class StayOnThisCpu {
 public:
  StayOnThisCpu() {
    saved_ok_ = sched_getaffinity(0, sizeof saved_, &saved_) == 0;
    const int cpu = sched_getcpu();
    if (!saved_ok_ || cpu < 0) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned_ = sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~StayOnThisCpu() {
    if (pinned_) sched_setaffinity(0, sizeof saved_, &saved_);
  }
  StayOnThisCpu(const StayOnThisCpu&) = delete;
  StayOnThisCpu& operator=(const StayOnThisCpu&) = delete;
  bool pinned() const { return pinned_; }

 private:
  cpu_set_t saved_;
  bool saved_ok_ = false;
  bool pinned_ = false;
};

}  // namespace larder::testing

#endif  // LARDER_TESTS_CORE_TEST_UTIL_H_
