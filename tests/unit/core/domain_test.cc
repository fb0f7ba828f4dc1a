// R1 (domain) and R2 (service) normalisation.
#include "core/domain.h"

#include <gtest/gtest.h>

#include <string>

namespace posh::core {
namespace {

std::string Norm(std::string_view in) {
  auto r = NormalizeDomain(in);
  EXPECT_TRUE(r.ok()) << in << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : std::string();
}

// Expects a rejection whose message contains `fragment`.
void ExpectReject(std::string_view in, std::string_view fragment) {
  auto r = NormalizeDomain(in);
  ASSERT_FALSE(r.ok()) << "accepted: " << in << " -> " << r.value();
  EXPECT_NE(r.error().message.find(fragment), std::string::npos)
      << "input " << in << ": message \"" << r.error().message << "\" lacks \"" << fragment << "\"";
}

TEST(R1Domain, LowerCasesAndDropsOneTrailingDot) {
  EXPECT_EQ(Norm("Example.COM."), "example.com");
  EXPECT_EQ(Norm("example.com"), "example.com");
  EXPECT_EQ(Norm("IM.Example.Com"), "im.example.com");
  EXPECT_EQ(Norm("localhost"), "localhost");
  EXPECT_EQ(Norm("a-b.c1.example"), "a-b.c1.example");
}

TEST(R1Domain, TwoTrailingDotsIsEmptyLabel) { ExpectReject("example.com..", "empty label"); }

TEST(R1Domain, ULabelsBecomeALabels) {
  EXPECT_EQ(Norm("bücher.example"), "xn--bcher-kva.example");
  EXPECT_EQ(Norm("BÜCHER.example."), "xn--bcher-kva.example");
  EXPECT_EQ(Norm("例え.テスト"), "xn--r8jz45g.xn--zckzah");
  // A-labels pass through unchanged.
  EXPECT_EQ(Norm("xn--bcher-kva.example"), "xn--bcher-kva.example");
}

TEST(R1Domain, IdnaErrorsAreReported) {
  // U+2488 (DIGIT ONE FULL STOP) is disallowed in IDNA2008.
  auto r = NormalizeDomain("a\u2488b.example");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("A-label"), std::string::npos) << r.error().message;
}

// R1: IDNA2008 refuses the code points it disallows; UTS#46 mapping must not silently drop
// or fold them (U+200B would otherwise turn "dir<ZWSP>ect" into "direct").
TEST(R1Domain, RejectsCodePointsIdna2008Disallows) {
  ExpectReject("dir\u200bect.example", "U+200B");  // ZERO WIDTH SPACE (ignored by UTS#46)
  ExpectReject("dir\u200bect.example", "IDNA2008 disallows");
  ExpectReject("ex\u00adample.com", "U+00AD");          // SOFT HYPHEN (ignored by UTS#46)
  ExpectReject("b\u00fccher\ufe0f.example", "U+FE0F");  // VARIATION SELECTOR-16
  ExpectReject("\u2460.example", "U+2460");             // CIRCLED DIGIT ONE (UTS#46: "1")
  ExpectReject("\ufb01sh.example", "U+FB01");           // LATIN SMALL LIGATURE FI
  ExpectReject("\u2160.example", "U+2160");  // ROMAN NUMERAL ONE: its lower case is disallowed too
  ExpectReject("b\u00fccher.exa\u200dmple", "A-label");  // ZWJ outside its CONTEXTJ rule
}

// The mappings RFC 5895 allows for user input stay accepted.
TEST(R1Domain, KeepsCaseWidthAndSeparatorMappings) {
  EXPECT_EQ(Norm("B\u00dcCHER.example"), "xn--bcher-kva.example");                    // upper case
  EXPECT_EQ(Norm("\u0391\u0392\u0393.example"), Norm("\u03b1\u03b2\u03b3.example"));  // Greek
  EXPECT_EQ(Norm("\uff22\uff55\uff43\uff48.example"), "buch.example");                // full width
  EXPECT_EQ(Norm("b\u00fccher\u3002example"), "xn--bcher-kva.example");  // ideographic stop
  EXPECT_EQ(Norm("bu\u0308cher.example"), "xn--bcher-kva.example");      // NFC
  EXPECT_EQ(Norm("stra\u00dfe.example"), "xn--strae-oqa.example");       // non-transitional
}

// R1: an `xn--` label must decode to a valid U-label that round-trips.
TEST(R1Domain, RejectsMalformedALabels) {
  ExpectReject("xn--zz.example", "not a valid A-label");  // bad Punycode
  ExpectReject("XN--ZZ.example", "not a valid A-label");
  ExpectReject("www.xn--zz", "\"xn--zz\" is not a valid A-label");
  ExpectReject("xn--abc.example", "not a valid A-label");          // decodes to unassigned
  ExpectReject("xn--a-ecp.example", "not a valid A-label");        // a<U+2488>: disallowed
  ExpectReject("xn--direct-df0c.example", "not a valid A-label");  // dir<U+200B>ect
  ExpectReject("xn--wca.example", "not a valid A-label");          // upper-case U+00DC
  ExpectReject("xn--e-xbb.example", "not a valid A-label");        // e + U+0301: not NFC
  ExpectReject("xn--ls8h.example", "not a valid A-label");         // emoji: disallowed
  ExpectReject("xn--.example", "invalid domain");                  // empty Punycode
  ExpectReject("xn--abc-.example", "invalid domain");              // decodes to ASCII
  EXPECT_EQ(Norm("XN--BCHER-KVA.example"), "xn--bcher-kva.example");
  EXPECT_EQ(Norm("xn--r8jz45g.xn--zckzah"), "xn--r8jz45g.xn--zckzah");
}

TEST(R1Domain, RejectsEmpty) {
  ExpectReject("", "empty");
  ExpectReject(".", "empty");
}

TEST(R1Domain, RejectsTooLong) {
  std::string label(60, 'a');
  std::string name = label + "." + label + "." + label + "." + label + "." + "abcdefghij";  // 254
  ASSERT_EQ(name.size(), 254u);
  ExpectReject(name, "253");
  std::string ok = label + "." + label + "." + label + "." + label + "." + "abcdefghi";  // 253
  EXPECT_EQ(Norm(ok), ok);
  EXPECT_EQ(Norm(ok + "."), ok);
  ExpectReject(std::string(5000, 'a'), "253");
}

TEST(R1Domain, RejectsLabelsTooLongOrEmpty) {
  EXPECT_EQ(Norm(std::string(63, 'a') + ".example"), std::string(63, 'a') + ".example");
  ExpectReject(std::string(64, 'a') + ".example", "longer than 63");
  ExpectReject("a..example", "empty label");
  ExpectReject(".example", "empty label");
}

TEST(R1Domain, RejectsCharactersOutsideLdh) {
  ExpectReject("under_score.example", "outside letters, digits and hyphen");
  ExpectReject("star*.example", "outside letters, digits and hyphen");
  ExpectReject("a!b.example", "outside letters, digits and hyphen");
}

TEST(R1Domain, RejectsHyphenAtLabelEdges) {
  ExpectReject("-a.example", "hyphen");
  ExpectReject("a-.example", "hyphen");
  ExpectReject("example.com-", "hyphen");
}

TEST(R1Domain, RejectsIpLiterals) {
  ExpectReject("1.2.3.4", "IP address literal");
  ExpectReject("127.0.0.1.", "IP address literal");
  ExpectReject("[::1]", "IP address literal");
  ExpectReject("::1", "IP address literal");
  ExpectReject("2001:db8::1", "IP address literal");
  ExpectReject("[2001:db8::1]:443", "IP address literal");
  ExpectReject("300.1.1.1", "IP address literal");
}

TEST(R1Domain, RejectsPortPathSchemeUserinfo) {
  ExpectReject("example.com:443", "port");
  ExpectReject("example.com/path", "path");
  ExpectReject("example.com/", "path");
  ExpectReject("https://example.com", "scheme");
  ExpectReject("https://example.com/", "scheme");
  ExpectReject("a@b", "user info");
  ExpectReject("user@example.com", "user info");
  ExpectReject("example.com?x=1", "query");
  ExpectReject("example.com#frag", "fragment");
}

TEST(R1Domain, RejectsSpacesAndControls) {
  ExpectReject("exa mple.com", "whitespace");
  ExpectReject(" example.com", "whitespace");
  ExpectReject("example.com\n", "whitespace");
  ExpectReject(std::string("exa\0mple.com", 12), "control");
}

TEST(R1Domain, RejectsInvalidUtf8) {
  ExpectReject(
      "b\xfc"
      "cher.example",
      "UTF-8");                                       // Latin-1, not UTF-8
  ExpectReject("\xc3", "UTF-8");                      // truncated sequence
  ExpectReject("\xc0\xaf.example", "UTF-8");          // overlong
  ExpectReject("\xed\xa0\x80.example", "UTF-8");      // surrogate
  ExpectReject("\xf4\x90\x80\x80.example", "UTF-8");  // > U+10FFFF
}

TEST(R2Service, DefaultIsXmppServer) {
  auto r = NormalizeService("");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), "xmpp-server");
  EXPECT_EQ(kDefaultService, "xmpp-server");
}

TEST(R2Service, AcceptsPoshServiceNames) {
  for (std::string_view s : {"xmpp-server", "xmpp-client", "smtp", "a", "x1-2y"}) {
    auto r = NormalizeService(s);
    ASSERT_TRUE(r.ok()) << s;
    EXPECT_EQ(r.value(), s);
  }
  EXPECT_TRUE(NormalizeService(std::string(63, 'a')).ok());
}

TEST(R2Service, RejectsBadNames) {
  for (std::string_view s : {"-xmpp", "xmpp-", "XMPP-server", "xmpp_server", "xmpp server",
                             "_xmpp-server._tcp", "a/b", "xmpp.server"}) {
    auto r = NormalizeService(s);
    EXPECT_FALSE(r.ok()) << s;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("service"), std::string::npos);
    }
  }
  EXPECT_FALSE(NormalizeService(std::string(64, 'a')).ok());
}

TEST(R2Service, UpperCaseIsRejectedNotFolded) {
  auto r = NormalizeService("Xmpp-Server");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("upper-case"), std::string::npos);
}

}  // namespace
}  // namespace posh::core
