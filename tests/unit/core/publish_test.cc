// poshctl publish: documents that round-trip through ParseDocument (R10, R12) and match (R13).
#include "core/publish.h"

#include <gtest/gtest.h>

#include "core/matcher.h"
#include "core/record.h"
#include "support/test_certs.h"

namespace posh::core {
namespace {

using posh::testing::kDay;
using posh::testing::kNow;
using posh::testing::kYear;

TEST(R10Publish, FingerprintsRoundTrip) {
  auto a = posh::testing::MakeCert(posh::testing::RsaKey(), kNow - kDay, kNow + kYear, "a");
  auto b = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear, "b");
  std::string body = PublishFingerprints({a, b}, 86400);
  auto doc = ParseDocument(body, kNow);
  ASSERT_TRUE(doc.ok()) << doc.error().message << "\n" << body;
  const auto& fp = std::get<FingerprintsDocument>(doc.value());
  EXPECT_EQ(fp.expires, 86400);
  ASSERT_EQ(fp.descriptors.size(), 2u);
  EXPECT_EQ(fp.descriptors[0].fingerprints.size(), 2u);
  auto rec = BuildRecord(doc.value());
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(Match(rec.value(), a, kNow).key_index, 0);
  EXPECT_EQ(Match(rec.value(), b, kNow).key_index, 1);
}

TEST(R12Publish, JwkSetRoundTrip) {
  auto a =
      posh::testing::MakeCert(posh::testing::RsaKey(), 1309737600, kNow + kYear, "im.example.com");
  auto b = posh::testing::MakeCert(posh::testing::EcKey(0, "P-384"), kNow - kDay, kNow + kYear,
                                   "ec \"quoted\" \\ name");
  auto body = PublishJwkSet({a, b}, 3600);
  ASSERT_TRUE(body.ok()) << body.error().message;
  auto doc = ParseDocument(body.value(), kNow);
  ASSERT_TRUE(doc.ok()) << doc.error().message << "\n" << body.value();
  const auto& set = std::get<JwkSet>(doc.value());
  ASSERT_EQ(set.keys.size(), 2u);
  EXPECT_EQ(set.expires, 3600);
  EXPECT_EQ(set.keys[0].kid, "im.example.com:2011-07-04");
  EXPECT_EQ(set.keys[0].kty, "RSA");
  EXPECT_EQ(set.keys[1].kty, "EC");
  EXPECT_EQ(set.keys[1].kid, "ec \"quoted\" \\ name:2023-11-13");
  for (const auto& k : set.keys) {
    EXPECT_TRUE(k.usable) << k.unusable_reason;
    ASSERT_TRUE(k.params.has_value());
    EXPECT_EQ(*k.params, k.cert->public_key);
  }
  auto rec = BuildRecord(doc.value());
  ASSERT_TRUE(rec.ok());
  EXPECT_TRUE(Match(rec.value(), a, kNow).matched);
  EXPECT_TRUE(Match(rec.value(), b, kNow).matched);
}

TEST(R12Publish, JwkWithoutExpires) {
  auto a = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear);
  auto body = PublishJwkSet({a}, 0);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(body.value().find("expires"), std::string::npos);
  auto doc = ParseDocument(body.value(), kNow);
  ASSERT_TRUE(doc.ok()) << doc.error().message;
  EXPECT_FALSE(std::get<JwkSet>(doc.value()).expires.has_value());
}

TEST(R12Publish, UnsupportedKeyTypeIsError) {
  auto ed = posh::testing::MakeCert(posh::testing::Ed25519Key(), kNow - kDay, kNow + kYear);
  auto body = PublishJwkSet({ed}, 60);
  EXPECT_FALSE(body.ok());
  // The fingerprints format can express any certificate.
  EXPECT_TRUE(ParseDocument(PublishFingerprints({ed}, 60), kNow).ok());
}

// The kid quotes the certificate's name, which is not always UTF-8 (a subject printed with
// raw bytes, a CN with a broken UTF8String). Every byte that does not start a valid
// character becomes '?', so the document stays valid UTF-8 and parses (simdjson refuses
// anything else). publish used to let overlong forms, surrogates and code points past
// U+10FFFF through, and its own output then failed to parse.
TEST(R12Publish, KidIsAlwaysValidUtf8) {
  struct Case {
    std::string name;
    std::string kid_name;
  };
  const Case cases[] = {
      {"a\xC0\xAF"
       "b",
       "a??b"},  // overlong '/' (2 bytes)
      {"a\xE0\x80\xAF"
       "b",
       "a???b"},  // overlong '/' (3 bytes)
      {"a\xED\xA0\x80"
       "b",
       "a???b"},  // surrogate U+D800
      {"a\xF4\x90\x80\x80"
       "b",
       "a????b"},       // U+110000, past U+10FFFF
      {"a\xC3", "a?"},  // truncated
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
       "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},  // valid: kept
  };
  for (const auto& c : cases) {
    auto cert = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear);
    cert.common_name = c.name;
    auto body = PublishJwkSet({cert}, 60);
    ASSERT_TRUE(body.ok()) << body.error().message;
    auto doc = ParseDocument(body.value(), kNow);
    ASSERT_TRUE(doc.ok()) << doc.error().message;
    EXPECT_EQ(std::get<JwkSet>(doc.value()).keys.at(0).kid, c.kid_name + ":2023-11-13");
  }
}

}  // namespace
}  // namespace posh::core
