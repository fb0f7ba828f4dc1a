// poshctl publish: documents that round-trip through ParseDocument (R10, R12) and match (R13).
#include "core/publish.h"

#include <gtest/gtest.h>

#include "core/matcher.h"
#include "core/record.h"
#include "test_certs.h"

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

}  // namespace
}  // namespace posh::core
