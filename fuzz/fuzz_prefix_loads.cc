// InvalidatePrefix (and every other write) interleaved with loads: the L8
// race rule of DESIGN.md section 3. A load, lease or refresh that began
// before a write to its key (a put, an invalidation, a prefix invalidation
// covering it, a clear) may hand its result to the callers already waiting,
// but must never install it: after the write no read serves what was loaded
// before it.
//
// Everything runs on one thread, so every interleaving is the input's own:
// leases from BeginFetch are held and completed (or dropped) by later steps,
// tickets wait on them, background refreshes go to an executor that only
// queues them and later steps run or drop, and a loader may itself write to
// the cache while it loads.
//
// The check: every key has a generation that each write covering it bumps.
// Every value carries the generation it was made in (a put: the one it
// starts; a load: the one its flight began in). A value served from the
// cache must carry its key's current generation, and a cached "not found"
// or error may be served only if a load that began in the current
// generation answered so. Besides: at most one flight per key (L1), a
// waiter gets its leader's answer, a dropped lease or refresh is never
// cached, a loader that asks for its own key gets kRecursiveLoad.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_input.h"
#include "larder/cache.h"

namespace {

using larder::fuzz::Bytes;

// Keys that share prefixes in several ways.
constexpr int kKeys = 8;
const char* const kKeyNames[kKeys] = {"a", "b", "aa", "ab", "ba", "bb", "aba", "abb"};
int KeyIndex(std::string_view key) {
  for (int i = 0; i < kKeys; ++i) {
    if (key == kKeyNames[i]) return i;
  }
  return -1;
}

// Values are "<generation>/<serial>" plus padding (to vary their charge).
std::string MakeValue(uint64_t gen, uint64_t serial, size_t pad) {
  std::string v = std::to_string(gen) + "/" + std::to_string(serial);
  v.append(pad, '.');
  return v;
}
uint64_t GenOf(std::string_view value) {
  uint64_t gen = 0;
  size_t i = 0;
  for (; i < value.size() && value[i] >= '0' && value[i] <= '9'; ++i)
    gen = gen * 10 + (value[i] - '0');
  FUZZ_CHECK(i > 0 && i < value.size() && value[i] == '/');  // one of ours
  return gen;
}

constexpr uint64_t kNone = ~uint64_t{0};

struct Lease {
  larder::LoadLease lease;
  int key = -1;
  uint64_t begin_gen = 0;
  uint64_t id = 0;
};
struct Ticket {
  larder::LoadTicket ticket;
  int key = -1;
  uint64_t lease_id = 0;
};
struct Task {
  std::function<void()> run;
  int key = -1;
  uint64_t begin_gen = 0;
  uint64_t id = 0;
  bool claimed = false;  // a caller leads its flight: running it loads nothing
};
// What a finished flight gave its callers. A dropped lease fails its
// flight, and its waiters get the error or, within stale-if-error, the old
// value (of the generation it was dropped in).
struct Answer {
  larder::Status status;
  std::optional<std::string> value;
  bool dropped = false;
  uint64_t gen = 0;
};

struct Driver {
  std::shared_ptr<larder::ManualClock> clock;
  std::unique_ptr<larder::Cache> cache;
  uint64_t gen[kKeys] = {};
  uint64_t negative_gen[kKeys];  // a not-found/error answer of this generation may be cached
  // The flight the model knows is mapped for each key: a lease or a queued
  // refresh (its id), or kNone.
  uint64_t lease_for[kKeys];
  uint64_t refresh_for[kKeys];
  uint64_t serial = 0;
  uint64_t next_id = 1;
  Lease leases[4];
  Ticket tickets[4];
  std::deque<Task> tasks;
  std::vector<std::pair<uint64_t, Answer>> answers;  // lease id -> its answer, once finished
  // The cache loader's instructions for its next call.
  int current_key = -1;  // the key of the step running now (for the executor)
  uint64_t loader_begin_gen = 0;
  uint8_t loader_outcome = 0;
  bool expect_no_load = false;
  int loads = 0;

  Driver() {
    for (int i = 0; i < kKeys; ++i) negative_gen[i] = lease_for[i] = refresh_for[i] = kNone;
  }

  // A write covering key k: a new generation, and its flight is superseded.
  void Bump(int k) {
    ++gen[k];
    lease_for[k] = kNone;
    refresh_for[k] = kNone;
  }
  // A caller took over the queued refresh of key k, if there is one.
  void ClaimRefresh(int k) {
    if (refresh_for[k] == kNone) return;
    for (Task& t : tasks) {
      if (t.id == refresh_for[k]) t.claimed = true;
    }
    refresh_for[k] = kNone;
  }
  void BumpPrefix(std::string_view prefix) {
    for (int k = 0; k < kKeys; ++k) {
      if (std::string_view(kKeyNames[k]).substr(0, prefix.size()) == prefix) Bump(k);
    }
  }

  // A value or negative answer read from the cache for key k.
  void CheckServed(int k, larder::Status s, larder::FetchSource source, std::string_view value) {
    if (s == larder::Status::kOk) {
      FUZZ_CHECK(GenOf(value) == gen[k]);  // L8: nothing from before the last write
    } else if (source == larder::FetchSource::kNegative) {
      FUZZ_CHECK(s == larder::Status::kNotFound || s == larder::Status::kLoadFailed);
      FUZZ_CHECK(negative_gen[k] == gen[k]);
    }
  }

  // A flight of key k that began in generation begin_gen finished with
  // `outcome` (0 value, 1 not found, 2 error); from_loader: the loader (not
  // an abandonment) answered. Returns whether it was still current.
  bool Finished(int k, uint64_t begin_gen, uint8_t outcome, bool from_loader) {
    const bool current = begin_gen == gen[k];
    if (current && from_loader && outcome != 0) negative_gen[k] = gen[k];
    return current;
  }

  larder::LoadResult LoaderAnswer(int k, uint64_t begin_gen, uint8_t outcome, size_t pad,
                                  int64_t ttl) {
    switch (outcome % 3) {
      case 0:
        return larder::LoadResult::Value(MakeValue(begin_gen, ++serial, pad),
                                         std::chrono::nanoseconds(ttl));
      case 1:
        return larder::LoadResult::NotFound();
      default:
        return larder::LoadResult::Error("fuzz error " + std::to_string(k));
    }
  }
};

Driver* g_driver = nullptr;  // the input being run (libFuzzer runs one at a time)

// Options::loader: background refreshes and GetOrLoad without a loader.
larder::LoadResult CacheLoader(std::string_view key) {
  Driver& d = *g_driver;
  const int k = KeyIndex(key);
  FUZZ_CHECK(k >= 0);
  FUZZ_CHECK(!d.expect_no_load);  // a claimed refresh runs nothing
  ++d.loads;
  return d.LoaderAnswer(k, d.loader_begin_gen, d.loader_outcome, d.loader_outcome % 7 * 10, 400);
}

// Options::refresh_executor: queue; later steps run or drop the task.
void QueueRefresh(std::function<void()> task) {
  Driver& d = *g_driver;
  const int k = d.current_key;
  FUZZ_CHECK(k >= 0);
  // BeginRefresh makes no flight when the key has one (L1).
  FUZZ_CHECK(d.lease_for[k] == kNone && d.refresh_for[k] == kNone);
  const uint64_t id = d.next_id++;
  d.refresh_for[k] = id;
  d.tasks.push_back({std::move(task), k, d.gen[k], id});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in{data, size};
  Driver d;
  g_driver = &d;
  d.clock = std::make_shared<larder::ManualClock>();
  larder::Options o;
  o.stripes = 1 + in.Next() % 2;
  o.capacity_entries = 2 + in.Next() % 8;
  o.capacity_bytes = 600 + in.Next() % 8 * 100;
  o.clock = d.clock;
  o.negative_ttl = std::chrono::nanoseconds(in.Next() % 2 ? 300 : 0);
  o.error_ttl = std::chrono::nanoseconds(in.Next() % 2 ? 300 : 0);
  o.stale_while_revalidate = std::chrono::nanoseconds(in.Next() % 2 ? 200 : 0);
  o.stale_if_error = std::chrono::nanoseconds(in.Next() % 2 ? 200 : 0);
  o.refresh_beta = 0;  // no random early refreshes: refreshes happen where the input says
  o.loader = CacheLoader;
  o.refresh_executor = QueueRefresh;
  if (larder::Cache::Create(o, &d.cache) != larder::Status::kOk) return 0;
  larder::Cache& cache = *d.cache;

  auto find_answer = [&](uint64_t id) -> const Answer* {
    for (const auto& [lease_id, answer] : d.answers) {
      if (lease_id == id) return &answer;
    }
    return nullptr;
  };

  while (!in.empty()) {
    const uint8_t op = in.Next() % 16;
    const int k = in.Next() % kKeys;
    const std::string key = kKeyNames[k];
    d.current_key = k;
    switch (op) {
      case 0:
      case 1: {  // put
        const size_t pad = in.Next() % 4 == 0 ? in.Next() * 4 : in.Next() % 16;
        const int64_t ttl = in.Next() % 3 == 0 ? 0 : 1 + in.Next() * 4;
        d.Bump(k);
        const std::string value = MakeValue(d.gen[k], ++d.serial, pad);
        larder::PutOptions p;
        p.ttl = std::chrono::nanoseconds(ttl);
        const larder::Status s = cache.Put(key, value, p);
        FUZZ_CHECK(s == larder::Status::kOk || s == larder::Status::kValueTooLarge);
        break;
      }
      case 2: {  // get
        std::string got;
        const larder::Status s = cache.Get(key, &got);
        FUZZ_CHECK(s == larder::Status::kOk || s == larder::Status::kNotFound);
        d.CheckServed(k, s, larder::FetchSource::kHit, got);
        break;
      }
      case 3: {  // pin
        larder::PinnedValue p = cache.Pin(key);
        if (p) d.CheckServed(k, larder::Status::kOk, larder::FetchSource::kHit, p.value());
        break;
      }
      case 4:  // invalidate
        d.Bump(k);
        cache.Invalidate(key);
        break;
      case 5: {  // invalidate a prefix of this key (the empty one included)
        const std::string prefix = key.substr(0, in.Next() % (key.size() + 1));
        d.BumpPrefix(prefix);
        cache.InvalidatePrefix(prefix);
        break;
      }
      case 6:
        if (in.Next() % 4 == 0) {
          d.BumpPrefix("");
          cache.Clear();
        }
        break;
      case 7: {  // BeginFetch: a hit, a lease to hold, or a ticket to hold
        const int slot = in.Next() % 4;
        larder::FetchLookup f = cache.BeginFetch(key);
        if (f.kind == larder::FetchLookup::Kind::kDone) {
          d.CheckServed(k, f.result.status, f.result.source, f.result.value.value());
        } else if (f.kind == larder::FetchLookup::Kind::kLead) {
          FUZZ_CHECK(d.lease_for[k] == kNone);  // L1: one flight per key
          Lease& l = d.leases[slot];
          if (l.lease) {  // replacing a held lease abandons it
            FUZZ_CHECK(d.Finished(l.key, l.begin_gen, 2, false) == (d.lease_for[l.key] == l.id));
            if (d.lease_for[l.key] == l.id) d.lease_for[l.key] = kNone;
            d.answers.push_back(
                {l.id, {larder::Status::kLoadFailed, std::nullopt, true, d.gen[l.key]}});
          }
          // A queued refresh of the key is claimed by this caller (its task
          // will run nothing); a mapped flight began in this generation.
          d.ClaimRefresh(k);
          l.lease = std::move(f.lease);
          l.key = k;
          l.begin_gen = d.gen[k];
          l.id = d.next_id++;
          d.lease_for[k] = l.id;
        } else {
          FUZZ_CHECK(d.lease_for[k] != kNone);  // only our leases are loading
          Ticket& t = d.tickets[slot];
          t.ticket = f.ticket;
          t.key = k;
          t.lease_id = d.lease_for[k];
          FUZZ_CHECK(!t.ticket.ready());
        }
        break;
      }
      case 8: {  // complete a held lease
        Lease& l = d.leases[in.Next() % 4];
        const uint8_t outcome = in.Next() % 3;
        const size_t pad = in.Next() % 32;
        const int64_t ttl = in.Next() % 2 ? 0 : 1 + in.Next() * 4;
        if (!l.lease) break;
        larder::LoadResult result = d.LoaderAnswer(l.key, l.begin_gen, outcome, pad, ttl);
        const std::string loaded = result.value;
        larder::FetchResult r = l.lease.Complete(std::move(result));
        FUZZ_CHECK(r.source == larder::FetchSource::kLoaded);
        const bool current = d.Finished(l.key, l.begin_gen, outcome, true);
        if (d.lease_for[l.key] == l.id) d.lease_for[l.key] = kNone;
        if (outcome == 0) {
          FUZZ_CHECK(r.status == larder::Status::kOk && r.value.value() == loaded && !r.stale);
        } else if (r.stale) {  // stale-if-error: the old value, of this generation
          FUZZ_CHECK(outcome == 2 && current && r.status == larder::Status::kOk);
          FUZZ_CHECK(GenOf(r.value.value()) == d.gen[l.key]);
        } else {
          FUZZ_CHECK(r.status ==
                     (outcome == 1 ? larder::Status::kNotFound : larder::Status::kLoadFailed));
        }
        Answer a{r.status, std::nullopt};
        if (r.status == larder::Status::kOk) a.value = std::string(r.value.value());
        d.answers.push_back({l.id, std::move(a)});
        FUZZ_CHECK(!l.lease.Complete(larder::LoadResult::NotFound()).value);  // only once
        l.lease = larder::LoadLease();
        break;
      }
      case 9: {  // drop a held lease: its waiters get an error, nothing is cached
        Lease& l = d.leases[in.Next() % 4];
        if (!l.lease) break;
        d.Finished(l.key, l.begin_gen, 2, false);
        if (d.lease_for[l.key] == l.id) d.lease_for[l.key] = kNone;
        d.answers.push_back(
            {l.id, {larder::Status::kLoadFailed, std::nullopt, true, d.gen[l.key]}});
        l.lease = larder::LoadLease();
        break;
      }
      case 10: {  // look at a held ticket: ready exactly when its leader finished
        Ticket& t = d.tickets[in.Next() % 4];
        if (!t.ticket) break;
        const Answer* a = find_answer(t.lease_id);
        FUZZ_CHECK(t.ticket.ready() == (a != nullptr));
        if (a != nullptr) {
          larder::FetchResult r = t.ticket.Wait(std::chrono::nanoseconds(1));
          FUZZ_CHECK(r.source == larder::FetchSource::kJoined);
          if (a->dropped && r.status == larder::Status::kOk) {
            FUZZ_CHECK(r.stale && GenOf(r.value.value()) == a->gen);
          } else {
            FUZZ_CHECK(r.status == a->status);
            if (a->value) FUZZ_CHECK(r.value.value() == *a->value);
          }
          bool called = false;
          t.ticket.OnReady([&](larder::FetchResult cb) {
            called = true;
            FUZZ_CHECK(cb.status == r.status && cb.value.value() == r.value.value());
          });
          FUZZ_CHECK(called);  // finished: the callback runs at once
          t.ticket = larder::LoadTicket();
        } else {
          larder::FetchResult r = t.ticket.Wait(std::chrono::nanoseconds(1));
          FUZZ_CHECK(r.status == larder::Status::kTimeout);
        }
        break;
      }
      case 11: {  // GetOrLoad with a loader that may write to the cache meanwhile
        const uint8_t outcome = in.Next() % 3;
        const uint8_t meanwhile = in.Next();
        const int other = in.Next() % kKeys;
        const uint64_t begin_gen = d.gen[k];
        bool ran = false;
        std::string loaded;
        larder::FetchOptions fo;
        fo.timeout = std::chrono::nanoseconds(1);  // never wait for a held lease
        fo.loader = [&](std::string_view) {
          ran = true;
          d.ClaimRefresh(k);  // a queued refresh of the key, if any, is now this caller's
          const std::string other_key = kKeyNames[other];
          switch (meanwhile % 8) {
            case 0:
              d.Bump(other);
              cache.Invalidate(other_key);
              break;
            case 1: {
              const std::string prefix =
                  other_key.substr(0, meanwhile / 8 % (other_key.size() + 1));
              d.BumpPrefix(prefix);
              cache.InvalidatePrefix(prefix);
              break;
            }
            case 2: {
              d.Bump(other);
              cache.Put(other_key, MakeValue(d.gen[other], ++d.serial, 0));
              break;
            }
            case 3: {  // L2: its own key is an error, not a deadlock
              larder::FetchResult r = cache.GetOrLoad(
                  key, [](std::string_view) { return larder::LoadResult::NotFound(); });
              FUZZ_CHECK(r.status == larder::Status::kRecursiveLoad);
              break;
            }
            default:
              break;
          }
          larder::LoadResult result = d.LoaderAnswer(k, begin_gen, outcome, meanwhile % 5, 300);
          loaded = result.value;
          return result;
        };
        larder::FetchResult r = cache.GetOrLoad(key, fo);
        if (ran) {
          FUZZ_CHECK(r.source == larder::FetchSource::kLoaded);
          FUZZ_CHECK(d.lease_for[k] == kNone);
          const bool current = d.Finished(k, begin_gen, outcome, true);
          if (outcome == 0) {
            FUZZ_CHECK(r.status == larder::Status::kOk && r.value.value() == loaded);
          } else if (r.stale) {
            FUZZ_CHECK(outcome == 2 && current && GenOf(r.value.value()) == d.gen[k]);
          } else {
            FUZZ_CHECK(r.status ==
                       (outcome == 1 ? larder::Status::kNotFound : larder::Status::kLoadFailed));
          }
        } else if (r.status == larder::Status::kTimeout) {
          FUZZ_CHECK(d.lease_for[k] != kNone);  // a held lease leads the key's flight
        } else {
          d.CheckServed(k, r.status, r.source, r.value.value());
        }
        break;
      }
      case 12: {  // GetOrLoad with the cache's loader
        d.loader_outcome = in.Next();
        d.loader_begin_gen = d.gen[k];
        const int loads = d.loads;
        larder::FetchOptions fo;
        fo.timeout = std::chrono::nanoseconds(1);
        larder::FetchResult r = cache.GetOrLoad(key, fo);
        if (d.loads != loads) {
          FUZZ_CHECK(r.source == larder::FetchSource::kLoaded);
          d.Finished(k, d.loader_begin_gen, d.loader_outcome % 3, true);
          d.ClaimRefresh(k);
        } else if (r.status == larder::Status::kTimeout) {
          FUZZ_CHECK(d.lease_for[k] != kNone);
        } else {
          d.CheckServed(k, r.status, r.source, r.value.value());
        }
        break;
      }
      case 13:  // an explicit background refresh (queued, see QueueRefresh)
        FUZZ_CHECK(cache.Refresh(key) == larder::Status::kOk);
        break;
      case 14: {  // run or drop the oldest queued refresh
        const uint8_t what = in.Next();
        if (d.tasks.empty()) break;
        Task t = std::move(d.tasks.front());
        d.tasks.pop_front();
        const bool mapped = d.refresh_for[t.key] == t.id;
        // A claimed task runs nothing; a superseded one still loads, and its
        // result must be dropped.
        d.loader_outcome = what / 2;
        d.loader_begin_gen = t.begin_gen;
        d.expect_no_load = t.claimed;
        const int loads = d.loads;
        if (what % 2 == 0) t.run();
        t.run = nullptr;  // dropped unrun: "refresh dropped unrun", never cached
        d.expect_no_load = false;
        FUZZ_CHECK(d.loads - loads == (what % 2 == 0 && !t.claimed ? 1 : 0));
        if (d.loads != loads) d.Finished(t.key, t.begin_gen, d.loader_outcome % 3, true);
        if (mapped) d.refresh_for[t.key] = kNone;
        break;
      }
      case 15: {  // let time pass (TTLs, grace periods)
        d.clock->Advance(std::chrono::nanoseconds(in.Next() * 4));
        break;
      }
    }
    d.current_key = -1;
  }

  // Everything that can complete a flight goes before the cache.
  d.tasks.clear();
  for (Ticket& t : d.tickets) t.ticket = larder::LoadTicket();
  for (Lease& l : d.leases) l.lease = larder::LoadLease();
  d.cache.reset();
  g_driver = nullptr;
  return 0;
}
