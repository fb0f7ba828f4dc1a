// Lifetimes (R16, R17, R19) and the store's behaviour: lookup, LRU, eviction, listing.
#include "cache/store.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <string_view>

#include "support/fake_clock.h"
#include "test_util.h"
#include "util/clock.h"

namespace posh::cache {
namespace {

using testing::FingerprintRecord;
using testing::JwkRecord;
using testing::K;
using testing::kT0;

constexpr int64_t kSec = 1000;
constexpr int64_t kHour = 3600 * kSec;

// "x" + std::to_string(i) + ".example", built by appending: GCC 12 at -O3 reports a false
// -Wrestrict in operator+(const char*, std::string&&) (GCC bug 105329).
std::string Numbered(std::string_view prefix, int i, std::string_view suffix = {}) {
  std::string s(prefix);
  s.append(std::to_string(i)).append(suffix);
  return s;
}

// ---------------------------------------------------------------------------------------
// R16: positive lifetime.

TEST(CacheLifetimeTest, R16_DocExpiresIsLowest) {
  FakeClock clock(kT0);
  Lifetimes lt;
  auto e = MakePositiveEntry(FingerprintRecord(3600), clock.NowMs(), lt);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->status, EntryStatus::kFound);
  EXPECT_EQ(e->fetched_at_ms, kT0);
  EXPECT_EQ(e->expires_at_ms, kT0 + kHour);
  EXPECT_EQ(e->refresh_at_ms, kT0 + kHour - kHour / 10);
  EXPECT_EQ(e->hard_limit_ms, 0);
  EXPECT_EQ(e->stale_until_ms, 0);
  ASSERT_NE(e->record, nullptr);
  EXPECT_EQ(e->record->expires_seconds, 3600);
}

TEST(CacheLifetimeTest, R16_NotAfterIsLowest) {
  FakeClock clock(kT0);
  const int64_t not_after = kT0 / 1000 + 600;  // the certificate ends in 10 minutes
  auto e = MakePositiveEntry(JwkRecord(3600, {not_after}), clock.NowMs(), Lifetimes{});
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->expires_at_ms, not_after * 1000);
  EXPECT_EQ(e->hard_limit_ms, not_after * 1000);
  EXPECT_EQ(e->refresh_at_ms, not_after * 1000 - 60 * kSec);
}

TEST(CacheLifetimeTest, R16_MaxTtlIsLowest) {
  FakeClock clock(kT0);
  Lifetimes lt;  // default 24 h
  auto e = MakePositiveEntry(FingerprintRecord(30 * 86400), clock.NowMs(), lt);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->expires_at_ms, kT0 + 24 * kHour);

  lt.max_ttl_ms = 5 * 60 * kSec;
  const int64_t far_not_after = kT0 / 1000 + 365 * 86400;
  e = MakePositiveEntry(JwkRecord(30 * 86400, {far_not_after}), clock.NowMs(), lt);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->expires_at_ms, kT0 + 5 * 60 * kSec);
  EXPECT_EQ(e->hard_limit_ms, far_not_after * 1000);
}

TEST(CacheLifetimeTest, R16_JwkWithoutExpiresUsesNotAfterAndMaxTtl) {
  FakeClock clock(kT0);
  const int64_t not_after = kT0 / 1000 + 2 * 3600;
  auto e = MakePositiveEntry(JwkRecord(0, {not_after}), clock.NowMs(), Lifetimes{});
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->expires_at_ms, not_after * 1000);
  e = MakePositiveEntry(JwkRecord(0, {kT0 / 1000 + 10 * 86400}), clock.NowMs(), Lifetimes{});
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->expires_at_ms, kT0 + 24 * kHour);
}

TEST(CacheLifetimeTest, R16_ReferenceExpiresLowerWins) {
  // The core folds the reference's expires into record.expires_seconds (the lower one):
  // a short reference expires bounds the entry even with a long-lived target.
  FakeClock clock(kT0);
  auto record = JwkRecord(/*min(reference 120, target 86400)=*/120, {kT0 / 1000 + 86400});
  auto e = MakePositiveEntry(record, clock.NowMs(), Lifetimes{});
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->expires_at_ms, kT0 + 120 * kSec);
  EXPECT_EQ(e->refresh_at_ms, kT0 + 108 * kSec);
}

TEST(CacheLifetimeTest, R16_NonPositiveLifetimeIsNotCached) {
  FakeClock clock(kT0);
  EXPECT_EQ(MakePositiveEntry(nullptr, clock.NowMs(), Lifetimes{}), nullptr);
  // notAfter now or already past.
  EXPECT_EQ(MakePositiveEntry(JwkRecord(3600, {kT0 / 1000}), clock.NowMs(), Lifetimes{}), nullptr);
  EXPECT_EQ(MakePositiveEntry(JwkRecord(3600, {kT0 / 1000 - 1}), clock.NowMs(), Lifetimes{}),
            nullptr);
  Lifetimes zero;
  zero.max_ttl_ms = 0;
  EXPECT_EQ(MakePositiveEntry(FingerprintRecord(3600), clock.NowMs(), zero), nullptr);
}

TEST(CacheLifetimeTest, R16_EntryNeverServedPastNotAfter) {
  FakeClock clock(kT0);
  Lifetimes lt;
  const int64_t not_after = kT0 / 1000 + 1000;
  Store store;
  auto e = MakePositiveEntry(JwkRecord(3600, {not_after}), clock.NowMs(), lt);
  ASSERT_NE(e, nullptr);
  store.Put(K("a.example"), e);
  clock.Set(not_after * 1000 - 1);
  EXPECT_TRUE(store.Get(K("a.example"), clock.NowMs()).has_value());
  clock.Set(not_after * 1000);
  EXPECT_FALSE(store.Get(K("a.example"), clock.NowMs()).has_value());
  // Even a stale copy ends at notAfter.
  EXPECT_EQ(MakeStaleEntry(*e, clock.NowMs(), lt), nullptr);
}

TEST(CacheLifetimeTest, R16_MultiKeyEntryBoundedByLatestNotAfter) {
  // The entry may outlive an individual key (matching checks each key's notAfter), but not
  // the latest one.
  FakeClock clock(kT0);
  const int64_t early = kT0 / 1000 + 600;
  const int64_t late = kT0 / 1000 + 1800;
  auto e = MakePositiveEntry(JwkRecord(3600, {early, late}), clock.NowMs(), Lifetimes{});
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->expires_at_ms, late * 1000);
  EXPECT_EQ(e->hard_limit_ms, late * 1000);
  ASSERT_EQ(e->record->keys.size(), 2u);
  EXPECT_EQ(e->record->keys[0].not_after, early);
}

// ---------------------------------------------------------------------------------------
// R17: negative lifetimes.

TEST(CacheLifetimeTest, R17_NotFoundUsesNegativeTtl) {
  FakeClock clock(kT0);
  Lifetimes lt;
  Store store;
  auto e = MakeNotFoundEntry(clock.NowMs(), lt);
  EXPECT_EQ(e->status, EntryStatus::kNotFound);
  EXPECT_EQ(e->expires_at_ms, kT0 + 300 * kSec);
  EXPECT_EQ(e->record, nullptr);
  store.Put(K("nf.example"), e);
  clock.Advance(300 * kSec - 1);
  auto hit = store.Get(K("nf.example"), clock.NowMs());
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->needs_refresh);
  EXPECT_FALSE(hit->stale);
  clock.Advance(1);
  EXPECT_FALSE(store.Get(K("nf.example"), clock.NowMs()).has_value());

  lt.negative_ttl_ms = 42 * kSec;
  EXPECT_EQ(MakeNotFoundEntry(kT0, lt)->expires_at_ms, kT0 + 42 * kSec);
}

TEST(CacheLifetimeTest, R17_ErrorUsesErrorTtl) {
  FakeClock clock(kT0);
  Lifetimes lt;
  Store store;
  auto e = MakeErrorEntry("connection refused", 3, clock.NowMs(), lt);
  EXPECT_EQ(e->status, EntryStatus::kError);
  EXPECT_EQ(e->error, "connection refused");
  EXPECT_EQ(e->error_kind, 3);
  EXPECT_EQ(e->expires_at_ms, kT0 + 30 * kSec);
  store.Put(K("err.example"), e);
  clock.Advance(30 * kSec - 1);
  EXPECT_TRUE(store.Get(K("err.example"), clock.NowMs()).has_value());
  clock.Advance(1);
  EXPECT_FALSE(store.Get(K("err.example"), clock.NowMs()).has_value());
  // An error entry is never kept stale.
  EXPECT_EQ(MakeStaleEntry(*e, kT0, lt), nullptr);

  lt.error_ttl_ms = 5 * kSec;
  EXPECT_EQ(MakeErrorEntry("x", 1, kT0, lt)->expires_at_ms, kT0 + 5 * kSec);
}

// ---------------------------------------------------------------------------------------
// R19: refresh window and stale window.

TEST(CacheLifetimeTest, R19_RefreshInLastTenPercent) {
  FakeClock clock(kT0);
  Store store;
  store.Put(K("r.example"), MakePositiveEntry(FingerprintRecord(1000), clock.NowMs(), Lifetimes{}));
  clock.Advance(900 * kSec - 1);  // 89.9999 %
  auto hit = store.Get(K("r.example"), clock.NowMs());
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->needs_refresh);
  clock.Advance(1);  // 90 %
  hit = store.Get(K("r.example"), clock.NowMs());
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(hit->needs_refresh);
  EXPECT_FALSE(hit->stale);
  clock.Advance(100 * kSec - 1);  // last millisecond
  hit = store.Get(K("r.example"), clock.NowMs());
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(hit->needs_refresh);
  clock.Advance(1);
  EXPECT_FALSE(store.Get(K("r.example"), clock.NowMs()).has_value());
}

TEST(CacheLifetimeTest, R19_StaleWindowBoundedByStaleTtl) {
  FakeClock clock(kT0);
  Lifetimes lt;
  Store store;
  auto fresh = MakePositiveEntry(FingerprintRecord(1000), clock.NowMs(), lt);
  store.Put(K("s.example"), fresh);
  clock.Set(fresh->expires_at_ms - 10 * kSec);  // refresh in progress, then fails transiently
  auto stale = MakeStaleEntry(*fresh, clock.NowMs(), lt);
  ASSERT_NE(stale, nullptr);
  EXPECT_EQ(stale->stale_until_ms, fresh->expires_at_ms + kHour);
  EXPECT_EQ(stale->expires_at_ms, fresh->expires_at_ms);
  EXPECT_EQ(stale->record, fresh->record);
  store.Put(K("s.example"), stale);

  clock.Set(fresh->expires_at_ms);
  auto hit = store.Get(K("s.example"), clock.NowMs());
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(hit->stale);
  // The failed refresh is retried after the error TTL, not on every hit.
  EXPECT_FALSE(hit->needs_refresh);
  EXPECT_EQ(stale->refresh_at_ms, fresh->expires_at_ms - 10 * kSec + lt.error_ttl_ms);
  clock.Set(stale->refresh_at_ms);
  hit = store.Get(K("s.example"), clock.NowMs());
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(hit->stale);
  EXPECT_TRUE(hit->needs_refresh);
  clock.Set(stale->stale_until_ms - 1);
  EXPECT_TRUE(store.Get(K("s.example"), clock.NowMs()).has_value());
  clock.Set(stale->stale_until_ms);
  EXPECT_FALSE(store.Get(K("s.example"), clock.NowMs()).has_value());
  // Past the window: no stale copy any more.
  EXPECT_EQ(MakeStaleEntry(*fresh, clock.NowMs(), lt), nullptr);
}

TEST(CacheLifetimeTest, R19_StaleWindowBoundedByNotAfter) {
  FakeClock clock(kT0);
  Lifetimes lt;
  const int64_t not_after = kT0 / 1000 + 1000 + 600;  // 10 min after the doc expiry
  auto fresh = MakePositiveEntry(JwkRecord(1000, {not_after}), clock.NowMs(), lt);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->expires_at_ms, kT0 + 1000 * kSec);
  clock.Set(fresh->expires_at_ms);
  auto stale = MakeStaleEntry(*fresh, clock.NowMs(), lt);
  ASSERT_NE(stale, nullptr);
  EXPECT_EQ(stale->stale_until_ms, not_after * 1000);
  Store store;
  store.Put(K("n.example"), stale);
  clock.Set(not_after * 1000 - 1);
  auto hit = store.Get(K("n.example"), clock.NowMs());
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(hit->stale);
  clock.Set(not_after * 1000);
  EXPECT_FALSE(store.Get(K("n.example"), clock.NowMs()).has_value());
}

TEST(CacheLifetimeTest, R19_StaleWindowConfigurable) {
  Lifetimes lt;
  lt.stale_ttl_ms = 60 * kSec;
  auto fresh = MakePositiveEntry(FingerprintRecord(1000), kT0, lt);
  auto stale = MakeStaleEntry(*fresh, fresh->expires_at_ms, lt);
  ASSERT_NE(stale, nullptr);
  EXPECT_EQ(stale->stale_until_ms, fresh->expires_at_ms + 60 * kSec);
  lt.stale_ttl_ms = 0;
  EXPECT_EQ(MakeStaleEntry(*fresh, fresh->expires_at_ms - 1, lt), nullptr);
  EXPECT_EQ(MakeNotFoundEntry(kT0, lt)->stale_until_ms, 0);
  EXPECT_EQ(MakeStaleEntry(*MakeNotFoundEntry(kT0, lt), kT0, Lifetimes{}), nullptr);
}

TEST(CacheLifetimeTest, ServableUntilMs) {
  Entry e;
  e.expires_at_ms = 100;
  EXPECT_EQ(ServableUntilMs(e), 100);
  e.stale_until_ms = 200;
  EXPECT_EQ(ServableUntilMs(e), 200);
  e.hard_limit_ms = 150;
  EXPECT_EQ(ServableUntilMs(e), 150);
  e.hard_limit_ms = 50;
  EXPECT_EQ(ServableUntilMs(e), 50);
}

// ---------------------------------------------------------------------------------------
// Store behaviour.

std::shared_ptr<const Entry> NotFound(int64_t now = kT0) {
  return MakeNotFoundEntry(now, Lifetimes{});
}

TEST(CacheStoreTest, GetPutPeekReplace) {
  Store store;
  EXPECT_FALSE(store.Get(K("a.example"), kT0).has_value());
  EXPECT_EQ(store.Peek(K("a.example")), nullptr);
  auto e1 = NotFound();
  store.Put(K("a.example"), e1);
  store.Put(K("a.example", "xmpp-server"), MakeErrorEntry("boom", 2, kT0, Lifetimes{}));
  EXPECT_EQ(store.Size(), 2u);
  auto hit = store.Get(K("a.example"), kT0);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->entry, e1);
  EXPECT_EQ(store.Get(K("a.example", "xmpp-server"), kT0)->entry->error, "boom");
  EXPECT_FALSE(store.Get(K("a.example", "other"), kT0).has_value());
  // Replace.
  auto e2 = MakePositiveEntry(FingerprintRecord(60), kT0, Lifetimes{});
  store.Put(K("a.example"), e2);
  EXPECT_EQ(store.Size(), 2u);
  EXPECT_EQ(store.Get(K("a.example"), kT0)->entry, e2);
  // Peek ignores expiry, Get does not.
  EXPECT_FALSE(store.Get(K("a.example"), kT0 + 60 * kSec).has_value());
  EXPECT_EQ(store.Peek(K("a.example")), e2);
  // nullptr Put is ignored.
  store.Put(K("b.example"), nullptr);
  EXPECT_EQ(store.Size(), 2u);
}

TEST(CacheStoreTest, EvictAndFlush) {
  Store store;
  for (int i = 0; i < 10; ++i) store.Put(K(Numbered("d", i, ".example")), NotFound());
  EXPECT_TRUE(store.Evict(K("d3.example")));
  EXPECT_FALSE(store.Evict(K("d3.example")));
  EXPECT_FALSE(store.Evict(K("d3.example", "xmpp-server")));
  EXPECT_FALSE(store.Get(K("d3.example"), kT0).has_value());
  EXPECT_EQ(store.Size(), 9u);
  EXPECT_EQ(store.Flush(), 9u);
  EXPECT_EQ(store.Size(), 0u);
  EXPECT_EQ(store.Flush(), 0u);
  EXPECT_EQ(store.Stats().evictions, 0u);  // explicit drops are not capacity evictions
  store.Put(K("d1.example"), NotFound());
  EXPECT_TRUE(store.Get(K("d1.example"), kT0).has_value());
}

TEST(CacheStoreTest, LruEvictsLeastRecentlyUsed) {
  Store store(3, 1);
  store.Put(K("a"), NotFound());
  store.Put(K("b"), NotFound());
  store.Put(K("c"), NotFound());
  ASSERT_TRUE(store.Get(K("a"), kT0).has_value());  // a is now recent; b is the oldest
  store.Put(K("d"), NotFound());
  EXPECT_EQ(store.Size(), 3u);
  EXPECT_TRUE(store.Peek(K("a")));
  EXPECT_FALSE(store.Peek(K("b")));
  EXPECT_TRUE(store.Peek(K("c")));
  EXPECT_TRUE(store.Peek(K("d")));
  EXPECT_EQ(store.Stats().evictions, 1u);
  EXPECT_EQ(store.Stats().entries, 3u);
  // Replacing an existing key never evicts.
  store.Put(K("d"), NotFound());
  EXPECT_EQ(store.Stats().evictions, 1u);
  // Next victim: c (a was read after c was inserted).
  store.Put(K("e"), NotFound());
  EXPECT_FALSE(store.Peek(K("c")));
  EXPECT_TRUE(store.Peek(K("a")));
}

TEST(CacheStoreTest, LruPrefersExpiredEntries) {
  Store store(3, 1);
  store.Put(K("short"), MakeErrorEntry("e", 1, kT0, Lifetimes{}));  // 30 s
  store.Put(K("b"), NotFound(kT0));
  store.Put(K("c"), NotFound(kT0));
  ASSERT_TRUE(store.Get(K("short"), kT0).has_value());  // recent but soon expired
  store.Put(K("d"), NotFound(kT0 + 60 * kSec));
  EXPECT_FALSE(store.Peek(K("short")));
  EXPECT_TRUE(store.Peek(K("b")));
}

TEST(CacheStoreTest, LruRecentlyReadEntriesSurviveInLargeShard) {
  // Large shard: the victim is chosen among a sample; recently read entries survive.
  Store store(1000, 1);
  for (int i = 0; i < 1000; ++i) store.Put(K(Numbered("cold", i)), NotFound());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store.Get(K(Numbered("cold", i)), kT0));
  for (int i = 0; i < 300; ++i) store.Put(K(Numbered("new", i)), NotFound());
  EXPECT_EQ(store.Size(), 1000u);
  EXPECT_EQ(store.Stats().evictions, 300u);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(store.Peek(K(Numbered("cold", i)))) << i;
}

TEST(CacheStoreTest, CapacityIsSplitAcrossShards) {
  Store store(256, 64);
  for (int i = 0; i < 5000; ++i) store.Put(K(Numbered("x", i, ".example")), NotFound());
  EXPECT_LE(store.Size(), 256u);
  EXPECT_GE(store.Size(), 200u);
  const StoreStats st = store.Stats();
  EXPECT_EQ(st.entries, store.Size());
  EXPECT_EQ(st.evictions, 5000u - st.entries);
}

TEST(CacheStoreTest, SetMaxEntriesShrinks) {
  Store store(100, 4);
  for (int i = 0; i < 100; ++i) store.Put(K(Numbered("y", i)), NotFound());
  EXPECT_GE(store.Size(), 90u);
  store.SetMaxEntries(8);
  EXPECT_LE(store.Size(), 8u);
  store.SetMaxEntries(1000);
  for (int i = 0; i < 100; ++i) store.Put(K(Numbered("z", i)), NotFound());
  EXPECT_GE(store.Size(), 100u);
}

TEST(CacheStoreTest, HitsCountedPerEntry) {
  Store store;
  store.Put(K("h.example"), NotFound());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store.Get(K("h.example"), kT0));
  EXPECT_FALSE(store.Get(K("h.example"), kT0 + 3600 * kSec));  // expired: not a hit
  auto listed = store.List("", "", 0, nullptr);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].hits, 5u);
}

// ---------------------------------------------------------------------------------------
// Listing.

class CacheListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"delta.example", "alpha.example", "charlie.example", "bravo.example"}) {
      for (const char* s : {"xmpp-server", "xmpp-client"}) {
        store_.Put(K(d, s), NotFound());
        expected_.push_back(std::string(d) + "/" + s);
      }
    }
    std::sort(expected_.begin(), expected_.end());
  }
  static std::string Name(const ListedEntry& e) { return e.key.domain + "/" + e.key.service; }

  Store store_;
  std::vector<std::string> expected_;
};

TEST_F(CacheListTest, AllInStableOrder) {
  std::string next = "unchanged";
  auto all = store_.List("", "", 0, &next);
  EXPECT_EQ(next, "");
  std::vector<std::string> names;
  for (const auto& e : all) {
    names.push_back(Name(e));
    EXPECT_NE(e.entry, nullptr);
  }
  EXPECT_EQ(names, expected_);
}

TEST_F(CacheListTest, Paging) {
  for (size_t page : {1u, 3u, 7u, 8u, 100u}) {
    std::vector<std::string> names;
    std::string token;
    int pages = 0;
    do {
      std::string next;
      auto got = store_.List("", token, page, &next);
      EXPECT_LE(got.size(), page);
      for (const auto& e : got) names.push_back(Name(e));
      token = next;
      ASSERT_LT(++pages, 100);
    } while (!token.empty());
    EXPECT_EQ(names, expected_) << "page size " << page;
    EXPECT_EQ(pages, static_cast<int>((expected_.size() + page - 1) / page)) << page;
  }
}

TEST_F(CacheListTest, PagingStableAcrossInsertions) {
  std::string next;
  auto first = store_.List("", "", 2, &next);
  ASSERT_EQ(first.size(), 2u);
  store_.Put(K("aaa.example"), NotFound());  // sorts before the token: not repeated
  auto second = store_.List("", next, 2, &next);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(Name(second[0]), "bravo.example/xmpp-client");
}

TEST_F(CacheListTest, DomainFilter) {
  std::string next;
  auto got = store_.List("charlie.example", "", 0, &next);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(Name(got[0]), "charlie.example/xmpp-client");
  EXPECT_EQ(Name(got[1]), "charlie.example/xmpp-server");
  got = store_.List("charlie.example", "", 1, &next);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_FALSE(next.empty());
  got = store_.List("charlie.example", next, 1, &next);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(Name(got[0]), "charlie.example/xmpp-server");
  EXPECT_EQ(next, "");
  EXPECT_TRUE(store_.List("nope.example", "", 0, &next).empty());
}

TEST_F(CacheListTest, HugePageSizeIsEverything) {
  std::string next = "x";
  EXPECT_EQ(store_.List("", "", std::numeric_limits<size_t>::max(), &next).size(),
            expected_.size());
  EXPECT_EQ(next, "");
  EXPECT_EQ(store_.List("", "", expected_.size(), &next).size(), expected_.size());
  EXPECT_EQ(next, "");
}

TEST_F(CacheListTest, BadTokenGivesEmptyPage) {
  std::string next = "x";
  EXPECT_TRUE(store_.List("", "garbage", 10, &next).empty());
  EXPECT_EQ(next, "");
  EXPECT_TRUE(store_.List("", "999:abc", 10, &next).empty());
  EXPECT_TRUE(store_.List("", ":abc", 10, &next).empty());
}

}  // namespace
}  // namespace posh::cache
