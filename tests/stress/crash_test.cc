// W3's promise under SIGKILL: with a journal synced per write, every write
// Put acknowledged reaches the store after a restart, whenever the process
// died. A child process writes; the parent kills it at seeded random
// moments, reopens the journal, flushes, and checks the store.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
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
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 200));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited by itself: " << status;
    // Everything it printed before dying was acknowledged.
    std::string printed;
    char buf[4096];
    ssize_t n;
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
  EXPECT_GT(total_acks, 100);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace larder
