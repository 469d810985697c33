// The cache's own small thread pool for background refreshes: started on
// first use, bounded queue, joined on destruction (queued tasks are dropped;
// their flights end as errors for any waiter, by the LoadLease rule).
#ifndef LARDER_CORE_SRC_REFRESH_POOL_H_
#define LARDER_CORE_SRC_REFRESH_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace larder::internal {

class RefreshPool {
 public:
  static constexpr size_t kMaxQueued = 4096;

  explicit RefreshPool(size_t threads) : thread_count_(threads == 0 ? 1 : threads) {}
  ~RefreshPool() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      dropped.swap(queue_);
    }
    cv_.notify_all();
    // Destroyed outside the lock: a dropped task fails its flight, and that
    // completion may run listeners and callbacks that start refreshes
    // (Submit then refuses them, since the pool is stopping).
    dropped.clear();
    for (std::thread& t : threads_) t.join();
  }
  RefreshPool(const RefreshPool&) = delete;
  RefreshPool& operator=(const RefreshPool&) = delete;

  // False when the queue is full or the pool is stopping; the task is not run.
  bool Submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || queue_.size() >= kMaxQueued) return false;
      queue_.push_back(std::move(task));
      if (threads_.size() < thread_count_ && idle_ == 0) {
        threads_.emplace_back([this] { Work(); });
      }
    }
    cv_.notify_one();
    return true;
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      --idle_;
      if (stopping_) return;
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      task();
      task = nullptr;  // destroy captures outside the lock
      lock.lock();
    }
  }

  const size_t thread_count_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_REFRESH_POOL_H_
