// The C ABI with hostile arguments: NULL pointers, zero and huge lengths,
// invalid option values, tiny buffers, too-small structs, use after close,
// double releases. Nothing may crash, leak or hit undefined behaviour,
// every call must answer a documented status code, and the calls larder.h
// says are refused (a NULL required output, a charge of 0) must be.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "larder.h"

namespace {

using larder::fuzz::Bytes;

void Check(larder_status s) {
  if (s < LARDER_OK || s > LARDER_IO_ERROR || larder_strerror(s) == nullptr) {
    __builtin_printf("fuzz_capi: undocumented status %d\n", s);
    std::abort();
  }
}

// A call the header says must be refused: LARDER_INVALID_ARGUMENT, or
// LARDER_CLOSED once the cache is closed (checked first).
void CheckRefused(larder_status s) {
  Check(s);
  if (s != LARDER_INVALID_ARGUMENT && s != LARDER_CLOSED) {
    __builtin_printf("fuzz_capi: a call larder.h refuses returned %d\n", s);
    std::abort();
  }
}

int Loader(void* user_data, const void* key, size_t key_size, larder_load_result* r) {
  const uint8_t mode = *static_cast<const uint8_t*>(user_data);
  switch (mode % 5) {
    case 0:
      return larder_load_result_set_value(r, key, key_size, 0);
    case 1:
      return larder_load_result_set_not_found(r);
    case 2:
      return larder_load_result_set_error(r, mode % 2 ? nullptr : "hostile");
    case 3:
      return 7;  // a failure code without a result
    default:
      return 0;  // no result at all
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in{data, size};
  // A buffer large enough for any (pointer, length) we pass with a pointer.
  static std::vector<char> big(LARDER_MAX_KEY_LENGTH + 16, 'x');
  auto bytes = [&](const void** p, size_t* n) {
    switch (in.Next() % 4) {
      case 0:
        *p = nullptr;
        *n = 0;
        break;
      case 1:
        *p = nullptr;
        *n = 1 + in.Next64() % (SIZE_MAX - 1);
        break;  // NULL, non-zero
      case 2:
        *p = big.data();
        *n = in.Next() % 8;
        break;
      default:
        *p = big.data();
        // Just over the key limit, or up to 1 KiB: past the 240 bytes where
        // the key hash takes its long-input path, without hashing and
        // copying 16 KiB keys and values that cover nothing more.
        *n = (in.Next() % 2) ? LARDER_MAX_KEY_LENGTH + 1 + in.Next() % 8 : in.Next() * 4;
        break;
    }
  };

  larder_options* o = larder_options_new();
  if (o == nullptr) return 0;
  const uint8_t setters = in.Next() % 6;
  for (uint8_t i = 0; i < setters; ++i) {
    const int64_t v = static_cast<int64_t>(in.Next64());
    switch (in.Next() % 10) {
      case 0:
        Check(larder_options_set_capacity_bytes(o, static_cast<uint64_t>(v) % (1u << 24)));
        break;
      case 1:
        Check(larder_options_set_capacity_entries(o, static_cast<uint64_t>(v) % 64));
        break;
      case 2: {
        // Any value goes to the setter, which must refuse what is over the
        // limit. A cache is built with at most 4 stripes (0, auto, included):
        // each stripe costs memory, and creation, every stats call, clear and
        // prefix walk visit them all, so up to 65,536 of them made inputs
        // hundreds of times slower while running the same code as 4 do.
        const uint32_t stripes = static_cast<uint32_t>(v);
        Check(larder_options_set_stripes(o, stripes));
        if (stripes > 4 && stripes <= 65536) Check(larder_options_set_stripes(o, stripes % 5));
        break;
      }
      case 3:
        Check(larder_options_set_default_ttl(o, v));
        break;
      case 4:
        Check(larder_options_set_negative_ttl(o, v));
        break;
      case 5:
        Check(larder_options_set_refresh_beta(o, static_cast<double>(v) / 1e18));
        break;
      case 6:
        Check(larder_options_set_stale_while_revalidate(o, v));
        break;
      case 7:
        Check(larder_options_set_error_ttl(o, v));
        break;
      case 8:
        Check(larder_options_set_refresh_threads(o, static_cast<uint32_t>(v)));
        break;
      default:
        Check(larder_options_set_capacity_bytes(nullptr, 1));
        break;
    }
  }
  Check(larder_options_set_capacity_bytes(o, 1 + in.Next() * 256));
  larder_cache* c = nullptr;
  larder_status created = larder_cache_create(in.Next() % 16 ? o : nullptr, &c);
  Check(created);
  larder_options_free(o);
  larder_options_free(o);  // double free: detected, ignored
  if (created != LARDER_OK) return 0;

  uint8_t loader_mode = 0;
  while (in.n > 0) {
    const void* k;
    size_t kn;
    const void* v;
    size_t vn;
    bytes(&k, &kn);
    bytes(&v, &vn);
    char small[4];
    size_t out_size = 0;
    switch (in.Next() % 12) {
      case 0:
        Check(larder_put(c, k, kn, v, vn, static_cast<int64_t>(in.Next64())));
        break;
      case 1:
        Check(larder_get(c, k, kn, in.Next() % 2 ? small : nullptr, in.Next() % 5,
                         in.Next() % 4 ? &out_size : nullptr));
        break;
      case 2: {
        void* copy = nullptr;
        larder_status s = larder_get_alloc(c, k, kn, &copy, &out_size);
        Check(s);
        larder_free(copy);
        break;
      }
      case 3: {
        larder_value pin = LARDER_VALUE_INIT;
        if (in.Next() % 5 == 0) pin.struct_size = in.Next();
        Check(larder_get_pinned(c, k, kn, &pin));
        Check(larder_value_release(&pin));
        Check(larder_value_release(&pin));  // double release: a no-op
        break;
      }
      case 4:
        Check(larder_contains(c, k, kn));
        break;
      case 5:
        Check(larder_invalidate(c, k, kn));
        break;
      case 6:
        Check(larder_invalidate_prefix(c, k, kn, nullptr));
        break;
      case 7: {
        larder_stats stats;
        stats.struct_size = in.Next() % (sizeof stats + 8);
        Check(larder_cache_stats(c, in.Next() % 8 ? &stats : nullptr));
        break;
      }
      case 8: {
        loader_mode = in.Next();
        larder_value pin = LARDER_VALUE_INIT;
        larder_fetch_info info;
        info.struct_size = in.Next() % (sizeof info + 1);
        Check(larder_get_or_load(c, k, kn, in.Next() % 4 ? Loader : nullptr, &loader_mode,
                                 static_cast<int64_t>(in.Next64() % 1000), &pin,
                                 in.Next() % 2 ? &info : nullptr));
        Check(larder_value_release(&pin));
        break;
      }
      case 9: {
        int kind = -1;
        larder_lease* lease = nullptr;
        larder_ticket* ticket = nullptr;
        larder_value pin = LARDER_VALUE_INIT;
        Check(larder_fetch_begin(c, k, kn, &kind, &pin, nullptr, &lease, &ticket));
        Check(larder_value_release(&pin));
        if (lease != nullptr) {
          switch (in.Next() % 4) {
            case 0:
              Check(larder_lease_complete_value(lease, v, vn, 0, nullptr));
              break;
            case 1:
              Check(larder_lease_complete_not_found(lease));
              break;
            case 2:
              Check(larder_lease_complete_error(lease, nullptr));
              break;
            default:
              larder_lease_abandon(lease);
              break;
          }
        }
        if (ticket != nullptr) {
          Check(larder_ticket_wait(ticket, 1000, &pin, nullptr));
          Check(larder_value_release(&pin));
          CheckRefused(larder_ticket_wait(ticket, 1000, nullptr, nullptr));  // out is required
          larder_ticket_free(ticket);
        }
        break;
      }
      case 10:
        Check(larder_clear(in.Next() % 2 ? c : nullptr));
        break;
      default: {
        const uint8_t what = in.Next() % 16;
        if (what == 0) {
          Check(larder_cache_close(c));  // later calls: LARDER_CLOSED
        } else if (what == 1) {
          // Charge 0 is no charge: refused (larder_put computes one).
          CheckRefused(larder_put_charged(c, k, kn, v, vn, 0, 0));
        } else if (what == 2) {
          // The value out of larder_get_or_load is required: refused, nothing loaded.
          CheckRefused(larder_get_or_load(c, k, kn, Loader, &loader_mode, 0, nullptr, nullptr));
        } else if (what == 3) {
          Check(larder_put_charged(c, k, kn, v, vn, 0, 1 + 3 * static_cast<uint64_t>(vn)));
        }
        break;
      }
    }
  }
  larder_cache_destroy(c);
  return 0;
}
