// The Node.js addon: raw N-API over the C ABI (larder.h), linked with the
// static library (its private jemalloc included). index.js wraps it in the
// lru-cache-shaped LarderCache class; this file encodes keys and values,
// keeps the registry of shared caches, and delivers removals and loads to
// JavaScript. docs: ../README.md.
//
// Keys are stored with a one-byte kind so that 1, "1" and Buffer.from("1")
// stay three keys:
//   's' + the string in UTF-8 (WTF-8 for lone surrogates, so every string
//       is kept exactly and a string prefix is a byte prefix)
//   'n' + the number as 8 bytes (0 and -0 one key, every NaN one key:
//       SameValueZero, as a Map)
//   'b' + the bytes of a Buffer or Uint8Array
// Values carry a one-byte tag:
//   'a' ASCII string ('s' other UTF-8, 'u' UTF-16LE for lone surrogates),
//   'd' number (8 bytes), 't' true, 'f' false,
//   'b' Buffer bytes, 'v' v8.serialize() output (everything else).
// A tag with bit 0x80 set is followed by 8 bytes: the entry's own TTL in ms
// (kept only for caches that restart TTLs on reads, updateAgeOnGet/Has).
//
// Hot reads cross N-API once: get() copies the value into this isolate's
// scratch buffer (no allocation) and returns strings, numbers and booleans
// made here; other values it leaves in the scratch buffer for index.js
// (returning null), or returns as a new Buffer when larger than the scratch.
//
// Removals: the engine calls its listener on the thread that made the
// change, inside the call. The addon notes which handle is calling
// (thread-local), queues that handle's removals in its isolate, and index.js
// drains them when the call returns (dispose/disposeAfter run synchronously,
// after the change, as lru-cache's do). A removal caused by another worker's
// call goes to that worker's handle.
#include <node_api.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "larder.h"

namespace {

// ---- constants shared with index.js ----

constexpr uint8_t kTagTtl = 0x80;  // the value carries its own TTL (8 bytes, ms)
constexpr size_t kScratchBytes = 64 * 1024;
// state (Int32Array / Float64Array over one 64-byte ArrayBuffer):
constexpr int kStLength = 0;     // i32: bytes of the tagged value in the scratch buffer
constexpr int kStEvents = 1;     // i32: removals waiting for drain()
constexpr int kStKind = 2;       // i32: fetch: 0 done, 1 lead, 2 wait; set: insert kind
constexpr int kStInfo = 3;       // i32: read info bits: 1 stale, 2 expires, 4 refresh due
constexpr int kStRemaining = 2;  // f64 index: remaining TTL in ms
constexpr int kStEntryTtl = 3;   // f64 index: the entry's own TTL (ms) from its header, or -1
// Insert kinds (lru-cache's onInsert reasons, and 'miss').
constexpr int kInsertAdd = 0, kInsertReplace = 1, kInsertUpdate = 2, kInsertMiss = 3;
// Removal reasons: the engine's causes (0 delete, 1 set, 2 expire, 3
// evict), then the ones index.js asks for.
constexpr int kReasonSet = LARDER_REMOVED_REPLACED;
constexpr int kReasonFetch = 4;
// Value kinds index.js passes to set()/complete()/writeBehind(); 0: a
// string, number or boolean, encoded here.
constexpr int kValueBuffer = 1;      // a Buffer, kept as bytes
constexpr int kValueSerialized = 2;  // v8.serialize() output

// ---- small helpers ----

napi_value Undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value Null(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

napi_value Bool(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

napi_value Number(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

napi_value MakeError(napi_env env, larder_status status, const char* text) {
  napi_value message, code, error;
  napi_create_string_utf8(env, text != nullptr && *text ? text : larder_strerror(status),
                          NAPI_AUTO_LENGTH, &message);
  napi_create_int32(env, status, &code);
  napi_create_error(env, nullptr, message, &error);
  napi_set_named_property(env, error, "larderCode", code);
  return error;
}

// index.js maps `larderCode` to its error classes (docs/errors.md).
napi_value Throw(napi_env env, larder_status status, const char* text = nullptr) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw(env, MakeError(env, status, text));
  return nullptr;
}

napi_value ThrowType(napi_env env, const char* text) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_type_error(env, "LARDER_TYPE", text);
  return nullptr;
}

double NumberOr(napi_env env, napi_value obj, const char* name, double fallback) {
  napi_value v;
  napi_valuetype type;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return fallback;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number) return fallback;
  double d = fallback;
  napi_get_value_double(env, v, &d);
  return d;
}

int64_t MsToNs(double ms) {
  if (!(ms > 0)) return 0;
  if (ms >= 9.2e12) return INT64_MAX;  // ~292 years: "for ever"
  return static_cast<int64_t>(std::llround(ms * 1e6));
}

// Bytes with room for small keys and values on the stack.
struct Bytes {
  char small[512];
  std::string big;
  char* data = small;
  size_t size = 0;
  char* Reserve(size_t n) {
    if (n > sizeof small) {
      big.resize(n);
      data = big.data();
    } else {
      data = small;
    }
    return data;
  }
};

// ---- WTF-8: UTF-8 that also encodes lone surrogates (3 bytes, ED A0..BF) ----

void AppendWtf8(const char16_t* s, size_t n, std::string* out) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t c = s[i];
    if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
      c = 0x10000 + ((c - 0xD800) << 10) + (s[i + 1] - 0xDC00);
      ++i;
    }
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (c >> 6)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (c >> 12)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (c >> 18)));
      out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
}

bool HasEncodedSurrogate(const char* p, size_t n) {
  for (size_t i = 0; i + 1 < n; ++i) {
    if (static_cast<uint8_t>(p[i]) == 0xED && static_cast<uint8_t>(p[i + 1]) >= 0xA0) return true;
  }
  return false;
}

// WTF-8 (or plain UTF-8) to UTF-16.
std::u16string Wtf8ToUtf16(const char* p, size_t n) {
  std::u16string out;
  out.reserve(n);
  for (size_t i = 0; i < n;) {
    uint8_t b = static_cast<uint8_t>(p[i]);
    uint32_t c;
    size_t len;
    if (b < 0x80) {
      c = b, len = 1;
    } else if ((b >> 5) == 6 && i + 1 < n) {
      c = ((b & 0x1F) << 6) | (p[i + 1] & 0x3F), len = 2;
    } else if ((b >> 4) == 14 && i + 2 < n) {
      c = ((b & 0x0F) << 12) | ((p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F), len = 3;
    } else if ((b >> 3) == 30 && i + 3 < n) {
      c = ((b & 0x07) << 18) | ((p[i + 1] & 0x3F) << 12) | ((p[i + 2] & 0x3F) << 6) |
          (p[i + 3] & 0x3F);
      len = 4;
    } else {
      c = 0xFFFD, len = 1;
    }
    i += len;
    if (c >= 0x10000) {
      c -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (c >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (c & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(c));
    }
  }
  return out;
}

// Writes a JS string as WTF-8 (UTF-8 that also carries lone surrogates,
// so every string is kept exactly) at out->data + offset, growing as needed.
// Reads the string's UTF-16 code units (V8 copies them with no encoding
// work) and narrows them here: ASCII, the common case, byte for byte.
// *exact is true when the result is plain UTF-8 (no lone surrogate).
bool StringUtf8(napi_env env, napi_value v, Bytes* out, size_t offset, bool* exact) {
  char16_t units[256];
  size_t len = 0;
  if (napi_get_value_string_utf16(env, v, units, sizeof units / 2, &len) != napi_ok) return false;
  std::u16string big;
  const char16_t* u = units;
  if (len + 1 >= sizeof units / 2) {  // perhaps cut short: ask for the length
    napi_get_value_string_utf16(env, v, nullptr, 0, &len);
    big.resize(len);
    napi_get_value_string_utf16(env, v, big.data(), len + 1, &len);
    u = big.data();
  }
  // At most 3 bytes per code unit (a pair, 2 units, makes 4 bytes).
  char* p = out->Reserve(offset + 3 * len) + offset;
  size_t i = 0;
  for (; i < len && u[i] < 0x80; ++i) p[i] = static_cast<char>(u[i]);
  *exact = true;
  if (i == len) {
    out->size = offset + len;
    return true;
  }
  std::string rest;
  AppendWtf8(u + i, len - i, &rest);
  std::memcpy(p + i, rest.data(), rest.size());
  out->size = offset + i + rest.size();
  *exact = !HasEncodedSurrogate(rest.data(), rest.size());
  return true;
}

std::u16string StringUtf16(napi_env env, napi_value v) {
  size_t len = 0;
  napi_get_value_string_utf16(env, v, nullptr, 0, &len);
  std::u16string s(len, u'\0');
  napi_get_value_string_utf16(env, v, s.data(), len + 1, &len);
  return s;
}

bool HasLoneSurrogate(const std::u16string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    char16_t c = s[i];
    if (c >= 0xD800 && c <= 0xDBFF) {
      if (i + 1 < s.size() && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF) {
        ++i;
        continue;
      }
      return true;
    }
    if (c >= 0xDC00 && c <= 0xDFFF) return true;
  }
  return false;
}

bool Uint8View(napi_env env, napi_value v, const char** data, size_t* size) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) return false;
  napi_typedarray_type type;
  void* p = nullptr;
  napi_get_typedarray_info(env, v, &type, size, &p, nullptr, nullptr);
  if (type != napi_uint8_array) return false;
  *data = static_cast<const char*>(p);
  return true;
}

// ---- keys ----

// The key's stored form into *out. Throws a TypeError (returns false) for a
// key that is not a string, number, Buffer or Uint8Array.
bool EncodeKey(napi_env env, napi_value v, Bytes* out) {
  bool exact = true;
  if (StringUtf8(env, v, out, 1, &exact)) {  // strings first: no napi_typeof
    out->data[0] = 's';
    return true;
  }
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if (type == napi_number) {
    double d;
    napi_get_value_double(env, v, &d);
    if (d == 0) d = 0;           // -0 and 0: one key
    if (std::isnan(d)) d = NAN;  // every NaN: one key
    out->data = out->small;
    out->data[0] = 'n';
    std::memcpy(out->data + 1, &d, 8);
    out->size = 9;
    return true;
  }
  const char* p;
  size_t n;
  if (type == napi_object && Uint8View(env, v, &p, &n)) {
    out->Reserve(n + 1);
    out->data[0] = 'b';
    if (n) std::memcpy(out->data + 1, p, n);
    out->size = n + 1;
    return true;
  }
  ThrowType(env, "a key must be a string, a number or a Buffer");
  return false;
}

napi_value DecodeKey(napi_env env, const char* p, size_t n) {
  napi_value out = nullptr;
  if (n >= 1 && p[0] == 'n' && n == 9) {
    double d;
    std::memcpy(&d, p + 1, 8);
    return Number(env, d);
  }
  if (n >= 1 && p[0] == 'b') {
    void* copy;
    napi_create_buffer_copy(env, n - 1, p + 1, &copy, &out);
    return out;
  }
  if (n >= 1 && p[0] == 's') {
    if (HasEncodedSurrogate(p + 1, n - 1)) {
      std::u16string u = Wtf8ToUtf16(p + 1, n - 1);
      napi_create_string_utf16(env, u.data(), u.size(), &out);
    } else {
      napi_create_string_utf8(env, p + 1, n - 1, &out);
    }
    return out;
  }
  napi_create_buffer_copy(env, n, p, nullptr, &out);  // not ours: raw bytes
  return out;
}

// ---- values ----

// The value's stored form (tag, optional TTL header, payload) into *out.
bool EncodeValue(napi_env env, napi_value v, int kind, double own_ttl_ms, Bytes* out) {
  const size_t header = own_ttl_ms >= 0 ? 9 : 1;
  uint8_t tag = 0;
  if (kind == kValueBuffer || kind == kValueSerialized) {
    const char* p;
    size_t n;
    if (!Uint8View(env, v, &p, &n)) return ThrowType(env, "internal: expected bytes"), false;
    out->Reserve(header + n);
    if (n) std::memcpy(out->data + header, p, n);
    out->size = header + n;
    tag = kind == kValueBuffer ? 'b' : 'v';
  } else {
    bool exact = true;
    if (StringUtf8(env, v, out, header, &exact)) {
      tag = 'a';
      const uint8_t* s = reinterpret_cast<const uint8_t*>(out->data + header);
      for (size_t i = 0, n = out->size - header; i < n; ++i) {
        if (s[i] >= 0x80) {
          tag = 's';
          break;
        }
      }
      if (!exact) {
        std::u16string u = StringUtf16(env, v);
        if (HasLoneSurrogate(u)) {  // kept exactly, as UTF-16
          out->Reserve(header + 2 * u.size());
          std::memcpy(out->data + header, u.data(), 2 * u.size());
          out->size = header + 2 * u.size();
          tag = 'u';
        }
      }
    } else {
      napi_valuetype type;
      napi_typeof(env, v, &type);
      out->data = out->small;
      if (type == napi_number) {
        double d;
        napi_get_value_double(env, v, &d);
        std::memcpy(out->data + header, &d, 8);
        out->size = header + 8;
        tag = 'd';
      } else if (type == napi_boolean) {
        bool b;
        napi_get_value_bool(env, v, &b);
        out->size = header;
        tag = b ? 't' : 'f';
      } else {
        return ThrowType(env, "internal: unexpected value kind"), false;
      }
    }
  }
  out->data[0] = static_cast<char>(own_ttl_ms >= 0 ? (tag | kTagTtl) : tag);
  if (own_ttl_ms >= 0) std::memcpy(out->data + 1, &own_ttl_ms, 8);
  return true;
}

size_t HeaderSize(const char* p) { return (static_cast<uint8_t>(p[0]) & kTagTtl) ? 9 : 1; }

// Same value, ignoring the TTL header.
bool SameValue(const char* a, size_t an, const char* b, size_t bn) {
  if (an == 0 || bn == 0) return false;
  if ((a[0] & 0x7F) != (b[0] & 0x7F)) return false;
  const size_t ah = HeaderSize(a), bh = HeaderSize(b);
  return an - ah == bn - bh && std::memcmp(a + ah, b + bh, an - ah) == 0;
}

// The strings, numbers and booleans JavaScript gets directly; nullptr for
// the tags index.js decodes.
napi_value FastValue(napi_env env, const char* p, size_t n) {
  if (n == 0) return nullptr;
  const size_t h = HeaderSize(p);
  if (n < h) return nullptr;
  const char* d = p + h;
  const size_t len = n - h;
  napi_value out = nullptr;
  switch (p[0] & 0x7F) {
    case 'a':
      napi_create_string_latin1(env, d, len, &out);
      break;
    case 's':
      napi_create_string_utf8(env, d, len, &out);
      break;
    case 'u': {
      std::u16string u(len / 2, u'\0');
      std::memcpy(u.data(), d, u.size() * 2);
      napi_create_string_utf16(env, u.data(), u.size(), &out);
      break;
    }
    case 'd':
      if (len == 8) {
        double v;
        std::memcpy(&v, d, 8);
        out = Number(env, v);
      }
      break;
    case 't':
      out = Bool(env, true);
      break;
    case 'f':
      out = Bool(env, false);
      break;
    default:
      break;
  }
  return out;
}

napi_value TaggedBuffer(napi_env env, const char* p, size_t n) {
  napi_value out;
  napi_create_buffer_copy(env, n, p, nullptr, &out);
  return out;
}

// ---- per-isolate state ----

struct Handle;
struct TierHandle;

struct Event {
  std::string key;
  std::string value;
  int reason;
};

struct EnvData {
  napi_env env = nullptr;
  napi_ref scratch_ref = nullptr;
  char* scratch = nullptr;
  napi_ref state_ref = nullptr;
  int32_t* i32 = nullptr;
  double* f64 = nullptr;
  std::vector<Event> events;
  std::set<Handle*> handles;    // open handles of this isolate (closed at its teardown)
  std::set<TierHandle*> tiers;  // open TieredCaches of this isolate (likewise)
};

void SetInfo(EnvData* d, const larder_entry_info& info) {
  d->i32[kStInfo] = (info.stale ? 1 : 0) | (info.expires ? 2 : 0) | (info.refresh_due ? 4 : 0);
  d->f64[kStRemaining] = info.expires ? static_cast<double>(info.remaining_ns) / 1e6 : 0;
}

// A value for JavaScript from (tag + payload) bytes: fast kinds made here,
// the rest in the scratch buffer (null), or a new tagged Buffer when large.
napi_value ReturnValue(napi_env env, EnvData* d, const char* p, size_t n) {
  d->f64[kStEntryTtl] = -1;
  if (n >= 9 && (static_cast<uint8_t>(p[0]) & kTagTtl)) std::memcpy(&d->f64[kStEntryTtl], p + 1, 8);
  if (napi_value fast = FastValue(env, p, n)) return fast;
  if (n <= kScratchBytes) {
    if (p != d->scratch) std::memcpy(d->scratch, p, n);
    d->i32[kStLength] = static_cast<int32_t>(n);
    return Null(env);
  }
  return TaggedBuffer(env, p, n);
}

// ---- the registry of native caches, shared by worker_threads ----

struct Shared {
  uint64_t id = 0;
  larder_cache* cache = nullptr;
  int refs = 0;  // handles and unfinished leases; guarded by g_registry_mu
  bool manual_clock = false;
  std::atomic<int64_t> now_ns{0};  // the clock when manual (lru-cache's `perf`)
  struct WbState* wbs = nullptr;   // the write-behind queue, while open (guarded by g_registry_mu)
};

void DestroyWriteBehind(struct WbState* w);

std::mutex g_registry_mu;
std::unordered_map<uint64_t, Shared*>& Registry() {
  static auto* registry = new std::unordered_map<uint64_t, Shared*>();  // outlives every isolate
  return *registry;
}
uint64_t g_next_id = 1;

void Retain(Shared* s) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  ++s->refs;
}

void Release(Shared* s) {
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    if (--s->refs > 0) return;
    Registry().erase(s->id);
  }
  if (s->wbs != nullptr) DestroyWriteBehind(s->wbs);  // before its cache
  larder_cache_destroy(s->cache);
  delete s;
}

int64_t ManualClock(void* user_data) {
  return static_cast<Shared*>(user_data)->now_ns.load(std::memory_order_acquire);
}

// ---- the calling context: whose removals these are ----

struct CallContext {
  Shared* shared = nullptr;
  EnvData* env = nullptr;
  bool collect = false;  // the handle has a dispose/disposeAfter
  // A set: its key and value, to tell replace from update.
  const char* set_key = nullptr;
  size_t set_key_size = 0;
  const char* set_value = nullptr;
  size_t set_value_size = 0;
  bool no_dispose_on_set = false;
  bool replaced = false;
  bool same = false;
  // Removals of this key are reported with this reason instead (an
  // expired entry deleted by a read, a failed fetch, pop()).
  const char* override_key = nullptr;
  size_t override_key_size = 0;
  int override_reason = -1;
};
thread_local CallContext* t_call = nullptr;

void OnRemoval(void* user_data, const void* key, size_t key_size, const void* value,
               size_t value_size, int cause) {
  CallContext* c = t_call;
  if (c == nullptr || c->shared != user_data) return;  // not a call of one of our handles
  const char* k = static_cast<const char*>(key);
  const char* v = static_cast<const char*>(value);
  if (cause == LARDER_REMOVED_REPLACED && c->set_key != nullptr && key_size == c->set_key_size &&
      std::memcmp(k, c->set_key, key_size) == 0) {
    c->replaced = true;
    if (SameValue(v, value_size, c->set_value, c->set_value_size)) {
      c->same = true;  // lru-cache's "update": the same value, nothing disposed
      return;
    }
    if (c->no_dispose_on_set) return;
  }
  if (!c->collect) return;
  int reason = cause;
  if (c->override_reason >= 0 && key_size == c->override_key_size &&
      std::memcmp(k, c->override_key, key_size) == 0 &&
      (cause == LARDER_REMOVED_EXPLICIT || cause == LARDER_REMOVED_REPLACED)) {
    reason = c->override_reason;
  }
  try {
    c->env->events.push_back({std::string(k, key_size), std::string(v, value_size), reason});
  } catch (...) {
    // Out of memory: the removal stands; only its notification is lost.
  }
}

// ---- handles: one per LarderCache object ----

struct Handle {
  Shared* shared = nullptr;
  EnvData* env = nullptr;
  bool closed = false;
  bool collect = false;       // dispose or disposeAfter given
  double max_entry_size = 0;  // 0: no per-entry limit beyond the engine's
  bool owns_wb = false;
};

void CloseHandle(Handle* h);

// Sets the calling context for one engine call; publishes the removal count.
class Call {
 public:
  explicit Call(Handle* h) : prev_(t_call) {
    ctx_.shared = h->shared;
    ctx_.env = h->env;
    ctx_.collect = h->collect;
    t_call = &ctx_;
  }
  ~Call() {
    t_call = prev_;
    ctx_.env->i32[kStEvents] = static_cast<int32_t>(ctx_.env->events.size());
  }
  CallContext& ctx() { return ctx_; }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

 private:
  CallContext ctx_;
  CallContext* prev_;
};

EnvData* GetEnvData(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<EnvData*>(data);
}

// Unpacks a call: the handle is the function's data. Throws Closed for a
// closed handle.
template <size_t N>
Handle* Unpack(napi_env env, napi_callback_info info, napi_value (&argv)[N], size_t* argc,
               bool open = true) {
  *argc = N;
  void* data = nullptr;
  napi_get_cb_info(env, info, argc, argv, nullptr, &data);
  for (size_t i = *argc; i < N; ++i) argv[i] = Undefined(env);
  Handle* h = static_cast<Handle*>(data);
  if (open && h->closed) {
    Throw(env, LARDER_CLOSED, "this cache handle is closed");
    return nullptr;
  }
  return h;
}

#define UNPACK(n)                             \
  napi_value argv[n];                         \
  size_t argc;                                \
  Handle* h = Unpack(env, info, argv, &argc); \
  if (h == nullptr) return nullptr;           \
  larder_cache* cache = h->shared->cache;     \
  (void)cache;                                \
  (void)argc

// get(key) -> value | null (in the scratch buffer) | undefined
napi_value Get(napi_env env, napi_callback_info info) {
  UNPACK(1);
  Bytes key;
  if (!EncodeKey(env, argv[0], &key)) return nullptr;
  EnvData* d = h->env;
  size_t size = 0;
  larder_status s = larder_get(cache, key.data, key.size, d->scratch, kScratchBytes, &size);
  if (s == LARDER_OK) return ReturnValue(env, d, d->scratch, size);
  if (s == LARDER_NOT_FOUND) return Undefined(env);
  if (s == LARDER_BUFFER_TOO_SMALL) {
    larder_value v = LARDER_VALUE_INIT;
    s = larder_get_pinned(cache, key.data, key.size, &v);
    if (s == LARDER_NOT_FOUND) return Undefined(env);
    if (s != LARDER_OK) return Throw(env, s);
    napi_value out = ReturnValue(env, d, static_cast<const char*>(v.data), v.size);
    larder_value_release(&v);
    return out;
  }
  return Throw(env, s);
}

// read(key, flags) -> as get; the entry's info in the state array.
napi_value Read(napi_env env, napi_callback_info info) {
  UNPACK(2);
  Bytes key;
  if (!EncodeKey(env, argv[0], &key)) return nullptr;
  uint32_t flags = 0;
  napi_get_value_uint32(env, argv[1], &flags);
  EnvData* d = h->env;
  larder_entry_info ei;
  std::memset(&ei, 0, sizeof ei);
  ei.struct_size = sizeof ei;
  size_t size = 0;
  larder_status s =
      larder_read(cache, key.data, key.size, flags, d->scratch, kScratchBytes, &size, &ei);
  SetInfo(d, ei);
  if (s == LARDER_OK) return ReturnValue(env, d, d->scratch, size);
  if (s == LARDER_NOT_FOUND) return Undefined(env);
  if (s == LARDER_BUFFER_TOO_SMALL) {
    std::string big(size, '\0');
    s = larder_read(cache, key.data, key.size, flags | LARDER_READ_PEEK, big.data(), size, &size,
                    &ei);
    if (s == LARDER_NOT_FOUND || s == LARDER_BUFFER_TOO_SMALL) return Undefined(env);  // raced
    if (s != LARDER_OK) return Throw(env, s);
    return ReturnValue(env, d, big.data(), size);
  }
  return Throw(env, s);
}

// set(key, value, ttlMs, kind, size, flags, ownTtlMs) -> insert kind
// flags: 1 noDisposeOnSet, 2 noUpdateTTL
napi_value SetValue(napi_env env, napi_callback_info info) {
  UNPACK(7);
  Bytes key, value;
  if (!EncodeKey(env, argv[0], &key)) return nullptr;
  double ttl = 0, size = 0, own_ttl = -1;
  int32_t kind = 0, flags = 0;
  napi_get_value_double(env, argv[2], &ttl);
  napi_get_value_int32(env, argv[3], &kind);
  napi_get_value_double(env, argv[4], &size);
  napi_get_value_int32(env, argv[5], &flags);
  napi_get_value_double(env, argv[6], &own_ttl);
  if (!EncodeValue(env, argv[1], kind, own_ttl, &value)) return nullptr;
  int64_t ttl_ns = MsToNs(ttl);
  if (flags & 2) {  // noUpdateTTL: an existing live entry keeps its expiry
    larder_entry_info ei;
    std::memset(&ei, 0, sizeof ei);
    ei.struct_size = sizeof ei;
    size_t n = 0;
    larder_status s = larder_read(cache, key.data, key.size, LARDER_READ_PEEK, nullptr, 0, &n, &ei);
    if ((s == LARDER_OK || s == LARDER_BUFFER_TOO_SMALL) && !ei.stale) {
      ttl_ns = ei.expires ? std::max<int64_t>(1, ei.remaining_ns) : INT64_MAX;
    }
  }
  Call call(h);
  CallContext& c = call.ctx();
  c.set_key = key.data;
  c.set_key_size = key.size;
  c.set_value = value.data;
  c.set_value_size = value.size;
  c.no_dispose_on_set = (flags & 1) != 0;
  const double weight = size > 0 ? size : static_cast<double>(key.size + value.size);
  larder_status s;
  if (h->max_entry_size > 0 && weight > h->max_entry_size) {
    // lru-cache: too big to cache; any older value goes (reason 'set').
    c.override_key = key.data;
    c.override_key_size = key.size;
    c.override_reason = kReasonSet;
    s = larder_invalidate(cache, key.data, key.size);
    h->env->i32[kStKind] = kInsertMiss;
    return Number(env, kInsertMiss);
  }
  const int64_t put_ttl = ttl_ns == INT64_MAX ? 0 : ttl_ns;
  // A charge of 0 is refused (larder.h): no size means the computed charge.
  s = size > 0 ? larder_put_charged(cache, key.data, key.size, value.data, value.size, put_ttl,
                                    static_cast<uint64_t>(std::ceil(size)))
               : larder_put(cache, key.data, key.size, value.data, value.size, put_ttl);
  // A TTL "for ever" on a cache with a default TTL: the engine has no way to
  // say it per entry, so the entry takes the longest TTL it accepts.
  if (s == LARDER_VALUE_TOO_LARGE) return Number(env, kInsertMiss);  // the old value is gone
  if (s != LARDER_OK) return Throw(env, s);
  const int insert = c.same ? kInsertUpdate : c.replaced ? kInsertReplace : kInsertAdd;
  return Number(env, insert);
}

// has(key) -> bool
napi_value Has(napi_env env, napi_callback_info info) {
  UNPACK(1);
  Bytes key;
  if (!EncodeKey(env, argv[0], &key)) return nullptr;
  larder_status s = larder_contains(cache, key.data, key.size);
  if (s != LARDER_OK && s != LARDER_NOT_FOUND) return Throw(env, s);
  return Bool(env, s == LARDER_OK);
}

// del(key, reason) -> bool   (reason: -1, or what to report instead of 'delete')
napi_value Delete(napi_env env, napi_callback_info info) {
  UNPACK(2);
  Bytes key;
  if (!EncodeKey(env, argv[0], &key)) return nullptr;
  int32_t reason = -1;
  napi_get_value_int32(env, argv[1], &reason);
  Call call(h);
  if (reason >= 0) {
    call.ctx().override_key = key.data;
    call.ctx().override_key_size = key.size;
    call.ctx().override_reason = reason;
  }
  larder_status s = larder_invalidate(cache, key.data, key.size);
  if (s != LARDER_OK && s != LARDER_NOT_FOUND) return Throw(env, s);
  return Bool(env, s == LARDER_OK);
}

// touch(key, ttlMs) -> bool
napi_value Touch(napi_env env, napi_callback_info info) {
  UNPACK(2);
  Bytes key;
  if (!EncodeKey(env, argv[0], &key)) return nullptr;
  double ttl = 0;
  napi_get_value_double(env, argv[1], &ttl);
  Call call(h);
  larder_status s =
      larder_touch(cache, key.data, key.size, MsToNs(ttl) == INT64_MAX ? 0 : MsToNs(ttl));
  if (s != LARDER_OK && s != LARDER_NOT_FOUND) return Throw(env, s);
  return Bool(env, s == LARDER_OK);
}

// Encodes a prefix as the keys it should match are stored.
bool EncodePrefix(napi_env env, napi_value v, Bytes* out) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if (type != napi_string && type != napi_object) {
    ThrowType(env, "a prefix must be a string or a Buffer");
    return false;
  }
  return EncodeKey(env, v, out);
}

// deletePrefix(prefix) -> count
napi_value DeletePrefix(napi_env env, napi_callback_info info) {
  UNPACK(1);
  Bytes prefix;
  if (!EncodePrefix(env, argv[0], &prefix)) return nullptr;
  Call call(h);
  uint64_t removed = 0;
  larder_status s = larder_invalidate_prefix(cache, prefix.data, prefix.size, &removed);
  if (s != LARDER_OK) return Throw(env, s);
  return Number(env, static_cast<double>(removed));
}

napi_value Clear(napi_env env, napi_callback_info info) {
  UNPACK(1);
  Call call(h);
  larder_status s = larder_clear(cache);
  if (s != LARDER_OK) return Throw(env, s);
  return Undefined(env);
}

napi_value Cleanup(napi_env env, napi_callback_info info) {
  UNPACK(1);
  Call call(h);
  larder_stats before, after;
  before.struct_size = after.struct_size = sizeof before;
  larder_cache_stats(cache, &before);
  larder_status s = larder_cleanup(cache);
  if (s != LARDER_OK) return Throw(env, s);
  larder_cache_stats(cache, &after);
  return Bool(env, after.expirations > before.expirations);
}

// setNow(ms): the clock of a cache created with a manual clock (`perf`).
napi_value SetNow(napi_env env, napi_callback_info info) {
  UNPACK(1);
  double ms = 0;
  napi_get_value_double(env, argv[0], &ms);
  const int64_t ns = static_cast<int64_t>(ms * 1e6);
  int64_t prev = h->shared->now_ns.load(std::memory_order_relaxed);
  while (ns > prev &&  // never backwards
         !h->shared->now_ns.compare_exchange_weak(prev, ns, std::memory_order_acq_rel)) {
  }
  return Undefined(env);
}

// drain() -> [key, taggedValue, reason, ...] and the queue emptied.
napi_value Drain(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  Handle* h = static_cast<Handle*>(data);
  EnvData* d = h->env;
  std::vector<Event> events;
  events.swap(d->events);
  d->i32[kStEvents] = 0;
  napi_value out;
  napi_create_array_with_length(env, events.size() * 3, &out);
  uint32_t i = 0;
  for (const Event& e : events) {
    napi_set_element(env, out, i++, DecodeKey(env, e.key.data(), e.key.size()));
    napi_set_element(env, out, i++, TaggedBuffer(env, e.value.data(), e.value.size()));
    napi_set_element(env, out, i++, Number(env, e.reason));
  }
  return out;
}

napi_value StatsFn(napi_env env, napi_callback_info info) {
  UNPACK(1);
  larder_stats s;
  s.struct_size = sizeof s;
  larder_status st = larder_cache_stats(cache, &s);
  if (st != LARDER_OK) return Throw(env, st);
  napi_value out;
  napi_create_object(env, &out);
  auto put = [&](const char* name, uint64_t v) {
    napi_set_named_property(env, out, name, Number(env, static_cast<double>(v)));
  };
  put("hits", s.hits);
  put("misses", s.misses);
  put("staleHits", s.stale_hits);
  put("negativeHits", s.negative_hits);
  put("puts", s.puts);
  put("evictions", s.evictions);
  put("expirations", s.expirations);
  put("invalidations", s.invalidations);
  put("entries", s.entries);
  put("bytes", s.bytes);
  put("capacityBytes", s.capacity_bytes);
  put("capacityEntries", s.capacity_entries);
  put("droppedPromotions", s.dropped_promotions);
  put("loads", s.loads);
  put("loadFailures", s.load_failures);
  put("loadTimeNs", s.load_time_ns);
  put("coalescedWaits", s.coalesced_waits);
  put("refreshesStarted", s.refreshes_started);
  put("refreshesDiscarded", s.refreshes_discarded);
  put("loadsDiscarded", s.loads_discarded);
  put("loadTimeouts", s.load_timeouts);
  return out;
}

// size() -> entries
napi_value SizeFn(napi_env env, napi_callback_info info) {
  UNPACK(1);
  larder_stats s;
  s.struct_size = offsetof(larder_stats, bytes) + sizeof s.bytes;
  larder_status st = larder_cache_stats(cache, &s);
  if (st != LARDER_OK) return Throw(env, st);
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, Number(env, static_cast<double>(s.entries)));
  napi_set_element(env, arr, 1, Number(env, static_cast<double>(s.bytes)));
  return arr;
}

// ---- snapshots (iteration) ----

void FinalizeSnapshot(napi_env, void* data, void*) {
  larder_snapshot_free(static_cast<larder_snapshot*>(data));
}

// snapshot(includeStale) -> external; its size in state[kStLength]
napi_value Snapshot(napi_env env, napi_callback_info info) {
  UNPACK(1);
  bool include_stale = false;
  napi_get_value_bool(env, argv[0], &include_stale);
  larder_snapshot* snap = nullptr;
  larder_status s =
      larder_snapshot_create(cache, include_stale ? LARDER_SNAPSHOT_INCLUDE_STALE : 0, &snap);
  if (s != LARDER_OK) return Throw(env, s);
  napi_value out;
  if (napi_create_external(env, snap, FinalizeSnapshot, nullptr, &out) != napi_ok) {
    larder_snapshot_free(snap);
    return Throw(env, LARDER_NO_MEMORY);
  }
  h->env->i32[kStLength] = static_cast<int32_t>(larder_snapshot_size(snap));
  return out;
}

larder_snapshot* GetSnapshot(napi_env env, napi_value v) {
  void* data = nullptr;
  napi_get_value_external(env, v, &data);
  return static_cast<larder_snapshot*>(data);
}

// snapshotKey(snap, i) -> key ; snapshotValue(snap, i) -> as get (+ info)
napi_value SnapshotKey(napi_env env, napi_callback_info info) {
  UNPACK(2);
  larder_snapshot* snap = GetSnapshot(env, argv[0]);
  uint32_t i = 0;
  napi_get_value_uint32(env, argv[1], &i);
  const void* k = nullptr;
  size_t n = 0;
  if (snap == nullptr || larder_snapshot_entry(snap, i, &k, &n, nullptr, nullptr, nullptr) != 0) {
    return Undefined(env);
  }
  return DecodeKey(env, static_cast<const char*>(k), n);
}

napi_value SnapshotValue(napi_env env, napi_callback_info info) {
  UNPACK(2);
  larder_snapshot* snap = GetSnapshot(env, argv[0]);
  uint32_t i = 0;
  napi_get_value_uint32(env, argv[1], &i);
  const void* v = nullptr;
  size_t n = 0;
  larder_entry_info ei;
  std::memset(&ei, 0, sizeof ei);
  ei.struct_size = sizeof ei;
  if (snap == nullptr || larder_snapshot_entry(snap, i, nullptr, nullptr, &v, &n, &ei) != 0) {
    return Undefined(env);
  }
  SetInfo(h->env, ei);
  return ReturnValue(env, h->env, static_cast<const char*>(v), n);
}

// ---- calling JavaScript from other threads ----

// A thread-safe function other threads may call until it is released, or
// until its isolate ends: Node then deletes it whatever threads still hold
// it (a worker that exits while another worker's load is still running),
// so every call goes through here, under a lock the finalizer takes too.
struct SafeFn {
  std::mutex mu;
  napi_threadsafe_function fn = nullptr;
  bool alive = false;

  static void Finalized(napi_env, void* data, void*) {
    auto* holder = static_cast<std::shared_ptr<SafeFn>*>(data);
    {
      std::lock_guard<std::mutex> lock((*holder)->mu);
      (*holder)->alive = false;
    }
    delete holder;
  }

  // js_fn may be null (call_js does the work). A function that is not
  // `ref`erenced does not keep the event loop alive.
  static std::shared_ptr<SafeFn> Create(napi_env env, napi_value js_fn, const char* name,
                                        napi_threadsafe_function_call_js call_js, bool ref) {
    auto safe = std::make_shared<SafeFn>();
    auto* holder = new std::shared_ptr<SafeFn>(safe);
    napi_value resource;
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
    if (napi_create_threadsafe_function(env, js_fn, nullptr, resource, 0, 1, holder, Finalized,
                                        nullptr, call_js, &safe->fn) != napi_ok) {
      delete holder;
      return nullptr;
    }
    safe->alive = true;
    if (!ref) napi_unref_threadsafe_function(env, safe->fn);
    return safe;
  }

  // Queues data for call_js (the queue is unbounded: never blocks). False
  // when the function is gone: the caller keeps (and frees) data.
  bool Call(void* data) {
    std::lock_guard<std::mutex> lock(mu);
    return alive && napi_call_threadsafe_function(fn, data, napi_tsfn_nonblocking) == napi_ok;
  }

  // Any thread; once. Never from a call_js given a null env (Node is
  // deleting the function then).
  void Release(napi_threadsafe_function_release_mode mode) {
    std::lock_guard<std::mutex> lock(mu);
    if (!alive) return;
    alive = false;
    napi_release_threadsafe_function(fn, mode);
  }
};

// ---- fetch: the asynchronous, single-flight form ----

struct Lease {
  larder_lease* lease = nullptr;
  Shared* shared = nullptr;  // one reference, until completed
  std::string key;           // stored form
};

void FinishLease(Lease* l) {
  if (l->shared != nullptr) {
    Release(l->shared);
    l->shared = nullptr;
  }
}

void FinalizeLease(napi_env, void* data, void*) {
  auto* l = static_cast<Lease*>(data);
  if (l->lease != nullptr) larder_lease_abandon(l->lease);  // never leave a key stuck
  FinishLease(l);
  delete l;
}

// What the completing thread hands to the JS thread.
struct Ready {
  napi_deferred deferred = nullptr;
  std::shared_ptr<SafeFn> fn;
  larder_status status = LARDER_OK;
  std::string value;
  std::string error;
};

void ResolveOnJsThread(napi_env env, napi_value, void*, void* data) {
  auto* r = static_cast<Ready*>(data);
  if (env != nullptr) {
    if (r->status == LARDER_OK) {
      napi_resolve_deferred(env, r->deferred, TaggedBuffer(env, r->value.data(), r->value.size()));
    } else if (r->status == LARDER_NOT_FOUND) {
      napi_resolve_deferred(env, r->deferred, Undefined(env));
    } else {
      napi_reject_deferred(env, r->deferred, MakeError(env, r->status, r->error.c_str()));
    }
  }
  std::shared_ptr<SafeFn> fn = std::move(r->fn);
  delete r;
  if (env != nullptr) fn->Release(napi_tsfn_release);  // null env: Node is deleting it
}

// Runs on whichever thread completes the load: no JS here, only the TSFN.
void OnTicketReady(void* user_data, larder_status status, larder_value* value,
                   const larder_fetch_info* info) {
  auto* r = static_cast<Ready*>(user_data);
  r->status = status;
  if (status == LARDER_OK) r->value.assign(static_cast<const char*>(value->data), value->size);
  r->error = info->error;
  larder_value_release(value);
  if (!r->fn->Call(r)) delete r;  // the isolate has gone: nobody is left to resolve
}

// The three answers of fetchBegin and refreshBegin. state[kStKind]: 0 done
// (the value, as get), 1 lead (a lease), 2 wait (a Promise of a tagged
// Buffer or undefined).
napi_value Lookup(napi_env env, Handle* h, const Bytes& key, larder_status s, int kind,
                  larder_value* value, larder_fetch_info* fi, larder_lease* lease,
                  larder_ticket* ticket) {
  EnvData* d = h->env;
  d->i32[kStKind] = 0;
  if (kind == LARDER_FETCH_DONE) {
    if (s == LARDER_OK) {
      napi_value v = ReturnValue(env, d, static_cast<const char*>(value->data), value->size);
      larder_value_release(value);
      return v;
    }
    larder_value_release(value);
    if (s == LARDER_NOT_FOUND) return Undefined(env);
    return Throw(env, s, s == LARDER_LOAD_FAILED ? fi->error : nullptr);
  }
  if (kind == LARDER_FETCH_LEAD) {
    auto* l = new Lease{lease, h->shared, std::string(key.data, key.size)};
    Retain(h->shared);  // the native cache outlives the lease
    napi_value ext;
    if (napi_create_external(env, l, FinalizeLease, nullptr, &ext) != napi_ok) {
      FinalizeLease(env, l, nullptr);
      return Throw(env, LARDER_NO_MEMORY);
    }
    d->i32[kStKind] = 1;
    return ext;
  }
  if (kind != LARDER_FETCH_WAIT) return Throw(env, s == LARDER_OK ? LARDER_INTERNAL : s);
  auto* r = new Ready;
  napi_value promise;
  napi_create_promise(env, &r->deferred, &promise);
  r->fn = SafeFn::Create(env, nullptr, "larder.fetch", ResolveOnJsThread, true);
  if (r->fn == nullptr) {
    larder_ticket_free(ticket);
    napi_reject_deferred(env, r->deferred, MakeError(env, LARDER_INTERNAL, nullptr));
    delete r;
    return promise;
  }
  larder_ticket_on_ready(ticket, OnTicketReady, r);  // may resolve at once
  larder_ticket_free(ticket);
  d->i32[kStKind] = 2;
  return promise;
}

napi_value BeginCommon(napi_env env, napi_callback_info info, bool refresh) {
  UNPACK(1);
  Bytes key;
  if (!EncodeKey(env, argv[0], &key)) return nullptr;
  int kind = -1;
  larder_value value = LARDER_VALUE_INIT;
  larder_fetch_info fi;
  std::memset(&fi, 0, sizeof fi);
  fi.struct_size = sizeof fi;
  larder_lease* lease = nullptr;
  larder_ticket* ticket = nullptr;
  larder_status s;
  {
    Call call(h);  // a miss may expire entries of the stripe
    s = refresh
            ? larder_refresh_begin(cache, key.data, key.size, &kind, &value, &fi, &lease, &ticket)
            : larder_fetch_begin(cache, key.data, key.size, &kind, &value, &fi, &lease, &ticket);
  }
  if (s != LARDER_OK && kind != LARDER_FETCH_DONE) return Throw(env, s);
  return Lookup(env, h, key, s, kind, &value, &fi, lease, ticket);
}

napi_value FetchBegin(napi_env env, napi_callback_info info) {
  return BeginCommon(env, info, false);
}
napi_value RefreshBegin(napi_env env, napi_callback_info info) {
  return BeginCommon(env, info, true);
}

// complete(lease, kind, value, ttlMs, valueKind, size, ownTtlMs, message)
//   kind 0 value, 1 not found (reported as 'fetch'), 2 error (message)
// The lease is consumed whatever happens.
napi_value Complete(napi_env env, napi_callback_info info) {
  // Even on a closed handle: the lease holds the native cache, and other
  // callers (other workers) wait for it.
  napi_value argv[8];
  size_t argc;
  Handle* h = Unpack(env, info, argv, &argc, false);
  void* data = nullptr;
  napi_get_value_external(env, argv[0], &data);
  auto* l = static_cast<Lease*>(data);
  if (l == nullptr || l->lease == nullptr) return Throw(env, LARDER_INVALID_ARGUMENT, "lease done");
  larder_lease* lease = l->lease;
  l->lease = nullptr;
  struct Done {  // releases the cache reference on every way out
    Lease* l;
    ~Done() { FinishLease(l); }
  } done{l};
  int32_t kind = 2;
  napi_get_value_int32(env, argv[1], &kind);
  Call call(h);
  CallContext& c = call.ctx();
  if (kind == 0) {
    Bytes value;
    double ttl = 0, size = 0, own_ttl = -1;
    int32_t vkind = 0;
    napi_get_value_double(env, argv[3], &ttl);
    napi_get_value_int32(env, argv[4], &vkind);
    napi_get_value_double(env, argv[5], &size);
    napi_get_value_double(env, argv[6], &own_ttl);
    if (!EncodeValue(env, argv[2], vkind, own_ttl, &value)) {
      larder_lease_complete_error(lease, "fetchMethod returned a value that cannot be cached");
      return nullptr;
    }
    // Installing replaces the old value: 'set', or nothing for the same value.
    c.set_key = l->key.data();
    c.set_key_size = l->key.size();
    c.set_value = value.data;
    c.set_value_size = value.size;
    const int64_t ttl_ns = MsToNs(ttl);
    larder_status s = larder_lease_complete_value_charged(
        lease, value.data, value.size, ttl_ns == INT64_MAX ? 0 : ttl_ns,
        size > 0 ? static_cast<uint64_t>(std::ceil(size)) : 0, nullptr);
    if (s != LARDER_OK && s != LARDER_VALUE_TOO_LARGE) return Throw(env, s);
    return Undefined(env);
  }
  if (kind == 1) {
    // lru-cache: a fetch that finds nothing deletes what was there ('fetch').
    c.override_key = l->key.data();
    c.override_key_size = l->key.size();
    c.override_reason = kReasonFetch;
    larder_lease_complete_not_found(lease);
    return Undefined(env);
  }
  std::string message;
  bool exact;
  Bytes text;
  if (StringUtf8(env, argv[7], &text, 0, &exact)) message.assign(text.data, text.size);
  larder_lease_complete_error(lease, message.empty() ? "fetchMethod failed" : message.c_str());
  return Undefined(env);
}

// abandon(lease): gives the duty up (waiters get "load abandoned").
napi_value Abandon(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* data = nullptr;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) return nullptr;
  auto* l = static_cast<Lease*>(data);
  if (l != nullptr && l->lease != nullptr) {
    larder_lease_abandon(l->lease);
    l->lease = nullptr;
    FinishLease(l);
  }
  return Undefined(env);
}

// ---- write-behind: the flusher thread asks JavaScript to write ----

struct WbWrite {
  std::string key, value;
  bool is_delete;
  int attempt, replayed;
  uint64_t sequence;
};

struct WbJob {
  std::vector<WbWrite> writes;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool ok = false;
  std::string error;
  void Finish(bool success, std::string message) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (done) return;
      done = true;
      ok = success;
      error = std::move(message);
    }
    cv.notify_all();
  }
};

// Between the write-behind queue (flusher thread) and the isolate that opened it.
struct WbBridge {
  std::mutex mu;
  bool gone = false;  // the isolate is closing: fail every batch at once
  std::shared_ptr<SafeFn> batch_fn;
  std::shared_ptr<SafeFn> dead_fn;  // may be null
  std::set<std::shared_ptr<WbJob>> pending;
  // The isolate is going (or the queue is closed): no batch reaches
  // JavaScript any more, and the ones JavaScript holds fail.
  void FailAll(const char* why) {
    std::set<std::shared_ptr<WbJob>> jobs;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!gone) {
        gone = true;
        if (batch_fn) batch_fn->Release(napi_tsfn_abort);
        if (dead_fn) dead_fn->Release(napi_tsfn_abort);
      }
      jobs.swap(pending);
    }
    for (const auto& j : jobs) j->Finish(false, why);
  }
};

// A write-behind queue and what it needs to outlive: the bridge to its
// isolate, and the asynchronous flushes running on libuv's pool.
struct WbState {
  larder_write_behind* wb = nullptr;
  std::shared_ptr<WbBridge> bridge = std::make_shared<WbBridge>();
  int users = 0;           // flushes in flight (guarded by g_registry_mu)
  bool abandoned = false;  // its handle let go: the last user destroys it
};

void DestroyWriteBehind(WbState* w) {
  w->bridge->FailAll("the write-behind queue is closed");
  larder_write_behind_close(w->wb, 1);  // what is still queued stays in the journal
  larder_write_behind_destroy(w->wb);
  delete w;
}

napi_value WritesToJs(napi_env env, const std::vector<WbWrite>& writes) {
  napi_value arr;
  napi_create_array_with_length(env, writes.size(), &arr);
  for (size_t i = 0; i < writes.size(); ++i) {
    const WbWrite& w = writes[i];
    napi_value o;
    napi_create_object(env, &o);
    napi_set_named_property(env, o, "key", DecodeKey(env, w.key.data(), w.key.size()));
    napi_set_named_property(
        env, o, "value",
        w.is_delete ? Undefined(env) : TaggedBuffer(env, w.value.data(), w.value.size()));
    napi_set_named_property(env, o, "delete", Bool(env, w.is_delete));
    napi_set_named_property(env, o, "attempt", Number(env, w.attempt));
    napi_set_named_property(env, o, "replayed", Bool(env, w.replayed != 0));
    napi_set_named_property(env, o, "sequence", Number(env, static_cast<double>(w.sequence)));
    napi_set_element(env, arr, static_cast<uint32_t>(i), o);
  }
  return arr;
}

struct JobRef {
  std::shared_ptr<WbJob> job;
  std::shared_ptr<WbBridge> bridge;
};

void FinalizeJobRef(napi_env, void* data, void*) { delete static_cast<JobRef*>(data); }

// done(errorMessage?) handed to JavaScript with each batch.
napi_value JobDone(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  auto* ref = static_cast<JobRef*>(data);
  std::string error;
  bool ok = true;
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_undefined && type != napi_null) {
    ok = false;
    Bytes text;
    bool exact;
    if (StringUtf8(env, argv[0], &text, 0, &exact)) error.assign(text.data, text.size);
    if (error.empty()) error = "writeBatch failed";
  }
  {
    std::lock_guard<std::mutex> lock(ref->bridge->mu);
    ref->bridge->pending.erase(ref->job);
  }
  ref->job->Finish(ok, std::move(error));
  return Undefined(env);
}

// On the JS thread: runBatch(writes, done) (index.js calls the user's writeBatch).
void CallBatch(napi_env env, napi_value js_fn, void* context, void* data) {
  auto* ref = static_cast<JobRef*>(data);
  if (env == nullptr) {
    ref->job->Finish(false, "the JavaScript environment is gone");
    delete ref;
    return;
  }
  (void)context;
  napi_value done, argv[2], global;
  napi_create_function(env, "done", NAPI_AUTO_LENGTH, JobDone, ref, &done);
  napi_add_finalizer(env, done, ref, FinalizeJobRef, nullptr, nullptr);
  argv[0] = WritesToJs(env, ref->job->writes);
  argv[1] = done;
  napi_get_global(env, &global);
  if (napi_call_function(env, global, js_fn, 2, argv, nullptr) != napi_ok) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    ref->job->Finish(false, "writeBatch threw");
  }
}

int BatchWriter(void* user_data, const larder_queued_write* writes, size_t count, char* error,
                size_t error_size) {
  std::shared_ptr<WbBridge> bridge = static_cast<WbState*>(user_data)->bridge;
  auto job = std::make_shared<WbJob>();
  for (size_t i = 0; i < count; ++i) {
    const larder_queued_write& w = writes[i];
    job->writes.push_back(
        {std::string(static_cast<const char*>(w.key), w.key_size),
         w.value ? std::string(static_cast<const char*>(w.value), w.value_size) : std::string(),
         w.is_delete != 0, w.attempt, w.replayed, w.sequence});
  }
  {
    std::lock_guard<std::mutex> lock(bridge->mu);
    auto* ref = new JobRef{job, bridge};
    if (bridge->gone || !bridge->batch_fn->Call(ref)) {
      delete ref;
      std::snprintf(error, error_size, "%s", "the JavaScript environment is closing");
      return 1;
    }
    bridge->pending.insert(job);
  }
  std::unique_lock<std::mutex> lock(job->mu);
  job->cv.wait(lock, [&] { return job->done; });
  if (job->ok) return 0;
  std::snprintf(error, error_size, "%s", job->error.c_str());
  return 1;
}

struct DeadLetterMsg {
  WbWrite write;
  std::string error;
};

void CallDeadLetter(napi_env env, napi_value js_fn, void*, void* data) {
  std::unique_ptr<DeadLetterMsg> m(static_cast<DeadLetterMsg*>(data));
  if (env == nullptr) return;
  std::vector<WbWrite> one{m->write};
  napi_value arr = WritesToJs(env, one), first, argv[2], global;
  napi_get_element(env, arr, 0, &first);
  argv[0] = first;
  napi_create_string_utf8(env, m->error.c_str(), NAPI_AUTO_LENGTH, &argv[1]);
  napi_get_global(env, &global);
  if (napi_call_function(env, global, js_fn, 2, argv, nullptr) != napi_ok) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
  }
}

void DeadLetter(void* user_data, const larder_queued_write* w, const char* error) {
  std::shared_ptr<WbBridge> bridge = static_cast<WbState*>(user_data)->bridge;
  auto* m = new DeadLetterMsg{
      {std::string(static_cast<const char*>(w->key), w->key_size),
       w->value ? std::string(static_cast<const char*>(w->value), w->value_size) : std::string(),
       w->is_delete != 0, w->attempt, w->replayed, w->sequence},
      error ? error : ""};
  std::lock_guard<std::mutex> lock(bridge->mu);
  if (bridge->gone || bridge->dead_fn == nullptr || !bridge->dead_fn->Call(m)) delete m;
}

// wbOpen(config, runBatch, deadLetter|undefined)
napi_value WbOpen(napi_env env, napi_callback_info info) {
  UNPACK(3);
  Shared* sh = h->shared;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    if (sh->wbs != nullptr) return Throw(env, LARDER_INVALID_ARGUMENT, "write-behind is open");
  }
  larder_write_behind_config cfg;
  larder_write_behind_config_init(&cfg);
  napi_value o = argv[0];
  cfg.max_batch = static_cast<uint64_t>(NumberOr(env, o, "maxBatch", cfg.max_batch));
  cfg.max_delay_ns = MsToNs(NumberOr(env, o, "maxDelay", cfg.max_delay_ns / 1e6));
  cfg.max_queue_entries =
      static_cast<uint64_t>(NumberOr(env, o, "maxQueue", cfg.max_queue_entries));
  cfg.max_queue_bytes =
      static_cast<uint64_t>(NumberOr(env, o, "maxQueueSize", cfg.max_queue_bytes));
  cfg.max_attempts = static_cast<int32_t>(NumberOr(env, o, "maxAttempts", cfg.max_attempts));
  cfg.retry_base_ns = MsToNs(NumberOr(env, o, "retryDelay", cfg.retry_base_ns / 1e6));
  cfg.retry_max_ns = MsToNs(NumberOr(env, o, "retryMaxDelay", cfg.retry_max_ns / 1e6));
  cfg.enqueue_timeout_ns = 0;  // never block the event loop: a full queue throws Busy
  std::string dir;
  napi_value jv;
  napi_valuetype type;
  if (napi_get_named_property(env, o, "journalDir", &jv) == napi_ok &&
      napi_typeof(env, jv, &type) == napi_ok && type == napi_string) {
    Bytes text;
    bool exact;
    StringUtf8(env, jv, &text, 0, &exact);
    dir.assign(text.data, text.size);
  }
  cfg.journal_dir = dir.empty() ? nullptr : dir.c_str();
  cfg.journal_sync = static_cast<int32_t>(NumberOr(env, o, "journalSync", cfg.journal_sync));
  cfg.journal_sync_interval_ns =
      MsToNs(NumberOr(env, o, "journalSyncInterval", cfg.journal_sync_interval_ns / 1e6));
  cfg.journal_segment_bytes =
      static_cast<uint64_t>(NumberOr(env, o, "journalSegmentSize", cfg.journal_segment_bytes));

  auto* state = new WbState;
  WbBridge* bridge = state->bridge.get();
  // Not referenced: the flusher must not keep the isolate's loop alive.
  bridge->batch_fn = SafeFn::Create(env, argv[1], "larder.writeBatch", CallBatch, false);
  if (bridge->batch_fn == nullptr) {
    delete state;
    return Throw(env, LARDER_INTERNAL);
  }
  napi_valuetype dl_type;
  napi_typeof(env, argv[2], &dl_type);
  if (dl_type == napi_function) {
    bridge->dead_fn = SafeFn::Create(env, argv[2], "larder.deadLetter", CallDeadLetter, false);
  }
  cfg.writer = BatchWriter;
  cfg.writer_data = state;
  cfg.dead_letter = DeadLetter;
  cfg.dead_letter_data = state;
  larder_write_behind* wb = nullptr;
  larder_status s;
  {
    Call call(h);
    s = larder_write_behind_open(cache, &cfg, &wb);
  }
  if (s != LARDER_OK) {
    bridge->FailAll("write-behind did not open");
    delete state;
    return Throw(env, s);
  }
  state->wb = wb;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    sh->wbs = state;
  }
  h->owns_wb = true;
  return Undefined(env);
}

// wbWrite(key, value, ttlMs, kind, isDelete) on the opening handle only.
napi_value WbWriteFn(napi_env env, napi_callback_info info) {
  UNPACK(5);
  if (!h->owns_wb) {
    return Throw(env, LARDER_INVALID_ARGUMENT, "no write-behind on this cache handle");
  }
  larder_write_behind* wb = h->shared->wbs->wb;  // the owner's: open while owns_wb
  Bytes key, value;
  if (!EncodeKey(env, argv[0], &key)) return nullptr;
  bool is_delete = false;
  napi_get_value_bool(env, argv[4], &is_delete);
  Call call(h);
  larder_status s;
  if (is_delete) {
    s = larder_write_behind_delete(wb, key.data, key.size);
  } else {
    double ttl = 0;
    int32_t kind = 0;
    napi_get_value_double(env, argv[2], &ttl);
    napi_get_value_int32(env, argv[3], &kind);
    if (!EncodeValue(env, argv[1], kind, -1, &value)) return nullptr;
    const int64_t ttl_ns = MsToNs(ttl);
    s = larder_write_behind_put(wb, key.data, key.size, value.data, value.size,
                                ttl_ns == INT64_MAX ? 0 : ttl_ns);
  }
  if (s != LARDER_OK) return Throw(env, s);
  return Undefined(env);
}

// Flush and close run on a thread of their own: they wait for the flusher,
// which may need this very isolate to run writeBatch. Not on libuv's pool:
// a worker that ends waits for its pool requests before it runs the
// cleanup that would fail those batches, and would wait for ever.
struct WbWork {
  napi_deferred deferred = nullptr;
  std::shared_ptr<SafeFn> fn;  // back to the isolate with the result
  WbState* state = nullptr;    // one use of it, and one reference on the cache
  Shared* shared = nullptr;
  int64_t timeout_ns = 0;
  bool close = false;
  larder_status status = LARDER_OK;
};

void WbRun(WbWork* w) {
  w->status = w->close ? larder_write_behind_close(w->state->wb, w->timeout_ns)
                       : larder_write_behind_flush(w->state->wb, w->timeout_ns);
  bool last = false;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    last = --w->state->users == 0 && w->state->abandoned;
  }
  if (last) DestroyWriteBehind(w->state);  // its handle went while this ran
  w->state = nullptr;
  Release(w->shared);
  if (!w->fn->Call(w)) delete w;  // the isolate has gone
}

void WbDone(napi_env env, napi_value, void*, void* data) {
  auto* w = static_cast<WbWork*>(data);
  if (env != nullptr) {
    if (w->status == LARDER_OK) {
      napi_resolve_deferred(env, w->deferred, Undefined(env));
    } else {
      napi_reject_deferred(env, w->deferred, MakeError(env, w->status, nullptr));
    }
  }
  std::shared_ptr<SafeFn> fn = std::move(w->fn);
  delete w;
  if (env != nullptr) fn->Release(napi_tsfn_release);
}

// wbFlush(timeoutMs, close) -> Promise
napi_value WbFlush(napi_env env, napi_callback_info info) {
  UNPACK(2);
  if (!h->owns_wb) {
    return Throw(env, LARDER_INVALID_ARGUMENT, "no write-behind on this cache handle");
  }
  double timeout = 0;
  bool close = false;
  napi_get_value_double(env, argv[0], &timeout);
  napi_get_value_bool(env, argv[1], &close);
  auto* w = new WbWork;
  w->timeout_ns = MsToNs(timeout) == INT64_MAX ? 0 : MsToNs(timeout);
  w->close = close;
  napi_value promise;
  napi_create_promise(env, &w->deferred, &promise);
  w->fn = SafeFn::Create(env, nullptr, "larder.flush", WbDone, true);  // keeps the loop alive
  if (w->fn == nullptr) {
    napi_reject_deferred(env, w->deferred, MakeError(env, LARDER_INTERNAL, nullptr));
    delete w;
    return promise;
  }
  w->shared = h->shared;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    w->state = h->shared->wbs;
    ++w->state->users;
    ++h->shared->refs;  // the cache outlives the queue's flush
  }
  try {
    std::thread(WbRun, w).detach();
  } catch (...) {
    w->status = LARDER_NO_MEMORY;  // no thread: undo, and reject at once
    {
      std::lock_guard<std::mutex> lock(g_registry_mu);
      --w->state->users;
    }
    Release(w->shared);
    w->fn->Release(napi_tsfn_release);
    napi_reject_deferred(env, w->deferred, MakeError(env, LARDER_NO_MEMORY, "no thread"));
    delete w;
  }
  return promise;
}

napi_value WbStats(napi_env env, napi_callback_info info) {
  UNPACK(1);
  if (!h->owns_wb) return Undefined(env);
  larder_write_behind_stats s;
  s.struct_size = sizeof s;
  larder_status st = larder_write_behind_stats_get(h->shared->wbs->wb, &s);
  if (st != LARDER_OK) return Throw(env, st);
  napi_value out;
  napi_create_object(env, &out);
  auto put = [&](const char* name, double v) {
    napi_set_named_property(env, out, name, Number(env, v));
  };
  put("queueDepth", static_cast<double>(s.queue_depth));
  put("queueBytes", static_cast<double>(s.queue_bytes));
  put("oldestPendingMs", static_cast<double>(s.oldest_pending_ns) / 1e6);
  put("writes", static_cast<double>(s.writes));
  put("coalesced", static_cast<double>(s.coalesced));
  put("delivered", static_cast<double>(s.delivered));
  put("batches", static_cast<double>(s.batches));
  put("retries", static_cast<double>(s.retries));
  put("deadLetters", static_cast<double>(s.dead_letters));
  put("rejected", static_cast<double>(s.rejected));
  put("journalBytes", static_cast<double>(s.journal_bytes));
  put("replayedWrites", static_cast<double>(s.replayed_writes));
  return out;
}

// Ends the write-behind of a handle that goes away without close(): no
// JavaScript can run any more, so nothing can be delivered; with a journal
// the writes wait there for the next open, without one they are lost
// (index.js warns; close() drains properly).
void AbandonWriteBehind(Handle* h) {
  if (!h->owns_wb) return;
  h->owns_wb = false;
  Shared* sh = h->shared;
  WbState* state;
  bool now;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    state = sh->wbs;
    sh->wbs = nullptr;
    state->abandoned = true;
    now = state->users == 0;
  }
  // No JavaScript will write a batch any more: the flusher's calls fail at
  // once (and a flush running on the pool returns), then the queue goes.
  state->bridge->FailAll("the JavaScript environment is closing");
  if (now) DestroyWriteBehind(state);
}

// wbRelease(): after a drained close, frees the queue and its bridge.
napi_value WbRelease(napi_env env, napi_callback_info info) {
  UNPACK(1);
  AbandonWriteBehind(h);
  return Undefined(env);
}

// ---- creating, sharing and closing ----

void CloseHandle(Handle* h) {
  if (h->closed) return;
  h->closed = true;
  AbandonWriteBehind(h);
  h->env->handles.erase(h);
  Release(h->shared);
}

void FinalizeHandle(napi_env, void* data, void*) {
  auto* h = static_cast<Handle*>(data);
  CloseHandle(h);
  delete h;
}

// close() -> this handle only; closeAll() -> the native cache for everyone.
napi_value CloseFn(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  CloseHandle(static_cast<Handle*>(data));
  return Undefined(env);
}

napi_value CloseAll(napi_env env, napi_callback_info info) {
  UNPACK(1);
  Call call(h);
  larder_cache_close(cache);
  CloseHandle(h);
  return Undefined(env);
}

napi_value Share(napi_env env, napi_callback_info info) {
  UNPACK(1);
  return Number(env, static_cast<double>(h->shared->id));
}

// The handle's methods, each a function whose data is the handle.
napi_value MakeMethods(napi_env env, Handle* h) {
  const napi_property_descriptor fns[] = {
      {"get", nullptr, Get, nullptr, nullptr, nullptr, napi_default, h},
      {"read", nullptr, Read, nullptr, nullptr, nullptr, napi_default, h},
      {"set", nullptr, SetValue, nullptr, nullptr, nullptr, napi_default, h},
      {"has", nullptr, Has, nullptr, nullptr, nullptr, napi_default, h},
      {"del", nullptr, Delete, nullptr, nullptr, nullptr, napi_default, h},
      {"touch", nullptr, Touch, nullptr, nullptr, nullptr, napi_default, h},
      {"deletePrefix", nullptr, DeletePrefix, nullptr, nullptr, nullptr, napi_default, h},
      {"clear", nullptr, Clear, nullptr, nullptr, nullptr, napi_default, h},
      {"cleanup", nullptr, Cleanup, nullptr, nullptr, nullptr, napi_default, h},
      {"setNow", nullptr, SetNow, nullptr, nullptr, nullptr, napi_default, h},
      {"drain", nullptr, Drain, nullptr, nullptr, nullptr, napi_default, h},
      {"stats", nullptr, StatsFn, nullptr, nullptr, nullptr, napi_default, h},
      {"size", nullptr, SizeFn, nullptr, nullptr, nullptr, napi_default, h},
      {"snapshot", nullptr, Snapshot, nullptr, nullptr, nullptr, napi_default, h},
      {"snapshotKey", nullptr, SnapshotKey, nullptr, nullptr, nullptr, napi_default, h},
      {"snapshotValue", nullptr, SnapshotValue, nullptr, nullptr, nullptr, napi_default, h},
      {"fetchBegin", nullptr, FetchBegin, nullptr, nullptr, nullptr, napi_default, h},
      {"refreshBegin", nullptr, RefreshBegin, nullptr, nullptr, nullptr, napi_default, h},
      {"complete", nullptr, Complete, nullptr, nullptr, nullptr, napi_default, h},
      {"wbOpen", nullptr, WbOpen, nullptr, nullptr, nullptr, napi_default, h},
      {"wbWrite", nullptr, WbWriteFn, nullptr, nullptr, nullptr, napi_default, h},
      {"wbFlush", nullptr, WbFlush, nullptr, nullptr, nullptr, napi_default, h},
      {"wbStats", nullptr, WbStats, nullptr, nullptr, nullptr, napi_default, h},
      {"wbRelease", nullptr, WbRelease, nullptr, nullptr, nullptr, napi_default, h},
      {"close", nullptr, CloseFn, nullptr, nullptr, nullptr, napi_default, h},
      {"closeAll", nullptr, CloseAll, nullptr, nullptr, nullptr, napi_default, h},
      {"share", nullptr, Share, nullptr, nullptr, nullptr, napi_default, h},
  };
  napi_value obj;
  napi_create_object(env, &obj);
  napi_define_properties(env, obj, sizeof fns / sizeof fns[0], fns);
  // The methods object owns the handle: its functions are reachable only
  // through it (index.js keeps it private).
  if (napi_add_finalizer(env, obj, h, FinalizeHandle, nullptr, nullptr) != napi_ok) {
    FinalizeHandle(env, h, nullptr);
    return Throw(env, LARDER_NO_MEMORY);
  }
  h->env->handles.insert(h);
  return obj;
}

bool HandleOptions(napi_env env, napi_value o, Handle* h) {
  bool collect = false;
  napi_value v;
  if (napi_get_named_property(env, o, "collect", &v) == napi_ok)
    napi_get_value_bool(env, v, &collect);
  h->collect = collect;
  h->max_entry_size = NumberOr(env, o, "maxEntrySize", 0);
  return true;
}

// create({maxBytes, max, ttl, stripes, retainStale, staleIfError, refreshBeta,
//         refreshDelta, negativeTtl, errorTtl, seed, manualClock, now,
//         collect, maxEntrySize}) -> methods
napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 1) return Throw(env, LARDER_INVALID_ARGUMENT);
  napi_value o = argv[0];
  const double max_bytes = NumberOr(env, o, "maxBytes", 0);
  const double max = NumberOr(env, o, "max", 0);
  const double stripes = NumberOr(env, o, "stripes", 0);
  if (!(max_bytes > 0) || max < 0 || stripes < 0) return Throw(env, LARDER_INVALID_ARGUMENT);
  larder_options* opt = larder_options_new();
  if (opt == nullptr) return Throw(env, LARDER_NO_MEMORY);
  auto* sh = new Shared;
  larder_options_set_capacity_bytes(opt, static_cast<uint64_t>(max_bytes));
  larder_options_set_capacity_entries(opt, static_cast<uint64_t>(max));
  larder_options_set_stripes(opt, static_cast<uint32_t>(stripes));
  larder_options_set_default_ttl(opt, MsToNs(NumberOr(env, o, "ttl", 0)));
  larder_options_set_stale_while_revalidate(opt, MsToNs(NumberOr(env, o, "retainStale", 0)));
  larder_options_set_stale_if_error(opt, MsToNs(NumberOr(env, o, "staleIfError", 0)));
  larder_options_set_refresh_beta(opt, NumberOr(env, o, "refreshBeta", 0));
  larder_options_set_default_refresh_delta(opt, MsToNs(NumberOr(env, o, "refreshDelta", 0)));
  larder_options_set_negative_ttl(opt, MsToNs(NumberOr(env, o, "negativeTtl", 0)));
  larder_options_set_error_ttl(opt, MsToNs(NumberOr(env, o, "errorTtl", 0)));
  larder_options_set_random_seed(opt, static_cast<uint64_t>(NumberOr(env, o, "seed", 0)));
  larder_options_set_removal_listener(opt, OnRemoval, sh);
  napi_value mc;
  bool manual = false;
  if (napi_get_named_property(env, o, "manualClock", &mc) == napi_ok) {
    napi_get_value_bool(env, mc, &manual);
  }
  if (manual) {
    sh->manual_clock = true;
    sh->now_ns.store(static_cast<int64_t>(NumberOr(env, o, "now", 0) * 1e6));
    larder_options_set_clock(opt, ManualClock, sh);
  }
  larder_cache* cache = nullptr;
  larder_status s = larder_cache_create(opt, &cache);
  larder_options_free(opt);
  if (s != LARDER_OK) {
    delete sh;
    return Throw(env, s);
  }
  sh->cache = cache;
  sh->refs = 1;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    sh->id = g_next_id++;
    Registry()[sh->id] = sh;
  }
  auto* h = new Handle;
  h->shared = sh;
  h->env = GetEnvData(env);
  HandleOptions(env, o, h);
  return MakeMethods(env, h);
}

// attach(id, {collect, maxEntrySize}) -> methods (another isolate, same cache)
napi_value Attach(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double id = 0;
  if (argc < 2 || napi_get_value_double(env, argv[0], &id) != napi_ok) {
    return Throw(env, LARDER_INVALID_ARGUMENT);
  }
  Shared* sh = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    auto it = Registry().find(static_cast<uint64_t>(id));
    if (it == Registry().end()) return Throw(env, LARDER_CLOSED, "no such cache: closed");
    sh = it->second;
    ++sh->refs;
  }
  auto* h = new Handle;
  h->shared = sh;
  h->env = GetEnvData(env);
  HandleOptions(env, argv[1], h);
  return MakeMethods(env, h);
}

// ---- the Redis second tier (TieredCache in index.js) ----
//
// One larder_tier per TieredCache, owned by its isolate (not shared with
// workers). Keys go to Redis as their bytes (a string's UTF-8, a Buffer's
// bytes), so that broadcast prefixes and other clients see the same names;
// values carry the tag described at the top of this file. get() runs the
// loader on the JavaScript thread, inside larder_tier_get, and blocks on
// Redis for at most the command timeout (per round trip).

struct TierHandle {
  larder_tier* tier = nullptr;
  EnvData* env = nullptr;
  bool closed = false;
  int calls = 0;  // get()s on the stack: a loader may close the cache mid-call
};

void CloseTier(TierHandle* t) {
  if (!t->closed) {
    t->closed = true;
    t->env->tiers.erase(t);
  }
  if (t->calls == 0 && t->tier != nullptr) {  // else the outermost get() destroys it
    larder_tier_destroy(t->tier);
    t->tier = nullptr;
  }
}

void FinalizeTier(napi_env, void* data, void*) {
  auto* t = static_cast<TierHandle*>(data);
  CloseTier(t);
  delete t;
}

bool EncodeTierKey(napi_env env, napi_value v, Bytes* out) {
  bool exact = true;
  if (StringUtf8(env, v, out, 0, &exact)) return true;
  const char* p;
  size_t n;
  if (Uint8View(env, v, &p, &n)) {
    out->Reserve(n);
    if (n) std::memcpy(out->data, p, n);
    out->size = n;
    return true;
  }
  ThrowType(env, "a TieredCache key must be a string or a Buffer");
  return false;
}

template <size_t N>
TierHandle* UnpackTier(napi_env env, napi_callback_info info, napi_value (&argv)[N]) {
  size_t argc = N;
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  for (size_t i = argc; i < N; ++i) argv[i] = Undefined(env);
  auto* t = static_cast<TierHandle*>(data);
  if (t->closed) {
    Throw(env, LARDER_CLOSED, "this TieredCache is closed");
    return nullptr;
  }
  return t;
}

struct TierLoad {
  napi_env env;
  napi_value fn;   // (key) -> undefined | [value, kind]
  napi_value key;  // the caller's key, as given
  napi_value thrown = nullptr;
};

int TierLoader(void* user_data, const void*, size_t, larder_load_result* result) {
  auto* l = static_cast<TierLoad*>(user_data);
  napi_env env = l->env;
  napi_value r;
  if (napi_call_function(env, Undefined(env), l->fn, 1, &l->key, &r) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, &l->thrown);
    larder_load_result_set_error(result, "the loader threw");
    return 0;
  }
  napi_valuetype type;
  napi_typeof(env, r, &type);
  if (type == napi_undefined) {
    larder_load_result_set_not_found(result);
    return 0;
  }
  napi_value value, kind_v;
  int32_t kind = 0;
  napi_get_element(env, r, 0, &value);
  napi_get_element(env, r, 1, &kind_v);
  napi_get_value_int32(env, kind_v, &kind);
  Bytes out;
  if (!EncodeValue(env, value, kind, -1, &out)) {
    napi_get_and_clear_last_exception(env, &l->thrown);
    larder_load_result_set_error(result, "the loader returned a value that cannot be cached");
    return 0;
  }
  larder_load_result_set_value(result, out.data, out.size, 0);
  return 0;
}

// get(key, loader?) -> value | null (in the scratch buffer) | undefined
napi_value TierGet(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  TierHandle* t = UnpackTier(env, info, argv);
  if (t == nullptr) return nullptr;
  Bytes key;
  if (!EncodeTierKey(env, argv[0], &key)) return nullptr;
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  TierLoad load{env, argv[1], argv[0]};
  larder_fetch_info fi;
  std::memset(&fi, 0, sizeof fi);
  fi.struct_size = sizeof fi;
  larder_value v = LARDER_VALUE_INIT;
  ++t->calls;
  larder_status s =
      larder_tier_get(t->tier, key.data, key.size, type == napi_function ? TierLoader : nullptr,
                      type == napi_function ? &load : nullptr, 0, &v, &fi);
  if (--t->calls == 0 && t->closed) {  // the loader closed it
    if (s == LARDER_OK) larder_value_release(&v);
    CloseTier(t);
    if (load.thrown != nullptr) return napi_throw(env, load.thrown), nullptr;
    return Throw(env, LARDER_CLOSED, "this TieredCache was closed by its loader");
  }
  if (load.thrown != nullptr) {
    if (s == LARDER_OK) larder_value_release(&v);
    napi_throw(env, load.thrown);
    return nullptr;
  }
  if (s == LARDER_NOT_FOUND) return Undefined(env);
  if (s != LARDER_OK) return Throw(env, s, fi.error[0] ? fi.error : nullptr);
  napi_value out = ReturnValue(env, t->env, static_cast<const char*>(v.data), v.size);
  larder_value_release(&v);
  return out;
}

// set(key, value, kind, ttlMs)
napi_value TierSet(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  TierHandle* t = UnpackTier(env, info, argv);
  if (t == nullptr) return nullptr;
  Bytes key, value;
  if (!EncodeTierKey(env, argv[0], &key)) return nullptr;
  int32_t kind = 0;
  napi_get_value_int32(env, argv[2], &kind);
  if (!EncodeValue(env, argv[1], kind, -1, &value)) return nullptr;
  double ttl = 0;
  napi_get_value_double(env, argv[3], &ttl);
  char why[256] = "";
  larder_status s = larder_tier_set(t->tier, key.data, key.size, value.data, value.size,
                                    MsToNs(ttl), why, sizeof why);
  if (s != LARDER_OK) return Throw(env, s, why);
  return Undefined(env);
}

// del(key) / invalidate(key)
napi_value TierDelete(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  TierHandle* t = UnpackTier(env, info, argv);
  if (t == nullptr) return nullptr;
  Bytes key;
  if (!EncodeTierKey(env, argv[0], &key)) return nullptr;
  char why[256] = "";
  larder_status s = larder_tier_delete(t->tier, key.data, key.size, why, sizeof why);
  if (s != LARDER_OK) return Throw(env, s, why);
  return Undefined(env);
}

napi_value TierInvalidate(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  TierHandle* t = UnpackTier(env, info, argv);
  if (t == nullptr) return nullptr;
  Bytes key;
  if (!EncodeTierKey(env, argv[0], &key)) return nullptr;
  larder_status s = larder_tier_invalidate(t->tier, key.data, key.size);
  if (s != LARDER_OK) return Throw(env, s);
  return Undefined(env);
}

napi_value TierStats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  TierHandle* t = UnpackTier(env, info, argv);
  if (t == nullptr) return nullptr;
  larder_tier_stats s;
  std::memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  larder_status st = larder_tier_stats_get(t->tier, &s);
  if (st != LARDER_OK) return Throw(env, st);
  larder_stats l1;
  std::memset(&l1, 0, sizeof l1);
  l1.struct_size = sizeof l1;
  st = larder_tier_l1_stats(t->tier, &l1);
  if (st != LARDER_OK) return Throw(env, st);
  napi_value out;
  napi_create_object(env, &out);
  auto put = [&](const char* name, double v) {
    napi_set_named_property(env, out, name, Number(env, v));
  };
  put("l1Hits", static_cast<double>(l1.hits));
  put("l1Misses", static_cast<double>(l1.misses));
  put("l1Entries", static_cast<double>(l1.entries));
  put("l1Bytes", static_cast<double>(l1.bytes));
  put("l2Hits", static_cast<double>(s.l2_hits));
  put("l2Misses", static_cast<double>(s.l2_misses));
  put("l2Errors", static_cast<double>(s.l2_errors));
  put("l2Skipped", static_cast<double>(s.l2_skipped));
  put("loads", static_cast<double>(s.loads));
  put("fills", static_cast<double>(s.fills));
  put("fillsRefused", static_cast<double>(s.fills_refused));
  put("bypassedReads", static_cast<double>(s.bypassed_reads));
  put("invalidationMessages", static_cast<double>(s.invalidation_messages));
  put("invalidatedKeys", static_cast<double>(s.invalidated_keys));
  put("flushes", static_cast<double>(s.flushes));
  put("trackingLosses", static_cast<double>(s.tracking_losses));
  put("connectionLosses", static_cast<double>(s.connection_losses));
  put("reconnects", static_cast<double>(s.reconnects));
  put("breakerOpens", static_cast<double>(s.breaker_opens));
  put("lockAcquired", static_cast<double>(s.lock_acquired));
  put("lockWaits", static_cast<double>(s.lock_waits));
  put("lockWaitHits", static_cast<double>(s.lock_wait_hits));
  put("lockFailOpen", static_cast<double>(s.lock_fail_open));
  put("writes", static_cast<double>(s.writes));
  put("writeFailures", static_cast<double>(s.write_failures));
  napi_set_named_property(env, out, "trackingUp", Bool(env, s.tracking_up != 0));
  const char* breaker = s.breaker_state == LARDER_BREAKER_OPEN        ? "open"
                        : s.breaker_state == LARDER_BREAKER_HALF_OPEN ? "half-open"
                                                                      : "closed";
  napi_value b;
  napi_create_string_utf8(env, breaker, NAPI_AUTO_LENGTH, &b);
  napi_set_named_property(env, out, "breaker", b);
  return out;
}

napi_value TierClose(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  CloseTier(static_cast<TierHandle*>(data));
  return Undefined(env);
}

// A string option (nullptr when absent); *keep holds its bytes.
const char* StringOption(napi_env env, napi_value o, const char* name, std::string* keep) {
  napi_value v;
  napi_valuetype type;
  if (napi_get_named_property(env, o, name, &v) != napi_ok) return nullptr;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_string) return nullptr;
  size_t n = 0;
  napi_get_value_string_utf8(env, v, nullptr, 0, &n);
  keep->assign(n, '\0');
  napi_get_value_string_utf8(env, v, keep->data(), n + 1, &n);
  return keep->c_str();
}

// tierCreate({maxBytes, max, host, port, username, password, db,
//   connectTimeout, commandTimeout, maxConnections, broadcast, prefixes,
//   l1MaxTtl, redisTtl, maxStaleness, healthInterval, lock, lockPrefix,
//   lockLease, lockPollMin, lockPollMax, breakerFailures, breakerOpenTime})
//   -> methods. Times in ms; index.js checks the options.
napi_value TierCreate(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 1) return Throw(env, LARDER_INVALID_ARGUMENT);
  napi_value o = argv[0];
  const double max_bytes = NumberOr(env, o, "maxBytes", 0);
  if (!(max_bytes > 0)) return Throw(env, LARDER_INVALID_ARGUMENT, "maxBytes must be > 0");
  larder_tier_config cfg;
  larder_tier_config_init(&cfg);
  std::string host, username, password, lock_prefix;
  if (const char* p = StringOption(env, o, "host", &host)) cfg.host = p;
  cfg.username = StringOption(env, o, "username", &username);
  cfg.password = StringOption(env, o, "password", &password);
  if (const char* p = StringOption(env, o, "lockPrefix", &lock_prefix)) cfg.lock_prefix = p;
  cfg.port = static_cast<int32_t>(NumberOr(env, o, "port", cfg.port));
  cfg.database = static_cast<int32_t>(NumberOr(env, o, "db", cfg.database));
  cfg.max_connections =
      static_cast<uint32_t>(NumberOr(env, o, "maxConnections", cfg.max_connections));
  auto ms = [&](const char* name, int64_t* field) {
    const double d = NumberOr(env, o, name, -1);
    if (d >= 0) *field = MsToNs(d);
  };
  ms("connectTimeout", &cfg.connect_timeout_ns);
  ms("commandTimeout", &cfg.command_timeout_ns);
  ms("l1MaxTtl", &cfg.l1_max_ttl_ns);
  ms("redisTtl", &cfg.l2_ttl_ns);
  ms("maxStaleness", &cfg.max_staleness_ns);
  ms("healthInterval", &cfg.health_interval_ns);
  ms("lockLease", &cfg.lock_lease_ns);
  ms("lockPollMin", &cfg.lock_poll_min_ns);
  ms("lockPollMax", &cfg.lock_poll_max_ns);
  ms("breakerOpenTime", &cfg.breaker_open_ns);
  cfg.breaker_failures =
      static_cast<int32_t>(NumberOr(env, o, "breakerFailures", cfg.breaker_failures));
  napi_value v;
  bool flag = false;
  if (napi_get_named_property(env, o, "lock", &v) == napi_ok &&
      napi_get_value_bool(env, v, &flag) == napi_ok) {
    cfg.stampede_lock = flag ? 1 : 0;
  }
  flag = false;
  if (napi_get_named_property(env, o, "broadcast", &v) == napi_ok &&
      napi_get_value_bool(env, v, &flag) == napi_ok && flag) {
    cfg.tracking = LARDER_TRACKING_BCAST;
  }
  std::vector<std::string> prefixes;
  std::vector<const char*> prefix_ptrs;
  bool is_array = false;
  if (napi_get_named_property(env, o, "prefixes", &v) == napi_ok &&
      napi_is_array(env, v, &is_array) == napi_ok && is_array) {
    uint32_t n = 0;
    napi_get_array_length(env, v, &n);
    prefixes.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      napi_value e;
      napi_get_element(env, v, i, &e);
      size_t len = 0;
      if (napi_get_value_string_utf8(env, e, nullptr, 0, &len) != napi_ok) {
        return ThrowType(env, "prefixes must be strings");
      }
      prefixes[i].assign(len, '\0');
      napi_get_value_string_utf8(env, e, prefixes[i].data(), len + 1, &len);
    }
    for (auto& p : prefixes) prefix_ptrs.push_back(p.c_str());
    cfg.broadcast_prefixes = prefix_ptrs.data();
    cfg.broadcast_prefix_count = prefix_ptrs.size();
  }
  larder_options* opt = larder_options_new();
  if (opt == nullptr) return Throw(env, LARDER_NO_MEMORY);
  larder_options_set_capacity_bytes(opt, static_cast<uint64_t>(max_bytes));
  larder_options_set_capacity_entries(opt, static_cast<uint64_t>(NumberOr(env, o, "max", 0)));
  larder_tier* tier = nullptr;
  char why[512] = "";
  larder_status s = larder_tier_create(opt, &cfg, &tier, why, sizeof why);
  larder_options_free(opt);
  if (s != LARDER_OK) return Throw(env, s, why);
  auto* t = new TierHandle;
  t->tier = tier;
  t->env = GetEnvData(env);
  const napi_property_descriptor fns[] = {
      {"get", nullptr, TierGet, nullptr, nullptr, nullptr, napi_default, t},
      {"set", nullptr, TierSet, nullptr, nullptr, nullptr, napi_default, t},
      {"del", nullptr, TierDelete, nullptr, nullptr, nullptr, napi_default, t},
      {"invalidate", nullptr, TierInvalidate, nullptr, nullptr, nullptr, napi_default, t},
      {"stats", nullptr, TierStats, nullptr, nullptr, nullptr, napi_default, t},
      {"close", nullptr, TierClose, nullptr, nullptr, nullptr, napi_default, t},
  };
  napi_value obj;
  napi_create_object(env, &obj);
  napi_define_properties(env, obj, sizeof fns / sizeof fns[0], fns);
  if (napi_add_finalizer(env, obj, t, FinalizeTier, nullptr, nullptr) != napi_ok) {
    FinalizeTier(env, t, nullptr);
    return Throw(env, LARDER_NO_MEMORY);
  }
  t->env->tiers.insert(t);
  return obj;
}

// The isolate is going away (a worker ends): its handles let go.
void CleanupEnv(void* arg) {
  auto* d = static_cast<EnvData*>(arg);
  std::set<TierHandle*> tiers;
  tiers.swap(d->tiers);
  for (TierHandle* t : tiers) {
    d->tiers.insert(t);  // CloseTier erases it
    CloseTier(t);
  }
  std::set<Handle*> open;
  open.swap(d->handles);
  for (Handle* h : open) {
    if (h->owns_wb) {
      std::lock_guard<std::mutex> lock(g_registry_mu);
      if (h->shared->wbs) h->shared->wbs->bridge->FailAll("worker ended");
    }
  }
  for (Handle* h : open) {
    h->env->handles.insert(h);  // CloseHandle erases it
    CloseHandle(h);
  }
}

void FinalizeEnvData(napi_env, void* data, void*) { delete static_cast<EnvData*>(data); }

napi_value Init(napi_env env, napi_value exports) {
  auto* d = new EnvData;
  d->env = env;
  napi_set_instance_data(env, d, FinalizeEnvData, nullptr);
  napi_add_env_cleanup_hook(env, CleanupEnv, d);
  // The scratch buffer and the state array, shared with index.js.
  napi_value scratch, state_ab, i32, f64;
  void* p = nullptr;
  napi_create_buffer(env, kScratchBytes, &p, &scratch);
  d->scratch = static_cast<char*>(p);
  napi_create_reference(env, scratch, 1, &d->scratch_ref);
  napi_create_arraybuffer(env, 64, &p, &state_ab);
  std::memset(p, 0, 64);
  d->i32 = static_cast<int32_t*>(p);
  d->f64 = static_cast<double*>(p);
  napi_create_reference(env, state_ab, 1, &d->state_ref);
  napi_create_typedarray(env, napi_int32_array, 16, state_ab, 0, &i32);
  napi_create_typedarray(env, napi_float64_array, 8, state_ab, 0, &f64);
  const napi_property_descriptor fns[] = {
      {"create", nullptr, Create, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attach", nullptr, Attach, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"abandon", nullptr, Abandon, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tierCreate", nullptr, TierCreate, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"scratch", nullptr, nullptr, nullptr, nullptr, scratch, napi_default, nullptr},
      {"stateI32", nullptr, nullptr, nullptr, nullptr, i32, napi_default, nullptr},
      {"stateF64", nullptr, nullptr, nullptr, nullptr, f64, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
  napi_value version;
  napi_create_string_utf8(env, larder_version(), NAPI_AUTO_LENGTH, &version);
  napi_set_named_property(env, exports, "version", version);
  return exports;
}

}  // namespace

NAPI_MODULE_INIT() { return Init(env, exports); }
