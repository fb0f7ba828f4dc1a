// poshctl probe: the STARTTLS side of an XMPP stream, parsed from hostile byte streams.
#include "xmpp_stream_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace posh::ctl::probe {
namespace {

using State = XmppStreamParser::State;

const std::string kHeader =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='1' version='1.0'>";
const std::string kFeaturesTls =
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "</stream:features>";

TEST(XmppStreamParser, FeaturesThenProceed) {
  XmppStreamParser p;
  EXPECT_EQ(p.Feed(kHeader), State::kWaitingFeatures);
  EXPECT_EQ(p.Feed(kFeaturesTls), State::kFeatures);
  EXPECT_TRUE(p.offers_starttls());
  EXPECT_TRUE(p.starttls_required());
  EXPECT_EQ(p.Feed("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"), State::kProceed);
  EXPECT_TRUE(XmppStreamParser::Terminal(p.state()));
}

TEST(XmppStreamParser, ByteByByteIsTheSame) {
  XmppStreamParser p;
  const std::string all =
      kHeader + kFeaturesTls + "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
  for (char c : all) p.Feed(std::string_view(&c, 1));
  EXPECT_EQ(p.state(), State::kProceed);
  EXPECT_TRUE(p.features_seen());
}

TEST(XmppStreamParser, FeaturesWithoutStarttls) {
  XmppStreamParser p;
  p.Feed(kHeader +
         "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
         "</stream:features>");
  EXPECT_EQ(p.state(), State::kFeatures);
  EXPECT_FALSE(p.offers_starttls());
}

TEST(XmppStreamParser, StarttlsInTheWrongNamespaceIsNotAnOffer) {
  XmppStreamParser p;
  p.Feed(kHeader + "<stream:features><starttls xmlns='urn:example:other'/></stream:features>");
  EXPECT_EQ(p.state(), State::kFeatures);
  EXPECT_FALSE(p.offers_starttls());
}

TEST(XmppStreamParser, FailureToStarttls) {
  XmppStreamParser p;
  p.Feed(kHeader + kFeaturesTls);
  EXPECT_EQ(p.Feed("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"),
            State::kFailure);
}

TEST(XmppStreamParser, StreamErrorWithConditionAndText) {
  XmppStreamParser p;
  p.Feed(kHeader +
         "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
         "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such\thost</text>"
         "</stream:error></stream:stream>");
  EXPECT_EQ(p.state(), State::kStreamError);
  EXPECT_EQ(p.error(), "host-unknown (no such?host)");
}

TEST(XmppStreamParser, GarbageIsNotXml) {
  XmppStreamParser p;
  EXPECT_EQ(p.Feed("HTTP/1.1 400 Bad Request\r\n\r\n"), State::kInvalid);
  EXPECT_NE(p.error().find("not well-formed XML"), std::string::npos) << p.error();
}

TEST(XmppStreamParser, BinaryGarbageIsNotXml) {
  XmppStreamParser p;
  const std::string tls_alert("\x15\x03\x01\x00\x02\x02\x46", 7);
  EXPECT_EQ(p.Feed(tls_alert), State::kInvalid);
}

TEST(XmppStreamParser, WellFormedButNotAStream) {
  XmppStreamParser p;
  EXPECT_EQ(p.Feed("<html><body>"), State::kInvalid);
  EXPECT_NE(p.error().find("not an XMPP stream"), std::string::npos) << p.error();
}

TEST(XmppStreamParser, EndlessHeaderNeverCompletes) {
  // The caller's 64 KiB limit ends this: the parser must simply stay incomplete (and not
  // claim a header) however much arrives.
  XmppStreamParser p;
  p.Feed("<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='");
  const std::string chunk(4096, 'x');
  for (int i = 0; i < 16; ++i) EXPECT_EQ(p.Feed(chunk), State::kWaitingHeader);
}

TEST(XmppStreamParser, EndlessFeaturesNeverComplete) {
  XmppStreamParser p;
  p.Feed(kHeader + "<stream:features>");
  const std::string chunk = "<x xmlns='urn:example'/>";
  for (int i = 0; i < 3000; ++i) p.Feed(chunk);  // ~70 KiB
  EXPECT_EQ(p.state(), State::kWaitingFeatures);
  EXPECT_FALSE(p.features_seen());
}

TEST(XmppStreamParser, DoctypeIsForbidden) {
  // RFC 6120 11.1; also closes the door on entity expansion.
  XmppStreamParser p;
  p.Feed(
      "<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY a 'aaaaaaaa'>]><stream:stream "
      "xmlns:stream='http://etherx.jabber.org/streams'>");
  EXPECT_EQ(p.state(), State::kInvalid);
  EXPECT_NE(p.error().find("DOCTYPE"), std::string::npos) << p.error();
}

TEST(XmppStreamParser, ClosedStreamBeforeFeatures) {
  XmppStreamParser p;
  EXPECT_EQ(p.Feed(kHeader + "</stream:stream>"), State::kClosed);
}

TEST(XmppStreamParser, InputAfterTerminalStateIsIgnored) {
  XmppStreamParser p;
  p.Feed(kHeader + kFeaturesTls + "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  // TLS bytes after <proceed/> are none of the XML parser's business.
  EXPECT_EQ(p.Feed(std::string("\x16\x03\x01\x02\x00", 5)), State::kProceed);
}

TEST(XmppStreamParser, StanzaBeforeFeaturesIsIgnored) {
  XmppStreamParser p;
  p.Feed(kHeader + "<message xmlns='jabber:server'><body>hi</body></message>" + kFeaturesTls);
  EXPECT_EQ(p.state(), State::kFeatures);
  EXPECT_TRUE(p.offers_starttls());
}

}  // namespace
}  // namespace posh::ctl::probe
