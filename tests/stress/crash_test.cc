// W3's promise under SIGKILL: with a journal synced per write, every write
// Put acknowledged reaches the store after a restart, whenever the process
// died. A child process writes; the parent kills it at seeded random
// moments, reopens the journal, flushes, and checks the store. The same
// promise when the journal's own writes fail: a forked child makes one append
// fail part-way (RLIMIT_FSIZE) or one fdatasync fail (the journal's test
// seam), writes on, and dies without closing.
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "journal.h"
#include "larder/cache.h"

namespace larder {
namespace {

using namespace std::chrono_literals;

// The store's value of each key: the line with the largest sequence.
std::map<std::string, long> ReadStore(const std::string& path) {
  std::map<std::string, std::pair<uint64_t, long>> best;
  std::ifstream in(path);
  std::string key, value;
  uint64_t sequence;
  while (in >> key >> sequence >> value) {
    auto& b = best[key];
    if (sequence > b.first) b = {sequence, value == "-" ? -1 : std::stol(value)};
  }
  std::map<std::string, long> out;
  for (auto& [k, b] : best) out[k] = b.second;
  return out;
}

TEST(Crash, KillingTheWriterAtRandomMomentsLosesNoAcknowledgedWrite) {
  const std::string dir = ::testing::TempDir() + "larder-crash-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string journal = dir + "/journal";
  const std::string store = dir + "/store.txt";
  std::mt19937 rng(20261126);
  std::map<std::string, long> acknowledged;  // key -> newest version acknowledged to the child
  constexpr int kRounds = 20;
  long total_acks = 0, total_replayed = 0;
  for (int round = 1; round <= kRounds; ++round) {
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      const std::string r = std::to_string(round);
      ::execl(LARDER_CRASH_CHILD, LARDER_CRASH_CHILD, journal.c_str(), store.c_str(), r.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    // The random moment counts from the child's first acknowledgement, not
    // from fork: on a loaded machine start-up alone can take longer than a
    // timer from fork, and the round would kill a child that wrote nothing.
    std::string printed;
    char buf[4096];
    ssize_t n = 0;
    while (printed.find('\n') == std::string::npos) {
      pollfd ready{out[0], POLLIN, 0};
      const int polled = ::poll(&ready, 1, 30'000);
      if (polled < 0 && errno == EINTR) continue;
      if (polled != 1) break;
      if ((n = ::read(out[0], buf, sizeof buf)) <= 0) break;
      printed.append(buf, static_cast<size_t>(n));
    }
    EXPECT_NE(printed.find('\n'), std::string::npos)
        << "round " << round << ": no write acknowledged";
    std::this_thread::sleep_for(std::chrono::milliseconds(10 + rng() % 200));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited by itself: " << status;
    // Everything it printed before dying was acknowledged.
    while ((n = ::read(out[0], buf, sizeof buf)) > 0) printed.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    std::istringstream lines(printed);
    std::string key, version;
    while (lines >> key >> version) {
      if (version.empty()) break;
      acknowledged[key] = std::max(acknowledged[key], std::stol(version));
      ++total_acks;
    }

    // Restart: reopen the journal and let it deliver what it kept.
    Options o;
    o.capacity_bytes = 1 << 20;
    std::unique_ptr<Cache> cache;
    ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);
    std::ofstream append(store, std::ios::app);
    WriteBehindOptions wo;
    wo.journal_dir = journal;
    wo.writer = [&](const std::vector<QueuedWrite>& batch) {
      for (const QueuedWrite& w : batch) {
        append << w.key << " " << w.sequence << " " << (w.value ? *w.value : "-") << "\n";
      }
      append.flush();
      return WriteOutcome::Ok();
    };
    std::unique_ptr<WriteBehind> wb;
    ASSERT_EQ(WriteBehind::Open(cache.get(), wo, &wb), Status::kOk);
    total_replayed += static_cast<long>(wb->GetStats().replayed_writes);
    ASSERT_EQ(wb->Close(30s), Status::kOk);
    append.close();

    const std::map<std::string, long> stored = ReadStore(store);
    for (const auto& [k, v] : acknowledged) {
      auto it = stored.find(k);
      ASSERT_NE(it, stored.end()) << "round " << round << ": acknowledged " << k << " missing";
      EXPECT_GE(it->second, v) << "round " << round << ": " << k << " lost version " << v;
    }
  }
  std::printf(
      "crash test: %d SIGKILLs, %ld acknowledged writes, %ld replayed after restarts, "
      "none lost\n",
      kRounds, total_acks, total_replayed);
  std::filesystem::remove_all(dir);
}

// ---- the journal's own writes fail ----

// Runs `body` in a forked child that reports one line per write on `out`
// and ends with _exit: a crash, nothing closed or flushed. Returns what it
// printed; *status gets its wait status.
std::string InChild(const std::function<void(FILE* out)>& body, int* status) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return "";
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    FILE* out = ::fdopen(pipe_fds[1], "w");
    body(out);
    std::fflush(out);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string printed;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buf, sizeof buf)) > 0)
    printed.append(buf, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  ::waitpid(child, status, 0);
  return printed;
}

struct Reported {
  std::map<std::string, std::string> acknowledged;  // key -> newest value Put acknowledged
  std::map<std::string, int> refused;               // key -> the status of a refused Put
  int lines = 0;
};

Reported ParseReport(const std::string& printed) {
  Reported r;
  std::istringstream lines(printed);
  std::string key, value;
  int status;
  while (lines >> key >> value >> status) {
    ++r.lines;
    if (status == static_cast<int>(Status::kOk)) {
      r.acknowledged[key] = value;
    } else {
      r.refused[key] = status;
    }
  }
  return r;
}

// In the child: a write-behind whose writer is never called (so every
// record stays outstanding in the journal), synced per write.
std::unique_ptr<WriteBehind> OpenUndelivered(Cache* cache, const std::string& journal) {
  WriteBehindOptions wo;
  wo.journal_dir = journal;
  wo.journal_sync = JournalSync::kEveryWrite;
  wo.max_delay = 1h;
  wo.max_batch = 1 << 20;
  wo.writer = [](const std::vector<QueuedWrite>&) { return WriteOutcome::Failed("unreachable"); };
  std::unique_ptr<WriteBehind> wb;
  if (WriteBehind::Open(cache, wo, &wb) != Status::kOk) return nullptr;
  return wb;
}

// Puts and reports "key value status".
void PutAndReport(WriteBehind* wb, FILE* out, const std::string& key, const std::string& value) {
  const Status s = wb->Put(key, value);
  std::fprintf(out, "%s %s %d\n", key.c_str(), value.c_str(), static_cast<int>(s));
  std::fflush(out);
}

// The size of the newest segment file in `journal`.
off_t ActiveSegmentSize(const std::string& journal) {
  std::string newest;
  for (auto& entry : std::filesystem::directory_iterator(journal)) {
    if (entry.path().string() > newest) newest = entry.path().string();
  }
  struct stat st;
  return ::stat(newest.c_str(), &st) == 0 ? st.st_size : -1;
}

// After the crash: reopens the journal with a writer that records what it
// receives, and checks that every acknowledged write (the newest per key)
// was replayed.
void ExpectEveryAcknowledgedWriteRecovered(const std::string& journal, const Reported& reported,
                                           WriteBehindStats* stats_out) {
  Options o;
  o.capacity_bytes = 1 << 20;
  std::unique_ptr<Cache> cache;
  ASSERT_EQ(Cache::Create(o, &cache), Status::kOk);
  std::map<std::string, std::pair<uint64_t, std::string>> received;  // key -> newest delivered
  WriteBehindOptions wo;
  wo.journal_dir = journal;
  wo.writer = [&](const std::vector<QueuedWrite>& batch) {
    for (const QueuedWrite& w : batch) {
      auto& r = received[w.key];
      if (w.sequence > r.first) r = {w.sequence, w.value ? *w.value : "-"};
    }
    return WriteOutcome::Ok();
  };
  std::unique_ptr<WriteBehind> wb;
  ASSERT_EQ(WriteBehind::Open(cache.get(), wo, &wb), Status::kOk);
  ASSERT_EQ(wb->Close(30s), Status::kOk);
  *stats_out = wb->GetStats();
  for (const auto& [key, value] : reported.acknowledged) {
    auto it = received.find(key);
    ASSERT_TRUE(it != received.end()) << "acknowledged write of " << key << " lost";
    EXPECT_EQ(it->second.second, value) << key;
  }
}

int FailingFtruncate(int, off_t) {
  errno = EIO;
  return -1;
}

// In a child process: five acknowledged writes, then `fault` makes one write
// (of `refused_key`) fail in the journal, then five more writes and a newer
// value of the first key; then the process dies with nothing closed. The
// parent checks that exactly the faulty write was refused and that recovery
// hands every acknowledged write to the writer; *stats gets the recovery's.
void WritesAroundAFaultThenCrash(
    const std::string& name, const std::string& refused_key,
    const std::function<void()>& child_setup,
    const std::function<void(WriteBehind*, FILE*, const std::string& journal)>& fault,
    WriteBehindStats* stats) {
  const std::string dir =
      ::testing::TempDir() + "larder-" + name + "-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string journal = dir + "/journal";
  int status = 0;
  const std::string printed = InChild(
      [&](FILE* out) {
        child_setup();
        Options o;
        o.capacity_bytes = 1 << 20;
        std::unique_ptr<Cache> cache;
        if (Cache::Create(o, &cache) != Status::kOk) ::_exit(2);
        std::unique_ptr<WriteBehind> wb = OpenUndelivered(cache.get(), journal);
        if (wb == nullptr) ::_exit(3);
        for (int i = 0; i < 5; ++i) {
          PutAndReport(wb.get(), out, "before" + std::to_string(i), "v" + std::to_string(i));
        }
        fault(wb.get(), out, journal);
        // Later writes must still be durable and recovered.
        for (int i = 0; i < 5; ++i) {
          PutAndReport(wb.get(), out, "after" + std::to_string(i), "w" + std::to_string(i));
        }
        PutAndReport(wb.get(), out, "before0", "v0-newer");
        ::_exit(0);  // a crash: nothing closed
      },
      &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  const Reported reported = ParseReport(printed);
  ASSERT_EQ(reported.lines, 12) << printed;
  ASSERT_EQ(reported.refused.count(refused_key), 1u) << refused_key << " was acknowledged";
  EXPECT_EQ(reported.refused.at(refused_key), static_cast<int>(Status::kIoError));
  EXPECT_EQ(reported.acknowledged.size(), 10u) << printed;  // before0-4, after0-4
  // The refused write's outcome is unknown (it may be replayed); every
  // acknowledged one must be.
  ExpectEveryAcknowledgedWriteRecovered(journal, reported, stats);
  std::filesystem::remove_all(dir);
}

// One append fails part-way (RLIMIT_FSIZE) between acknowledged writes. With
// `cut_fails`, the torn record cannot be cut off either.
void TornAppendThenCrash(bool cut_fails) {
  WriteBehindStats stats;
  WritesAroundAFaultThenCrash(
      "torn-append", "torn",
      [cut_fails] {
        ::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead
        if (cut_fails) internal::journal_testing::ftruncate_fn = &FailingFtruncate;
      },
      [](WriteBehind* wb, FILE* out, const std::string& journal) {
        // The next record fits only a few bytes under the limit: written part-way.
        rlimit limit;
        if (::getrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(4);
        rlimit low = limit;
        low.rlim_cur = static_cast<rlim_t>(ActiveSegmentSize(journal) + 10);
        if (::setrlimit(RLIMIT_FSIZE, &low) != 0) ::_exit(5);
        PutAndReport(wb, out, "torn", std::string(200, 't'));
        limit.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(6);
      },
      &stats);
  if (::testing::Test::HasFatalFailure()) return;
  if (cut_fails) {
    EXPECT_EQ(stats.journal_truncated_bytes, 10u);  // left behind, cut off at recovery
  } else {
    EXPECT_EQ(stats.journal_truncated_bytes, 0u) << "the torn record was not rolled back";
  }
  EXPECT_EQ(stats.replayed_writes, 10u);  // and the refused write is not among them
}

TEST(Crash, JournalFailedAppendLosesNoLaterAcknowledgedWrite) { TornAppendThenCrash(false); }

TEST(Crash, JournalTornRecordThatCannotBeCutOffLosesNoLaterAcknowledgedWrite) {
  TornAppendThenCrash(true);
}

// Fails the next `g_failing_syncs` calls with EIO, then syncs for real.
std::atomic<int> g_failing_syncs{0};
int FlakyFdatasync(int fd) {
  int left = g_failing_syncs.load();
  while (left > 0) {
    if (g_failing_syncs.compare_exchange_weak(left, left - 1)) {
      errno = EIO;
      return -1;
    }
  }
  return ::fdatasync(fd);
}

TEST(Crash, JournalSyncFailureAcknowledgesNothingAsDurable) {
  // A retry on the same file could report success after the kernel dropped
  // the pages; the writes after the failure must still be durable.
  WriteBehindStats stats;
  WritesAroundAFaultThenCrash(
      "sync-fail", "doomed", [] { internal::journal_testing::fdatasync_fn = &FlakyFdatasync; },
      [](WriteBehind* wb, FILE* out, const std::string&) {
        g_failing_syncs = 1;  // the sync that would make the next write durable fails
        PutAndReport(wb, out, "doomed", "x");
      },
      &stats);
}

}  // namespace
}  // namespace larder
