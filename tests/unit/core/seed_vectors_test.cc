// The seed draft's three JWK Sets (tests/data/seed-examples.json) through R12, R14, R16 and R13.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>

#include "core/base64.h"
#include "core/document.h"
#include "core/matcher.h"
#include "core/record.h"

namespace posh::core {
namespace {

constexpr int64_t k20120601 = 1338508800;
constexpr int64_t k20140601 = 1401580800;

std::vector<std::string> LoadSeedSets() {
  std::ifstream in(POSH_SEED_EXAMPLES, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::vector<std::string> out;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(text).get(root) != simdjson::SUCCESS) return out;
  simdjson::dom::array arr;
  if (root.get_array().get(arr) != simdjson::SUCCESS) return out;
  for (simdjson::dom::element e : arr) out.push_back(simdjson::minify(e));
  return out;
}

class R12SeedVectors : public ::testing::Test {
 protected:
  void SetUp() override {
    sets_ = LoadSeedSets();
    ASSERT_EQ(sets_.size(), 3u) << "cannot read " << POSH_SEED_EXAMPLES;
  }
  std::vector<std::string> sets_;
};

TEST_F(R12SeedVectors, AllKeysUsableOn20120601) {
  const size_t expected_keys[] = {1, 1, 2};
  for (size_t i = 0; i < sets_.size(); ++i) {
    auto r = ParseDocument(sets_[i], k20120601);
    ASSERT_TRUE(r.ok()) << "set " << i << ": " << r.error().message;
    const auto& set = std::get<JwkSet>(r.value());
    ASSERT_EQ(set.keys.size(), expected_keys[i]);
    for (const auto& k : set.keys) {
      EXPECT_TRUE(k.usable) << "set " << i << " kid " << k.kid << ": " << k.unusable_reason;
      ASSERT_TRUE(k.params.has_value());
      ASSERT_TRUE(k.cert.has_value());
      EXPECT_EQ(*k.params, k.cert->public_key);  // n carries a leading zero byte in the JWK
      EXPECT_EQ(k.kty, "RSA");
    }
  }
}

TEST_F(R12SeedVectors, KidsAndValidity) {
  auto r = ParseDocument(sets_[2], k20120601);
  ASSERT_TRUE(r.ok());
  const auto& set = std::get<JwkSet>(r.value());
  EXPECT_EQ(set.keys[0].kid, "hosting.example.net:2011-07-04");
  EXPECT_EQ(set.keys[1].kid, "hosting.example.net:2013-07-04");
  EXPECT_EQ(FormatTime(set.keys[0].cert->not_before), "2011-07-04T19:52:00Z");
  EXPECT_EQ(FormatTime(set.keys[0].cert->not_after), "2013-07-03T19:52:00Z");
  EXPECT_EQ(FormatTime(set.keys[1].cert->not_before), "2013-05-17T00:00:00Z");
  EXPECT_EQ(FormatTime(set.keys[1].cert->not_after), "2015-05-16T23:59:59Z");
}

TEST_F(R12SeedVectors, On20140601OnlyTheRolledOverKey) {
  auto r0 = ParseDocument(sets_[0], k20140601);
  ASSERT_FALSE(r0.ok());
  EXPECT_EQ(r0.error().code, kDocNoUsableKey);
  EXPECT_NE(r0.error().message.find(
                "key 0 (kid im.example.com:2011-07-04): certificate expired 2013-07-02T23:59:59Z"),
            std::string::npos)
      << r0.error().message;
  auto r1 = ParseDocument(sets_[1], k20140601);
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.error().code, kDocNoUsableKey);

  auto r2 = ParseDocument(sets_[2], k20140601);
  ASSERT_TRUE(r2.ok()) << r2.error().message;
  const auto& set = std::get<JwkSet>(r2.value());
  EXPECT_FALSE(set.keys[0].usable);
  EXPECT_NE(set.keys[0].unusable_reason.find("expired"), std::string::npos);
  EXPECT_TRUE(set.keys[1].usable);
  EXPECT_EQ(set.keys[1].kid, "hosting.example.net:2013-07-04");
}

TEST_F(R12SeedVectors, TodayNoKeyIsUsable) {
  const int64_t today = static_cast<int64_t>(std::time(nullptr));
  for (size_t i = 0; i < sets_.size(); ++i) {
    auto r = ParseDocument(sets_[i], today);
    ASSERT_FALSE(r.ok()) << "set " << i;
    EXPECT_EQ(r.error().code, kDocNoUsableKey);
    EXPECT_NE(r.error().message.find("no usable key"), std::string::npos);
  }
}

TEST_F(R12SeedVectors, RecordAndMatchAcrossRollOver) {
  // R16 input: latest notAfter among usable certificates; R13/R14: matching by x5c[0].
  auto doc = ParseDocument(sets_[2], k20120601);
  ASSERT_TRUE(doc.ok());
  auto rec = BuildRecord(doc.value());
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  EXPECT_EQ(rec->format, Format::kJwk);
  ASSERT_EQ(rec->keys.size(), 2u);
  EXPECT_EQ(rec->latest_not_after, 1431820799);  // 2015-05-16T23:59:59Z
  EXPECT_EQ(rec->expires_seconds, 0);

  const auto& set = std::get<JwkSet>(doc.value());
  const Certificate& old_cert = *set.keys[0].cert;
  const Certificate& new_cert = *set.keys[1].cert;
  auto m = Match(rec.value(), old_cert, k20120601);
  EXPECT_TRUE(m.matched) << m.reason;
  EXPECT_EQ(m.kid, "hosting.example.net:2011-07-04");
  // 2013-06-01: both certificates valid. The draft's roll-over reuses the key pair, so key 0
  // (first in the set) already matches the new certificate by public key (R13).
  ASSERT_EQ(old_cert.public_key, new_cert.public_key);
  m = Match(rec.value(), new_cert, 1370044800);
  EXPECT_TRUE(m.matched) << m.reason;
  EXPECT_EQ(m.key_index, 0);
  // 2014-06-01: the old certificate is expired (R14).
  m = Match(rec.value(), old_cert, k20140601);
  EXPECT_FALSE(m.matched);
  EXPECT_NE(m.reason.find("presented certificate expired at 2013-07-03T19:52:00Z"),
            std::string::npos)
      << m.reason;
  // 2014-06-01: key 0 has expired and never matches (R14); key 1 does.
  m = Match(rec.value(), new_cert, k20140601);
  EXPECT_TRUE(m.matched) << m.reason;
  EXPECT_EQ(m.key_index, 1);
  EXPECT_EQ(m.kid, "hosting.example.net:2013-07-04");
}

TEST_F(R12SeedVectors, SourceAndDelegatedSetsDoNotCrossMatch) {
  auto d0 = ParseDocument(sets_[0], k20120601);
  auto d1 = ParseDocument(sets_[1], k20120601);
  ASSERT_TRUE(d0.ok() && d1.ok());
  auto rec0 = BuildRecord(d0.value());
  ASSERT_TRUE(rec0.ok());
  const auto& cert1 = *std::get<JwkSet>(d1.value()).keys[0].cert;
  auto m = Match(rec0.value(), cert1, k20120601);
  EXPECT_FALSE(m.matched);
}

}  // namespace
}  // namespace posh::core
