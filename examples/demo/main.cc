// larder-demo: the caching lesson, run for real against SQLite.
//
// Creates an SQLite database (users, products, orders), then runs concurrent
// clients against it in five phases: no cache; cache-aside with TTLs; writes
// through each pattern with a staleness checker; a write-behind process
// killed mid-stream; a hot key expiring under many clients. Prints a table at
// the end; --plot DIR draws charts; --json ends with one JSON object.
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <string>

#include "phases.h"

namespace demo {
namespace {

constexpr int kUsage = 2;

const char* kHelp = R"(usage: larder-demo [options]

Runs the caching lesson against a real SQLite database, in five phases:
  1 no cache             every read queries SQLite
  2 cache-aside + TTLs   hit ratio, database queries saved, latency against phase 1
  3 writes               invalidate-after-write, write-through, write-behind (journaled),
                         with a checker counting stale reads
  4 crash                a write-behind process killed with SIGKILL, with and without a journal
  5 stampede             a hot key expiring under many clients: naive, single-flight,
                         single-flight + early refresh

options:
  --db PATH            the SQLite database: created and filled if new, reused if an earlier
                       run made it (default: a temporary file, removed at the end)
  --journal DIR        where write-behind keeps its journal (default: a temporary folder)
  --plot DIR           write charts (SVG and PNG, drawn by gnuplot) and their data to DIR
  --json               end with one line of JSON: every figure of the run
  --quick              a small database and short phases: the whole run in a few seconds
  --users N            users in a new database (100000; --quick 10000)
  --products N         products in a new database (10000; --quick 2000)
  --orders N           orders in a new database (1000000; --quick 100000)
  --clients N          concurrent clients in phases 1-3 (32; --quick 8)
  --stampede-clients N concurrent clients in phase 5 (64)
  --db-latency MS      delay per database query, modelling a networked database
                       (2; 0 shows raw SQLite)
  --seconds S          length of phase 1; phase 2 runs twice as long (3; --quick 0.5)
  --ttl S              the leaderboard's TTL in phase 5 (2; --quick 0.5)
  --refresh-beta B     early refresh's beta in phase 5 (1)
  --seed N             random seed (42)
  -h, --help           this text

Exit status: 0 done, 1 a phase failed, 2 bad arguments or unusable --db/--journal,
130 interrupted (Ctrl-C; a temporary database is removed, a --db one is kept).
)";

void OnSignal(int sig) { g_signal.store(sig); }

bool ParseNumber(const char* text, double* out) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !(v >= 0)) return false;
  *out = v;
  return true;
}

[[noreturn]] void Usage(const std::string& message) {
  std::fprintf(stderr, "larder-demo: %s\n(larder-demo --help lists the options)\n",
               message.c_str());
  std::exit(kUsage);
}

Config ParseArgs(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      cfg.quick = true;
      cfg.users = 10'000;
      cfg.products = 2'000;
      cfg.orders = 100'000;
      cfg.clients = 8;
      cfg.read_seconds = 0.5;
      cfg.write_seconds = 0.4;
      cfg.crash_seconds = 0.3;
      cfg.leaderboard_ttl_seconds = 0.5;
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kHelp, stdout);
      std::exit(0);
    }
    if (a == "--quick") continue;
    if (a == "--json") {
      cfg.json = true;
      continue;
    }
    static const char* const kWithValue[] = {
        "--db",         "--journal", "--plot",    "--users",
        "--products",   "--orders",  "--clients", "--stampede-clients",
        "--db-latency", "--seconds", "--ttl",     "--refresh-beta",
        "--seed"};
    if (std::find(std::begin(kWithValue), std::end(kWithValue), a) == std::end(kWithValue)) {
      Usage("unknown option: " + a);
    }
    if (i + 1 >= argc) Usage(a + " wants a value");
    const char* value = argv[++i];
    double n = 0;
    auto number = [&](double min, double max) {
      if (!ParseNumber(value, &n) || n < min || n > max) {
        char range[64];
        std::snprintf(range, sizeof range, "from %g to %g", min, max);
        Usage(a + " wants a number " + range + ", not '" + value + "'");
      }
      return n;
    };
    if (a == "--db") {
      cfg.db_path = value;
      cfg.db_given = true;
      if (cfg.db_path.empty()) Usage("--db wants a path");
    } else if (a == "--journal") {
      cfg.journal_dir = value;
      if (cfg.journal_dir.empty()) Usage("--journal wants a directory");
    } else if (a == "--plot") {
      cfg.plot_dir = value;
      if (cfg.plot_dir.empty()) Usage("--plot wants a directory");
    } else if (a == "--users") {
      cfg.users = static_cast<int64_t>(number(100, 1e8));
    } else if (a == "--products") {
      cfg.products = static_cast<int64_t>(number(100, 1e7));
    } else if (a == "--orders") {
      cfg.orders = static_cast<int64_t>(number(1000, 1e9));
    } else if (a == "--clients") {
      cfg.clients = static_cast<int>(number(2, 1024));
    } else if (a == "--stampede-clients") {
      cfg.stampede_clients = static_cast<int>(number(2, 4096));
    } else if (a == "--db-latency") {
      cfg.db_latency_ms = number(0, 1000);
    } else if (a == "--seconds") {
      cfg.read_seconds = number(0.1, 3600);
    } else if (a == "--ttl") {
      cfg.leaderboard_ttl_seconds = number(0.1, 3600);
    } else if (a == "--refresh-beta") {
      cfg.refresh_beta = number(0, 100);
    } else if (a == "--seed") {
      cfg.seed = static_cast<uint64_t>(number(0, 1e15));
    } else {
      Usage("unknown option: " + a);
    }
  }
  return cfg;
}

// The journal folder must exist (or be creatable) and take files: checked by
// writing one, since permission bits say nothing to root or on a read-only
// mount.
bool CheckJournalDir(const std::string& dir, std::string* error) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    *error = "cannot create the journal directory '" + dir + "': " + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = "the journal path '" + dir + "' is not a directory";
    return false;
  }
  std::string probe = dir + "/.larder-demo-probe-" + std::to_string(::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, "x", 1) != 1 || ::fdatasync(fd) != 0) {
    *error = "cannot write the journal directory '" + dir + "': " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    ::unlink(probe.c_str());
    return false;
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

std::string SelfPath(const char* argv0) {
  char buffer[4096];
  ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n > 0) return std::string(buffer, static_cast<size_t>(n));
  return argv0;
}

class Run {
 public:
  explicit Run(Config cfg) : cfg_(std::move(cfg)), progress_(cfg_.tty) {}
  ~Run() { CleanUp(); }

  int Main() {
    Clock::time_point start = Clock::now();
    Db::SetLatency(std::chrono::microseconds(static_cast<int64_t>(cfg_.db_latency_ms * 1000)));
    if (!cfg_.db_given || cfg_.journal_dir.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/larder-demo-XXXXXX";
      if (::mkdtemp(tmpl.data()) == nullptr) {
        return Fail(kUsage, "cannot create a temporary directory " + tmpl + ": " +
                                std::strerror(errno) + " (set TMPDIR?)");
      }
      temp_dir_ = tmpl;
    }
    if (!cfg_.db_given) cfg_.db_path = temp_dir_ + "/shop.db";
    if (cfg_.journal_dir.empty()) {
      cfg_.journal_dir = temp_dir_ + "/journal";
    } else {
      journal_given_ = true;
    }
    std::string error;
    if (!CheckJournalDir(cfg_.journal_dir, &error)) return Fail(kUsage, error);

    std::printf("larder-demo: SQLite %s, %s, %g ms per query%s\n", sqlite3_libversion(),
                cfg_.db_given ? cfg_.db_path.c_str() : "temporary database", cfg_.db_latency_ms,
                cfg_.db_latency_ms > 0 ? " (a networked database's round trip)" : " (raw SQLite)");
    // Phase 0: the database.
    progress_.Begin("[0/5] database");
    bool interrupted = false;
    if (!PrepareDatabase(cfg_, progress_, &results_.data, &error, &interrupted)) {
      progress_.Abandon();
      if (interrupted) return Interrupt();
      return Fail(kUsage, error);
    }
    Db::SetEndTime(results_.data.end_time);
    const DataSet& d = results_.data;
    progress_.End(
        (d.created ? "created " : "reusing ") + Thousands(static_cast<uint64_t>(d.users)) +
        " users, " + Thousands(static_cast<uint64_t>(d.products)) + " products, " +
        Thousands(static_cast<uint64_t>(d.orders)) + " orders" +
        (d.created ? " in one transaction (" + std::to_string(d.create_seconds).substr(0, 4) + " s)"
                   : ""));

    progress_.Begin("[1/5] no cache");
    if (!RunNoCache(cfg_, d, progress_, &results_.no_cache)) return Stopped("phase 1");
    {
      const ReadResult& r = results_.no_cache;
      char line[160];
      std::snprintf(line, sizeof line, "%s requests, %s database queries, p50 %.2f ms, p99 %.2f ms",
                    Thousands(r.requests).c_str(), Thousands(r.db_queries).c_str(),
                    r.latency.p50_ms, r.latency.p99_ms);
      progress_.End(line);
    }
    progress_.Begin("[2/5] cache-aside with TTLs");
    if (!RunCacheAside(cfg_, d, progress_, &results_.cache_aside)) return Stopped("phase 2");
    {
      const ReadResult& r = results_.cache_aside;
      char line[200];
      std::snprintf(line, sizeof line,
                    "hit ratio %.1f%% (%s), %s database queries, p50 %.4f ms, p99 %.2f ms",
                    100 * r.hit_ratio(), HitRatioReading(r.hit_ratio()),
                    Thousands(r.db_queries).c_str(), r.latency.p50_ms, r.latency.p99_ms);
      progress_.End(line);
    }
    if (!RunWrites(cfg_, d, progress_, &results_.writes)) return Stopped("phase 3");
    if (!RunCrash(cfg_, d, progress_, &results_.crash, &error)) {
      return Interrupted() ? Interrupt() : Fail(1, "phase 4: " + error);
    }
    if (!RunStampede(cfg_, d, progress_, &results_.stampede)) return Stopped("phase 5");
    results_.elapsed_s = Seconds(Clock::now() - start);

    PrintReport(cfg_, results_);
    int status = 0;
    if (!cfg_.plot_dir.empty()) {
      std::vector<std::string> charts;
      if (WritePlots(cfg_, results_, &charts, &error)) {
        std::printf("\nCharts:\n");
        for (const std::string& c : charts) std::printf("  %s\n", c.c_str());
      } else {
        std::fprintf(stderr, "larder-demo: no charts: %s\n", error.c_str());
        status = 1;
      }
    }
    if (cfg_.json) std::printf("%s\n", JsonSummary(cfg_, results_).c_str());
    std::fflush(stdout);
    return status;
  }

 private:
  int Fail(int status, const std::string& message) {
    std::fflush(stdout);
    std::fprintf(stderr, "larder-demo: %s\n", message.c_str());
    return status;
  }

  int Stopped(const char* phase) {
    if (Interrupted()) return Interrupt();
    progress_.Abandon();
    return Fail(1, std::string(phase) + " failed");
  }

  int Interrupt() {
    progress_.Abandon();
    int sig = g_signal.load();
    CleanUp();
    std::fflush(stdout);
    if (cfg_.db_given) {
      std::fprintf(stderr, "larder-demo: interrupted; the database %s is kept (--db)\n",
                   cfg_.db_path.c_str());
    } else {
      std::fprintf(stderr, "larder-demo: interrupted; the temporary database was removed\n");
    }
    return 128 + sig;
  }

  void CleanUp() {
    std::error_code ec;
    if (journal_given_) {  // only what this run put there
      std::filesystem::remove_all(cfg_.journal_dir + "/writes", ec);
      std::filesystem::remove_all(cfg_.journal_dir + "/crash", ec);
    }
    if (!temp_dir_.empty()) std::filesystem::remove_all(temp_dir_, ec);
    temp_dir_.clear();
  }

  Config cfg_;
  Progress progress_;
  Results results_;
  std::string temp_dir_;
  bool journal_given_ = false;
};

}  // namespace
}  // namespace demo

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--crash-child") == 0) {
    return demo::CrashChildMain(argc, argv);
  }
  demo::Config cfg = demo::ParseArgs(argc, argv);
  cfg.tty = ::isatty(STDOUT_FILENO) == 1;
  cfg.self_path = demo::SelfPath(argv[0]);
  struct sigaction sa = {};
  sa.sa_handler = demo::OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  // Output into a closed pipe (larder-demo | head) must not kill the run
  // before it removes its temporary database.
  signal(SIGPIPE, SIG_IGN);
  demo::Run run(cfg);
  return run.Main();
}
