// The retrieval state machine over a ScriptedFetcher: R3 URLs, R5 statuses, R6 redirects,
// R7 limits, R11 references, fetch error mapping.
#include "resolve/resolver.h"

#include <gtest/gtest.h>

#include <optional>

#include "core/base64.h"
#include "core/publish.h"
#include "support/fake_clock.h"
#include "support/scripted_fetcher.h"
#include "support/test_certs.h"

namespace posh::resolve {
namespace {

using fetch::FetchErrorKind;
using posh::testing::ScriptedFetcher;
using Status = Resolution::Status;

constexpr char kRfc[] = "https://example.com/.well-known/posh/xmpp-server.json";
constexpr char kDraft[] = "https://example.com/.well-known/posh._xmpp-server._tcp.json";

std::string Fingerprints(int64_t expires = 3600, uint8_t fill = 0x11) {
  std::vector<uint8_t> digest(32, fill);
  return R"({"fingerprints":[{"sha-256":")" + core::EncodeBase64(digest) + R"("}],"expires":)" +
         std::to_string(expires) + "}";
}

// A JWK Set whose one key's certificate is valid from a year before `not_after_s` until it.
std::string JwkDocument(int64_t not_after_s) {
  auto cert = testing::MakeCert(testing::EcKey(), not_after_s - 365 * 86400, not_after_s);
  auto doc = core::PublishJwkSet({cert}, 3600);
  EXPECT_TRUE(doc.ok());
  return doc.ok() ? *doc : std::string();
}

std::string Reference(const std::string& url, int64_t expires = 100) {
  return R"({"url":")" + url + R"(","expires":)" + std::to_string(expires) + "}";
}

class ResolverTest : public ::testing::Test {
 protected:
  ResolverTest() : clock_(1'700'000'000'000) {}

  Resolution Run(const std::string& domain = "example.com",
                 const std::string& service = "xmpp-server") {
    Resolver resolver(fetcher_, clock_, options_);
    std::optional<Resolution> out;
    resolver.Resolve(domain, service, [&](Resolution r) { out.emplace(std::move(r)); });
    EXPECT_FALSE(out.has_value()) << "callback must never run inside Resolve()";
    EXPECT_EQ(resolver.InFlight(), 1u);
    fetcher_.Drain();
    EXPECT_EQ(resolver.InFlight(), 0u);
    EXPECT_TRUE(out.has_value()) << "callback not invoked";
    return out.value_or(Resolution{});
  }

  // A chain of `n` redirects starting at kRfc and ending at a 200.
  void RedirectChain(int n) {
    std::string from = kRfc;
    for (int i = 1; i <= n; ++i) {
      std::string to = "https://hop" + std::to_string(i) + ".example/posh.json";
      fetcher_.OnRedirect(from, to);
      from = to;
    }
    fetcher_.OnStatus(from, 200, Fingerprints());
  }

  FakeClock clock_;
  ScriptedFetcher fetcher_{&clock_};
  ResolverOptions options_;
};

// ---- R3 URLs ----

TEST_F(ResolverTest, R3Rfc7711UrlIsTriedFirst) {
  fetcher_.OnStatus(kRfc, 200, Fingerprints());
  fetcher_.OnStatus(kDraft, 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(fetcher_.Urls(), std::vector<std::string>{kRfc});
  EXPECT_EQ(r.requests, 1u);
  EXPECT_EQ(r.record.format, core::Format::kRfc7711);
  EXPECT_EQ(r.record.source_url, kRfc);
  EXPECT_EQ(r.final_url, kRfc);
  EXPECT_EQ(r.record.delegated_to, "");
  EXPECT_EQ(r.record.expires_seconds, 3600);
  EXPECT_EQ(r.error_kind, ErrorKind::kNone);
}

TEST_F(ResolverTest, R3FallsBackToDraftUrlOn404) {
  fetcher_.OnStatus(kRfc, 404);
  fetcher_.OnStatus(kDraft, 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(fetcher_.Urls(), (std::vector<std::string>{kRfc, kDraft}));
  EXPECT_EQ(r.requests, 2u);
  EXPECT_EQ(r.record.source_url, kDraft);
}

TEST_F(ResolverTest, R3FallsBackToDraftUrlOn410) {
  fetcher_.OnStatus(kRfc, 410);
  fetcher_.OnStatus(kDraft, 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.requests, 2u);
}

TEST_F(ResolverTest, R3BothMissingIsNotFound) {
  fetcher_.OnStatus(kRfc, 404);
  fetcher_.OnStatus(kDraft, 410);
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kNotFound);
  EXPECT_EQ(r.requests, 2u);
  EXPECT_FALSE(r.transient);
}

TEST_F(ResolverTest, R3NoFallbackOnOtherErrors) {
  fetcher_.OnStatus(kRfc, 500);
  fetcher_.OnStatus(kDraft, 200, Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(fetcher_.Urls(), std::vector<std::string>{kRfc});
  fetcher_.requests.clear();
  fetcher_.OnError(kRfc, FetchErrorKind::kTimeout, "timeout: slow");
  Resolution t = Run();
  EXPECT_EQ(t.status, Status::kError);
  EXPECT_EQ(fetcher_.Urls(), std::vector<std::string>{kRfc});
}

TEST_F(ResolverTest, R3TemplatesAreConfigurable) {
  options_.url_templates = {"https://{domain}/.well-known/posh._{service}._tcp.json",
                            "https://{domain}/.well-known/posh/{service}.json"};
  fetcher_.OnStatus(kDraft, 404);
  fetcher_.OnStatus(kRfc, 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(fetcher_.Urls(), (std::vector<std::string>{kDraft, kRfc}));
}

TEST_F(ResolverTest, R3ServiceIsSubstituted) {
  fetcher_.OnStatus("https://example.com/.well-known/posh/xmpp-client.json", 404);
  fetcher_.OnStatus("https://example.com/.well-known/posh._xmpp-client._tcp.json", 404);
  Resolution r = Run("example.com", "xmpp-client");
  EXPECT_EQ(r.status, Status::kNotFound);
  EXPECT_EQ(fetcher_.Urls(), (std::vector<std::string>{
                                 "https://example.com/.well-known/posh/xmpp-client.json",
                                 "https://example.com/.well-known/posh._xmpp-client._tcp.json"}));
}

// ---- R5 status codes ----

TEST_F(ResolverTest, R5Status403IsAPermanentError) {
  fetcher_.OnStatus(kRfc, 403);
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kHttpStatus);
  EXPECT_EQ(r.error, std::string("HTTP 403 from ") + kRfc);
  EXPECT_FALSE(r.transient);
}

TEST_F(ResolverTest, R5Status500IsTransient) {
  fetcher_.OnStatus(kRfc, 500);
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kHttpStatus);
  EXPECT_EQ(r.error, std::string("HTTP 500 from ") + kRfc);
  EXPECT_TRUE(r.transient);
}

TEST_F(ResolverTest, R5Status503IsTransient) {
  fetcher_.OnStatus(kRfc, 503);
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kHttpStatus);
  EXPECT_EQ(r.error, std::string("HTTP 503 from ") + kRfc);
  EXPECT_TRUE(r.transient);
}

TEST_F(ResolverTest, R5OtherStatusesAreErrors) {
  for (long status : {201L, 204L, 304L, 400L, 418L}) {
    fetcher_.OnStatus(kRfc, status);
    Resolution r = Run();
    EXPECT_EQ(r.status, Status::kError) << status;
    EXPECT_EQ(r.error_kind, ErrorKind::kHttpStatus) << status;
    EXPECT_FALSE(r.transient) << status;
  }
}

TEST_F(ResolverTest, R5BodyOf200IsParsedAndDocumentErrorsAreNotTransient) {
  fetcher_.OnStatus(kRfc, 200, "{\"fingerprints\":[],\"expires\":10}");
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kDocument);
  EXPECT_FALSE(r.transient);
  EXPECT_EQ(r.error.rfind(std::string(kRfc) + ": ", 0), 0u) << r.error;
  fetcher_.OnStatus(kRfc, 200, "not json");
  Resolution n = Run();
  EXPECT_EQ(n.error_kind, ErrorKind::kDocument);
  fetcher_.OnStatus(kRfc, 200, Fingerprints(0));
  Resolution z = Run();
  EXPECT_EQ(z.error_kind, ErrorKind::kDocument) << "R10: expires 0 is invalid";
}

// ---- R6 redirects ----

TEST_F(ResolverTest, R6AllRedirectStatusesAreFollowed) {
  for (long status : {301L, 302L, 303L, 307L, 308L}) {
    fetcher_.OnRedirect(kRfc, "https://example.com/posh/moved.json", status);
    fetcher_.OnStatus("https://example.com/posh/moved.json", 200, Fingerprints());
    Resolution r = Run();
    ASSERT_EQ(r.status, Status::kFound) << status << ": " << r.error;
    EXPECT_EQ(r.final_url, "https://example.com/posh/moved.json");
    EXPECT_EQ(r.record.source_url, "https://example.com/posh/moved.json");
    EXPECT_EQ(r.record.delegated_to, "") << "same host: not delegated";
    EXPECT_EQ(r.requests, 2u);
  }
}

TEST_F(ResolverTest, R6CrossHostRedirectSetsTheDelegatedDomain) {
  fetcher_.OnRedirect(kRfc, "https://Hosting.Example.NET/.well-known/posh/xmpp-server.json");
  fetcher_.OnStatus("https://Hosting.Example.NET/.well-known/posh/xmpp-server.json", 200,
                    Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.record.delegated_to, "hosting.example.net");
}

TEST_F(ResolverTest, R6RedirectToHttpIsRefused) {
  fetcher_.OnRedirect(kRfc, "http://example.com/posh.json");
  fetcher_.OnStatus("http://example.com/posh.json", 200, Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect);
  EXPECT_FALSE(r.transient);
  EXPECT_EQ(r.requests, 1u);
  EXPECT_NE(r.error.find("non-https"), std::string::npos) << r.error;
  EXPECT_EQ(r.error.rfind(kRfc, 0), 0u) << r.error;
}

TEST_F(ResolverTest, R6RelativeLocationIsRefused) {
  fetcher_.OnRedirect(kRfc, "/other/posh.json");
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect);
  EXPECT_NE(r.error.find("relative"), std::string::npos) << r.error;
  fetcher_.OnRedirect(kRfc, "//other.example/posh.json");
  EXPECT_EQ(Run().error_kind, ErrorKind::kRedirect);
}

TEST_F(ResolverTest, R6RedirectWithoutLocationIsAnError) {
  fetcher_.OnStatus(kRfc, 302);
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect);
  EXPECT_NE(r.error.find("without Location"), std::string::npos) << r.error;
}

TEST_F(ResolverTest, R6RedirectLoopIsAnError) {
  fetcher_.OnRedirect(kRfc, "https://a.example/posh.json");
  fetcher_.OnRedirect("https://a.example/posh.json", "https://b.example/posh.json");
  fetcher_.OnRedirect("https://b.example/posh.json", "https://a.example/posh.json");
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect);
  EXPECT_NE(r.error.find("loop"), std::string::npos) << r.error;
  EXPECT_EQ(r.requests, 3u);
}

TEST_F(ResolverTest, R6RedirectBackToTheStartIsALoop) {
  fetcher_.OnRedirect(kRfc, kRfc);
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect);
  EXPECT_EQ(r.requests, 1u);
}

TEST_F(ResolverTest, R6TenRedirectsAreAllowed) {
  RedirectChain(10);
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.requests, 11u);
  EXPECT_EQ(r.record.delegated_to, "hop10.example");
}

TEST_F(ResolverTest, R6EleventhRedirectIsAnError) {
  RedirectChain(11);
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect);
  EXPECT_NE(r.error.find("too many redirects"), std::string::npos) << r.error;
  EXPECT_EQ(r.requests, 11u);
}

TEST_F(ResolverTest, R6RedirectBudgetIsConfigurable) {
  options_.max_redirects = 2;
  RedirectChain(3);
  EXPECT_EQ(Run().error_kind, ErrorKind::kRedirect);
  options_.max_redirects = 0;
  RedirectChain(1);
  EXPECT_EQ(Run().error_kind, ErrorKind::kRedirect);
}

TEST_F(ResolverTest, R6RedirectBudgetSpansTheWholeResolution) {
  // 6 redirects to a 404 on the RFC URL, then 5 more on the draft URL: 11 in all.
  std::string from = kRfc;
  for (int i = 1; i <= 6; ++i) {
    std::string to = "https://a" + std::to_string(i) + ".example/x/posh._xmpp-server._tcp.json";
    fetcher_.OnRedirect(from, to);
    from = to;
  }
  fetcher_.OnStatus(from, 404);
  from = kDraft;
  for (int i = 1; i <= 5; ++i) {
    std::string to = "https://b" + std::to_string(i) + ".example/x/posh._xmpp-server._tcp.json";
    fetcher_.OnRedirect(from, to);
    from = to;
  }
  fetcher_.OnStatus(from, 200, Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect) << r.error;
}

TEST_F(ResolverTest, R6DraftRedirectMustKeepTheServicePath) {
  fetcher_.OnStatus(kRfc, 404);
  fetcher_.OnRedirect(kDraft, "https://hosting.example/.well-known/posh._xmpp-client._tcp.json");
  fetcher_.OnStatus("https://hosting.example/.well-known/posh._xmpp-client._tcp.json", 200,
                    Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect);
  EXPECT_NE(r.error.find("_xmpp-server._tcp.json"), std::string::npos) << r.error;
  EXPECT_EQ(r.requests, 2u);

  fetcher_.OnRedirect(kDraft, "https://hosting.example/posh.json");
  EXPECT_EQ(Run().error_kind, ErrorKind::kRedirect);
}

TEST_F(ResolverTest, R6DraftRedirectWithTheSameServiceDelegates) {
  const std::string target = "https://hosting.example/tenants/example/posh._xmpp-server._tcp.json";
  fetcher_.OnStatus(kRfc, 404);
  fetcher_.OnRedirect(kDraft, target, 307);
  fetcher_.OnStatus(target, 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.record.delegated_to, "hosting.example");
  EXPECT_EQ(r.record.source_url, target);
  EXPECT_EQ(r.requests, 3u);
}

TEST_F(ResolverTest, R6DraftPathRuleDoesNotApplyToTheRfc7711Url) {
  fetcher_.OnRedirect(kRfc, "https://hosting.example/anything.json");
  fetcher_.OnStatus("https://hosting.example/anything.json", 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.record.delegated_to, "hosting.example");
}

TEST_F(ResolverTest, R6RedirectTo404FallsBackToTheNextTemplate) {
  fetcher_.OnRedirect(kRfc, "https://example.com/moved.json");
  fetcher_.OnStatus("https://example.com/moved.json", 404);
  fetcher_.OnStatus(kDraft, 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.requests, 3u);
}

// ---- R7 limits ----

TEST_F(ResolverTest, R7OneDeadlineAndTheBodyLimitArePassedToEveryFetch) {
  // Each answer takes 1.5 s of simulated time: every request gets what is left of the one
  // deadline of the whole resolution, not a fresh timeout of its own.
  options_.timeout = std::chrono::milliseconds(7000);
  options_.max_body = 1234;
  const auto hop = std::chrono::milliseconds(1500);
  fetcher_.OnRedirect(kRfc, "https://example.com/moved.json");
  fetcher_.OnStatus("https://example.com/moved.json", 404);
  fetcher_.OnStatus(kDraft, 200, Reference("https://delegate.example/posh.json"));
  fetcher_.OnStatus("https://delegate.example/posh.json", 200, Fingerprints());
  for (const char* url :
       {kRfc, "https://example.com/moved.json", kDraft, "https://delegate.example/posh.json"}) {
    fetcher_.Delay(url, hop);
  }
  const int64_t start = clock_.MonotonicMs();
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  ASSERT_EQ(fetcher_.requests.size(), 4u);
  for (size_t i = 0; i < fetcher_.requests.size(); ++i) {
    EXPECT_EQ(fetcher_.requests[i].time_left, std::chrono::milliseconds(7000) - i * hop)
        << fetcher_.requests[i].url;
    EXPECT_EQ(fetcher_.requests[i].max_body, 1234u) << fetcher_.requests[i].url;
  }
  EXPECT_EQ(clock_.MonotonicMs() - start, 4 * hop.count());
}

TEST_F(ResolverTest, R7DeadlineCoversTheWholeResolutionNotEachRequest) {
  // Three answers of 4 s each under a 10 s deadline: the third request is cut at the
  // deadline (2 s into it), though it alone would fit in 10 s.
  options_.timeout = std::chrono::milliseconds(10000);
  const auto hop = std::chrono::milliseconds(4000);
  fetcher_.OnRedirect(kRfc, "https://example.com/a.json");
  fetcher_.OnRedirect("https://example.com/a.json", "https://example.com/b.json");
  fetcher_.OnStatus("https://example.com/b.json", 200, Fingerprints());
  for (const char* url : {kRfc, "https://example.com/a.json", "https://example.com/b.json"}) {
    fetcher_.Delay(url, hop);
  }
  const int64_t start = clock_.MonotonicMs();
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kTimeout);
  EXPECT_TRUE(r.transient);
  EXPECT_EQ(clock_.MonotonicMs() - start, 10000) << "the answer must come at the deadline";
  ASSERT_EQ(fetcher_.requests.size(), 3u);
  EXPECT_EQ(fetcher_.requests[2].time_left, std::chrono::milliseconds(2000));
}

TEST_F(ResolverTest, R7NoRequestIsSentOnceTheDeadlineHasPassed) {
  // The primary answer arrives exactly at the deadline with a reference: the reference
  // target is not worth a request with no time left (the fetcher is asked with a budget of
  // 0 and answers timeout without sending anything).
  options_.timeout = std::chrono::milliseconds(3000);
  fetcher_.OnStatus(kRfc, 200, Reference("https://delegate.example/posh.json"));
  fetcher_.Delay(kRfc, std::chrono::milliseconds(3000));
  fetcher_.OnStatus("https://delegate.example/posh.json", 200, Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kTimeout) << r.error;
  ASSERT_EQ(fetcher_.requests.size(), 2u);
  EXPECT_LE(fetcher_.requests[1].time_left.count(), 0);
}

TEST_F(ResolverTest, R7BodyOverTheLimitIsALimitError) {
  fetcher_.OnError(kRfc, FetchErrorKind::kTooLarge, "body exceeds 65536 bytes (R7)");
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kLimit);
  EXPECT_FALSE(r.transient);
  EXPECT_EQ(r.error, std::string(kRfc) + ": body exceeds 65536 bytes (R7)");
  EXPECT_EQ(fetcher_.Urls(), std::vector<std::string>{kRfc});
}

TEST_F(ResolverTest, R7TimeoutIsTransient) {
  fetcher_.OnError(kRfc, FetchErrorKind::kTimeout, "timeout: deadline passed");
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kTimeout);
  EXPECT_TRUE(r.transient);
  EXPECT_EQ(r.error, std::string(kRfc) + ": timeout: deadline passed");
}

// ---- fetch error mapping (R4, R8) ----

TEST_F(ResolverTest, FetchErrorsMapToResolutionErrors) {
  struct Case {
    FetchErrorKind in;
    ErrorKind out;
    bool transient;
  };
  for (const Case& c : {Case{FetchErrorKind::kTimeout, ErrorKind::kTimeout, true},
                        Case{FetchErrorKind::kConnect, ErrorKind::kConnect, true},
                        Case{FetchErrorKind::kTls, ErrorKind::kTls, true},
                        Case{FetchErrorKind::kTooLarge, ErrorKind::kLimit, false},
                        Case{FetchErrorKind::kAddressRefused, ErrorKind::kAddress, false},
                        Case{FetchErrorKind::kProtocol, ErrorKind::kConnect, false},
                        Case{FetchErrorKind::kInternal, ErrorKind::kInternal, false}}) {
    fetcher_.OnError(kRfc, c.in, "detail");
    Resolution r = Run();
    EXPECT_EQ(r.status, Status::kError);
    EXPECT_EQ(r.error_kind, c.out) << static_cast<int>(c.in);
    EXPECT_EQ(r.transient, c.transient) << static_cast<int>(c.in);
    EXPECT_EQ(r.error, std::string(kRfc) + ": detail");
  }
}

TEST_F(ResolverTest, R8AddressRefusalIsReported) {
  fetcher_.OnError(kRfc, FetchErrorKind::kAddressRefused,
                   "address 10.0.0.1 is not a global address (R8)");
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kAddress);
  EXPECT_EQ(r.error, std::string(kRfc) + ": address 10.0.0.1 is not a global address (R8)");
}

// ---- R11 reference documents ----

TEST_F(ResolverTest, R11ReferenceIsFollowed) {
  fetcher_.OnStatus(kRfc, 200, Reference("https://delegate.example/posh/xmpp.json", 100));
  fetcher_.OnStatus("https://delegate.example/posh/xmpp.json", 200, Fingerprints(3600));
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(fetcher_.Urls(),
            (std::vector<std::string>{kRfc, "https://delegate.example/posh/xmpp.json"}));
  EXPECT_EQ(r.requests, 2u);
  EXPECT_EQ(r.record.delegated_to, "delegate.example");
  EXPECT_EQ(r.record.source_url, "https://delegate.example/posh/xmpp.json");
  EXPECT_EQ(r.final_url, "https://delegate.example/posh/xmpp.json");
  EXPECT_EQ(r.record.expires_seconds, 100) << "the lower of the two expires";
}

TEST_F(ResolverTest, R11LowerExpiresIsTheTargets) {
  fetcher_.OnStatus(kRfc, 200, Reference("https://delegate.example/p.json", 90000));
  fetcher_.OnStatus("https://delegate.example/p.json", 200, Fingerprints(600));
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.record.expires_seconds, 600);
}

TEST_F(ResolverTest, R11ReferenceToAReferenceIsAnError) {
  fetcher_.OnStatus(kRfc, 200, Reference("https://delegate.example/p.json"));
  fetcher_.OnStatus("https://delegate.example/p.json", 200,
                    Reference("https://third.example/p.json"));
  fetcher_.OnStatus("https://third.example/p.json", 200, Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kDocument);
  EXPECT_FALSE(r.transient);
  EXPECT_EQ(r.error,
            "https://delegate.example/p.json: reference points to another reference (R11)");
  EXPECT_EQ(r.requests, 2u);
}

TEST_F(ResolverTest, R11ReferenceToAnHttpUrlIsAnError) {
  fetcher_.OnStatus(kRfc, 200, Reference("http://delegate.example/p.json"));
  fetcher_.OnStatus("http://delegate.example/p.json", 200, Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kDocument);
  EXPECT_EQ(r.requests, 1u);
  EXPECT_EQ(r.error.rfind(std::string(kRfc) + ": ", 0), 0u) << r.error;
}

TEST_F(ResolverTest, R11ReferenceTargetMayRedirectAndTheFinalHostIsDelegated) {
  options_.url_templates = {"https://{domain}/.well-known/posh._{service}._tcp.json"};
  fetcher_.OnStatus(kDraft, 200, Reference("https://delegate.example/p.json"));
  // The draft path rule does not apply to the reference's redirects.
  fetcher_.OnRedirect("https://delegate.example/p.json", "https://cdn.example/blob/123");
  fetcher_.OnStatus("https://cdn.example/blob/123", 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.record.delegated_to, "cdn.example");
  EXPECT_EQ(r.record.source_url, "https://cdn.example/blob/123");
  EXPECT_EQ(r.requests, 3u);
}

TEST_F(ResolverTest, R11ReferenceRedirectsShareTheBudget) {
  options_.max_redirects = 2;
  fetcher_.OnRedirect(kRfc, "https://example.com/moved.json");
  fetcher_.OnStatus("https://example.com/moved.json", 200, Reference("https://d.example/1"));
  fetcher_.OnRedirect("https://d.example/1", "https://d.example/2");
  fetcher_.OnRedirect("https://d.example/2", "https://d.example/3");
  fetcher_.OnStatus("https://d.example/3", 200, Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kRedirect) << r.error;
}

TEST_F(ResolverTest, R11ReferenceTargetMissingIsAnError) {
  fetcher_.OnStatus(kRfc, 200, Reference("https://delegate.example/p.json"));
  fetcher_.OnStatus("https://delegate.example/p.json", 404);
  Resolution r = Run();
  EXPECT_EQ(r.status, Status::kError);
  EXPECT_EQ(r.error_kind, ErrorKind::kHttpStatus);
  EXPECT_EQ(r.requests, 2u) << "no fallback to the draft URL after a reference";
}

TEST_F(ResolverTest, R11ReferenceTargetFetchErrorsAreMapped) {
  fetcher_.OnStatus(kRfc, 200, Reference("https://delegate.example/p.json"));
  fetcher_.OnError("https://delegate.example/p.json", FetchErrorKind::kTls, "TLS: bad");
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kTls);
  EXPECT_TRUE(r.transient);
  EXPECT_EQ(r.error, "https://delegate.example/p.json: TLS: bad");
}

TEST_F(ResolverTest, R11ReferenceExpiresZeroIsAnError) {
  fetcher_.OnStatus(kRfc, 200, Reference("https://delegate.example/p.json", 0));
  fetcher_.OnStatus("https://delegate.example/p.json", 200, Fingerprints());
  Resolution r = Run();
  EXPECT_EQ(r.error_kind, ErrorKind::kDocument);
}

TEST_F(ResolverTest, R11ReferenceToTheSameHostIsNotADelegation) {
  fetcher_.OnStatus(kRfc, 200, Reference("https://example.com/real.json"));
  fetcher_.OnStatus("https://example.com/real.json", 200, Fingerprints());
  Resolution r = Run();
  ASSERT_EQ(r.status, Status::kFound) << r.error;
  EXPECT_EQ(r.record.delegated_to, "");
}

// ---- lifecycle ----

TEST_F(ResolverTest, CancelStopsTheFetchAndSuppressesTheCallback) {
  fetcher_.OnStatus(kRfc, 200, Fingerprints());
  Resolver resolver(fetcher_, clock_, options_);
  bool called = false;
  auto h = resolver.Resolve("example.com", "xmpp-server", [&](Resolution) { called = true; });
  resolver.Cancel(h);
  resolver.Cancel(h);
  resolver.Cancel(12345);
  EXPECT_EQ(resolver.InFlight(), 0u);
  EXPECT_EQ(fetcher_.cancelled.size(), 1u);
  fetcher_.Drain();
  EXPECT_FALSE(called);
}

TEST_F(ResolverTest, DestructionCancelsEverythingInFlight) {
  fetcher_.OnStatus(kRfc, 200, Fingerprints());
  bool called = false;
  {
    Resolver resolver(fetcher_, clock_, options_);
    resolver.Resolve("example.com", "xmpp-server", [&](Resolution) { called = true; });
    resolver.Resolve("example.org", "xmpp-server", [&](Resolution) { called = true; });
  }
  EXPECT_EQ(fetcher_.InFlight(), 0u);
  EXPECT_EQ(fetcher_.cancelled.size(), 2u);
  fetcher_.Drain();
  EXPECT_FALSE(called);
}

TEST_F(ResolverTest, ConcurrentResolutionsAreIndependent) {
  fetcher_.OnStatus(kRfc, 200, Fingerprints());
  fetcher_.OnStatus("https://example.org/.well-known/posh/xmpp-server.json", 404);
  fetcher_.OnStatus("https://example.org/.well-known/posh._xmpp-server._tcp.json", 404);
  Resolver resolver(fetcher_, clock_, options_);
  std::optional<Resolution> a, b;
  resolver.Resolve("example.com", "xmpp-server", [&](Resolution r) { a = std::move(r); });
  resolver.Resolve("example.org", "xmpp-server", [&](Resolution r) { b = std::move(r); });
  EXPECT_EQ(resolver.InFlight(), 2u);
  fetcher_.Drain();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->status, Status::kFound);
  EXPECT_EQ(a->requests, 1u);
  EXPECT_EQ(b->status, Status::kNotFound);
  EXPECT_EQ(b->requests, 2u);
}

TEST_F(ResolverTest, CallbackMayStartAnotherResolutionOrDestroyTheResolver) {
  fetcher_.OnStatus(kRfc, 200, Fingerprints());
  auto resolver = std::make_unique<Resolver>(fetcher_, clock_, options_);
  int done = 0;
  resolver->Resolve("example.com", "xmpp-server", [&](Resolution) {
    ++done;
    resolver->Resolve("example.com", "xmpp-server", [&](Resolution) {
      ++done;
      resolver.reset();
    });
  });
  fetcher_.Drain();
  EXPECT_EQ(done, 2);
  EXPECT_EQ(resolver, nullptr);
}

TEST_F(ResolverTest, SetOptionsAppliesToLaterResolutions) {
  Resolver resolver(fetcher_, clock_, options_);
  ResolverOptions o;
  o.url_templates = {"https://{domain}/custom/{service}"};
  resolver.SetOptions(o);
  fetcher_.OnStatus("https://example.com/custom/xmpp-server", 404);
  std::optional<Resolution> out;
  resolver.Resolve("example.com", "xmpp-server", [&](Resolution r) { out = std::move(r); });
  fetcher_.Drain();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, Status::kNotFound);
  EXPECT_EQ(fetcher_.Urls(), std::vector<std::string>{"https://example.com/custom/xmpp-server"});
}

TEST_F(ResolverTest, DocumentsAreJudgedAtTheInjectedTime) {
  // A JWK document is judged by its certificate's validity at the injected wall-clock
  // time, not the machine's: the same bytes are usable at one injected time and not at
  // another (R13/R14: a document whose only key is expired cannot prove anything).
  const int64_t not_after_s = 1'800'000'000;  // 2027-01-15
  const std::string doc = JwkDocument(not_after_s);
  fetcher_.OnStatus(kRfc, 200, doc);
  clock_.Set((not_after_s - 3600) * 1000);
  Resolution before = Run();
  ASSERT_EQ(before.status, Status::kFound) << before.error;
  clock_.Set((not_after_s + 3600) * 1000);
  Resolution after = Run();
  EXPECT_EQ(after.status, Status::kError) << "a document judged at the machine's time";
  EXPECT_EQ(after.error_kind, ErrorKind::kDocument);
}

}  // namespace
}  // namespace posh::resolve
