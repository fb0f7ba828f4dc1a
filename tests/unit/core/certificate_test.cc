// Certificates as R12-R14 need them: DER parsing, validity, canonical public keys, chain files.
#include "core/certificate.h"

#include <gtest/gtest.h>

#include <string>

#include "core/base64.h"
#include "support/test_certs.h"

namespace posh::core {
namespace {

using posh::testing::kDay;
using posh::testing::kNow;
using posh::testing::kYear;

TEST(R12Certificate, ParsesRsaWithValidityAndKey) {
  auto der = posh::testing::MakeCertDer(posh::testing::RsaKey(), kNow - kDay, kNow + kYear,
                                        "xmpp.example");
  auto c = ParseCertificateDer(der);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->der, der);
  EXPECT_EQ(c->not_before, kNow - kDay);
  EXPECT_EQ(c->not_after, kNow + kYear);
  EXPECT_EQ(c->public_key.type, PublicKey::Type::kRsa);
  EXPECT_EQ(c->public_key.a.size(), 256u);
  EXPECT_NE(c->public_key.a[0], 0);
  EXPECT_EQ(c->public_key.b, (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_NE(c->subject.find("xmpp.example"), std::string::npos);
  EXPECT_EQ(c->common_name, "xmpp.example");
}

TEST(R12Certificate, ParsesEcCurves) {
  for (auto [curve, size] : {std::pair{"P-256", 32u}, {"P-384", 48u}, {"P-521", 66u}}) {
    auto c = posh::testing::MakeCert(posh::testing::EcKey(0, curve), kNow, kNow + kDay);
    EXPECT_EQ(c.public_key.type, PublicKey::Type::kEc) << curve;
    EXPECT_EQ(c.public_key.curve, curve);
    EXPECT_EQ(c.public_key.a.size(), size);
    EXPECT_EQ(c.public_key.b.size(), size);
  }
}

TEST(R12Certificate, SameKeySameCanonicalPublicKey) {
  auto a = posh::testing::MakeCert(posh::testing::EcKey(), kNow, kNow + kDay, "a", 1);
  auto b = posh::testing::MakeCert(posh::testing::EcKey(), kNow - kYear, kNow + kYear, "b", 2);
  auto c = posh::testing::MakeCert(posh::testing::EcKey(1), kNow, kNow + kDay, "a", 1);
  EXPECT_EQ(a.public_key, b.public_key);
  EXPECT_FALSE(a.public_key == c.public_key);
  EXPECT_NE(a.der, b.der);
}

TEST(R12Certificate, OtherKeyTypesNeverEqual) {
  auto a = posh::testing::MakeCert(posh::testing::Ed25519Key(), kNow, kNow + kDay);
  EXPECT_EQ(a.public_key.type, PublicKey::Type::kOther);
  EXPECT_FALSE(a.public_key == a.public_key);
}

TEST(R12Certificate, RejectsTrailingBytes) {
  auto der = posh::testing::MakeCertDer(posh::testing::EcKey(), kNow, kNow + kDay);
  der.push_back(0);
  auto c = ParseCertificateDer(der);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("trailing"), std::string::npos);
}

TEST(R12Certificate, RejectsEmptyGarbageAndTruncated) {
  EXPECT_FALSE(ParseCertificateDer({}).ok());
  std::vector<uint8_t> garbage = {0x30, 0x82, 0xff, 0xff, 1, 2, 3};
  EXPECT_FALSE(ParseCertificateDer(garbage).ok());
  auto der = posh::testing::MakeCertDer(posh::testing::EcKey(), kNow, kNow + kDay);
  for (size_t cut : {size_t{1}, size_t{10}, der.size() / 2, der.size() - 1}) {
    std::vector<uint8_t> part(der.begin(), der.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_FALSE(ParseCertificateDer(part).ok()) << cut;
  }
}

TEST(R12Certificate, ParsesSha1SignedSeedCertificate) {
  // x5c[0] of the seed draft's §3 example (sha1WithRSAEncryption).
  const char* b64 =
      "MIIDgzCCAmugAwIBAgIBBjANBgkqhkiG9w0BAQUFADBGMQswCQYDVQQGEwJVUzERMA8GA1UECBMIQ29sb3JhZG8xDz"
      "ANBgNVBAcTBkRlbnZlcjETMBEGA1UEAxMKRXhhbXBsZSBDQTAeFw0xMTA3MDQwMDAwMDBaFw0xMzA3MDIyMzU5NTla"
      "MEoxCzAJBgNVBAYTAlVTMREwDwYDVQQIEwhDb2xvcmFkbzEPMA0GA1UEBxMGRGVudmVyMRcwFQYDVQQDEw5pbS5leG"
      "FtcGxlLmNvbTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBANxwssdcU3LbODErec3owrwUhlzjtuskAn8r"
      "AcBMRPImn5xAJRX+1T5g2D7MTozWWFk4TlpgzAR5slvM0tc35qAI9I0Cqk4ZLChQrYsWuY7alTrnNXdusHUYc6Eq89"
      "DZaH2knTcp57wAXzJPIG/tpBi5F7ck9LVRvRjybix0HJ7i4YrL+GeLuSgrjO4+GDcXIp8oV0FMKZH+NoMfUITlWYl/"
      "JcX1D0WUAiuAnvWtD4Kh/qMJU6FZuupZGHqPdc3vrXtp27LWgxzxjFa9qnOU6y53vCCJXLLI5sy2fCwEDzLJqh2T6U"
      "ItIzjrSUZMIsK8r2pXkroI0uYuNn3Wy+jAzK8CAwEAAaN4MHYwDAYDVR0TAQH/BAIwADAdBgNVHQ4EFgQUTmRcur7x"
      "qaIUoU6wjVFPFxpf3UYwCwYDVR0PBAQDAgXgMCcGA1UdEQQgMB6gHAYIKwYBBQUHCAWgEAwOaW0uZXhhbXBsZS5jb2"
      "0wEQYJYIZIAYb4QgEBBAQDAgZAMA0GCSqGSIb3DQEBBQUAA4IBAQBrtpz4USAT+gNWI8ccU9rFiP0Jr+76VCf8Leim"
      "sqjINfKuUFxVUK5TBcCU8pyRUdXBk5THt+LUW+bPqE4SAuKjTJ1wwme8kOqtsvrr6XDfPHyX6H7nQAaKD0VbvbHfTB"
      "Kh6jNVVi+4gJACeSEJdiskoNYuJAxNDI8DmN9qAxu/8dlQHlIT3NkTxMWFUdmW8rj2xdianfZEwuPXoI93jdpgvGhc"
      "SM92ahumFyEZ5ysK6KFsXyUmVuOQFaVsHtSAwrSGr70ASLzsCAi7JsvzO53QFW/KddkFLvEwCh/tgKK876poBox1NI"
      "6YYuWqhcKWADOOJdSfiXeu23E25tlbDRo8";
  auto der = DecodeBase64(b64);
  ASSERT_TRUE(der.has_value());
  auto c = ParseCertificateDer(*der);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(FormatTime(c->not_before), "2011-07-04T00:00:00Z");
  EXPECT_EQ(FormatTime(c->not_after), "2013-07-02T23:59:59Z");
  EXPECT_EQ(c->common_name, "im.example.com");
  EXPECT_EQ(c->public_key.type, PublicKey::Type::kRsa);
}

TEST(R13ChainFile, PemChainLeafFirst) {
  auto leaf = posh::testing::MakeCertDer(posh::testing::EcKey(), kNow, kNow + kDay, "leaf");
  auto ca = posh::testing::MakeCertDer(posh::testing::RsaKey(), kNow, kNow + kYear, "ca");
  std::string pem = "subject=leaf\n" + posh::testing::ToPem(leaf) + "\n" + posh::testing::ToPem(ca);
  auto chain = ParseChainFile(pem);
  ASSERT_TRUE(chain.ok()) << chain.error().message;
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[0], leaf);
  EXPECT_EQ((*chain)[1], ca);
}

TEST(R13ChainFile, SkipsNonCertificateBlocks) {
  auto leaf = posh::testing::MakeCertDer(posh::testing::EcKey(), kNow, kNow + kDay);
  std::string pem =
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" + posh::testing::ToPem(leaf);
  auto chain = ParseChainFile(pem);
  ASSERT_TRUE(chain.ok()) << chain.error().message;
  ASSERT_EQ(chain->size(), 1u);
}

TEST(R13ChainFile, SingleDer) {
  auto leaf = posh::testing::MakeCertDer(posh::testing::EcKey(), kNow, kNow + kDay);
  auto chain = ParseChainFile(std::string(leaf.begin(), leaf.end()));
  ASSERT_TRUE(chain.ok()) << chain.error().message;
  ASSERT_EQ(chain->size(), 1u);
  EXPECT_EQ((*chain)[0], leaf);
}

TEST(R13ChainFile, ErrorsOnEmptyAndGarbage) {
  EXPECT_FALSE(ParseChainFile("").ok());
  EXPECT_FALSE(ParseChainFile("hello world").ok());
  EXPECT_FALSE(
      ParseChainFile("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").ok());
  EXPECT_FALSE(
      ParseChainFile("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").ok());
  EXPECT_FALSE(ParseChainFile("-----BEGIN CERTIFICATE-----\nMIIB").ok());
  EXPECT_FALSE(
      ParseChainFile("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").ok());
}

// Validity times are read from both ASN.1 encodings (RFC 5280 4.1.2.5): UTCTime's two-digit
// year is 1950-2049, GeneralizedTime carries four digits (any year up to 9999). Expected
// values are computed independently (Python's calendar.timegm).
TEST(R12Certificate, ValidityTimesInBothEncodings) {
  struct Case {
    const char* not_before;
    const char* not_after;
    int64_t before;
    int64_t after;
  };
  const Case cases[] = {
      {"500101000000Z", "491231235959Z", -631152000, 2524607999},        // UTCTime: 1950 .. 2049
      {"000229120000Z", "991231235959Z", 951825600, 946684799},          // 2000 leap day, 1999
      {"19491231235959Z", "20500101000000Z", -631152001, 2524608000},    // Generalized, outside
      {"20230101000000Z", "99991231235959Z", 1672531200, 253402300799},  // far future
      {"00010101000000Z", "19700101000000Z", -62135596800, 0},           // year 1, epoch
  };
  for (const auto& c : cases) {
    auto der = posh::testing::MakeCertDerWithValidityText(posh::testing::EcKey(), c.not_before,
                                                          c.not_after);
    auto cert = ParseCertificateDer(der);
    ASSERT_TRUE(cert.ok()) << c.not_before << ": " << cert.error().message;
    EXPECT_EQ(cert->not_before, c.before) << c.not_before;
    EXPECT_EQ(cert->not_after, c.after) << c.not_after;
  }
}

TEST(R15FormatTime, Rfc3339Utc) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(kNow), "2023-11-14T22:13:20Z");
  EXPECT_EQ(FormatTime(951782400), "2000-02-29T00:00:00Z");
  EXPECT_EQ(FormatTime(-1), "1969-12-31T23:59:59Z");
  EXPECT_EQ(FormatTime(INT64_MAX), "9999-12-31T23:59:59Z");
  EXPECT_EQ(FormatTime(INT64_MIN), "0001-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(-631152001), "1949-12-31T23:59:59Z");
  EXPECT_EQ(FormatTime(2524608000), "2050-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(253402300799), "9999-12-31T23:59:59Z");
  EXPECT_EQ(FormatTime(-62135596800), "0001-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(951782400 + 86399), "2000-02-29T23:59:59Z");
}

}  // namespace
}  // namespace posh::core
