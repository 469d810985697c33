// The time source for expiry. Larder reads it only on writes and when an entry
// that has a TTL is read, so entries without TTL never pay for the clock.
#ifndef LARDER_CLOCK_H_
#define LARDER_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace larder {

class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds on a monotonic scale with an arbitrary origin; never decreases.
  virtual int64_t NowNanos() = 0;
};

// CLOCK_MONOTONIC_COARSE: about 1-4 ms resolution, a few ns per read (the
// precise steady_clock costs ~21 ns on our machines, more than a lookup).
// TTLs therefore resolve to the kernel tick; that is the documented precision.
class CoarseMonotonicClock final : public Clock {
 public:
  int64_t NowNanos() override;
};

// A clock tests move by hand. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_nanos = 1'000'000'000) : now_(start_nanos) {}
  int64_t NowNanos() override { return now_.load(std::memory_order_acquire); }
  void Advance(std::chrono::nanoseconds by) {
    now_.fetch_add(by.count(), std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace larder

#endif  // LARDER_CLOCK_H_
