// What the fuzz targets share: the input read as a stream of bytes, and a
// check that aborts (so libFuzzer keeps the input) naming what failed.
#ifndef LARDER_FUZZ_FUZZ_INPUT_H_
#define LARDER_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace larder::fuzz {

// Reads past the end give zeros, so every decoding step is total.
struct Bytes {
  const uint8_t* p;
  size_t n;
  uint8_t Next() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  uint64_t Next64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | Next();
    return v;
  }
  bool empty() const { return n == 0; }
};

}  // namespace larder::fuzz

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

#endif  // LARDER_FUZZ_FUZZ_INPUT_H_
