// R13 matching, R14 validity, R15 verdict reasons.
#include "core/matcher.h"

#include <gtest/gtest.h>

#include "core/base64.h"
#include "support/test_certs.h"

namespace posh::core {
namespace {

using posh::testing::kDay;
using posh::testing::kNow;
using posh::testing::kYear;

class R13Match : public ::testing::Test {
 protected:
  Certificate leaf_ = posh::testing::MakeCert(posh::testing::RsaKey(), kNow - kDay, kNow + kYear,
                                              "xmpp.example", 10);
  Certificate other_ = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear,
                                               "other.example", 11);

  static std::string B64(HashAlg alg, const Certificate& c) {
    return EncodeBase64(Digest(alg, c.der));
  }
  static PoshRecord Record(const std::string& body, int64_t now = kNow) {
    auto doc = ParseDocument(body, now);
    EXPECT_TRUE(doc.ok()) << (doc.ok() ? "" : doc.error().message);
    if (!doc.ok()) return {};
    auto rec = BuildRecord(doc.value());
    EXPECT_TRUE(rec.ok()) << (rec.ok() ? "" : rec.error().message);
    return rec.ok() ? rec.value() : PoshRecord{};
  }
};

TEST_F(R13Match, Rfc7711Match) {
  auto rec = Record(R"({"fingerprints":[{"sha-256":")" + B64(HashAlg::kSha256, other_) +
                    R"("},{"sha-256":")" + B64(HashAlg::kSha256, leaf_) + R"(","sha-512":")" +
                    B64(HashAlg::kSha512, leaf_) + R"("}],"expires":60})");
  auto m = Match(rec, leaf_, kNow);
  EXPECT_TRUE(m.matched) << m.reason;
  EXPECT_EQ(m.key_index, 1);
  EXPECT_TRUE(m.reason.empty());
  auto m2 = Match(rec, other_, kNow);
  EXPECT_TRUE(m2.matched);
  EXPECT_EQ(m2.key_index, 0);
}

TEST_F(R13Match, Rfc7711EachTrustedHashAlone) {
  for (auto alg : {HashAlg::kSha224, HashAlg::kSha256, HashAlg::kSha384, HashAlg::kSha512}) {
    auto rec = Record(R"({"fingerprints":[{")" + std::string(HashAlgName(alg)) + R"(":")" +
                      B64(alg, leaf_) + R"("}],"expires":60})");
    EXPECT_TRUE(Match(rec, leaf_, kNow).matched) << HashAlgName(alg);
  }
}

// ParseCertificateDer computes the trusted digests once; Match uses them, and computes
// them itself for a certificate built without them.
TEST_F(R13Match, ParsedLeafCarriesItsTrustedDigests) {
  auto parsed = ParseCertificateDer(leaf_.der);
  ASSERT_TRUE(parsed.ok());
  for (auto alg : {HashAlg::kSha224, HashAlg::kSha256, HashAlg::kSha384, HashAlg::kSha512}) {
    const DigestValue* d = parsed.value().TrustedDigest(alg);
    ASSERT_NE(d, nullptr) << HashAlgName(alg);
    EXPECT_TRUE(*d == Digest(alg, leaf_.der)) << HashAlgName(alg);
  }
  EXPECT_EQ(parsed.value().TrustedDigest(HashAlg::kSha1), nullptr);
  EXPECT_EQ(parsed.value().TrustedDigest(HashAlg::kMd5), nullptr);
}

TEST_F(R13Match, DigestsComputedWhenNotPrecomputed) {
  Certificate bare = leaf_;
  bare.trusted_digests = {};
  auto rec = Record(R"({"fingerprints":[{"sha-512":")" + B64(HashAlg::kSha512, leaf_) +
                    R"("}],"expires":60})");
  EXPECT_TRUE(Match(rec, bare, kNow).matched);
  auto miss = Match(rec, other_, kNow);
  EXPECT_FALSE(miss.matched);
  EXPECT_NE(miss.reason.find(B64(HashAlg::kSha512, other_)), std::string::npos) << miss.reason;
}

TEST_F(R13Match, PrecomputedDigestIsTheOneCompared) {
  Certificate forged = leaf_;
  auto parsed_other = ParseCertificateDer(other_.der);
  ASSERT_TRUE(parsed_other.ok());
  forged.trusted_digests = parsed_other.value().trusted_digests;
  auto rec = Record(R"({"fingerprints":[{"sha-256":")" + B64(HashAlg::kSha256, other_) +
                    R"("}],"expires":60})");
  EXPECT_TRUE(Match(rec, forged, kNow).matched);
}

TEST_F(R13Match, Rfc7711Mismatch) {
  auto rec = Record(R"({"fingerprints":[{"sha-256":")" + B64(HashAlg::kSha256, other_) +
                    R"("}],"expires":60})");
  auto m = Match(rec, leaf_, kNow);
  EXPECT_FALSE(m.matched);
  EXPECT_EQ(m.key_index, -1);
  EXPECT_NE(m.reason.find("no descriptor matches the presented certificate (sha-256 " +
                          B64(HashAlg::kSha256, leaf_) + ")"),
            std::string::npos)
      << m.reason;
}

TEST_F(R13Match, StrongestHashNoFallback) {
  // Correct sha-256, wrong sha-512 in the same descriptor: sha-512 decides, mismatch.
  auto rec = Record(R"({"fingerprints":[{"sha-256":")" + B64(HashAlg::kSha256, leaf_) +
                    R"(","sha-512":")" + B64(HashAlg::kSha512, other_) + R"("}],"expires":60})");
  auto m = Match(rec, leaf_, kNow);
  EXPECT_FALSE(m.matched);
  EXPECT_NE(m.reason.find("sha-512"), std::string::npos) << m.reason;
  // Correct sha-384 but wrong sha-512: also a mismatch.
  rec = Record(R"({"fingerprints":[{"sha-384":")" + B64(HashAlg::kSha384, leaf_) +
               R"(","sha-512":")" + B64(HashAlg::kSha512, other_) + R"("}],"expires":60})");
  EXPECT_FALSE(Match(rec, leaf_, kNow).matched);
  // Wrong sha-256 but correct sha-512: sha-512 decides, match.
  rec = Record(R"({"fingerprints":[{"sha-256":")" + B64(HashAlg::kSha256, other_) +
               R"(","sha-512":")" + B64(HashAlg::kSha512, leaf_) + R"("}],"expires":60})");
  EXPECT_TRUE(Match(rec, leaf_, kNow).matched);
}

TEST_F(R13Match, UntrustedHashNeverDecides) {
  // A correct sha-1 is ignored; the (wrong) sha-256 decides.
  auto rec = Record(R"({"fingerprints":[{"sha-1":")" + B64(HashAlg::kSha1, leaf_) +
                    R"(","sha-256":")" + B64(HashAlg::kSha256, other_) + R"("}],"expires":60})");
  EXPECT_FALSE(Match(rec, leaf_, kNow).matched);
  // A wrong sha-1 with a correct sha-224 still matches (sha-1 is not "stronger").
  rec = Record(R"({"fingerprints":[{"sha-1":")" + B64(HashAlg::kSha1, other_) + R"(","sha-224":")" +
               B64(HashAlg::kSha224, leaf_) + R"("}],"expires":60})");
  EXPECT_TRUE(Match(rec, leaf_, kNow).matched);
}

TEST_F(R13Match, JwkByCertificate) {
  auto rec = Record(R"({"keys":[)" + posh::testing::JwkFor(other_, "o") + "," +
                    posh::testing::JwkFor(leaf_, "leaf") + "]}");
  auto m = Match(rec, leaf_, kNow);
  EXPECT_TRUE(m.matched) << m.reason;
  EXPECT_EQ(m.kid, "leaf");
  EXPECT_EQ(m.key_index, 1);
}

TEST_F(R13Match, JwkX5cOnlyMatchesSameKeyRenewedCertificate) {
  auto rec = Record(R"({"keys":[)" + posh::testing::JwkFor(leaf_, "leaf", false, true) + "]}");
  // A different certificate with the same key pair: the public key equals the JWK's key.
  auto renewed =
      posh::testing::MakeCert(posh::testing::RsaKey(), kNow, kNow + 2 * kYear, "xmpp.example", 99);
  EXPECT_TRUE(Match(rec, renewed, kNow).matched);
  EXPECT_FALSE(Match(rec, other_, kNow).matched);
}

TEST_F(R13Match, JwkPublicKeyOnlyMatch) {
  auto rec = Record(R"({"keys":[)" + posh::testing::JwkFor(other_, "pk", true, false) + "]}");
  auto m = Match(rec, other_, kNow);
  EXPECT_TRUE(m.matched) << m.reason;
  EXPECT_EQ(m.kid, "pk");
  auto m2 = Match(rec, leaf_, kNow);
  EXPECT_FALSE(m2.matched);
  EXPECT_NE(m2.reason.find("no key matches"), std::string::npos) << m2.reason;
  // EC key of another curve point never matches.
  auto ec2 = posh::testing::MakeCert(posh::testing::EcKey(1), kNow - kDay, kNow + kYear);
  EXPECT_FALSE(Match(rec, ec2, kNow).matched);
}

TEST_F(R13Match, JwkOtherKeyTypeNeverMatchesByKey) {
  auto ed = posh::testing::MakeCert(posh::testing::Ed25519Key(), kNow - kDay, kNow + kYear);
  auto rec =
      Record(R"({"keys":[{"kty":"OKP","kid":"ed","x5c":[")" + EncodeBase64(ed.der) + R"("]}]})");
  EXPECT_TRUE(Match(rec, ed, kNow).matched);  // by certificate
  auto ed2 =
      posh::testing::MakeCert(posh::testing::Ed25519Key(), kNow - kDay, kNow + kYear, "x", 2);
  EXPECT_FALSE(Match(rec, ed2, kNow).matched);  // same key, other cert: kOther never equal
}

TEST(R14Validity, ExpiredLeafNotMatched) {
  auto leaf = posh::testing::MakeCert(posh::testing::RsaKey(), kNow - kYear, kNow - kDay);
  PoshRecord rec;
  rec.format = Format::kRfc7711;
  KeyMaterial k;
  k.fingerprints.push_back({HashAlg::kSha256, Digest(HashAlg::kSha256, leaf.der)});
  rec.keys.push_back(k);
  auto m = Match(rec, leaf, kNow);
  EXPECT_FALSE(m.matched);
  EXPECT_EQ(m.reason, "presented certificate expired at " + FormatTime(kNow - kDay));
  // At a time inside its validity it matches (boundaries inclusive).
  EXPECT_TRUE(Match(rec, leaf, kNow - kDay).matched);
  EXPECT_TRUE(Match(rec, leaf, kNow - kYear).matched);
}

TEST(R14Validity, NotYetValidLeafNotMatched) {
  auto leaf = posh::testing::MakeCert(posh::testing::EcKey(), kNow + kDay, kNow + kYear);
  PoshRecord rec;
  rec.format = Format::kRfc7711;
  KeyMaterial k;
  k.fingerprints.push_back({HashAlg::kSha256, Digest(HashAlg::kSha256, leaf.der)});
  rec.keys.push_back(k);
  auto m = Match(rec, leaf, kNow);
  EXPECT_FALSE(m.matched);
  EXPECT_NE(m.reason.find("not valid before"), std::string::npos);
}

TEST(R14Validity, ExpiredJwkKeyNeverMatches) {
  // The record was built while the key was valid; at match time its certificate has expired.
  auto cert = posh::testing::MakeCert(posh::testing::RsaKey(), kNow - kYear, kNow + kDay);
  auto doc = ParseDocument(R"({"keys":[)" + posh::testing::JwkFor(cert, "k") + "]}", kNow);
  ASSERT_TRUE(doc.ok());
  auto rec = BuildRecord(doc.value());
  ASSERT_TRUE(rec.ok());
  // A fresh leaf with the same key pair, valid later: still no match by public key.
  auto leaf = posh::testing::MakeCert(posh::testing::RsaKey(), kNow, kNow + kYear, "n", 5);
  EXPECT_TRUE(Match(rec.value(), leaf, kNow).matched);
  auto m = Match(rec.value(), leaf, kNow + 2 * kDay);
  EXPECT_FALSE(m.matched);
  EXPECT_NE(m.reason.find("key k expired at " + FormatTime(kNow + kDay)), std::string::npos)
      << m.reason;
}

TEST(R14Validity, NotYetValidJwkKeyNeverMatches) {
  PoshRecord rec;
  rec.format = Format::kJwk;
  auto leaf = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear);
  KeyMaterial k;
  k.kid = "future";
  k.public_key = std::make_shared<const PublicKey>(leaf.public_key);
  k.not_before = kNow + kDay;
  k.not_after = kNow + kYear;
  rec.keys.push_back(k);
  EXPECT_FALSE(Match(rec, leaf, kNow).matched);
  EXPECT_TRUE(Match(rec, leaf, kNow + kDay).matched);
}

TEST(R15Reasons, EmptyRecordNotVerified) {
  auto leaf = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kDay, kNow + kYear);
  auto m = Match(PoshRecord{}, leaf, kNow);
  EXPECT_FALSE(m.matched);
  EXPECT_FALSE(m.reason.empty());
}

}  // namespace
}  // namespace posh::core
