// How the engine (and the C ABI) create and take apart PinnedValues.
#ifndef LARDER_CORE_SRC_PIN_ACCESS_H_
#define LARDER_CORE_SRC_PIN_ACCESS_H_

#include "entry.h"
#include "larder/pinned_value.h"

namespace larder::internal {

struct PinAccess {
  // Takes over one reference the caller already holds.
  static PinnedValue Adopt(Entry* e) { return PinnedValue(e); }
  // Gives up the pin's reference to the caller (the pin becomes empty).
  static Entry* Release(PinnedValue& pin) {
    Entry* e = pin.entry_;
    pin.entry_ = nullptr;
    return e;
  }
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_PIN_ACCESS_H_
