// Operation sequences against a reference model. The input decodes to put /
// get / invalidate / invalidate_prefix / clear / advance-clock / get_or_load /
// pin steps and bursts of gets or puts on a small cache (two stripes, few entries, a manual clock).
// After every step: a read returns nothing or the last value put for that key that has neither
// expired nor been invalidated; the bounds hold; stats add up.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "fuzz_input.h"
#include "larder/cache.h"

namespace {

using larder::fuzz::Bytes;

struct ModelEntry {
  std::string_view value;  // into Fill() or Loaded(), which outlive every input
  int64_t expiry;          // 0: never
};

// Put values are `len` copies of one letter: views into one static buffer per
// letter, so a put allocates nothing on this side and the model copies nothing.
constexpr size_t kMaxValue = 255 * 40;
std::string_view Fill(size_t len) {
  static const std::string* letters = [] {
    auto* l = new std::string[26];
    for (int i = 0; i < 26; ++i) l[i].assign(kMaxValue, static_cast<char>('a' + i));
    return l;
  }();
  return std::string_view(letters[len % 26]).substr(0, len);
}

// Keys k0..k23 and the value a loader gives each, made once.
constexpr int kKeys = 24;
const std::string& Key(int k) {
  static const std::string* keys = [] {
    auto* l = new std::string[kKeys];
    for (int i = 0; i < kKeys; ++i) l[i] = "k" + std::to_string(i);
    return l;
  }();
  return keys[k];
}
std::string_view Loaded(int k) {
  static const std::string* loaded = [] {
    auto* l = new std::string[kKeys];
    for (int i = 0; i < kKeys; ++i) l[i] = "loaded-" + Key(i);
    return l;
  }();
  return loaded[k];
}

// A TTL or clock step: 0 (no TTL), well below one timer-wheel tick (2^20 ns),
// or 1/16 to 16 times a level-0 tick, a level-1 bucket (64 ticks) or a
// level-2 bucket (4,096 ticks), so that the wheel reaps and cascades between
// levels as well as reads finding entries expired.
int64_t Duration(Bytes& in, bool zero_allowed) {
  const uint8_t kind = in.Next() % 6;
  const int64_t n = in.Next();
  if (kind == 0) return zero_allowed ? 0 : n * 50;
  if (kind <= 2) return 1 + n * 100;
  return (1 + n) << (16 + 6 * (kind - 3));
}

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

  // What may be read back: the last value put (or loaded) per key, by key
  // number (a flat array, not a map of strings built per step).
  std::optional<ModelEntry> model[kKeys];
  uint64_t lookups = 0, puts = 0;
  auto check_read = [&](int k, larder::Status s, std::string_view got) {
    FUZZ_CHECK(s == larder::Status::kOk || s == larder::Status::kNotFound);
    if (s != larder::Status::kOk) return;
    FUZZ_CHECK(model[k].has_value());  // never a value that was invalidated or never put
    FUZZ_CHECK(model[k]->value == got);
    FUZZ_CHECK(model[k]->expiry == 0 || clock->NowNanos() < model[k]->expiry);
  };

  // Entry and byte bounds: only puts and loads add entries, so the bounds
  // are checked after those, on the cache-wide totals (one load each; that
  // they equal what the stripes hold is checked once, at the end).
  auto check_bounds = [&] {
    FUZZ_CHECK(cache->Size() <= o.capacity_entries);
    FUZZ_CHECK(cache->Charge() <= o.capacity_bytes);
  };
  auto put = [&](int k, size_t len, int64_t ttl) {
    const std::string_view value = Fill(len);
    larder::PutOptions p;
    p.ttl = std::chrono::nanoseconds(ttl);
    larder::Status s = cache->Put(Key(k), value, p);
    if (s == larder::Status::kOk) {
      ++puts;
      model[k] = ModelEntry{value, ttl == 0 ? 0 : clock->NowNanos() + ttl};
    } else {
      FUZZ_CHECK(s == larder::Status::kValueTooLarge);
      model[k].reset();  // a failed put leaves no older value readable
    }
    check_bounds();
  };
  std::string got;  // reused: reads copy into it without a new allocation each time
  while (!in.empty()) {
    // Two steps repeat one action up to 72 or 40 times, so that short inputs
    // reach what takes long runs: a full access lane (64 reads), a reclaim
    // batch (32 removals), eviction churn.
    const uint8_t op = in.Next() % 11;
    const int k = in.Next() % kKeys;
    const std::string& key = Key(k);
    switch (op) {
      case 0:
      case 1: {  // put
        const size_t len = in.Next() * (in.Next() % 4 == 0 ? 40 : 1);
        put(k, len, Duration(in, /*zero_allowed=*/true));
        break;
      }
      case 2: {  // get
        ++lookups;
        const larder::Status s = cache->Get(key, &got);  // before `got` is viewed
        check_read(k, s, got);
        break;
      }
      case 3:  // invalidate
        cache->Invalidate(key);
        model[k].reset();
        break;
      case 4: {  // invalidate_prefix
        const std::string prefix = key.substr(0, 1 + in.Next() % key.size());
        cache->InvalidatePrefix(prefix);
        for (int j = 0; j < kKeys; ++j) {
          if (Key(j).compare(0, prefix.size(), prefix) == 0) model[j].reset();
        }
        break;
      }
      case 5:
        if (in.Next() % 8 == 0) {
          cache->Clear();
          for (auto& m : model) m.reset();
        }
        break;
      case 6:
        clock->Advance(std::chrono::nanoseconds(Duration(in, /*zero_allowed=*/false)));
        break;
      case 7: {  // get_or_load: the loader answers value, not found, or error
        const uint8_t outcome = in.Next() % 3;
        const std::string_view loaded = Loaded(k);
        ++lookups;
        larder::FetchResult r = cache->GetOrLoad(key, [&](std::string_view) {
          if (outcome == 0) {
            return larder::LoadResult::Value(std::string(loaded), std::chrono::nanoseconds(500));
          }
          if (outcome == 1) return larder::LoadResult::NotFound();
          return larder::LoadResult::Error("fuzz error");
        });
        if (r.source == larder::FetchSource::kLoaded) {
          if (outcome == 0) {
            FUZZ_CHECK(r.status == larder::Status::kOk && r.value.value() == loaded);
            model[k] = ModelEntry{loaded, clock->NowNanos() + 500};
          } else {
            FUZZ_CHECK(r.status ==
                       (outcome == 1 ? larder::Status::kNotFound : larder::Status::kLoadFailed));
            if (outcome == 1) model[k].reset();  // now known absent (maybe cached as such)
          }
        } else if (r.status == larder::Status::kOk) {
          check_read(k, r.status, r.value.value());
        }
        check_bounds();
        break;
      }
      case 8: {  // pin
        ++lookups;
        larder::PinnedValue p = cache->Pin(key);
        check_read(k, p ? larder::Status::kOk : larder::Status::kNotFound, p.value());
        break;
      }
      case 9: {  // a burst of reads of one key
        for (int n = 1 + in.Next() % 72; n > 0; --n) {
          ++lookups;
          const larder::Status s = cache->Get(key, &got);
          check_read(k, s, got);
        }
        break;
      }
      case 10: {  // a burst of puts, to keys k, k+1, ... in turn
        const size_t len = in.Next();
        const int64_t ttl = Duration(in, /*zero_allowed=*/true);
        for (int n = 1 + in.Next() % 40, j = k; n > 0; --n, j = (j + 1) % kKeys) put(j, len, ttl);
        break;
      }
    }
  }
  FUZZ_CHECK(cache->Size() <= o.capacity_entries);
  FUZZ_CHECK(cache->Charge() <= o.capacity_bytes);
  larder::Stats s = cache->GetStats();
  FUZZ_CHECK(s.hits + s.misses + s.negative_hits + s.stale_hits == lookups);
  FUZZ_CHECK(s.puts >= puts);  // plus installed loads
  FUZZ_CHECK(s.entries == cache->Size() && s.bytes == cache->Charge());
  FUZZ_CHECK(s.entries <= o.capacity_entries && s.bytes <= o.capacity_bytes);
  return 0;
}
