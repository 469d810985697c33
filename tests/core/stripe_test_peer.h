// What tests see of a stripe's insides (Stripe declares StripeTestPeer its
// friend). One definition for every test file of the binary.
#ifndef LARDER_TESTS_CORE_STRIPE_TEST_PEER_H_
#define LARDER_TESTS_CORE_STRIPE_TEST_PEER_H_

#include <atomic>
#include <cstdint>

#include "entry.h"
#include "stripe.h"

namespace larder::internal {

class StripeTestPeer {
 public:
  // Stands for a reader paused between claiming a lane slot and filling it.
  static uint64_t ClaimSlotWithoutFilling(Stripe& stripe) {
    return stripe.lanes_[0].tail.fetch_add(1, std::memory_order_relaxed);
  }
  static void FillSlot(Stripe& stripe, uint64_t ticket, Entry* e) {
    stripe.lanes_[0].slots[ticket % Stripe::kLaneCapacity].store(e, std::memory_order_release);
  }
  // The size of the stripe's current index table.
  static size_t SlotCount(Stripe& stripe) {
    return stripe.table_.load(std::memory_order_relaxed)->slot_count();
  }
};

}  // namespace larder::internal

#endif  // LARDER_TESTS_CORE_STRIPE_TEST_PEER_H_
