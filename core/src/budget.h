// The cache-wide bounds (capacity_bytes, capacity_entries), shared by all
// stripes.
//
// Invariants:
//  * bytes and entries count every linked entry of every stripe plus the
//    reservations of puts and loads about to link one. A reservation is
//    taken only if it fits (a CAS, never an add that is undone), so both
//    stay within their bounds at every instant, and so do the entries
//    actually linked (never more than what is counted).
//  * An entry's charge and one entry are counted from its reservation until
//    it is unlinked; a replacement hands the old entry's count to the new one
//    under the stripe lock and reserves or releases only the difference.
#ifndef LARDER_CORE_SRC_BUDGET_H_
#define LARDER_CORE_SRC_BUDGET_H_

#include <atomic>
#include <cstdint>

namespace larder::internal {

struct Budget {
  Budget(uint64_t max_bytes, uint64_t max_entries)
      : max_bytes(max_bytes), max_entries(max_entries) {}

  // Takes (b, n) if both fit; all or nothing.
  bool TryReserve(uint64_t b, uint64_t n) {
    // A full cache is the steady state of a busy one, where every insert
    // asks and is refused (then evicts and takes over its victim's counts).
    // Refuse on plain loads, so that the shared line is not written (a
    // reservation of the bytes, undone when the entries do not fit) per insert.
    if (n > 0 && max_entries != 0 && entries.load(std::memory_order_relaxed) + n > max_entries) {
      return false;
    }
    if (b > 0 && bytes.load(std::memory_order_relaxed) + b > max_bytes) return false;
    if (b > 0) {
      uint64_t cur = bytes.load(std::memory_order_relaxed);
      do {
        if (cur + b > max_bytes || cur + b < cur) return false;
      } while (!bytes.compare_exchange_weak(cur, cur + b, std::memory_order_relaxed));
    }
    if (n > 0) {
      uint64_t cur = entries.load(std::memory_order_relaxed);
      do {
        if (max_entries != 0 && cur + n > max_entries) {
          if (b > 0) bytes.fetch_sub(b, std::memory_order_relaxed);
          return false;
        }
      } while (!entries.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    }
    return true;
  }
  void Release(uint64_t b, uint64_t n) {
    if (b > 0) bytes.fetch_sub(b, std::memory_order_relaxed);
    if (n > 0) entries.fetch_sub(n, std::memory_order_relaxed);
  }

  const uint64_t max_bytes;
  const uint64_t max_entries;  // 0: no entry bound
  // One line for both: an insertion touches each of them.
  alignas(64) std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> entries{0};
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_BUDGET_H_
