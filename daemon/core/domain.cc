#include "core/domain.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <locale.h>
#include <wctype.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/utf8.h"

namespace posh::core {
namespace {

enum DomainErrorCode : int { kBadDomain = 1, kBadService = 2 };

Unexpected<Error> DomainError(std::string msg) {
  return Fail(Error{kBadDomain, "invalid domain: " + std::move(msg)});
}

bool IsAllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    uint8_t u = static_cast<uint8_t>(c);
    if (u < 0x20 || u == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Decodes the code point at s[i] (s is valid UTF-8, checked by IsValidUtf8) and advances i.
uint32_t NextCodePoint(std::string_view s, size_t& i) {
  uint8_t c = static_cast<uint8_t>(s[i]);
  size_t n = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
  uint32_t cp = n == 0 ? c : n == 1 ? (c & 0x1f) : n == 2 ? (c & 0x0f) : (c & 0x07);
  for (size_t k = 1; k <= n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3f);
  i += n + 1;
  return cp;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

std::string CodePointName(uint32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

// Runs libidn2's pure IDNA2008 lookup (no UTS#46 mapping) on one UTF-8 string.
int Idna2008Lookup(const std::string& in, std::string* out) {
  char* res = nullptr;
  int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(in.c_str()),
                          reinterpret_cast<uint8_t**>(&res), IDN2_NO_TR46);
  if (rc == IDN2_OK && out != nullptr) *out = res;
  if (res != nullptr) idn2_free(res);
  return rc;
}

// Whether RFC 5892 gives cp a property other than DISALLOWED or UNASSIGNED (PVALID,
// CONTEXTJ or CONTEXTO). libidn2 has no per-code-point query, so cp is probed after
// U+4E00: a base that composes with nothing, so a combining mark is neither "leading" nor
// normalised away, while a code point that is not NFC on its own (hence disallowed as
// unstable) still fails. Contextual and bidi failures are left to the whole-label check.
bool Idna2008Permits(uint32_t cp) {
  std::string probe = "\xe4\xb8\x80";
  AppendUtf8(probe, cp);
  int rc = Idna2008Lookup(probe, nullptr);
  return rc != IDN2_DISALLOWED && rc != IDN2_UNASSIGNED && rc != IDN2_NOT_NFC;
}

// Simple lower-case mapping of cp, from glibc's C.UTF-8 tables (the process locale may be
// "C", which knows ASCII only). Without that locale nothing non-ASCII is mapped, so
// upper-case U-labels are refused rather than folded.
uint32_t ToLower(uint32_t cp) {
  static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  if (utf8 == static_cast<locale_t>(0)) return cp;
  return static_cast<uint32_t>(towlower_l(static_cast<wint_t>(cp), utf8));
}

// R1: IDNA2008 refuses code points it disallows; UTS#46 (which libidn2 uses to convert)
// would silently drop some (U+200B, U+00AD, variation selectors) and fold others into
// look-alikes (U+2460 -> "1"). The only mappings kept are those RFC 5895 lists for user
// input: label separators, width (the Halfwidth and Fullwidth Forms block) and upper to
// lower case where the lower-case letter is itself permitted. Returns the first refused
// code point, or 0 when every code point is acceptable.
uint32_t FirstDisallowedCodePoint(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = NextCodePoint(s, i);
    if (cp < 0x80) continue;  // ASCII is checked against LDH after conversion.
    if (Idna2008Permits(cp)) continue;
    if (cp == 0x3002 || cp == 0xff0e || cp == 0xff61) continue;  // ideographic full stops
    if (cp >= 0xff01 && cp <= 0xffef) continue;                  // width mapping
    uint32_t lower = ToLower(cp);
    if (lower != cp && (lower < 0x80 || Idna2008Permits(lower))) continue;
    return cp;
  }
  return 0;
}

// R1: an `xn--` label must be an A-label: Punycode that decodes to a valid IDNA2008
// U-label which encodes back to the very same label. libidn2 does the decoding, the
// IDNA2008 checks and the round trip; the comparison guards against any normalisation.
// Returns why the label is not one, or "" when it is.
std::string ALabelProblem(std::string_view label) {
  std::string back;
  int rc = Idna2008Lookup(std::string(label), &back);
  if (rc != IDN2_OK) return idn2_strerror(rc);
  if (back != label) return "it does not round-trip (re-encodes as " + Quote(back) + ")";
  return "";
}

}  // namespace

Result<std::string> NormalizeDomain(std::string_view input) {
  if (input.empty()) return DomainError("empty");
  if (input.size() > 1024) return DomainError("longer than 253 octets");
  if (!IsValidUtf8(input)) return DomainError("not valid UTF-8");
  for (char c : input) {
    uint8_t u = static_cast<uint8_t>(c);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f')
      return DomainError(Quote(input) + " contains whitespace");
    if (u < 0x20 || u == 0x7f) return DomainError(Quote(input) + " contains a control character");
  }
  if (input.find("://") != std::string_view::npos)
    return DomainError(Quote(input) + " carries a URL scheme; give the bare domain name");
  if (input.find('@') != std::string_view::npos)
    return DomainError(Quote(input) + " carries user info ('@'); give the bare domain name");
  if (input.front() == '[' || input.find(']') != std::string_view::npos)
    return DomainError(Quote(input) + " is an IP address literal, not a domain name");
  if (size_t colon = input.find(':'); colon != std::string_view::npos) {
    if (input.find(':', colon + 1) != std::string_view::npos) {
      return DomainError(Quote(input) + " is an IP address literal, not a domain name");
    }
    return DomainError(Quote(input) + " carries a port; give the bare domain name");
  }
  if (input.find('/') != std::string_view::npos || input.find('\\') != std::string_view::npos)
    return DomainError(Quote(input) + " carries a path; give the bare domain name");
  if (input.find('?') != std::string_view::npos)
    return DomainError(Quote(input) + " carries a query; give the bare domain name");
  if (input.find('#') != std::string_view::npos)
    return DomainError(Quote(input) + " carries a fragment; give the bare domain name");

  std::string s(input);
  bool ascii = true;
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (static_cast<uint8_t>(c) >= 0x80) ascii = false;
  }
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s.empty()) return DomainError("empty");

  if (!ascii) {
    if (uint32_t cp = FirstDisallowedCodePoint(s); cp != 0)
      return DomainError(Quote(input) + " cannot be converted to an A-label (IDNA2008): " +
                         CodePointName(cp) + " is a code point IDNA2008 disallows");
    char* out = nullptr;
    int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(s.c_str()),
                            reinterpret_cast<uint8_t**>(&out), IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
      if (out != nullptr) idn2_free(out);
      return DomainError(Quote(input) +
                         " cannot be converted to an A-label (IDNA2008): " + idn2_strerror(rc));
    }
    s = out;
    idn2_free(out);
    for (char& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    // UTS#46 mapping may turn ideographic full stops into a trailing dot.
    if (!s.empty() && s.back() == '.') s.pop_back();
    if (s.empty()) return DomainError("empty");
  }

  if (s.size() > 253)
    return DomainError("longer than 253 octets (" + std::to_string(s.size()) + ")");

  {
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, s.c_str(), &v4) == 1 || inet_pton(AF_INET6, s.c_str(), &v6) == 1)
      return DomainError(Quote(input) + " is an IP address literal, not a domain name");
  }

  bool all_numeric = true;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = std::string_view(s).substr(
        start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty()) return DomainError(Quote(input) + " has an empty label");
    if (label.size() > 63) return DomainError(Quote(input) + " has a label longer than 63 octets");
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok)
        return DomainError(Quote(input) + " has a character outside letters, digits and hyphen: " +
                           Quote(std::string_view(&c, 1)));
    }
    if (label.front() == '-' || label.back() == '-')
      return DomainError(Quote(input) + " has a label starting or ending with a hyphen");
    if (label.starts_with("xn--")) {
      if (std::string why = ALabelProblem(label); !why.empty())
        return DomainError(Quote(input) + ": label " + Quote(label) +
                           " is not a valid A-label (IDNA2008): " + why);
    }
    if (!IsAllDigits(label)) all_numeric = false;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (all_numeric)
    return DomainError(Quote(input) + " is an IP address literal, not a domain name");
  return s;
}

Result<std::string> NormalizeService(std::string_view input) {
  if (input.empty()) return std::string(kDefaultService);
  auto fail = [](std::string msg) { return Fail(Error{kBadService, "invalid service: " + msg}); };
  if (input.size() > 63) return fail("longer than 63 characters");
  for (char c : input) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) {
      if (c >= 'A' && c <= 'Z') return fail(Quote(input) + " has an upper-case letter");
      return fail(Quote(input) + " has a character outside [a-z0-9-]");
    }
  }
  if (input.front() == '-' || input.back() == '-')
    return fail(Quote(input) + " starts or ends with a hyphen");
  return std::string(input);
}

}  // namespace posh::core
