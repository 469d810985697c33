// Writing through the cache to a store (DESIGN.md section 4, W1-W3).
//
// Three patterns, from simplest to fastest:
//  * cache-aside: write the store yourself, then Cache::Invalidate(key);
//  * write-through (Cache::WriteThrough): the store write runs first; the
//    cache changes only if it succeeds; writes of one key are serialised;
//  * write-behind (WriteBehind): the cache changes now and the store write is
//    queued, batched, coalesced and retried by a flusher thread; with a
//    journal directory nothing acknowledged is lost even if the process dies.
#ifndef LARDER_WRITE_BEHIND_H_
#define LARDER_WRITE_BEHIND_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "larder/status.h"

namespace larder {

class Cache;
struct PutOptions;

// What a store writer reports.
struct WriteOutcome {
  static WriteOutcome Ok() { return {}; }
  static WriteOutcome Failed(std::string error) { return {false, std::move(error)}; }
  bool ok = true;
  std::string error;
};

// Write-through: writes one key (value nullopt = delete it) to the store.
using StoreWriter =
    std::function<WriteOutcome(std::string_view key, std::optional<std::string_view> value)>;

// One queued write as the batch writer sees it. `sequence` grows with every
// write ever queued (it survives restarts with a journal), so a writer can be
// idempotent: ignore a write whose sequence is not above what it stored for
// the key. Delivery is at least once.
struct QueuedWrite {
  std::string key;
  std::optional<std::string> value;  // nullopt: delete the key
  uint64_t sequence = 0;
  int attempt = 1;        // 1 on the first delivery
  bool replayed = false;  // recovered from the journal at open
};

// Writes a batch; all of it succeeds or all of it is retried.
using BatchWriter = std::function<WriteOutcome(const std::vector<QueuedWrite>& batch)>;
// Gets a write that failed max_attempts times, with the last error; it is
// then removed from the queue (and the journal).
using DeadLetter = std::function<void(const QueuedWrite& write, const std::string& error)>;

enum class JournalSync {
  kEveryWrite,  // fdatasync before Put returns (group commit): nothing acknowledged is lost
  kInterval,    // fdatasync every journal_sync_interval: at most that much is lost on power loss
  kNever,       // leave it to the OS: survives a crashed process, not a crashed machine
};
// When the journal's own writes fail (full disk, file size limit, EIO):
//  * a Put/Delete whose journal append fails, or (kEveryWrite) whose
//    fdatasync fails, returns kIoError: it is not acknowledged, not queued,
//    and the cache is not changed. Its outcome is unknown, like a failed
//    commit's: its record may survive in the journal and be replayed to the
//    writer after a restart (as the newest write of its key, if no later
//    one was accepted).
//  * no acknowledged write is lost: a part-written record is cut off (or
//    left behind in its own segment), so later writes stay readable, and a
//    segment whose fdatasync failed is not written to again.
//  * with kInterval, writes are acknowledged before the sync; a failed sync
//    is counted in WriteBehindStats::journal_sync_failures.

struct WriteBehindOptions {
  BatchWriter writer;  // required
  size_t max_batch = 128;
  std::chrono::nanoseconds max_delay{std::chrono::milliseconds(50)};  // before a partial batch goes
  size_t max_queue_entries = 100000;                                  // keys with a pending write
  size_t max_queue_bytes = 64 << 20;                                  // their keys and values
  // When the queue is full: wait up to this long for room, then kBusy; zero
  // fails at once.
  std::chrono::nanoseconds enqueue_timeout{0};
  int max_attempts = 8;
  std::chrono::nanoseconds retry_base{std::chrono::milliseconds(10)};  // doubled per attempt,
  std::chrono::nanoseconds retry_max{std::chrono::seconds(10)};        // capped, with jitter
  DeadLetter dead_letter;
  // Durable queue: empty keeps the queue in memory only.
  std::string journal_dir;
  JournalSync journal_sync = JournalSync::kEveryWrite;
  std::chrono::nanoseconds journal_sync_interval{std::chrono::milliseconds(100)};
  uint64_t journal_segment_bytes = 64 << 20;
};

struct WriteBehindStats {
  uint64_t queue_depth = 0;  // keys with a pending or in-flight write
  uint64_t queue_bytes = 0;
  int64_t oldest_pending_nanos = 0;  // age of the oldest pending write
  uint64_t writes = 0;               // Put/Delete calls accepted
  uint64_t coalesced = 0;  // writes replaced by a newer one of the same key before delivery
  uint64_t delivered = 0;  // writes the writer accepted
  uint64_t batches = 0;
  uint64_t retries = 0;  // failed deliveries that were retried
  uint64_t dead_letters = 0;
  uint64_t rejected = 0;  // Put/Delete refused because the queue was full
  uint64_t journal_bytes = 0;
  uint64_t replayed_writes = 0;          // recovered from the journal at open
  uint64_t journal_truncated_bytes = 0;  // torn or corrupt tails cut off at open
  uint64_t journal_sync_failures = 0;    // fdatasync/fsync calls on the journal that failed
};

// Write-behind for one cache. Thread-safe. While a key has a pending write,
// the cache's GetOrLoad answers from it and never calls the loader
// (read-your-writes), even if the entry was evicted.
class WriteBehind {
 public:
  // Opens (and, with a journal, first recovers: writes not acknowledged by
  // the writer in an earlier run are queued ahead of any new one).
  static Status Open(Cache* cache, WriteBehindOptions options, std::unique_ptr<WriteBehind>* out);
  // Close() with no time limit. In a child process after fork(), a queue
  // the parent opened is left untouched instead: the destructor returns at
  // once, delivers nothing and never writes to or syncs the parent's
  // journal (the parent still owns it); every other call returns kForked.
  ~WriteBehind();
  WriteBehind(const WriteBehind&) = delete;
  WriteBehind& operator=(const WriteBehind&) = delete;

  // Updates the cache now and queues the store write. kOk means accepted
  // (and, with kEveryWrite, durable); kBusy: the queue stayed full; kClosed;
  // kIoError: the journal append or its sync failed (see JournalSync).
  Status Put(std::string_view key, std::string_view value);
  Status Put(std::string_view key, std::string_view value, const PutOptions& options);
  Status Delete(std::string_view key);

  // Waits until every write queued before the call has been delivered or
  // dead-lettered (its dead-letter callback has returned); kTimeout if
  // `timeout` (zero: no limit) passes first; kClosed if the queue was closed
  // with writes left undelivered (they stay in the journal for the next
  // open).
  Status Flush(std::chrono::nanoseconds timeout = {});
  // Stops accepting writes, drains the queue (as Flush), stops the flusher.
  // Writes still undelivered at the timeout stay in the journal (replayed at
  // the next open) or, without one, go to the dead-letter callback: never
  // silently dropped. Idempotent.
  Status Close(std::chrono::nanoseconds timeout = {});

  WriteBehindStats GetStats() const;  // all zero in a child after fork()
  // True in a child process for a queue opened before the fork.
  bool InheritedAcrossFork() const;

  class Impl;

 private:
  explicit WriteBehind(std::shared_ptr<Impl> impl);
  // Shared with the cache, which looks into the queue on misses until Close.
  std::shared_ptr<Impl> impl_;
  uint64_t fork_generation_;
};

}  // namespace larder

#endif  // LARDER_WRITE_BEHIND_H_
