// poshctl verify (R12–R15) and poshctl publish round trips.
#include <string>
#include <thread>

#include "harness.h"

namespace posh_it {
namespace {

using namespace std::chrono_literals;

class VerifyTest : public PoshTest {
 protected:
  std::string JwkSet(const std::vector<std::string>& keys) {
    std::string s = "{\"keys\":[";
    for (size_t i = 0; i < keys.size(); ++i) s += (i ? "," : "") + keys[i];
    return s + "]}";
  }
  // Serves a JWK Set at the draft URL (the RFC 7711 URL answers 404).
  void ServeJwk(const std::string& host, const std::vector<std::string>& keys) {
    origin_.Set(host, kRfcPath, Route::Status(404));
    origin_.Set(host, kDraftPath, Route::Json(JwkSet(keys)));
  }
  // {"kty":"RSA","kid":..,"n":..,"e":..,"x5c":[..]} built from parts of two certificates.
  std::string MixedJwk(const CertInfo& params_from, const CertInfo& x5c_from) {
    std::string jwk = params_from.jwk;  // {"kty":...,"kid":...}
    jwk.pop_back();
    return jwk + ",\"x5c\":[" + JsonEscape(x5c_from.der_b64) + "]}";
  }
  void ExpectVerdict(const CtlResult& r, const std::string& verdict, int code) {
    SCOPED_TRACE(r.Describe());
    EXPECT_FALSE(r.run.timed_out);
    ASSERT_TRUE(r.json.ok()) << "stdout is not JSON";
    for (const char* m : {"verified", "verdict", "domain", "service", "delegated_to", "reason"})
      EXPECT_TRUE(r.json.Has(m)) << "verify JSON lacks " << m;
    EXPECT_EQ(r.json.Str("verdict").value_or("<missing>"), verdict);
    EXPECT_EQ(r.json.Bool("verified"), verdict == "verified");
    EXPECT_EQ(r.status(), code);
    if (verdict != "verified") {
      auto reason = r.json.Str("reason");
      EXPECT_TRUE(reason && !reason->empty()) << "no reason given for " << verdict;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Fingerprints documents

TEST_F(VerifyTest, R13_MatchingCertVerified) {
  ServeFingerprints("v.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Verify("v.example.test", origin_.Cert("xmpp").pem);
  ExpectVerdict(r, "verified", 0);
  EXPECT_EQ(r.json.Str("domain"), "v.example.test");
  EXPECT_EQ(r.json.Str("service"), "xmpp-server");
  EXPECT_TRUE(r.json.IsNull("delegated_to"));
}

TEST_F(VerifyTest, R13_OtherCertNotVerified) {
  ServeFingerprints("v.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("other").pem), "not_verified", 1);
}

TEST_F(VerifyTest, R15_NoPoshIsNoPosh) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("none.example.test", origin_.Cert("xmpp").pem), "no_posh", 1);
}

TEST_F(VerifyTest, R15_RetrievalErrorIsError) {
  origin_.Set("v.example.test", kRfcPath, Route::Status(500));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").pem), "error", 2);
}

TEST_F(VerifyTest, R15_DocumentErrorIsError) {
  origin_.Set("v.example.test", kRfcPath, Route::Json("{\"fingerprints\":[],\"expires\":60}"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").pem), "error", 2);
}

TEST_F(VerifyTest, R14_ExpiredPresentedCertNotVerified) {
  ServeFingerprints("v.example.test", "expired-leaf");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("expired-leaf").pem), "not_verified", 1);
}

// A certificate that lapses after the retrieval: ServiceTest.R14_CertificateThatLapsedSince
// TheRetrievalIsNotVerified (simulated time).

TEST_F(VerifyTest, R13_ChainPemLeafFirstVerified) {
  ServeFingerprints("v.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").chain_pem), "verified", 0);
}

TEST_F(VerifyTest, R13_DerCertFileVerified) {
  ServeFingerprints("v.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").der), "verified", 0);
}

TEST_F(VerifyTest, R13_AnyDescriptorMatches) {
  origin_.Set("v.example.test", kRfcPath,
              Route::Json("{\"fingerprints\":[{\"sha-256\":" +
                          JsonEscape(origin_.Cert("other").hash.at("sha-256")) +
                          "},{\"sha-512\":" + JsonEscape(origin_.Cert("xmpp").hash.at("sha-512")) +
                          "}],\"expires\":3600}"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").pem), "verified", 0);
}

TEST_F(VerifyTest, R13_StrongestHashDecides_StrongMatches) {
  // sha-256 wrong (right length), sha-512 right: the strongest one decides -> verified.
  origin_.Set("v.example.test", kRfcPath,
              Route::Json("{\"fingerprints\":[{\"sha-256\":" +
                          JsonEscape(origin_.Cert("other").hash.at("sha-256")) +
                          ",\"sha-512\":" + JsonEscape(origin_.Cert("xmpp").hash.at("sha-512")) +
                          "}],\"expires\":3600}"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").pem), "verified", 0);
}

TEST_F(VerifyTest, R13_StrongestHashDecides_NoFallbackToWeaker) {
  // sha-256 right, sha-512 wrong: a mismatch on the strongest hash is a mismatch.
  origin_.Set("v.example.test", kRfcPath,
              Route::Json("{\"fingerprints\":[{\"sha-256\":" +
                          JsonEscape(origin_.Cert("xmpp").hash.at("sha-256")) +
                          ",\"sha-512\":" + JsonEscape(origin_.Cert("other").hash.at("sha-512")) +
                          "}],\"expires\":3600}"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").pem), "not_verified", 1);
}

TEST_F(VerifyTest, R10_Sha1NeverTrusted) {
  // A descriptor with a right sha-1 and a wrong sha-256: sha-1 is never used.
  origin_.Set("v.example.test", kRfcPath,
              Route::Json("{\"fingerprints\":[{\"sha-1\":" +
                          JsonEscape(origin_.Cert("xmpp").hash.at("sha-1")) +
                          ",\"sha-256\":" + JsonEscape(origin_.Cert("other").hash.at("sha-256")) +
                          "}],\"expires\":3600}"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").pem), "not_verified", 1);
}

TEST_F(VerifyTest, R15_DelegatedVerifiedReportsDelegatedTo) {
  origin_.Set("v.example.test", kRfcPath,
              Route::Json("{\"url\":\"https://hosting.example.net/posh/v.json\",\"expires\":600}"));
  origin_.Set("hosting.example.net", "/posh/v.json", Route::Json(FingerprintsDoc("hosting")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Verify("v.example.test", origin_.Cert("hosting").pem);
  ExpectVerdict(r, "verified", 0);
  EXPECT_EQ(r.json.Str("delegated_to"), "hosting.example.net");
}

TEST_F(VerifyTest, R2_VerifyOtherService) {
  origin_.Set("v.example.test", "/.well-known/posh/xmpp-client.json",
              Route::Json(FingerprintsDoc("xmpp")));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Verify("v.example.test", origin_.Cert("xmpp").pem, {"--service", "xmpp-client"});
  ExpectVerdict(r, "verified", 0);
  EXPECT_EQ(r.json.Str("service"), "xmpp-client");
  ExpectVerdict(Verify("v.example.test", origin_.Cert("xmpp").pem), "no_posh", 1);
}

// ---------------------------------------------------------------------------------------------
// JWK Sets

TEST_F(VerifyTest, R13_JwkX5cMatch) {
  ServeJwk("j.example.test", {origin_.Cert("xmpp").jwk_x5c});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("j.example.test", origin_.Cert("xmpp").pem), "verified", 0);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("other").pem), "not_verified", 1);
}

TEST_F(VerifyTest, R13_JwkRsaX5cMatch) {
  ServeJwk("j.example.test", {origin_.Cert("rsa").jwk_x5c});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("j.example.test", origin_.Cert("rsa").pem), "verified", 0);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("rsa-other").pem), "not_verified", 1);
}

TEST_F(VerifyTest, R13_JwkPublicKeyOnlyMatch) {
  // Keys without x5c: matched by public key alone (RSA and EC).
  ServeJwk("j.example.test", {origin_.Cert("rsa").jwk, origin_.Cert("xmpp").jwk});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("j.example.test", origin_.Cert("rsa").pem), "verified", 0);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("xmpp").pem), "verified", 0);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("rsa-other").pem), "not_verified", 1);
  // A different certificate for the same key matches too.
  CertInfo same_key = origin_.MakeCert("xmpp.example.test", "same-key",
                                       {"--key", origin_.Cert("xmpp").key.string()});
  ExpectVerdict(Verify("j.example.test", same_key.pem), "verified", 0);
}

TEST_F(VerifyTest, R12_JwkParamsMismatchX5cIsUnusable) {
  // n/e of rsa-other with x5c[0] of rsa: the key is unusable; no usable key -> error.
  ServeJwk("j.example.test", {MixedJwk(origin_.Cert("rsa-other"), origin_.Cert("rsa"))});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("j.example.test"), "error", 2);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("rsa").pem), "error", 2);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("rsa-other").pem), "error", 2);
}

TEST_F(VerifyTest, R12_JwkMismatchedKeyUnusableOtherKeyUsable) {
  ServeJwk("j.example.test", {MixedJwk(origin_.Cert("rsa-other"), origin_.Cert("rsa")),
                              origin_.Cert("xmpp").jwk_x5c});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("j.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  auto keys = r.json.Arr("keys");
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->size(), 1u) << "the unusable key is listed";
  ExpectVerdict(Verify("j.example.test", origin_.Cert("xmpp").pem), "verified", 0);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("rsa").pem), "not_verified", 1);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("rsa-other").pem), "not_verified", 1);
}

TEST_F(VerifyTest, R12_X5cNotBase64IsUnusable) {
  ServeJwk("j.example.test", {R"({"kty":"EC","kid":"bad","x5c":["!!! not base64 !!!"]})"});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("j.example.test"), "error", 2);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("xmpp").pem), "error", 2);
}

TEST_F(VerifyTest, R12_X5cNotACertificateIsUnusable) {
  ServeJwk("j.example.test", {R"({"kty":"EC","kid":"bad","x5c":["AAECAwQFBgcICQ=="]})"});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("j.example.test"), "error", 2);
}

TEST_F(VerifyTest, R12_BadKeyBesideGoodKey) {
  ServeJwk("j.example.test",
           {R"({"kty":"EC","kid":"bad","x5c":["AAECAwQFBgcICQ=="]})",
            R"({"kty":"EC","kid":"worse","x5c":["%%%"]})", origin_.Cert("xmpp").jwk_x5c});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  POSH_EXPECT_STATUS(Lookup("j.example.test"), "found", 0);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("xmpp").pem), "verified", 0);
}

TEST_F(VerifyTest, R14_JwkWithExpiredCertificateNeverMatches) {
  // The JWK's x5c[0] expired yesterday; a valid certificate for the same key is presented.
  CertInfo renewed = origin_.MakeCert("xmpp.example.test", "renewed",
                                      {"--key", origin_.Cert("expired-leaf").key.string()});
  ServeJwk("j.example.test", {origin_.Cert("expired-leaf").jwk_x5c, origin_.Cert("xmpp").jwk_x5c});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("j.example.test", renewed.pem), "not_verified", 1);
  ExpectVerdict(Verify("j.example.test", origin_.Cert("xmpp").pem), "verified", 0);
}

TEST_F(VerifyTest, R16_JwkLifetimeEndsAtCertificateNotAfter) {
  CertInfo brief = origin_.MakeCert("xmpp.example.test", "brief", {"--valid-seconds", "120"});
  ServeJwk("j.example.test", {brief.jwk_x5c});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("j.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  auto exp = r.json.Str("expires_at");
  ASSERT_TRUE(exp);
  auto t = ParseRfc3339(*exp);
  ASSERT_TRUE(t) << *exp;
  EXPECT_LE(*t, brief.not_after_unix) << "cached past the certificate's notAfter";
}

// ---------------------------------------------------------------------------------------------
// CLI input

TEST_F(VerifyTest, Cli_GarbageCertFileExit64) {
  ServeFingerprints("v.example.test", "xmpp");
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  fs::path garbage = dir() / "garbage.pem";
  WriteFile(garbage, "this is not a certificate\n-----BEGIN CERTIFICATE-----\n!!\n");
  CtlResult r = Verify("v.example.test", garbage);
  EXPECT_EQ(r.status(), 64) << r.Describe();
  fs::path empty = dir() / "empty.pem";
  WriteFile(empty, "");
  r = Verify("v.example.test", empty);
  EXPECT_EQ(r.status(), 64) << r.Describe();
  r = Verify("v.example.test", dir() / "does-not-exist.pem");
  EXPECT_EQ(r.status(), 64) << r.Describe();
  r = Ctl({"verify", "v.example.test"});  // no --cert
  EXPECT_EQ(r.status(), 64) << r.Describe();
}

// ---------------------------------------------------------------------------------------------
// poshctl publish round trips

class PublishTest : public VerifyTest {};

TEST_F(PublishTest, R10_Rfc7711RoundTrip) {
  // publish needs no daemon.
  CtlResult p =
      CtlRaw({"--socket", (dir() / "none.sock").string(), "publish",
              origin_.Cert("xmpp").pem.string(), "--format", "rfc7711", "--expires", "600"});
  ASSERT_EQ(p.status(), 0) << p.Describe();
  ASSERT_TRUE(p.json.ok()) << p.Describe();
  EXPECT_TRUE(p.json.Arr("fingerprints")) << p.json.Dump();
  EXPECT_EQ(p.json.Num("expires"), 600.0);
  origin_.Set("pub.example.test", kRfcPath, Route::Json(p.run.out));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  long long now = UnixNow();
  CtlResult r = Lookup("pub.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("format"), "rfc7711");
  auto exp = ParseRfc3339(r.json.Str("expires_at").value_or(""));
  ASSERT_TRUE(exp);
  EXPECT_NEAR(static_cast<double>(*exp), static_cast<double>(now + 600), 30.0);
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("xmpp").pem), "verified", 0);
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("other").pem), "not_verified", 1);
}

TEST_F(PublishTest, R12_JwkRoundTrip) {
  CtlResult p = CtlRaw({"publish", origin_.Cert("rsa").pem.string(),
                        origin_.Cert("xmpp").pem.string(), "--format", "jwk"});
  ASSERT_EQ(p.status(), 0) << p.Describe();
  ASSERT_TRUE(p.json.ok()) << p.Describe();
  auto keys = p.json.Arr("keys");
  ASSERT_TRUE(keys) << p.json.Dump();
  EXPECT_EQ(keys->size(), 2u);
  origin_.Set("pub.example.test", kRfcPath, Route::Status(404));
  origin_.Set("pub.example.test", kDraftPath, Route::Json(p.run.out));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  CtlResult r = Lookup("pub.example.test");
  POSH_EXPECT_STATUS(r, "found", 0);
  EXPECT_EQ(r.json.Str("format"), "jwk");
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("rsa").pem), "verified", 0);
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("xmpp").pem), "verified", 0);
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("other").pem), "not_verified", 1);
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("rsa-other").pem), "not_verified", 1);
}

TEST_F(PublishTest, R10_TwoCertificatesRoundTrip) {
  CtlResult p = CtlRaw({"publish", origin_.Cert("xmpp").pem.string(),
                        origin_.Cert("other").der.string(), "--format", "rfc7711"});
  ASSERT_EQ(p.status(), 0) << p.Describe();
  origin_.Set("pub.example.test", kRfcPath, Route::Json(p.run.out));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("xmpp").pem), "verified", 0);
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("other").pem), "verified", 0);
  ExpectVerdict(Verify("pub.example.test", origin_.Cert("rsa").pem), "not_verified", 1);
}

TEST_F(PublishTest, Cli_GarbageCertExit64) {
  fs::path garbage = dir() / "garbage.pem";
  WriteFile(garbage, "garbage\n");
  CtlResult p = CtlRaw({"publish", garbage.string()});
  EXPECT_EQ(p.status(), 64) << p.Describe();
  p = CtlRaw({"publish", origin_.Cert("xmpp").pem.string(), "--format", "xml"});
  EXPECT_EQ(p.status(), 64) << p.Describe();
  p = CtlRaw({"publish"});
  EXPECT_EQ(p.status(), 64) << p.Describe();
}

}  // namespace
}  // namespace posh_it
