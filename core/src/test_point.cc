#include "test_point.h"

namespace larder::internal {

std::atomic<TestHook> g_test_hook{nullptr};

}  // namespace larder::internal
