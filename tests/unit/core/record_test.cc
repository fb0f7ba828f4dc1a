// Building the cached record from documents (R11 lifetimes, R12 key material, R16 inputs).
#include "core/record.h"

#include <gtest/gtest.h>

#include "core/base64.h"
#include "support/test_certs.h"

namespace posh::core {
namespace {

using posh::testing::kDay;
using posh::testing::kNow;
using posh::testing::kYear;

Document MustParse(const std::string& body, int64_t now = kNow) {
  auto r = ParseDocument(body, now);
  EXPECT_TRUE(r.ok()) << body << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r.value()) : Document(FingerprintsDocument{});
}

TEST(R10Record, FingerprintsDocumentKeys) {
  std::string a = EncodeBase64(std::vector<uint8_t>(32, 1));
  std::string b = EncodeBase64(std::vector<uint8_t>(64, 2));
  auto rec = BuildRecord(MustParse(R"({"fingerprints":[{"sha-256":")" + a + R"("},{"sha-512":")" +
                                   b + R"("}],"expires":3600})"));
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  EXPECT_EQ(rec->format, Format::kRfc7711);
  ASSERT_EQ(rec->keys.size(), 2u);
  EXPECT_EQ(rec->keys[0].fingerprints[0].alg, HashAlg::kSha256);
  EXPECT_EQ(rec->keys[1].fingerprints[0].alg, HashAlg::kSha512);
  EXPECT_EQ(rec->keys[0].public_key, nullptr);
  EXPECT_EQ(rec->expires_seconds, 3600);
  EXPECT_EQ(rec->latest_not_after, 0);
}

TEST(R11Record, LowerOfReferenceAndTargetExpires) {
  std::string a = EncodeBase64(std::vector<uint8_t>(32, 1));
  auto doc = MustParse(R"({"fingerprints":[{"sha-256":")" + a + R"("}],"expires":3600})");
  EXPECT_EQ(BuildRecord(doc, 60)->expires_seconds, 60);
  EXPECT_EQ(BuildRecord(doc, 7200)->expires_seconds, 3600);
  EXPECT_EQ(BuildRecord(doc, 0)->expires_seconds, 3600);
}

TEST(R11Record, ReferenceIsNotTerminal) {
  auto doc = MustParse(R"({"url":"https://b.example/x.json","expires":60})");
  auto rec = BuildRecord(doc);
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code, kDocBadKind);
}

TEST(R12Record, JwkKeyWithCertificate) {
  auto cert = posh::testing::MakeCert(posh::testing::RsaKey(), kNow - kDay, kNow + kYear);
  auto old = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kYear, kNow - kDay);
  auto doc = MustParse(R"({"keys":[)" + posh::testing::JwkFor(old, "old") + "," +
                       posh::testing::JwkFor(cert, "k1") + "]}");
  auto rec = BuildRecord(doc);
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  EXPECT_EQ(rec->format, Format::kJwk);
  ASSERT_EQ(rec->keys.size(), 1u);  // only usable keys
  const auto& k = rec->keys[0];
  EXPECT_EQ(k.kid, "k1");
  EXPECT_EQ(k.kty, "RSA");
  EXPECT_TRUE(k.has_certificate);
  ASSERT_EQ(k.fingerprints.size(), 2u);
  EXPECT_EQ(k.fingerprints[0].alg, HashAlg::kSha256);
  EXPECT_EQ(k.fingerprints[0].value, Digest(HashAlg::kSha256, cert.der));
  EXPECT_EQ(k.fingerprints[1].alg, HashAlg::kSha512);
  EXPECT_EQ(k.fingerprints[1].value, Digest(HashAlg::kSha512, cert.der));
  ASSERT_NE(k.public_key, nullptr);
  EXPECT_EQ(*k.public_key, cert.public_key);
  EXPECT_EQ(k.not_before, kNow - kDay);
  EXPECT_EQ(k.not_after, kNow + kYear);
  EXPECT_EQ(rec->latest_not_after, kNow + kYear);
  EXPECT_EQ(rec->expires_seconds, 0);
  EXPECT_EQ(BuildRecord(doc, 600)->expires_seconds, 600);
}

TEST(R12Record, JwkKeyByPublicKeyAlone) {
  auto cert = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear);
  auto doc = MustParse(R"({"keys":[)" + posh::testing::JwkFor(cert, "pk", true, false) +
                       R"(],"expires":900})");
  auto rec = BuildRecord(doc, 1800);
  ASSERT_TRUE(rec.ok());
  ASSERT_EQ(rec->keys.size(), 1u);
  EXPECT_FALSE(rec->keys[0].has_certificate);
  EXPECT_TRUE(rec->keys[0].fingerprints.empty());
  EXPECT_EQ(*rec->keys[0].public_key, cert.public_key);
  EXPECT_EQ(rec->keys[0].not_after, 0);
  EXPECT_EQ(rec->latest_not_after, 0);
  EXPECT_EQ(rec->expires_seconds, 900);
}

TEST(R12Record, LatestNotAfterAcrossKeys) {
  auto a = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kDay, "a");
  auto b = posh::testing::MakeCert(posh::testing::EcKey(1), kNow - kDay, kNow + 10 * kDay, "b");
  auto rec = BuildRecord(MustParse(R"({"keys":[)" + posh::testing::JwkFor(b, "b") + "," +
                                   posh::testing::JwkFor(a, "a") + "]}"));
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->latest_not_after, kNow + 10 * kDay);
}

TEST(R12Record, NoUsableKeyInHandBuiltDocument) {
  JwkSet set;
  set.keys.push_back(JwkKey{});
  auto rec = BuildRecord(Document(set));
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.error().code, kDocNoUsableKey);
}

}  // namespace
}  // namespace posh::core
