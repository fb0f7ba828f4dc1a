// PoshService with the real Resolver, Store and EventLoop over a LoopFetcher and a
// FakeClock: R16-R19 behaviour through the service, without network or sleeping.
#include "server/posh_service.h"

#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <thread>

#include "core/base64.h"
#include "core/hash.h"
#include "support/fake_clock.h"
#include "support/loop_fetcher.h"
#include "support/test_certs.h"
#include "util/text.h"

namespace posh::server {
namespace {

using posh::testing::LoopFetcher;

constexpr int64_t kT0 = 1'800'000'000'000;  // 2027-01-15, unix ms

std::string FingerprintsDoc(int64_t expires) {
  // 32 zero bytes, standard base64.
  return R"({"fingerprints":[{"sha-256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],"expires":)" +
         std::to_string(expires) + "}";
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_.Set(kT0);
    options_.lifetimes.max_ttl_ms = 86400 * 1000LL;
    options_.lifetimes.negative_ttl_ms = 300 * 1000LL;
    options_.lifetimes.error_ttl_ms = 30 * 1000LL;
    options_.lifetimes.stale_ttl_ms = 3600 * 1000LL;
    service_ = std::make_unique<PoshService>(loop_, store_, clock_, options_, [this](uv_loop_t*) {
      auto f = std::make_unique<LoopFetcher>(loop_);
      fetcher_ = f.get();
      return f;
    });
    loop_.Start([this] { service_->StartOnLoop(); }, [this] { service_->StopOnLoop(); });
    // Wait until the loop created the fetcher.
    std::promise<void> ready;
    loop_.Post([&] { ready.set_value(); });
    ready.get_future().wait();
  }
  void TearDown() override { loop_.Stop(); }

  LookupAnswer LookupSync(const std::string& domain, bool refresh = false) {
    std::promise<LookupAnswer> p;
    service_->Lookup(cache::Key{domain, "xmpp-server"}, refresh,
                     [&](LookupAnswer a) { p.set_value(std::move(a)); });
    return p.get_future().get();
  }
  // Starts a lookup whose answer arrives later.
  std::future<LookupAnswer> LookupAsync(const std::string& domain) {
    auto p = std::make_shared<std::promise<LookupAnswer>>();
    auto f = p->get_future();
    service_->Lookup(cache::Key{domain, "xmpp-server"}, false,
                     [p](LookupAnswer a) { p->set_value(std::move(a)); });
    return f;
  }
  // Runs everything queued on the loop so far.
  void Sync() {
    std::promise<void> p;
    loop_.Post([&] { p.set_value(); });
    p.get_future().wait();
  }

  FakeClock clock_;
  ServiceOptions options_;
  EventLoop loop_;
  cache::Store store_{1000};
  std::unique_ptr<PoshService> service_;
  LoopFetcher* fetcher_ = nullptr;
};

TEST_F(ServiceTest, R16_FoundIsCachedSecondLookupNeedsNoFetch) {
  auto f = LookupAsync("a.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  EXPECT_EQ(fetcher_->AnswerStatus(200, FingerprintsDoc(3600)),
            "https://a.example/.well-known/posh/xmpp-server.json");
  auto a = f.get();
  EXPECT_EQ(a.entry->status, cache::EntryStatus::kFound);
  EXPECT_FALSE(a.from_cache);
  EXPECT_EQ(a.entry->expires_at_ms, kT0 + 3600 * 1000);
  auto b = LookupSync("a.example");
  EXPECT_TRUE(b.from_cache);
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
  EXPECT_EQ(service_->stats().cache_hits.load(), 1u);
  EXPECT_EQ(service_->stats().fetches.load(), 1u);
}

TEST_F(ServiceTest, R18_ConcurrentMissesShareOneRetrieval) {
  constexpr int kCallers = 200;
  std::vector<std::future<LookupAnswer>> futures(kCallers);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kCallers; i += 4) futures[i] = LookupAsync("slow.example");
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  Sync();  // every miss has reached the loop
  EXPECT_EQ(service_->stats().coalesced.load(), static_cast<uint64_t>(kCallers - 1));
  EXPECT_EQ(service_->InFlight(), 1u);
  fetcher_->AnswerStatus(200, FingerprintsDoc(600));
  for (auto& f : futures) {
    auto a = f.get();
    EXPECT_EQ(a.entry->status, cache::EntryStatus::kFound);
  }
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
  EXPECT_EQ(service_->InFlight(), 0u);
}

TEST_F(ServiceTest, R17_NotFoundAndErrorLifetimes) {
  auto f = LookupAsync("none.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(404);
  ASSERT_TRUE(fetcher_->WaitStarted(2));  // R3: the draft URL next
  fetcher_->AnswerStatus(410);
  auto a = f.get();
  EXPECT_EQ(a.entry->status, cache::EntryStatus::kNotFound);
  EXPECT_EQ(a.entry->expires_at_ms, kT0 + 300 * 1000);
  EXPECT_TRUE(LookupSync("none.example").from_cache);
  clock_.Advance(300 * 1000);
  auto g = LookupAsync("none.example");  // expired: fetched again
  ASSERT_TRUE(fetcher_->WaitStarted(3));
  fetcher_->AnswerStatus(500);
  auto b = g.get();
  EXPECT_EQ(b.entry->status, cache::EntryStatus::kError);
  EXPECT_EQ(b.entry->expires_at_ms, clock_.NowMs() + 30 * 1000);
  EXPECT_FALSE(b.entry->error.empty());
}

// Simulated time replaces the integration tests' sleeps (R16: `expires` and --max-ttl bound
// a record's lifetime; past it the next lookup fetches again).
TEST_F(ServiceTest, R16_RecordLivesItsExpiresThenIsFetchedAgain) {
  auto f = LookupAsync("e.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(1));
  EXPECT_EQ(f.get().entry->expires_at_ms, kT0 + 1000);
  clock_.Advance(999);
  EXPECT_TRUE(LookupSync("e.example").from_cache);
  clock_.Advance(1);  // at `expires`: no longer served, fetched again
  auto g = LookupAsync("e.example");
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  fetcher_->AnswerStatus(200, FingerprintsDoc(7200));
  auto b = g.get();
  EXPECT_FALSE(b.from_cache);
  EXPECT_EQ(b.entry->expires_at_ms, clock_.NowMs() + 7200 * 1000);
}

TEST_F(ServiceTest, R16_MaxTtlCapsTheLifetime) {
  options_.lifetimes.max_ttl_ms = 60 * 1000;
  service_->UpdateOptions(options_);
  Sync();
  auto f = LookupAsync("m.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(3600));
  EXPECT_EQ(f.get().entry->expires_at_ms, kT0 + 60 * 1000);
  clock_.Advance(60 * 1000);
  auto g = LookupAsync("m.example");
  ASSERT_TRUE(fetcher_->WaitStarted(2)) << "served past --max-ttl";
  fetcher_->AnswerStatus(200, FingerprintsDoc(3600));
  EXPECT_FALSE(g.get().from_cache);
}

// R17: an error is kept for --error-ttl (back-off: no retrieval meanwhile), then retried.
TEST_F(ServiceTest, R17_ErrorIsRetriedOnlyAfterTheErrorTtl) {
  auto f = LookupAsync("err.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(503);
  EXPECT_EQ(f.get().entry->status, cache::EntryStatus::kError);
  clock_.Advance(30 * 1000 - 1);
  auto held = LookupSync("err.example");
  EXPECT_TRUE(held.from_cache);
  EXPECT_EQ(held.entry->status, cache::EntryStatus::kError);
  Sync();
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u) << "retried within the error TTL";
  clock_.Advance(1);
  auto g = LookupAsync("err.example");
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  fetcher_->AnswerStatus(200, FingerprintsDoc(600));
  auto b = g.get();
  EXPECT_FALSE(b.from_cache);
  EXPECT_EQ(b.entry->status, cache::EntryStatus::kFound);
}

// R17: --negative-ttl sets how long "no POSH" is believed.
TEST_F(ServiceTest, R17_NegativeTtlOptionBoundsNotFound) {
  options_.lifetimes.negative_ttl_ms = 1000;
  service_->UpdateOptions(options_);
  Sync();
  auto f = LookupAsync("nf.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(404);
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  fetcher_->AnswerStatus(404);
  EXPECT_EQ(f.get().entry->expires_at_ms, kT0 + 1000);
  clock_.Advance(1000);
  auto g = LookupAsync("nf.example");
  ASSERT_TRUE(fetcher_->WaitStarted(3));
  fetcher_->AnswerStatus(200, FingerprintsDoc(600));
  EXPECT_EQ(g.get().entry->status, cache::EntryStatus::kFound);
}

// R14 on a cached record: the presented certificate's validity is judged at the time of
// the verification, not of the retrieval (a certificate that lapsed since is refused).
TEST_F(ServiceTest, R14_CertificateThatLapsedSinceTheRetrievalIsNotVerified) {
  const int64_t t0_s = kT0 / 1000;
  auto leaf = std::make_shared<const core::Certificate>(
      posh::testing::MakeCert(posh::testing::EcKey(), t0_s - 86400, t0_s + 10));
  const std::string doc = R"({"fingerprints":[{"sha-256":")" +
                          core::EncodeBase64(core::Digest(core::HashAlg::kSha256, leaf->der)) +
                          R"("}],"expires":3600})";
  auto verify = [&] {
    auto p = std::make_shared<std::promise<VerifyAnswer>>();
    auto fut = p->get_future();
    service_->Verify(cache::Key{"v.example", "xmpp-server"}, leaf,
                     [p](VerifyAnswer a) { p->set_value(std::move(a)); });
    return fut;
  };
  auto first = verify();
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, doc);
  EXPECT_EQ(first.get().verdict, core::Verdict::kVerified);
  clock_.Advance(10 * 1000);  // notAfter itself is still inside the validity
  EXPECT_EQ(verify().get().verdict, core::Verdict::kVerified);
  clock_.Advance(1000);
  VerifyAnswer lapsed = verify().get();
  EXPECT_EQ(lapsed.verdict, core::Verdict::kNotVerified);
  EXPECT_TRUE(lapsed.lookup.from_cache);
  EXPECT_NE(lapsed.reason.find("expired"), std::string::npos) << lapsed.reason;
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
}

TEST_F(ServiceTest, R19_RefreshInLastTenPercentAnswersFromCache) {
  auto f = LookupAsync("r.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(1000));
  f.get();
  clock_.Advance(850 * 1000);  // before the last 10 %: no refresh
  EXPECT_TRUE(LookupSync("r.example").from_cache);
  Sync();
  EXPECT_EQ(fetcher_->RequestsStarted(), 1u);
  clock_.Advance(100 * 1000);  // 950 s of 1000: refresh window
  auto hit = LookupSync("r.example");
  EXPECT_TRUE(hit.from_cache);
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  // More hits while the refresh runs start no second refresh.
  EXPECT_TRUE(LookupSync("r.example").from_cache);
  Sync();
  EXPECT_EQ(fetcher_->RequestsStarted(), 2u);
  fetcher_->AnswerStatus(200, FingerprintsDoc(2000));
  Sync();
  Sync();
  auto after = LookupSync("r.example");
  EXPECT_TRUE(after.from_cache);
  EXPECT_EQ(after.entry->expires_at_ms, clock_.NowMs() + 2000 * 1000);
  EXPECT_EQ(service_->stats().refreshes.load(), 1u);
}

TEST_F(ServiceTest, R19_TransientRefreshFailureServesStaleThenExpires) {
  auto f = LookupAsync("s.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(1000));
  f.get();
  clock_.Advance(950 * 1000);
  LookupSync("s.example");  // starts the refresh
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  fetcher_->AnswerError(fetch::FetchErrorKind::kTimeout, "timed out");
  Sync();
  Sync();
  clock_.Advance(100 * 1000);  // past expires (1000 s): stale but servable
  auto stale = LookupSync("s.example");
  EXPECT_EQ(stale.entry->status, cache::EntryStatus::kFound);
  EXPECT_TRUE(stale.stale);
  EXPECT_TRUE(stale.from_cache);
  // Past expires + stale-ttl: never served.
  clock_.Set(kT0 + (1000 + 3600 + 1) * 1000LL);
  auto g = LookupAsync("s.example");
  ASSERT_TRUE(fetcher_->WaitStarted(3));
  fetcher_->AnswerStatus(200, FingerprintsDoc(100));
  auto fresh = g.get();
  EXPECT_FALSE(fresh.from_cache);
  EXPECT_FALSE(fresh.stale);
}

TEST_F(ServiceTest, R19_NotFoundRefreshReplacesAtOnce) {
  auto f = LookupAsync("g.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(1000));
  f.get();
  clock_.Advance(950 * 1000);
  LookupSync("g.example");
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  fetcher_->AnswerStatus(404);
  ASSERT_TRUE(fetcher_->WaitStarted(3));
  fetcher_->AnswerStatus(404);
  Sync();
  Sync();
  auto a = LookupSync("g.example");
  EXPECT_TRUE(a.from_cache);
  EXPECT_EQ(a.entry->status, cache::EntryStatus::kNotFound);
}

TEST_F(ServiceTest, RefreshFlagBypassesCache) {
  auto f = LookupAsync("x.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(1000));
  f.get();
  std::promise<LookupAnswer> p;
  service_->Lookup(cache::Key{"x.example", "xmpp-server"}, true,
                   [&](LookupAnswer a) { p.set_value(std::move(a)); });
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  fetcher_->AnswerStatus(200, FingerprintsDoc(500));
  auto a = p.get_future().get();
  EXPECT_FALSE(a.from_cache);
  EXPECT_EQ(a.entry->expires_at_ms, kT0 + 500 * 1000);
}

// A second service on the fixture's loop, with its own store, fetcher and retrieval cap.
struct CappedService {
  CappedService(EventLoop& loop, const Clock& clock, ServiceOptions options, size_t cap)
      : loop_(loop) {
    options.max_concurrent_retrievals = cap;
    service = std::make_unique<PoshService>(loop, store, clock, options, [&](uv_loop_t*) {
      auto f = std::make_unique<LoopFetcher>(loop);
      fetcher = f.get();
      return f;
    });
    OnLoop([this] { service->StartOnLoop(); });
  }
  ~CappedService() {
    OnLoop([this] { service->StopOnLoop(); });
  }
  void OnLoop(std::function<void()> task) {
    std::promise<void> done;
    loop_.Post([&] {
      task();
      done.set_value();
    });
    done.get_future().wait();
  }
  std::vector<std::future<LookupAnswer>> LookupMany(int n) {
    std::vector<std::future<LookupAnswer>> answers;
    for (int i = 0; i < n; ++i) {
      auto p = std::make_shared<std::promise<LookupAnswer>>();
      answers.push_back(p->get_future());
      // Appended, not "d" + ...: GCC 12 at -O3 reports a false -Wrestrict in
      // operator+(const char*, std::string&&) (GCC bug 105329).
      std::string domain("d");
      domain.append(std::to_string(i)).append(".example");
      service->Lookup(cache::Key{std::move(domain), "xmpp-server"}, false,
                      [p](LookupAnswer a) { p->set_value(std::move(a)); });
    }
    return answers;
  }

  EventLoop& loop_;
  cache::Store store{100};
  LoopFetcher* fetcher = nullptr;
  std::unique_ptr<PoshService> service;
};

TEST_F(ServiceTest, R7_RetrievalsBeyondTheCapWaitTheirTurn) {
  CappedService capped(loop_, clock_, options_, 2);
  auto answers = capped.LookupMany(5);
  LoopFetcher* fetcher = capped.fetcher;
  ASSERT_TRUE(fetcher->WaitStarted(2));
  Sync();
  EXPECT_EQ(fetcher->RequestsStarted(), 2u);  // three wait for a slot
  EXPECT_EQ(capped.service->InFlight(), 5u);
  for (int answered = 0; answered < 5; ++answered) {
    ASSERT_TRUE(fetcher->WaitStarted(std::min(5, answered + 2)));
    fetcher->AnswerStatus(200, FingerprintsDoc(60));
    Sync();
    Sync();
    EXPECT_LE(fetcher->InFlight(), 2u);
  }
  for (auto& f : answers) EXPECT_EQ(f.get().entry->status, cache::EntryStatus::kFound);
  EXPECT_EQ(fetcher->RequestsStarted(), 5u);
}

TEST_F(ServiceTest, R7_RaisingTheCapStartsQueuedRetrievalsAtOnce) {
  CappedService capped(loop_, clock_, options_, 1);
  auto answers = capped.LookupMany(3);
  LoopFetcher* fetcher = capped.fetcher;
  ASSERT_TRUE(fetcher->WaitStarted(1));
  Sync();
  EXPECT_EQ(fetcher->RequestsStarted(), 1u);
  ServiceOptions raised = options_;
  raised.max_concurrent_retrievals = 3;
  capped.service->UpdateOptions(raised);  // as SIGHUP does; nothing has completed
  ASSERT_TRUE(fetcher->WaitStarted(3));
  for (int i = 0; i < 3; ++i) fetcher->AnswerStatus(200, FingerprintsDoc(60));
  for (auto& f : answers) EXPECT_EQ(f.get().entry->status, cache::EntryStatus::kFound);
}

TEST_F(ServiceTest, NetworkTextIsMadeValidUtf8BeforeItIsStored) {
  auto f = LookupAsync("u.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerError(fetch::FetchErrorKind::kTls, "TLS: bad \xff\xfe name \x01");
  auto a = f.get();
  ASSERT_EQ(a.entry->status, cache::EntryStatus::kError);
  EXPECT_EQ(SanitizeUtf8(a.entry->error), a.entry->error);
  EXPECT_NE(a.entry->error.find("bad \xEF\xBF\xBD\xEF\xBF\xBD name ?"), std::string::npos)
      << a.entry->error;
}

TEST_F(ServiceTest, ShutdownAnswersWaiters) {
  auto f = LookupAsync("hang.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  loop_.Stop();
  auto a = f.get();
  EXPECT_EQ(a.entry->status, cache::EntryStatus::kError);
  EXPECT_EQ(a.entry->error, "poshd is shutting down");
  // After stop, lookups are answered at once, never lost.
  auto b = LookupSync("other.example");
  EXPECT_EQ(b.entry->status, cache::EntryStatus::kError);
}

// ---- Bounded, abandonable work (issue 13) ----

std::string DomainUrl(const std::string& domain) {
  return "https://" + domain + "/.well-known/posh/xmpp-server.json";
}

// A miss whose answer is recorded; the test keeps its ticket.
struct Miss {
  std::shared_ptr<std::promise<LookupAnswer>> answer =
      std::make_shared<std::promise<LookupAnswer>>();
  std::future<LookupAnswer> future = answer->get_future();
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  PoshService::MissTicket ticket = 0;

  Miss(PoshService& service, const std::string& domain, bool refresh = false) {
    ticket = service.LookupMiss(cache::Key{domain, "xmpp-server"}, refresh,
                                [p = answer, c = calls](LookupAnswer a) {
                                  if (c->fetch_add(1) == 0) p->set_value(std::move(a));
                                });
  }
  bool Answered() const {
    return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }
};

TEST_F(ServiceTest, AbandonedRunningRetrievalIsCancelledAndItsCallbackNeverRuns) {
  Miss m(*service_, "gone.example");
  ASSERT_NE(m.ticket, 0u);
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  service_->Abandon(m.ticket);
  Sync();
  EXPECT_EQ(fetcher_->InFlight(), 0u);
  EXPECT_EQ(fetcher_->Cancelled(), 1u);
  EXPECT_EQ(service_->stats().dropped.load(), 1u);
  EXPECT_EQ(service_->InFlight(), 0u);
  EXPECT_FALSE(m.Answered());
  EXPECT_EQ(m.calls->load(), 0);
  EXPECT_EQ(store_.Peek(cache::Key{"gone.example", "xmpp-server"}), nullptr);
  // A later caller starts a new retrieval; abandoning an answered ticket is a no-op.
  auto f = LookupAsync("gone.example");
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  fetcher_->AnswerStatus(200, FingerprintsDoc(600));
  EXPECT_EQ(f.get().entry->status, cache::EntryStatus::kFound);
  service_->Abandon(m.ticket);
  Sync();
  EXPECT_EQ(service_->stats().dropped.load(), 1u);
}

TEST_F(ServiceTest, RetrievalContinuesWhileOneCallerStillWaits) {
  Miss gives_up(*service_, "shared.example");
  Miss waits(*service_, "shared.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  service_->Abandon(gives_up.ticket);
  Sync();
  EXPECT_EQ(fetcher_->InFlight(), 1u);
  EXPECT_EQ(service_->stats().dropped.load(), 0u);
  fetcher_->AnswerStatus(200, FingerprintsDoc(600));
  EXPECT_EQ(waits.future.get().entry->status, cache::EntryStatus::kFound);
  Sync();
  EXPECT_FALSE(gives_up.Answered());
}

TEST_F(ServiceTest, AbandonedQueuedRetrievalNeverStarts) {
  CappedService capped(loop_, clock_, options_, 1);
  Miss first(*capped.service, "q0.example");
  Miss second(*capped.service, "q1.example");
  Miss third(*capped.service, "q2.example");
  ASSERT_TRUE(capped.fetcher->WaitStarted(1));
  capped.OnLoop([] {});
  EXPECT_EQ(capped.service->stats().queued.load(), 2u);
  capped.service->Abandon(second.ticket);
  capped.OnLoop([] {});
  EXPECT_EQ(capped.service->stats().queued.load(), 1u);
  EXPECT_EQ(capped.service->stats().dropped.load(), 1u);
  capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  ASSERT_TRUE(capped.fetcher->WaitStarted(2));
  EXPECT_EQ(capped.fetcher->PendingUrls(), std::vector<std::string>{DomainUrl("q2.example")});
  capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  EXPECT_EQ(first.future.get().entry->status, cache::EntryStatus::kFound);
  EXPECT_EQ(third.future.get().entry->status, cache::EntryStatus::kFound);
  EXPECT_EQ(capped.fetcher->RequestsStarted(), 2u);
  EXPECT_FALSE(second.Answered());
}

TEST_F(ServiceTest, R19_BackgroundRefreshIsKeptWhenAJoinedCallerGivesUp) {
  auto f = LookupAsync("keep.example");
  ASSERT_TRUE(fetcher_->WaitStarted(1));
  fetcher_->AnswerStatus(200, FingerprintsDoc(1000));
  f.get();
  clock_.Advance(950 * 1000);  // in the last 10 % of the lifetime: a hit starts a refresh
  EXPECT_TRUE(LookupSync("keep.example").from_cache);
  ASSERT_TRUE(fetcher_->WaitStarted(2));
  Sync();
  Miss joined(*service_, "keep.example", /*refresh=*/true);
  Sync();
  EXPECT_EQ(service_->stats().coalesced.load(), 1u);
  service_->Abandon(joined.ticket);
  Sync();
  EXPECT_EQ(fetcher_->InFlight(), 1u);  // the cache still needs it
  EXPECT_EQ(service_->stats().dropped.load(), 0u);
  fetcher_->AnswerStatus(200, FingerprintsDoc(2000));
  Sync();
  Sync();
  EXPECT_EQ(store_.Peek(cache::Key{"keep.example", "xmpp-server"})->expires_at_ms,
            clock_.NowMs() + 2000 * 1000);
}

TEST_F(ServiceTest, FullQueueDropsTheRetrievalThatWaitedLongestWithAnUncachedError) {
  options_.max_queued_retrievals = 2;
  CappedService capped(loop_, clock_, options_, 1);
  Miss running(*capped.service, "r.example");
  Miss oldest(*capped.service, "w1.example");
  Miss second(*capped.service, "w2.example");
  Miss newest(*capped.service, "w3.example");
  ASSERT_TRUE(capped.fetcher->WaitStarted(1));
  auto dropped = oldest.future.get();
  EXPECT_EQ(dropped.entry->status, cache::EntryStatus::kError);
  EXPECT_EQ(dropped.entry->error_kind, static_cast<uint8_t>(resolve::ErrorKind::kOverloaded));
  EXPECT_NE(dropped.entry->error.find("queue is full"), std::string::npos) << dropped.entry->error;
  EXPECT_EQ(capped.store.Peek(cache::Key{"w1.example", "xmpp-server"}), nullptr);
  EXPECT_EQ(capped.service->stats().dropped.load(), 1u);
  EXPECT_EQ(capped.service->stats().queued.load(), 2u);
  EXPECT_FALSE(second.Answered());
  EXPECT_FALSE(newest.Answered());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(capped.fetcher->WaitStarted(i + 1));
    capped.OnLoop([] {});
    capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  }
  EXPECT_EQ(second.future.get().entry->status, cache::EntryStatus::kFound);
  EXPECT_EQ(newest.future.get().entry->status, cache::EntryStatus::kFound);
  EXPECT_EQ(running.future.get().entry->status, cache::EntryStatus::kFound);
}

TEST_F(ServiceTest, NewWorkDisplacesARetrievalRunningPastTheJostleTimeout) {
  options_.jostle_timeout_ms = 60'000;  // the timer never fires during the test
  CappedService capped(loop_, clock_, options_, 1);
  Miss slow(*capped.service, "blackhole.example");
  ASSERT_TRUE(capped.fetcher->WaitStarted(1));
  clock_.Advance(30'000);  // younger than the timeout: the newcomer waits
  Miss young(*capped.service, "young.example");
  capped.OnLoop([] {});
  EXPECT_EQ(capped.service->stats().displaced.load(), 0u);
  EXPECT_EQ(capped.service->stats().queued.load(), 1u);
  // Now past it: the next newcomer displaces the slow one; and the queue's head has itself
  // waited past the timeout, so the newest caller goes first (adaptive LIFO).
  clock_.Advance(61'000);
  Miss fresh(*capped.service, "fresh.example");
  auto displaced = slow.future.get();
  EXPECT_EQ(displaced.entry->error_kind, static_cast<uint8_t>(resolve::ErrorKind::kOverloaded));
  EXPECT_NE(displaced.entry->error.find("displaced"), std::string::npos);
  EXPECT_EQ(capped.store.Peek(cache::Key{"blackhole.example", "xmpp-server"}), nullptr);
  EXPECT_EQ(capped.service->stats().displaced.load(), 1u);
  EXPECT_EQ(capped.fetcher->Cancelled(), 1u);
  ASSERT_TRUE(capped.fetcher->WaitStarted(2));
  EXPECT_EQ(capped.fetcher->PendingUrls(), std::vector<std::string>{DomainUrl("fresh.example")});
  capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  EXPECT_EQ(fresh.future.get().entry->status, cache::EntryStatus::kFound);
  ASSERT_TRUE(capped.fetcher->WaitStarted(3));
  capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  EXPECT_EQ(young.future.get().entry->status, cache::EntryStatus::kFound);
}

// Durations are measured on the monotonic clock: a wall-clock step (NTP, an operator's
// `date -s`) does not make a running retrieval look old.
TEST_F(ServiceTest, WallClockStepDoesNotDisplaceARunningRetrieval) {
  options_.jostle_timeout_ms = 60'000;
  CappedService capped(loop_, clock_, options_, 1);
  Miss slow(*capped.service, "blackhole.example");
  ASSERT_TRUE(capped.fetcher->WaitStarted(1));
  clock_.Set(clock_.NowMs() + 3600'000);  // the wall clock jumps an hour ahead
  Miss next(*capped.service, "next.example");
  capped.OnLoop([] {});
  EXPECT_EQ(capped.service->stats().displaced.load(), 0u);
  EXPECT_EQ(capped.service->stats().queued.load(), 1u);
  capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  EXPECT_EQ(slow.future.get().entry->status, cache::EntryStatus::kFound);
  ASSERT_TRUE(capped.fetcher->WaitStarted(2));
  capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  EXPECT_EQ(next.future.get().entry->status, cache::EntryStatus::kFound);
}

TEST_F(ServiceTest, JostleTimerDisplacesWithoutNewArrivals) {
  options_.jostle_timeout_ms = 20;
  CappedService capped(loop_, clock_, options_, 1);
  Miss slow(*capped.service, "blackhole.example");
  Miss waiting(*capped.service, "waiting.example");
  ASSERT_TRUE(capped.fetcher->WaitStarted(1));
  clock_.Advance(100);  // the timer, due ~21 ms later in real time, sees 100 ms run
  ASSERT_EQ(slow.future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(slow.future.get().entry->error_kind,
            static_cast<uint8_t>(resolve::ErrorKind::kOverloaded));
  ASSERT_TRUE(capped.fetcher->WaitStarted(2));
  capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  EXPECT_EQ(waiting.future.get().entry->status, cache::EntryStatus::kFound);
}

TEST_F(ServiceTest, FloodOfAbandonedMissesLeavesNothingBehind) {
  CappedService capped(loop_, clock_, options_, 16);
  std::vector<std::unique_ptr<Miss>> flood;
  for (int i = 0; i < 3000; ++i) {
    // Appended, not "f" + ...: GCC 12 -O2 reports a false -Wrestrict there (GCC bug 105329).
    std::string domain("f");
    domain.append(std::to_string(i)).append(".example");
    flood.push_back(std::make_unique<Miss>(*capped.service, domain));
  }
  ASSERT_TRUE(capped.fetcher->WaitStarted(16));
  // Newest first: the waiting ones go before a running one frees its slot, so none of them
  // is ever started.
  for (auto it = flood.rbegin(); it != flood.rend(); ++it) capped.service->Abandon((*it)->ticket);
  capped.OnLoop([] {});
  EXPECT_EQ(capped.service->InFlight(), 0u);
  EXPECT_EQ(capped.service->stats().queued.load(), 0u);
  EXPECT_EQ(capped.service->stats().dropped.load(), 3000u);
  EXPECT_EQ(capped.fetcher->InFlight(), 0u);
  EXPECT_EQ(capped.fetcher->RequestsStarted(), 16u);  // the queued ones never started
  // Another client's lookup starts at once.
  Miss other(*capped.service, "other.example");
  ASSERT_TRUE(capped.fetcher->WaitStarted(17));
  capped.fetcher->AnswerStatus(200, FingerprintsDoc(60));
  EXPECT_EQ(other.future.get().entry->status, cache::EntryStatus::kFound);
  for (auto& m : flood) EXPECT_FALSE(m->Answered());
}

TEST(LatencyHistogramTest, OverflowBucketReportsTheSlowestValueNotTheLastBound) {
  LatencyHistogram h;
  h.Record(3);
  h.Record(30'000);  // slower than the last bound (10 s)
  EXPECT_EQ(h.Percentile(0.99), 30'000);
  EXPECT_EQ(h.Percentile(0.50), 5);
  EXPECT_EQ(h.MaxMs(), 30'000);
}

}  // namespace
}  // namespace posh::server
