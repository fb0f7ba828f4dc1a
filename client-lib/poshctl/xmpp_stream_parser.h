// poshctl probe: the XMPP side of STARTTLS (RFC 6120 5.4), parsed with expat. Pure code: it
// is fed what the server sent and says what it has seen, so hostile byte streams are unit
// tested without sockets. The caller owns the byte limit and the clock.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

struct XML_ParserStruct;  // expat's parser, global as expat declares it

namespace posh::ctl::probe {

inline constexpr std::string_view kStreamsNs = "http://etherx.jabber.org/streams";
inline constexpr std::string_view kTlsNs = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr std::string_view kStreamErrorsNs = "urn:ietf:params:xml:ns:xmpp-streams";

class XmppStreamParser {
 public:
  // What the server's bytes amount to so far; later states win over earlier ones.
  enum class State {
    kWaitingHeader,    // the <stream:stream> start tag has not ended yet
    kWaitingFeatures,  // header seen, <stream:features> not complete yet
    kFeatures,         // features complete: see offers_starttls()
    kProceed,          // <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>
    kFailure,          // <failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>
    kStreamError,      // <stream:error>: see error()
    kClosed,           // </stream:stream> before anything conclusive
    kInvalid,          // not XML, not an XMPP stream, or forbidden XML (DTD): see error()
  };

  XmppStreamParser();
  ~XmppStreamParser();
  XmppStreamParser(const XmppStreamParser&) = delete;
  XmppStreamParser& operator=(const XmppStreamParser&) = delete;

  // Parses the next bytes. Once the state is terminal (kProceed, kFailure, kStreamError,
  // kClosed, kInvalid) further input is ignored.
  State Feed(std::string_view bytes);

  State state() const { return state_; }
  bool offers_starttls() const { return offers_starttls_; }
  bool starttls_required() const { return starttls_required_; }
  // For kStreamError ("host-unknown: text") and kInvalid (why).
  const std::string& error() const { return error_; }
  // Whether the features element has been seen complete (it stays true past kFeatures).
  bool features_seen() const { return features_seen_; }

  static bool Terminal(State s) {
    return s == State::kProceed || s == State::kFailure || s == State::kStreamError ||
           s == State::kClosed || s == State::kInvalid;
  }

 private:
  struct Handlers;
  void Fail(State s, std::string why);
  void Stop();  // expat is told to stop at the first terminal state

  std::unique_ptr<::XML_ParserStruct, void (*)(::XML_ParserStruct*)> parser_;
  State state_ = State::kWaitingHeader;
  int depth_ = 0;
  bool features_seen_ = false;
  bool offers_starttls_ = false;
  bool starttls_required_ = false;
  bool in_features_ = false;
  bool in_starttls_ = false;
  bool in_error_ = false;
  bool in_error_text_ = false;
  bool stopped_ = false;
  std::string error_condition_;
  std::string error_text_;
  std::string error_;
};

const char* StateName(XmppStreamParser::State s);

}  // namespace posh::ctl::probe
