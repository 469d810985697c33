// Test seams: named points on slow paths where a test can run code of its own
// (write a key, pause the thread) to make an interleaving deterministic.
//
// Cost when no hook is installed: one relaxed load of a global pointer and a
// predictable branch. Points sit only on miss, load and refresh paths, never
// on a hit. Hooks are for tests; the engine never installs one.
#ifndef LARDER_CORE_SRC_TEST_POINT_H_
#define LARDER_CORE_SRC_TEST_POINT_H_

#include <atomic>
#include <string_view>

namespace larder::internal {

enum class TestPoint {
  // A miss has decided to load the key and registered its flight; the check
  // for a pending write-behind write of the key comes next.
  kLoadRegistered,
  // A refresh of the key was registered; the pending-write check comes next.
  kRefreshRegistered,
  // A hit or a call asks for a refresh of the key (before any lock).
  kRefreshRequested,
  // The Redis tier's L1 flight for the key got Redis's answer to its GET;
  // the flight completes next (redis_tier.cc).
  kTierL2Answered,
  // The Redis tier's invalidation session sent a health ping and has read
  // nothing since; the key is empty (redis_tier.cc).
  kTierPingSent,
  // The Redis tier's background thread opened a new session (Redis answered
  // its SUBSCRIBE) and has not yet marked tracking up; the key is empty.
  kTierSessionOpened,
};

using TestHook = void (*)(TestPoint point, std::string_view key);

extern std::atomic<TestHook> g_test_hook;

inline void ReachTestPoint(TestPoint point, std::string_view key) {
  if (TestHook hook = g_test_hook.load(std::memory_order_relaxed); hook != nullptr) {
    hook(point, key);
  }
}

// Installs `hook` (nullptr removes it) and returns the previous one.
inline TestHook SetTestHook(TestHook hook) { return g_test_hook.exchange(hook); }

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_TEST_POINT_H_
