// PoshService with a second tier (issue 16), a fake one answered from the test thread: the
// tier is asked inside the flight (one read per key however many callers wait), a hit is
// stored and answered without fetching, a miss fetches as before and writes the fresh result
// back, refresh lookups skip it, a background refresh takes a fleet copy only when it is
// not itself due for a refresh, errors are never written.
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <vector>

#include "cache/lifetime.h"
#include "server/posh_service.h"
#include "support/fake_clock.h"
#include "support/loop_fetcher.h"

namespace posh::server {
namespace {

using posh::testing::LoopFetcher;

constexpr int64_t kT0 = 1'800'000'000'000;

std::string FingerprintsDoc(int64_t expires) {
  return R"({"fingerprints":[{"sha-256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],"expires":)" +
         std::to_string(expires) + "}";
}

// Loop thread: Get keeps the callback for the test to answer (through the loop).
class FakeTier final : public l2::SecondTier {
 public:
  bool Get(const cache::Key& key, GetCallback cb) override {
    std::lock_guard lock(mu);
    gets.push_back(key);
    pending.push_back(std::move(cb));
    return true;
  }
  void Put(const cache::Key& key, const cache::Entry& entry) override {
    std::lock_guard lock(mu);
    puts.emplace_back(key, entry.status);
  }
  void SetLifetimes(const cache::Lifetimes&) override {}
  std::mutex mu;
  std::vector<cache::Key> gets;
  std::vector<GetCallback> pending;
  std::vector<std::pair<cache::Key, cache::EntryStatus>> puts;
};

class ServiceL2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Set(kT0);
    service_ = std::make_unique<PoshService>(loop_, store_, clock_, options_, [this](uv_loop_t*) {
      auto f = std::make_unique<LoopFetcher>(loop_);
      fetcher_ = f.get();
      return f;
    });
    service_->SetSecondTierFactory([this](uv_loop_t*, l2::L2Stats*) {
      auto t = std::make_unique<FakeTier>();
      tier_ = t.get();
      return t;
    });
    loop_.Start([this] { service_->StartOnLoop(); }, [this] { service_->StopOnLoop(); });
    Sync();
  }
  void TearDown() override { loop_.Stop(); }
  void Sync() {
    std::promise<void> p;
    loop_.Post([&] { p.set_value(); });
    p.get_future().wait();
  }
  std::future<LookupAnswer> LookupAsync(const std::string& domain, bool refresh = false) {
    auto p = std::make_shared<std::promise<LookupAnswer>>();
    auto f = p->get_future();
    service_->Lookup(cache::Key{domain, "xmpp-server"}, refresh,
                     [p](LookupAnswer a) { p->set_value(std::move(a)); });
    return f;
  }
  size_t Gets() {
    Sync();
    std::lock_guard lock(tier_->mu);
    return tier_->gets.size();
  }
  // Answers the tier's oldest pending read on the loop.
  void AnswerTier(std::shared_ptr<const cache::Entry> entry) {
    l2::SecondTier::GetCallback cb;
    {
      std::lock_guard lock(tier_->mu);
      ASSERT_FALSE(tier_->pending.empty());
      cb = std::move(tier_->pending.front());
      tier_->pending.erase(tier_->pending.begin());
    }
    loop_.Post([cb = std::move(cb), entry] { cb(entry); });
    Sync();
  }

  FakeClock clock_;
  ServiceOptions options_;
  EventLoop loop_;
  cache::Store store_{1000};
  std::unique_ptr<PoshService> service_;
  LoopFetcher* fetcher_ = nullptr;
  FakeTier* tier_ = nullptr;
};

TEST_F(ServiceL2Test, HitIsStoredAndAnsweredWithoutFetchingOneReadPerKey) {
  std::vector<std::future<LookupAnswer>> callers;
  for (int i = 0; i < 20; ++i) callers.push_back(LookupAsync("a.example"));
  EXPECT_EQ(Gets(), 1u);  // coalesced inside the flight
  auto record = std::make_shared<core::PoshRecord>();
  record->format = core::Format::kRfc7711;
  record->expires_seconds = 3600;
  record->keys.emplace_back();
  auto entry = cache::MakePositiveEntry(record, kT0, options_.lifetimes);
  AnswerTier(entry);
  for (auto& f : callers) EXPECT_EQ(f.get().entry, entry);
  EXPECT_EQ(fetcher_->RequestsStarted(), 0u);
  EXPECT_EQ(service_->InFlight(), 0u);
  auto again = LookupAsync("a.example").get();
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(Gets(), 1u);
  std::lock_guard lock(tier_->mu);
  EXPECT_TRUE(tier_->puts.empty());  // what came from the tier is not written back
}

TEST_F(ServiceL2Test, MissFetchesOnceAndWritesTheFreshResultBack) {
  auto a = LookupAsync("b.example");
  auto b = LookupAsync("b.example");
  EXPECT_EQ(Gets(), 1u);
  EXPECT_EQ(fetcher_->RequestsStarted(), 0u);  // no fetch while the tier is asked
  AnswerTier(nullptr);
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(3600));
  EXPECT_EQ(a.get().entry->status, cache::EntryStatus::kFound);
  EXPECT_EQ(b.get().entry->status, cache::EntryStatus::kFound);
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
  Sync();
  std::lock_guard lock(tier_->mu);
  ASSERT_EQ(tier_->puts.size(), 1u);
  EXPECT_EQ(tier_->puts[0].first.domain, "b.example");
  EXPECT_EQ(tier_->puts[0].second, cache::EntryStatus::kFound);
}

TEST_F(ServiceL2Test, ErrorsAreNotWrittenAndRefreshSkipsTheTier) {
  auto r = LookupAsync("c.example", /*refresh=*/true);
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  EXPECT_EQ(Gets(), 0u);
  fetcher_->AnswerStatus(500);
  EXPECT_EQ(r.get().entry->status, cache::EntryStatus::kError);
  Sync();
  std::lock_guard lock(tier_->mu);
  EXPECT_TRUE(tier_->puts.empty());
}

TEST_F(ServiceL2Test, AbandonedFlightIgnoresTheLateTierAnswer) {
  auto p = std::make_shared<std::promise<LookupAnswer>>();
  const auto ticket = service_->LookupMiss(cache::Key{"d.example", "xmpp-server"}, false,
                                           [p](LookupAnswer a) { p->set_value(std::move(a)); });
  EXPECT_EQ(Gets(), 1u);
  service_->Abandon(ticket);
  Sync();
  EXPECT_EQ(service_->InFlight(), 0u);
  AnswerTier(nullptr);  // late: nothing is fetched for nobody
  EXPECT_EQ(fetcher_->RequestsStarted(), 0u);
  EXPECT_EQ(service_->InFlight(), 0u);
}

TEST_F(ServiceL2Test, BackgroundRefreshTakesOnlyAFresherFleetCopy) {
  auto first = LookupAsync("e.example");
  EXPECT_EQ(Gets(), 1u);
  AnswerTier(nullptr);
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(3600));
  auto fetched = first.get().entry;
  ASSERT_EQ(fetched->status, cache::EntryStatus::kFound);
  // In the last tenth of its lifetime: a hit starts a background refresh, which asks the
  // tier. The tier holds the same old copy (this daemon wrote it): the origin is asked.
  clock_.Set(fetched->refresh_at_ms + 1000);
  EXPECT_TRUE(LookupAsync("e.example").get().from_cache);
  EXPECT_EQ(Gets(), 2u);
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
  AnswerTier(fetched);
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  fetcher_->AnswerStatus(200, FingerprintsDoc(3600));
  for (int i = 0; i < 200 && service_->InFlight() != 0; ++i) Sync();
  auto refreshed = LookupAsync("e.example").get().entry;
  EXPECT_GT(refreshed->fetched_at_ms, fetched->fetched_at_ms);
  // Next window: another daemon of the fleet refreshed it a moment ago; its copy is taken
  // and nothing is fetched.
  clock_.Set(refreshed->refresh_at_ms + 1000);
  auto record = std::make_shared<core::PoshRecord>();
  record->format = core::Format::kRfc7711;
  record->expires_seconds = 3600;
  record->keys.emplace_back();
  auto fleet_copy = cache::MakePositiveEntry(record, clock_.NowMs() - 500, options_.lifetimes);
  EXPECT_TRUE(LookupAsync("e.example").get().from_cache);
  EXPECT_EQ(Gets(), 3u);
  AnswerTier(fleet_copy);
  for (int i = 0; i < 200 && service_->InFlight() != 0; ++i) Sync();
  EXPECT_EQ(fetcher_->RequestsStarted(), 2u);
  EXPECT_EQ(LookupAsync("e.example").get().entry, fleet_copy);
  std::lock_guard lock(tier_->mu);
  EXPECT_EQ(tier_->puts.size(), 2u);  // the two fetched results, not the fleet's copy
}

}  // namespace
}  // namespace posh::server
