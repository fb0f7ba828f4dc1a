// The protocol against a hostile origin: redirects, delegation, documents, limits, TLS,
// status codes, names (RULES.md R1–R12).
#include <string>

#include "harness.h"

namespace posh_it {
namespace {

using namespace std::chrono_literals;

class Protocol : public PoshTest {
 protected:
  std::string JwkSet(const std::vector<std::string>& keys) {
    std::string s = "{\"keys\":[";
    for (size_t i = 0; i < keys.size(); ++i) s += (i ? "," : "") + keys[i];
    return s + "]}";
  }
  std::string Reference(const std::string& url, const std::string& expires = "3600") {
    return "{\"url\":" + JsonEscape(url) + ",\"expires\":" + expires + "}";
  }
  // Expects an `error` answer, and that it came within `limit` seconds.
  void ExpectErrorWithin(const std::string& domain, double limit) {
    auto t0 = Clock::now();
    CtlResult r = Lookup(domain);
    double took = SecondsSince(t0);
    POSH_EXPECT_STATUS(r, "error", 2);
    EXPECT_LT(took, limit) << "took " << took << " s";
  }
  long long ExpiresAt(const CtlResult& r) {
    auto s = r.json.Str("expires_at");
    if (!s) return 0;
    return ParseRfc3339(*s).value_or(0);
  }
};

// ---------------------------------------------------------------------------------------------
// R6 redirects

TEST_F(Protocol, R6_RedirectToHttpIsError) {
  origin_.Set("r.example.test", kRfcPath, Route::Redirect("http://r.example.test/doc.json"));
  origin_.Set("r.example.test", "/doc.json", Route::Json(FingerprintsDoc("xmpp")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("r.example.test"), "error", 2);
  EXPECT_EQ(origin_.Count("r.example.test", "/doc.json"), 0);
  EXPECT_EQ(origin_.CountPort(origin_.http_port()), 0) << "the http: redirect was followed";
}

TEST_F(Protocol, R6_RedirectWithoutLocationIsError) {
  Route r = Route::Status(302);
  origin_.Set("r.example.test", kRfcPath, r);
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("r.example.test"), "error", 2);
}

TEST_F(Protocol, R6_RelativeLocationIsError) {
  origin_.Set("r.example.test", kRfcPath, Route::Redirect("/doc.json"));
  origin_.Set("r.example.test", "/doc.json", Route::Json(FingerprintsDoc("xmpp")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("r.example.test"), "error", 2);
}

TEST_F(Protocol, R6_RedirectLoopIsError) {
  origin_.Set("loop.example.test", kRfcPath, Route::Redirect("https://loop.example.test/a"));
  origin_.Set("loop.example.test", "/a", Route::Redirect("https://loop.example.test/b"));
  origin_.Set("loop.example.test", "/b", Route::Redirect("https://loop.example.test/a"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectErrorWithin("loop.example.test", 6);
  EXPECT_LE(origin_.CountHost("loop.example.test"), 12) << "the loop was followed too long";
}

// N redirect answers: the RFC 7711 URL -> /hop1 -> ... -> /hop(N-1) -> /final (a document).
// Cycles through every redirect status (R5).
static void ChainOfRedirects(Origin& o, const std::string& host, int n, const std::string& doc) {
  const int codes[] = {301, 302, 303, 307, 308};
  for (int i = 0; i < n; ++i) {
    std::string from = i == 0 ? kRfcPath : "/hop" + std::to_string(i);
    std::string to = i == n - 1 ? "/final" : "/hop" + std::to_string(i + 1);
    o.Set(host, from, Route::Redirect("https://" + host + to, codes[i % 5]));
  }
  o.Set(host, "/final", Route::Json(doc));
}

TEST_F(Protocol, R6_TenRedirectsIsOk) {
  ChainOfRedirects(origin_, "ten.example.test", 10, FingerprintsDoc("xmpp"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("ten.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_TRUE(r.json.IsNull("delegated_to")) << "same-host redirects are no delegation";
  EXPECT_EQ(origin_.Count("ten.example.test", "/final"), 1);
}

TEST_F(Protocol, R6_ElevenRedirectsIsError) {
  ChainOfRedirects(origin_, "eleven.example.test", 11, FingerprintsDoc("xmpp"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("eleven.example.test"), "error", 2);
  EXPECT_EQ(origin_.Count("eleven.example.test", "/final"), 0) << "the 11th redirect was followed";
}

TEST_F(Protocol, R6_Rfc7711RedirectToOtherHostDelegates) {
  origin_.Set("src.example.test", kRfcPath,
              Route::Redirect("https://hosting.example.net/posh/src.json", 307));
  origin_.Set("hosting.example.net", "/posh/src.json", Route::Json(FingerprintsDoc("hosting")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("src.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("domain"), "src.example.test");
  EXPECT_EQ(r.json.Str("delegated_to"), "hosting.example.net");
}

TEST_F(Protocol, R6_DraftRedirectToOtherHostDelegates) {
  origin_.Set("src.example.test", kRfcPath, Route::Status(404));
  origin_.Set("src.example.test", kDraftPath,
              Route::Redirect(std::string("https://hosting.example.net") + kDraftPath, 301));
  origin_.Set("hosting.example.net", kDraftPath,
              Route::Json(JwkSet({origin_.Cert("hosting").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("src.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("format"), "jwk");
  EXPECT_EQ(r.json.Str("delegated_to"), "hosting.example.net");
}

TEST_F(Protocol, R6_DraftRedirectToOtherServicePathIsError) {
  origin_.Set("src.example.test", kRfcPath, Route::Status(404));
  origin_.Set(
      "src.example.test", kDraftPath,
      Route::Redirect("https://hosting.example.net/.well-known/posh._xmpp-client._tcp.json"));
  origin_.Set("hosting.example.net", "/.well-known/posh._xmpp-client._tcp.json",
              Route::Json(JwkSet({origin_.Cert("hosting").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("src.example.test"), "error", 2);
}

TEST_F(Protocol, R6_DraftRedirectToNonServicePathIsError) {
  origin_.Set("src.example.test", kRfcPath, Route::Status(404));
  origin_.Set("src.example.test", kDraftPath,
              Route::Redirect("https://hosting.example.net/keys.json"));
  origin_.Set("hosting.example.net", "/keys.json",
              Route::Json(JwkSet({origin_.Cert("hosting").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("src.example.test"), "error", 2);
}

TEST_F(Protocol, R6_DraftRedirectToCustomPathWithServiceSuffixIsOk) {
  origin_.Set("src.example.test", kRfcPath, Route::Status(404));
  origin_.Set(
      "src.example.test", kDraftPath,
      Route::Redirect("https://hosting.example.net/tenants/src/posh._xmpp-server._tcp.json"));
  origin_.Set("hosting.example.net", "/tenants/src/posh._xmpp-server._tcp.json",
              Route::Json(JwkSet({origin_.Cert("hosting").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("src.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("delegated_to"), "hosting.example.net");
}

// ---------------------------------------------------------------------------------------------
// R3 URLs and fallback

TEST_F(Protocol, R3_R12_FallbackToDraftJwkSet) {
  origin_.Set("draft.example.test", kRfcPath, Route::Status(404));
  origin_.Set("draft.example.test", kDraftPath,
              Route::Json(JwkSet({origin_.Cert("xmpp").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  long long now = UnixNow();
  CtlResult r = Lookup("draft.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("format"), "jwk");
  EXPECT_TRUE(r.json.IsNull("delegated_to"));
  auto keys = r.json.Arr("keys");
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->size(), 1u);
  // R16: lifetime bounded by the certificate's notAfter (and max TTL, 24 h by default).
  long long exp = ExpiresAt(r);
  EXPECT_GT(exp, now);
  EXPECT_LE(exp, std::min(origin_.Cert("xmpp").not_after_unix, now + 86400 + 30));
  EXPECT_EQ(origin_.Count("draft.example.test", kRfcPath), 1);
  EXPECT_EQ(origin_.Count("draft.example.test", kDraftPath), 1);
}

TEST_F(Protocol, R3_Status410FallsBackToDraft) {
  origin_.Set("gone.example.test", kRfcPath, Route::Status(410));
  origin_.Set("gone.example.test", kDraftPath, Route::Json(JwkSet({origin_.Cert("xmpp").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("gone.example.test"), "found", 0);
}

TEST_F(Protocol, R3_Both410IsNotFound) {
  origin_.Set("gone.example.test", kRfcPath, Route::Status(410));
  origin_.Set("gone.example.test", kDraftPath, Route::Status(410));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("gone.example.test"), "not_found", 1);
}

TEST_F(Protocol, R3_Rfc7711ErrorDoesNotFallBack) {
  origin_.Set("e.example.test", kRfcPath, Route::Status(503));
  origin_.Set("e.example.test", kDraftPath, Route::Json(JwkSet({origin_.Cert("xmpp").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("e.example.test"), "error", 2);
  EXPECT_EQ(origin_.Count("e.example.test", kDraftPath), 0);
}

TEST_F(Protocol, R3_Rfc7711DocumentWinsOverDraft) {
  ServeFingerprints("both.example.test", "xmpp");
  origin_.Set("both.example.test", kDraftPath,
              Route::Json(JwkSet({origin_.Cert("other").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("both.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("format"), "rfc7711");
  EXPECT_EQ(origin_.Count("both.example.test", kDraftPath), 0);
}

// ---------------------------------------------------------------------------------------------
// R11 reference documents

TEST_F(Protocol, R11_ReferenceToOtherHostReferenceExpiresLower) {
  origin_.Set("ref.example.test", kRfcPath,
              Route::Json(Reference("https://hosting.example.net/posh/ref.json", "600")));
  origin_.Set("hosting.example.net", "/posh/ref.json",
              Route::Json(FingerprintsDoc("hosting", 7200)));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  long long now = UnixNow();
  CtlResult r = Lookup("ref.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("domain"), "ref.example.test");
  EXPECT_EQ(r.json.Str("delegated_to"), "hosting.example.net");
  EXPECT_EQ(r.json.Str("format"), "rfc7711");
  EXPECT_NEAR(static_cast<double>(ExpiresAt(r)), static_cast<double>(now + 600), 30.0);
  EXPECT_EQ(origin_.Count("hosting.example.net", "/posh/ref.json"), 1);
}

TEST_F(Protocol, R11_ReferenceToOtherHostTargetExpiresLower) {
  origin_.Set("ref.example.test", kRfcPath,
              Route::Json(Reference("https://hosting.example.net/posh/ref.json", "7200")));
  origin_.Set("hosting.example.net", "/posh/ref.json",
              Route::Json(FingerprintsDoc("hosting", 300)));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  long long now = UnixNow();
  CtlResult r = Lookup("ref.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("delegated_to"), "hosting.example.net");
  EXPECT_NEAR(static_cast<double>(ExpiresAt(r)), static_cast<double>(now + 300), 30.0);
}

TEST_F(Protocol, R11_ReferenceToJwkSet) {
  origin_.Set("ref.example.test", kRfcPath,
              Route::Json(Reference("https://hosting.example.net/posh/keys.json", "600")));
  origin_.Set("hosting.example.net", "/posh/keys.json",
              Route::Json(JwkSet({origin_.Cert("hosting").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  long long now = UnixNow();
  CtlResult r = Lookup("ref.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("format"), "jwk");
  EXPECT_EQ(r.json.Str("delegated_to"), "hosting.example.net");
  EXPECT_LE(ExpiresAt(r), now + 600 + 30);
}

TEST_F(Protocol, R11_ReferenceToReferenceIsError) {
  origin_.Set("ref.example.test", kRfcPath,
              Route::Json(Reference("https://hosting.example.net/posh/a.json")));
  origin_.Set("hosting.example.net", "/posh/a.json",
              Route::Json(Reference("https://hosting.example.org/posh/b.json")));
  origin_.Set("hosting.example.org", "/posh/b.json", Route::Json(FingerprintsDoc("hosting")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("ref.example.test"), "error", 2);
  EXPECT_EQ(origin_.Count("hosting.example.org", "/posh/b.json"), 0);
}

TEST_F(Protocol, R11_ReferenceToHttpIsError) {
  origin_.Set("ref.example.test", kRfcPath,
              Route::Json(Reference("http://hosting.example.net/posh/a.json")));
  origin_.Set("hosting.example.net", "/posh/a.json", Route::Json(FingerprintsDoc("hosting")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("ref.example.test"), "error", 2);
  EXPECT_EQ(origin_.Count("hosting.example.net", "/posh/a.json"), 0);
  EXPECT_EQ(origin_.CountPort(origin_.http_port()), 0) << "the http: reference was followed";
}

TEST_F(Protocol, R11_ReferenceRelativeUrlIsError) {
  origin_.Set("ref.example.test", kRfcPath, Route::Json(Reference("/posh/a.json")));
  origin_.Set("ref.example.test", "/posh/a.json", Route::Json(FingerprintsDoc("xmpp")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("ref.example.test"), "error", 2);
}

TEST_F(Protocol, R11_ReferenceExpiresZeroIsError) {
  origin_.Set("ref.example.test", kRfcPath,
              Route::Json(Reference("https://hosting.example.net/posh/a.json", "0")));
  origin_.Set("hosting.example.net", "/posh/a.json", Route::Json(FingerprintsDoc("hosting")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("ref.example.test"), "error", 2);
}

TEST_F(Protocol, R11_ReferenceTargetNotFoundIsError) {
  origin_.Set("ref.example.test", kRfcPath,
              Route::Json(Reference("https://hosting.example.net/posh/missing.json")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("ref.example.test"), "error", 2);
}

// ---------------------------------------------------------------------------------------------
// R10 expires

struct ExpiresCase {
  const char* name;
  const char* member;  // the text after "fingerprints":[...] (nullptr: no expires)
};

class ProtocolExpires : public Protocol, public ::testing::WithParamInterface<ExpiresCase> {};

TEST_P(ProtocolExpires, R10_BadExpiresIsError) {
  std::string fp = origin_.Cert("xmpp").hash.at("sha-256");
  std::string doc = "{\"fingerprints\":[{\"sha-256\":" + JsonEscape(fp) + "}]";
  if (GetParam().member) doc += std::string(",\"expires\":") + GetParam().member;
  doc += "}";
  origin_.Set("exp.example.test", kRfcPath, Route::Json(doc));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("exp.example.test"), "error", 2);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ProtocolExpires,
    ::testing::Values(ExpiresCase{"Zero", "0"}, ExpiresCase{"Missing", nullptr},
                      ExpiresCase{"Negative", "-5"}, ExpiresCase{"Fractional", "3600.5"},
                      ExpiresCase{"String", "\"3600\""}, ExpiresCase{"Null", "null"},
                      ExpiresCase{"Bool", "true"}),
    [](const auto& i) { return std::string(i.param.name); });

// ---------------------------------------------------------------------------------------------
// R9 / R10 document shapes

struct DocCase {
  const char* name;
  std::string body;  // raw bytes; "@FP" is replaced by xmpp's sha-256
};

class ProtocolBadDocument : public Protocol, public ::testing::WithParamInterface<DocCase> {};

TEST_P(ProtocolBadDocument, R9_R10_IsError) {
  std::string body = GetParam().body;
  std::string fp = origin_.Cert("xmpp").hash.at("sha-256");
  for (size_t p; (p = body.find("@FP")) != std::string::npos;) body.replace(p, 3, fp);
  origin_.Set("doc.example.test", kRfcPath, Route::Bytes(body));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("doc.example.test"), "error", 2);
}

static std::string Nested(int depth) {
  return "{\"fingerprints\":" + std::string(depth, '[') + std::string(depth, ']') +
         ",\"expires\":3600}";
}

// base64 of a 31-byte value: the wrong length for sha-256.
static const std::string kShort = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==";

INSTANTIATE_TEST_SUITE_P(
    Cases, ProtocolBadDocument,
    ::testing::Values(
        DocCase{
            "FingerprintsAndUrl",
            R"({"fingerprints":[{"sha-256":"@FP"}],"url":"https://hosting.example.net/x.json","expires":3600})"},
        DocCase{"JsonArray", R"([{"fingerprints":[{"sha-256":"@FP"}],"expires":3600}])"},
        DocCase{"JsonString", R"("fingerprints")"}, DocCase{"JsonNumber", "42"},
        DocCase{"NoKnownMember", R"({"expires":3600,"comment":"nothing"})"},
        DocCase{"EmptyBody", ""},
        DocCase{"Truncated", R"({"fingerprints":[{"sha-256":"@FP"}],"expi)"},
        DocCase{"TrailingGarbage", R"({"fingerprints":[{"sha-256":"@FP"}],"expires":3600} x)"},
        DocCase{"InvalidUtf8",
                "{\"fingerprints\":[{\"sha-256\":\"@FP\"}],\"expires\":3600,\"note\":"
                "\"\xff\xfe\xc0\xaf\"}"},
        DocCase{"DeeplyNested", Nested(30000)},
        DocCase{"EmptyFingerprints", R"({"fingerprints":[],"expires":3600})"},
        DocCase{"FingerprintsNotArray", R"({"fingerprints":{"sha-256":"@FP"},"expires":3600})"},
        DocCase{"DescriptorNotObject", R"({"fingerprints":["@FP"],"expires":3600})"},
        DocCase{"WrongDigestLength",
                R"({"fingerprints":[{"sha-256":")" + kShort + R"("}],"expires":3600})"},
        DocCase{"DigestNotBase64",
                R"({"fingerprints":[{"sha-256":"!!not base64!!"}],"expires":3600})"},
        DocCase{"OnlySha1",
                R"({"fingerprints":[{"sha-1":"2jmj7l5rSw0yVb/vlWAYkK/YBwk="}],"expires":3600})"},
        DocCase{"OnlyUnknownHash", R"({"fingerprints":[{"blake3":"@FP"}],"expires":3600})"},
        DocCase{"EmptyKeys", R"({"keys":[]})"}, DocCase{"KeysNotArray", R"({"keys":{}})"}),
    [](const auto& i) { return std::string(i.param.name); });

TEST_F(Protocol, R10_UnknownHashNamesIgnored) {
  std::string fp = origin_.Cert("xmpp").hash.at("sha-256");
  origin_.Set(
      "doc.example.test", kRfcPath,
      Route::Json(
          R"({"fingerprints":[{"sha-256":")" + fp +
          R"(","blake3":"AAAA"},{"whirlpool":"AAAA"}],"expires":3600,"extra":{"a":[1,2]}})"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("doc.example.test"), "found", 0);
}

TEST_F(Protocol, R10_UnpaddedBase64Accepted) {
  std::string fp = origin_.Cert("xmpp").hash.at("sha-256");
  fp = fp.substr(0, fp.find('='));
  origin_.Set("doc.example.test", kRfcPath,
              Route::Json(R"({"fingerprints":[{"sha-256":")" + fp + R"("}],"expires":3600})"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("doc.example.test"), "found", 0);
}

TEST_F(Protocol, R10_AllHashNamesFound) {
  const CertInfo& c = origin_.Cert("xmpp");
  std::string d = "{\"fingerprints\":[";
  const char* names[] = {"sha-224", "sha-256", "sha-384", "sha-512"};
  for (int i = 0; i < 4; ++i)
    d += std::string(i ? "," : "") + "{" + JsonEscape(names[i]) + ":" +
         JsonEscape(c.hash.at(names[i])) + "}";
  d += "],\"expires\":3600}";
  origin_.Set("doc.example.test", kRfcPath, Route::Json(d));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("doc.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  auto keys = r.json.Arr("keys");
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->size(), 4u);
}

TEST_F(Protocol, R10_OneUsableDescriptorAmongBadOnesFound) {
  std::string fp = origin_.Cert("xmpp").hash.at("sha-256");
  origin_.Set("doc.example.test", kRfcPath,
              Route::Json(R"({"fingerprints":[{"sha-256":")" + kShort + R"("},{"sha-256":")" + fp +
                          R"("}],"expires":3600})"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("doc.example.test"), "found", 0);
}

// ---------------------------------------------------------------------------------------------
// R7 limits

TEST_F(Protocol, R7_FiveMegabyteBodyIsErrorAndDroppedAtLimit) {
  Route r;
  r.body_size = 5 * 1024 * 1024;
  r.trickle = 1024 * 1024;  // all of it would take 5 s; the limit is hit in the first 0.1 s
  origin_.Set("big.example.test", kRfcPath, r);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 4));
  ExpectErrorWithin("big.example.test", 2.5);
}

TEST_F(Protocol, R7_FiveMegabyteBodyWithoutContentLengthIsError) {
  Route r;
  r.body_size = 5 * 1024 * 1024;
  r.trickle = 1024 * 1024;
  r.no_content_length = true;
  origin_.Set("big.example.test", kRfcPath, r);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 4));
  ExpectErrorWithin("big.example.test", 2.5);
}

TEST_F(Protocol, R7_FiveMegabyteBodyFastIsError) {
  Route r;
  r.body_size = 5 * 1024 * 1024;
  origin_.Set("big.example.test", kRfcPath, r);
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectErrorWithin("big.example.test", 3);
}

static std::string PaddedDoc(const std::string& fp, size_t size) {
  std::string head = R"({"fingerprints":[{"sha-256":")" + fp + R"("}],"expires":3600,"pad":")";
  std::string tail = "\"}";
  return head + std::string(size - head.size() - tail.size(), 'p') + tail;
}

TEST_F(Protocol, R7_BodyOver64KiBIsError) {
  origin_.Set("pad.example.test", kRfcPath,
              Route::Json(PaddedDoc(origin_.Cert("xmpp").hash.at("sha-256"), 65536 + 1)));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("pad.example.test"), "error", 2);
}

TEST_F(Protocol, R7_BodyOf64KiBIsOk) {
  origin_.Set("pad.example.test", kRfcPath,
              Route::Json(PaddedDoc(origin_.Cert("xmpp").hash.at("sha-256"), 65536)));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("pad.example.test"), "found", 0);
}

TEST_F(Protocol, R7_MaxBodyFlagRaisesLimit) {
  origin_.Set("pad.example.test", kRfcPath,
              Route::Json(PaddedDoc(origin_.Cert("xmpp").hash.at("sha-256"), 100000)));
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--max-body", "200000"}));
  POSH_EXPECT_STATUS(Lookup("pad.example.test"), "found", 0);
}

TEST_F(Protocol, R7_MaxBodyFlagLowersLimit) {
  ServeFingerprints("small.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--max-body", "20"}));
  POSH_EXPECT_STATUS(Lookup("small.example.test"), "error", 2);
}

TEST_F(Protocol, R7_TrickleOneBytePerSecondTimesOut) {
  Route r = Route::Json(FingerprintsDoc("xmpp"));
  r.trickle = 1;
  origin_.Set("trickle.example.test", kRfcPath, r);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 2));
  ExpectErrorWithin("trickle.example.test", 2 + 3);
}

TEST_F(Protocol, R7_HangingRouteTimesOut) {
  Route r;
  r.hang = true;
  origin_.Set("hang.example.test", kRfcPath, r);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 2));
  ExpectErrorWithin("hang.example.test", 2 + 3);
}

TEST_F(Protocol, R7_SlowHeadersTimeOut) {
  Route r = Route::Json(FingerprintsDoc("xmpp"));
  r.delay_before_headers = 10;
  origin_.Set("slow.example.test", kRfcPath, r);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 2));
  ExpectErrorWithin("slow.example.test", 2 + 3);
}

TEST_F(Protocol, R7_TimeoutCoversWholeRetrieval) {
  // Each step is faster than the timeout; together they are not.
  Route a = Route::Redirect("https://chain.example.test/b");
  a.delay_before_headers = 1.2;
  Route b = Route::Redirect("https://chain.example.test/c");
  b.delay_before_headers = 1.2;
  Route c = Route::Json(FingerprintsDoc("xmpp"));
  c.delay_before_headers = 1.2;
  origin_.Set("chain.example.test", kRfcPath, a);
  origin_.Set("chain.example.test", "/b", b);
  origin_.Set("chain.example.test", "/c", c);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({}, 3));
  ExpectErrorWithin("chain.example.test", 3 + 2.5);
}

TEST_F(Protocol, R7_CloseMidBodyIsError) {
  Route r = Route::Json(PaddedDoc(origin_.Cert("xmpp").hash.at("sha-256"), 2000));
  r.close_mid_body = true;
  origin_.Set("mid.example.test", kRfcPath, r);
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectErrorWithin("mid.example.test", 4);
}

// ---------------------------------------------------------------------------------------------
// R4 TLS

TEST_F(Protocol, R4_ExpiredServerCertIsError) {
  ServeFingerprints("expired.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("expired.example.test"), "error", 2);
  EXPECT_EQ(origin_.CountHost("expired.example.test"), 0);
}

TEST_F(Protocol, R4_SelfSignedServerCertIsError) {
  ServeFingerprints("selfsigned.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("selfsigned.example.test"), "error", 2);
  EXPECT_EQ(origin_.CountHost("selfsigned.example.test"), 0);
}

TEST_F(Protocol, R4_ResetDuringHandshakeIsError) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectErrorWithin("reset.example.test", 4);
  EXPECT_GE(origin_.CountPort(origin_.reset_port()), 1);
}

TEST_F(Protocol, R4_OtherCaFileIsError) {
  // Without --ca-file the system store is used, which does not hold the test CA.
  // Every other test needs --ca-file; here a CA file that does not hold the test CA must make
  // the retrieval fail.
  ServeFingerprints("found.example.test", "xmpp");
  CertInfo stranger = origin_.MakeCert("stranger.example.test", "stranger", {"--self-signed"});
  daemon_.ca_file = stranger.pem;
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("found.example.test"), "error", 2);
}

// ---------------------------------------------------------------------------------------------
// R5 statuses

class ProtocolStatus : public Protocol, public ::testing::WithParamInterface<int> {};

TEST_P(ProtocolStatus, R5_StatusIsError) {
  Route r = Route::Status(GetParam());
  r.body = FingerprintsDoc("xmpp");  // a document in an error answer must not be used
  r.content_type = "application/json";
  origin_.Set("st.example.test", kRfcPath, r);
  origin_.Set("st.example.test", kDraftPath, Route::Json(JwkSet({origin_.Cert("xmpp").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("st.example.test"), "error", 2);
  EXPECT_EQ(origin_.Count("st.example.test", kDraftPath), 0);
}

INSTANTIATE_TEST_SUITE_P(Cases, ProtocolStatus,
                         ::testing::Values(201, 204, 300, 400, 401, 403, 429, 500, 502, 503),
                         [](const auto& i) { return "Status" + std::to_string(i.param); });

// ---------------------------------------------------------------------------------------------
// R1 / R2 names

TEST_F(Protocol, R1_IdnDomainUsesALabel) {
  ServeFingerprints("xn--bcher-kva.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup(
      "b\xc3\xbc"
      "cher.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("domain"), "xn--bcher-kva.example.test");
  EXPECT_EQ(origin_.Count("xn--bcher-kva.example.test", kRfcPath), 1);
}

TEST_F(Protocol, R1_UpperCaseAndTrailingDotNormalised) {
  ServeFingerprints("found.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("FOUND.Example.TEST.");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("domain"), "found.example.test");
  EXPECT_EQ(origin_.Count("found.example.test", kRfcPath), 1);
  // Same cache entry (R2: keyed by the normalised domain).
  r = Lookup("found.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Bool("from_cache"), true);
}

class ProtocolBadDomain
    : public Protocol,
      public ::testing::WithParamInterface<std::pair<const char*, std::string>> {};

TEST_P(ProtocolBadDomain, R1_RejectedExit64) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup(GetParam().second);
  EXPECT_EQ(r.status(), 64) << r.Describe();
  EXPECT_EQ(origin_.Total(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ProtocolBadDomain,
    ::testing::Values(
        std::pair<const char*, std::string>{"Empty", ""},
        std::pair<const char*, std::string>{"OnlyDot", "."},
        std::pair<const char*, std::string>{"EmptyLabel", "a..example.test"},
        std::pair<const char*, std::string>{"LeadingHyphen", "-a.example.test"},
        std::pair<const char*, std::string>{"TrailingHyphen", "a-.example.test"},
        std::pair<const char*, std::string>{"Underscore", "a_b.example.test"},
        std::pair<const char*, std::string>{"Space", "a b.example.test"},
        std::pair<const char*, std::string>{"IPv4", "127.0.0.1"},
        std::pair<const char*, std::string>{"IPv6", "[::1]"},
        std::pair<const char*, std::string>{"IPv6Bare", "::1"},
        std::pair<const char*, std::string>{"Port", "a.example.test:443"},
        std::pair<const char*, std::string>{"Path", "a.example.test/x"},
        std::pair<const char*, std::string>{"Scheme", "https://a.example.test"},
        std::pair<const char*, std::string>{"UserInfo", "user@a.example.test"},
        // IDNA2008 disallows U+200B: refused, not mapped away to "direct".
        std::pair<const char*, std::string>{"ZeroWidthSpace", "dir\u200bect.example.test"},
        std::pair<const char*, std::string>{"BadPunycode", "xn--zz.example.test"},
        std::pair<const char*, std::string>{"Label64", std::string(64, 'a') + ".test"},
        std::pair<const char*, std::string>{
            "Over253", std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                           std::string(63, 'c') + "." + std::string(63, 'd')}),
    [](const auto& i) { return std::string(i.param.first); });

TEST_F(Protocol, R1_Label63AndLength253Accepted) {
  std::string d = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                  "." + std::string(61, 'd');  // 253 octets
  ASSERT_EQ(d.size(), 253u);
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup(d);
  EXPECT_NE(r.status(), 64) << r.Describe();
}

TEST_F(Protocol, R2_ServiceXmppClientUsesItsPaths) {
  origin_.Set("svc.example.test", "/.well-known/posh/xmpp-client.json",
              Route::Json(FingerprintsDoc("xmpp")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("svc.example.test", {"--service", "xmpp-client"});
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("service"), "xmpp-client");
  // The default service is a different cache entry, and is not published here.
  r = Lookup("svc.example.test");
  POSH_EXPECT_STATUS(r, "not_found", 1);
  EXPECT_EQ(r.json.Str("service"), "xmpp-server");
  EXPECT_EQ(origin_.Count("svc.example.test", "/.well-known/posh._xmpp-server._tcp.json"), 1);
}

TEST_F(Protocol, R2_CustomServiceDraftPath) {
  origin_.Set("svc.example.test", "/.well-known/posh/smtp-relay.json", Route::Status(404));
  origin_.Set("svc.example.test", "/.well-known/posh._smtp-relay._tcp.json",
              Route::Json(JwkSet({origin_.Cert("xmpp").jwk_x5c})));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("svc.example.test", {"--service", "smtp-relay"});
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("format"), "jwk");
}

class ProtocolBadService
    : public Protocol,
      public ::testing::WithParamInterface<std::pair<const char*, std::string>> {};

TEST_P(ProtocolBadService, R2_RejectedExit64) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("svc.example.test", {"--service", GetParam().second});
  EXPECT_EQ(r.status(), 64) << r.Describe();
  EXPECT_EQ(origin_.Total(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ProtocolBadService,
    ::testing::Values(std::pair<const char*, std::string>{"UpperCase", "XMPP-Server"},
                      std::pair<const char*, std::string>{"Underscore", "xmpp_server"},
                      std::pair<const char*, std::string>{"LeadingHyphen", "-xmpp"},
                      std::pair<const char*, std::string>{"TrailingHyphen", "xmpp-"},
                      std::pair<const char*, std::string>{"Slash", "../etc"},
                      std::pair<const char*, std::string>{"Dot", "xmpp.server"},
                      std::pair<const char*, std::string>{"TooLong", std::string(64, 'x')}),
    [](const auto& i) { return std::string(i.param.first); });

// ---------------------------------------------------------------------------------------------
// R8 addresses

TEST_F(Protocol, R8_LoopbackDnsAnswerRefusedPinnedTargetTrusted) {
  ServeFingerprints("pinned.example.test", "xmpp");
  daemon_.catch_all_connect_to = false;
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--connect-to", "pinned.example.test:443:127.0.0.1:" +
                                                           std::to_string(origin_.https_port())}));
  POSH_EXPECT_STATUS(Lookup("pinned.example.test"), "found", 0);
  // "localhost" resolves to a loopback address and is not pinned: refused.
  CtlResult r = Lookup("localhost");
  POSH_EXPECT_STATUS(r, "error", 2);
}

}  // namespace
}  // namespace posh_it
