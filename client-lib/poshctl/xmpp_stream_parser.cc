#include "xmpp_stream_parser.h"

#include <expat.h>

#include <algorithm>
#include <string>

namespace posh::ctl::probe {
namespace {

// Expat reports namespaced names as "URI<sep>local" (XML_ParserCreateNS).
constexpr char kNsSep = ' ';

struct Name {
  std::string_view ns;
  std::string_view local;
};

Name Split(const XML_Char* full) {
  std::string_view s(full);
  auto sp = s.find(kNsSep);
  if (sp == std::string_view::npos) return {{}, s};
  return {s.substr(0, sp), s.substr(sp + 1)};
}

// Error texts come from a hostile peer: keep them short and printable.
std::string Printable(std::string_view in, size_t max = 200) {
  std::string out;
  for (unsigned char c : in) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out;
}

void FreeParser(XML_ParserStruct* p) { XML_ParserFree(p); }

}  // namespace

struct XmppStreamParser::Handlers {
  static XmppStreamParser* Self(void* ud) { return static_cast<XmppStreamParser*>(ud); }

  static void Start(void* ud, const XML_Char* name, const XML_Char** /*attrs*/) {
    auto* p = Self(ud);
    if (Terminal(p->state_)) return;
    Name n = Split(name);
    const int depth = p->depth_++;
    if (depth == 0) {
      if (n.ns != kStreamsNs || n.local != "stream") {
        p->Fail(State::kInvalid, "the server's answer is not an XMPP stream (root element <" +
                                     Printable(n.local) + ">)");
        return;
      }
      p->state_ = State::kWaitingFeatures;
      return;
    }
    if (depth == 1) {
      if (n.ns == kStreamsNs && n.local == "features") {
        p->in_features_ = true;
      } else if (n.ns == kStreamsNs && n.local == "error") {
        p->in_error_ = true;
      } else if (n.ns == kTlsNs && n.local == "proceed") {
        p->state_ = State::kProceed;
        p->Stop();
      } else if (n.ns == kTlsNs && n.local == "failure") {
        p->state_ = State::kFailure;
        p->Stop();
      }
      // Anything else at this level (a stanza before TLS) is ignored, as a peer would.
      return;
    }
    if (depth == 2 && p->in_features_ && n.ns == kTlsNs && n.local == "starttls") {
      p->offers_starttls_ = true;
      p->in_starttls_ = true;
    } else if (depth == 3 && p->in_starttls_ && n.ns == kTlsNs && n.local == "required") {
      p->starttls_required_ = true;
    } else if (depth == 2 && p->in_error_ && n.ns == kStreamErrorsNs) {
      if (n.local == "text") {
        p->in_error_text_ = true;
      } else if (p->error_condition_.empty()) {
        p->error_condition_ = Printable(n.local, 64);
      }
    }
  }

  static void End(void* ud, const XML_Char* /*name*/) {
    auto* p = Self(ud);
    if (Terminal(p->state_)) return;
    const int depth = --p->depth_;
    if (depth == 0) {
      p->state_ = State::kClosed;
      p->Stop();
    } else if (depth == 1 && p->in_features_) {
      p->in_features_ = false;
      p->features_seen_ = true;
      p->state_ = State::kFeatures;
    } else if (depth == 1 && p->in_error_) {
      p->in_error_ = false;
      std::string e = p->error_condition_.empty() ? "unspecified" : p->error_condition_;
      if (!p->error_text_.empty()) e += " (" + Printable(p->error_text_) + ")";
      p->Fail(State::kStreamError, e);
    } else if (depth == 2 && p->in_starttls_) {
      p->in_starttls_ = false;
    } else if (depth == 2 && p->in_error_text_) {
      p->in_error_text_ = false;
    }
  }

  static void Text(void* ud, const XML_Char* s, int len) {
    auto* p = Self(ud);
    if (p->in_error_text_ && p->error_text_.size() < 1024) {
      p->error_text_.append(s, static_cast<size_t>(len));
    }
  }

  // RFC 6120 11.1: a DTD is forbidden in XMPP, and with it every entity trick.
  static void Doctype(void* ud, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    Self(ud)->Fail(State::kInvalid, "the server sent a DOCTYPE, which XMPP forbids");
  }
  static void Entity(void* ud, const XML_Char*, int, const XML_Char*, int, const XML_Char*,
                     const XML_Char*, const XML_Char*, const XML_Char*) {
    Self(ud)->Fail(State::kInvalid, "the server declared an XML entity, which XMPP forbids");
  }
  static void Pi(void* ud, const XML_Char*, const XML_Char*) {
    Self(ud)->Fail(State::kInvalid, "the server sent a processing instruction, which XMPP forbids");
  }
};

void XmppStreamParser::Fail(State s, std::string why) {
  if (Terminal(state_)) return;
  state_ = s;
  error_ = std::move(why);
  Stop();
}

XmppStreamParser::XmppStreamParser() : parser_(XML_ParserCreateNS("UTF-8", kNsSep), FreeParser) {
  XML_SetUserData(parser_.get(), this);
  XML_SetElementHandler(parser_.get(), Handlers::Start, Handlers::End);
  XML_SetCharacterDataHandler(parser_.get(), Handlers::Text);
  XML_SetStartDoctypeDeclHandler(parser_.get(), Handlers::Doctype);
  XML_SetEntityDeclHandler(parser_.get(), Handlers::Entity);
  XML_SetProcessingInstructionHandler(parser_.get(), Handlers::Pi);
}

XmppStreamParser::~XmppStreamParser() = default;

void XmppStreamParser::Stop() {
  if (!stopped_) {
    stopped_ = true;
    XML_StopParser(parser_.get(), XML_FALSE);
  }
}

XmppStreamParser::State XmppStreamParser::Feed(std::string_view bytes) {
  if (Terminal(state_) || bytes.empty()) return state_;
  // Expat takes an int length: feed in slices (the caller bounds the total anyway).
  while (!bytes.empty() && !Terminal(state_)) {
    const size_t n = std::min<size_t>(bytes.size(), 1 << 20);
    if (XML_Parse(parser_.get(), bytes.data(), static_cast<int>(n), XML_FALSE) ==
        XML_STATUS_ERROR) {
      if (Terminal(state_)) break;  // stopped by a handler: the reason is already set
      const XML_Error code = XML_GetErrorCode(parser_.get());
      Fail(State::kInvalid,
           std::string("the server's answer is not well-formed XML: ") + XML_ErrorString(code) +
               " (line " + std::to_string(XML_GetCurrentLineNumber(parser_.get())) + ", column " +
               std::to_string(XML_GetCurrentColumnNumber(parser_.get())) + ")");
      break;
    }
    bytes.remove_prefix(n);
  }
  return state_;
}

const char* StateName(XmppStreamParser::State s) {
  using S = XmppStreamParser::State;
  switch (s) {
    case S::kWaitingHeader:
      return "waiting for the stream header";
    case S::kWaitingFeatures:
      return "waiting for stream features";
    case S::kFeatures:
      return "stream features";
    case S::kProceed:
      return "proceed";
    case S::kFailure:
      return "failure";
    case S::kStreamError:
      return "stream error";
    case S::kClosed:
      return "stream closed";
    case S::kInvalid:
      return "invalid";
  }
  return "?";
}

}  // namespace posh::ctl::probe
