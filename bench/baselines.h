// The caches people write instead of using Larder, built beside it so every
// figure is a ratio measured in the same run (DESIGN.md section 7).
#ifndef LARDER_BENCH_BASELINES_H_
#define LARDER_BENCH_BASELINES_H_

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "hash.h"  // core/src: the hash Larder uses

namespace larder::bench {

// The cache most people write: one std::mutex around std::unordered_map and a
// std::list in LRU order, bounded in entries.
class MutexLru {
 public:
  explicit MutexLru(size_t capacity) : capacity_(capacity) {}

  // Copies the value into buf (up to cap bytes); false on a miss.
  bool Get(std::string_view key, char* buf, size_t cap, size_t* len) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(std::string(key));
    if (it == index_.end()) return false;
    lru_.splice(lru_.begin(), lru_, it->second);
    const std::string& v = it->second->second;
    *len = v.size();
    std::memcpy(buf, v.data(), std::min(cap, v.size()));
    return true;
  }
  void Put(std::string_view key, std::string_view value) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string k(key);
    auto it = index_.find(k);
    if (it != index_.end()) {
      it->second->second.assign(value);
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    lru_.emplace_front(k, std::string(value));
    index_.emplace(std::move(k), lru_.begin());
    if (index_.size() > capacity_) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  void Erase(std::string_view key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(std::string(key));
    if (it == index_.end()) return;
    lru_.erase(it->second);
    index_.erase(it);
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::string>> lru_;
  std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator> index_;
};

// The same, split into 64 independently locked shards.
class ShardedLru {
 public:
  static constexpr size_t kShards = 64;
  explicit ShardedLru(size_t capacity) {
    for (size_t i = 0; i < kShards; ++i) {
      shards_.push_back(std::make_unique<MutexLru>(std::max<size_t>(1, capacity / kShards)));
    }
  }
  bool Get(std::string_view key, char* buf, size_t cap, size_t* len) {
    return Shard(key).Get(key, buf, cap, len);
  }
  void Put(std::string_view key, std::string_view value) { Shard(key).Put(key, value); }
  void Erase(std::string_view key) { Shard(key).Erase(key); }

 private:
  MutexLru& Shard(std::string_view key) {
    return *shards_[std::hash<std::string_view>()(key) % kShards];
  }
  std::vector<std::unique_ptr<MutexLru>> shards_;
};

// The ceiling for read workloads: an unsynchronised absl::flat_hash_map, no
// LRU, no TTL, no eviction. Only meaningful when nothing writes while threads
// read; the harness uses it for read-only runs.
class FlatCeiling {
 public:
  bool Get(std::string_view key, char* buf, size_t cap, size_t* len) {
    // Debian's Abseil has its own string_view type.
    auto it = map_.find(absl::string_view(key.data(), key.size()));
    if (it == map_.end()) return false;
    *len = it->second.size();
    std::memcpy(buf, it->second.data(), std::min(cap, it->second.size()));
    return true;
  }
  void Put(std::string_view key, std::string_view value) { map_[std::string(key)] = value; }
  void Erase(std::string_view key) { map_.erase(std::string(key)); }

 private:
  absl::flat_hash_map<std::string, std::string> map_;
};

// The floor under any cache's read, which issue 12 asks Larder's distance to:
// one hash of the key (the hash Larder uses), one probe of an open-addressed
// table of 64-byte-aligned records that hold key and value inline (one or two
// cache misses), and the copy of the value. No synchronisation, LRU, TTL or
// eviction; read-only once warmed, like FlatCeiling.
class LookupLimit {
 public:
  // Room for `keys` keys of at most max_key bytes with values of at most
  // max_value bytes, at a load factor of at most 1/2.
  LookupLimit(size_t keys, size_t max_key, size_t max_value)
      : stride_((kRecordHeader + max_key + max_value + 63) / 64 * 64),
        mask_(std::bit_ceil(std::max<size_t>(2 * keys, 2)) - 1),
        records_(static_cast<char*>(std::aligned_alloc(64, (mask_ + 1) * stride_))) {
    std::memset(records_.get(), 0, (mask_ + 1) * stride_);
  }
  bool Get(std::string_view key, char* buf, size_t cap, size_t* len) {
    for (size_t i = internal::HashKey(key) & mask_;; i = (i + 1) & mask_) {
      const char* r = records_.get() + i * stride_;
      uint16_t key_size, value_size;
      std::memcpy(&key_size, r, 2);
      if (key_size == 0) return false;
      if (key_size == key.size() && std::memcmp(r + kRecordHeader, key.data(), key.size()) == 0) {
        std::memcpy(&value_size, r + 2, 2);
        *len = value_size;
        std::memcpy(buf, r + kRecordHeader + key_size, std::min<size_t>(cap, value_size));
        return true;
      }
    }
  }
  void Put(std::string_view key, std::string_view value) {
    if (key.empty() || kRecordHeader + key.size() + value.size() > stride_) return;
    for (size_t i = internal::HashKey(key) & mask_;; i = (i + 1) & mask_) {
      char* r = records_.get() + i * stride_;
      uint16_t key_size;
      std::memcpy(&key_size, r, 2);
      if (key_size != 0 &&
          (key_size != key.size() || std::memcmp(r + kRecordHeader, key.data(), key.size()) != 0)) {
        continue;
      }
      const uint16_t sizes[2] = {static_cast<uint16_t>(key.size()),
                                 static_cast<uint16_t>(value.size())};
      std::memcpy(r, sizes, sizeof sizes);
      std::memcpy(r + kRecordHeader, key.data(), key.size());
      std::memcpy(r + kRecordHeader + key.size(), value.data(), value.size());
      return;
    }
  }
  void Erase(std::string_view) {}  // read-only runs only

 private:
  static constexpr size_t kRecordHeader = 4;  // key size, value size (16 bits each)
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  const size_t stride_;
  const size_t mask_;
  std::unique_ptr<char, Free> records_;
};

}  // namespace larder::bench

#endif  // LARDER_BENCH_BASELINES_H_
