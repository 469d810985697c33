#include "db.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "progress.h"

namespace demo {

DbCounters g_db;

namespace {

std::mutex spans_mu;
std::vector<QuerySpan> spans;  // guarded by spans_mu

// The newest order's time: 2025-01-01 00:00 UTC, so runs are reproducible.
constexpr int64_t kEndTime = 1735689600;
constexpr int64_t kDay = 86400;

// Aborts a running statement (SQLITE_INTERRUPT) once Ctrl-C was pressed.
int StopOnSignal(void*) { return Interrupted() ? 1 : 0; }

enum Statement {
  kUser,
  kProduct,
  kPrice,
  kRecentOrders,
  kLeaderboard,
  kUpdatePrice,
  kUpdateStock,
  kProductVersion,
  kStockVersions,
  kBegin,
  kCommit,
  kRollback,
};

const char* kFirstNames[] = {"Ada",  "Alan",  "Grace",  "Edsger", "Barbara",  "Donald",  "Frances",
                             "John", "Radia", "Ken",    "Dennis", "Margaret", "Niklaus", "Leslie",
                             "Tony", "Shafi", "Butler", "Sophie", "Guido",    "Bjarne"};
const char* kLastNames[] = {
    "Lovelace", "Turing",   "Hopper",  "Dijkstra",   "Liskov", "Knuth",   "Allen", "Backus",
    "Perlman",  "Thompson", "Ritchie", "Hamilton",   "Wirth",  "Lamport", "Hoare", "Goldwasser",
    "Lampson",  "Wilson",   "Rossum",  "Stroustrup", "Kay",    "Church",  "Codd",  "Gray"};
const char* kCountries[] = {"DE", "FR", "GB", "US", "CA", "NL", "SE", "ES", "IT", "PL",
                            "JP", "BR", "IN", "AU", "NZ", "IE", "PT", "AT", "CH", "DK"};
const char* kCategories[] = {"books", "garden", "kitchen", "toys",   "audio",
                             "games", "tools",  "office",  "sports", "music"};
const char* kAdjectives[] = {"Compact", "Deluxe", "Classic", "Smart",  "Rugged",
                             "Silent",  "Golden", "Nimble",  "Sturdy", "Bright"};
const char* kNouns[] = {"Kettle", "Lamp",   "Notebook", "Drone", "Speaker", "Chair", "Backpack",
                        "Puzzle", "Router", "Blender",  "Watch", "Helmet",  "Mug",   "Drill"};

template <size_t N>
const char* Pick(const char* (&words)[N], uint64_t i) {
  return words[i % N];
}

bool Step(sqlite3* db, sqlite3_stmt* st, std::string* error) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return true;
  if (error) *error = sqlite3_errmsg(db);
  return false;
}

bool ExecSql(sqlite3* db, const char* sql, std::string* error) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) == SQLITE_OK) return true;
  if (error) *error = message ? message : sqlite3_errmsg(db);
  sqlite3_free(message);
  return false;
}

// Creates the tables and fills them in one transaction with prepared
// statements; nothing is committed unless all of it is.
bool Fill(sqlite3* db, const Config& cfg, Progress& progress, std::string* error) {
  ExecSql(db, "PRAGMA synchronous=OFF; PRAGMA cache_size=-131072", nullptr);
  if (!ExecSql(db, "BEGIN IMMEDIATE", error)) return false;
  auto abort = [&](const char* what) {
    if (error->empty()) *error = std::string(what) + ": " + sqlite3_errmsg(db);
    ExecSql(db, "ROLLBACK", nullptr);
    return false;
  };
  if (!ExecSql(db,
               "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,"
               " country TEXT NOT NULL, created_at INTEGER NOT NULL);"
               "CREATE TABLE products(id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
               " category TEXT NOT NULL, price_cents INTEGER NOT NULL,"
               " version INTEGER NOT NULL DEFAULT 0);"
               "CREATE TABLE orders(id INTEGER PRIMARY KEY,"
               " user_id INTEGER NOT NULL REFERENCES users(id),"
               " product_id INTEGER NOT NULL REFERENCES products(id),"
               " quantity INTEGER NOT NULL, amount_cents INTEGER NOT NULL,"
               " created_at INTEGER NOT NULL);"
               "CREATE TABLE inventory(product_id INTEGER PRIMARY KEY REFERENCES products(id),"
               " quantity INTEGER NOT NULL, version INTEGER NOT NULL DEFAULT 0);"
               "CREATE TABLE larder_demo(key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
               error)) {
    return abort("creating the tables");
  }
  std::mt19937_64 rng(cfg.seed);
  const double total = static_cast<double>(cfg.users + cfg.products + cfg.orders) * 1.35;
  double done = 0;
  auto tick = [&](int64_t rows, const char* what) {
    done += static_cast<double>(rows);
    progress.Update(done / total, what);
    return !Interrupted();
  };

  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO users VALUES(?,?,?,?,?)", -1, &st, nullptr);
  for (int64_t id = 1; id <= cfg.users; ++id) {
    uint64_t r = rng();
    std::string first = Pick(kFirstNames, r), last = Pick(kLastNames, r >> 16);
    std::string name = first + " " + last;
    std::string email = first + "." + last + std::to_string(id) + "@example.com";
    std::transform(email.begin(), email.end(), email.begin(), ::tolower);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, email.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, Pick(kCountries, r >> 32), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, kEndTime - static_cast<int64_t>((r >> 40) % (3 * 365 * kDay)));
    if (!Step(db, st, error)) break;
    if (id % 8192 == 0 && !tick(8192, "users")) break;
  }
  sqlite3_finalize(st);
  if (!error->empty() || Interrupted()) return abort("inserting users");

  std::vector<int64_t> prices(static_cast<size_t>(cfg.products) + 1);
  sqlite3_prepare_v2(db, "INSERT INTO products VALUES(?,?,?,?,0)", -1, &st, nullptr);
  sqlite3_stmt* stock = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO inventory VALUES(?,?,0)", -1, &stock, nullptr);
  for (int64_t id = 1; id <= cfg.products && error->empty(); ++id) {
    uint64_t r = rng();
    std::string name =
        std::string(Pick(kAdjectives, r)) + " " + Pick(kNouns, r >> 8) + " " + std::to_string(id);
    prices[id] = 199 + static_cast<int64_t>((r >> 16) % 20000);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, Pick(kCategories, r >> 24), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, prices[id]);
    if (!Step(db, st, error)) break;
    sqlite3_bind_int64(stock, 1, id);
    sqlite3_bind_int64(stock, 2, static_cast<int64_t>((r >> 40) % 500));
    if (!Step(db, stock, error)) break;
  }
  sqlite3_finalize(st);
  sqlite3_finalize(stock);
  if (!error->empty()) return abort("inserting products");

  // Orders: spread over the year before kEndTime, oldest first; popular
  // products sell more (Zipf), so the leaderboard means something.
  Zipf product_of(cfg.products, 0.9);
  sqlite3_prepare_v2(db, "INSERT INTO orders VALUES(?,?,?,?,?,?)", -1, &st, nullptr);
  const int64_t start = kEndTime - 365 * kDay;
  for (int64_t id = 1; id <= cfg.orders; ++id) {
    uint64_t r = rng();
    int64_t product = product_of(rng);
    int64_t quantity = 1 + static_cast<int64_t>((r % 100) < 80 ? 0 : (r >> 8) % 4);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, 1 + static_cast<int64_t>((r >> 16) % cfg.users));
    sqlite3_bind_int64(st, 3, product);
    sqlite3_bind_int64(st, 4, quantity);
    sqlite3_bind_int64(st, 5, quantity * prices[product]);
    sqlite3_bind_int64(st, 6, start + (id * 365 * kDay) / cfg.orders);
    if (!Step(db, st, error)) break;
    if (id % 8192 == 0 && !tick(8192, "orders")) break;
  }
  sqlite3_finalize(st);
  if (!error->empty() || Interrupted()) return abort("inserting orders");

  progress.Update(done / total, "indexes");
  // The progress handler aborts index building on Ctrl-C.
  if (!ExecSql(db, "CREATE INDEX orders_by_user ON orders(user_id, created_at)", error)) {
    return abort("indexing orders");
  }
  tick(static_cast<int64_t>(total - done) / 2, "indexes");
  if (!ExecSql(db, "CREATE INDEX orders_by_time ON orders(created_at)", error)) {
    return abort("indexing orders");
  }
  std::string meta = "INSERT INTO larder_demo VALUES('users'," + std::to_string(cfg.users) +
                     "),('products'," + std::to_string(cfg.products) + "),('orders'," +
                     std::to_string(cfg.orders) + "),('end_time'," + std::to_string(kEndTime) + ")";
  if (!ExecSql(db, meta.c_str(), error) || !ExecSql(db, "COMMIT", error)) {
    return abort("committing");
  }
  ExecSql(db, "PRAGMA synchronous=NORMAL; ANALYZE", nullptr);
  return true;
}

}  // namespace

void RecordLeaderboardSpan(QuerySpan span) {
  std::lock_guard lock(spans_mu);
  spans.push_back(span);
}

std::vector<QuerySpan> TakeLeaderboardSpans() {
  std::lock_guard lock(spans_mu);
  return std::exchange(spans, {});
}

bool PrepareDatabase(const Config& cfg, Progress& progress, DataSet* data, std::string* error,
                     bool* interrupted) {
  *interrupted = false;
  const std::string& path = cfg.db_path;
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) {
    *error = "'" + path + "' is a directory, not an SQLite database file";
    return false;
  }
  if (exists && !S_ISREG(st.st_mode)) {
    *error = "'" + path + "' is not a regular file";
    return false;
  }
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (exists ? 0 : SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    *error = "cannot open database '" + path + "': " + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    if (!exists) {  // say why: usually the folder
      size_t slash = path.rfind('/');
      std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
      struct stat ds;
      if (::stat(dir.c_str(), &ds) != 0) {
        *error += " (" + dir + ": " + std::strerror(errno) + ")";
      } else if (!S_ISDIR(ds.st_mode)) {
        *error += " (" + dir + " is not a directory)";
      }
    }
    return false;
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> owner(db, sqlite3_close);
  sqlite3_busy_timeout(db, 10000);
  sqlite3_progress_handler(db, 10000, StopOnSignal, nullptr);

  // What is in it? Reading the schema is the first access to the file, and
  // fails on anything that is not an SQLite database.
  std::vector<std::string> tables;
  sqlite3_stmt* q = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1",
                              -1, &q, nullptr);
  if (rc == SQLITE_OK) {
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
      tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)));
    }
  }
  sqlite3_finalize(q);
  if (rc != SQLITE_DONE) {
    if (sqlite3_errcode(db) == SQLITE_NOTADB) {
      *error = "'" + path + "' is not an SQLite database (" + sqlite3_errmsg(db) +
               "); give a new path or a database an earlier run created";
    } else {
      *error = "cannot read database '" + path + "': " + sqlite3_errmsg(db);
    }
    return false;
  }
  const bool ours = std::find(tables.begin(), tables.end(), "larder_demo") != tables.end();
  if (!ours && !tables.empty()) {
    std::string names;
    for (size_t i = 0; i < tables.size() && i < 5; ++i) names += (i ? ", " : "") + tables[i];
    *error = "'" + path + "' is an SQLite database with other tables (" + names +
             "), not one this demo created; give a new path";
    return false;
  }
  // The demo writes (prices, stock): find out now if it cannot.
  if (!ExecSql(db, "PRAGMA journal_mode=WAL", error) || !ExecSql(db, "BEGIN IMMEDIATE", error) ||
      !ExecSql(db, "ROLLBACK", error)) {
    *error = "cannot write database '" + path + "': " + *error;
    return false;
  }

  if (ours) {
    sqlite3_prepare_v2(db, "SELECT key, value FROM larder_demo", -1, &q, nullptr);
    while (sqlite3_step(q) == SQLITE_ROW) {
      std::string key = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
      int64_t value = sqlite3_column_int64(q, 1);
      if (key == "users") data->users = value;
      if (key == "products") data->products = value;
      if (key == "orders") data->orders = value;
      if (key == "end_time") data->end_time = value;
    }
    sqlite3_finalize(q);
    if (data->users <= 0 || data->products <= 0 || data->orders <= 0) {
      *error = "'" + path + "' has a damaged larder_demo table; give a new path";
      return false;
    }
    return true;
  }

  Clock::time_point start = Clock::now();
  if (!Fill(db, cfg, progress, error)) {
    *interrupted = Interrupted();
    if (!*interrupted) *error = "cannot fill database '" + path + "': " + *error;
    return false;
  }
  data->users = cfg.users;
  data->products = cfg.products;
  data->orders = cfg.orders;
  data->end_time = kEndTime;
  data->created = true;
  data->create_seconds = Seconds(Clock::now() - start);
  return true;
}

// ---- Db ----

std::unique_ptr<Db> Db::Open(const std::string& path, std::string* error) {
  sqlite3* handle = nullptr;
  if (sqlite3_open_v2(path.c_str(), &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    if (error) *error = handle ? sqlite3_errmsg(handle) : "out of memory";
    sqlite3_close(handle);
    return nullptr;
  }
  std::unique_ptr<Db> db(new Db(handle));
  sqlite3_busy_timeout(handle, 10000);
  sqlite3_progress_handler(handle, 10000, StopOnSignal, nullptr);
  // Readers share the operating system's page cache through mmap instead of
  // each copying pages into its own.
  ExecSql(handle, "PRAGMA mmap_size=268435456; PRAGMA synchronous=NORMAL", nullptr);
  return db;
}

Db::~Db() {
  for (sqlite3_stmt* st : statements_) sqlite3_finalize(st);
  sqlite3_close(db_);
}

sqlite3_stmt* Db::Prepare(int index, const char* sql) {
  sqlite3_stmt*& st = statements_[index];
  if (st == nullptr) sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  return st;
}

void Db::RoundTrip() {
  g_db.queries.fetch_add(1, std::memory_order_relaxed);
  int64_t us = latency_us_.load(std::memory_order_relaxed);
  if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

bool Db::Fail(const char* what, std::string* error) {
  if (error) *error = std::string(what) + ": " + sqlite3_errmsg(db_);
  return false;
}

bool Db::Exec(const char* sql, std::string* error) { return ExecSql(db_, sql, error); }

namespace {
std::string Text(sqlite3_stmt* st, int column) {
  const unsigned char* t = sqlite3_column_text(st, column);
  return t ? reinterpret_cast<const char*>(t) : "";
}

// The current row's columns joined by '|': the form rows are cached in.
std::string JoinedRow(sqlite3_stmt* st) {
  std::string row;
  for (int c = 0, n = sqlite3_column_count(st); c < n; ++c) {
    if (c > 0) row += '|';
    row += Text(st, c);
  }
  return row;
}
}  // namespace

std::optional<std::string> Db::User(int64_t id) {
  RoundTrip();
  sqlite3_stmt* st = Prepare(kUser, "SELECT id, name, email, country FROM users WHERE id=?");
  sqlite3_bind_int64(st, 1, id);
  std::optional<std::string> row;
  if (sqlite3_step(st) == SQLITE_ROW) {
    row = JoinedRow(st);
  }
  sqlite3_reset(st);
  return row;
}

std::optional<std::string> Db::Product(int64_t id) {
  RoundTrip();
  sqlite3_stmt* st =
      Prepare(kProduct, "SELECT id, name, category, price_cents FROM products WHERE id=?");
  sqlite3_bind_int64(st, 1, id);
  std::optional<std::string> row;
  if (sqlite3_step(st) == SQLITE_ROW) {
    row = JoinedRow(st);
  }
  sqlite3_reset(st);
  return row;
}

std::optional<std::string> Db::Price(int64_t id) {
  RoundTrip();
  sqlite3_stmt* st = Prepare(kPrice, "SELECT price_cents, version FROM products WHERE id=?");
  sqlite3_bind_int64(st, 1, id);
  std::optional<std::string> row;
  if (sqlite3_step(st) == SQLITE_ROW) {
    row = PriceValue(id, sqlite3_column_int64(st, 0),
                     static_cast<uint64_t>(sqlite3_column_int64(st, 1)));
  }
  sqlite3_reset(st);
  return row;
}

std::string Db::RecentOrders(int64_t user_id) {
  RoundTrip();
  sqlite3_stmt* st = Prepare(kRecentOrders,
                             "SELECT id, product_id, quantity, amount_cents, created_at FROM orders"
                             " WHERE user_id=? ORDER BY created_at DESC LIMIT 10");
  sqlite3_bind_int64(st, 1, user_id);
  std::string rows;
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows += JoinedRow(st) + "\n";
  }
  sqlite3_reset(st);
  return rows;
}

std::string Db::Leaderboard() {
  QuerySpan span{Clock::now(), {}};
  RoundTrip();
  g_db.leaderboard.fetch_add(1, std::memory_order_relaxed);
  sqlite3_stmt* st = Prepare(
      kLeaderboard,
      "SELECT p.id, p.name, t.revenue, t.units FROM"
      " (SELECT product_id, SUM(amount_cents) AS revenue, SUM(quantity) AS units FROM orders"
      "  WHERE created_at >= ?1 GROUP BY product_id ORDER BY revenue DESC LIMIT 10) AS t"
      " JOIN products p ON p.id = t.product_id ORDER BY t.revenue DESC");
  sqlite3_bind_int64(st, 1, end_time_.load(std::memory_order_relaxed) - 90 * kDay);
  std::string rows;
  int rank = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows += std::to_string(++rank) + ". " + Text(st, 1) + " (#" + Text(st, 0) +
            "): " + Text(st, 2) + " cents, " + Text(st, 3) + " units\n";
  }
  sqlite3_reset(st);
  span.end = Clock::now();
  RecordLeaderboardSpan(span);
  return rows;
}

bool Db::UpdatePrice(int64_t id, int64_t price, uint64_t version, std::string* error) {
  RoundTrip();
  sqlite3_stmt* st = Prepare(
      kUpdatePrice, "UPDATE products SET price_cents=?2, version=?3 WHERE id=?1 AND version < ?3");
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, price);
  sqlite3_bind_int64(st, 3, static_cast<int64_t>(version));
  if (!Step(db_, st, error)) return false;
  return true;
}

bool Db::Transaction(const std::function<bool()>& body, std::string* error) {
  RoundTrip();  // the batch goes to the database as one round trip
  if (!Step(db_, Prepare(kBegin, "BEGIN IMMEDIATE"), error)) return false;
  if (!body()) {
    Step(db_, Prepare(kRollback, "ROLLBACK"), nullptr);
    return false;
  }
  if (!Step(db_, Prepare(kCommit, "COMMIT"), error)) {
    Step(db_, Prepare(kRollback, "ROLLBACK"), nullptr);
    return false;
  }
  return true;
}

bool Db::ApplyStock(const std::vector<StockWrite>& writes, std::string* error) {
  return Transaction(
      [&] {
        sqlite3_stmt* st = Prepare(kUpdateStock,
                                   "UPDATE inventory SET quantity=?2, version=?3"
                                   " WHERE product_id=?1 AND version < ?3");
        for (const StockWrite& w : writes) {
          sqlite3_bind_int64(st, 1, w.product_id);
          sqlite3_bind_int64(st, 2, w.quantity);
          sqlite3_bind_int64(st, 3, static_cast<int64_t>(w.version));
          if (!Step(db_, st, error)) return false;
        }
        return true;
      },
      error);
}

bool Db::ApplyPrices(const std::vector<PriceWrite>& writes, std::string* error) {
  return Transaction(
      [&] {
        sqlite3_stmt* st =
            Prepare(kUpdatePrice,
                    "UPDATE products SET price_cents=?2, version=?3 WHERE id=?1 AND version < ?3");
        for (const PriceWrite& w : writes) {
          sqlite3_bind_int64(st, 1, w.product_id);
          sqlite3_bind_int64(st, 2, w.price);
          sqlite3_bind_int64(st, 3, static_cast<int64_t>(w.version));
          if (!Step(db_, st, error)) return false;
        }
        return true;
      },
      error);
}

uint64_t Db::ProductVersion(int64_t id) {
  sqlite3_stmt* st = Prepare(kProductVersion, "SELECT version FROM products WHERE id=?");
  sqlite3_bind_int64(st, 1, id);
  uint64_t version = 0;
  if (sqlite3_step(st) == SQLITE_ROW) version = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
  sqlite3_reset(st);
  return version;
}

std::vector<uint64_t> Db::StockVersions(int64_t count) {
  std::vector<uint64_t> versions(static_cast<size_t>(count) + 1, 0);
  sqlite3_stmt* st = Prepare(kStockVersions, "SELECT product_id, version FROM inventory");
  while (sqlite3_step(st) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    if (id >= 0 && id <= count) versions[id] = static_cast<uint64_t>(sqlite3_column_int64(st, 1));
  }
  sqlite3_reset(st);
  return versions;
}

std::string PriceValue(int64_t id, int64_t price, uint64_t version) {
  return std::to_string(id) + "|" + std::to_string(price) + "|" + std::to_string(version);
}

std::string StockValue(int64_t id, int64_t quantity, uint64_t version) {
  return std::to_string(id) + "|" + std::to_string(quantity) + "|" + std::to_string(version);
}

uint64_t VersionOf(std::string_view value) {
  size_t bar = value.rfind('|');
  if (bar == std::string_view::npos) return 0;
  uint64_t v = 0;
  for (char c : value.substr(bar + 1)) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace demo
