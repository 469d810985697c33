// The entry slabs (core/src/entry_slabs.h): slots of exact sizes, reused once
// freed, emptied slabs given back, frees from any thread, and a child forked
// in the middle of other threads' allocations that can still allocate.
#include "entry_slabs.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gtest/gtest.h"
#if defined(__SANITIZE_ADDRESS__)
#define LARDER_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LARDER_TEST_ASAN 1
#endif
#endif
#if LARDER_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif
#include "test_util.h"

namespace larder::internal {
namespace {

TEST(EntrySlabs, SlotsAreAlignedSizedAndNamedByTheirReference) {
  std::vector<void*> slots;
  for (size_t size = 1; size <= kMaxSlabAllocation; size += 37) {
    void* p = AllocateSlot(size);
    ASSERT_NE(p, nullptr) << size;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kEntryGranule, 0u);
    std::memset(p, 0xAB, size);  // the whole size is usable
    EXPECT_NE(RefOfSlot(p), kNoEntry);
    EXPECT_EQ(SlotAt(RefOfSlot(p)), p);
    slots.push_back(p);
  }
  // The range the references name: 32 GiB where the host allows it, never
  // less than 256 MiB.
  EXPECT_GE(EntryRegionBytes(), size_t{256} << 20);
  EXPECT_LE(EntryRegionBytes(), size_t{32} << 30);
  for (void* p : slots) FreeSlot(p);
}

#if LARDER_TEST_ASAN
TEST(EntrySlabs, UnderAddressSanitizerFreeSlotsAndPaddingArePoisoned) {
  char* p = static_cast<char*>(AllocateSlot(13));  // a 16-byte slot
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(__asan_address_is_poisoned(p));
  EXPECT_FALSE(__asan_address_is_poisoned(p + 12));
  EXPECT_TRUE(__asan_address_is_poisoned(p + 13));  // the padding: an overrun is reported
  FreeSlot(p);
  EXPECT_TRUE(__asan_address_is_poisoned(p));  // a use after free is reported
  EXPECT_TRUE(__asan_address_is_poisoned(p + 8));
}
#endif

TEST(EntrySlabs, AFreedSlotIsReusedAndEmptiedSlabsGoBack) {
  testing::StayOnThisCpu one_shard;
  ASSERT_TRUE(one_shard.pinned());
  const int64_t live_before = LiveSlots();
  const size_t held_before = SlabBytesHeld();
  // 20 slabs' worth, which must come back as whole slabs (all but the one
  // the shard keeps for the class).
  constexpr size_t kSize = 200;
  constexpr size_t kCount = 20 * (kSlabBytes / kSize);
  std::vector<void*> slots;
  for (size_t i = 0; i < kCount; ++i) {
    void* p = AllocateSlot(kSize);
    ASSERT_NE(p, nullptr);
    slots.push_back(p);
  }
  EXPECT_EQ(LiveSlots() - live_before, static_cast<int64_t>(kCount));
  EXPECT_GE(SlabBytesHeld(), held_before + 19 * kSlabBytes);
  void* middle = slots[kCount / 2];
  FreeSlot(middle);
  EXPECT_EQ(AllocateSlot(kSize), middle);  // the free slot, before any new one
  for (void* p : slots) FreeSlot(p);
  EXPECT_EQ(LiveSlots(), live_before);
  EXPECT_LE(SlabBytesHeld(), held_before + kSlabBytes);
}

TEST(EntrySlabs, ThreadsAllocatingAndFreeingEachOthersSlotsKeepEveryByte) {
  // Threads allocate slots of a few sizes, fill each with a token of its
  // own, hand half to the next thread and free in batches. A registry of
  // live slots catches a slot handed out twice; the token check before each
  // free catches a free list linked through a live slot. Batches of
  // hundreds empty whole slabs, so slabs go back and are taken again by
  // other classes and shards meanwhile.
  constexpr int kThreads = 4;
  constexpr int kRounds = 30'000;
  constexpr uint32_t kSizes[] = {24, 136, 200, 512};
  const size_t held_before = SlabBytesHeld();
  std::mutex registry_mu;
  std::unordered_map<void*, uint64_t> registry;  // live slot -> its token
  std::atomic<uint64_t> next_token{1};
  std::atomic<int> bad{0};
  auto fill = [&](void* p, uint32_t size) {
    const uint64_t token = next_token.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(registry_mu);
      if (!registry.emplace(p, token).second) bad.fetch_add(1);  // handed out twice
    }
    std::memcpy(p, &size, sizeof size);
    std::memset(static_cast<char*>(p) + 4, static_cast<int>(token & 0xFF), size - 4);
  };
  auto check_and_free = [&](void* p) {
    uint64_t token = 0;
    {
      std::lock_guard<std::mutex> lock(registry_mu);
      auto it = registry.find(p);
      if (it == registry.end()) {
        bad.fetch_add(1);
        return;
      }
      token = it->second;
      registry.erase(it);
    }
    uint32_t size = 0;
    std::memcpy(&size, p, sizeof size);
    const auto* bytes = static_cast<const unsigned char*>(p);
    bool ok = size >= 8 && size <= kMaxSlabAllocation;
    for (size_t i = 4; ok && i < size; ++i) ok = bytes[i] == (token & 0xFF);
    if (!ok) bad.fetch_add(1);
    FreeSlot(p);
  };
  std::vector<std::atomic<void*>> boxes(kThreads);
  for (auto& box : boxes) box.store(nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<void*> mine;
      for (int round = 0; round < kRounds; ++round) {
        const uint32_t size = kSizes[rng() % 4];
        void* p = AllocateSlot(size);
        if (p == nullptr) {
          bad.fetch_add(1);
          return;
        }
        fill(p, size);
        if (round % 2 == 0) {
          void* previous = boxes[(t + 1) % kThreads].exchange(p, std::memory_order_acq_rel);
          if (previous != nullptr) mine.push_back(previous);  // unclaimed: freed here
        } else {
          mine.push_back(p);
        }
        if (void* got = boxes[t].exchange(nullptr, std::memory_order_acq_rel)) mine.push_back(got);
        if (mine.size() > 600) {
          for (void* q : mine) check_and_free(q);
          mine.clear();
        }
      }
      for (void* q : mine) check_and_free(q);
    });
  }
  for (std::thread& th : threads) th.join();
  for (auto& box : boxes) {
    if (void* p = box.exchange(nullptr)) check_and_free(p);
  }
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(registry.empty());
  // Everything freed: what stays is at most one slab per shard and class
  // (the threads may have run on every CPU; there are at most 32 shards).
  const size_t shards = std::min<size_t>(32, std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_LE(SlabBytesHeld(), held_before + 4 * shards * kSlabBytes);
}

TEST(EntrySlabs, AChildForkedWhileOtherThreadsAllocateCanAllocate) {
  // Without the fork handlers a child may inherit a shard's lock held by a
  // thread that does not exist in it, and its first allocation spins forever.
  std::atomic<bool> stop{false};
  std::vector<std::thread> churners;
  for (int t = 0; t < 2; ++t) {
    churners.emplace_back([&] {
      std::vector<void*> held;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) held.push_back(AllocateSlot(136));
        for (void* p : held) {
          if (p != nullptr) FreeSlot(p);
        }
        held.clear();
      }
    });
  }
  int failures = 0;
  for (int i = 0; i < 40; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      alarm(10);  // a deadlock ends the child by SIGALRM
      for (int j = 0; j < 1000; ++j) {
        void* p = AllocateSlot(136);
        if (p == nullptr) _exit(3);
        FreeSlot(p);
      }
      _exit(0);
    }
    ASSERT_GT(pid, 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
  }
  stop.store(true);
  for (std::thread& th : churners) th.join();
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace larder::internal
