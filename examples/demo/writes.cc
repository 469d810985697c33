// Phase 3: writers change product prices through each pattern while readers
// read through the cache and a checker reads the database directly. Every
// write carries a version one above the key's previous one; a read that began
// after the write of version v returned and still saw an older version is a
// stale read.
#include <filesystem>
#include <memory>
#include <thread>

#include "larder/cache.h"
#include "phases.h"

namespace demo {

namespace {

enum class Pattern { kInvalidate, kWriteThrough, kWriteBehind };
const char* PatternName(Pattern p) {
  switch (p) {
    case Pattern::kInvalidate:
      return "invalidate-after-write";
    case Pattern::kWriteThrough:
      return "write-through";
    case Pattern::kWriteBehind:
      return "write-behind";
  }
  return "?";
}

constexpr auto kPriceTtl = 1s;  // short, so that readers also load from the database

std::string PriceKey(int64_t id) { return "price:" + std::to_string(id); }

bool RunPattern(Pattern pattern, const Config& cfg, const DataSet& data, Progress& progress,
                WriteResult* out) {
  out->name = PatternName(pattern);
  const int64_t hot = std::min<int64_t>(100, data.products);  // the products being repriced
  const int writers = std::max(2, cfg.clients / 8);
  const int readers = std::max(2, cfg.clients / 2);
  std::string error;
  std::unique_ptr<Db> admin = Db::Open(cfg.db_path, &error);
  if (!admin) {
    progress.Note("cannot open a connection: " + error);
    return false;
  }
  std::string reset = "UPDATE products SET version=0 WHERE id <= " + std::to_string(hot);
  if (!admin->Exec(reset.c_str(), &error)) {
    progress.Note("cannot reset versions: " + error);
    return false;
  }

  larder::Options options;
  options.capacity_bytes = 16 << 20;
  options.refresh_beta = 0;
  std::unique_ptr<larder::Cache> cache;
  if (larder::Cache::Create(options, &cache) != larder::Status::kOk) return false;

  // Write-behind: a flusher thread applies batches through its own connection.
  std::unique_ptr<Db> flusher_db;
  std::unique_ptr<larder::WriteBehind> wb;
  if (pattern == Pattern::kWriteBehind) {
    flusher_db = Db::Open(cfg.db_path, &error);
    if (!flusher_db) return false;
    larder::WriteBehindOptions wo;
    wo.journal_dir = cfg.journal_dir + "/writes";
    std::error_code ec;
    std::filesystem::remove_all(wo.journal_dir, ec);  // an older run's leftovers
    wo.journal_sync = larder::JournalSync::kEveryWrite;
    wo.max_attempts = 1000;
    wo.writer = [&](const std::vector<larder::QueuedWrite>& batch) {
      std::vector<Db::PriceWrite> rows;
      for (const larder::QueuedWrite& w : batch) {
        if (!w.value) continue;
        int64_t id = std::stoll(w.key.substr(6));
        int64_t price = std::stoll(w.value->substr(w.value->find('|') + 1));
        rows.push_back({id, price, VersionOf(*w.value)});
      }
      std::string why;
      return flusher_db->ApplyPrices(rows, &why) ? larder::WriteOutcome::Ok()
                                                 : larder::WriteOutcome::Failed(why);
    };
    larder::Status s = larder::WriteBehind::Open(cache.get(), wo, &wb);
    if (s != larder::Status::kOk) {
      progress.Note("cannot open the write-behind journal in " + wo.journal_dir + ": " +
                    larder::StatusName(s));
      return false;
    }
  }

  std::unique_ptr<std::atomic<uint64_t>[]> acked(new std::atomic<uint64_t>[hot + 1]);
  for (int64_t k = 0; k <= hot; ++k) acked[k] = 0;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0}, failures{0}, reads{0}, hits{0}, stale{0};
  std::atomic<uint64_t> checks{0}, behind{0};
  std::vector<std::vector<Sample>> write_samples(static_cast<size_t>(writers));
  std::vector<std::vector<Sample>> read_samples(static_cast<size_t>(readers));
  std::vector<std::unique_ptr<Db>> dbs;
  for (int i = 0; i < writers + readers + 1; ++i) {
    dbs.push_back(Db::Open(cfg.db_path, &error));
    if (!dbs.back()) return false;
  }
  const uint64_t q0 = g_db.queries.load();
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;

  // Writers: writer w owns the keys with (id - 1) % writers == w, so each
  // key's versions rise one by one; one write per 5 ms each.
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      Db& db = *dbs[static_cast<size_t>(w)];
      std::mt19937_64 rng(cfg.seed * 31 + static_cast<uint64_t>(w));
      std::vector<uint64_t> version(static_cast<size_t>(hot) + 1, 0);
      Clock::time_point next = start;
      while (!stop.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_until(next);
        next += 5ms;
        int64_t k = 1 + w + writers * static_cast<int64_t>(rng() % ((hot - 1 - w) / writers + 1));
        uint64_t v = ++version[static_cast<size_t>(k)];
        int64_t price = 100 + static_cast<int64_t>(rng() % 50000);
        const std::string key = PriceKey(k);
        std::string why;
        Clock::time_point t0 = Clock::now();
        bool ok = false;
        switch (pattern) {
          case Pattern::kInvalidate:
            // Cache-aside: the database first, then drop the cached copy.
            ok = db.UpdatePrice(k, price, v, &why);
            if (ok) cache->Invalidate(key);
            break;
          case Pattern::kWriteThrough:
            ok = cache->WriteThrough(
                     key, PriceValue(k, price, v),
                     [&](std::string_view, std::optional<std::string_view>) {
                       return db.UpdatePrice(k, price, v, &why) ? larder::WriteOutcome::Ok()
                                                                : larder::WriteOutcome::Failed(why);
                     },
                     {.ttl = kPriceTtl}, &why) == larder::Status::kOk;
            break;
          case Pattern::kWriteBehind:
            ok = wb->Put(key, PriceValue(k, price, v), {.ttl = kPriceTtl}) == larder::Status::kOk;
            break;
        }
        Clock::time_point t1 = Clock::now();
        if (!ok) {
          failures++;
          --version[static_cast<size_t>(k)];
          continue;
        }
        acked[k].store(v, std::memory_order_release);  // the write call has returned
        writes++;
        write_samples[static_cast<size_t>(w)].push_back({static_cast<float>(Seconds(t0 - start)),
                                                         static_cast<float>(Millis(t1 - t0)), 0,
                                                         false});
      }
    });
  }
  // Readers: one read a millisecond each, through the cache.
  for (int r = 0; r < readers; ++r) {
    threads.emplace_back([&, r] {
      Db& db = *dbs[static_cast<size_t>(writers + r)];
      std::mt19937_64 rng(cfg.seed * 37 + static_cast<uint64_t>(r));
      Clock::time_point next = start;
      while (!stop.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_until(next);
        next += 1ms;
        int64_t k = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(hot));
        uint64_t floor = acked[k].load(std::memory_order_acquire);
        Clock::time_point t0 = Clock::now();
        larder::FetchResult got = cache->GetOrLoad(PriceKey(k), [&](std::string_view) {
          std::optional<std::string> row = db.Price(k);
          return row ? larder::LoadResult::Value(*row, kPriceTtl) : larder::LoadResult::NotFound();
        });
        Clock::time_point t1 = Clock::now();
        if (got.status != larder::Status::kOk) continue;
        bool hit = got.source == larder::FetchSource::kHit;
        reads++;
        hits += hit;
        if (VersionOf(got.value.value()) < floor) stale++;
        read_samples[static_cast<size_t>(r)].push_back(
            {static_cast<float>(Seconds(t0 - start)), static_cast<float>(Millis(t1 - t0)), 0, hit});
      }
    });
  }
  // The checker: what another service reading the database would see.
  threads.emplace_back([&] {
    Db& db = *dbs.back();
    std::mt19937_64 rng(cfg.seed * 41);
    while (!stop.load(std::memory_order_relaxed)) {
      int64_t k = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(hot));
      uint64_t floor = acked[k].load(std::memory_order_acquire);
      checks++;
      if (db.ProductVersion(k) < floor) behind++;
      std::this_thread::sleep_for(1ms);
    }
  });

  while (!Interrupted()) {
    double elapsed = Seconds(Clock::now() - start);
    if (elapsed >= cfg.write_seconds) break;
    progress.Update(elapsed / cfg.write_seconds, Thousands(writes.load()) + " writes, " +
                                                     Thousands(reads.load()) + " reads, " +
                                                     Thousands(stale.load()) + " stale");
    std::this_thread::sleep_for(100ms);
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  out->seconds = Seconds(Clock::now() - start);
  if (wb) {
    wb->Flush();
    larder::WriteBehindStats ws = wb->GetStats();
    out->coalesced = ws.coalesced;
    out->batches = ws.batches;
  }
  // Once everything is flushed the database must hold every acknowledged write.
  for (int64_t k = 1; k <= hot; ++k) {
    if (admin->ProductVersion(k) < acked[k].load()) out->db_behind_after_flush++;
  }
  if (wb) wb->Close();
  out->writes = writes;
  out->write_failures = failures;
  out->reads = reads;
  out->hits = hits;
  out->stale_reads = stale;
  out->db_checks = checks;
  out->db_behind = behind;
  out->db_queries = g_db.queries.load() - q0;
  out->write_latency = Summarize(Merge(write_samples));
  out->read_latency = Summarize(Merge(read_samples));
  return !Interrupted();
}

}  // namespace

bool RunWrites(const Config& cfg, const DataSet& data, Progress& progress,
               std::vector<WriteResult>* out) {
  const Pattern patterns[] = {Pattern::kInvalidate, Pattern::kWriteThrough, Pattern::kWriteBehind};
  for (size_t i = 0; i < 3; ++i) {
    progress.Begin(std::string("[3/5] writes: ") + PatternName(patterns[i]));
    WriteResult r;
    if (!RunPattern(patterns[i], cfg, data, progress, &r)) return false;
    char line[160];
    std::snprintf(line, sizeof line,
                  "%s writes (p50 %.2f ms), %s stale reads, database behind in %.1f%% of checks",
                  Thousands(r.writes).c_str(), r.write_latency.p50_ms,
                  Thousands(r.stale_reads).c_str(),
                  r.db_checks ? 100.0 * r.db_behind / r.db_checks : 0.0);
    progress.End(line);
    out->push_back(std::move(r));
  }
  return true;
}

}  // namespace demo
