// PinnedValue: a zero-copy, reference-counted view of a cached value.
#ifndef LARDER_PINNED_VALUE_H_
#define LARDER_PINNED_VALUE_H_

#include <string_view>

namespace larder {

namespace internal {
struct Entry;
struct PinAccess;  // the engine's way to make pins; not for users
}  // namespace internal

// A reference to a value that stays readable until the PinnedValue is
// destroyed or Reset, even if the entry is evicted, replaced or the cache is
// destroyed meanwhile. Move-only. Empty when default-constructed or on a miss.
class PinnedValue {
 public:
  PinnedValue() = default;
  PinnedValue(PinnedValue&& other) noexcept : entry_(other.entry_) { other.entry_ = nullptr; }
  PinnedValue& operator=(PinnedValue&& other) noexcept;
  PinnedValue(const PinnedValue&) = delete;
  PinnedValue& operator=(const PinnedValue&) = delete;
  ~PinnedValue() { Reset(); }

  explicit operator bool() const { return entry_ != nullptr; }
  std::string_view value() const;
  std::string_view key() const;
  void Reset();

 private:
  friend struct internal::PinAccess;
  explicit PinnedValue(internal::Entry* entry) : entry_(entry) {}
  internal::Entry* entry_ = nullptr;
};

}  // namespace larder

#endif  // LARDER_PINNED_VALUE_H_
