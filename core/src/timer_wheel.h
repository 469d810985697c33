// A hierarchical timing wheel (Varghese and Lauck; the shape Kafka and
// Caffeine use) holding a stripe's entries that have a TTL: O(1) insert and
// removal, reaping O(expired) plus O(1) per 64 ticks of idle time per level.
//
// Time is cut into ticks of 2^kTickShift ns (about 1.05 ms). Level L has 64
// buckets of 64^L ticks each; an entry due at tick t sits at the lowest level
// whose span covers t - now, in bucket (t >> 6L) & 63. When the wheel's time
// reaches a multiple of 64^L, the level-L bucket that starts there is
// cascaded: its entries are inserted again, one level lower or more. Entries
// due beyond the top level's span (about 2.2 years) wait in the top level and
// are cascaded again until due.
//
// Invariants (the owning stripe's lock guards everything):
//  * Every entry in the wheel is in exactly one bucket: a circular list of
//    entries through TtlBlock::timer_prev/timer_next (32-bit references),
//    entered at heads_, with the bucket's number in TtlBlock::timer_bucket.
//    timer_next is kNoEntry for an entry not in the wheel. No sentinel node:
//    a bucket is its head reference, so links need no pointer into the wheel
//    and an entry with a TTL carries 8 bytes less than with pointer links.
//  * current_ is the last tick whose level-0 bucket was emptied; every entry
//    in the wheel is due at a tick > current_ (one inserted already due goes
//    to the bucket of current_ + 1).
//  * A set bit of occupied_[L] marks a non-empty bucket of level L, and
//    every non-empty bucket has its bit set.
//  * Exactness: an entry is handed to the reaper only once its due time has
//    passed (it is in a tick that ended), and at most one tick after that
//    when reaping keeps up. Readers never depend on the wheel: they compare
//    the entry's expiry with the clock themselves.
#ifndef LARDER_CORE_SRC_TIMER_WHEEL_H_
#define LARDER_CORE_SRC_TIMER_WHEEL_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "entry.h"

namespace larder::internal {

class TimerWheel {
 public:
  static constexpr int kTickShift = 20;  // 2^20 ns = 1.048576 ms
  static constexpr int kBucketBits = 6;
  static constexpr int kBuckets = 1 << kBucketBits;
  static constexpr int kLevels = 6;  // spans: 67 ms, 4.3 s, 4.6 min, 4.9 h, 13 d, 2.3 y

  // grace_nanos: how long past its expiry an entry is kept (stale serving);
  // an entry is due at expiry + grace.
  TimerWheel(int64_t now_nanos, int64_t grace_nanos)
      : grace_(grace_nanos), current_(Tick(now_nanos) - 1) {}
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  size_t size() const { return size_; }

  // Adds e (which has an expiry).
  void Insert(Entry* e) {
    ++size_;
    Place(e);
  }

  // Removes e (which must be in the wheel).
  void Remove(Entry* e) {
    TtlBlock& timer = e->ttl();
    const EntryRef ref = RefOf(e);
    const size_t bucket = timer.timer_bucket;
    if (timer.timer_next == ref) {  // the bucket's only entry
      occupied_[bucket / kBuckets] &= ~(uint64_t{1} << (bucket % kBuckets));
    } else {
      EntryAt(timer.timer_prev)->ttl().timer_next = timer.timer_next;
      EntryAt(timer.timer_next)->ttl().timer_prev = timer.timer_prev;
      if (heads_[bucket] == ref) heads_[bucket] = timer.timer_next;
    }
    timer.timer_prev = timer.timer_next = kNoEntry;
    --size_;
  }

  // Hands every entry due by now_nanos (in ticks that have ended) to reap,
  // which must Remove it; at most `budget` of them. Returns false if it
  // stopped at the budget with due entries left.
  template <typename Reap>
  bool Advance(int64_t now_nanos, size_t budget, Reap&& reap) {
    const int64_t target = Tick(now_nanos) - 1;  // the last tick that has ended
    while (current_ < target) {
      if (size_ == 0) {
        current_ = target;
        return true;
      }
      int level = 0;
      while (level < kLevels && occupied_[level] == 0) ++level;
      if (level > 0) {
        // Levels below `level` are empty, so nothing is reaped or cascaded
        // into them before the next boundary of a level-`level` bucket.
        const int64_t step = int64_t{1} << (kBucketBits * std::min(level, kLevels - 1));
        const int64_t boundary = (current_ / step + 1) * step;
        if (boundary - 1 > current_) {
          current_ = std::min(target, boundary - 1);
          continue;
        }
      }
      const int64_t next = current_ + 1;
      Cascade(next);
      const size_t index = static_cast<size_t>(next) & (kBuckets - 1);
      while (occupied_[0] & (uint64_t{1} << index)) {  // Remove clears it with the last entry
        if (budget == 0) return false;  // `next` is cascaded again next time: harmless
        --budget;
        reap(EntryAt(heads_[index]));  // removes it from the wheel
      }
      current_ = next;
    }
    return true;
  }

 private:
  static int64_t Tick(int64_t nanos) { return nanos >> kTickShift; }
  static bool Aligned(int64_t tick, int level) {
    return (tick & ((int64_t{1} << (kBucketBits * level)) - 1)) == 0;
  }

  int64_t DueTick(const Entry* e) const {
    const int64_t expiry = e->ttl().expiry_nanos;
    const int64_t due = expiry > std::numeric_limits<int64_t>::max() - grace_
                            ? std::numeric_limits<int64_t>::max()
                            : expiry + grace_;
    return Tick(due);
  }

  void Place(Entry* e) {
    // Relative to the next tick to reap: level 0 holds that tick and the 63
    // after it; level L the entries whose level-L bucket has not been
    // cascaded yet and will be within 64^(L+1) ticks.
    int64_t tick = DueTick(e);
    if (tick <= current_) tick = current_ + 1;
    const uint64_t delta = static_cast<uint64_t>(tick - (current_ + 1));
    int level = 0;
    while (level < kLevels - 1 && delta >= (uint64_t{1} << (kBucketBits * (level + 1)))) ++level;
    const size_t index = static_cast<size_t>(tick >> (kBucketBits * level)) & (kBuckets - 1);
    const size_t bucket = static_cast<size_t>(level) * kBuckets + index;
    TtlBlock& timer = e->ttl();
    const EntryRef ref = RefOf(e);
    timer.timer_bucket = static_cast<uint16_t>(bucket);
    if ((occupied_[level] & (uint64_t{1} << index)) == 0) {
      heads_[bucket] = ref;
      timer.timer_prev = timer.timer_next = ref;
      occupied_[level] |= uint64_t{1} << index;
      return;
    }
    // Last in the circle, just before the head.
    TtlBlock& head = EntryAt(heads_[bucket])->ttl();
    timer.timer_next = heads_[bucket];
    timer.timer_prev = head.timer_prev;
    EntryAt(head.timer_prev)->ttl().timer_next = ref;
    head.timer_prev = ref;
  }

  // Before tick `next` is reaped: every level whose bucket boundary `next`
  // is re-inserts that bucket's entries, the highest level first.
  void Cascade(int64_t next) {
    for (int level = kLevels - 1; level >= 1; --level) {
      if (!Aligned(next, level)) continue;
      const size_t index = static_cast<size_t>(next >> (kBucketBits * level)) & (kBuckets - 1);
      if ((occupied_[level] & (uint64_t{1} << index)) == 0) continue;
      // Empty the bucket, then walk its old circle placing each entry again.
      // Place rewrites the placed entry's links and those of the head and
      // the last entry of the bucket it lands in: entries of other buckets,
      // or ones already placed (entries beyond the top level's span may land
      // in this very bucket, a new circle by then), never an entry of this
      // circle not yet placed. So the walk still leads round the old circle.
      const EntryRef first = heads_[static_cast<size_t>(level) * kBuckets + index];
      occupied_[level] &= ~(uint64_t{1} << index);
      EntryRef ref = first;
      do {
        Entry* e = EntryAt(ref);
        ref = e->ttl().timer_next;
        Place(e);
      } while (ref != first);
    }
  }

  const int64_t grace_;
  int64_t current_;
  size_t size_ = 0;
  // A bucket's head means something only while its occupied_ bit is set: it
  // is written when the bucket's first entry arrives, not up front.
  uint64_t occupied_[kLevels] = {};
  EntryRef heads_[kLevels * kBuckets];  // bucket level * kBuckets + index
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_TIMER_WHEEL_H_
