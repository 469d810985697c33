// Probabilistic early refresh (XFetch; Vattani, Chierichetti, Lowenstein,
// "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015).
//
// On a hit with remaining time r before expiry, refresh iff
//     now - delta * beta * ln(U) >= expiry,   U uniform in (0, 1],
// i.e. iff U <= exp(-r / (delta * beta)): the trigger probability at remaining
// time r is exp(-r / (delta * beta)). The draw is skipped when that
// probability is below e^-40, so hits far from expiry cost one division.
#ifndef LARDER_CORE_SRC_XFETCH_H_
#define LARDER_CORE_SRC_XFETCH_H_

#include <cmath>
#include <cstdint>

namespace larder::internal {

// xorshift64*: tiny state, good enough for a refresh coin.
class XorShiftRng {
 public:
  explicit XorShiftRng(uint64_t seed = 0x9E3779B97F4A7C15ull) { Seed(seed); }
  void Seed(uint64_t seed) {
    // splitmix64 of the seed, never zero.
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    state_ = (z ^ (z >> 31)) | 1;
  }
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  // Uniform in (0, 1]: 53 random bits, shifted off zero.
  double UniformOpenClosed() { return (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53; }

 private:
  uint64_t state_ = 1;
};

inline bool XFetchTriggers(double remaining_nanos, double delta_nanos, double beta,
                           XorShiftRng& rng) {
  if (beta <= 0 || delta_nanos <= 0) return false;
  if (remaining_nanos <= 0) return true;
  const double x = remaining_nanos / (delta_nanos * beta);
  if (x > 40) return false;
  return rng.UniformOpenClosed() <= std::exp(-x);
}

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_XFETCH_H_
