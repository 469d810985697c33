#include "trace.h"

#include <zlib.h>

#include <cstring>
#include <list>
#include <unordered_map>
#include <unordered_set>

namespace larder::bench {

bool LoadTrace(const std::string& path, Trace* trace, std::string* error) {
  // gzopen reads plain files transparently.
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    *error = "cannot open " + path;
    return false;
  }
  *trace = Trace();
  std::unordered_set<uint64_t> seen;
  char line[256];
  size_t line_no = 0;
  bool ok = true;
  while (gzgets(f, line, sizeof line) != nullptr) {
    ++line_no;
    char* end = nullptr;
    unsigned long long key = std::strtoull(line, &end, 10);
    if (end == line) {
      if (line[0] == '\n' || line[0] == '\0') continue;
      *error = path + ":" + std::to_string(line_no) + ": not a key";
      ok = false;
      break;
    }
    while (*end == ' ') ++end;
    if (*end != '\n' && *end != '\0' && *end != '\r') {
      trace->sizes.resize(trace->keys.size(), 0);
      trace->sizes.push_back(static_cast<uint32_t>(std::strtoul(end, nullptr, 10)));
    }
    trace->keys.push_back(key);
    seen.insert(key);
  }
  gzclose(f);
  if (!trace->sizes.empty()) trace->sizes.resize(trace->keys.size(), 0);
  trace->unique_keys = seen.size();
  return ok;
}

namespace {
std::string_view KeyBytes(const uint64_t& key) {
  return {reinterpret_cast<const char*>(&key), sizeof key};
}
}  // namespace

ReplayResult Replay(const Trace& trace, Cache& cache, bool charge_by_size) {
  ReplayResult r;
  const bool sized = charge_by_size && !trace.sizes.empty();
  for (size_t i = 0; i < trace.keys.size(); ++i) {
    std::string_view key = KeyBytes(trace.keys[i]);
    ++r.requests;
    if (cache.Visit(key, [](std::string_view) {}) == Status::kOk) {
      ++r.hits;
      continue;
    }
    PutOptions put;
    if (sized) put.charge = trace.sizes[i];
    cache.Put(key, std::string_view(), put);  // too-large objects are not admitted
  }
  return r;
}

ReplayResult ReplayExactLru(const Trace& trace, uint64_t capacity, bool charge_by_size) {
  const bool sized = charge_by_size && !trace.sizes.empty();
  std::list<std::pair<uint64_t, uint64_t>> lru;  // (key, charge), front = most recent
  std::unordered_map<uint64_t, std::list<std::pair<uint64_t, uint64_t>>::iterator> index;
  uint64_t used = 0;
  ReplayResult r;
  for (size_t i = 0; i < trace.keys.size(); ++i) {
    ++r.requests;
    auto it = index.find(trace.keys[i]);
    if (it != index.end()) {
      ++r.hits;
      lru.splice(lru.begin(), lru, it->second);
      continue;
    }
    uint64_t charge = sized ? trace.sizes[i] : 1;
    if (charge > capacity) continue;
    while (used + charge > capacity) {
      used -= lru.back().second;
      index.erase(lru.back().first);
      lru.pop_back();
    }
    lru.emplace_front(trace.keys[i], charge);
    index[trace.keys[i]] = lru.begin();
    used += charge;
  }
  return r;
}

}  // namespace larder::bench
