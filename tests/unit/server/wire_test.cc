// The hand-written wire format of the raw Lookup/Verify methods against the generated
// protobuf code: requests it writes are read the same, answers we write are the bytes it
// writes, and malformed bytes are refused with a reason instead of read past.
#include "server/wire.h"

#include <gtest/gtest.h>

#include "posh/v1/resolver.pb.h"
#include "server/grpc_service.h"

namespace posh::server {
namespace {

TEST(WireLookupRequest, ReadsWhatProtobufWrites) {
  posh::v1::LookupRequest m;
  m.set_domain("xmpp.example.org");
  m.set_service("xmpp-client");
  m.set_refresh(true);
  const std::string bytes = m.SerializeAsString();  // the views point into it
  wire::LookupRequestView v;
  ASSERT_EQ(wire::ParseLookupRequest(bytes, &v), "");
  EXPECT_EQ(v.domain, "xmpp.example.org");
  EXPECT_EQ(v.service, "xmpp-client");
  EXPECT_TRUE(v.refresh);

  ASSERT_EQ(wire::ParseLookupRequest("", &v), "");  // the empty message: all defaults
  EXPECT_EQ(v.domain, "");
  EXPECT_EQ(v.service, "");
  EXPECT_FALSE(v.refresh);
}

TEST(WireLookupRequest, LastOccurrenceWinsAndUnknownFieldsAreSkipped) {
  std::string bytes;
  wire::AppendBytesField(&bytes, 1, "first.example");
  wire::AppendVarintField(&bytes, 99, 12345);                            // unknown varint
  wire::AppendBytesField(&bytes, 100, "unknown bytes");                  // unknown length-delimited
  bytes += std::string("\xad\x06\x01\x02\x03\x04", 6);                   // field 101, fixed32
  bytes += std::string("\xb1\x06\x01\x02\x03\x04\x05\x06\x07\x08", 10);  // 102, fixed64
  wire::AppendVarintField(&bytes, 1, 7);  // field 1 with the wrong wire type
  wire::AppendBytesField(&bytes, 1, "second.example");
  wire::AppendVarintField(&bytes, 3, 2);  // any non-zero bool is true
  wire::AppendVarintField(&bytes, 3, 0);  // ... and the last one wins
  posh::v1::LookupRequest m;
  ASSERT_TRUE(m.ParseFromString(bytes));
  wire::LookupRequestView v;
  ASSERT_EQ(wire::ParseLookupRequest(bytes, &v), "");
  EXPECT_EQ(v.domain, m.domain());
  EXPECT_EQ(v.domain, "second.example");
  EXPECT_EQ(v.refresh, m.refresh());
  EXPECT_FALSE(v.refresh);
}

TEST(WireLookupRequest, MalformedBytesAreRefused) {
  wire::LookupRequestView v;
  const std::string cases[] = {
      std::string("\x0a", 1),  // tag without a length
      std::string("\x0a\x05"
                  "abc",
                  5),                              // length past the end
      std::string("\x0a\xff\xff\xff\xff\x0f", 6),  // huge length
      std::string("\x18", 1),                      // varint field without a value
      std::string("\x18\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12),  // 11-byte varint
      std::string("\x00", 1),                                               // field number 0
      std::string("\x0b", 1),              // start group (wire type 3)
      std::string("\x0e", 1),              // wire type 6
      std::string("\x0d\x01\x02", 3),      // truncated fixed32
      std::string("\x09\x01\x02\x03", 4),  // truncated fixed64
      std::string("\x80", 1),              // truncated tag
  };
  for (const auto& bytes : cases) {
    EXPECT_NE(wire::ParseLookupRequest(bytes, &v), "") << ::testing::PrintToString(bytes);
    posh::v1::LookupRequest m;
    EXPECT_FALSE(m.ParseFromString(bytes)) << ::testing::PrintToString(bytes);
  }
}

TEST(WireVerifyRequest, LeafIsTheFirstChainElement) {
  posh::v1::VerifyRequest m;
  m.set_domain("example.com");
  m.add_presented_chain(std::string("\x30\x82\x01\x00leaf", 8));
  m.add_presented_chain("ca");
  m.add_presented_chain("root");
  const std::string bytes = m.SerializeAsString();  // the views point into it
  wire::VerifyRequestView v;
  ASSERT_EQ(wire::ParseVerifyRequest(bytes, &v), "");
  EXPECT_EQ(v.domain, "example.com");
  EXPECT_EQ(v.service, "");
  EXPECT_EQ(v.leaf, std::string("\x30\x82\x01\x00leaf", 8));
  EXPECT_EQ(v.chain_size, 3u);

  ASSERT_EQ(wire::ParseVerifyRequest("", &v), "");
  EXPECT_EQ(v.chain_size, 0u);
  EXPECT_TRUE(v.leaf.empty());
  EXPECT_NE(wire::ParseVerifyRequest(std::string("\x1a\x10short", 7), &v), "");
}

TEST(WireWriters, CanonicalEncodingOfEveryKind) {
  posh::v1::VerifyResponse m;
  m.set_verdict(posh::v1::VERDICT_NOT_VERIFIED);
  m.set_domain("d");
  m.set_matched_key_index(-1);
  m.set_from_cache(true);
  std::string bytes;
  wire::AppendVarintField(&bytes, 1, 2);
  wire::AppendBytesField(&bytes, 2, "d");
  wire::AppendInt32Field(&bytes, 7, -1);
  wire::AppendVarintField(&bytes, 9, 1);
  EXPECT_EQ(bytes, m.SerializeAsString());

  posh::v1::LookupResponse big;
  big.set_error(std::string(300, 'x'));  // a two-byte length
  std::string b2;
  wire::AppendBytesField(&b2, 9, std::string(300, 'x'));
  EXPECT_EQ(b2, big.SerializeAsString());
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// VerifyResponseBuffer writes exactly what the generated serialiser writes for the same
// answer (fields in number order, defaults left out), whatever the verdict.
TEST(WireVerifyResponse, SameBytesAsTheGeneratedCode) {
  auto record = std::make_shared<core::PoshRecord>();
  record->delegated_to = "hosting.example";
  record->source_url = "https://hosting.example/.well-known/posh/xmpp-server.json";
  core::KeyMaterial key;
  key.kid = "k1";
  record->keys.push_back(key);
  auto entry = std::make_shared<cache::Entry>();
  entry->status = cache::EntryStatus::kFound;
  entry->record = record;
  entry->fetched_at_ms = 1'800'000'000'123;
  entry->expires_at_ms = 1'800'086'400'000;
  const cache::Key k{"example.com", "xmpp-server"};

  for (int variant = 0; variant < 4; ++variant) {
    VerifyAnswer v;
    v.lookup = LookupAnswer{entry, variant % 2 == 0, false};
    if (variant < 2) {
      v.verdict = core::Verdict::kVerified;
      v.match.matched = true;
      v.match.key_index = variant;  // 0 is a default and is left out
      v.match.kid = "k1";
    } else {
      v.verdict = core::Verdict::kNotVerified;
      v.reason = "no descriptor matches the presented certificate (sha-256 AAAA)";
    }
    posh::v1::VerifyResponse expected;
    expected.set_verdict(v.verdict == core::Verdict::kVerified ? posh::v1::VERDICT_VERIFIED
                                                               : posh::v1::VERDICT_NOT_VERIFIED);
    expected.set_domain(k.domain);
    expected.set_service(k.service);
    expected.set_delegated_to(record->delegated_to);
    expected.set_reason(v.reason);
    expected.set_matched_kid(v.match.kid);
    expected.set_matched_key_index(v.match.matched ? v.match.key_index : -1);
    expected.set_from_cache(v.lookup.from_cache);
    FillLookupResponse(k, v.lookup, expected.mutable_record());

    posh::v1::LookupResponse record_message;
    FillLookupResponse(k, v.lookup, &record_message);
    const std::string got = Flatten(VerifyResponseBuffer(k, v, SerializeToSlice(record_message)));
    EXPECT_EQ(got, expected.SerializeAsString()) << "variant " << variant;
    posh::v1::VerifyResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(got));
    EXPECT_EQ(parsed.record().delegated_to(), "hosting.example");
    EXPECT_EQ(parsed.matched_key_index(), v.match.matched ? variant : -1);
  }
}

}  // namespace
}  // namespace posh::server
