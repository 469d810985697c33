// The write-behind journal (DESIGN.md W3): append-only segment files in one
// directory, so a queued write survives the process.
//
// Record: u32 payload length | u32 CRC-32C of the payload | payload, where
// payload = u8 type | u64 sequence | u32 key length | u32 value length | key |
// value (little-endian). Types: put, delete (no value), ack (no value): "the
// write of `key` with `sequence` and every older write of that key reached
// the writer".
//
// Invariants:
//  * Sequences grow across the journal's whole life: on open, the next one
//    follows the largest seen (acks included), and every segment starts with
//    a marker (an ack of the empty key) carrying the largest sequence so far,
//    so deleting older segments never loses it.
//  * A write record is outstanding until an ack for its key with a sequence
//    at least its own exists. Segments are deleted oldest first, and only
//    when no outstanding record is left in them and they are not active, so
//    an ack is never deleted while a write it covers still exists.
//  * Reading stops at the first record whose length or CRC is wrong: a torn
//    or corrupt tail is cut off (the file is truncated there) and the intact
//    prefix is kept. Each segment is read on its own, so a torn tail in one
//    does not hide the segments after it.
//  * No acknowledged write follows a torn record in its segment. An append
//    that fails part-way (EFBIG, ENOSPC, EIO) is cut back off with ftruncate;
//    if that fails too, the segment takes no more appends and the next one
//    starts a new segment. Either way the append returns kIoError and the
//    accounting (sizes, offsets, outstanding counts) never counts its bytes.
//  * With kEveryWrite, AppendWrite returns kOk only if an fdatasync that
//    began after the record was written succeeded and no sync of the same
//    bytes failed. A failed fdatasync (or dup) fails every AppendWrite whose
//    record it covered, including those of other threads waiting on it (group
//    commit); a later successful sync does not make them durable. So does a
//    failed sync of a segment being closed for a new one. The failed
//    segment is not trusted again ("fsyncgate": after a writeback error a
//    retried fsync can report success though the kernel dropped the dirty
//    pages): the next append starts a new segment. A record refused this way
//    may still be on disk and be replayed after a restart: its outcome is
//    unknown, like a failed commit's. Acknowledged records are never lost.
//  * kInterval acknowledges before syncing (by design): its failed syncs are
//    counted (sync_failures()) and also start a new segment.
#ifndef LARDER_CORE_SRC_JOURNAL_H_
#define LARDER_CORE_SRC_JOURNAL_H_

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "larder/status.h"

namespace larder::internal {

struct JournalRecord {
  enum Type : uint8_t { kPut = 1, kDelete = 2, kAck = 3 };
  Type type = kPut;
  uint64_t sequence = 0;
  std::string key;
  std::string value;
};

// Appends the encoding of `record` to *out.
void EncodeJournalRecord(const JournalRecord& record, std::string* out);

// Decodes the intact prefix of a segment's bytes into *records; returns its
// length in bytes (where a torn or corrupt tail begins). Never fails.
size_t DecodeJournalSegment(std::string_view bytes, std::vector<JournalRecord>* records);

enum class FsyncPolicy { kEveryWrite, kInterval, kNever };

// Test seam: the calls through which the journal's writes can fail in ways a
// test cannot provoke on a healthy disk (EIO from fdatasync, a failed
// ftruncate). They default to the real calls; only tests replace them (this
// header is internal, not installed) and restore them before the test ends.
// Atomic, so a journal's threads may read them while a test swaps them; a
// relaxed load costs nothing beside the system call it precedes.
namespace journal_testing {
extern std::atomic<int (*)(int)> fdatasync_fn;
extern std::atomic<int (*)(int, off_t)> ftruncate_fn;
}  // namespace journal_testing

class Journal {
 public:
  // A write found in the journal that no ack covers: the newest per key.
  struct PendingRecord {
    JournalRecord record;
    std::vector<uint32_t> segments;  // one per outstanding record it covers
  };
  struct Recovery {
    std::vector<PendingRecord> pending;  // in sequence order; ties in journal order
    uint64_t next_sequence = 1;
    uint64_t truncated_bytes = 0;  // torn or corrupt tails cut off
    uint64_t records_read = 0;
  };

  static Status Open(const std::string& dir, FsyncPolicy policy, int64_t interval_nanos,
                     uint64_t segment_bytes, std::unique_ptr<Journal>* out, Recovery* recovery);
  ~Journal();

  // Appends a put or delete; *segment receives the segment that holds it.
  // With kEveryWrite, returns kOk only once the record is on stable storage.
  // kIoError: the append or its sync failed; the record is not outstanding
  // (nothing to Release) but may survive in the journal (see above).
  Status AppendWrite(const JournalRecord& record, uint32_t* segment);
  // Appends acks (not synced: a lost ack only means a repeated delivery).
  Status AppendAcks(const std::vector<std::pair<std::string, uint64_t>>& acks);
  // `count` outstanding records of `segment` are now covered by acks.
  void Release(uint32_t segment, uint32_t count);

  uint64_t bytes() const;  // live bytes in all segment files
  uint64_t sync_failures() const { return sync_failures_.load(std::memory_order_relaxed); }

 private:
  Journal(std::string dir, FsyncPolicy policy, int64_t interval_nanos, uint64_t segment_bytes);
  Status StartSegmentLocked();
  Status AppendLocked(const std::string& bytes, uint32_t* segment);
  void DeleteReleasedSegmentsLocked();
  // Makes the bytes up to `offset` durable (or finds they cannot be). With
  // `waiter`, the caller is an AppendWrite counted in waiters_.
  Status SyncTo(uint64_t offset, bool waiter);
  void SyncFailedLocked(uint64_t from, uint64_t to);
  bool FailedLocked(uint64_t end) const;
  void SyncLoop();
  std::string SegmentPath(uint32_t id) const;

  const std::string dir_;
  const FsyncPolicy policy_;
  const int64_t interval_nanos_;
  const uint64_t segment_bytes_;

  mutable std::mutex mu_;
  int fd_ = -1;                // active segment
  uint32_t active_ = 0;        // its id
  uint64_t active_size_ = 0;   // its whole records' bytes: the file's size unless rotate_
  bool rotate_ = false;        // the active segment takes no more appends (see invariants)
  uint64_t appended_ = 0;      // total bytes of whole records appended by this process
  uint64_t max_sequence_ = 0;  // the largest sequence appended or recovered
  std::map<uint32_t, uint64_t> outstanding_;  // segment -> outstanding write records
  std::map<uint32_t, uint64_t> sizes_;        // segment -> bytes

  // Durability, as offsets into the appended_ stream (under mu_): bytes below
  // synced_ have been settled, either synced or lost to a failed sync; the
  // lost ones lie in failed_ (from -> to, disjoint, merged when they touch).
  // A record's writer is told it is durable iff its end is at most synced_
  // and in no failed_ range. failed_ is only kept while an AppendWrite waits
  // (waiters_ > 0): a later one's record lies above every range recorded.
  uint64_t synced_ = 0;
  std::map<uint64_t, uint64_t> failed_;
  uint64_t waiters_ = 0;
  std::atomic<uint64_t> sync_failures_{0};

  // One fdatasync at a time (group commit: the writers queued here find their
  // record settled by the sync before theirs). Taken before mu_, never after.
  std::mutex sync_mu_;

  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread syncer_;  // kInterval only
};

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_JOURNAL_H_
