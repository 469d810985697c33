// `larder-bench writes`: write throughput of write-through against
// write-behind (in memory, journal synced per interval, journal synced per
// write), each against a store writer that takes 1 ms per call.
#include "writes.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "larder/cache.h"

namespace larder::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Mode {
  std::string name;
  bool behind;
  bool journal;
  JournalSync sync;
};

double RunMode(const Mode& mode, const WritesConfig& c, const std::string& dir) {
  Options o;
  o.capacity_bytes = 256 << 20;
  std::unique_ptr<Cache> cache;
  Cache::Create(o, &cache);
  const auto store_call = std::chrono::microseconds(c.store_micros);
  std::unique_ptr<WriteBehind> wb;
  if (mode.behind) {
    WriteBehindOptions w;
    w.writer = [&](const std::vector<QueuedWrite>&) {
      std::this_thread::sleep_for(store_call);  // one round trip per batch
      return WriteOutcome::Ok();
    };
    w.max_batch = 256;
    w.max_delay = std::chrono::milliseconds(5);
    w.max_queue_entries = 1 << 20;
    w.max_queue_bytes = size_t{1} << 30;
    w.enqueue_timeout = std::chrono::seconds(10);
    if (mode.journal) {
      std::filesystem::remove_all(dir);
      w.journal_dir = dir;
      w.journal_sync = mode.sync;
      w.journal_sync_interval = std::chrono::milliseconds(100);
    }
    WriteBehind::Open(cache.get(), w, &wb);
  }
  const std::string value(c.value_size, 'v');
  std::atomic<bool> go{false};
  std::atomic<uint64_t> total{0};
  std::vector<std::thread> threads;
  const auto deadline_after = std::chrono::duration<double>(c.seconds);
  for (int t = 0; t < c.threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      while (!go.load()) {
      }
      const auto end = Clock::now() + deadline_after;
      uint64_t n = 0;
      while (Clock::now() < end) {
        const std::string key = "key:" + std::to_string(rng() % c.keys);
        if (mode.behind) {
          wb->Put(key, value);
        } else {
          cache->WriteThrough(key, value, [&](std::string_view, auto) {
            std::this_thread::sleep_for(store_call);
            return WriteOutcome::Ok();
          });
        }
        ++n;
      }
      total.fetch_add(n);
    });
  }
  const auto start = Clock::now();
  go = true;
  for (auto& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (wb) wb->Close();  // drained outside the timing: the callers saw only enqueue cost
  if (mode.journal) std::filesystem::remove_all(dir);
  return static_cast<double>(total.load()) / seconds;
}

}  // namespace

int RunWrites(const WritesConfig& c) {
  const std::vector<Mode> modes = {
      {"write_through", false, false, JournalSync::kNever},
      {"behind_memory", true, false, JournalSync::kNever},
      {"behind_journal_interval", true, true, JournalSync::kInterval},
      {"behind_journal_every_write", true, true, JournalSync::kEveryWrite},
  };
  const std::string dir = c.journal_dir + "/larder-bench-journal";
  std::vector<double> rates;
  std::printf("writes: %d threads, %u keys, %zu-byte values, store call %lld us, %.1f s each\n",
              c.threads, c.keys, c.value_size, static_cast<long long>(c.store_micros), c.seconds);
  for (const Mode& m : modes) {
    rates.push_back(RunMode(m, c, dir));
    std::printf("%-28s %12.0f writes/s  %8.1fx write-through\n", m.name.c_str(), rates.back(),
                rates.back() / rates[0]);
  }
  std::printf("{\"threads\":%d,\"store_micros\":%lld", c.threads,
              static_cast<long long>(c.store_micros));
  for (size_t i = 0; i < modes.size(); ++i) {
    std::printf(",\"%s\":{\"writes_per_s\":%.0f,\"ratio_to_write_through\":%.2f}",
                modes[i].name.c_str(), rates[i], rates[i] / rates[0]);
  }
  std::printf("}\n");
  return 0;
}

}  // namespace larder::bench
