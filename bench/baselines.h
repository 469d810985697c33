// The caches people write instead of using Larder, built beside it so every
// figure is a ratio measured in the same run (DESIGN.md section 7).
#ifndef LARDER_BENCH_BASELINES_H_
#define LARDER_BENCH_BASELINES_H_

#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"

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

}  // namespace larder::bench

#endif  // LARDER_BENCH_BASELINES_H_
