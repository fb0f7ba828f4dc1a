// R9-R12: document kinds, fingerprints documents, reference documents, JWK Sets.
#include "core/document.h"

#include <gtest/gtest.h>

#include <string>

#include "core/base64.h"
#include "support/test_certs.h"

namespace posh::core {
namespace {

using posh::testing::kDay;
using posh::testing::kNow;
using posh::testing::kYear;

const std::string kSha256 = EncodeBase64(std::vector<uint8_t>(32, 0xab));  // ends in '='
const std::string kSha512 = EncodeBase64(std::vector<uint8_t>(64, 0xcd));

Result<Document> Parse(std::string_view body, int64_t now = kNow) {
  return ParseDocument(body, now);
}

void ExpectError(std::string_view body, int code, std::string_view fragment = "",
                 int64_t now = kNow) {
  auto r = Parse(body, now);
  ASSERT_FALSE(r.ok()) << "accepted: " << body;
  EXPECT_EQ(r.error().code, code) << body << " -> " << r.error().message;
  EXPECT_NE(r.error().message.find(fragment), std::string::npos)
      << "message \"" << r.error().message << "\" lacks \"" << fragment << "\"";
}

const FingerprintsDocument& Fps(const Result<Document>& r) {
  return std::get<FingerprintsDocument>(r.value());
}

// ---- R9 ------------------------------------------------------------------------------------

TEST(R9Kind, RecognisesTheThreeKinds) {
  auto fp = Parse(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":60})");
  ASSERT_TRUE(fp.ok()) << fp.error().message;
  EXPECT_TRUE(std::holds_alternative<FingerprintsDocument>(fp.value()));
  auto ref = Parse(
      R"({"url":"https://hosting.example.net/.well-known/posh/xmpp-server.json","expires":60})");
  ASSERT_TRUE(ref.ok()) << ref.error().message;
  EXPECT_TRUE(std::holds_alternative<ReferenceDocument>(ref.value()));
  auto cert = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear);
  auto jwk = Parse(R"({"keys":[)" + posh::testing::JwkFor(cert, "k1") + "]}");
  ASSERT_TRUE(jwk.ok()) << jwk.error().message;
  EXPECT_TRUE(std::holds_alternative<JwkSet>(jwk.value()));
}

TEST(R9Kind, BothFingerprintsAndUrlIsError) {
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256 +
                  R"("}],"url":"https://a.example/x.json","expires":60})",
              kDocBadKind, "both");
}

TEST(R9Kind, KeysWithFingerprintsIsAmbiguous) {
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"keys":[],"expires":60})",
              kDocBadKind);
}

TEST(R9Kind, NoneOfTheThreeIsError) {
  ExpectError(R"({"expires":60})", kDocBadKind, "none of");
  ExpectError(R"({})", kDocBadKind);
  ExpectError(R"({"Fingerprints":[],"expires":60})", kDocBadKind);
}

TEST(R9Kind, NotAJsonObjectIsError) {
  ExpectError(R"([{"fingerprints":[]}])", kDocNotJson, "not a JSON object");
  ExpectError(R"("fingerprints")", kDocNotJson);
  ExpectError("42", kDocNotJson);
  ExpectError("null", kDocNotJson);
  ExpectError("", kDocNotJson);
  ExpectError("   ", kDocNotJson);
}

TEST(R9Kind, TruncatedOrMalformedJsonIsError) {
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256, kDocNotJson);
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":60)", kDocNotJson);
  ExpectError(R"({"fingerprints":[],"expires":60,})", kDocNotJson);
  ExpectError(R"({'fingerprints':[]})", kDocNotJson);
  ExpectError(R"({"fingerprints":[]} trailing)", kDocNotJson);
}

TEST(R9Kind, InvalidUtf8IsError) {
  ExpectError("{\"fingerprints\":[{\"sha-256\":\"" + kSha256 + "\",\"x\xff\":1}],\"expires\":60}",
              kDocNotJson, "UTF-8");
  ExpectError("{\"url\":\"https://a.example/\xc3\",\"expires\":60}", kDocNotJson, "UTF-8");
}

TEST(R9Kind, DeeplyNestedJsonIsErrorNotCrash) {
  std::string deep = "{\"fingerprints\":" + std::string(100000, '[') + std::string(100000, ']') +
                     ",\"expires\":60}";
  ExpectError(deep, kDocNotJson, "nested");
  std::string deep_obj = "{\"x\":";
  for (int i = 0; i < 5000; ++i) deep_obj += "{\"x\":";
  deep_obj += "1" + std::string(5001, '}');
  ExpectError(deep_obj, kDocNotJson);
}

TEST(R9Kind, ModerateNestingInIgnoredMembersIsFine) {
  std::string body = R"({"fingerprints":[{"sha-256":")" + kSha256 +
                     R"("}],"expires":60,"extra":[[[[[[[[{"a":[1]}]]]]]]]]})";
  EXPECT_TRUE(Parse(body).ok());
}

// ---- R10 -----------------------------------------------------------------------------------

TEST(R10Fingerprints, ValidDocument) {
  auto r = Parse(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"(","sha-512":")" + kSha512 +
                 R"("},{"sha-384":")" + EncodeBase64(std::vector<uint8_t>(48, 1)) +
                 R"("}],"expires":604800})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& doc = Fps(r);
  EXPECT_EQ(doc.expires, 604800);
  ASSERT_EQ(doc.descriptors.size(), 2u);
  ASSERT_EQ(doc.descriptors[0].fingerprints.size(), 2u);
  EXPECT_EQ(doc.descriptors[0].fingerprints[0].alg, HashAlg::kSha256);
  EXPECT_EQ(doc.descriptors[0].fingerprints[0].value, std::vector<uint8_t>(32, 0xab));
  EXPECT_EQ(doc.descriptors[0].fingerprints[1].alg, HashAlg::kSha512);
  EXPECT_EQ(doc.descriptors[1].fingerprints[0].alg, HashAlg::kSha384);
}

TEST(R10Fingerprints, PaddingOptional) {
  std::string unpadded = kSha256;
  while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
  ASSERT_NE(unpadded, kSha256);
  auto r = Parse(R"({"fingerprints":[{"sha-256":")" + unpadded + R"("}],"expires":60})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(Fps(r).descriptors[0].fingerprints[0].value, std::vector<uint8_t>(32, 0xab));
}

TEST(R10Fingerprints, UrlAlphabetIsNotStandardBase64) {
  std::string url = EncodeBase64(std::vector<uint8_t>(32, 0xfb), Base64Alphabet::kUrl);
  ASSERT_NE(url.find_first_of("-_"), std::string::npos);
  ExpectError(R"({"fingerprints":[{"sha-256":")" + url + R"("}],"expires":60})", kDocNoUsableKey,
              "base64");
}

TEST(R10Fingerprints, UnknownHashNamesIgnored) {
  auto r = Parse(R"({"fingerprints":[{"sha3-256":"zzz","SHA-256":1,"sha-256":")" + kSha256 +
                 R"(","comment":"hi"}],"expires":60,"other":true})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(Fps(r).descriptors[0].fingerprints.size(), 1u);
  ExpectError(R"({"fingerprints":[{"sha3-256":")" + kSha256 + R"("}],"expires":60})",
              kDocNoUsableKey);
}

TEST(R10Fingerprints, Sha1AndMd5NeverTrusted) {
  std::string sha1 = EncodeBase64(std::vector<uint8_t>(20, 1));
  std::string md5 = EncodeBase64(std::vector<uint8_t>(16, 1));
  ExpectError(
      R"({"fingerprints":[{"sha-1":")" + sha1 + R"(","md5":")" + md5 + R"("}],"expires":60})",
      kDocNoUsableKey, "not trusted");
  // Alongside a trusted hash, the descriptor is usable.
  auto r = Parse(R"({"fingerprints":[{"sha-1":")" + sha1 + R"(","sha-256":")" + kSha256 +
                 R"("}],"expires":60})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  // A sha-1-only descriptor next to a good one is dropped.
  auto r2 = Parse(R"({"fingerprints":[{"sha-1":")" + sha1 + R"("},{"sha-256":")" + kSha256 +
                  R"("}],"expires":60})");
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(Fps(r2).descriptors.size(), 1u);
}

TEST(R10Fingerprints, WrongDecodedLengthMakesEntryUnusable) {
  std::string short256 = EncodeBase64(std::vector<uint8_t>(31, 1));
  std::string long256 = EncodeBase64(std::vector<uint8_t>(33, 1));
  ExpectError(R"({"fingerprints":[{"sha-256":")" + short256 + R"("}],"expires":60})",
              kDocNoUsableKey, "31 bytes, expected 32");
  ExpectError(R"({"fingerprints":[{"sha-256":")" + long256 + R"("}],"expires":60})",
              kDocNoUsableKey);
  // sha-512 value in a sha-256 member.
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha512 + R"("}],"expires":60})",
              kDocNoUsableKey);
  // The wrong entry is dropped, the right one in the same descriptor stays.
  auto r = Parse(R"({"fingerprints":[{"sha-256":")" + short256 + R"(","sha-512":")" + kSha512 +
                 R"("}],"expires":60})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(Fps(r).descriptors[0].fingerprints.size(), 1u);
  EXPECT_EQ(Fps(r).descriptors[0].fingerprints[0].alg, HashAlg::kSha512);
}

TEST(R10Fingerprints, BadBase64OrNonStringValueUnusable) {
  ExpectError(R"({"fingerprints":[{"sha-256":"not base64!"}],"expires":60})", kDocNoUsableKey);
  ExpectError(R"({"fingerprints":[{"sha-256":42}],"expires":60})", kDocNoUsableKey, "not a string");
  ExpectError(R"({"fingerprints":[{"sha-256":null}],"expires":60})", kDocNoUsableKey);
  ExpectError(R"({"fingerprints":[{"sha-256":" )" + kSha256 + R"("}],"expires":60})",
              kDocNoUsableKey);
}

TEST(R10Fingerprints, EmptyArrayIsError) {
  ExpectError(R"({"fingerprints":[],"expires":60})", kDocNoUsableKey, "empty");
  ExpectError(R"({"fingerprints":[{}],"expires":60})", kDocNoUsableKey);
}

TEST(R10Fingerprints, NotAnArrayOrNonObjectEntries) {
  ExpectError(R"({"fingerprints":{"sha-256":")" + kSha256 + R"("},"expires":60})", kDocBadStructure,
              "array");
  ExpectError(R"({"fingerprints":")" + kSha256 + R"(","expires":60})", kDocBadStructure);
  ExpectError(R"({"fingerprints":null,"expires":60})", kDocBadStructure);
  ExpectError(R"({"fingerprints":[")" + kSha256 + R"("],"expires":60})", kDocBadStructure,
              "not an object");
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("},[]],"expires":60})",
              kDocBadStructure);
}

TEST(R10Expires, MissingIsError) {
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}]})", kDocBadExpires, "missing");
}

TEST(R10Expires, ZeroMeansInvalid) {
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":0})",
              kDocExpiresZero);
}

TEST(R10Expires, NegativeIsError) {
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":-1})", kDocBadExpires,
              "negative");
  ExpectError(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":-0.5})",
              kDocBadExpires);
}

TEST(R10Expires, FractionalOrExponentIsError) {
  for (std::string_view v : {"1.5", "1.0", "1e3", "3600E0", "0.0"}) {
    ExpectError(
        R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":)" + std::string(v) + "}",
        kDocBadExpires, "integer");
  }
}

TEST(R10Expires, NotANumberIsError) {
  for (std::string_view v : {R"("3600")", "true", "null", "[3600]", "{}"}) {
    ExpectError(
        R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":)" + std::string(v) + "}",
        kDocBadExpires, "number");
  }
}

TEST(R10Expires, OverflowIsError) {
  ExpectError(
      R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":9223372036854775808})",
      kDocBadExpires);
  // Beyond uint64 simdjson itself refuses the number (a JSON-level error): still an error.
  EXPECT_FALSE(Parse(R"({"fingerprints":[{"sha-256":")" + kSha256 +
                     R"("}],"expires":99999999999999999999999999})")
                   .ok());
  auto r =
      Parse(R"({"fingerprints":[{"sha-256":")" + kSha256 + R"("}],"expires":9223372036854775807})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(Fps(r).expires, INT64_MAX);
}

// ---- R11 -----------------------------------------------------------------------------------

TEST(R11Reference, ValidReference) {
  auto r = Parse(
      R"({"url":"https://Hosting.Example.NET:8443/.well-known/posh/xmpp-server.json","expires":86400})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& ref = std::get<ReferenceDocument>(r.value());
  EXPECT_EQ(ref.url, "https://Hosting.Example.NET:8443/.well-known/posh/xmpp-server.json");
  EXPECT_EQ(ref.expires, 86400);
  auto upper = Parse(R"({"url":"HTTPS://hosting.example.net/x.json","expires":1})");
  EXPECT_TRUE(upper.ok());
}

TEST(R11Reference, HttpUrlIsError) {
  ExpectError(R"({"url":"http://hosting.example.net/x.json","expires":60})", kDocBadUrl, "https");
}

TEST(R11Reference, RelativeOrMalformedUrlIsError) {
  for (std::string_view url :
       {"/.well-known/posh/xmpp-server.json", "hosting.example.net/x.json", "https:/x.json",
        "https://", "https:///path", "https://:443/x", "https://user@host.example/x",
        "https://user:pw@host.example/x", "https://host.example:99999/x",
        "https://host.example:abc/x", "https://host.example:/x", "https://host .example/x",
        "ftp://host.example/x", "", "https://[::1/x"}) {
    ExpectError(R"({"url":")" + std::string(url) + R"(","expires":60})", kDocBadUrl);
  }
  ExpectError(R"({"url":42,"expires":60})", kDocBadUrl);
  ExpectError(R"({"url":["https://a.example/"],"expires":60})", kDocBadUrl);
}

TEST(R11Reference, ExpiresRulesApply) {
  ExpectError(R"({"url":"https://a.example/x.json"})", kDocBadExpires, "missing");
  ExpectError(R"({"url":"https://a.example/x.json","expires":0})", kDocExpiresZero);
  ExpectError(R"({"url":"https://a.example/x.json","expires":-5})", kDocBadExpires);
  ExpectError(R"({"url":"https://a.example/x.json","expires":2.5})", kDocBadExpires);
  ExpectError(R"({"url":"https://a.example/x.json","expires":"60"})", kDocBadExpires);
}

TEST(R11Reference, UrlIsKeptAsWritten) {
  // Query, fragment, IPv6 literals, a zero-padded port: all absolute https URLs, kept as
  // written; the resolver fetches them (the delegated domain is the host it ends up at).
  for (std::string_view url :
       {"https://a.example?x=1", "https://a.example#top", "https://a.example",
        "https://[2001:db8::1]:8443/x.json", "https://a.example:00443/x",
        "https://a.example:65535/x", "https://a.example./x", "HtTpS://A.EXAMPLE/X.json"}) {
    auto r = Parse(R"({"url":")" + std::string(url) + R"(","expires":60})");
    ASSERT_TRUE(r.ok()) << url << ": " << r.error().message;
    EXPECT_EQ(std::get<ReferenceDocument>(r.value()).url, url);
  }
}

// What curl's URL API would read leniently (it is the parser underneath) but R11's "absolute
// https URL" excludes: each must stay an error.
TEST(R11Reference, CurlLeniencyIsNotInherited) {
  ExpectError(R"({"url":"https:/a.example/x.json","expires":60})", kDocBadUrl, "absolute");
  ExpectError(R"({"url":"https:///a.example/x.json","expires":60})", kDocBadUrl, "absolute");
  ExpectError(R"({"url":"https://a.example:/x.json","expires":60})", kDocBadUrl, "empty port");
  ExpectError(R"({"url":"https://a.example:0/x.json","expires":60})", kDocBadUrl, "port");
  ExpectError(R"({"url":"https://@a.example/x.json","expires":60})", kDocBadUrl, "user info");
  ExpectError(R"({"url":"https://:pw@a.example/x.json","expires":60})", kDocBadUrl, "user info");
  ExpectError("{\"url\":\"https://h\xc3\xa9.example/x\",\"expires\":60}", kDocBadUrl, "non-ASCII");
  ExpectError("{\"url\":\"https://a.example/\xc3\xa9\",\"expires\":60}", kDocBadUrl, "non-ASCII");
  ExpectError(R"({"url":"https://a.example/x\ty","expires":60})", kDocBadUrl, "controls");
}

TEST(R11Reference, MessagesSayWhatIsWrong) {
  ExpectError(R"({"url":"https://host.example:99999/x","expires":60})", kDocBadUrl, "invalid port");
  ExpectError(R"({"url":"https://user@host.example/x","expires":60})", kDocBadUrl, "user info");
  ExpectError(R"({"url":"https://:443/x","expires":60})", kDocBadUrl, "no host");
  ExpectError(R"({"url":"ftp://host.example/x","expires":60})", kDocBadUrl, "https");
  ExpectError(R"({"url":"","expires":60})", kDocBadUrl, "empty");
}

// ---- R12 -----------------------------------------------------------------------------------

class R12Jwk : public ::testing::Test {
 protected:
  Certificate rsa_ =
      posh::testing::MakeCert(posh::testing::RsaKey(), kNow - kDay, kNow + kYear, "rsa.example");
  Certificate ec_ =
      posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear, "ec.example");
  Certificate expired_ =
      posh::testing::MakeCert(posh::testing::RsaKey(), kNow - kYear, kNow - kDay, "old.example");

  static std::string Set(const std::string& keys) { return R"({"keys":[)" + keys + "]}"; }
};

TEST_F(R12Jwk, RsaAndEcKeysUsable) {
  auto r = Parse(Set(posh::testing::JwkFor(rsa_, "r") + "," + posh::testing::JwkFor(ec_, "e")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& set = std::get<JwkSet>(r.value());
  ASSERT_EQ(set.keys.size(), 2u);
  EXPECT_FALSE(set.expires.has_value());
  for (const auto& k : set.keys) {
    EXPECT_TRUE(k.usable) << k.unusable_reason;
    ASSERT_TRUE(k.cert.has_value());
    ASSERT_TRUE(k.params.has_value());
    EXPECT_EQ(*k.params, k.cert->public_key);
  }
  EXPECT_EQ(set.keys[0].kid, "r");
  EXPECT_EQ(set.keys[0].kty, "RSA");
  EXPECT_EQ(set.keys[1].kty, "EC");
  EXPECT_EQ(set.keys[1].params->curve, "P-256");
}

TEST_F(R12Jwk, LeadingZeroInModulusComparesAsInteger) {
  std::vector<uint8_t> n = rsa_.public_key.a;
  n.insert(n.begin(), 0);
  std::string key = R"({"kty":"RSA","kid":"z","n":")" + EncodeBase64(n, Base64Alphabet::kUrl) +
                    R"(","e":"AAEAAQ","x5c":[")" + EncodeBase64(rsa_.der) + R"("]})";
  auto r = Parse(Set(key));
  ASSERT_TRUE(r.ok()) << r.error().message;
}

TEST_F(R12Jwk, MismatchingModulusMakesKeyUnusable) {
  std::vector<uint8_t> n = rsa_.public_key.a;
  n.back() ^= 1;
  std::string key = R"({"kty":"RSA","kid":"bad","n":")" + EncodeBase64(n, Base64Alphabet::kUrl) +
                    R"(","e":"AQAB","x5c":[")" + EncodeBase64(rsa_.der) + R"("]})";
  ExpectError(Set(key), kDocNoUsableKey, "do not match");
  // Next to a good key the document is fine and the bad key is reported unusable.
  auto r = Parse(Set(key + "," + posh::testing::JwkFor(ec_, "good")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& set = std::get<JwkSet>(r.value());
  EXPECT_FALSE(set.keys[0].usable);
  EXPECT_NE(set.keys[0].unusable_reason.find("do not match"), std::string::npos);
  EXPECT_TRUE(set.keys[1].usable);
}

TEST_F(R12Jwk, MismatchingExponentOrEcPointUnusable) {
  std::string key = R"({"kty":"RSA","kid":"e3","n":")" +
                    EncodeBase64(rsa_.public_key.a, Base64Alphabet::kUrl) +
                    R"(","e":"Aw","x5c":[")" + EncodeBase64(rsa_.der) + R"("]})";
  ExpectError(Set(key), kDocNoUsableKey, "do not match");
  // EC params of another key with this certificate.
  auto other = posh::testing::MakeCert(posh::testing::EcKey(1), kNow - kDay, kNow + kYear);
  std::string jwk = posh::testing::JwkFor(other, "x", true, false);
  jwk.pop_back();
  jwk += R"(,"x5c":[")" + EncodeBase64(ec_.der) + R"("]})";
  ExpectError(Set(jwk), kDocNoUsableKey, "do not match");
}

TEST_F(R12Jwk, KtyMismatchWithCertificateUnusable) {
  // RSA parameters with an EC certificate.
  std::string key = R"({"kty":"RSA","kid":"k","n":")" +
                    EncodeBase64(rsa_.public_key.a, Base64Alphabet::kUrl) +
                    R"(","e":"AQAB","x5c":[")" + EncodeBase64(ec_.der) + R"("]})";
  ExpectError(Set(key), kDocNoUsableKey);
}

TEST_F(R12Jwk, X5cNotBase64Unusable) {
  ExpectError(Set(R"({"kty":"RSA","kid":"k","x5c":["not*base64"]})"), kDocNoUsableKey,
              "not valid base64");
  // URL-safe base64 is not what x5c uses.
  std::string url = EncodeBase64(rsa_.der, Base64Alphabet::kUrl);
  if (url.find_first_of("-_") != std::string::npos) {
    ExpectError(Set(R"({"kty":"RSA","kid":"k","x5c":[")" + url + R"("]})"), kDocNoUsableKey);
  }
}

TEST_F(R12Jwk, X5cNotACertificateUnusable) {
  ExpectError(Set(R"({"kty":"RSA","kid":"k","x5c":["AAAA"]})"), kDocNoUsableKey,
              "not a certificate");
  std::vector<uint8_t> trailing = ec_.der;
  trailing.push_back(0);
  ExpectError(Set(R"({"kty":"EC","kid":"k","x5c":[")" + EncodeBase64(trailing) + R"("]})"),
              kDocNoUsableKey, "trailing");
}

TEST_F(R12Jwk, X5cMalformedShapes) {
  ExpectError(Set(R"({"kty":"RSA","kid":"k","x5c":[]})"), kDocNoUsableKey, "empty");
  ExpectError(Set(R"({"kty":"RSA","kid":"k","x5c":")" + EncodeBase64(rsa_.der) + R"("})"),
              kDocNoUsableKey, "not an array");
  ExpectError(Set(R"({"kty":"RSA","kid":"k","x5c":[1]})"), kDocNoUsableKey);
}

TEST_F(R12Jwk, X5cWithoutParamsUsable) {
  auto r = Parse(Set(posh::testing::JwkFor(rsa_, "k", false, true)));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& k = std::get<JwkSet>(r.value()).keys[0];
  EXPECT_TRUE(k.usable);
  EXPECT_FALSE(k.params.has_value());
  EXPECT_TRUE(k.cert.has_value());
}

TEST_F(R12Jwk, ParamsWithoutX5cUsableByPublicKeyAlone) {
  auto r = Parse(Set(posh::testing::JwkFor(ec_, "pk", true, false)));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& k = std::get<JwkSet>(r.value()).keys[0];
  EXPECT_TRUE(k.usable);
  EXPECT_FALSE(k.cert.has_value());
  ASSERT_TRUE(k.params.has_value());
  EXPECT_EQ(*k.params, ec_.public_key);
}

TEST_F(R12Jwk, NeitherParamsNorX5cUnusable) {
  ExpectError(Set(R"({"kty":"RSA","kid":"k"})"), kDocNoUsableKey, "neither");
  ExpectError(Set(R"({"kty":"oct","kid":"k","k":"AAAA"})"), kDocNoUsableKey);
}

TEST_F(R12Jwk, MalformedParamsUnusable) {
  ExpectError(Set(R"({"kty":"RSA","kid":"k","n":"AQAB"})"), kDocNoUsableKey, "missing \"e\"");
  ExpectError(Set(R"({"kty":"RSA","kid":"k","n":"+/+/","e":"AQAB"})"), kDocNoUsableKey,
              "base64url");
  ExpectError(Set(R"({"kty":"RSA","kid":"k","n":"AAAA","e":"AQAB"})"), kDocNoUsableKey, "zero");
  ExpectError(Set(R"({"kty":"EC","kid":"k","crv":"P-256","x":"AAAA"})"), kDocNoUsableKey);
  ExpectError(Set(R"({"kty":"EC","kid":"k","crv":"secp256k1","x":"AAAA","y":"AAAA"})"),
              kDocNoUsableKey, "unsupported curve");
  ExpectError(Set(R"({"kty":"EC","kid":"k","x":"AAAA","y":"AAAA"})"), kDocNoUsableKey, "crv");
}

TEST_F(R12Jwk, MissingKtyOrNonObjectKeyUnusable) {
  ExpectError(Set(R"({"kid":"k","x5c":[")" + EncodeBase64(rsa_.der) + R"("]})"), kDocNoUsableKey,
              "kty");
  ExpectError(Set(R"("just a string")"), kDocNoUsableKey, "not a JSON object");
  auto r = Parse(Set("42," + posh::testing::JwkFor(rsa_, "ok")));
  ASSERT_TRUE(r.ok()) << r.error().message;
}

TEST_F(R12Jwk, ExpiredCertificateUnusable) {
  ExpectError(Set(posh::testing::JwkFor(expired_, "old")), kDocNoUsableKey,
              "key 0 (kid old): certificate expired " + FormatTime(kNow - kDay));
  // Not yet valid: still usable (roll-over, seed §7); Match() waits for notBefore (R14).
  auto future = posh::testing::MakeCert(posh::testing::RsaKey(), kNow + kDay, kNow + kYear);
  auto r = Parse(Set(posh::testing::JwkFor(future, "new")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(std::get<JwkSet>(r.value()).keys[0].usable);
  // Boundaries are inclusive.
  EXPECT_TRUE(Parse(Set(posh::testing::JwkFor(expired_, "old")), kNow - kDay).ok());
  EXPECT_TRUE(Parse(Set(posh::testing::JwkFor(future, "new")), kNow + kDay).ok());
}

TEST_F(R12Jwk, ExpiredKeyNextToValidKey) {
  auto r =
      Parse(Set(posh::testing::JwkFor(expired_, "old") + "," + posh::testing::JwkFor(rsa_, "cur")));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& set = std::get<JwkSet>(r.value());
  EXPECT_FALSE(set.keys[0].usable);
  EXPECT_TRUE(set.keys[1].usable);
}

TEST_F(R12Jwk, KeysArrayShape) {
  ExpectError(R"({"keys":[]})", kDocNoUsableKey, "empty");
  ExpectError(R"({"keys":{}})", kDocBadStructure);
  ExpectError(R"({"keys":"x"})", kDocBadStructure);
}

TEST_F(R12Jwk, OptionalExpiresValidated) {
  std::string key = posh::testing::JwkFor(rsa_, "k");
  auto r = Parse(R"({"keys":[)" + key + R"(],"expires":3600})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(std::get<JwkSet>(r.value()).expires, 3600);
  ExpectError(R"({"keys":[)" + key + R"(],"expires":0})", kDocExpiresZero);
  ExpectError(R"({"keys":[)" + key + R"(],"expires":-1})", kDocBadExpires);
  ExpectError(R"({"keys":[)" + key + R"(],"expires":1.5})", kDocBadExpires);
  ExpectError(R"({"keys":[)" + key + R"(],"expires":"1"})", kDocBadExpires);
}

}  // namespace
}  // namespace posh::core
