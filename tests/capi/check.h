/* The C test suites' checks (capi_test.c, tier_test.c): a failed check is
 * reported with its place and marks the running test failed; the suite goes
 * on to its next check. One translation unit per suite, so the counters are
 * static. */
#ifndef LARDER_TESTS_CAPI_CHECK_H_
#define LARDER_TESTS_CAPI_CHECK_H_

#include <stdio.h>
#include <string.h>

#include "larder.h"

static int g_failed_checks = 0; /* over the whole suite */
static int g_test_failed = 0;   /* in the running test; the runner resets it */

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failed_checks;                                                       \
      g_test_failed = 1;                                                       \
    }                                                                          \
  } while (0)

#define CHECK_STATUS(expr, expected)                                                               \
  do {                                                                                             \
    larder_status s_ = (expr);                                                                     \
    if (s_ != (expected)) {                                                                        \
      fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", __FILE__, __LINE__, #expr, \
              s_, larder_strerror(s_), (expected), larder_strerror(expected));                     \
      ++g_failed_checks;                                                                           \
      g_test_failed = 1;                                                                           \
    }                                                                                              \
  } while (0)

/* A key literal as the (pointer, length) pair the C ABI takes. */
#define KEY(s) (s), strlen(s)

#endif /* LARDER_TESTS_CAPI_CHECK_H_ */
