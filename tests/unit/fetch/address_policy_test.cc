// R8: the address classifier, and the URL / connect-to helpers the fetcher relies on.
#include "fetch/address_policy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

#include "fetch/url.h"

namespace posh::fetch {
namespace {

AddressClass C(const char* text) {
  auto c = ClassifyAddressString(text);
  EXPECT_TRUE(c.has_value()) << text;
  return c.value_or(AddressClass::kGlobal);
}

TEST(AddressPolicyR8, GlobalAddressesAreAllowed) {
  for (const char* a : {"8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.0",
                        "172.15.255.255", "172.32.0.0", "192.167.255.255", "223.255.255.255",
                        "2001:4860:4860::8888", "2606:4700:4700::1111", "2a00:1450::1",
                        "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"}) {
    EXPECT_EQ(C(a), AddressClass::kGlobal) << a;
  }
}

TEST(AddressPolicyR8, LoopbackIsRefused) {
  EXPECT_EQ(C("127.0.0.1"), AddressClass::kLoopback);
  EXPECT_EQ(C("127.255.255.254"), AddressClass::kLoopback);
  EXPECT_EQ(C("::1"), AddressClass::kLoopback);
  EXPECT_EQ(C("[::1]"), AddressClass::kLoopback);
  EXPECT_EQ(C("::ffff:127.0.0.1"), AddressClass::kLoopback);
}

TEST(AddressPolicyR8, Rfc1918AndRfc4193AreRefused) {
  for (const char* a :
       {"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1",
        "fd12:3456::1", "fec0::1", "::ffff:10.1.2.3", "::ffff:192.168.0.1", "64:ff9b:1::1"}) {
    EXPECT_EQ(C(a), AddressClass::kPrivate) << a;
  }
}

TEST(AddressPolicyR8, LinkLocalUnspecifiedMulticastAreRefused) {
  EXPECT_EQ(C("169.254.169.254"), AddressClass::kLinkLocal);
  EXPECT_EQ(C("fe80::1"), AddressClass::kLinkLocal);
  EXPECT_EQ(C("febf::1"), AddressClass::kLinkLocal);
  EXPECT_EQ(C("0.0.0.0"), AddressClass::kUnspecified);
  EXPECT_EQ(C("::"), AddressClass::kUnspecified);
  EXPECT_EQ(C("224.0.0.1"), AddressClass::kMulticast);
  EXPECT_EQ(C("239.255.255.250"), AddressClass::kMulticast);
  EXPECT_EQ(C("ff02::1"), AddressClass::kMulticast);
  EXPECT_EQ(C("::ffff:169.254.1.1"), AddressClass::kLinkLocal);
}

TEST(AddressPolicyR8, OtherNonGlobalRangesAreRefused) {
  EXPECT_EQ(C("100.64.0.1"), AddressClass::kSharedCgnat);
  EXPECT_EQ(C("100.127.255.255"), AddressClass::kSharedCgnat);
  EXPECT_EQ(C("0.1.2.3"), AddressClass::kThisNetwork);
  EXPECT_EQ(C("240.0.0.1"), AddressClass::kReserved);
  EXPECT_EQ(C("255.255.255.255"), AddressClass::kBroadcast);
  EXPECT_EQ(C("192.0.0.8"), AddressClass::kReserved);
  EXPECT_EQ(C("192.88.99.1"), AddressClass::kReserved);
  EXPECT_EQ(C("192.0.2.1"), AddressClass::kDocumentation);
  EXPECT_EQ(C("198.51.100.7"), AddressClass::kDocumentation);
  EXPECT_EQ(C("203.0.113.9"), AddressClass::kDocumentation);
  EXPECT_EQ(C("198.18.0.1"), AddressClass::kBenchmarking);
  EXPECT_EQ(C("198.19.255.255"), AddressClass::kBenchmarking);
  EXPECT_EQ(C("2001:db8::1"), AddressClass::kDocumentation);
  EXPECT_EQ(C("3fff::1"), AddressClass::kDocumentation);
  EXPECT_EQ(C("2001:2::1"), AddressClass::kBenchmarking);
  EXPECT_EQ(C("2001::1"), AddressClass::kReserved);  // Teredo
  EXPECT_EQ(C("100::1"), AddressClass::kReserved);   // discard-only
  EXPECT_EQ(C("4000::1"), AddressClass::kReserved);  // outside 2000::/3
  EXPECT_EQ(C("::2"), AddressClass::kThisNetwork);   // IPv4-compatible 0.0.0.2
}

TEST(AddressPolicyR8, EmbeddedIPv4IsJudgedByTheIPv4Address) {
  EXPECT_EQ(C("::ffff:100.64.1.1"), AddressClass::kSharedCgnat);
  EXPECT_EQ(C("::127.0.0.1"), AddressClass::kLoopback);       // IPv4-compatible
  EXPECT_EQ(C("64:ff9b::7f00:1"), AddressClass::kLoopback);   // NAT64
  EXPECT_EQ(C("2002:c0a8:0101::1"), AddressClass::kPrivate);  // 6to4 of 192.168.1.1
  EXPECT_EQ(C("::ffff:224.0.0.1"), AddressClass::kMulticast);
}

TEST(AddressPolicyR8, NotAnAddress) {
  EXPECT_FALSE(ClassifyAddressString("example.com").has_value());
  EXPECT_FALSE(ClassifyAddressString("").has_value());
  EXPECT_FALSE(ClassifyAddressString("1.2.3").has_value());
}

TEST(AddressPolicyR8, SockaddrClassificationAndFormatting) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
  EXPECT_EQ(ClassifySockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(in)),
            AddressClass::kLoopback);
  EXPECT_EQ(FormatSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof(in)), "127.0.0.1");
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2606:4700::1", &in6.sin6_addr);
  EXPECT_EQ(ClassifySockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(in6)),
            AddressClass::kGlobal);
  EXPECT_EQ(FormatSockaddr(reinterpret_cast<sockaddr*>(&in6), sizeof(in6)), "2606:4700::1");
  EXPECT_EQ(ClassifySockaddr(nullptr, 0), AddressClass::kReserved);
}

TEST(UrlR4, ParsesAbsoluteHttpsUrls) {
  auto u = ParseAbsoluteUrl("HTTPS://Example.COM/.well-known/posh/xmpp-server.json");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "/.well-known/posh/xmpp-server.json");
  auto v = ParseAbsoluteUrl("https://[::1]:8443/x");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->host, "[::1]");
  EXPECT_EQ(v->port, 8443);
  auto h = ParseAbsoluteUrl("http://example.com/");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->scheme, "http");
  EXPECT_EQ(h->port, 80);
}

TEST(UrlR6, RejectsRelativeAndMalformed) {
  EXPECT_FALSE(ParseAbsoluteUrl("/relative/path").ok());
  EXPECT_FALSE(ParseAbsoluteUrl("//example.com/x").ok());
  EXPECT_FALSE(ParseAbsoluteUrl("https://").ok());
  EXPECT_FALSE(ParseAbsoluteUrl("").ok());
  EXPECT_TRUE(HasScheme("https:x"));
  EXPECT_FALSE(HasScheme("1abc:x"));
  EXPECT_EQ(LastPathSegment("/a/b/posh._xmpp-server._tcp.json"), "posh._xmpp-server._tcp.json");
  EXPECT_EQ(LastPathSegment("/"), "");
}

TEST(ConnectToR8, MatchesLikeCurl) {
  std::vector<std::string> rules = {"a.example:443:127.0.0.1:8443", ":8080:10.0.0.1:80",
                                    "b.example::127.0.0.2:", "[::1]:443:127.0.0.1:443"};
  EXPECT_EQ(MatchConnectTo(rules, "a.example", 443), 0u);
  EXPECT_EQ(MatchConnectTo(rules, "A.EXAMPLE", 443), 0u);
  EXPECT_FALSE(MatchConnectTo(rules, "a.example", 444).has_value());
  EXPECT_EQ(MatchConnectTo(rules, "anything.example", 8080), 1u);
  EXPECT_EQ(MatchConnectTo(rules, "b.example", 1234), 2u);
  EXPECT_EQ(MatchConnectTo(rules, "[::1]", 443), 3u);
  EXPECT_FALSE(MatchConnectTo(rules, "c.example", 443).has_value());
  EXPECT_FALSE(MatchConnectTo({"a.example"}, "a.example", 443).has_value());  // malformed
  EXPECT_EQ(MatchConnectTo({"::x:1"}, "z.example", 443), 0u);                 // any host, any port
  // First match wins.
  EXPECT_EQ(MatchConnectTo({"::h1:1", "a.example:443:h2:2"}, "a.example", 443), 0u);
}

}  // namespace
}  // namespace posh::fetch
