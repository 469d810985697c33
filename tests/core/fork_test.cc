// fork() with other threads mid-call (epoch.h, "fork()"; cache.h ~Cache):
// the child reclaims memory in caches of its own even though a parent thread
// was inside a read, and destroys inherited caches without waiting for the
// parent's threads. Each child reports by exit status; an alarm turns a hang
// into a failure.
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "entry.h"
#include "gtest/gtest.h"
#include "larder/cache.h"
#include "test_util.h"

namespace larder {
namespace {

using namespace std::chrono_literals;
using testing::Latch;
using testing::MakeCache;

// Runs child() in a forked child and returns its exit status (-1: killed).
template <typename Fn>
int InChild(Fn child) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    _exit(child());
  }
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Fork, AChildReclaimsMemoryThoughAParentThreadWasMidRead) {
  auto inherited = testing::SmallCache(100);
  ASSERT_EQ(inherited->Put("k", "v"), Status::kOk);
  Latch in_read, release;
  std::thread reader([&] {
    inherited->Visit("k", [&](std::string_view) {
      in_read.Open();
      release.Wait();  // still inside the read when the process forks
    });
  });
  in_read.Wait();
  const int status = InChild([] {
    Options o;
    o.capacity_bytes = 1 << 20;
    o.stripes = 1;
    std::unique_ptr<Cache> own;
    if (Cache::Create(o, &own) != Status::kOk) return 2;
    const int64_t before = internal::LiveEntryAllocations();
    for (int i = 0; i < 1000; ++i) own->Put("k", std::to_string(i));
    own->CleanUp();
    const int64_t live = internal::LiveEntryAllocations() - before;
    return live == 1 ? 0 : 10;  // 10: the replaced values were never freed
  });
  release.Open();
  reader.join();
  EXPECT_EQ(status, 0);
}

TEST(Fork, AChildDestroysAnInheritedCacheAtOnce) {
  Latch release_load;
  Options o;
  o.capacity_bytes = 1 << 20;
  o.loader = [&](std::string_view) {
    release_load.Wait();
    return LoadResult::Value("loaded");
  };
  auto inherited = MakeCache(o);
  ASSERT_EQ(inherited->Put("k", "v"), Status::kOk);
  ASSERT_EQ(inherited->Refresh("k"), Status::kOk);  // the refresh thread waits in the loader
  ASSERT_TRUE(testing::Eventually([&] { return inherited->GetStats().refreshes_started == 1; }));
  EXPECT_FALSE(inherited->InheritedAcrossFork());
  const int status = InChild([&] {
    if (!inherited->InheritedAcrossFork()) return 3;
    inherited.reset();  // would join the parent's refresh thread
    return 0;
  });
  EXPECT_EQ(status, 0);
  release_load.Open();  // the parent's cache goes on as before
  EXPECT_TRUE(testing::Eventually([&] { return inherited->Get("k").value_or("") == "loaded"; }));
}

}  // namespace
}  // namespace larder
