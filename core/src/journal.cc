#include "journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "crc32c.h"

namespace larder::internal {

namespace journal_testing {
std::atomic<int (*)(int)> fdatasync_fn{&::fdatasync};
std::atomic<int (*)(int, off_t)> ftruncate_fn{&::ftruncate};
}  // namespace journal_testing

namespace {

int Fdatasync(int fd) { return journal_testing::fdatasync_fn.load(std::memory_order_relaxed)(fd); }
int Ftruncate(int fd, off_t length) {
  return journal_testing::ftruncate_fn.load(std::memory_order_relaxed)(fd, length);
}

constexpr size_t kHeaderBytes = 8;               // length + CRC
constexpr size_t kFixedPayload = 1 + 8 + 4 + 4;  // type, sequence, key and value lengths
constexpr uint32_t kMaxPayload = 1u << 30;       // refuse absurd lengths on read

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t GetU32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t GetU64(const unsigned char* p) {
  return uint64_t{GetU32(p)} | uint64_t{GetU32(p + 4)} << 32;
}

// Writes all of p[0, n); *written gets how much was written (part of it if
// it fails).
bool WriteAll(int fd, const char* p, size_t n, size_t* written) {
  *written = 0;
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
    *written += static_cast<size_t>(w);
  }
  return true;
}

// Reads a whole segment with one read in the common case: sized by fstat, no
// stdio buffer and no large stack buffer (recovery reads every segment).
bool ReadFile(const std::string& path, std::string* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return false;
  }
  // One spare byte, so the read that finds the end needs no reallocation.
  out->resize(static_cast<size_t>(st.st_size) + 1);
  size_t done = 0;
  bool ok = true;
  for (;;) {
    if (done == out->size()) out->resize(done + 4096 + done / 2);  // grew since fstat
    const ssize_t n = ::read(fd, out->data() + done, out->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  ::close(fd);
  return ok;
}

// Segment files are named journal-<8 hex digits>.log.
bool ParseSegmentName(const char* name, uint32_t* id) {
  unsigned v = 0;
  int consumed = 0;
  if (std::sscanf(name, "journal-%8x.log%n", &v, &consumed) != 1) return false;
  if (name[consumed] != '\0' || std::strlen(name) != 20) return false;
  *id = v;
  return true;
}

}  // namespace

void EncodeJournalRecord(const JournalRecord& r, std::string* out) {
  std::string payload;
  payload.reserve(kFixedPayload + r.key.size() + r.value.size());
  payload.push_back(static_cast<char>(r.type));
  PutU64(&payload, r.sequence);
  PutU32(&payload, static_cast<uint32_t>(r.key.size()));
  PutU32(&payload, static_cast<uint32_t>(r.value.size()));
  payload += r.key;
  payload += r.value;
  PutU32(out, static_cast<uint32_t>(payload.size()));
  PutU32(out, Crc32c(payload.data(), payload.size()));
  *out += payload;
}

size_t DecodeJournalSegment(std::string_view bytes, std::vector<JournalRecord>* records) {
  const auto* base = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t pos = 0;
  while (bytes.size() - pos >= kHeaderBytes) {
    const uint32_t length = GetU32(base + pos);
    const uint32_t crc = GetU32(base + pos + 4);
    if (length < kFixedPayload || length > kMaxPayload) break;
    if (bytes.size() - pos - kHeaderBytes < length) break;  // torn
    const unsigned char* p = base + pos + kHeaderBytes;
    if (Crc32c(p, length) != crc) break;  // corrupt
    const uint8_t type = p[0];
    const uint64_t sequence = GetU64(p + 1);
    const uint32_t key_size = GetU32(p + 9);
    const uint32_t value_size = GetU32(p + 13);
    if (type < JournalRecord::kPut || type > JournalRecord::kAck) break;
    if (uint64_t{key_size} + value_size != length - kFixedPayload) break;
    if (type != JournalRecord::kPut && value_size != 0) break;
    JournalRecord r;
    r.type = static_cast<JournalRecord::Type>(type);
    r.sequence = sequence;
    r.key.assign(reinterpret_cast<const char*>(p + kFixedPayload), key_size);
    r.value.assign(reinterpret_cast<const char*>(p + kFixedPayload + key_size), value_size);
    records->push_back(std::move(r));
    pos += kHeaderBytes + length;
  }
  return pos;
}

Journal::Journal(std::string dir, FsyncPolicy policy, int64_t interval_nanos,
                 uint64_t segment_bytes)
    : dir_(std::move(dir)),
      policy_(policy),
      interval_nanos_(interval_nanos),
      segment_bytes_(segment_bytes) {}

std::string Journal::SegmentPath(uint32_t id) const {
  char name[32];
  std::snprintf(name, sizeof name, "journal-%08x.log", id);
  return dir_ + "/" + name;
}

Status Journal::Open(const std::string& dir, FsyncPolicy policy, int64_t interval_nanos,
                     uint64_t segment_bytes, std::unique_ptr<Journal>* out, Recovery* recovery) {
  if (dir.empty() || segment_bytes < 4096) return Status::kInvalidArgument;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::kIoError;
  std::unique_ptr<Journal> j(new Journal(dir, policy, interval_nanos, segment_bytes));

  std::vector<uint32_t> ids;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* entry = ::readdir(d)) {
      uint32_t id;
      if (ParseSegmentName(entry->d_name, &id)) ids.push_back(id);
    }
    ::closedir(d);
  } else {
    return Status::kIoError;
  }
  std::sort(ids.begin(), ids.end());

  // Read every segment's intact prefix; cut off what follows it.
  struct Located {
    JournalRecord record;
    uint32_t segment;
  };
  std::vector<Located> writes;
  std::unordered_map<std::string, uint64_t> acked;  // key -> largest acked sequence
  uint64_t max_sequence = 0;
  *recovery = Recovery();
  for (uint32_t id : ids) {
    std::string bytes;
    const std::string path = j->SegmentPath(id);
    if (!ReadFile(path, &bytes)) return Status::kIoError;
    std::vector<JournalRecord> records;
    const size_t intact = DecodeJournalSegment(bytes, &records);
    if (intact < bytes.size()) {
      recovery->truncated_bytes += bytes.size() - intact;
      if (::truncate(path.c_str(), static_cast<off_t>(intact)) != 0) return Status::kIoError;
    }
    j->sizes_[id] = intact;
    j->outstanding_[id] = 0;
    recovery->records_read += records.size();
    for (JournalRecord& r : records) {
      max_sequence = std::max(max_sequence, r.sequence);
      if (r.type == JournalRecord::kAck) {
        uint64_t& a = acked[r.key];
        a = std::max(a, r.sequence);
      } else {
        writes.push_back({std::move(r), id});
      }
    }
  }
  // The newest unacked write per key, covering all of that key's unacked ones.
  std::unordered_map<std::string, size_t> newest;  // key -> index into pending
  for (Located& w : writes) {
    auto a = acked.find(w.record.key);
    if (a != acked.end() && a->second >= w.record.sequence) continue;
    ++j->outstanding_[w.segment];
    auto it = newest.find(w.record.key);
    if (it == newest.end()) {
      newest.emplace(w.record.key, recovery->pending.size());
      recovery->pending.push_back({std::move(w.record), {w.segment}});
    } else {
      PendingRecord& p = recovery->pending[it->second];
      p.segments.push_back(w.segment);
      if (w.record.sequence > p.record.sequence) p.record = std::move(w.record);
    }
  }
  // Stable: our writer never gives two records one sequence, but a journal
  // that was edited or forged can (its CRCs are not a signature). Ties then
  // replay in the order the records stand in the journal.
  std::stable_sort(recovery->pending.begin(), recovery->pending.end(),
                   [](const PendingRecord& a, const PendingRecord& b) {
                     return a.record.sequence < b.record.sequence;
                   });
  recovery->next_sequence = max_sequence + 1;
  j->max_sequence_ = max_sequence;

  {
    std::lock_guard<std::mutex> lock(j->mu_);
    j->active_ = ids.empty() ? 0 : ids.back();  // the next segment follows the newest
    if (Status s = j->StartSegmentLocked(); s != Status::kOk) return s;
    j->DeleteReleasedSegmentsLocked();
  }
  if (policy == FsyncPolicy::kInterval) j->syncer_ = std::thread([p = j.get()] { p->SyncLoop(); });
  *out = std::move(j);
  return Status::kOk;
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  if (fd_ >= 0) {
    if (policy_ != FsyncPolicy::kNever) Fdatasync(fd_);
    ::close(fd_);
  }
}

// Opens the next segment and makes its name durable before giving up the
// old one, so a failure leaves the old one active (and rotate_ set, if it was)
// and the caller's append is refused; the next append tries again. The old
// segment is synced before it is closed; if that fails, its unsynced records
// are lost to their writers (SyncFailedLocked), but the new segment is used:
// it holds none of them.
Status Journal::StartSegmentLocked() {
  const uint32_t id = active_ + 1;
  const std::string path = SegmentPath(id);
  // O_TRUNC: a file of this id can only be one this function gave up on.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::kIoError;
  // The segment opens with a marker: an ack of the empty key (which no
  // write has) carrying the largest sequence so far. Older segments may be
  // deleted as soon as this one is active, and without it a journal whose
  // writes were all acknowledged would forget its sequences, and the next
  // run's writes would sort below older ones at an idempotent store.
  std::string marker;
  if (max_sequence_ > 0) {
    JournalRecord r;
    r.type = JournalRecord::kAck;
    r.sequence = max_sequence_;
    EncodeJournalRecord(r, &marker);
  }
  size_t written = 0;
  if (!marker.empty() && (!WriteAll(fd, marker.data(), marker.size(), &written) ||
                          (policy_ != FsyncPolicy::kNever && Fdatasync(fd) != 0))) {
    ::close(fd);
    ::unlink(path.c_str());
    return Status::kIoError;
  }
  if (policy_ != FsyncPolicy::kNever) {
    // Make the new file's name durable too: a record synced into a file whose
    // directory entry is lost is lost. As PostgreSQL's fsync_fname does, a
    // directory that cannot be opened or synced at all (EINVAL: not supported
    // by the file system) is let pass; an I/O error refuses the segment.
    int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      const bool failed = ::fsync(dfd) != 0 && errno != EINVAL;
      ::close(dfd);
      if (failed) {
        sync_failures_.fetch_add(1, std::memory_order_relaxed);
        ::close(fd);
        ::unlink(path.c_str());
        return Status::kIoError;
      }
    }
  }
  if (fd_ >= 0) {
    if (policy_ != FsyncPolicy::kNever && Fdatasync(fd_) != 0) {
      sync_failures_.fetch_add(1, std::memory_order_relaxed);
      SyncFailedLocked(synced_, appended_);
    }
    ::close(fd_);
  }
  // Everything so far is in closed segments: synced, or lost to a failure.
  synced_ = std::max(synced_, appended_);
  fd_ = fd;
  active_ = id;
  active_size_ = marker.size();
  rotate_ = false;
  sizes_[id] = marker.size();
  outstanding_[id] += 0;
  appended_ += marker.size();
  synced_ = std::max(synced_, appended_);  // the marker was synced above (or needs not be)
  return Status::kOk;
}

Status Journal::AppendLocked(const std::string& bytes, uint32_t* segment) {
  if (rotate_ || (active_size_ > 0 && active_size_ + bytes.size() > segment_bytes_)) {
    if (Status s = StartSegmentLocked(); s != Status::kOk) return s;
    DeleteReleasedSegmentsLocked();
  }
  size_t written = 0;
  if (!WriteAll(fd_, bytes.data(), bytes.size(), &written)) {
    // A torn record (file size limit, full disk): records appended after it
    // would be acknowledged but unreadable, as reading stops at it. Cut it
    // off. If that fails, leave it (recovery cuts it off, and reads the
    // segments after this one on their own) and start a new segment for
    // the next append.
    if (written > 0 && Ftruncate(fd_, static_cast<off_t>(active_size_)) != 0) {
      rotate_ = true;
      sizes_[active_] = active_size_ + written;  // what the file holds
    }
    return Status::kIoError;
  }
  active_size_ += bytes.size();
  sizes_[active_] += bytes.size();
  appended_ += bytes.size();
  if (segment != nullptr) *segment = active_;
  return Status::kOk;
}

Status Journal::AppendWrite(const JournalRecord& record, uint32_t* segment) {
  std::string bytes;
  EncodeJournalRecord(record, &bytes);
  uint64_t end;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = AppendLocked(bytes, segment); s != Status::kOk) return s;
    max_sequence_ = std::max(max_sequence_, record.sequence);
    ++outstanding_[*segment];
    end = appended_;
    if (policy_ == FsyncPolicy::kEveryWrite) ++waiters_;
  }
  if (policy_ != FsyncPolicy::kEveryWrite) return Status::kOk;
  if (Status s = SyncTo(end, true); s != Status::kOk) {
    // Not acknowledged, so nobody will Release it: it must not keep its
    // segment (and every later one) from being deleted.
    Release(*segment, 1);
    return s;
  }
  return Status::kOk;
}

Status Journal::AppendAcks(const std::vector<std::pair<std::string, uint64_t>>& acks) {
  std::string bytes;
  for (const auto& [key, sequence] : acks) {
    JournalRecord r;
    r.type = JournalRecord::kAck;
    r.sequence = sequence;
    r.key = key;
    EncodeJournalRecord(r, &bytes);
  }
  std::lock_guard<std::mutex> lock(mu_);
  return AppendLocked(bytes, nullptr);
}

void Journal::Release(uint32_t segment, uint32_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = outstanding_.find(segment);
  if (it == outstanding_.end()) return;
  it->second -= std::min<uint64_t>(it->second, count);
  DeleteReleasedSegmentsLocked();
}

void Journal::DeleteReleasedSegmentsLocked() {
  // Oldest first, stopping at the first with outstanding records, and never
  // the active one (see the invariants in journal.h).
  while (!outstanding_.empty()) {
    auto oldest = outstanding_.begin();
    if (oldest->first == active_ || oldest->second != 0) break;
    ::unlink(SegmentPath(oldest->first).c_str());
    sizes_.erase(oldest->first);
    outstanding_.erase(oldest);
  }
}

// Bytes [from, to) of the appended_ stream may not be on disk.
void Journal::SyncFailedLocked(uint64_t from, uint64_t to) {
  if (from >= to || waiters_ == 0) return;  // nobody can ask about them
  auto next = failed_.upper_bound(to);
  auto it = failed_.lower_bound(from);
  if (it != failed_.begin() && std::prev(it)->second >= from) --it;
  // Merge every range touching [from, to).
  while (it != next) {
    from = std::min(from, it->first);
    to = std::max(to, it->second);
    it = failed_.erase(it);
  }
  failed_.emplace(from, to);
}

// Whether the record ending at `end` lies in bytes a sync failed on. Ranges
// start and end on record boundaries, so a record is wholly in or out.
bool Journal::FailedLocked(uint64_t end) const {
  auto it = failed_.lower_bound(end);  // the first range starting at or after end
  if (it == failed_.begin()) return false;
  --it;
  return it->second >= end;
}

// Group commit: the writers queue on sync_mu_; each finds its record settled
// by an earlier writer's sync, or syncs everything appended so far.
Status Journal::SyncTo(uint64_t offset, bool waiter) {
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  std::unique_lock<std::mutex> lock(mu_);
  if (synced_ < offset) {
    const uint64_t from = synced_;
    const uint64_t upto = appended_;
    const uint32_t segment = active_;
    const int fd = ::dup(fd_);
    lock.unlock();
    // Not under mu_: appends go on meanwhile, and the next writers' records
    // wait for the next sync.
    const bool ok = fd >= 0 && Fdatasync(fd) == 0;
    if (fd >= 0) ::close(fd);
    lock.lock();
    if (ok) {
      synced_ = std::max(synced_, upto);
    } else {
      sync_failures_.fetch_add(1, std::memory_order_relaxed);
      if (segment == active_) {
        // Nothing in the segment past `from` can be trusted, including what
        // was appended during the sync; stop appending to it.
        SyncFailedLocked(from, appended_);
        synced_ = appended_;
        rotate_ = true;
      } else {
        // StartSegmentLocked closed the segment meanwhile; its own sync of it
        // may have "succeeded" after the kernel reported the error to us and
        // dropped the pages. Count everything it and any later rotation
        // settled as failed (more than needed, but only writers waiting here,
        // who have not been answered, are in it).
        SyncFailedLocked(from, std::max(synced_, upto));
        synced_ = std::max(synced_, upto);
      }
    }
  }
  const bool failed = FailedLocked(offset);
  if (waiter && --waiters_ == 0) failed_.clear();
  return failed ? Status::kIoError : Status::kOk;
}

void Journal::SyncLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::nanoseconds(interval_nanos_));
    if (stopping_) break;
    const uint64_t end = appended_;
    lock.unlock();
    SyncTo(end, false);  // acknowledged already; a failure is counted and rotates
    lock.lock();
  }
}

uint64_t Journal::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (const auto& [id, size] : sizes_) total += size;
  return total;
}

}  // namespace larder::internal
