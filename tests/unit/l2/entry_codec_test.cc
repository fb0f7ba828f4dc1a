// The second tier's entry codec (l2/entry_codec.h): an entry read from Redis is served only
// when its MAC is right for its key under the fleet key, and only for as long as the local
// rules allow (R16, R17, certificate notAfter), judged on simulated time.
#include "l2/entry_codec.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "cache/lifetime.h"
#include "cache/snapshot.h"
#include "l2/redis_tier.h"
#include "support/fake_clock.h"
#include "test_util.h"

namespace posh::l2 {
namespace {

using cache::testing::FingerprintRecord;
using cache::testing::JwkRecord;
using cache::testing::K;
using cache::testing::kT0;
using cache::testing::TempDir;

const std::string kFleetKey(32, 'k');

TEST(L2CodecTest, KeyHasPrefixServiceAndDomain) {
  EXPECT_EQ(RedisKey(K("example.com", "xmpp-server")), "poshd:v1:xmpp-server:example.com");
}

TEST(L2CodecTest, RoundTripFoundAndNotFound) {
  FakeClock clock(kT0);
  const cache::Lifetimes lt;
  auto found = cache::MakePositiveEntry(FingerprintRecord(3600), clock.NowMs(), lt);
  const std::string v = EncodeEntry(K("a.example"), *found, kFleetKey);
  clock.Advance(1000);
  Decoded d = DecodeEntry(v, K("a.example"), kFleetKey, clock.NowMs(), lt);
  ASSERT_EQ(d.status, DecodeStatus::kOk) << d.why;
  EXPECT_EQ(d.entry->status, cache::EntryStatus::kFound);
  EXPECT_EQ(d.entry->expires_at_ms, found->expires_at_ms);
  ASSERT_EQ(d.entry->record->keys.size(), 1u);
  EXPECT_EQ(d.entry->record->keys[0].fingerprints[0].value,
            found->record->keys[0].fingerprints[0].value);

  auto nf = cache::MakeNotFoundEntry(clock.NowMs(), lt);
  Decoded d2 = DecodeEntry(EncodeEntry(K("b.example"), *nf, kFleetKey), K("b.example"), kFleetKey,
                           clock.NowMs(), lt);
  ASSERT_EQ(d2.status, DecodeStatus::kOk) << d2.why;
  EXPECT_EQ(d2.entry->status, cache::EntryStatus::kNotFound);
}

TEST(L2CodecTest, WrongKeyMissingMacAndAlteredFingerprintAreBadMacs) {
  const cache::Lifetimes lt;
  auto e = cache::MakePositiveEntry(FingerprintRecord(3600), kT0, lt);
  const std::string v = EncodeEntry(K("a.example"), *e, kFleetKey);
  // Another fleet's key.
  EXPECT_EQ(DecodeEntry(v, K("a.example"), std::string(32, 'x'), kT0, lt).status,
            DecodeStatus::kBadMac);
  // No MAC at all: the bare serialized entry, as a writer without the key would store it.
  const std::string bare = cache::SerializeEntry(K("a.example"), *e);
  EXPECT_EQ(DecodeEntry(bare.substr(0, 10), K("a.example"), kFleetKey, kT0, lt).status,
            DecodeStatus::kBadMac);
  EXPECT_EQ(DecodeEntry(bare, K("a.example"), kFleetKey, kT0, lt).status, DecodeStatus::kBadMac);
  EXPECT_EQ(DecodeEntry("", K("a.example"), kFleetKey, kT0, lt).status, DecodeStatus::kBadMac);
  // An altered fingerprint under the old MAC: the attacker's certificate is not trusted.
  auto forged = std::make_shared<core::PoshRecord>(*e->record);
  forged->keys[0].fingerprints[0] = {core::HashAlg::kSha256, std::vector<uint8_t>(32, 0x66)};
  cache::Entry fe = *e;
  fe.record = forged;
  const std::string forged_ser = cache::SerializeEntry(K("a.example"), fe);
  const std::string altered = v.substr(0, kMacSize) + forged_ser;
  EXPECT_EQ(DecodeEntry(altered, K("a.example"), kFleetKey, kT0, lt).status, DecodeStatus::kBadMac);
  // One flipped byte anywhere.
  std::string flipped = v;
  flipped[flipped.size() / 2] ^= 0x01;
  EXPECT_EQ(DecodeEntry(flipped, K("a.example"), kFleetKey, kT0, lt).status, DecodeStatus::kBadMac);
}

TEST(L2CodecTest, EntryReplayedUnderAnotherDomainIsRefused) {
  const cache::Lifetimes lt;
  auto e = cache::MakePositiveEntry(FingerprintRecord(3600), kT0, lt);
  const std::string v = EncodeEntry(K("attacker.example"), *e, kFleetKey);
  // Copied by someone with write access to Redis under victim.example's key.
  EXPECT_EQ(DecodeEntry(v, K("victim.example"), kFleetKey, kT0, lt).status, DecodeStatus::kBadMac);
}

TEST(L2CodecTest, ExpiredEntryIsRefusedByTheLocalClock) {
  FakeClock clock(kT0);
  const cache::Lifetimes lt;
  auto e = cache::MakePositiveEntry(FingerprintRecord(3600), clock.NowMs(), lt);
  const std::string v = EncodeEntry(K("a.example"), *e, kFleetKey);
  clock.Advance(3600 * 1000 - 1);
  EXPECT_EQ(DecodeEntry(v, K("a.example"), kFleetKey, clock.NowMs(), lt).status, DecodeStatus::kOk);
  clock.Advance(1);
  EXPECT_EQ(DecodeEntry(v, K("a.example"), kFleetKey, clock.NowMs(), lt).status,
            DecodeStatus::kUnusable);
}

TEST(L2CodecTest, LocalMaxTtlAndNegativeTtlCapTheRemoteLifetime) {
  FakeClock clock(kT0);
  cache::Lifetimes remote_lt;
  remote_lt.max_ttl_ms = 24 * 3600 * 1000LL;
  auto e = cache::MakePositiveEntry(FingerprintRecord(86400), clock.NowMs(), remote_lt);
  cache::Lifetimes local_lt;
  local_lt.max_ttl_ms = 600 * 1000;
  Decoded d = DecodeEntry(EncodeEntry(K("a.example"), *e, kFleetKey), K("a.example"), kFleetKey,
                          clock.NowMs(), local_lt);
  ASSERT_EQ(d.status, DecodeStatus::kOk);
  EXPECT_EQ(d.entry->expires_at_ms, kT0 + 600 * 1000);
  EXPECT_LE(d.entry->refresh_at_ms, d.entry->expires_at_ms);
  clock.Advance(600 * 1000);
  EXPECT_EQ(DecodeEntry(EncodeEntry(K("a.example"), *e, kFleetKey), K("a.example"), kFleetKey,
                        clock.NowMs(), local_lt)
                .status,
            DecodeStatus::kUnusable);

  // A not-found entry whose writer claimed a day: the local negative TTL (R17) wins.
  cache::Entry nf = *cache::MakeNotFoundEntry(kT0, remote_lt);
  nf.expires_at_ms = kT0 + 86400 * 1000LL;
  Decoded dn = DecodeEntry(EncodeEntry(K("n.example"), nf, kFleetKey), K("n.example"), kFleetKey,
                           kT0, local_lt);
  ASSERT_EQ(dn.status, DecodeStatus::kOk);
  EXPECT_EQ(dn.entry->expires_at_ms, kT0 + local_lt.negative_ttl_ms);
}

TEST(L2CodecTest, ExpiredCertificateIsNeverServed) {
  const cache::Lifetimes lt;
  const int64_t not_after_s = kT0 / 1000 + 120;  // the certificate ends in 2 minutes
  auto e = cache::MakePositiveEntry(JwkRecord(86400, {not_after_s}), kT0, lt);
  ASSERT_TRUE(e);
  // Even if a writer claims a longer life, the record's keys bound it.
  cache::Entry longer = *e;
  longer.expires_at_ms = kT0 + 86400 * 1000LL;
  longer.hard_limit_ms = 0;
  const std::string v = EncodeEntry(K("j.example"), longer, kFleetKey);
  Decoded d = DecodeEntry(v, K("j.example"), kFleetKey, kT0, lt);
  ASSERT_EQ(d.status, DecodeStatus::kOk) << d.why;
  EXPECT_EQ(d.entry->expires_at_ms, not_after_s * 1000);
  EXPECT_EQ(d.entry->hard_limit_ms, not_after_s * 1000);
  EXPECT_EQ(DecodeEntry(v, K("j.example"), kFleetKey, not_after_s * 1000, lt).status,
            DecodeStatus::kUnusable);
}

TEST(L2CodecTest, StaleAndErrorEntriesAreNeverServed) {
  const cache::Lifetimes lt;
  auto err = cache::MakeErrorEntry("refused", 3, kT0, lt);
  EXPECT_EQ(
      DecodeEntry(EncodeEntry(K("e.example"), *err, kFleetKey), K("e.example"), kFleetKey, kT0, lt)
          .status,
      DecodeStatus::kUnusable);
  // A stale copy (R19) past its expiry: the stale window is not honoured from Redis.
  auto e = cache::MakePositiveEntry(FingerprintRecord(60), kT0, lt);
  auto stale = cache::MakeStaleEntry(*e, kT0 + 61 * 1000, lt);
  ASSERT_TRUE(stale);
  EXPECT_EQ(DecodeEntry(EncodeEntry(K("s.example"), *stale, kFleetKey), K("s.example"), kFleetKey,
                        kT0 + 61 * 1000, lt)
                .status,
            DecodeStatus::kUnusable);
}

TEST(L2CodecTest, FutureFetchTimeIsRefused) {
  const cache::Lifetimes lt;
  auto e = cache::MakePositiveEntry(FingerprintRecord(3600), kT0 + 3600 * 1000, lt);
  EXPECT_EQ(
      DecodeEntry(EncodeEntry(K("f.example"), *e, kFleetKey), K("f.example"), kFleetKey, kT0, lt)
          .status,
      DecodeStatus::kUnusable);
}

TEST(L2FleetKeyTest, RefusesShortOrShareableFiles) {
  TempDir dir;
  const std::string path = (dir.path() / "fleet.key").string();
  { std::ofstream(path) << std::string(40, 'z'); }
  ::chmod(path.c_str(), 0644);
  EXPECT_FALSE(LoadFleetKey(path).ok());
  ::chmod(path.c_str(), 0640);
  EXPECT_FALSE(LoadFleetKey(path).ok());
  ::chmod(path.c_str(), 0600);
  auto ok = LoadFleetKey(path);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->size(), 40u);
  { std::ofstream(path, std::ios::trunc) << std::string(31, 'z'); }
  EXPECT_FALSE(LoadFleetKey(path).ok());
  EXPECT_FALSE(LoadFleetKey((dir.path() / "absent").string()).ok());
}

TEST(L2RedisUrlTest, ParsesTcpAndUnix) {
  auto u = ParseRedisUrl("unix:/run/redis/redis.sock");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->unix_socket);
  EXPECT_EQ(u->host, "/run/redis/redis.sock");
  auto t = ParseRedisUrl("redis://127.0.0.1:6380");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->unix_socket);
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, 6380);
  auto l = ParseRedisUrl("redis://localhost");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->port, 6379);
  auto v6 = ParseRedisUrl("redis://[::1]:7000");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_FALSE(ParseRedisUrl("redis://redis.example.net:6379").ok());  // no DNS on the loop
  EXPECT_FALSE(ParseRedisUrl("http://127.0.0.1").ok());
  EXPECT_FALSE(ParseRedisUrl("unix:relative.sock").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://127.0.0.1:0").ok());
}

}  // namespace
}  // namespace posh::l2
