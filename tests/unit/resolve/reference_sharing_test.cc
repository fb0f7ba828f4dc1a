// Delegation fan-in (issue 13): reference targets (R11) shared by URL between delegating
// domains, cached for their own lifetime and coalesced while in flight, with every job's
// own R6/R7/R11 checks unchanged. Over a ScriptedFetcher: no network, no sleeping.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <optional>

#include "core/base64.h"
#include "resolve/reference_cache.h"
#include "resolve/resolver.h"
#include "support/fake_clock.h"
#include "support/scripted_fetcher.h"

namespace posh::resolve {
namespace {

using fetch::FetchErrorKind;
using posh::testing::ScriptedFetcher;
using Status = Resolution::Status;

constexpr char kTarget[] = "https://hosting.example/posh/shared.json";

std::string Fingerprints(int64_t expires = 3600) {
  std::vector<uint8_t> digest(32, 0x22);
  return R"({"fingerprints":[{"sha-256":")" + core::EncodeBase64(digest) + R"("}],"expires":)" +
         std::to_string(expires) + "}";
}

std::string Reference(const std::string& url, int64_t expires = 100) {
  return R"({"url":")" + url + R"(","expires":)" + std::to_string(expires) + "}";
}

// Appended, not "customer" + ...: GCC 12 -O2 may report a false -Wrestrict (GCC bug 105329).
std::string Domain(int i) {
  return std::string("customer").append(std::to_string(i)).append(".example");
}

std::string PrimaryUrl(const std::string& domain) {
  return "https://" + domain + "/.well-known/posh/xmpp-server.json";
}

class ReferenceSharingTest : public ::testing::Test {
 protected:
  ReferenceSharingTest() : clock_(1'700'000'000'000) {}

  std::unique_ptr<Resolver> MakeResolver() {
    return std::make_unique<Resolver>(fetcher_, clock_, options_,
                                      ResolverCounters{&shared_, &fetches_});
  }

  // `domain` publishes a reference to `target` with `expires`.
  void Delegate(const std::string& domain, const std::string& target = kTarget,
                int64_t expires = 100) {
    fetcher_.OnStatus(PrimaryUrl(domain), 200, Reference(target, expires));
  }

  // Starts a resolution whose result lands in results_[domain].
  Resolver::Handle Start(Resolver& resolver, const std::string& domain) {
    return resolver.Resolve(domain, "xmpp-server",
                            [this, domain](Resolution r) { results_[domain] = std::move(r); });
  }

  // One resolution, run to completion.
  Resolution RunOne(Resolver& resolver, const std::string& domain) {
    Start(resolver, domain);
    fetcher_.Drain();
    EXPECT_EQ(results_.count(domain), 1u) << domain;
    return results_[domain];
  }

  FakeClock clock_;
  ScriptedFetcher fetcher_{&clock_};
  ResolverOptions options_;
  std::atomic<uint64_t> shared_{0}, fetches_{0};
  std::map<std::string, Resolution> results_;
};

// ---- fan-in ----

TEST_F(ReferenceSharingTest, TwoHundredDelegatingDomainsFetchTheTargetOnce) {
  constexpr int kN = 200;
  for (int i = 0; i < kN; ++i) Delegate(Domain(i), kTarget, 100 + i);
  fetcher_.OnStatus(kTarget, 200, Fingerprints(3600));
  auto resolver = MakeResolver();
  for (int i = 0; i < kN; ++i) Start(*resolver, Domain(i));
  EXPECT_TRUE(results_.empty()) << "callbacks never run inside Resolve()";
  EXPECT_EQ(resolver->InFlight(), static_cast<size_t>(kN));
  fetcher_.Drain();
  EXPECT_EQ(resolver->InFlight(), 0u);

  ASSERT_EQ(results_.size(), static_cast<size_t>(kN));
  EXPECT_EQ(fetcher_.requests.size(), static_cast<size_t>(kN + 1));
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
  uint64_t requests = 0;
  for (int i = 0; i < kN; ++i) {
    const Resolution& r = results_[Domain(i)];
    ASSERT_EQ(r.status, Status::kFound) << Domain(i) << ": " << r.error;
    EXPECT_EQ(r.record.delegated_to, "hosting.example");
    EXPECT_EQ(r.record.source_url, kTarget);
    EXPECT_EQ(r.final_url, kTarget);
    EXPECT_EQ(r.record.expires_seconds, 100 + i) << "R11: the reference's lower expires";
    requests += r.requests;
  }
  EXPECT_EQ(requests, static_cast<uint64_t>(kN + 1)) << "requests = HTTP requests sent";
  EXPECT_EQ(results_[Domain(0)].requests, 2u) << "the job that started the retrieval";
  EXPECT_EQ(results_[Domain(1)].requests, 1u) << "a joiner counts only its own";
  EXPECT_EQ(fetches_.load(), 1u);
  EXPECT_EQ(shared_.load(), static_cast<uint64_t>(kN - 1));
  EXPECT_EQ(resolver->CachedReferenceTargets(), 1u);

  // While fresh, later delegations are answered from the cache: one request each.
  for (int i = kN; i < 2 * kN; ++i) Delegate(Domain(i));
  for (int i = kN; i < 2 * kN; ++i) Start(*resolver, Domain(i));
  fetcher_.Drain();
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
  for (int i = kN; i < 2 * kN; ++i) {
    EXPECT_EQ(results_[Domain(i)].status, Status::kFound) << Domain(i);
    EXPECT_EQ(results_[Domain(i)].requests, 1u);
  }
  EXPECT_EQ(fetches_.load(), 1u);
  EXPECT_EQ(shared_.load(), static_cast<uint64_t>(2 * kN - 1));
}

TEST_F(ReferenceSharingTest, AJobReachingTheReferenceWhileTheTargetIsInFlightJoinsIt) {
  Delegate("a.example");
  Delegate("b.example");
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  auto resolver = MakeResolver();
  Start(*resolver, "a.example");
  ASSERT_TRUE(fetcher_.Step());  // a's primary: a starts the target retrieval
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
  Start(*resolver, "b.example");
  ASSERT_TRUE(fetcher_.Step());  // the target, answered before b's primary
  ASSERT_EQ(results_.count("a.example"), 1u);
  EXPECT_EQ(fetches_.load(), 1u);
  EXPECT_EQ(shared_.load(), 0u);  // b, answered next, takes it from the cache

  // d reaches the reference while c's retrieval of the same target is in flight: it joins.
  Delegate("c.example", "https://other.example/t.json");
  Delegate("d.example", "https://other.example/t.json");
  fetcher_.OnStatus("https://other.example/t.json", 200, Fingerprints());
  Start(*resolver, "c.example");
  Start(*resolver, "d.example");
  fetcher_.Drain();
  EXPECT_EQ(fetcher_.Count("https://other.example/t.json"), 1u);
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
  EXPECT_EQ(fetches_.load(), 2u);
  EXPECT_EQ(shared_.load(), 2u);  // b (cache), d (in flight)
  for (const char* d : {"a.example", "b.example", "c.example", "d.example"}) {
    EXPECT_EQ(results_[d].status, Status::kFound) << d;
  }
}

// ---- lifetime ----

TEST_F(ReferenceSharingTest, TargetIsFetchedAgainOnceItsOwnExpiresHasPassed) {
  Delegate("a.example", kTarget, 90000);
  Delegate("b.example", kTarget, 90000);
  Delegate("c.example", kTarget, 90000);
  fetcher_.OnStatus(kTarget, 200, Fingerprints(600));
  auto resolver = MakeResolver();
  EXPECT_EQ(RunOne(*resolver, "a.example").status, Status::kFound);
  clock_.Advance(599'999);
  EXPECT_EQ(RunOne(*resolver, "b.example").status, Status::kFound);
  EXPECT_EQ(fetcher_.Count(kTarget), 1u) << "still fresh";
  clock_.Advance(1);
  Resolution c = RunOne(*resolver, "c.example");
  EXPECT_EQ(c.status, Status::kFound);
  EXPECT_EQ(c.requests, 2u);
  EXPECT_EQ(fetcher_.Count(kTarget), 2u) << "the target's expires (600 s) has passed";
  EXPECT_EQ(fetches_.load(), 2u);
  EXPECT_EQ(shared_.load(), 1u);
}

TEST_F(ReferenceSharingTest, TargetLifetimeIsCappedByTheMaxTtl) {
  options_.reference_cache_max_ttl = std::chrono::seconds(60);
  Delegate("a.example");
  Delegate("b.example");
  fetcher_.OnStatus(kTarget, 200, Fingerprints(3600));
  auto resolver = MakeResolver();
  RunOne(*resolver, "a.example");
  clock_.Advance(60'000);
  RunOne(*resolver, "b.example");
  EXPECT_EQ(fetcher_.Count(kTarget), 2u);
}

TEST_F(ReferenceSharingTest, EachDomainGetsTheLowerOfItsReferenceAndTheTargetExpires) {
  Delegate("short.example", kTarget, 100);
  Delegate("long.example", kTarget, 90000);
  Delegate("equal.example", kTarget, 3600);
  fetcher_.OnStatus(kTarget, 200, Fingerprints(3600));
  auto resolver = MakeResolver();
  for (const char* d : {"short.example", "long.example", "equal.example"}) Start(*resolver, d);
  fetcher_.Drain();
  EXPECT_EQ(results_["short.example"].record.expires_seconds, 100);
  EXPECT_EQ(results_["long.example"].record.expires_seconds, 3600);
  EXPECT_EQ(results_["equal.example"].record.expires_seconds, 3600);
  // From the cache too, later.
  Delegate("later.example", kTarget, 50);
  EXPECT_EQ(RunOne(*resolver, "later.example").record.expires_seconds, 50);
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
}

// ---- cancellation ----

TEST_F(ReferenceSharingTest, CancellingTheJobThatStartedTheFetchLeavesItToTheOthers) {
  for (const char* d : {"a.example", "b.example", "c.example"}) Delegate(d);
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  auto resolver = MakeResolver();
  auto a = Start(*resolver, "a.example");
  Start(*resolver, "b.example");
  Start(*resolver, "c.example");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(fetcher_.Step());  // the primaries
  ASSERT_EQ(fetcher_.Count(kTarget), 1u);
  resolver->Cancel(a);
  EXPECT_TRUE(fetcher_.cancelled.empty()) << "b and c still wait on the target";
  EXPECT_EQ(resolver->InFlight(), 2u);
  fetcher_.Drain();
  EXPECT_EQ(results_.count("a.example"), 0u);
  ASSERT_EQ(results_["b.example"].status, Status::kFound);
  ASSERT_EQ(results_["c.example"].status, Status::kFound);
  EXPECT_EQ(results_["b.example"].requests + results_["c.example"].requests, 3u)
      << "the target's request is reported once, by the first job still waiting";
}

TEST_F(ReferenceSharingTest, CancellingEveryJoinerCancelsTheSharedFetch) {
  for (const char* d : {"a.example", "b.example", "c.example"}) Delegate(d);
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  auto resolver = MakeResolver();
  auto a = Start(*resolver, "a.example");
  auto b = Start(*resolver, "b.example");
  auto c = Start(*resolver, "c.example");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(fetcher_.Step());
  ASSERT_EQ(fetcher_.requests.size(), 4u);
  const fetch::Fetcher::Handle target_handle = 4;  // the ScriptedFetcher numbers from 1
  resolver->Cancel(b);
  resolver->Cancel(a);
  EXPECT_TRUE(fetcher_.cancelled.empty());
  resolver->Cancel(c);
  EXPECT_EQ(fetcher_.cancelled, std::vector<fetch::Fetcher::Handle>{target_handle});
  EXPECT_EQ(fetcher_.InFlight(), 0u);
  EXPECT_EQ(resolver->InFlight(), 0u);
  fetcher_.Drain();
  EXPECT_TRUE(results_.empty());

  // Nothing was kept: the next delegation retrieves the target again.
  Delegate("d.example");
  EXPECT_EQ(RunOne(*resolver, "d.example").status, Status::kFound);
  EXPECT_EQ(fetcher_.Count(kTarget), 2u);
}

TEST_F(ReferenceSharingTest, DestructionCancelsSharedFetchesWithoutCallbacks) {
  for (const char* d : {"a.example", "b.example"}) Delegate(d);
  auto resolver = MakeResolver();
  Start(*resolver, "a.example");
  Start(*resolver, "b.example");
  ASSERT_TRUE(fetcher_.Step());
  ASSERT_TRUE(fetcher_.Step());
  resolver.reset();
  EXPECT_EQ(fetcher_.cancelled.size(), 1u);
  EXPECT_EQ(fetcher_.InFlight(), 0u);
  fetcher_.Drain();
  EXPECT_TRUE(results_.empty());
}

TEST_F(ReferenceSharingTest, AJoinersCallbackMayCancelOthersOrDestroyTheResolver) {
  for (const char* d : {"a.example", "b.example", "c.example", "d.example"}) Delegate(d);
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  auto resolver = MakeResolver();
  Resolver::Handle c = 0;
  int calls = 0;
  resolver->Resolve("a.example", "xmpp-server", [&](Resolution) {
    ++calls;
    resolver->Cancel(c);
  });
  resolver->Resolve("b.example", "xmpp-server", [&](Resolution) {
    ++calls;
    resolver.reset();
  });
  c = resolver->Resolve("c.example", "xmpp-server", [&](Resolution) { ++calls; });
  resolver->Resolve("d.example", "xmpp-server", [&](Resolution) { ++calls; });
  fetcher_.Drain();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(resolver, nullptr);
}

// ---- failures ----

TEST_F(ReferenceSharingTest, ATargetFailureReachesEveryJoinerAndIsNotCached) {
  struct Case {
    const char* name;
    std::function<void(ScriptedFetcher&)> script;
    ErrorKind kind;
    bool transient;
    std::string error;
  };
  const std::string t = kTarget;
  const std::vector<Case> cases = {
      {"503", [&](ScriptedFetcher& f) { f.OnStatus(t, 503); }, ErrorKind::kHttpStatus, true,
       "HTTP 503 from " + t},
      {"403", [&](ScriptedFetcher& f) { f.OnStatus(t, 403); }, ErrorKind::kHttpStatus, false,
       "HTTP 403 from " + t},
      {"404", [&](ScriptedFetcher& f) { f.OnStatus(t, 404); }, ErrorKind::kHttpStatus, false,
       "HTTP 404 from " + t + " (the reference target, R11)"},
      {"tls", [&](ScriptedFetcher& f) { f.OnError(t, FetchErrorKind::kTls, "TLS: bad"); },
       ErrorKind::kTls, true, t + ": TLS: bad"},
      {"too large",
       [&](ScriptedFetcher& f) { f.OnError(t, FetchErrorKind::kTooLarge, "body too large"); },
       ErrorKind::kLimit, false, t + ": body too large"},
      {"document", [&](ScriptedFetcher& f) { f.OnStatus(t, 200, Fingerprints(0)); },
       ErrorKind::kDocument, false, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    fetcher_.requests.clear();
    results_.clear();
    c.script(fetcher_);
    for (int i = 0; i < 5; ++i) Delegate(Domain(i));
    auto resolver = MakeResolver();
    for (int i = 0; i < 5; ++i) Start(*resolver, Domain(i));
    fetcher_.Drain();
    EXPECT_EQ(fetcher_.Count(kTarget), 1u);
    ASSERT_EQ(results_.size(), 5u);
    for (const auto& [domain, r] : results_) {
      EXPECT_EQ(r.status, Status::kError) << domain;
      EXPECT_EQ(r.error_kind, c.kind) << domain;
      EXPECT_EQ(r.transient, c.transient) << domain;
      if (!c.error.empty()) {
        EXPECT_EQ(r.error, c.error) << domain;
      }
      EXPECT_EQ(r.error, results_.begin()->second.error);
      EXPECT_EQ(r.final_url, kTarget);
    }
    EXPECT_EQ(resolver->CachedReferenceTargets(), 0u);
    Start(*resolver, Domain(0));
    fetcher_.Drain();
    EXPECT_EQ(fetcher_.Count(kTarget), 2u) << "failures are not cached";
  }
}

TEST_F(ReferenceSharingTest, ATargetThatIsItselfAReferenceIsAnErrorForEveryJoiner) {
  for (int i = 0; i < 4; ++i) Delegate(Domain(i));
  fetcher_.OnStatus(kTarget, 200, Reference("https://third.example/p.json"));
  fetcher_.OnStatus("https://third.example/p.json", 200, Fingerprints());
  auto resolver = MakeResolver();
  for (int i = 0; i < 4; ++i) Start(*resolver, Domain(i));
  fetcher_.Drain();
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
  EXPECT_EQ(fetcher_.Count("https://third.example/p.json"), 0u);
  for (int i = 0; i < 4; ++i) {
    const Resolution& r = results_[Domain(i)];
    EXPECT_EQ(r.status, Status::kError);
    EXPECT_EQ(r.error_kind, ErrorKind::kDocument);
    EXPECT_FALSE(r.transient);
    EXPECT_EQ(r.error, std::string(kTarget) + ": reference points to another reference (R11)");
  }
  EXPECT_EQ(resolver->CachedReferenceTargets(), 0u);
}

TEST_F(ReferenceSharingTest, AReferenceBackToAVisitedUrlFailsBeforeAnySharing) {
  fetcher_.OnStatus(PrimaryUrl("a.example"), 200, Reference(PrimaryUrl("a.example")));
  auto resolver = MakeResolver();
  Resolution r = RunOne(*resolver, "a.example");
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect);
  EXPECT_NE(r.error.find("already visited"), std::string::npos) << r.error;
  EXPECT_EQ(fetches_.load(), 0u);
  EXPECT_EQ(shared_.load(), 0u);
}

// ---- R6 on the shared target's redirects ----

TEST_F(ReferenceSharingTest, TargetRedirectsAreFollowedOnceAndDelegateToTheFinalHost) {
  for (int i = 0; i < 5; ++i) Delegate(Domain(i));
  fetcher_.OnRedirect(kTarget, "https://cdn.example/blob/1", 307);
  fetcher_.OnStatus("https://cdn.example/blob/1", 200, Fingerprints());
  auto resolver = MakeResolver();
  for (int i = 0; i < 5; ++i) Start(*resolver, Domain(i));
  fetcher_.Drain();
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
  EXPECT_EQ(fetcher_.Count("https://cdn.example/blob/1"), 1u);
  for (int i = 0; i < 5; ++i) {
    const Resolution& r = results_[Domain(i)];
    ASSERT_EQ(r.status, Status::kFound) << r.error;
    EXPECT_EQ(r.record.delegated_to, "cdn.example");
    EXPECT_EQ(r.record.source_url, "https://cdn.example/blob/1");
    EXPECT_EQ(r.final_url, "https://cdn.example/blob/1");
  }
  // From the cache, the redirect chain is still applied to the new job.
  Delegate("late.example");
  EXPECT_EQ(RunOne(*resolver, "late.example").record.source_url, "https://cdn.example/blob/1");
}

TEST_F(ReferenceSharingTest, EachJobSpendsItsOwnRedirectBudgetOnTheSharedChain) {
  // a reaches the reference directly; b after one redirect of its own. With a budget of 1,
  // the target's one redirect is fine for a and one too many for b: exactly what each gets
  // when resolving alone.
  options_.max_redirects = 1;
  Delegate("a.example");
  fetcher_.OnRedirect(PrimaryUrl("b.example"), "https://b.example/moved.json");
  fetcher_.OnStatus("https://b.example/moved.json", 200, Reference(kTarget));
  fetcher_.OnRedirect(kTarget, "https://cdn.example/blob/1");
  fetcher_.OnStatus("https://cdn.example/blob/1", 200, Fingerprints());

  Resolution b_alone;
  {
    auto alone = MakeResolver();
    b_alone = RunOne(*alone, "b.example");
    results_.clear();
  }
  ASSERT_EQ(b_alone.error_kind, ErrorKind::kRedirect);
  fetcher_.requests.clear();

  auto resolver = MakeResolver();
  Start(*resolver, "a.example");
  Start(*resolver, "b.example");
  fetcher_.Drain();
  EXPECT_EQ(fetcher_.Count(kTarget), 1u) << "b joined a's retrieval";
  EXPECT_EQ(shared_.load(), 1u);
  ASSERT_EQ(results_["a.example"].status, Status::kFound) << results_["a.example"].error;
  const Resolution& b = results_["b.example"];
  EXPECT_EQ(b.status, Status::kError);
  EXPECT_EQ(b.error_kind, ErrorKind::kRedirect);
  EXPECT_EQ(b.error, b_alone.error);
  EXPECT_NE(b.error.find("too many redirects"), std::string::npos) << b.error;
  // And from the cache.
  Start(*resolver, "b.example");
  fetcher_.Drain();
  EXPECT_EQ(results_["b.example"].error, b_alone.error);
}

TEST_F(ReferenceSharingTest, ALoopThroughAJobsOwnUrlsIsThatJobsLoop) {
  // The target redirects to a's primary URL, which holds a reference: a sees a loop (R6),
  // b a reference to a reference (R11), exactly as each would alone.
  Delegate("a.example");
  Delegate("b.example");
  fetcher_.OnRedirect(kTarget, PrimaryUrl("a.example"));
  auto resolver = MakeResolver();
  Start(*resolver, "a.example");
  Start(*resolver, "b.example");
  fetcher_.Drain();
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
  const Resolution& a = results_["a.example"];
  const Resolution& b = results_["b.example"];
  EXPECT_EQ(a.error_kind, ErrorKind::kRedirect);
  EXPECT_NE(a.error.find("redirect loop"), std::string::npos) << a.error;
  EXPECT_EQ(b.error_kind, ErrorKind::kDocument);
  EXPECT_EQ(b.error, PrimaryUrl("a.example") + ": reference points to another reference (R11)");
}

TEST_F(ReferenceSharingTest, RedirectRulesOfR6StillApplyToTheTarget) {
  for (int i = 0; i < 3; ++i) Delegate(Domain(i));
  fetcher_.OnRedirect(kTarget, "http://hosting.example/plain.json");
  auto resolver = MakeResolver();
  for (int i = 0; i < 3; ++i) Start(*resolver, Domain(i));
  fetcher_.Drain();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(results_[Domain(i)].error_kind, ErrorKind::kRedirect);
    EXPECT_NE(results_[Domain(i)].error.find("non-https"), std::string::npos);
  }
  fetcher_.OnRedirect(kTarget, "https://x.example/1");
  fetcher_.OnRedirect("https://x.example/1", kTarget);
  results_.clear();
  for (int i = 0; i < 3; ++i) Start(*resolver, Domain(i));
  fetcher_.Drain();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(results_[Domain(i)].error.find("redirect loop"), std::string::npos)
        << results_[Domain(i)].error;
  }
}

// ---- R7 ----

TEST_F(ReferenceSharingTest, AJobNeverWaitsOnARetrievalWithALaterDeadline) {
  // b starts first (earlier deadline) but reaches the reference after a started the target
  // retrieval under a's later deadline: b fetches it itself rather than overrun its own.
  fetcher_.OnRedirect(PrimaryUrl("b.example"), "https://b.example/moved.json");
  fetcher_.OnStatus("https://b.example/moved.json", 200, Reference(kTarget));
  Delegate("a.example");
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  auto resolver = MakeResolver();
  Start(*resolver, "b.example");
  clock_.Advance(10);
  Start(*resolver, "a.example");
  fetcher_.Drain();
  EXPECT_EQ(results_["a.example"].status, Status::kFound);
  EXPECT_EQ(results_["b.example"].status, Status::kFound);
  EXPECT_EQ(fetcher_.Count(kTarget), 2u);
}

TEST_F(ReferenceSharingTest, AJobJoinsARetrievalWithTheSameDeadline) {
  // The same case started at the same instant: the deadlines are equal, joining is safe.
  fetcher_.OnRedirect(PrimaryUrl("b.example"), "https://b.example/moved.json");
  fetcher_.OnStatus("https://b.example/moved.json", 200, Reference(kTarget));
  Delegate("a.example");
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  auto resolver = MakeResolver();
  Start(*resolver, "b.example");
  Start(*resolver, "a.example");
  fetcher_.Drain();
  EXPECT_EQ(results_["a.example"].status, Status::kFound);
  EXPECT_EQ(results_["b.example"].status, Status::kFound);
  EXPECT_EQ(fetcher_.Count(kTarget), 1u);
}

TEST_F(ReferenceSharingTest, WhenTheSharedRetrievalTimesOutJobsWithTimeLeftTryAgain) {
  // a, b, c start 10 ms apart; the target never answers within any deadline (simulated
  // time). The first retrieval runs under a's deadline; at its timeout b and c still have
  // time left and retry together under b's; at that one's timeout c retries alone.
  options_.timeout = std::chrono::milliseconds(5000);
  Delegate("a.example");
  Delegate("b.example");
  Delegate("c.example");
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  fetcher_.Delay(kTarget, std::chrono::milliseconds(60000));
  auto resolver = MakeResolver();
  const int64_t start = clock_.MonotonicMs();
  Start(*resolver, "a.example");
  clock_.Advance(10);
  Start(*resolver, "b.example");
  clock_.Advance(10);
  Start(*resolver, "c.example");
  fetcher_.Drain();
  for (const char* d : {"a.example", "b.example", "c.example"}) {
    EXPECT_EQ(results_[d].error_kind, ErrorKind::kTimeout) << d << ": " << results_[d].error;
    EXPECT_TRUE(results_[d].transient) << d;
  }
  EXPECT_EQ(fetcher_.Count(kTarget), 3u);
  EXPECT_EQ(clock_.MonotonicMs() - start, 5020) << "c answered at its own deadline";
}

// ---- bounds and options ----

TEST_F(ReferenceSharingTest, TheCacheKeepsAtMostTheConfiguredNumberOfTargets) {
  options_.reference_cache_entries = 3;
  auto target = [](int i) {
    return std::string("https://host").append(std::to_string(i)).append(".example/t.json");
  };
  for (int i = 0; i < 5; ++i) {
    Delegate(Domain(i), target(i));
    fetcher_.OnStatus(target(i), 200, Fingerprints());
  }
  auto resolver = MakeResolver();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(RunOne(*resolver, Domain(i)).status, Status::kFound);
  EXPECT_EQ(resolver->CachedReferenceTargets(), 3u);
  RunOne(*resolver, Domain(4));
  EXPECT_EQ(fetcher_.Count(target(4)), 1u) << "most recent: kept";
  RunOne(*resolver, Domain(0));
  EXPECT_EQ(fetcher_.Count(target(0)), 2u) << "oldest: evicted";
  EXPECT_EQ(resolver->CachedReferenceTargets(), 3u);

  ResolverOptions none = options_;
  none.reference_cache_entries = 0;
  resolver->SetOptions(none);
  EXPECT_EQ(resolver->CachedReferenceTargets(), 0u);
  RunOne(*resolver, Domain(4));
  EXPECT_EQ(fetcher_.Count(target(4)), 2u);
}

TEST_F(ReferenceSharingTest, ACachedTargetOverAJobsBodyLimitIsFetchedAgain) {
  Delegate("a.example");
  Delegate("b.example");
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  auto resolver = MakeResolver();
  RunOne(*resolver, "a.example");
  ResolverOptions small = options_;
  small.max_body = 20;  // below the cached target's size (the ScriptedFetcher does not enforce it)
  resolver->SetOptions(small);
  fetcher_.On(kTarget, Fail(fetch::FetchError{FetchErrorKind::kTooLarge, "too large"}));
  Resolution b = RunOne(*resolver, "b.example");
  EXPECT_EQ(fetcher_.Count(kTarget), 2u);
  EXPECT_EQ(b.error_kind, ErrorKind::kLimit);
}

TEST_F(ReferenceSharingTest, ANewResolverStartsWithAnEmptyCache) {
  Delegate("a.example");
  fetcher_.OnStatus(kTarget, 200, Fingerprints());
  RunOne(*MakeResolver(), "a.example");
  RunOne(*MakeResolver(), "a.example");
  EXPECT_EQ(fetcher_.Count(kTarget), 2u);
}

// ---- ReferenceTargetCache ----

std::shared_ptr<const ReferenceTarget> TargetUntil(int64_t expires_at_ms) {
  auto t = std::make_shared<ReferenceTarget>();
  t->document = std::make_shared<const core::Document>(core::FingerprintsDocument{{}, 60});
  t->expires_at_ms = expires_at_ms;
  return t;
}

TEST(ReferenceTargetCacheTest, LeastRecentlyUsedIsEvictedAndExpiredEntriesDropped) {
  ReferenceTargetCache cache(2);
  cache.Insert("a", TargetUntil(1000));
  cache.Insert("b", TargetUntil(1000));
  ASSERT_NE(cache.Find("a", 0), nullptr);  // a is now the most recent
  cache.Insert("c", TargetUntil(1000));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Find("b", 0), nullptr);
  EXPECT_NE(cache.Find("a", 0), nullptr);
  EXPECT_NE(cache.Find("c", 999), nullptr);
  EXPECT_EQ(cache.Find("c", 1000), nullptr);
  EXPECT_EQ(cache.size(), 1u);
  cache.Insert("a", TargetUntil(5000));  // replaces
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.Find("a", 4000), nullptr);
  cache.SetCapacity(0);
  EXPECT_EQ(cache.size(), 0u);
  cache.Insert("d", TargetUntil(1000));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(ReferenceTargetCacheTest, LifetimeIsTheTargetsExpiresCappedAndBoundedByJwkCertificates) {
  const int64_t t0 = 1'700'000'000'000;
  const int64_t day = 24 * 3600 * 1000LL;
  core::Document fp = core::FingerprintsDocument{{}, 600};
  EXPECT_EQ(ReferenceTargetExpiry(fp, t0, day), t0 + 600'000);
  EXPECT_EQ(ReferenceTargetExpiry(fp, t0, 60'000), t0 + 60'000);
  core::Document huge = core::FingerprintsDocument{{}, INT64_MAX / 2};
  EXPECT_EQ(ReferenceTargetExpiry(huge, t0, day), t0 + day);

  core::JwkSet set;
  core::JwkKey key;
  key.usable = true;
  key.cert.emplace();
  key.cert->not_after = t0 / 1000 + 30;
  set.keys.push_back(key);
  core::JwkKey unusable = key;
  unusable.usable = false;
  unusable.cert->not_after = t0 / 1000 - 5;
  set.keys.push_back(unusable);
  core::Document jwk = set;
  EXPECT_EQ(ReferenceTargetExpiry(jwk, t0, day), (t0 / 1000 + 31) * 1000)
      << "never past a usable key's certificate";
  set.expires = 10;
  jwk = set;
  EXPECT_EQ(ReferenceTargetExpiry(jwk, t0, day), t0 + 10'000);

  core::Document ref = core::ReferenceDocument{"https://x.example/", 60};
  EXPECT_LE(ReferenceTargetExpiry(ref, t0, day), t0);
}

}  // namespace
}  // namespace posh::resolve
