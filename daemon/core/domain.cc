#include "core/domain.h"

#include <arpa/inet.h>
#include <idn2.h>

#include <cstdlib>
#include <string>

namespace posh::core {
namespace {

enum DomainErrorCode : int { kBadDomain = 1, kBadService = 2 };

Unexpected<Error> DomainError(std::string msg) {
  return Fail(Error{kBadDomain, "invalid domain: " + std::move(msg)});
}

// Strict UTF-8 check (no overlongs, no surrogates, <= U+10FFFF).
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    uint8_t c = static_cast<uint8_t>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      uint8_t cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
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

}  // namespace

Result<std::string> NormalizeDomain(std::string_view input) {
  if (input.empty()) return DomainError("empty");
  if (input.size() > 1024) return DomainError("longer than 253 octets");
  if (!ValidUtf8(input)) return DomainError("not valid UTF-8");
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
