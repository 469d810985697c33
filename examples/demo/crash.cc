// Phase 4: a child process writes stock levels through write-behind and
// reports every acknowledged write over a pipe; the parent kills it with
// SIGKILL mid-stream, reopens the journal (which replays what the database
// had not yet received) and counts the acknowledged writes missing from
// SQLite. Then the same without a journal.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "larder/cache.h"
#include "phases.h"

namespace demo {

namespace {

constexpr int kAckFd = 3;  // the child's end of the pipe

// One acknowledged write, as the child reports it (16 bytes: a pipe write of
// this size is atomic, so reports from several threads never interleave).
struct Ack {
  uint32_t key;
  uint32_t unused;
  uint64_t version;
};

larder::BatchWriter StockWriter(Db& db) {
  return [&db](const std::vector<larder::QueuedWrite>& batch) {
    std::vector<Db::StockWrite> rows;
    for (const larder::QueuedWrite& w : batch) {
      if (!w.value) continue;
      int64_t id = std::stoll(w.key.substr(6));
      int64_t quantity = std::stoll(w.value->substr(w.value->find('|') + 1));
      rows.push_back({id, quantity, VersionOf(*w.value)});
    }
    std::string why;
    return db.ApplyStock(rows, &why) ? larder::WriteOutcome::Ok()
                                     : larder::WriteOutcome::Failed(why);
  };
}

bool RunRound(bool journaled, const Config& cfg, const DataSet& data, Progress& progress,
              CrashRound* out, std::string* error) {
  const int64_t keys = std::min<int64_t>(500, data.products);
  std::unique_ptr<Db> admin = Db::Open(cfg.db_path, error);
  if (!admin || !admin->Exec("UPDATE inventory SET version=0", error)) return false;
  const std::string journal = cfg.journal_dir + "/crash";
  std::error_code ec;
  std::filesystem::remove_all(journal, ec);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  const std::string latency_us = std::to_string(Db::Latency().count());
  const std::string nkeys = std::to_string(keys), seed = std::to_string(cfg.seed);
  const std::string threads = std::to_string(kCrashWriters);
  const char* argv[] = {cfg.self_path.c_str(),
                        "--crash-child",
                        cfg.db_path.c_str(),
                        journaled ? journal.c_str() : "-",
                        latency_us.c_str(),
                        threads.c_str(),
                        nkeys.c_str(),
                        seed.c_str(),
                        nullptr};
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the demo
    ::dup2(fds[1], kAckFd);              // dup2 clears close-on-exec
    ::execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  ::close(fds[1]);

  std::vector<Ack> acks;
  std::mt19937_64 rng(cfg.seed + (journaled ? 1 : 2));
  // Killed at a random moment between half and all of crash_seconds after
  // the first acknowledged write.
  const double kill_after =
      cfg.crash_seconds * std::uniform_real_distribution<double>(0.5, 1.0)(rng);
  const Clock::time_point spawned = Clock::now();
  Clock::time_point first{}, killed{};
  bool kill_sent = false, stuck = false;
  char buffer[1 << 16];
  size_t held = 0;
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    ssize_t n = -1;
    errno = EAGAIN;
    if (::poll(&p, 1, 20) > 0) n = ::read(fds[0], buffer + held, sizeof buffer - held);
    if (n == 0) break;  // the child is gone
    if (n > 0) {
      held += static_cast<size_t>(n);
      size_t whole = held / sizeof(Ack);
      for (size_t i = 0; i < whole; ++i) {
        Ack a;
        std::memcpy(&a, buffer + i * sizeof(Ack), sizeof a);
        acks.push_back(a);
      }
      std::memmove(buffer, buffer + whole * sizeof(Ack), held - whole * sizeof(Ack));
      held -= whole * sizeof(Ack);
      if (first == Clock::time_point{} && !acks.empty()) first = Clock::now();
    } else if (errno != EAGAIN && errno != EINTR) {
      break;
    }
    Clock::time_point now = Clock::now();
    if (!kill_sent && first == Clock::time_point{} && Seconds(now - spawned) > 20) {
      ::kill(pid, SIGKILL);  // no write acknowledged: the journal cannot be written?
      kill_sent = true;
      stuck = true;
    }
    if (!kill_sent &&
        (Interrupted() || (first != Clock::time_point{} && Seconds(now - first) >= kill_after))) {
      ::kill(pid, SIGKILL);
      kill_sent = true;
      killed = now;
    }
    if (!kill_sent) {
      double f = first == Clock::time_point{} ? 0 : Seconds(now - first) / kill_after;
      progress.Update(f, Thousands(acks.size()) + " writes acknowledged");
    }
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (Interrupted()) return false;
  if (stuck) {
    *error = "the writing child process acknowledged no write in 20 s";
    return false;
  }
  if (!kill_sent) {
    *error = "the writing child process ended before it was killed (" +
             (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                : "signal " + std::to_string(WTERMSIG(status))) +
             ")";
    return false;
  }
  out->acknowledged = acks.size();
  out->killed_after_s = Seconds(killed - first);

  if (journaled) {
    // Recovery, as the restarted service would do it: reopen the journal with
    // a writer; the writes the database never got are replayed first.
    progress.Update(1.0, "reopening the journal");
    std::unique_ptr<Db> recover_db = Db::Open(cfg.db_path, error);
    if (!recover_db) return false;
    larder::Options options;
    options.capacity_bytes = 16 << 20;
    std::unique_ptr<larder::Cache> cache;
    larder::Cache::Create(options, &cache);
    larder::WriteBehindOptions wo;
    wo.journal_dir = journal;
    wo.writer = StockWriter(*recover_db);
    std::unique_ptr<larder::WriteBehind> wb;
    larder::Status s = larder::WriteBehind::Open(cache.get(), wo, &wb);
    if (s != larder::Status::kOk) {
      *error = "cannot reopen the journal in " + journal + ": " + larder::StatusName(s);
      return false;
    }
    wb->Flush();
    out->replayed = wb->GetStats().replayed_writes;
    wb->Close();
  }
  std::vector<uint64_t> stored = admin->StockVersions(keys);
  for (const Ack& a : acks) {
    if (a.key < stored.size() && stored[a.key] < a.version) out->lost++;
  }
  return true;
}

}  // namespace

bool RunCrash(const Config& cfg, const DataSet& data, Progress& progress, CrashResult* out,
              std::string* error) {
  progress.Begin("[4/5] crash: write-behind + journal");
  if (!RunRound(true, cfg, data, progress, &out->journaled, error)) return false;
  progress.End(Thousands(out->journaled.acknowledged) + " acknowledged, killed, " +
               Thousands(out->journaled.replayed) + " replayed from the journal, " +
               Thousands(out->journaled.lost) + " lost");
  progress.Begin("[4/5] crash: write-behind, no journal");
  if (!RunRound(false, cfg, data, progress, &out->unjournaled, error)) return false;
  progress.End(Thousands(out->unjournaled.acknowledged) + " acknowledged, killed, " +
               Thousands(out->unjournaled.lost) + " lost");
  return true;
}

// larder-demo --crash-child DB JOURNAL|- LATENCY_US THREADS KEYS SEED
int CrashChildMain(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr,
                 "usage: larder-demo --crash-child DB JOURNAL|- LATENCY_US THREADS KEYS SEED\n");
    return 2;
  }
  const std::string db_path = argv[2], journal = argv[3];
  Db::SetLatency(std::chrono::microseconds(std::atoll(argv[4])));
  const int threads = std::max(1, std::atoi(argv[5]));
  const int64_t keys = std::max<int64_t>(threads, std::atoll(argv[6]));
  const uint64_t seed = std::strtoull(argv[7], nullptr, 10);

  std::string error;
  std::unique_ptr<Db> db = Db::Open(db_path, &error);
  if (!db) {
    std::fprintf(stderr, "larder-demo (crash child): cannot open %s: %s\n", db_path.c_str(),
                 error.c_str());
    return 3;
  }
  larder::Options options;
  options.capacity_bytes = 16 << 20;
  std::unique_ptr<larder::Cache> cache;
  if (larder::Cache::Create(options, &cache) != larder::Status::kOk) return 3;
  larder::WriteBehindOptions wo;
  if (journal != "-") {
    wo.journal_dir = journal;
    wo.journal_sync = larder::JournalSync::kEveryWrite;  // acknowledged = on disk
  }
  wo.max_attempts = 1000000;
  wo.writer = StockWriter(*db);
  std::unique_ptr<larder::WriteBehind> wb;
  larder::Status s = larder::WriteBehind::Open(cache.get(), wo, &wb);
  if (s != larder::Status::kOk) {
    std::fprintf(stderr, "larder-demo (crash child): cannot open the journal in %s: %s\n",
                 journal.c_str(), larder::StatusName(s));
    return 3;
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 7 + static_cast<uint64_t>(t));
      std::vector<uint64_t> version(static_cast<size_t>(keys) + 1, 0);
      const int64_t owned = (keys - 1 - t) / threads + 1;  // keys with (k - 1) % threads == t
      Clock::time_point next = Clock::now();
      for (;;) {
        int64_t k = 1 + t + threads * static_cast<int64_t>(rng() % static_cast<uint64_t>(owned));
        uint64_t v = ++version[static_cast<size_t>(k)];
        std::string value = StockValue(k, static_cast<int64_t>(rng() % 500), v);
        if (wb->Put("stock:" + std::to_string(k), value) == larder::Status::kOk) {
          Ack a{static_cast<uint32_t>(k), 0, v};
          if (::write(kAckFd, &a, sizeof a) != static_cast<ssize_t>(sizeof a)) _exit(0);
        } else {
          --version[static_cast<size_t>(k)];
        }
        next = std::max(next + kCrashWriteInterval, Clock::now() - 1ms);
        std::this_thread::sleep_until(next);
      }
    });
  }
  std::this_thread::sleep_for(60s);  // the parent kills this process long before
  _exit(0);
}

}  // namespace demo
