// The process the crash test kills: write-behind with a journal synced per
// write, a slow and sometimes failing store, and one line on stdout per
// acknowledged write ("key version"), written only after Put returned kOk.
//   wb_crash_child JOURNAL_DIR STORE_FILE ROUND
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "larder/cache.h"

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const std::string journal = argv[1];
  const std::string store_path = argv[2];
  const int round = std::atoi(argv[3]);
  int store = ::open(store_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (store < 0) return 3;

  larder::Options o;
  o.capacity_bytes = 1 << 20;
  std::unique_ptr<larder::Cache> cache;
  if (larder::Cache::Create(o, &cache) != larder::Status::kOk) return 4;

  std::mt19937 rng(static_cast<unsigned>(round) * 7919u + 1);          // the writing thread's
  std::mt19937 store_rng(static_cast<unsigned>(round) * 104729u + 3);  // the flusher's
  larder::WriteBehindOptions wo;
  wo.journal_dir = journal;
  wo.journal_sync = larder::JournalSync::kEveryWrite;
  wo.max_delay = std::chrono::milliseconds(2);
  wo.max_batch = 8;
  wo.retry_base = std::chrono::milliseconds(1);
  wo.retry_max = std::chrono::milliseconds(5);
  wo.max_attempts = 1000000;  // never give up: every write must reach the store
  wo.writer = [&](const std::vector<larder::QueuedWrite>& batch) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + store_rng() % 3));  // a slow store
    if (store_rng() % 5 == 0) return larder::WriteOutcome::Failed("store hiccup");
    std::string lines;
    for (const larder::QueuedWrite& w : batch) {
      lines += w.key + " " + std::to_string(w.sequence) + " " + (w.value ? *w.value : "-") + "\n";
    }
    if (::write(store, lines.data(), lines.size()) != static_cast<ssize_t>(lines.size())) {
      return larder::WriteOutcome::Failed("short write");
    }
    ::fdatasync(store);
    return larder::WriteOutcome::Ok();
  };
  std::unique_ptr<larder::WriteBehind> wb;
  if (larder::WriteBehind::Open(cache.get(), wo, &wb) != larder::Status::kOk) return 5;

  for (long counter = 1;; ++counter) {
    const std::string key = "k" + std::to_string(rng() % 20);
    const std::string version = std::to_string(static_cast<long>(round) * 1000000 + counter);
    if (wb->Put(key, version) == larder::Status::kOk) {
      std::printf("%s %s\n", key.c_str(), version.c_str());
      std::fflush(stdout);
    }
    if (counter % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}
