// Phase 5: the leaderboard (the expensive aggregation) is cached with a TTL
// and read by many clients at once; it expires under them. Three ways:
//  * naive cache-aside: every client that misses queries the database;
//  * single-flight (Cache::GetOrLoad): one query, the others wait for it;
//  * single-flight with early refresh (Options::refresh_beta): a hit shortly
//    before the expiry refreshes the key in the background; nobody waits.
#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

#include "larder/cache.h"
#include "phases.h"

namespace demo {

namespace {

enum class Variant { kNaive, kSingleFlight, kEarlyRefresh };
const char* VariantName(Variant v) {
  switch (v) {
    case Variant::kNaive:
      return "naive";
    case Variant::kSingleFlight:
      return "single_flight";
    case Variant::kEarlyRefresh:
      return "early_refresh";
  }
  return "?";
}
const char* VariantTitle(Variant v) {
  switch (v) {
    case Variant::kNaive:
      return "naive cache-aside";
    case Variant::kSingleFlight:
      return "single-flight";
    case Variant::kEarlyRefresh:
      return "single-flight + early refresh";
  }
  return "?";
}

constexpr auto kThinkTime = 2ms;  // between one client's reads

// The cache reads the same clock as the demo's timeline, so that "the key
// expired at t" means the same instant to both (the default clock is the
// kernel's coarse one, a few milliseconds apart from steady_clock).
class SteadyClock final : public larder::Clock {
 public:
  int64_t NowNanos() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               demo::Clock::now().time_since_epoch())
        .count();
  }
};

// Expiries seen by the clients, from the times the key was (re)filled: a fill
// after the current expiry means the key had expired and was loaded again;
// a fill before it (a refresh, or a naive client's duplicate) only moves it.
uint64_t CountExpiries(Clock::time_point primed, Clock::duration ttl,
                       std::vector<Clock::time_point> fills) {
  std::sort(fills.begin(), fills.end());
  Clock::time_point expiry = primed + ttl;
  uint64_t expiries = 0;
  for (Clock::time_point f : fills) {
    if (f >= expiry) {
      ++expiries;
      expiry = f + ttl;
    } else {
      expiry = std::max(expiry, f + ttl);
    }
  }
  return expiries;
}

bool RunVariant(Variant variant, const Config& cfg, Progress& progress, StampedeVariant* out) {
  out->name = VariantName(variant);
  out->title = VariantTitle(variant);
  const std::string key = "leaderboard";
  const auto ttl = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(cfg.leaderboard_ttl_seconds));
  const double tail = std::min(0.6, cfg.leaderboard_ttl_seconds / 2);

  std::string error;
  std::vector<std::unique_ptr<Db>> dbs;
  for (int i = 0; i < cfg.stampede_clients + 2; ++i) {  // clients, priming, refreshing
    dbs.push_back(Db::Open(cfg.db_path, &error));
    if (!dbs.back()) {
      progress.Note("cannot open a connection: " + error);
      return false;
    }
  }
  Db& prime_db = *dbs[static_cast<size_t>(cfg.stampede_clients)];
  Db& refresh_db = *dbs[static_cast<size_t>(cfg.stampede_clients) + 1];

  std::mutex fills_mu;
  std::vector<Clock::time_point> fills;
  std::atomic<int> in_flight{0};
  auto query = [&](Db& db) {
    in_flight++;
    std::string rows = db.Leaderboard();
    in_flight--;
    std::lock_guard lock(fills_mu);
    fills.push_back(Clock::now());
    return rows;
  };
  auto loader_for = [&](Db& db) {
    return
        [&query, &db, ttl](std::string_view) { return larder::LoadResult::Value(query(db), ttl); };
  };

  larder::Options options;
  options.capacity_bytes = 16 << 20;
  options.clock = std::make_shared<SteadyClock>();
  options.refresh_beta = 0;
  std::mutex refresh_mu;
  if (variant == Variant::kEarlyRefresh) {
    options.refresh_beta = cfg.refresh_beta;
    // Background refreshes run on the cache's pool with this loader.
    options.loader = [&](std::string_view) {
      std::lock_guard lock(refresh_mu);
      return larder::LoadResult::Value(query(refresh_db), ttl);
    };
  }
  std::unique_ptr<larder::Cache> cache;
  if (larder::Cache::Create(options, &cache) != larder::Status::kOk) return false;

  // Prime the key, then let the clients read it until after it has expired.
  if (variant == Variant::kNaive) {
    cache->Put(key, query(prime_db), {.ttl = ttl});
  } else {
    cache->GetOrLoad(key, larder::FetchOptions{.loader = loader_for(prime_db)});
  }
  // The fill was noted after the query and before the cache stored the
  // value, so the key expires at `expiry` or a moment after it.
  Clock::time_point primed;
  {
    std::lock_guard lock(fills_mu);
    primed = fills.back();
    fills.clear();
  }
  const Clock::time_point expiry = primed + ttl;
  TakeLeaderboardSpans();
  const uint64_t q0 = g_db.leaderboard.load();

  std::atomic<bool> stop{false};
  std::vector<std::vector<Sample>> per_thread(static_cast<size_t>(cfg.stampede_clients));
  std::vector<std::thread> threads;
  for (int i = 0; i < cfg.stampede_clients; ++i) {
    threads.emplace_back([&, i] {
      Db& db = *dbs[static_cast<size_t>(i)];
      auto loader = loader_for(db);
      std::vector<Sample>& mine = per_thread[static_cast<size_t>(i)];
      mine.reserve(4096);
      while (!stop.load(std::memory_order_relaxed)) {
        Clock::time_point t0 = Clock::now();
        bool waited = false;
        if (variant == Variant::kNaive) {
          std::string rows;
          if (cache->Get(key, &rows) != larder::Status::kOk) {
            rows = query(db);  // every client that misses asks the database
            cache->Put(key, rows, {.ttl = ttl});
            waited = true;
          }
        } else {
          larder::FetchResult r = cache->GetOrLoad(key, larder::FetchOptions{.loader = loader});
          waited =
              r.source == larder::FetchSource::kLoaded || r.source == larder::FetchSource::kJoined;
        }
        Clock::time_point t1 = Clock::now();
        mine.push_back({static_cast<float>(Seconds(t0 - expiry)),
                        static_cast<float>(Millis(t1 - t0)), 0, !waited});
        std::this_thread::sleep_for(kThinkTime);
      }
    });
  }

  // Run until `tail` after the expiry and until no query has been running
  // for a moment: the whole spike, and not the next expiry.
  Clock::time_point quiet_since{};
  while (!Interrupted()) {
    Clock::time_point now = Clock::now();
    double rel = Seconds(now - expiry);
    if (rel >= tail) {
      if (in_flight.load() > 0) {
        quiet_since = {};
      } else if (quiet_since == Clock::time_point{}) {
        quiet_since = now;
      } else if (Seconds(now - quiet_since) >= 0.2) {
        break;
      }
    }
    if (rel > 120) break;
    const uint64_t queries = g_db.leaderboard.load() - q0;
    char detail[128];
    if (rel < 0) {
      std::snprintf(detail, sizeof detail, "expires in %.1f s", -rel);
    } else {
      std::snprintf(detail, sizeof detail, "expired %.1f s ago: %s queries, %d running", rel,
                    Thousands(queries).c_str(), in_flight.load());
    }
    progress.Update(std::min(0.99, Seconds(now - primed) / (Seconds(ttl) + tail)), detail);
    std::this_thread::sleep_for(5ms);
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  const Clock::time_point end = Clock::now();

  out->window_s = Seconds(end - primed);
  out->db_queries = g_db.leaderboard.load() - q0;
  {
    std::lock_guard lock(fills_mu);
    out->expiries = CountExpiries(primed, ttl, fills);
  }
  out->samples = Merge(per_thread);
  out->reads = out->samples.size();
  std::vector<Sample> waits;
  for (const Sample& s : out->samples) {
    if (!s.hit) waits.push_back(s);
  }
  out->waited = waits.size();
  out->waits = Summarize(waits);
  out->latency = Summarize(out->samples);
  // How many queries ran at once, at most.
  std::vector<std::pair<double, int>> edges;
  for (const QuerySpan& span : TakeLeaderboardSpans()) {
    double a = Seconds(span.start - expiry), b = Seconds(span.end - expiry);
    out->query_spans.emplace_back(a, b);
    edges.emplace_back(a, 1);
    edges.emplace_back(b, -1);
  }
  std::sort(edges.begin(), edges.end());
  out->first_query_s = edges.empty() ? 0 : edges.front().first;
  int running = 0;
  for (auto& [t, d] : edges)
    out->max_concurrent_queries = std::max(out->max_concurrent_queries, running += d);
  return !Interrupted();
}

}  // namespace

bool RunStampede(const Config& cfg, const DataSet& data, Progress& progress, StampedeResult* out) {
  (void)data;
  out->clients = cfg.stampede_clients;
  out->ttl_s = cfg.leaderboard_ttl_seconds;
  {
    std::string error;
    std::unique_ptr<Db> db = Db::Open(cfg.db_path, &error);
    if (!db) return false;
    db->Leaderboard();  // warm the page cache once
    Clock::time_point t0 = Clock::now();
    db->Leaderboard();
    out->query_ms = Millis(Clock::now() - t0);
    TakeLeaderboardSpans();
  }
  for (Variant v : {Variant::kNaive, Variant::kSingleFlight, Variant::kEarlyRefresh}) {
    progress.Begin(std::string("[5/5] stampede: ") + VariantTitle(v));
    StampedeVariant r;
    if (!RunVariant(v, cfg, progress, &r)) return false;
    char line[160];
    std::snprintf(line, sizeof line,
                  "%s leaderboard queries, %s expiries, %s reads waited, slowest %.0f ms",
                  Thousands(r.db_queries).c_str(), Thousands(r.expiries).c_str(),
                  Thousands(r.waited).c_str(), r.latency.max_ms);
    progress.End(line);
    out->variants.push_back(std::move(r));
  }
  return true;
}

}  // namespace demo
