// Operation sequences against a reference model. The input decodes to put /
// get / invalidate / invalidate_prefix / clear / advance-clock / get_or_load
// steps on a small cache (two stripes, few entries, a manual clock). After
// every step: a read returns nothing or the last value put for that key that
// has neither expired nor been invalidated; the bounds hold; stats add up.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include "larder/cache.h"

namespace {

struct Bytes {
  const uint8_t* p;
  size_t n;
  uint8_t Next() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  bool empty() const { return n == 0; }
};

struct ModelEntry {
  std::string value;
  int64_t expiry;  // 0: never
};

#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      __builtin_printf("fuzz_operations: check failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in{data, size};
  auto clock = std::make_shared<larder::ManualClock>();
  larder::Options o;
  o.capacity_entries = 2 + in.Next() % 12;
  o.capacity_bytes = 4096 + (in.Next() % 8) * 1024;
  o.stripes = 1 + in.Next() % 2;
  o.clock = clock;
  o.negative_ttl = std::chrono::nanoseconds(in.Next() % 2 ? 1000 : 0);
  std::unique_ptr<larder::Cache> cache;
  if (larder::Cache::Create(o, &cache) != larder::Status::kOk) return 0;

  // What may be read back: the last value put (or loaded) per key.
  std::map<std::string, ModelEntry> model;
  uint64_t lookups = 0, puts = 0;
  auto key_of = [](uint8_t b) { return "k" + std::to_string(b % 24); };
  auto check_read = [&](const std::string& key, larder::Status s, const std::string& got) {
    FUZZ_CHECK(s == larder::Status::kOk || s == larder::Status::kNotFound);
    if (s != larder::Status::kOk) return;
    auto it = model.find(key);
    FUZZ_CHECK(it != model.end());  // never a value that was invalidated or never put
    FUZZ_CHECK(it->second.value == got);
    FUZZ_CHECK(it->second.expiry == 0 || clock->NowNanos() < it->second.expiry);
  };

  while (!in.empty()) {
    const uint8_t op = in.Next() % 9;
    const std::string key = key_of(in.Next());
    switch (op) {
      case 0:
      case 1: {  // put
        const size_t len = in.Next() * (in.Next() % 4 == 0 ? 40 : 1);
        std::string value(len, static_cast<char>('a' + len % 26));
        const int64_t ttl = (in.Next() % 3 == 0) ? 0 : 1 + in.Next() * 100;
        larder::PutOptions p;
        p.ttl = std::chrono::nanoseconds(ttl);
        larder::Status s = cache->Put(key, value, p);
        if (s == larder::Status::kOk) {
          ++puts;
          model[key] = {value, ttl == 0 ? 0 : clock->NowNanos() + ttl};
        } else {
          FUZZ_CHECK(s == larder::Status::kValueTooLarge);
          model.erase(key);  // a failed put leaves no older value readable
        }
        break;
      }
      case 2: {  // get
        std::string got;
        ++lookups;
        check_read(key, cache->Get(key, &got), got);
        break;
      }
      case 3:  // invalidate
        cache->Invalidate(key);
        model.erase(key);
        break;
      case 4: {  // invalidate_prefix
        const std::string prefix = key.substr(0, 1 + in.Next() % key.size());
        cache->InvalidatePrefix(prefix);
        for (auto it = model.begin(); it != model.end();) {
          it = it->first.compare(0, prefix.size(), prefix) == 0 ? model.erase(it) : std::next(it);
        }
        break;
      }
      case 5:
        if (in.Next() % 8 == 0) {
          cache->Clear();
          model.clear();
        }
        break;
      case 6:
        clock->Advance(std::chrono::nanoseconds(in.Next() * 50));
        break;
      case 7: {  // get_or_load: the loader answers value, not found, or error
        const uint8_t outcome = in.Next() % 3;
        const std::string loaded = "loaded-" + key;
        ++lookups;
        larder::FetchResult r = cache->GetOrLoad(key, [&](std::string_view) {
          if (outcome == 0) return larder::LoadResult::Value(loaded, std::chrono::nanoseconds(500));
          if (outcome == 1) return larder::LoadResult::NotFound();
          return larder::LoadResult::Error("fuzz error");
        });
        if (r.source == larder::FetchSource::kLoaded) {
          if (outcome == 0) {
            FUZZ_CHECK(r.status == larder::Status::kOk && r.value.value() == loaded);
            model[key] = {loaded, clock->NowNanos() + 500};
          } else {
            FUZZ_CHECK(r.status ==
                       (outcome == 1 ? larder::Status::kNotFound : larder::Status::kLoadFailed));
            if (outcome == 1) model.erase(key);  // now known absent (maybe cached as such)
          }
        } else if (r.status == larder::Status::kOk) {
          check_read(key, r.status, std::string(r.value.value()));
        }
        break;
      }
      case 8: {  // pin
        ++lookups;
        larder::PinnedValue p = cache->Pin(key);
        check_read(key, p ? larder::Status::kOk : larder::Status::kNotFound,
                   std::string(p.value()));
        break;
      }
    }
    FUZZ_CHECK(cache->Size() <= o.capacity_entries);
    FUZZ_CHECK(cache->Charge() <= o.capacity_bytes);
  }
  larder::Stats s = cache->GetStats();
  FUZZ_CHECK(s.hits + s.misses + s.negative_hits + s.stale_hits == lookups);
  FUZZ_CHECK(s.puts >= puts);  // plus installed loads
  FUZZ_CHECK(s.entries == cache->Size());
  FUZZ_CHECK(s.entries <= o.capacity_entries && s.bytes <= o.capacity_bytes);
  return 0;
}
