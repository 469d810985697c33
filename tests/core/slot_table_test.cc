// The index (core/src/slot_table.h) with slot counts that are not powers of
// two: home slots stay in the table and spread evenly over any count, a
// probe that runs past the last slot wraps to the first and finds its key,
// and a growing stripe keeps its table between half and three quarters full.
#include "slot_table.h"

#include <string>
#include <vector>

#include "budget.h"
#include "entry.h"
#include "gtest/gtest.h"
#include "hash.h"
#include "larder/clock.h"
#include "stripe.h"
#include "stripe_test_peer.h"

namespace larder::internal {
namespace {

TEST(SlotTable, HomeSlotsSpreadEvenlyOverAnySlotCount) {
  for (size_t count : {size_t{1}, size_t{16}, size_t{24}, size_t{1000}, size_t{83344}}) {
    SlotTable* table = SlotTable::Create(count);
    ASSERT_NE(table, nullptr);
    // Enough hashes that every slot expects 200; a slot is allowed 60% to
    // 140% of that (a mask of the wrong bits, or a reduction that ignores the
    // low half, fails by far more).
    const size_t hashes = count * 200;
    std::vector<uint32_t> hits(count, 0);
    for (size_t i = 0; i < hashes; ++i) {
      const size_t home = table->Home(HashKey("key-" + std::to_string(i)));
      ASSERT_LT(home, count);
      ++hits[home];
    }
    for (size_t slot = 0; slot < count; ++slot) {
      EXPECT_GE(hits[slot], 120u) << "slot " << slot << " of " << count;
      EXPECT_LE(hits[slot], 280u) << "slot " << slot << " of " << count;
    }
    SlotTable::Destroy(table);
  }
}

TEST(SlotTable, AProbePastTheLastSlotWrapsToTheFirstAndFindsItsKey) {
  constexpr size_t kCount = 24;
  SlotTable* table = SlotTable::Create(kCount);
  ASSERT_NE(table, nullptr);
  // Low 32 bits all ones: the home slot is the last one, and the three keys
  // share it (and their tag), so they take slots 23, 0 and 1.
  constexpr uint64_t kHash = 0xFFFFFFFF;
  ASSERT_EQ(table->Home(kHash), kCount - 1);
  std::vector<Entry*> entries;
  for (const char* key : {"a", "b", "c"}) {
    Entry* e = NewEntry(key, std::string("v") + key, 0);
    ASSERT_NE(e, nullptr);
    bool was_empty = false;
    const size_t slot = table->FindInsertSlot(kHash, &was_empty);
    EXPECT_TRUE(was_empty);
    table->Publish(slot, e, kHash);
    entries.push_back(e);
  }
  EXPECT_EQ(table->FindSlot(kHash, "a"), 23);
  EXPECT_EQ(table->FindSlot(kHash, "b"), 0);
  EXPECT_EQ(table->FindSlot(kHash, "c"), 1);
  EXPECT_EQ(table->FindEntrySlot(kHash, entries[2]), 1);
  EXPECT_EQ(table->Find(kHash, "c"), entries[2]);
  EXPECT_EQ(table->Find(kHash, "d"), nullptr);  // ends at the empty slot 2
  // A tombstone at the home slot: the probe goes on past it, and across
  // the end, and an insert reuses it.
  table->Erase(23);
  EXPECT_EQ(table->Find(kHash, "b"), entries[1]);
  EXPECT_EQ(table->Find(kHash, "a"), nullptr);
  bool was_empty = true;
  EXPECT_EQ(table->FindInsertSlot(kHash, &was_empty), 23u);
  EXPECT_FALSE(was_empty);
  for (Entry* e : entries) Unref(e);
  SlotTable::Destroy(table);
}

TEST(SlotTable, AGrowingStripeKeepsItsTableBetweenHalfAndThreeQuartersFull) {
  // With powers of two the load fell to 3/8 after each doubling: 62,500
  // entries (1 M over 16 stripes) sat in 131,072 slots, a load of 0.48.
  Budget budget(uint64_t{1} << 40, 0);
  ManualClock clock;
  Stripe stripe(&budget, &clock, /*collect_removals=*/false, /*retain_grace=*/0,
                /*retired_bytes_bound=*/size_t{1} << 30);
  Removals removed;
  double lowest = 1;
  for (int i = 1; i <= 62'500; ++i) {
    const std::string key = "key-" + std::to_string(i);
    const uint64_t hash = HashKey(key);
    Entry* e = NewEntry(key, "v", 0);
    ASSERT_NE(e, nullptr);
    ASSERT_EQ(stripe.Put(hash, e, 0, {}, &removed), Status::kOk);
    const double load = static_cast<double>(i) / StripeTestPeer::SlotCount(stripe);
    ASSERT_LE(load, 0.75) << i << " entries";
    if (i >= 64) lowest = std::min(lowest, load);  // past the 16-slot start
  }
  EXPECT_GE(lowest, 0.5);  // twice the entries
  EXPECT_GE(static_cast<double>(62'500) / StripeTestPeer::SlotCount(stripe), 0.5);
}

}  // namespace
}  // namespace larder::internal
