// One mutex per key, created on demand and dropped when unused: serialises
// writes of one key (write-through, write-behind) while other keys proceed.
#ifndef LARDER_CORE_SRC_KEYED_MUTEX_H_
#define LARDER_CORE_SRC_KEYED_MUTEX_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace larder::internal {

class KeyedMutex {
 public:
  class Lock {
   public:
    Lock(KeyedMutex* owner, std::string_view key) : owner_(owner), key_(key) {
      owner_->Acquire(key_);
    }
    ~Lock() { owner_->Release(key_); }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

   private:
    KeyedMutex* owner_;
    std::string key_;
  };

 private:
  static constexpr size_t kShards = 64;
  struct Shard {
    std::mutex mu;
    std::condition_variable cv;
    std::unordered_map<std::string, int> holders;  // key -> 1 while held
  };

  // The shards (about 9 KiB) are made by the first write that needs them:
  // most caches never write through, and a cache is cheap to create.
  Shard& ShardFor(const std::string& key) {
    std::call_once(shards_made_, [this] { shards_ = std::make_unique<Shard[]>(kShards); });
    return shards_[std::hash<std::string>()(key) % kShards];
  }
  void Acquire(const std::string& key) {
    Shard& s = ShardFor(key);
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait(lock, [&] { return s.holders.count(key) == 0; });
    s.holders.emplace(key, 1);
  }
  void Release(const std::string& key) {
    Shard& s = ShardFor(key);
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.holders.erase(key);
    }
    s.cv.notify_all();
  }

  std::once_flag shards_made_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_KEYED_MUTEX_H_
