// The sampled LRU on its own (cache/eviction.h): which element goes, and the dense slot
// array staying consistent as elements come and go.
#include "cache/eviction.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <set>

namespace posh::cache {
namespace {

struct Item {
  int id = 0;
  int64_t servable_until_ms = 0;
  LruHook hook;
};

struct ItemTraits {
  static LruHook& Hook(Item& i) { return i.hook; }
  static int64_t ServableUntilMs(const Item& i) { return i.servable_until_ms; }
};

using Lru = SampledLru<Item, ItemTraits>;

TEST(SampledLruTest, EvictsTheLeastRecentlyUsedNeverTheKeptOne) {
  Lru lru;
  std::deque<Item> items(4);
  for (int i = 0; i < 4; ++i) {
    items[i].id = i;
    items[i].servable_until_ms = 1'000'000;
    lru.Add(&items[i], lru.TickForWrite());
  }
  EXPECT_EQ(lru.PickVictim(nullptr, 0), &items[0]);
  // A hit makes item 0 the most recent: item 1 is now the oldest.
  Lru::Touch(items[0], lru.clock());
  EXPECT_EQ(lru.PickVictim(nullptr, 0), &items[1]);
  // The element just inserted is never its own victim.
  EXPECT_EQ(lru.PickVictim(&items[1], 0), &items[2]);
}

TEST(SampledLruTest, EntriesPastTheirServableTimeGoFirst) {
  Lru lru;
  std::deque<Item> items(3);
  for (int i = 0; i < 3; ++i) {
    items[i].id = i;
    items[i].servable_until_ms = 5'000;
    lru.Add(&items[i], lru.TickForWrite());
  }
  items[2].servable_until_ms = 1'000;  // the most recent, but expired at the hint
  EXPECT_EQ(lru.PickVictim(nullptr, 2'000), &items[2]);
  // Without a time hint recency alone decides.
  EXPECT_EQ(lru.PickVictim(nullptr, 0), &items[0]);
}

TEST(SampledLruTest, RemoveKeepsTheSlotsDense) {
  Lru lru;
  lru.Seed(42);
  std::deque<Item> items(100);
  for (int i = 0; i < 100; ++i) {
    items[i].id = i;
    items[i].servable_until_ms = 1'000'000;
    lru.Add(&items[i], lru.TickForWrite());
  }
  std::set<int> live;
  for (int i = 0; i < 100; ++i) live.insert(i);
  // Evict until two remain: every victim is a live element, picked at most once.
  while (live.size() > 2) {
    Item* v = lru.PickVictim(nullptr, 0);
    ASSERT_NE(v, nullptr);
    ASSERT_EQ(live.count(v->id), 1u) << v->id;
    live.erase(v->id);
    lru.Remove(v);
  }
  Item* last = lru.PickVictim(nullptr, 0);
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(live.count(last->id), 1u);
  lru.Remove(last);
  live.erase(last->id);
  Item* only = lru.PickVictim(nullptr, 0);
  ASSERT_NE(only, nullptr);
  EXPECT_EQ(only->id, *live.begin());
  EXPECT_EQ(lru.PickVictim(only, 0), nullptr);  // nothing else to evict
}

TEST(SampledLruTest, AHitAfterAWriteRanksAsMoreRecentThanThatWrite) {
  Lru lru;
  Item a, b;
  a.servable_until_ms = b.servable_until_ms = 1'000'000;
  lru.Add(&a, lru.TickForWrite());
  lru.Add(&b, lru.TickForWrite());
  Lru::Touch(a, lru.clock());  // a read after b's write: a is the more recent
  EXPECT_EQ(lru.PickVictim(nullptr, 0), &b);
}

}  // namespace
}  // namespace posh::cache
