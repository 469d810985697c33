// Write-behind (DESIGN.md W2, W3): a coalescing, bounded, retrying queue with
// an optional journal, drained by one flusher thread.
//
// Invariants (under mu_):
//  * A key has at most one queued write (the newest: a newer write replaces
//    it, "coalesced") and at most one in-flight write. A key's queued write
//    is never handed to the writer while its previous write is in flight, so
//    writes of one key reach the store in order.
//  * `live_` holds the sequence of every accepted write not yet delivered,
//    dead-lettered or coalesced away; Flush waits on it.
//  * Each queued or in-flight item lists the journal segments of every
//    journal record it stands for (its own and those it coalesced); when it
//    is acknowledged or dead-lettered, those records are released.
//  * bytes_ and keys_.size() bound the queue; a write that would exceed them
//    waits (enqueue_timeout) or is refused with kBusy, never dropped.
#include "larder/write_behind.h"

#include <algorithm>
#include <condition_variable>
#include <list>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "epoch.h"
#include "journal.h"
#include "keyed_mutex.h"
#include "larder/cache.h"
#include "removals.h"

namespace larder {

using internal::Journal;
using internal::JournalRecord;
using SteadyClock = std::chrono::steady_clock;

class WriteBehind::Impl : public internal::PendingWrites {
 public:
  Impl(Cache* cache, WriteBehindOptions options)
      : cache_(cache), options_(std::move(options)), jitter_(std::random_device{}()) {}

  ~Impl() override { Shutdown(std::chrono::nanoseconds(0)); }

  Status Start() {
    if (!options_.journal_dir.empty()) {
      Journal::Recovery recovery;
      const internal::FsyncPolicy policy =
          options_.journal_sync == JournalSync::kEveryWrite ? internal::FsyncPolicy::kEveryWrite
          : options_.journal_sync == JournalSync::kInterval ? internal::FsyncPolicy::kInterval
                                                            : internal::FsyncPolicy::kNever;
      Status s = Journal::Open(options_.journal_dir, policy, options_.journal_sync_interval.count(),
                               options_.journal_segment_bytes, &journal_, &recovery);
      if (s != Status::kOk) return s;
      next_sequence_ = recovery.next_sequence;
      stats_.journal_truncated_bytes = recovery.truncated_bytes;
      // Unacknowledged writes of an earlier run go first, oldest first.
      std::lock_guard<std::mutex> lock(mu_);
      for (Journal::PendingRecord& p : recovery.pending) {
        Item item;
        item.write.key = p.record.key;
        if (p.record.type == JournalRecord::kPut) item.write.value = std::move(p.record.value);
        item.write.sequence = p.record.sequence;
        item.write.replayed = true;
        item.segments = std::move(p.segments);
        item.enqueued_at = SteadyClock::now();
        item.ready_at = item.enqueued_at;
        replayed_keys_.push_back(item.write.key);
        EnqueueLocked(std::move(item));
        ++stats_.replayed_writes;
      }
    }
    flusher_ = std::thread([this] { FlushLoop(); });
    return Status::kOk;
  }

  // Once the queue is attached to the cache: the cache may outlive a queue,
  // and while none was open its reads loaded the store, which is older than
  // the writes the journal kept. Dropping those values makes reads answer
  // the replayed writes, as they answer every pending write.
  void DropCachedValuesOfReplayedKeys() {
    for (const std::string& key : replayed_keys_) {
      internal::Removals removed;
      {
        internal::KeyedMutex::Lock key_lock(&cache_->write_locks(), key);
        cache_->InvalidateCollecting(key, &removed);
      }
      cache_->NotifyRemovals(removed);  // no lock held: the listener may write this key
    }
    replayed_keys_ = {};
  }

  // ---- PendingWrites ----
  bool Lookup(std::string_view key, std::optional<std::string>* value) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = keys_.find(std::string(key));
    if (it == keys_.end()) return false;
    const Item& newest = it->second.queued ? *it->second.queued : *it->second.inflight;
    *value = newest.write.value;
    return true;
  }

  // ---- writes ----
  Status Write(std::string_view key, std::optional<std::string_view> value,
               const PutOptions* put_options) {
    if (key.empty()) return Status::kEmptyKey;
    if (key.size() > kMaxKeyLength) return Status::kKeyTooLong;
    internal::Removals removed;
    Status s;
    {
      // One write of a key at a time through the queue and the cache (shared
      // with write-through), so the cache ends with the newest value.
      internal::KeyedMutex::Lock key_lock(&cache_->write_locks(), key);
      s = WriteUnderKeyLock(key, value, put_options, &removed);
    }
    cache_->NotifyRemovals(removed);  // no lock held: the listener may write this key
    return s;
  }

 private:
  Status WriteUnderKeyLock(std::string_view key, std::optional<std::string_view> value,
                           const PutOptions* put_options, internal::Removals* removed) {
    const size_t bytes = key.size() + (value ? value->size() : 0);
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (closing_) return Status::kClosed;
      if (Status s = WaitForRoomLocked(lock, std::string(key), bytes); s != Status::kOk) return s;
      item.write.sequence = next_sequence_++;
      bytes_ += bytes;  // reserved now; EnqueueLocked keeps the accounting
      reserved_ += bytes;
    }
    item.write.key.assign(key);
    if (value) item.write.value.emplace(*value);
    item.enqueued_at = SteadyClock::now();
    item.ready_at = item.enqueued_at;
    if (journal_ != nullptr) {
      JournalRecord record;
      record.type = value ? JournalRecord::kPut : JournalRecord::kDelete;
      record.sequence = item.write.sequence;
      record.key = item.write.key;
      if (value) record.value.assign(*value);
      uint32_t segment = 0;
      Status s = journal_->AppendWrite(record, &segment);  // durable here with kEveryWrite
      if (s != Status::kOk) {
        // Not acknowledged: not queued, the cache unchanged, the reserved
        // bytes given back. (The journal released the record itself.)
        std::lock_guard<std::mutex> lock(mu_);
        bytes_ -= bytes;
        reserved_ -= bytes;
        space_cv_.notify_all();
        return s;
      }
      item.segments.push_back(segment);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      bytes_ -= bytes;
      reserved_ -= bytes;
      EnqueueLocked(std::move(item));
      ++stats_.writes;
    }
    wake_cv_.notify_one();
    // The cache last: a read that misses meanwhile is answered by the queue.
    if (value) {
      Status s =
          cache_->PutCollecting(key, *value, put_options ? *put_options : PutOptions{}, removed);
      if (s != Status::kOk && s != Status::kValueTooLarge) return s;
    } else {
      cache_->InvalidateCollecting(key, removed);
    }
    return Status::kOk;
  }

 public:
  Status Flush(std::chrono::nanoseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t target = next_sequence_ - 1;
    ++flush_requests_;
    wake_cv_.notify_one();
    // Delivered or dead-lettered, with the dead-letter callbacks run too.
    auto done = [&] {
      return (live_.empty() || *live_.begin() > target) && dead_letters_running_ == 0;
    };
    // After a Close that timed out, what is left stays in the journal for
    // the next open: nothing will deliver it in this run.
    auto settled = [&] { return done() || stopped_; };
    bool ok = true;
    if (timeout.count() <= 0) {
      idle_cv_.wait(lock, settled);
    } else {
      ok = idle_cv_.wait_for(lock, timeout, settled);
    }
    --flush_requests_;
    if (!ok) return Status::kTimeout;
    return done() ? Status::kOk : Status::kClosed;
  }

  Status Shutdown(std::chrono::nanoseconds timeout) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return Status::kOk;
      closing_ = true;
    }
    space_cv_.notify_all();
    Status drained = Flush(timeout);
    std::vector<Item> undelivered;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_cv_.notify_all();
    if (flusher_.joinable()) flusher_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
      // Still queued after the deadline: the journal keeps them for the next
      // open; without one they go to the dead-letter callback.
      for (auto& [key, state] : keys_) {
        if (state.queued) undelivered.push_back(std::move(*state.queued));
      }
      if (journal_ == nullptr) {
        stats_.dead_letters += undelivered.size();
        keys_.clear();
        order_.clear();
        live_.clear();
        bytes_ = 0;
      }
    }
    cache_->AttachPendingWrites(nullptr);
    if (journal_ == nullptr) {
      for (Item& item : undelivered) CallDeadLetter(item.write, "closed before delivery");
    }
    idle_cv_.notify_all();
    return drained;
  }

  WriteBehindStats Stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    WriteBehindStats s = stats_;
    s.queue_depth = keys_.size();
    s.queue_bytes = bytes_;
    SteadyClock::time_point oldest = SteadyClock::time_point::max();
    for (const auto& [key, state] : keys_) {
      if (state.inflight) oldest = std::min(oldest, state.inflight->enqueued_at);
      if (state.queued) oldest = std::min(oldest, state.queued->enqueued_at);
    }
    if (oldest != SteadyClock::time_point::max()) {
      s.oldest_pending_nanos =
          std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - oldest).count();
    }
    if (journal_ != nullptr) {
      s.journal_bytes = journal_->bytes();
      s.journal_sync_failures = journal_->sync_failures();
    }
    return s;
  }

 private:
  struct Item {
    QueuedWrite write;
    std::vector<uint32_t> segments;
    SteadyClock::time_point enqueued_at;  // of the oldest write it stands for
    SteadyClock::time_point ready_at;     // not before (retry backoff)
  };
  struct KeyState {
    std::optional<Item> queued;
    std::optional<Item> inflight;
    bool in_order = false;
    std::list<std::string>::iterator order_pos;
  };

  static size_t Bytes(const Item& item) {
    return item.write.key.size() + (item.write.value ? item.write.value->size() : 0);
  }

  Status WaitForRoomLocked(std::unique_lock<std::mutex>& lock, const std::string& key,
                           size_t bytes) {
    auto room = [&] {
      const bool new_key = keys_.find(key) == keys_.end();
      return closing_ || ((!new_key || keys_.size() < options_.max_queue_entries) &&
                          bytes_ + bytes <= options_.max_queue_bytes);
    };
    if (!room()) {
      if (options_.enqueue_timeout.count() <= 0 ||
          !space_cv_.wait_for(lock, options_.enqueue_timeout, room)) {
        ++stats_.rejected;
        return Status::kBusy;
      }
    }
    return closing_ ? Status::kClosed : Status::kOk;
  }

  // Adds an item as its key's queued write, replacing (coalescing) an older
  // queued one. Keeps the key's place in the order if it had one.
  void EnqueueLocked(Item item) {
    KeyState& state = keys_[item.write.key];
    live_.insert(item.write.sequence);
    bytes_ += Bytes(item);
    if (state.queued) {
      Item& old = *state.queued;
      if (old.write.sequence < item.write.sequence) std::swap(old, item);  // keep the newest
      // `item` is now the older one: it is coalesced into the newer.
      old.segments.insert(old.segments.end(), item.segments.begin(), item.segments.end());
      old.enqueued_at = std::min(old.enqueued_at, item.enqueued_at);
      bytes_ -= Bytes(item);
      live_.erase(item.write.sequence);
      ++stats_.coalesced;
    } else {
      state.queued = std::move(item);
    }
    if (!state.in_order) {
      state.order_pos = order_.insert(order_.end(), state.queued->write.key);
      state.in_order = true;
    }
    idle_cv_.notify_all();
  }

  std::chrono::nanoseconds Backoff(int attempt) {
    // Exponential, capped, with full jitter in [base/2, 1] of the step.
    double step = static_cast<double>(options_.retry_base.count()) *
                  static_cast<double>(1ull << std::min(attempt - 1, 30));
    step = std::min(step, static_cast<double>(options_.retry_max.count()));
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return std::chrono::nanoseconds(static_cast<int64_t>(step * jitter(jitter_)));
  }

  void CallDeadLetter(const QueuedWrite& write, const std::string& error) {
    if (!options_.dead_letter) return;
    try {
      options_.dead_letter(write, error);
    } catch (...) {
    }
  }

  void FlushLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (stop_) return;
      const auto now = SteadyClock::now();
      // Gather ready keys in queue order, and when the next one will be.
      std::vector<std::string> batch_keys;
      SteadyClock::time_point next_wake = SteadyClock::time_point::max();
      SteadyClock::time_point oldest = SteadyClock::time_point::max();
      for (const std::string& key : order_) {
        KeyState& state = keys_[key];
        if (state.inflight) continue;  // never two writes of a key at once
        const Item& item = *state.queued;
        if (item.ready_at > now) {
          next_wake = std::min(next_wake, item.ready_at);
          continue;
        }
        oldest = std::min(oldest, item.enqueued_at);
        batch_keys.push_back(key);
        if (batch_keys.size() == options_.max_batch) break;
      }
      const bool due =
          !batch_keys.empty() && (batch_keys.size() == options_.max_batch || closing_ ||
                                  flush_requests_ > 0 || oldest + options_.max_delay <= now);
      if (!due) {
        if (!batch_keys.empty()) next_wake = std::min(next_wake, oldest + options_.max_delay);
        if (next_wake == SteadyClock::time_point::max()) {
          wake_cv_.wait(lock);
        } else {
          wake_cv_.wait_until(lock, next_wake);
        }
        continue;
      }
      std::vector<QueuedWrite> batch;
      for (const std::string& key : batch_keys) {
        KeyState& state = keys_[key];
        state.inflight = std::move(state.queued);
        state.queued.reset();
        order_.erase(state.order_pos);
        state.in_order = false;
        batch.push_back(state.inflight->write);
      }
      lock.unlock();
      WriteOutcome outcome;
      try {
        outcome = options_.writer(batch);
      } catch (const std::exception& ex) {
        outcome = WriteOutcome::Failed(ex.what());
      } catch (...) {
        outcome = WriteOutcome::Failed("the writer threw a non-standard exception");
      }
      lock.lock();
      ++stats_.batches;
      std::vector<std::pair<std::string, uint64_t>> acks;
      std::vector<uint32_t> released;
      std::vector<std::pair<QueuedWrite, std::string>> dead;
      for (const QueuedWrite& w : batch) {
        KeyState& state = keys_[w.key];
        Item done = std::move(*state.inflight);
        state.inflight.reset();
        bytes_ -= Bytes(done);
        if (outcome.ok) {
          ++stats_.delivered;
          live_.erase(done.write.sequence);
          acks.emplace_back(done.write.key, done.write.sequence);
          released.insert(released.end(), done.segments.begin(), done.segments.end());
        } else if (state.queued) {
          // A newer write of the key is queued: it supersedes the failed one,
          // which it now also stands for in the journal.
          live_.erase(done.write.sequence);
          state.queued->segments.insert(state.queued->segments.end(), done.segments.begin(),
                                        done.segments.end());
          state.queued->enqueued_at = std::min(state.queued->enqueued_at, done.enqueued_at);
          ++stats_.coalesced;
        } else if (done.write.attempt >= options_.max_attempts) {
          ++stats_.dead_letters;
          live_.erase(done.write.sequence);
          // Handled (by the dead-letter callback): not to be replayed.
          acks.emplace_back(done.write.key, done.write.sequence);
          released.insert(released.end(), done.segments.begin(), done.segments.end());
          dead.emplace_back(done.write, outcome.error);
        } else {
          ++stats_.retries;
          ++done.write.attempt;
          done.ready_at = SteadyClock::now() + Backoff(done.write.attempt - 1);
          bytes_ += Bytes(done);
          state.queued = std::move(done);
          state.order_pos = order_.insert(order_.end(), w.key);
          state.in_order = true;
          continue;
        }
        if (!state.queued) keys_.erase(w.key);
      }
      if (!dead.empty()) ++dead_letters_running_;  // Flush waits for the callbacks too
      lock.unlock();
      if (journal_ != nullptr) {
        if (!acks.empty()) journal_->AppendAcks(acks);  // a lost ack means a repeat, not a loss
        for (uint32_t segment : released) journal_->Release(segment, 1);
      }
      for (auto& [write, error] : dead) CallDeadLetter(write, error);
      lock.lock();
      if (!dead.empty()) --dead_letters_running_;
      space_cv_.notify_all();
      idle_cv_.notify_all();
    }
  }

  Cache* const cache_;
  const WriteBehindOptions options_;
  std::unique_ptr<Journal> journal_;

  mutable std::mutex mu_;
  std::condition_variable wake_cv_;   // the flusher
  std::condition_variable space_cv_;  // writers waiting for room
  std::condition_variable idle_cv_;   // Flush
  std::unordered_map<std::string, KeyState> keys_;
  std::list<std::string> order_;  // keys with a queued write, oldest first
  std::set<uint64_t> live_;
  uint64_t next_sequence_ = 1;
  // From Start until DropCachedValuesOfReplayedKeys. Not derived from keys_:
  // the flusher may deliver a replayed write before the drop, and the cache
  // must lose its older value of that key all the same.
  std::vector<std::string> replayed_keys_;
  size_t bytes_ = 0;
  size_t reserved_ = 0;  // part of bytes_ held for writes being journaled
  int flush_requests_ = 0;
  int dead_letters_running_ = 0;  // batches whose dead-letter callbacks are running
  bool closing_ = false;
  bool stop_ = false;
  bool stopped_ = false;
  WriteBehindStats stats_;
  std::mt19937_64 jitter_;
  std::thread flusher_;
};

// ---- WriteBehind ----

Status WriteBehind::Open(Cache* cache, WriteBehindOptions options,
                         std::unique_ptr<WriteBehind>* out) {
  if (out == nullptr) return Status::kInvalidArgument;
  out->reset();
  if (cache == nullptr || !options.writer || options.max_batch == 0 ||
      options.max_queue_entries == 0 || options.max_queue_bytes == 0 || options.max_attempts < 1 ||
      options.max_delay.count() < 0 || options.enqueue_timeout.count() < 0 ||
      options.retry_base.count() <= 0 || options.retry_max < options.retry_base ||
      options.journal_sync_interval.count() <= 0) {
    return Status::kInvalidArgument;
  }
  if (cache->pending_writes() != nullptr) return Status::kInvalidArgument;  // one per cache
  auto impl = std::make_shared<Impl>(cache, std::move(options));
  if (Status s = impl->Start(); s != Status::kOk) return s;
  cache->AttachPendingWrites(impl);
  impl->DropCachedValuesOfReplayedKeys();
  out->reset(new WriteBehind(std::move(impl)));
  return Status::kOk;
}

WriteBehind::WriteBehind(std::shared_ptr<Impl> impl)
    : impl_(std::move(impl)), fork_generation_(internal::ForkGeneration()) {}

bool WriteBehind::InheritedAcrossFork() const {
  return fork_generation_ != internal::ForkGeneration();
}

WriteBehind::~WriteBehind() {
  if (InheritedAcrossFork()) {
    // The flusher and the journal's syncer are the parent's threads; the
    // journal is the parent's file. Leave everything as the fork left it.
    new std::shared_ptr<Impl>(std::move(impl_));
    return;
  }
  impl_->Shutdown(std::chrono::nanoseconds(0));
}

Status WriteBehind::Put(std::string_view key, std::string_view value) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Write(key, value, nullptr);
}
Status WriteBehind::Put(std::string_view key, std::string_view value, const PutOptions& options) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Write(key, value, &options);
}
Status WriteBehind::Delete(std::string_view key) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Write(key, std::nullopt, nullptr);
}
Status WriteBehind::Flush(std::chrono::nanoseconds timeout) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Flush(timeout);
}
Status WriteBehind::Close(std::chrono::nanoseconds timeout) {
  if (InheritedAcrossFork()) return Status::kForked;
  return impl_->Shutdown(timeout);
}
WriteBehindStats WriteBehind::GetStats() const {
  if (InheritedAcrossFork()) return {};  // its lock may be held by a thread of the parent
  return impl_->Stats();
}

}  // namespace larder
