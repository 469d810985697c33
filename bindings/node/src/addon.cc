// The Node.js addon: raw N-API over the C ABI (larder.h), linked with the
// static library (its private jemalloc included). index.js wraps it in the
// lru-cache-shaped LarderCache class; this file stays thin.
//
// Values carry a one-byte tag so get() returns what set() was given: a
// string (UTF-8), a Buffer (bytes) or JSON (any other value, stringified by
// index.js).
//
// Caches live in a process-wide registry with a reference count, so one
// native cache can be shared by worker_threads: share() gives an id,
// attach(id) in another isolate takes a reference; the last one destroys it.
#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "larder.h"

namespace {

constexpr char kTagString = 's';
constexpr char kTagBuffer = 'b';
constexpr char kTagJson = 'j';

#define CHECK_NAPI(call)                                                 \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, "LARDER_NAPI", "N-API call failed: " #call); \
      return nullptr;                                                    \
    }                                                                    \
  } while (0)

// ---- the registry of native caches ----

struct Shared {
  larder_cache* cache;
  int refs;
};
std::mutex g_registry_mu;
std::unordered_map<uint64_t, Shared> g_registry;
uint64_t g_next_id = 1;

struct Handle {  // what a JS object holds
  uint64_t id;
  larder_cache* cache;
};

void Release(uint64_t id) {
  larder_cache* doomed = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    auto it = g_registry.find(id);
    if (it == g_registry.end()) return;
    if (--it->second.refs == 0) {
      doomed = it->second.cache;
      g_registry.erase(it);
    }
  }
  larder_cache_destroy(doomed);  // NULL-safe
}

void FinalizeHandle(napi_env, void* data, void*) {
  auto* h = static_cast<Handle*>(data);
  Release(h->id);
  delete h;
}

napi_value Throw(napi_env env, larder_status status) {
  // The JS side maps `code` to its error classes (docs/errors.md).
  napi_value message, code, error;
  napi_create_string_utf8(env, larder_strerror(status), NAPI_AUTO_LENGTH, &message);
  napi_create_int32(env, status, &code);
  napi_create_error(env, nullptr, message, &error);
  napi_set_named_property(env, error, "larderCode", code);
  napi_throw(env, error);
  return nullptr;
}

bool GetHandle(napi_env env, napi_value v, Handle** out) {
  void* data = nullptr;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, "LARDER_HANDLE", "not a larder cache handle");
    return false;
  }
  *out = static_cast<Handle*>(data);
  return true;
}

// Reads a string or Buffer argument into bytes (with the value tag when asked).
bool GetBytes(napi_env env, napi_value v, std::string* out, char* tag, const char* what) {
  napi_valuetype type;
  napi_typeof(env, v, &type);
  if (type == napi_string) {
    size_t n = 0;
    napi_get_value_string_utf8(env, v, nullptr, 0, &n);
    out->resize(n + 1);
    napi_get_value_string_utf8(env, v, out->data(), n + 1, &n);
    out->resize(n);
    if (tag) *tag = kTagString;
    return true;
  }
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (is_buffer) {
    void* data;
    size_t n;
    napi_get_buffer_info(env, v, &data, &n);
    out->assign(static_cast<const char*>(data), n);
    if (tag) *tag = kTagBuffer;
    return true;
  }
  std::string msg = std::string(what) + " must be a string or a Buffer";
  napi_throw_type_error(env, "LARDER_TYPE", msg.c_str());
  return false;
}

napi_value Decode(napi_env env, const char* data, size_t n) {
  napi_value out;
  if (n == 0) {
    napi_get_undefined(env, &out);
    return out;
  }
  if (data[0] == kTagBuffer) {
    void* copy;
    napi_create_buffer_copy(env, n - 1, data + 1, &copy, &out);
    return out;
  }
  napi_create_string_utf8(env, data + 1, n - 1, &out);  // string, or JSON for index.js
  if (data[0] == kTagJson) {
    napi_value wrapper, flag;
    napi_create_object(env, &wrapper);
    napi_get_boolean(env, true, &flag);
    napi_set_named_property(env, wrapper, "json", out);
    return wrapper;  // index.js parses { json: "..." }
  }
  return out;
}

size_t Args(napi_env env, napi_callback_info info, napi_value* argv, size_t max) {
  size_t argc = max;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  return argc;
}

double NumberOr(napi_env env, napi_value obj, const char* name, double fallback) {
  bool has = false;
  napi_has_named_property(env, obj, name, &has);
  if (!has) return fallback;
  napi_value v;
  napi_get_named_property(env, obj, name, &v);
  double d = fallback;
  if (napi_get_value_double(env, v, &d) != napi_ok) return fallback;
  return d;
}

// ---- functions ----

// create({maxSize, max, ttl (ms), stripes}) -> handle
napi_value Create(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (Args(env, info, argv, 1) < 1) return Throw(env, LARDER_INVALID_ARGUMENT);
  const double max_size = NumberOr(env, argv[0], "maxSize", 0);
  const double max = NumberOr(env, argv[0], "max", 0);
  const double ttl = NumberOr(env, argv[0], "ttl", 0);
  const double stripes = NumberOr(env, argv[0], "stripes", 0);
  if (!(max_size > 0) || max < 0 || ttl < 0 || stripes < 0)
    return Throw(env, LARDER_INVALID_ARGUMENT);
  larder_options* o = larder_options_new();
  if (o == nullptr) return Throw(env, LARDER_NO_MEMORY);
  larder_options_set_capacity_bytes(o, static_cast<uint64_t>(max_size));
  larder_options_set_capacity_entries(o, static_cast<uint64_t>(max));
  larder_options_set_stripes(o, static_cast<uint32_t>(stripes));
  larder_options_set_default_ttl(o, static_cast<int64_t>(ttl * 1e6));
  larder_cache* cache = nullptr;
  larder_status s = larder_cache_create(o, &cache);
  larder_options_free(o);
  if (s != LARDER_OK) return Throw(env, s);
  auto* h = new Handle{0, cache};
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    h->id = g_next_id++;
    g_registry[h->id] = {cache, 1};
  }
  napi_value out;
  CHECK_NAPI(napi_create_external(env, h, FinalizeHandle, nullptr, &out));
  return out;
}

// share(handle) -> id ; attach(id) -> handle (another isolate, same cache)
napi_value Share(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Handle* h;
  if (Args(env, info, argv, 1) < 1 || !GetHandle(env, argv[0], &h)) return nullptr;
  napi_value out;
  napi_create_double(env, static_cast<double>(h->id), &out);
  return out;
}

napi_value Attach(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  double id = 0;
  if (Args(env, info, argv, 1) < 1 || napi_get_value_double(env, argv[0], &id) != napi_ok) {
    return Throw(env, LARDER_INVALID_ARGUMENT);
  }
  Handle* h = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    auto it = g_registry.find(static_cast<uint64_t>(id));
    if (it == g_registry.end()) return Throw(env, LARDER_CLOSED);
    ++it->second.refs;
    h = new Handle{it->first, it->second.cache};
  }
  napi_value out;
  CHECK_NAPI(napi_create_external(env, h, FinalizeHandle, nullptr, &out));
  return out;
}

// get(handle, key) -> string | Buffer | {json} | undefined
napi_value Get(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  Handle* h;
  std::string key;
  if (Args(env, info, argv, 2) < 2 || !GetHandle(env, argv[0], &h) ||
      !GetBytes(env, argv[1], &key, nullptr, "key")) {
    return nullptr;
  }
  // A reused buffer: no allocation per hit for values up to its size.
  thread_local std::vector<char> buffer(4096);
  size_t size = 0;
  larder_status s =
      larder_get(h->cache, key.data(), key.size(), buffer.data(), buffer.size(), &size);
  if (s == LARDER_BUFFER_TOO_SMALL) {
    buffer.resize(size);
    s = larder_get(h->cache, key.data(), key.size(), buffer.data(), buffer.size(), &size);
  }
  if (s == LARDER_NOT_FOUND) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    return undefined;
  }
  if (s != LARDER_OK) return Throw(env, s);
  return Decode(env, buffer.data(), size);
}

// set(handle, key, value, ttlMs, isJson)
napi_value Set(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  Handle* h;
  std::string key, value;
  char tag = kTagString;
  if (Args(env, info, argv, 5) < 5 || !GetHandle(env, argv[0], &h) ||
      !GetBytes(env, argv[1], &key, nullptr, "key") ||
      !GetBytes(env, argv[2], &value, &tag, "value")) {
    return nullptr;
  }
  double ttl = 0;
  bool json = false;
  napi_get_value_double(env, argv[3], &ttl);
  napi_get_value_bool(env, argv[4], &json);
  if (ttl < 0) return Throw(env, LARDER_INVALID_ARGUMENT);
  value.insert(value.begin(), json ? kTagJson : tag);
  larder_status s = larder_put(h->cache, key.data(), key.size(), value.data(), value.size(),
                               static_cast<int64_t>(ttl * 1e6));
  if (s != LARDER_OK) return Throw(env, s);
  return nullptr;
}

napi_value KeyCall(napi_env env, napi_callback_info info,
                   larder_status (*fn)(larder_cache*, const void*, size_t)) {
  napi_value argv[2];
  Handle* h;
  std::string key;
  if (Args(env, info, argv, 2) < 2 || !GetHandle(env, argv[0], &h) ||
      !GetBytes(env, argv[1], &key, nullptr, "key")) {
    return nullptr;
  }
  larder_status s = fn(h->cache, key.data(), key.size());
  if (s != LARDER_OK && s != LARDER_NOT_FOUND) return Throw(env, s);
  napi_value out;
  napi_get_boolean(env, s == LARDER_OK, &out);
  return out;
}

napi_value Has(napi_env env, napi_callback_info info) {
  return KeyCall(env, info, larder_contains);
}
napi_value Delete(napi_env env, napi_callback_info info) {
  return KeyCall(env, info, larder_invalidate);
}

napi_value HandleCall(napi_env env, napi_callback_info info, larder_status (*fn)(larder_cache*)) {
  napi_value argv[1];
  Handle* h;
  if (Args(env, info, argv, 1) < 1 || !GetHandle(env, argv[0], &h)) return nullptr;
  larder_status s = fn(h->cache);
  if (s != LARDER_OK) return Throw(env, s);
  return nullptr;
}

napi_value Clear(napi_env env, napi_callback_info info) {
  return HandleCall(env, info, larder_clear);
}
napi_value Close(napi_env env, napi_callback_info info) {
  return HandleCall(env, info, larder_cache_close);
}

// stats(handle) -> { hits, misses, ... }
napi_value StatsFn(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Handle* h;
  if (Args(env, info, argv, 1) < 1 || !GetHandle(env, argv[0], &h)) return nullptr;
  larder_stats s;
  s.struct_size = sizeof s;
  larder_status st = larder_cache_stats(h->cache, &s);
  if (st != LARDER_OK) return Throw(env, st);
  napi_value out;
  napi_create_object(env, &out);
  auto put = [&](const char* name, uint64_t v) {
    napi_value n;
    napi_create_double(env, static_cast<double>(v), &n);
    napi_set_named_property(env, out, name, n);
  };
  put("hits", s.hits);
  put("misses", s.misses);
  put("puts", s.puts);
  put("evictions", s.evictions);
  put("expirations", s.expirations);
  put("invalidations", s.invalidations);
  put("entries", s.entries);
  put("bytes", s.bytes);
  put("loads", s.loads);
  put("coalescedWaits", s.coalesced_waits);
  put("loadFailures", s.load_failures);
  return out;
}

// ---- fetch: the asynchronous, single-flight form ----

struct Lease {
  larder_lease* lease;
};

void FinalizeLease(napi_env, void* data, void*) {
  auto* l = static_cast<Lease*>(data);
  if (l->lease != nullptr) larder_lease_abandon(l->lease);  // never leave a key stuck
  delete l;
}

// What the completing thread hands to the JS thread.
struct Ready {
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
  larder_status status = LARDER_OK;
  std::string value;
  std::string error;
};

void ResolveOnJsThread(napi_env env, napi_value, void*, void* data) {
  auto* r = static_cast<Ready*>(data);
  if (env != nullptr) {
    if (r->status == LARDER_OK) {
      napi_resolve_deferred(env, r->deferred, Decode(env, r->value.data(), r->value.size()));
    } else if (r->status == LARDER_NOT_FOUND) {
      napi_value undefined;
      napi_get_undefined(env, &undefined);
      napi_resolve_deferred(env, r->deferred, undefined);
    } else {
      napi_value message, code, error;
      const std::string text = r->error.empty() ? larder_strerror(r->status) : r->error;
      napi_create_string_utf8(env, text.c_str(), NAPI_AUTO_LENGTH, &message);
      napi_create_int32(env, r->status, &code);
      napi_create_error(env, nullptr, message, &error);
      napi_set_named_property(env, error, "larderCode", code);
      napi_reject_deferred(env, r->deferred, error);
    }
  }
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
  delete r;
}

// Runs on whichever thread completes the load: no JS here, only the TSFN.
void OnTicketReady(void* user_data, larder_status status, larder_value* value,
                   const larder_fetch_info* info) {
  auto* r = static_cast<Ready*>(user_data);
  r->status = status;
  if (status == LARDER_OK) r->value.assign(static_cast<const char*>(value->data), value->size);
  r->error = info->error;
  larder_value_release(value);
  napi_call_threadsafe_function(r->tsfn, r, napi_tsfn_blocking);
}

// fetch(handle, key) -> {value} | {lease} | {promise}
napi_value Fetch(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  Handle* h;
  std::string key;
  if (Args(env, info, argv, 2) < 2 || !GetHandle(env, argv[0], &h) ||
      !GetBytes(env, argv[1], &key, nullptr, "key")) {
    return nullptr;
  }
  int kind = -1;
  larder_value value = LARDER_VALUE_INIT;
  larder_fetch_info fi;
  fi.struct_size = sizeof fi;
  larder_lease* lease = nullptr;
  larder_ticket* ticket = nullptr;
  larder_status s =
      larder_fetch_begin(h->cache, key.data(), key.size(), &kind, &value, &fi, &lease, &ticket);
  napi_value out;
  napi_create_object(env, &out);
  if (kind == LARDER_FETCH_DONE) {
    if (s == LARDER_OK) {
      napi_value v = Decode(env, static_cast<const char*>(value.data), value.size);
      larder_value_release(&value);
      napi_set_named_property(env, out, "value", v);
      return out;
    }
    larder_value_release(&value);
    if (s == LARDER_NOT_FOUND) return out;  // no "value": undefined
    return Throw(env, s);
  }
  if (kind == LARDER_FETCH_LEAD) {
    napi_value ext;
    CHECK_NAPI(napi_create_external(env, new Lease{lease}, FinalizeLease, nullptr, &ext));
    napi_set_named_property(env, out, "lease", ext);
    return out;
  }
  if (kind != LARDER_FETCH_WAIT) return Throw(env, s == LARDER_OK ? LARDER_INTERNAL : s);
  auto* r = new Ready;
  napi_value promise, name;
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_string_utf8(env, "larder.fetch", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr,
                                      ResolveOnJsThread, &r->tsfn) != napi_ok) {
    larder_ticket_free(ticket);
    delete r;
    return Throw(env, LARDER_INTERNAL);
  }
  larder_ticket_on_ready(ticket, OnTicketReady, r);  // may resolve at once
  larder_ticket_free(ticket);
  napi_set_named_property(env, out, "promise", promise);
  return out;
}

// complete(lease, kind, value, ttlMs, isJson): kind 0 value, 1 not found, 2 error
napi_value Complete(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (Args(env, info, argv, 5) < 5) return Throw(env, LARDER_INVALID_ARGUMENT);
  void* data = nullptr;
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || data == nullptr) {
    return Throw(env, LARDER_INVALID_ARGUMENT);
  }
  auto* l = static_cast<Lease*>(data);
  if (l->lease == nullptr) return Throw(env, LARDER_INVALID_ARGUMENT);  // completed already
  larder_lease* lease = l->lease;
  l->lease = nullptr;
  int32_t kind = 2;
  napi_get_value_int32(env, argv[1], &kind);
  if (kind == 0) {
    std::string value;
    char tag = kTagString;
    double ttl = 0;
    bool json = false;
    napi_get_value_double(env, argv[3], &ttl);
    napi_get_value_bool(env, argv[4], &json);
    if (!GetBytes(env, argv[2], &value, &tag, "a fetched value")) {
      larder_lease_complete_error(lease, "fetchMethod returned a value that cannot be cached");
      return nullptr;
    }
    value.insert(value.begin(), json ? kTagJson : tag);
    larder_status s = larder_lease_complete_value(
        lease, value.data(), value.size(), static_cast<int64_t>(ttl < 0 ? 0 : ttl * 1e6), nullptr);
    if (s != LARDER_OK) return Throw(env, s);
    return nullptr;
  }
  if (kind == 1) {
    larder_lease_complete_not_found(lease);
    return nullptr;
  }
  std::string message;
  napi_valuetype type;
  napi_typeof(env, argv[2], &type);
  if (type == napi_string) GetBytes(env, argv[2], &message, nullptr, "error");
  larder_lease_complete_error(lease, message.empty() ? "fetchMethod failed" : message.c_str());
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
      {"create", nullptr, Create, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"share", nullptr, Share, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attach", nullptr, Attach, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"get", nullptr, Get, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"set", nullptr, Set, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"has", nullptr, Has, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"delete", nullptr, Delete, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"clear", nullptr, Clear, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, StatsFn, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fetch", nullptr, Fetch, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"complete", nullptr, Complete, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
  napi_value version;
  napi_create_string_utf8(env, larder_version(), NAPI_AUTO_LENGTH, &version);
  napi_set_named_property(env, exports, "version", version);
  return exports;
}

}  // namespace

NAPI_MODULE_INIT() { return Init(env, exports); }
