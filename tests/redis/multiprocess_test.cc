// Several processes, one Redis (the test's own, on 127.0.0.1 and a free
// port): how long a write in one takes to stop the others serving the old
// value, with the invalidation connections killed mid-test; and one load per
// expiry across processes with the stampede lock. The children are
// tests/redis/tier_proc.cc. Prints the figures bench/README.md quotes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "larder/tiered.h"
#include "redis_server.h"

#ifndef LARDER_TIER_PROC
#error "LARDER_TIER_PROC must name the tier_proc binary"
#endif

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

int64_t MonoNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// A child process with a pipe to its stdin and one from its stdout.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_child_ = in[1];
    from_child_ = out[0];
  }
  ~Child() {
    Stop();
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (from_child_ >= 0) close(from_child_);
  }
  bool started() const { return pid_ > 0; }

  // The next line of its stdout, or "" after `limit` or at EOF.
  std::string ReadLine(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd p{from_child_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = read(from_child_, buf, sizeof buf);
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }
  // Closes its stdin (it stops) and collects the rest of its output.
  std::vector<std::string> Finish(std::chrono::milliseconds limit) {
    Stop();
    std::vector<std::string> lines;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string line = ReadLine(std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()));
      if (line.empty()) break;
      lines.push_back(line);
    }
    int status = 0;
    for (int i = 0; i < 500 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    exit_ok_ = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (waitpid(pid_, nullptr, WNOHANG) == 0) kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return lines;
  }
  bool exit_ok() const { return exit_ok_; }

 private:
  void Stop() {
    if (to_child_ >= 0) close(to_child_);
    to_child_ = -1;
  }
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
  std::string buffer_;
  bool exit_ok_ = false;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[k];
}

struct RunLine {
  long version;
  int64_t first_start, last_start, last_end;
};

TEST(MultiProcess, AWriteStopsEveryOtherProcessServingTheOldValueWithinTheBound) {
  constexpr int kReaders = 4;
  constexpr int kWrites = 150;
  constexpr int64_t kBoundNanos = 500'000'000;  // tier_proc's max_staleness
  RedisServer redis;
  std::string why;
  ASSERT_TRUE(redis.Start({}, &why)) << why;
  const std::string port = std::to_string(redis.port());
  ASSERT_EQ(redis.Command({"SET", "hot", "0"}), "OK");

  std::vector<std::unique_ptr<Child>> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.push_back(std::make_unique<Child>(
        std::vector<std::string>{LARDER_TIER_PROC, "reader", "--port", port, "--key", "hot"}));
    ASSERT_TRUE(readers.back()->started());
  }
  for (auto& r : readers) ASSERT_EQ(r->ReadLine(10s), "ready");

  // The writer: another instance of the service, cache-aside.
  TieredOptions o;
  o.l1.capacity_bytes = 1 << 20;
  o.redis.port = redis.port();
  std::unique_ptr<TieredCache> writer;
  ASSERT_EQ(TieredCache::Create(o, &writer, &why), Status::kOk) << why;
  std::vector<int64_t> started(kWrites + 1), acked(kWrites + 1);
  int64_t kill_at = 0;
  for (int v = 1; v <= kWrites; ++v) {
    std::this_thread::sleep_for(10ms);
    if (v == kWrites / 2) {
      // Every invalidation connection (the readers' and the writer's) dies
      // mid-test; writes go on while they reconnect.
      kill_at = MonoNanos();
      EXPECT_NE(redis.Command({"CLIENT", "KILL", "TYPE", "pubsub"}), "0");
    }
    started[v] = MonoNanos();
    ASSERT_EQ(writer->Set("hot", std::to_string(v)), Status::kOk);
    acked[v] = MonoNanos();
  }
  std::this_thread::sleep_for(700ms);  // past the bound: everyone has the last one

  std::vector<double> after_ack_us, from_start_us, all_processes_us;
  std::vector<double> per_version_max(kWrites + 1, 0);
  double max_after_ack_us = 0, max_near_kill_us = 0;
  uint64_t losses = 0, reconnects = 0, bypassed = 0;
  for (auto& r : readers) {
    std::vector<RunLine> runs;
    for (const std::string& line : r->Finish(10s)) {
      std::istringstream in(line);
      std::string kind;
      in >> kind;
      if (kind == "run") {
        RunLine run;
        unsigned long long reads;
        in >> run.version >> run.first_start >> run.last_start >> run.last_end >> reads;
        runs.push_back(run);
      } else if (kind == "stats") {
        uint64_t l, rc, b;
        in >> l >> rc >> b;
        losses += l;
        reconnects += rc;
        bypassed += b;
      }
    }
    EXPECT_TRUE(r->exit_ok());
    ASSERT_FALSE(runs.empty());
    EXPECT_EQ(runs.back().version, kWrites);
    for (int v = 1; v <= kWrites; ++v) {
      // Stale: a read that began after the write was acknowledged and still
      // returned an older version. When the last one began is how long the
      // old value lived on (a read is taken at its start: that is when it
      // checks that tracking is confirmed; a reader descheduled later must
      // not count against the bound).
      int64_t stale_until = acked[v];
      // Invalidation delay: from the write's start to the end of the last read
      // of an older version.
      int64_t old_until = started[v];
      for (const RunLine& run : runs) {
        if (run.version >= v) continue;
        if (run.last_start >= acked[v]) stale_until = std::max(stale_until, run.last_start);
        old_until = std::max(old_until, run.last_end);
      }
      const double after_ack = static_cast<double>(stale_until - acked[v]) / 1e3;
      const double from_start = static_cast<double>(old_until - started[v]) / 1e3;
      after_ack_us.push_back(after_ack);
      from_start_us.push_back(from_start);
      per_version_max[v] = std::max(per_version_max[v], from_start);
      max_after_ack_us = std::max(max_after_ack_us, after_ack);
      if (acked[v] >= kill_at && acked[v] <= kill_at + 300'000'000) {
        max_near_kill_us = std::max(max_near_kill_us, after_ack);
      }
      EXPECT_LE(stale_until - acked[v], kBoundNanos) << "version " << v;
    }
  }
  for (int v = 1; v <= kWrites; ++v) all_processes_us.push_back(per_version_max[v]);
  std::printf(
      "multi-process invalidation, %d readers, %d writes (every 10 ms), invalidation "
      "connections killed at write %d:\n"
      "  delay, write start -> a process stops serving the old value (us): p50 %.0f  p99 %.0f  "
      "max %.0f\n"
      "  delay, write start -> every process stopped (us):                  p50 %.0f  p99 %.0f  "
      "max %.0f\n"
      "  last stale read began, after the write was acknowledged (us):      p50 %.0f  p99 %.0f  "
      "max %.0f (bound 500000; max within 300 ms of the kill %.0f)\n"
      "  readers: %llu tracking losses, %llu reconnects, %llu reads bypassed L1\n",
      kReaders, kWrites, kWrites / 2, Percentile(from_start_us, 0.5),
      Percentile(from_start_us, 0.99), Percentile(from_start_us, 1.0),
      Percentile(all_processes_us, 0.5), Percentile(all_processes_us, 0.99),
      Percentile(all_processes_us, 1.0), Percentile(after_ack_us, 0.5),
      Percentile(after_ack_us, 0.99), max_after_ack_us, max_near_kill_us,
      static_cast<unsigned long long>(losses), static_cast<unsigned long long>(reconnects),
      static_cast<unsigned long long>(bypassed));
  EXPECT_GE(losses, static_cast<uint64_t>(kReaders));  // the kill reached every reader
  EXPECT_GE(reconnects, static_cast<uint64_t>(kReaders));
}

// Runs kProcs stampede children for `seconds`; returns the load start times.
std::vector<int64_t> RunStampede(RedisServer& redis, bool lock, int ttl_ms, int load_ms,
                                 double seconds, uint64_t* lock_waits) {
  constexpr int kProcs = 4;
  const std::string key = lock ? "locked" : "unlocked";
  std::vector<std::unique_ptr<Child>> procs;
  for (int i = 0; i < kProcs; ++i) {
    procs.push_back(std::make_unique<Child>(std::vector<std::string>{
        LARDER_TIER_PROC, "stampede", "--port", std::to_string(redis.port()), "--key", key,
        "--lock", lock ? "1" : "0", "--threads", "2", "--ttl-ms", std::to_string(ttl_ms),
        "--load-ms", std::to_string(load_ms)}));
  }
  for (auto& p : procs) EXPECT_EQ(p->ReadLine(10s), "ready");
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  *lock_waits = 0;
  for (auto& p : procs) {
    for (const std::string& line : p->Finish(10s)) {
      std::istringstream in(line);
      std::string kind;
      uint64_t loads, acquired, waits;
      in >> kind >> loads >> acquired >> waits;
      if (kind == "stats") *lock_waits += waits;
    }
    EXPECT_TRUE(p->exit_ok());
  }
  std::vector<int64_t> starts;
  std::istringstream list(redis.Command({"LRANGE", "loads:" + key, "0", "-1"}));
  for (std::string line; std::getline(list, line);) {
    if (!line.empty()) starts.push_back(std::stoll(line.substr(0, line.find(' '))));
  }
  std::sort(starts.begin(), starts.end());
  return starts;
}

TEST(MultiProcess, StampedeLockMakesOneLoadPerExpiryAcrossProcesses) {
  constexpr int kTtlMs = 300, kLoadMs = 50;
  RedisServer redis;
  std::string why;
  ASSERT_TRUE(redis.Start({}, &why)) << why;
  uint64_t waits = 0;
  std::vector<int64_t> locked = RunStampede(redis, true, kTtlMs, kLoadMs, 2.5, &waits);
  ASSERT_GE(locked.size(), 4u);
  // After a fill, nobody loads until the value expires kTtlMs later: the gap
  // between two loads is at least the TTL (less a little clock slack).
  int64_t min_gap = INT64_MAX;
  for (size_t i = 1; i < locked.size(); ++i) min_gap = std::min(min_gap, locked[i] - locked[i - 1]);
  EXPECT_GE(min_gap, (kTtlMs - 30) * 1'000'000LL);
  uint64_t unlocked_waits = 0;
  std::vector<int64_t> unlocked = RunStampede(redis, false, kTtlMs, kLoadMs, 2.5, &unlocked_waits);
  // Expiries: loads that begin more than a load time after the one before
  // (those of one expiry start together).
  auto expiries = [&](const std::vector<int64_t>& loads) {
    size_t n = loads.empty() ? 0 : 1;
    for (size_t i = 1; i < loads.size(); ++i) n += loads[i] - loads[i - 1] > kLoadMs * 1'000'000LL;
    return n;
  };
  std::printf(
      "stampede, 4 processes x 2 threads, TTL %d ms, load %d ms, 2.5 s each:\n"
      "  with the lock:    %zu loads for %zu expiries (shortest gap between loads %.0f ms; "
      "%llu callers waited for another process's load)\n"
      "  without the lock: %zu loads for %zu expiries\n",
      kTtlMs, kLoadMs, locked.size(), expiries(locked), static_cast<double>(min_gap) / 1e6,
      static_cast<unsigned long long>(waits), unlocked.size(), expiries(unlocked));
  EXPECT_EQ(expiries(locked), locked.size());
  EXPECT_GE(waits, 1u);
}

}  // namespace
}  // namespace larder
