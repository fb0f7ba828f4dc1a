// poshctl probe: STARTTLS over a plain XMPP stream (RFC 6120 5.4.2), bounded in bytes
// (kMaxPreTlsBytes) and in time (the deadline).
#include <string>

#include "probe.h"
#include "xmpp_stream_parser.h"

namespace posh::ctl::probe {
namespace {

using State = XmppStreamParser::State;

std::string StreamHeader(const std::string& domain, const std::string& service) {
  std::string h = "<?xml version='1.0'?><stream:stream to='";
  h += domain;  // a normalised domain name: no quote or markup can appear in it
  h += "' version='1.0' xmlns='";
  h += service == "xmpp-client" ? "jabber:client" : "jabber:server";
  h += "' xmlns:stream='http://etherx.jabber.org/streams'>";
  return h;
}

// Why the server's stream ended the negotiation, in the report's words.
Error Refusal(const XmppStreamParser& p) {
  switch (p.state()) {
    case State::kFailure:
      return Error{0, "the server answered <failure/> to STARTTLS"};
    case State::kStreamError:
      return Error{0, "stream error: " + p.error()};
    case State::kClosed:
      return Error{0, "the server closed the XMPP stream (</stream:stream>)"};
    case State::kInvalid:
      return Error{0, p.error()};
    default:
      return Error{0, std::string("unexpected state: ") + StateName(p.state())};
  }
}

// Reads until the parser reaches one of `wanted` (or something terminal).
Result<Ok> ReadUntil(int fd, XmppStreamParser& parser, size_t& total, const Deadline& deadline,
                     bool (*reached)(State)) {
  char buf[4096];
  while (!reached(parser.state()) && !XmppStreamParser::Terminal(parser.state())) {
    if (total >= kMaxPreTlsBytes) {
      const bool header = parser.state() == State::kWaitingHeader;
      return Fail(Error{0, "the server sent " + std::to_string(total) + " bytes without " +
                               (header                   ? "completing the stream header"
                                : parser.features_seen() ? "answering <starttls/>"
                                                         : "completing the stream features") +
                               " (limit 64 KiB)"});
    }
    const size_t max = std::min(sizeof buf, kMaxPreTlsBytes - total);
    auto n = RecvSome(fd, buf, max, deadline);
    if (!n) {
      const char* where = parser.state() == State::kWaitingHeader ? "no stream header"
                          : parser.features_seen()                ? "no <proceed/>"
                                                                  : "no stream features";
      return Fail(Error{n.error().code, std::string(where) +
                                            " from the server: " + n.error().message + " (" +
                                            std::to_string(total) + " bytes received)"});
    }
    if (*n == 0) {
      return Fail(Error{0, "the server closed the connection " +
                               std::string(parser.features_seen() ? "before <proceed/>"
                                                                  : "before stream features") +
                               " (" + std::to_string(total) + " bytes received)"});
    }
    total += *n;
    parser.Feed(std::string_view(buf, *n));
  }
  return Ok{};
}

}  // namespace

Result<std::string> NegotiateStartTls(int fd, const std::string& domain, const std::string& service,
                                      const Deadline& deadline) {
  if (auto s = SendAll(fd, StreamHeader(domain, service), deadline); !s) {
    return Fail(Error{s.error().code, "sending the stream header: " + s.error().message});
  }
  XmppStreamParser parser;
  size_t total = 0;
  auto features =
      ReadUntil(fd, parser, total, deadline, [](State s) { return s == State::kFeatures; });
  if (!features) return Fail(features.error());
  if (parser.state() != State::kFeatures) return Fail(Refusal(parser));
  if (!parser.offers_starttls()) {
    return Fail(Error{0, "the stream features do not offer STARTTLS"});
  }
  if (auto s = SendAll(fd, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", deadline); !s) {
    return Fail(Error{s.error().code, "sending <starttls/>: " + s.error().message});
  }
  auto proceed =
      ReadUntil(fd, parser, total, deadline, [](State s) { return s == State::kProceed; });
  if (!proceed) return Fail(proceed.error());
  if (parser.state() != State::kProceed) return Fail(Refusal(parser));
  return std::string(parser.starttls_required() ? "stream features offer STARTTLS (required)"
                                                : "stream features offer STARTTLS") +
         "; proceed";
}

}  // namespace posh::ctl::probe
