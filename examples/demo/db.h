// The demo's database: an SQLite file with users, products, orders and
// inventory, and one connection per thread (SQLITE_OPEN_NOMUTEX: a connection
// is never shared). Every query the application sends first sleeps for the
// configured latency on the calling thread, modelling the round trip to a
// networked database, and is counted.
#ifndef LARDER_EXAMPLES_DEMO_DB_H_
#define LARDER_EXAMPLES_DEMO_DB_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "demo.h"

struct sqlite3;
struct sqlite3_stmt;

namespace demo {

// Every query the application sent, all phases; phases take differences.
struct DbCounters {
  std::atomic<uint64_t> queries{0};      // reads and writes (a write-behind batch counts once)
  std::atomic<uint64_t> leaderboard{0};  // of which leaderboard aggregations
};
extern DbCounters g_db;

// When each leaderboard query ran (for the stampede chart).
struct QuerySpan {
  Clock::time_point start, end;
};
void RecordLeaderboardSpan(QuerySpan span);
std::vector<QuerySpan> TakeLeaderboardSpans();

// Sizes of the data set in a database.
struct DataSet {
  int64_t users = 0, products = 0, orders = 0;
  int64_t end_time = 0;  // newest order's time (unix seconds); "now" for the leaderboard
  bool created = false;  // filled by this run
  double create_seconds = 0;
};

class Progress;

// Opens (creating and filling if new or empty) the database at cfg.db_path,
// with a progress bar. Returns false with a message in *error: the path cannot
// be opened, is not an SQLite file, holds another application's tables, or is
// read-only. *interrupted is set when Ctrl-C stopped the filling (nothing was
// committed).
bool PrepareDatabase(const Config& cfg, Progress& progress, DataSet* data, std::string* error,
                     bool* interrupted);

class Db {
 public:
  // One connection to an existing database (read-write, no mutex, WAL).
  static std::unique_ptr<Db> Open(const std::string& path, std::string* error);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  static void SetLatency(std::chrono::microseconds latency) { latency_us_ = latency.count(); }
  static std::chrono::microseconds Latency() { return std::chrono::microseconds(latency_us_); }
  static void SetEndTime(int64_t t) { end_time_ = t; }

  // ---- the application's queries (each waits the latency and counts) ----
  std::optional<std::string> User(int64_t id);
  std::optional<std::string> Product(int64_t id);  // "id|name|category|price_cents"
  std::optional<std::string> Price(int64_t id);    // PriceValue(id, price, version)
  std::string RecentOrders(int64_t user_id);       // the user's ten newest orders
  // The top ten products by revenue over the last 90 days: an aggregation
  // over a quarter of the orders table.
  std::string Leaderboard();
  // Sets a product's price and version; false with *error on failure.
  bool UpdatePrice(int64_t id, int64_t price, uint64_t version, std::string* error);
  // Applies stock levels in one transaction (one round trip), never moving a
  // row's version backwards: replaying an older write changes nothing.
  struct StockWrite {
    int64_t product_id;
    int64_t quantity;
    uint64_t version;
  };
  bool ApplyStock(const std::vector<StockWrite>& writes, std::string* error);
  // The same for product prices (write-behind's batches).
  struct PriceWrite {
    int64_t product_id;
    int64_t price;
    uint64_t version;
  };
  bool ApplyPrices(const std::vector<PriceWrite>& writes, std::string* error);

  // ---- the demo's own bookkeeping (no latency, not counted) ----
  uint64_t ProductVersion(int64_t id);
  std::vector<uint64_t> StockVersions(int64_t count);  // index = product id
  bool Exec(const char* sql, std::string* error);

 private:
  explicit Db(sqlite3* handle) : db_(handle) {}
  sqlite3_stmt* Prepare(int index, const char* sql);
  void RoundTrip();
  bool Fail(const char* what, std::string* error);
  bool Transaction(const std::function<bool()>& body, std::string* error);

  static inline std::atomic<int64_t> latency_us_{2000};
  static inline std::atomic<int64_t> end_time_{0};
  sqlite3* db_;
  sqlite3_stmt* statements_[16] = {};
};

// Values as the cache holds them.
std::string PriceValue(int64_t id, int64_t price, uint64_t version);
std::string StockValue(int64_t id, int64_t quantity, uint64_t version);
// The version field (the last) of a price or stock value; 0 if none.
uint64_t VersionOf(std::string_view value);

}  // namespace demo

#endif  // LARDER_EXAMPLES_DEMO_DB_H_
