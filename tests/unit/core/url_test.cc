// core/url: absolute URLs through curl's URL API. ParseAbsoluteUrl reads what the fetcher
// will fetch (R6 redirect targets); ParseStrictAbsoluteUrl is R11's "absolute https URL".
#include "core/url.h"

#include <gtest/gtest.h>

#include <string>

namespace posh::core {
namespace {

TEST(Url, PartsAsCurlReadsThem) {
  auto u = ParseAbsoluteUrl("HTTPS://Example.COM/.well-known/posh/xmpp-server.json?q#f");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "/.well-known/posh/xmpp-server.json");
  auto v = ParseAbsoluteUrl("https://[::1]:8443");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->host, "[::1]");
  EXPECT_EQ(v->port, 8443);
  EXPECT_EQ(v->path, "/");
  auto other = ParseAbsoluteUrl("gopher+x://host.example/");  // unknown scheme: no port
  ASSERT_TRUE(other.ok()) << other.error().message;
  EXPECT_EQ(other->port, 0);
}

TEST(Url, RelativeOrHostlessIsError) {
  for (const char* url : {"", "/x", "//host.example/x", "host.example/x", "https://",
                          "https://:443/", "https://[::1/x", "https://host.example:99999/"}) {
    EXPECT_FALSE(ParseAbsoluteUrl(url).ok()) << url;
    EXPECT_FALSE(ParseStrictAbsoluteUrl(url).ok()) << url;
  }
}

// The lenient reading stays curl's (what a redirect's Location becomes when fetched); the
// strict one refuses each of these.
TEST(Url, StrictRefusesWhatCurlForgives) {
  for (const char* url :
       {"https:/host.example/x", "https:///host.example/x", "https://host.example:/x",
        "https://host.example:0/x", "https://user@host.example/x", "https://@host.example/x",
        "https://h\xC3\xA9.example/x"}) {
    EXPECT_TRUE(ParseAbsoluteUrl(url).ok()) << url;
    EXPECT_FALSE(ParseStrictAbsoluteUrl(url).ok()) << url;
  }
}

TEST(Url, StrictAcceptsRfc3986Urls) {
  for (const char* url :
       {"https://a.example", "https://a.example/x.json?y=1#z", "https://[2001:db8::1]:8443/x",
        "https://a.example:1/", "http://a.example/", "HTTPS://A.Example/"}) {
    auto u = ParseStrictAbsoluteUrl(url);
    ASSERT_TRUE(u.ok()) << url << ": " << u.error().message;
    EXPECT_EQ(u.value().host, ParseAbsoluteUrl(url).value().host);
  }
}

TEST(Url, HasScheme) {
  EXPECT_TRUE(HasScheme("https://x"));
  EXPECT_TRUE(HasScheme("a+b.c-d:"));
  EXPECT_FALSE(HasScheme("1http://x"));
  EXPECT_FALSE(HasScheme("/x:y"));
  EXPECT_FALSE(HasScheme("https"));
  EXPECT_FALSE(HasScheme(""));
}

}  // namespace
}  // namespace posh::core
