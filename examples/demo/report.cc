// The end of the run: the tables, the JSON summary and the charts.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <sstream>

#include "phases.h"

namespace demo {

namespace {

std::string Fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  return buffer;
}

std::string Percent(double fraction) { return Fmt("%.1f%%", 100 * fraction); }

// Latencies from microseconds to seconds, each with three significant figures or so.
std::string Ms(double ms) {
  if (ms < 0.01) return Fmt("%.4f", ms);
  if (ms < 1) return Fmt("%.3f", ms);
  if (ms < 100) return Fmt("%.2f", ms);
  return Fmt("%.0f", ms);
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += Fmt("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

double Saved(const ReadResult& r) {
  return r.requests ? 1.0 - static_cast<double>(r.db_queries) / static_cast<double>(r.requests) : 0;
}

const WriteResult* FindWrite(const Results& r, const std::string& name) {
  for (const WriteResult& w : r.writes) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

double HitRatio(uint64_t hits, uint64_t all) {
  return all ? static_cast<double>(hits) / static_cast<double>(all) : 0;
}

}  // namespace

void PrintReport(const Config& cfg, const Results& r) {
  const ReadResult& a = r.no_cache;
  const ReadResult& b = r.cache_aside;
  std::printf("\nReads: %d clients, %.0f requests/s each, %.1f ms per database query\n",
              cfg.clients, cfg.rate_per_client, cfg.db_latency_ms);
  std::printf("  %-24s %10s %11s %10s %9s %9s %9s %16s\n", "phase", "requests", "db queries",
              "hit ratio", "p50 ms", "p99 ms", "mean ms", "leaderboard p50");
  std::printf("  %-24s %10s %11s %10s %9s %9s %9s %13s ms\n", "1 no cache",
              Thousands(a.requests).c_str(), Thousands(a.db_queries).c_str(), "-",
              Ms(a.latency.p50_ms).c_str(), Ms(a.latency.p99_ms).c_str(),
              Ms(a.latency.mean_ms).c_str(), Ms(a.leaderboard.p50_ms).c_str());
  std::printf("  %-24s %10s %11s %10s %9s %9s %9s %13s ms\n", "2 cache-aside, TTLs",
              Thousands(b.requests).c_str(), Thousands(b.db_queries).c_str(),
              Percent(b.hit_ratio()).c_str(), Ms(b.latency.p50_ms).c_str(),
              Ms(b.latency.p99_ms).c_str(), Ms(b.latency.mean_ms).c_str(),
              Ms(b.leaderboard.p50_ms).c_str());
  std::printf(
      "  hit ratio %s: %s (the lesson: >95%% excellent, 80-95%% good, 60-80%% investigate, "
      "<60%% barely helping)\n",
      Percent(b.hit_ratio()).c_str(), HitRatioReading(b.hit_ratio()));
  std::printf("  %s of the database queries saved; median %s ms -> %s ms, mean %s -> %s ms\n",
              Percent(Saved(b)).c_str(), Ms(a.latency.p50_ms).c_str(), Ms(b.latency.p50_ms).c_str(),
              Ms(a.latency.mean_ms).c_str(), Ms(b.latency.mean_ms).c_str());
  if (b.latency.p99_ms > 0.5 * a.latency.p99_ms) {
    std::printf(
        "  p99 stays near the database's: with %s misses (more than 1 in 100), the 99th\n"
        "  percentile read is a miss\n",
        Percent(1 - b.hit_ratio()).c_str());
  }

  std::printf(
      "\nWrites: %d writers (one write per 5 ms each), %d readers through the cache, "
      "100 hot products\n",
      std::max(2, cfg.clients / 8), std::max(2, cfg.clients / 2));
  std::printf("  %-24s %9s %13s %9s %10s %12s %18s\n", "pattern", "writes", "write p50 ms", "reads",
              "hit ratio", "stale reads", "db behind cache");
  for (const WriteResult& w : r.writes) {
    std::printf("  %-24s %9s %13s %9s %10s %12s %18s\n", ("3 " + w.name).c_str(),
                Thousands(w.writes).c_str(), Ms(w.write_latency.p50_ms).c_str(),
                Thousands(w.reads).c_str(), Percent(HitRatio(w.hits, w.reads)).c_str(),
                Thousands(w.stale_reads).c_str(),
                Percent(HitRatio(w.db_behind, w.db_checks)).c_str());
  }
  std::printf(
      "  stale read: a read that began after a write returned and saw an older version.\n"
      "  db behind cache: direct database reads older than the newest acknowledged write\n"
      "  (what another service would see); write-behind catches up within its max_delay.\n");
  if (const WriteResult* wb = FindWrite(r, "write-behind")) {
    std::printf(
        "  write-behind: %s writes coalesced into %s batches; after Flush, %s keys behind\n",
        Thousands(wb->coalesced).c_str(), Thousands(wb->batches).c_str(),
        Thousands(wb->db_behind_after_flush).c_str());
  }

  const CrashResult& c = r.crash;
  std::printf("\nCrash: a write-behind process killed with SIGKILL mid-stream\n");
  auto per_second = [](const CrashRound& round) {
    return round.killed_after_s > 0
               ? Thousands(static_cast<uint64_t>(round.acknowledged / round.killed_after_s))
               : std::string("-");
  };
  std::printf("  %-24s %14s %16s %10s %8s\n", "queue", "acknowledged", "acknowledged/s", "replayed",
              "lost");
  std::printf("  %-24s %14s %16s %10s %8s\n", "4 journal (every write)",
              Thousands(c.journaled.acknowledged).c_str(), per_second(c.journaled).c_str(),
              Thousands(c.journaled.replayed).c_str(), Thousands(c.journaled.lost).c_str());
  std::printf("  %-24s %14s %16s %10s %8s\n", "4 memory only",
              Thousands(c.unjournaled.acknowledged).c_str(), per_second(c.unjournaled).c_str(), "-",
              Thousands(c.unjournaled.lost).c_str());
  std::printf(
      "  (the writing child offers at most %s writes/s; with the journal, Put returns\n"
      "  once the write's record is on disk)\n",
      Thousands(static_cast<uint64_t>(kCrashWriters * 1e6 / kCrashWriteInterval.count())).c_str());

  const StampedeResult& s = r.stampede;
  std::printf("\nStampede: %d clients read the leaderboard (one query: %s ms), TTL %.1f s\n",
              s.clients, Ms(s.query_ms).c_str(), s.ttl_s);
  std::printf("  %-31s %10s %8s %8s %12s %11s %9s %10s\n", "cache", "db queries", "expiries",
              "reads", "reads waited", "median wait", "slowest", "queries at");
  std::printf("  %-31s %10s %8s %8s %12s %11s %9s %10s\n", "", "", "", "", "", "ms", "ms", "once");
  for (const StampedeVariant& v : s.variants) {
    std::printf("  %-31s %10s %8s %8s %12s %11s %9s %10d\n", ("5 " + v.title).c_str(),
                Thousands(v.db_queries).c_str(), Thousands(v.expiries).c_str(),
                Thousands(v.reads).c_str(), Thousands(v.waited).c_str(),
                v.waited ? Ms(v.waits.p50_ms).c_str() : "-", Ms(v.latency.max_ms).c_str(),
                v.max_concurrent_queries);
  }
  for (const StampedeVariant& v : s.variants) {
    if (v.name == "early_refresh" && v.db_queries > 0) {
      std::printf(
          "  early refresh: %s queries in %.1f s and no reader waited; the first began %.2f s\n"
          "  before the expiry (XFetch refreshes sooner with more readers, a slower query or a\n"
          "  higher --refresh-beta, so a TTL may see more than one refresh)\n",
          Thousands(v.db_queries).c_str(), v.window_s, -v.first_query_s);
    }
  }
  std::printf("\nTotal %.1f s.\n", r.elapsed_s);
}

std::string JsonSummary(const Config& cfg, const Results& r) {
  std::ostringstream j;
  j.precision(6);
  auto reads = [&](const ReadResult& x, bool cached) {
    j << "{\"requests\":" << x.requests << ",\"db_queries\":" << x.db_queries
      << ",\"p50_ms\":" << x.latency.p50_ms << ",\"p99_ms\":" << x.latency.p99_ms
      << ",\"mean_ms\":" << x.latency.mean_ms << ",\"leaderboard_p50_ms\":" << x.leaderboard.p50_ms;
    if (cached) {
      j << ",\"hit_ratio\":" << x.hit_ratio()
        << ",\"reading\":" << JsonString(HitRatioReading(x.hit_ratio()))
        << ",\"db_queries_saved\":" << Saved(x) << ",\"expirations\":" << x.expirations;
    }
    j << "}";
  };
  j << "{\"db\":{\"path\":" << JsonString(cfg.db_given ? cfg.db_path : "(temporary)")
    << ",\"users\":" << r.data.users << ",\"products\":" << r.data.products
    << ",\"orders\":" << r.data.orders << ",\"created\":" << (r.data.created ? "true" : "false")
    << ",\"create_s\":" << r.data.create_seconds << "}";
  j << ",\"db_latency_ms\":" << cfg.db_latency_ms << ",\"clients\":" << cfg.clients;
  j << ",\"no_cache\":";
  reads(r.no_cache, false);
  j << ",\"cache_aside\":";
  reads(r.cache_aside, true);
  for (const WriteResult& w : r.writes) {
    std::string name = w.name;
    std::replace(name.begin(), name.end(), '-', '_');
    j << "," << JsonString(name) << ":{\"writes\":" << w.writes
      << ",\"write_failures\":" << w.write_failures
      << ",\"write_p50_ms\":" << w.write_latency.p50_ms << ",\"reads\":" << w.reads
      << ",\"hit_ratio\":" << HitRatio(w.hits, w.reads) << ",\"stale_reads\":" << w.stale_reads
      << ",\"db_checks\":" << w.db_checks << ",\"db_behind\":" << w.db_behind
      << ",\"db_behind_after_flush\":" << w.db_behind_after_flush
      << ",\"db_queries\":" << w.db_queries << ",\"coalesced\":" << w.coalesced
      << ",\"batches\":" << w.batches << "}";
  }
  const CrashResult& c = r.crash;
  j << ",\"crash\":{\"acknowledged\":" << c.journaled.acknowledged
    << ",\"lost\":" << c.journaled.lost << ",\"replayed\":" << c.journaled.replayed
    << ",\"acknowledged_unjournaled\":" << c.unjournaled.acknowledged
    << ",\"lost_unjournaled\":" << c.unjournaled.lost
    << ",\"killed_after_s\":" << c.journaled.killed_after_s
    << ",\"killed_after_s_unjournaled\":" << c.unjournaled.killed_after_s << "}";
  const StampedeResult& s = r.stampede;
  j << ",\"stampede\":{\"clients\":" << s.clients << ",\"ttl_s\":" << s.ttl_s
    << ",\"query_ms\":" << s.query_ms;
  for (const StampedeVariant& v : s.variants) {
    j << "," << JsonString(v.name) << ":{\"db_queries\":" << v.db_queries
      << ",\"expiries\":" << v.expiries << ",\"reads\":" << v.reads << ",\"waited\":" << v.waited
      << ",\"wait_p50_ms\":" << v.waits.p50_ms << ",\"max_ms\":" << v.latency.max_ms
      << ",\"first_query_s\":" << v.first_query_s
      << ",\"max_concurrent_queries\":" << v.max_concurrent_queries << "}";
  }
  j << "},\"elapsed_s\":" << r.elapsed_s << "}";
  return j.str();
}

namespace {

// Per time slice of the stampede: the slowest read that finished in it, and
// at its middle how many clients were waiting for the database and how many
// leaderboard queries were running.
void WriteStampedeData(std::ostream& out, const StampedeResult& s, double from, double to,
                       double slice) {
  const int n = static_cast<int>(std::ceil((to - from) / slice));
  for (const StampedeVariant& v : s.variants) {
    out << "# " << v.name
        << ": ms since expiry, slowest read finishing (ms), clients waiting, queries running\n";
    std::vector<float> slowest(static_cast<size_t>(n), -1);
    std::vector<std::pair<double, double>> waits;
    for (const Sample& x : v.samples) {
      double end = x.start_s + x.latency_ms / 1000.0;
      int i = static_cast<int>(std::floor((end - from) / slice));
      if (i >= 0 && i < n)
        slowest[static_cast<size_t>(i)] = std::max(slowest[static_cast<size_t>(i)], x.latency_ms);
      if (!x.hit) waits.emplace_back(x.start_s, end);
    }
    for (int i = 0; i < n; ++i) {
      double mid = from + (i + 0.5) * slice;
      int waiting = 0, running = 0;
      for (auto [a, b] : waits) waiting += a <= mid && mid < b;
      for (auto [a, b] : v.query_spans) running += a <= mid && mid < b;
      out << mid * 1000 << " ";
      if (slowest[static_cast<size_t>(i)] < 0) {
        out << "NaN";
      } else {
        out << slowest[static_cast<size_t>(i)];
      }
      out << " " << waiting << " " << running << "\n";
    }
    out << "\n\n";
  }
}

const char* kStampedePlot = R"gp(
set multiplot layout 3,1 title "Stampede: the leaderboard key expires under %CLIENTS% concurrent clients (one query %QUERY% ms, TTL %TTL% s)" font ",13"
set grid
set xrange [%FROM%:%TO%]
set lmargin 10
set key center center opaque
set arrow 1 from 0, graph 0 to 0, graph 1 nohead dt 2 lc rgb "black"
set title "Clients waiting for the database"
set ylabel "clients"
set yrange [0:*]
set label 1 "expiry" at 0, graph 0.9 right offset -0.5,0
plot "stampede.dat" index 0 using 1:3 with steps lw 2 lc rgb "#d62728" title "naive cache-aside", \
     "" index 1 using 1:3 with steps lw 2 lc rgb "#1f77b4" title "single-flight (GetOrLoad)", \
     "" index 2 using 1:3 with steps lw 2 lc rgb "#2ca02c" title "single-flight + early refresh"
unset label 1
set title "Leaderboard queries running in SQLite"
set ylabel "queries"
plot "stampede.dat" index 0 using 1:4 with steps lw 2 lc rgb "#d62728" title "naive cache-aside", \
     "" index 1 using 1:4 with steps lw 2 lc rgb "#1f77b4" title "single-flight (GetOrLoad)", \
     "" index 2 using 1:4 with steps lw 2 lc rgb "#2ca02c" title "single-flight + early refresh"
set title "Slowest read finishing in each %SLICE% ms (log scale; colours as above)"
set xlabel "ms since the key expired"
set ylabel "ms"
set logscale y
set yrange [0.001:*]
set format y "%g"
unset key
plot "stampede.dat" index 0 using 1:2 with points pt 7 ps 0.5 lc rgb "#d62728" title "naive cache-aside", \
     "" index 1 using 1:2 with points pt 7 ps 0.5 lc rgb "#1f77b4" title "single-flight (GetOrLoad)", \
     "" index 2 using 1:2 with points pt 7 ps 0.5 lc rgb "#2ca02c" title "single-flight + early refresh"
unset multiplot
)gp";

const char* kOverviewPlot = R"gp(
reset
set multiplot layout 2,3 title "Larder against SQLite: %USERS% users, %ORDERS% orders, %LATENCY% ms per query, %CLIENTS% clients" font ",13"
set style fill solid 0.85 border -1
set boxwidth 0.6
set grid ytics
set xtics nomirror rotate by -25 scale 0
unset key

set title "Database queries per phase (log scale)"
set logscale y
set yrange [0.5:*]
plot "phases.dat" index 0 using 0:2:xtic(1) with boxes lc rgb "#1f77b4", \
     "" index 0 using 0:2:(sprintf("%d", $2)) with labels offset 0,0.7 font ",9"
unset logscale y

set title "Hit ratio per phase (share of reads the cache answered)"
set yrange [0:105]
set ylabel "%"
set arrow 11 from graph 0, first 95 to graph 1, first 95 nohead dt 2 lc rgb "#2ca02c"
set arrow 12 from graph 0, first 80 to graph 1, first 80 nohead dt 2 lc rgb "#ff7f0e"
set arrow 13 from graph 0, first 60 to graph 1, first 60 nohead dt 2 lc rgb "#d62728"
plot "phases.dat" index 1 using 0:2:xtic(1) with boxes lc rgb "#2ca02c", \
     "" index 1 using 0:2:(sprintf("%.1f", $2)) with labels offset 0,0.7 font ",9"
unset arrow 11
unset arrow 12
unset arrow 13

set title "Phase 2: hit ratio while the cache warms up"
set xtics norotate scale 1
set xlabel "seconds into the phase"
set yrange [0:105]
set label 21 "excellent" at graph 0.02, first 97.5 font ",9" tc rgb "#2ca02c"
set label 22 "good" at graph 0.02, first 87.5 font ",9" tc rgb "#ff7f0e"
set label 23 "investigate" at graph 0.02, first 70 font ",9" tc rgb "#d62728"
set label 24 "barely helping" at graph 0.02, first 50 font ",9" tc rgb "#d62728"
set arrow 21 from graph 0, first 95 to graph 1, first 95 nohead dt 2 lc rgb "#2ca02c"
set arrow 22 from graph 0, first 80 to graph 1, first 80 nohead dt 2 lc rgb "#ff7f0e"
set arrow 23 from graph 0, first 60 to graph 1, first 60 nohead dt 2 lc rgb "#d62728"
plot "hit_ratio.dat" using 1:($2*100) with linespoints lw 2 pt 7 ps 0.6 lc rgb "#1f77b4"
unset label 21
unset label 22
unset label 23
unset label 24
unset arrow 21
unset arrow 22
unset arrow 23
unset xlabel

set title "Read latency: no cache vs cache-aside (log scale)"
set style data histograms
set style histogram clustered gap 1
set logscale y
set yrange [*:*]
set ylabel "ms"
set format y "%g"
set key top left Left reverse
plot "latency.dat" using 2:xtic(1) title "p50" lc rgb "#1f77b4", \
     "" using 3 title "p99" lc rgb "#ff7f0e", \
     "" using 4 title "mean" lc rgb "#7f7f7f"
unset logscale y
unset key
set style data lines

set title "Crash (SIGKILL) with write-behind: acknowledged writes"
set ylabel "writes"
set yrange [0:*]
set style histogram clustered gap 1
set key top left Left reverse
plot "crash.dat" using 2:xtic(1) with histograms title "acknowledged" lc rgb "#1f77b4", \
     "" using 3 with histograms title "lost" lc rgb "#d62728", \
     "" using 0:3:(sprintf("lost %d", $3)) with labels offset 1.5,1 font ",9" notitle
unset key

set title "Writes: reads older than the newest acknowledged write (%)"
set ylabel "%"
set yrange [0:*]
set xtics norotate
set offsets 0, 0, graph 0.3, 0
set key top left Left reverse
plot "writes.dat" using 2:xtic(1) with histograms title "stale reads (through the cache)" lc rgb "#d62728", \
     "" using 3 with histograms title "database behind (direct reads)" lc rgb "#7f7f7f", \
     "" using ($0-0.15):2:(sprintf("%.0f stale", $4)) with labels offset 0,0.8 font ",9" notitle
unset multiplot
)gp";

std::string Substitute(std::string text,
                       const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [name, value] : vars) {
    for (size_t at; (at = text.find(name)) != std::string::npos;)
      text.replace(at, name.size(), value);
  }
  return text;
}

}  // namespace

bool WritePlots(const Config& cfg, const Results& r, std::vector<std::string>* charts,
                std::string* error) {
  const std::string& dir = cfg.plot_dir;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    *error = "cannot create " + dir + ": " + std::strerror(errno);
    return false;
  }
  auto open = [&](const char* name, std::ofstream& f) {
    f.open(dir + "/" + name);
    if (!f) *error = "cannot write " + dir + "/" + name + ": " + std::strerror(errno);
    return static_cast<bool>(f);
  };
  const StampedeResult& s = r.stampede;
  const double from = -std::min(0.5, s.ttl_s);
  double to = 0.3;
  for (const StampedeVariant& v : s.variants) to = std::max(to, v.window_s - s.ttl_s);
  const double slice = std::max(0.005, (to - from) / 300);
  {
    std::ofstream f;
    if (!open("stampede.dat", f)) return false;
    WriteStampedeData(f, s, from, to, slice);
  }
  {
    std::ofstream f;
    if (!open("phases.dat", f)) return false;
    f << "# phase, database queries\n";
    f << "\"no cache\" " << r.no_cache.db_queries << "\n";
    f << "\"cache-aside\" " << r.cache_aside.db_queries << "\n";
    for (const WriteResult& w : r.writes) f << "\"" << w.name << "\" " << w.db_queries << "\n";
    const char* names[] = {"stampede naive", "single-flight", "early refresh"};
    for (size_t i = 0; i < s.variants.size() && i < 3; ++i) {
      f << "\"" << names[i] << "\" " << std::max<uint64_t>(s.variants[i].db_queries, 0) << "\n";
    }
    f << "\n\n# phase, hit ratio (%)\n";
    f << "\"no cache\" 0\n";
    f << "\"cache-aside\" " << 100 * r.cache_aside.hit_ratio() << "\n";
    for (const WriteResult& w : r.writes)
      f << "\"" << w.name << "\" " << 100 * HitRatio(w.hits, w.reads) << "\n";
    for (size_t i = 0; i < s.variants.size() && i < 3; ++i) {
      const StampedeVariant& v = s.variants[i];
      f << "\"" << names[i] << "\" " << 100 * HitRatio(v.reads - v.waited, v.reads) << "\n";
    }
  }
  {
    std::ofstream f;
    if (!open("hit_ratio.dat", f)) return false;
    f << "# seconds into phase 2, hit ratio\n";
    for (auto [t, h] : r.cache_aside.hit_ratio_over_time) f << t << " " << h << "\n";
  }
  {
    std::ofstream f;
    if (!open("latency.dat", f)) return false;
    f << "# phase, p50, p99, mean (ms)\n";
    f << "\"no cache\" " << r.no_cache.latency.p50_ms << " " << r.no_cache.latency.p99_ms << " "
      << r.no_cache.latency.mean_ms << "\n";
    f << "\"cache-aside\" " << r.cache_aside.latency.p50_ms << " " << r.cache_aside.latency.p99_ms
      << " " << r.cache_aside.latency.mean_ms << "\n";
  }
  {
    std::ofstream f;
    if (!open("crash.dat", f)) return false;
    f << "# queue, acknowledged, lost\n";
    f << "\"journal\" " << r.crash.journaled.acknowledged << " " << r.crash.journaled.lost << "\n";
    f << "\"memory only\" " << r.crash.unjournaled.acknowledged << " " << r.crash.unjournaled.lost
      << "\n";
  }
  {
    std::ofstream f;
    if (!open("writes.dat", f)) return false;
    f << "# pattern, stale reads (% of reads), database behind (% of direct checks), stale reads\n";
    for (const WriteResult& w : r.writes) {
      f << "\"" << (w.name == "invalidate-after-write" ? "invalidate" : w.name) << "\" "
        << 100 * HitRatio(w.stale_reads, w.reads) << " " << 100 * HitRatio(w.db_behind, w.db_checks)
        << " " << w.stale_reads << "\n";
    }
  }
  const std::string stampede = Substitute(kStampedePlot, {{"%CLIENTS%", std::to_string(s.clients)},
                                                          {"%QUERY%", Ms(s.query_ms)},
                                                          {"%TTL%", Fmt("%.1f", s.ttl_s)},
                                                          {"%SLICE%", Fmt("%.0f", slice * 1000)},
                                                          {"%FROM%", Fmt("%.0f", from * 1000)},
                                                          {"%TO%", Fmt("%.0f", to * 1000)}});
  const std::string overview =
      Substitute(kOverviewPlot, {{"%USERS%", Thousands(static_cast<uint64_t>(r.data.users))},
                                 {"%ORDERS%", Thousands(static_cast<uint64_t>(r.data.orders))},
                                 {"%LATENCY%", Fmt("%g", cfg.db_latency_ms)},
                                 {"%CLIENTS%", std::to_string(cfg.clients)}});
  {
    std::ofstream f;
    if (!open("larder-demo.gp", f)) return false;
    f << "# Written by larder-demo; run with: gnuplot larder-demo.gp (in this folder)\n";
    for (const char* format : {"svg", "png"}) {
      std::string term =
          std::string(format) == "svg"
              ? "set terminal svg size %W%,%H% dynamic font 'sans,11' background '#ffffff'\n"
              : "set terminal pngcairo size %W%,%H% font 'sans,10' background '#ffffff'\n";
      f << Substitute(term, {{"%W%", "1100"}, {"%H%", "760"}}) << "set output 'stampede." << format
        << "'\n"
        << stampede << "\nreset\n";
      f << Substitute(term, {{"%W%", "1500"}, {"%H%", "860"}}) << "set output 'overview." << format
        << "'\n"
        << overview << "\nreset\n";
    }
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) _exit(126);
    int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, STDOUT_FILENO);
    ::execlp("gnuplot", "gnuplot", "larder-demo.gp", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) < 0) {
    *error = std::string("cannot run gnuplot: ") + std::strerror(errno);
    return false;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    *error =
        "gnuplot not found (Debian package gnuplot-nox; scripts/bootstrap.sh installs it); "
        "the data and larder-demo.gp are in " +
        dir;
    return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *error = "gnuplot failed on " + dir + "/larder-demo.gp";
    return false;
  }
  for (const char* name : {"overview.svg", "stampede.svg", "overview.png", "stampede.png"}) {
    charts->push_back(dir + "/" + name);
  }
  return true;
}

}  // namespace demo
