// The write-behind queue (write_behind.h, DESIGN.md W2-W3) under a store
// writer that fails or succeeds as the input says, against a model of the
// queue's rules:
//  * every accepted write is delivered, replaced by a newer write of its key
//    before delivery (coalesced), or handed to the dead-letter callback after
//    max_attempts failures (or at a close without a journal), exactly once;
//  * a key's writes reach the writer in order, one at a time, each batch
//    holding a key at most once and never more than max_batch writes;
//  * the queue bounds hold and a write is refused (kBusy) exactly when they
//    would not; the stats count what happened;
//  * while a key has a pending write every read answers with it and the
//    loader is never called (read-your-writes); otherwise reads answer what
//    the store or the newest write holds;
//  * with a journal, a close that leaves writes undelivered keeps them, and
//    the next open replays exactly those, ahead of new writes.
//
// Deterministic on purpose: batches go only when one is full, on Flush or on
// Close (max_delay is an hour), the writer blocks until a later step tells it
// how the batch went (the gate), and after each step the driver waits until
// the flusher is blocked in the writer or has finished with its last batch.
// Flush and Close drain with the gate open (outcomes from an input byte).
// Retries are immediate (a backoff of 1 ns).
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fuzz_input.h"
#include "larder/cache.h"
#include "larder/write_behind.h"

namespace {

using larder::fuzz::Bytes;

constexpr int kKeys = 6;
const char* const kKeyNames[kKeys] = {"a", "bb", "ccc", "dddd", "e", "ff"};
int KeyIndex(std::string_view key) {
  for (int i = 0; i < kKeys; ++i) {
    if (key == kKeyNames[i]) return i;
  }
  return -1;
}

// A write the model knows of. seq 0: not yet seen by the writer (with a
// journal, sequences after a reopen are the journal's business).
struct Write {
  std::optional<std::string> value;  // nullopt: a delete
  uint64_t seq = 0;
  int attempt = 1;
  bool replayed = false;
};

size_t BytesOf(int k, const Write& w) {
  return std::string_view(kKeyNames[k]).size() + (w.value ? w.value->size() : 0);
}

struct Limits {
  size_t max_batch;
  size_t max_entries;
  size_t max_bytes;
  int max_attempts;
  bool journal;
};

// Shared by the driver (fuzz thread) and the writer and dead-letter
// callbacks (the flusher thread); everything under mu.
struct Model {
  std::mutex mu;
  std::condition_variable cv;
  Limits limits{};

  std::optional<Write> queued[kKeys];
  std::optional<Write> inflight[kKeys];
  std::optional<std::string> store[kKeys];   // what the store holds
  std::optional<std::string> newest[kKeys];  // the newest accepted write
  bool written[kKeys] = {};
  uint64_t last_seq[kKeys] = {};             // of the last write of the key the writer saw
  std::map<uint64_t, std::string> due_dead;  // sequence -> error: dead letters owed

  // This instance's counters, as WriteBehindStats counts them.
  uint64_t writes = 0, coalesced = 0, delivered = 0, batches = 0, retries = 0, dead = 0,
           rejected = 0;
  uint64_t next_seq = 1;  // memory mode: the sequence the next accepted write gets
  bool seq_known = true;  // false after a journal reopen
  bool closing = false;   // Close has started: batches need not be full
  bool flushing = false;  // Flush is running: batches need not be full
  bool attached = true;   // false after a close: the cache no longer looks into the queue

  // The gate.
  bool gated = true;
  bool at_gate = false;
  bool released = false;
  bool release_ok = true;
  uint8_t auto_bits = 0;  // outcome of the n-th writer call with the gate open: bit n % 8

  size_t QueuedKeys() const {
    size_t n = 0;
    for (const auto& q : queued) n += q.has_value();
    return n;
  }
  size_t Depth() const {
    size_t n = 0;
    for (int k = 0; k < kKeys; ++k) n += queued[k] || inflight[k];
    return n;
  }
  size_t QueueBytes() const {
    size_t n = 0;
    for (int k = 0; k < kKeys; ++k) {
      if (queued[k]) n += BytesOf(k, *queued[k]);
      if (inflight[k]) n += BytesOf(k, *inflight[k]);
    }
    return n;
  }
  const Write* Pending(int k) const {
    return queued[k] ? &*queued[k] : inflight[k] ? &*inflight[k] : nullptr;
  }
};

Model* g_model = nullptr;  // the input being run (libFuzzer runs one at a time)

larder::WriteOutcome StoreWriter(const std::vector<larder::QueuedWrite>& batch) {
  Model& m = *g_model;
  std::unique_lock<std::mutex> lock(m.mu);
  FUZZ_CHECK(!batch.empty() && batch.size() <= m.limits.max_batch);
  // Only full batches go unless a flush or close asks (max_delay is an hour).
  FUZZ_CHECK(batch.size() == m.limits.max_batch || m.flushing || m.closing);
  bool seen[kKeys] = {};
  for (const larder::QueuedWrite& w : batch) {
    const int k = KeyIndex(w.key);
    FUZZ_CHECK(k >= 0 && !seen[k]);  // a key at most once per batch
    seen[k] = true;
    // The key's newest queued write, never one behind a write in flight.
    FUZZ_CHECK(m.queued[k].has_value() && !m.inflight[k].has_value());
    Write& q = *m.queued[k];
    FUZZ_CHECK(w.value == q.value && w.attempt == q.attempt && w.replayed == q.replayed);
    if (q.seq != 0) FUZZ_CHECK(w.sequence == q.seq);
    // A key's writes in order; only a retry or a replay repeats the last one.
    FUZZ_CHECK(w.sequence > m.last_seq[k] ||
               (w.sequence == m.last_seq[k] && (w.attempt > 1 || w.replayed)));
    q.seq = w.sequence;
    m.inflight[k] = std::move(m.queued[k]);
    m.queued[k].reset();
  }
  const uint64_t call = ++m.batches;
  bool ok;
  if (m.gated) {
    m.at_gate = true;
    m.cv.notify_all();
    m.cv.wait(lock, [&] { return m.released; });
    m.released = false;
    m.at_gate = false;
    ok = m.release_ok;
  } else {
    ok = (m.auto_bits >> (call % 8) & 1) == 0;
  }
  const std::string error = "store down " + std::to_string(call);
  for (const larder::QueuedWrite& w : batch) {
    const int k = KeyIndex(w.key);
    Write done = std::move(*m.inflight[k]);
    m.inflight[k].reset();
    m.last_seq[k] = done.seq;
    if (ok) {
      ++m.delivered;
      m.store[k] = done.value;
    } else if (m.queued[k]) {
      ++m.coalesced;  // the newer queued write stands for it now
    } else if (done.attempt >= m.limits.max_attempts) {
      m.due_dead.emplace(done.seq, error);
    } else {
      ++m.retries;
      ++done.attempt;
      m.queued[k] = std::move(done);
    }
  }
  m.cv.notify_all();
  return ok ? larder::WriteOutcome::Ok() : larder::WriteOutcome::Failed(error);
}

void DeadLetter(const larder::QueuedWrite& w, const std::string& error) {
  Model& m = *g_model;
  std::lock_guard<std::mutex> lock(m.mu);
  const int k = KeyIndex(w.key);
  FUZZ_CHECK(k >= 0);
  if (error == "closed before delivery") {
    // Close without a journal: what is still queued when it gives up.
    FUZZ_CHECK(m.closing && !m.limits.journal && m.queued[k].has_value());
    FUZZ_CHECK(w.value == m.queued[k]->value);
    m.queued[k].reset();
  } else {
    auto it = m.due_dead.find(w.sequence);
    FUZZ_CHECK(it != m.due_dead.end() && it->second == error);
    FUZZ_CHECK(w.attempt == m.limits.max_attempts);
    m.due_dead.erase(it);
  }
  ++m.dead;
  m.cv.notify_all();
}

// The store, as the cache's loader sees it. Never called while the key has
// a pending write.
larder::LoadResult StoreLoader(std::string_view key) {
  Model& m = *g_model;
  std::lock_guard<std::mutex> lock(m.mu);
  const int k = KeyIndex(key);
  FUZZ_CHECK(k >= 0);
  // Read-your-writes: never behind a pending write (after a close the cache
  // no longer knows of the writes a journal keeps).
  FUZZ_CHECK(!m.attached || m.Pending(k) == nullptr);
  if (!m.store[k]) return larder::LoadResult::NotFound();
  return larder::LoadResult::Value(*m.store[k]);
}

std::string JournalDir() {
  static const std::string dir = [] {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(base) + "/larder-fuzz-wb-" + std::to_string(::getpid());
  }();
  return dir;
}

struct Driver {
  Model m;
  std::shared_ptr<larder::ManualClock> clock = std::make_shared<larder::ManualClock>();
  std::unique_ptr<larder::Cache> cache;
  std::unique_ptr<larder::WriteBehind> wb;
  larder::WriteBehindOptions options;
  bool closed = false;
  uint64_t serial = 0;
  int reopens = 0;

  // Waits until the flusher is blocked in the writer, or idle with nothing
  // due and every batch and dead letter accounted for.
  void Settle() {
    if (closed) return;  // Close joined the flusher
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::unique_lock<std::mutex> lock(m.mu);
    for (;;) {
      FUZZ_CHECK(std::chrono::steady_clock::now() < deadline);  // the flusher is stuck
      if (m.at_gate && !m.released) return;
      if (m.released) {  // the writer has yet to take its answer
        m.cv.wait_until(lock, deadline, [&] { return !m.released; });
        continue;
      }
      if (!closed && m.QueuedKeys() >= m.limits.max_batch) {
        // A full batch is due: the flusher must bring it to the writer.
        m.cv.wait_until(lock, deadline, [&] { return m.at_gate; });
        continue;
      }
      const uint64_t batches = m.batches;
      const uint64_t dead = m.dead;
      const bool owed = !m.due_dead.empty();
      lock.unlock();
      const larder::WriteBehindStats s = wb->GetStats();
      lock.lock();
      if (!owed && s.batches == batches && s.dead_letters == dead && m.batches == batches) return;
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
  }

  void CheckStats() {
    if (closed) return;
    const larder::WriteBehindStats s = wb->GetStats();
    std::lock_guard<std::mutex> lock(m.mu);
    FUZZ_CHECK(s.writes == m.writes);
    FUZZ_CHECK(s.coalesced == m.coalesced);
    FUZZ_CHECK(s.delivered == m.delivered);
    FUZZ_CHECK(s.dead_letters == m.dead);
    FUZZ_CHECK(s.retries == m.retries);
    FUZZ_CHECK(s.rejected == m.rejected);
    FUZZ_CHECK(s.batches + (m.at_gate ? 1 : 0) == m.batches);
    FUZZ_CHECK(s.queue_depth == m.Depth());
    FUZZ_CHECK(s.queue_bytes == m.QueueBytes());
    FUZZ_CHECK(s.queue_depth <= m.limits.max_entries && s.queue_bytes <= m.limits.max_bytes);
  }

  void Release(bool ok) {
    std::lock_guard<std::mutex> lock(m.mu);
    if (!m.at_gate) return;
    m.release_ok = ok;
    m.released = true;
    m.cv.notify_all();
  }

  void DoWrite(int k, std::optional<std::string> value, std::optional<int64_t> ttl) {
    const std::string key = kKeyNames[k];
    larder::Status expected;
    {
      std::lock_guard<std::mutex> lock(m.mu);
      const Write w{value, 0, 1, false};
      const bool present = m.queued[k] || m.inflight[k];
      const bool room = (present || m.Depth() < m.limits.max_entries) &&
                        m.QueueBytes() + BytesOf(k, w) <= m.limits.max_bytes;
      expected = closed ? larder::Status::kClosed
                 : room ? larder::Status::kOk
                        : larder::Status::kBusy;
    }
    if (expected == larder::Status::kOk) {
      // Into the model first: the flusher may take the write to the writer
      // before Put returns.
      std::lock_guard<std::mutex> lock(m.mu);
      ++m.writes;
      Write w{value, 0, 1, false};
      if (m.seq_known) w.seq = m.next_seq++;
      if (m.queued[k]) ++m.coalesced;  // the older queued write is replaced before delivery
      m.queued[k] = std::move(w);
      m.newest[k] = value;
      m.written[k] = true;
    }
    larder::Status s;
    if (!value) {
      s = wb->Delete(key);
    } else if (ttl) {
      larder::PutOptions p;
      p.ttl = std::chrono::nanoseconds(*ttl);
      s = wb->Put(key, *value, p);
    } else {
      s = wb->Put(key, *value);
    }
    FUZZ_CHECK(s == expected);
    if (s == larder::Status::kBusy) {
      std::lock_guard<std::mutex> lock(m.mu);
      ++m.rejected;
    }
  }

  // A read of key k through one of the read paths.
  void DoRead(int k, uint8_t how) {
    const std::string key = kKeyNames[k];
    std::optional<std::string> pending;
    bool is_pending;
    std::vector<std::optional<std::string>> allowed;
    {
      std::lock_guard<std::mutex> lock(m.mu);
      const Write* p = m.attached ? m.Pending(k) : nullptr;
      is_pending = p != nullptr;
      if (p) pending = p->value;
      allowed.push_back(m.store[k]);
      if (m.written[k]) allowed.push_back(m.newest[k]);
    }
    auto check = [&](bool found, std::string_view value, bool may_miss) {
      if (is_pending) {
        FUZZ_CHECK(found == pending.has_value());
        if (found) FUZZ_CHECK(value == *pending);
        return;
      }
      if (!found && may_miss) return;
      bool ok = false;
      for (const auto& a : allowed) ok |= found ? a && *a == value : !a;
      FUZZ_CHECK(ok);
    };
    switch (how % 5) {
      case 0: {
        std::string got;
        const larder::Status s = cache->Get(key, &got);
        FUZZ_CHECK(s == larder::Status::kOk || s == larder::Status::kNotFound);
        check(s == larder::Status::kOk, got, true);
        break;
      }
      case 1: {
        larder::PinnedValue p = cache->Pin(key);
        check(static_cast<bool>(p), p.value(), true);
        break;
      }
      case 2: {
        const bool c = cache->Contains(key);
        if (is_pending) FUZZ_CHECK(c == pending.has_value());
        break;
      }
      case 3: {
        larder::FetchResult r = cache->GetOrLoad(key);
        FUZZ_CHECK(r.status == larder::Status::kOk || r.status == larder::Status::kNotFound);
        check(r.status == larder::Status::kOk, r.value.value(), false);
        break;
      }
      default: {
        larder::FetchLookup f = cache->BeginFetch(key);
        FUZZ_CHECK(f.kind != larder::FetchLookup::Kind::kWait);  // nobody else loads
        if (f.kind == larder::FetchLookup::Kind::kLead) {
          FUZZ_CHECK(!is_pending);
          f.result = f.lease.Complete(StoreLoader(key));
        }
        FUZZ_CHECK(f.result.status == larder::Status::kOk ||
                   f.result.status == larder::Status::kNotFound);
        check(f.result.status == larder::Status::kOk, f.result.value.value(), false);
        break;
      }
    }
  }

  // Flush or Close with the gate open: the flusher runs free meanwhile.
  void OpenGate(uint8_t bits) {
    std::lock_guard<std::mutex> lock(m.mu);
    m.gated = false;
    m.auto_bits = bits;
    if (m.at_gate) {  // the batch in the writer goes as bit 0 says
      m.release_ok = (bits & 1) == 0;
      m.released = true;
      m.cv.notify_all();
    }
  }
  void CloseGate() {
    std::lock_guard<std::mutex> lock(m.mu);
    m.gated = true;
  }

  void DoFlush(uint8_t bits) {
    if (closed) {
      // Without a journal a closed queue holds nothing. (With one, writes a
      // hurried close left behind stay counted, and an unbounded Flush
      // would wait for them for ever.)
      if (!m.limits.journal) FUZZ_CHECK(wb->Flush() == larder::Status::kOk);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(m.mu);
      m.flushing = true;
    }
    OpenGate(bits);
    FUZZ_CHECK(wb->Flush() == larder::Status::kOk);
    {
      std::unique_lock<std::mutex> lock(m.mu);
      // Everything accepted before it is delivered or dead-lettered (the
      // callbacks themselves may still be on their way).
      FUZZ_CHECK(m.Depth() == 0);
      m.flushing = false;
    }
    CloseGate();
    Settle();
  }

  void DoClose(uint8_t bits, bool hurry) {
    if (closed) {
      FUZZ_CHECK(wb->Close() == larder::Status::kOk);  // idempotent
      return;
    }
    {
      std::lock_guard<std::mutex> lock(m.mu);
      m.closing = true;
    }
    OpenGate(bits);
    const larder::Status s = wb->Close(std::chrono::nanoseconds(hurry ? 1 : 0));
    FUZZ_CHECK(s == larder::Status::kOk || (hurry && s == larder::Status::kTimeout));
    std::lock_guard<std::mutex> lock(m.mu);
    FUZZ_CHECK(m.due_dead.empty());  // Close returns after the dead letters
    for (int k = 0; k < kKeys; ++k) FUZZ_CHECK(!m.inflight[k]);
    // Without a journal nothing is left; with one, what is left is kept.
    if (!m.limits.journal) {
      for (int k = 0; k < kKeys; ++k) FUZZ_CHECK(!m.queued[k]);
    }
    m.attached = false;
    closed = true;
  }

  void Reopen() {
    wb.reset();
    std::lock_guard<std::mutex> lock(m.mu);
    m.writes = m.coalesced = m.delivered = m.batches = m.retries = m.dead = m.rejected = 0;
    m.closing = false;
    m.gated = true;
    m.attached = true;
    size_t replayed = 0;
    for (int k = 0; k < kKeys; ++k) {
      if (m.queued[k]) {  // kept in the journal: replayed ahead of new writes
        m.queued[k]->attempt = 1;
        m.queued[k]->replayed = true;
        ++replayed;
      }
    }
    if (m.limits.journal) {
      m.seq_known = false;
    } else {
      m.next_seq = 1;  // a new queue without a journal numbers from 1
      for (uint64_t& last : m.last_seq) last = 0;
    }
    larder::Status s = larder::WriteBehind::Open(cache.get(), options, &wb);
    FUZZ_CHECK(s == larder::Status::kOk);
    FUZZ_CHECK(wb->GetStats().replayed_writes == replayed);
    closed = false;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in{data, size};
  Driver d;
  g_model = &d.m;
  Limits& limits = d.m.limits;
  limits.max_batch = 1 + in.Next() % 4;
  limits.max_entries = 1 + in.Next() % 6;
  limits.max_bytes = 8 + in.Next() % 16 * 8;
  limits.max_attempts = 1 + in.Next() % 3;
  limits.journal = in.Next() % 4 == 0;

  larder::Options o;
  o.capacity_bytes = 1 << 20;
  o.capacity_entries = 2 + in.Next() % 4;  // small: writes are evicted from the cache too
  o.stripes = 1;
  o.loader = StoreLoader;
  o.clock = d.clock;
  o.refresh_beta = 0;
  if (larder::Cache::Create(o, &d.cache) != larder::Status::kOk) return 0;

  larder::WriteBehindOptions& w = d.options;
  w.writer = StoreWriter;
  w.dead_letter = DeadLetter;
  w.max_batch = limits.max_batch;
  w.max_delay = std::chrono::hours(1);  // batches go when full, on Flush or on Close
  w.max_queue_entries = limits.max_entries;
  w.max_queue_bytes = limits.max_bytes;
  w.max_attempts = limits.max_attempts;
  w.retry_base = w.retry_max = std::chrono::nanoseconds(1);
  if (limits.journal) {
    // Recovery is what is tested, not the disk: tmpfs, no fsync.
    const std::string dir = JournalDir();
    std::filesystem::remove_all(dir);
    w.journal_dir = dir;
    w.journal_sync = larder::JournalSync::kNever;
    w.journal_segment_bytes = 4096;
  }
  FUZZ_CHECK(larder::WriteBehind::Open(d.cache.get(), w, &d.wb) == larder::Status::kOk);
  {
    std::unique_ptr<larder::WriteBehind> second;  // one queue per cache
    FUZZ_CHECK(larder::WriteBehind::Open(d.cache.get(), w, &second) ==
               larder::Status::kInvalidArgument);
  }

  while (!in.empty()) {
    const uint8_t op = in.Next() % 12;
    const int k = in.Next() % kKeys;
    switch (op) {
      case 0:
      case 1: {  // put, with a TTL now and then
        const uint8_t len = in.Next();
        std::optional<int64_t> ttl;
        if (len & 0x80) ttl = 1 + in.Next();
        std::string value = "v" + std::to_string(++d.serial);
        value.append(len % 24, '.');
        d.DoWrite(k, std::move(value), ttl);
        break;
      }
      case 2:
        d.DoWrite(k, std::nullopt, std::nullopt);
        break;
      case 3:
      case 4:
        d.DoRead(k, in.Next());
        break;
      case 5:  // the batch in the writer succeeds or fails
        d.Release(in.Next() % 2 == 0);
        break;
      case 6:
        d.DoFlush(in.Next());
        break;
      case 7: {  // the cache forgets: reads must still see pending writes
        const uint8_t how = in.Next() % 4;
        if (how == 0) d.cache->Invalidate(kKeyNames[k]);
        if (how == 1) d.cache->InvalidatePrefix(std::string_view(kKeyNames[k]).substr(0, 1));
        if (how == 2) d.cache->Clear();
        if (how == 3) d.clock->Advance(std::chrono::nanoseconds(64));  // TTLs of puts end
        break;
      }
      case 8: {  // a flush that cannot finish while the writer holds a batch
        bool held;
        {
          std::lock_guard<std::mutex> lock(d.m.mu);
          held = d.m.at_gate;
        }
        if (held && !d.closed) {
          FUZZ_CHECK(d.wb->Flush(std::chrono::nanoseconds(1)) == larder::Status::kTimeout);
        }
        break;
      }
      case 9: {  // bad keys: refused, nothing queued
        static const std::string long_key(larder::kMaxKeyLength + 1, 'k');
        const larder::Status s = k % 2 ? d.wb->Put("", "v") : d.wb->Delete(long_key);
        FUZZ_CHECK(s == (k % 2 ? larder::Status::kEmptyKey : larder::Status::kKeyTooLong));
        break;
      }
      case 10: {  // close (in a hurry: undelivered writes are dead letters or kept)
        const uint8_t how = in.Next();
        d.DoClose(how, how & 1);
        break;
      }
      case 11:  // a new queue on the same cache after a close
        if (d.closed && d.reopens < 2) {
          ++d.reopens;
          d.Reopen();
        }
        break;
    }
    d.Settle();
    d.CheckStats();
  }
  d.DoClose(0, false);
  d.wb.reset();
  d.cache.reset();
  g_model = nullptr;
  if (limits.journal) std::filesystem::remove_all(JournalDir());
  return 0;
}
