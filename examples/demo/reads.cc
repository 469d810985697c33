// Phases 1 and 2: the same clients, the same requests at the same pace, first
// straight to SQLite, then through a cache-aside cache with TTLs.
#include <functional>
#include <memory>
#include <thread>

#include "larder/cache.h"
#include "phases.h"

namespace demo {

namespace {

enum Kind : uint8_t { kProfile, kProduct, kOrders, kHome };

// How a shop's traffic looks: visitors come back in sessions (a popular user
// more often), each session a run of page views by one user; products are
// viewed by popularity; now and then someone opens the home page with its
// leaderboard.
struct Popularity {
  explicit Popularity(const DataSet& data) : users(data.users, 1.0), products(data.products, 1.1) {}
  Zipf users, products;
};

class Session {
 public:
  static constexpr int kLength = 20;  // page views per session
  Session(const Popularity& popularity, uint64_t seed) : pop_(popularity), rng_(seed) {}
  std::pair<Kind, int64_t> Next() {
    if (left_ == 0) {
      user_ = pop_.users(rng_);
      left_ = kLength;
    }
    --left_;
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    if (u < 0.0005) return {kHome, 0};
    if (u < 0.35) return {kProfile, user_};
    if (u < 0.80) return {kProduct, pop_.products(rng_)};
    return {kOrders, user_};
  }

 private:
  const Popularity& pop_;
  std::mt19937_64 rng_;
  int64_t user_ = 0;
  int left_ = 0;
};

using Serve = std::function<bool(Db& db, Kind kind, int64_t id)>;

// Runs cfg.clients clients, each with its own connection, each offering
// cfg.rate_per_client requests a second for `seconds` (a slow request delays
// the client's next one; missed slots are not made up in a burst).
bool RunClients(const Config& cfg, const DataSet& data, Progress& progress, double seconds,
                const Serve& serve, const std::function<std::string()>& detail,
                std::vector<Sample>* samples, double* took) {
  std::vector<std::unique_ptr<Db>> dbs;
  for (int i = 0; i < cfg.clients; ++i) {
    std::string error;
    dbs.push_back(Db::Open(cfg.db_path, &error));
    if (!dbs.back()) {
      progress.Note("cannot open a connection: " + error);
      return false;
    }
  }
  Popularity popularity(data);
  std::atomic<bool> stop{false};
  std::vector<std::vector<Sample>> per_thread(static_cast<size_t>(cfg.clients));
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / cfg.rate_per_client));
  const Clock::time_point start = Clock::now() + 20ms;
  std::vector<std::thread> threads;
  for (int i = 0; i < cfg.clients; ++i) {
    threads.emplace_back([&, i] {
      Db& db = *dbs[static_cast<size_t>(i)];
      std::vector<Sample>& mine = per_thread[static_cast<size_t>(i)];
      mine.reserve(static_cast<size_t>(seconds * cfg.rate_per_client * 1.1) + 16);
      Session session(popularity, cfg.seed * 1000 + static_cast<uint64_t>(i));
      Clock::time_point next = start + interval * i / cfg.clients;
      while (!stop.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_until(next);
        if (stop.load(std::memory_order_relaxed)) break;
        auto [kind, id] = session.Next();
        Clock::time_point t0 = Clock::now();
        bool hit = serve(db, kind, id);
        Clock::time_point t1 = Clock::now();
        mine.push_back({static_cast<float>(Seconds(t0 - start)),
                        static_cast<float>(Millis(t1 - t0)), kind, hit});
        next += interval;
        if (next < t1) next = t1;
      }
    });
  }
  while (!Interrupted()) {
    double elapsed = Seconds(Clock::now() - start);
    if (elapsed >= seconds) break;
    progress.Update(elapsed / seconds, detail());
    std::this_thread::sleep_for(100ms);
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  *took = Seconds(Clock::now() - start);
  *samples = Merge(per_thread);
  return !Interrupted();
}

LatencySummary LeaderboardOnly(const std::vector<Sample>& samples) {
  std::vector<Sample> home;
  for (const Sample& s : samples) {
    if (s.kind == kHome) home.push_back(s);
  }
  return Summarize(home);
}

}  // namespace

bool RunNoCache(const Config& cfg, const DataSet& data, Progress& progress, ReadResult* out) {
  const uint64_t q0 = g_db.queries.load();
  Serve serve = [](Db& db, Kind kind, int64_t id) {
    switch (kind) {
      case kProfile:
        db.User(id);
        break;
      case kProduct:
        db.Product(id);
        break;
      case kOrders:
        db.RecentOrders(id);
        break;
      case kHome:
        db.Leaderboard();
        break;
    }
    return false;
  };
  auto detail = [&] { return Thousands(g_db.queries.load() - q0) + " database queries"; };
  std::vector<Sample> samples;
  if (!RunClients(cfg, data, progress, cfg.read_seconds, serve, detail, &samples, &out->seconds)) {
    return false;
  }
  out->requests = samples.size();
  out->db_queries = g_db.queries.load() - q0;
  out->latency = Summarize(samples);
  out->leaderboard = LeaderboardOnly(samples);
  TakeLeaderboardSpans();
  return true;
}

bool RunCacheAside(const Config& cfg, const DataSet& data, Progress& progress, ReadResult* out) {
  larder::Options options;
  options.capacity_bytes = 256 << 20;
  options.refresh_beta = 0;  // plain Get and Put: the classic pattern, nothing behind the scenes
  std::unique_ptr<larder::Cache> cache;
  if (larder::Cache::Create(options, &cache) != larder::Status::kOk) return false;
  // TTLs by how fast the data changes (short, for a run of seconds).
  const larder::PutOptions ttl[] = {{.ttl = 30s}, {.ttl = 10s}, {.ttl = 2s}, {.ttl = 5s}};
  const char* prefix[] = {"user:", "product:", "orders:", "leaderboard"};
  Serve serve = [&](Db& db, Kind kind, int64_t id) {
    std::string key = kind == kHome ? prefix[kind] : prefix[kind] + std::to_string(id);
    std::string value;
    if (cache->Get(key, &value) == larder::Status::kOk) return true;  // hit
    switch (kind) {                                                   // miss: the database...
      case kProfile:
        value = db.User(id).value_or("");
        break;
      case kProduct:
        value = db.Product(id).value_or("");
        break;
      case kOrders:
        value = db.RecentOrders(id);
        break;
      case kHome:
        value = db.Leaderboard();
        break;
    }
    cache->Put(key, value, ttl[kind]);  // ...then fill the cache
    return false;
  };
  const uint64_t q0 = g_db.queries.load();
  auto detail = [&] {
    larder::Stats s = cache->GetStats();
    char line[96];
    std::snprintf(line, sizeof line, "hit ratio %.1f%%, %s database queries", 100 * s.hit_ratio(),
                  Thousands(g_db.queries.load() - q0).c_str());
    return std::string(line);
  };
  std::vector<Sample> samples;
  if (!RunClients(cfg, data, progress, 2 * cfg.read_seconds, serve, detail, &samples,
                  &out->seconds)) {
    return false;
  }
  larder::Stats s = cache->GetStats();
  out->requests = samples.size();
  out->db_queries = g_db.queries.load() - q0;
  out->hits = s.hits;
  out->misses = s.misses;
  out->expirations = s.expirations;
  out->latency = Summarize(samples);
  out->leaderboard = LeaderboardOnly(samples);
  // The hit ratio as the cache warms up, in 24 slices.
  const int kSlices = 24;
  const double slice = out->seconds / kSlices;
  std::vector<uint64_t> hits(kSlices), all(kSlices);
  for (const Sample& x : samples) {
    int i = std::min(kSlices - 1, std::max(0, static_cast<int>(x.start_s / slice)));
    all[i]++;
    hits[i] += x.hit;
  }
  for (int i = 0; i < kSlices; ++i) {
    if (all[i] > 0) {
      out->hit_ratio_over_time.emplace_back((i + 0.5) * slice,
                                            static_cast<double>(hits[i]) / all[i]);
    }
  }
  TakeLeaderboardSpans();
  return true;
}

}  // namespace demo
