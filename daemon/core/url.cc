#include "core/url.h"

#include <curl/curl.h>

#include <cctype>
#include <charconv>
#include <memory>
#include <optional>

namespace posh::core {
namespace {

enum UrlErrorCode : int { kUrlBad = 1, kUrlNoMemory = 2 };

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

std::optional<std::string> GetPart(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* value = nullptr;
  if (curl_url_get(u, part, &value, flags) != CURLUE_OK || value == nullptr) return std::nullopt;
  std::string out(value);
  curl_free(value);
  return out;
}

Unexpected<Error> UrlError(std::string message) { return Fail(Error{kUrlBad, std::move(message)}); }

// Parses `url` into `u` and reads the parts poshd uses; `u` stays available to the caller
// for more parts, `*rc` says why curl refused the URL.
Result<ParsedUrl> Parse(std::string_view url, UrlPtr& u, CURLUcode* rc) {
  *rc = CURLUE_OK;
  if (!HasScheme(url)) return UrlError("not an absolute URL");
  u.reset(curl_url());
  if (!u) return Fail(Error{kUrlNoMemory, "out of memory"});
  std::string s(url);
  *rc = curl_url_set(u.get(), CURLUPART_URL, s.c_str(), CURLU_NON_SUPPORT_SCHEME);
  if (*rc != CURLUE_OK) {
    std::string message = "malformed URL: ";
    message += curl_url_strerror(*rc);
    return UrlError(std::move(message));
  }
  ParsedUrl out;
  auto scheme = GetPart(u.get(), CURLUPART_SCHEME);
  auto host = GetPart(u.get(), CURLUPART_HOST);
  if (!scheme || !host || host->empty()) return UrlError("URL without a host");
  out.scheme = Lower(*scheme);
  out.host = Lower(*host);
  auto port = GetPart(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (port) {
    int p = 0;
    auto [ptr, ec] = std::from_chars(port->data(), port->data() + port->size(), p);
    if (ec == std::errc() && ptr == port->data() + port->size()) out.port = p;
  }
  // (Not `value_or("/")` + `= "/"`: GCC 12 at -O2 raises a false -Wrestrict on that.)
  auto path = GetPart(u.get(), CURLUPART_PATH);
  if (path && !path->empty()) {
    out.path = std::move(*path);
  } else {
    out.path.assign(1, '/');
  }
  return out;
}

}  // namespace

bool HasScheme(std::string_view text) {
  if (text.empty() || !std::isalpha(static_cast<unsigned char>(text[0]))) return false;
  for (size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (c == ':') return true;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return false;
}

Result<ParsedUrl> ParseAbsoluteUrl(std::string_view url) {
  UrlPtr u;
  CURLUcode rc;
  return Parse(url, u, &rc);
}

Result<ParsedUrl> ParseStrictAbsoluteUrl(std::string_view url) {
  // curl accepts non-ASCII bytes in hosts and paths; a URL (RFC 3986) has none.
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return UrlError("contains spaces, controls or non-ASCII");
  }
  // What curl's leniency would otherwise hide, checked on the text: the number of slashes
  // after the scheme (curl takes 1 to 3) and an empty port after ':' (curl: the default).
  const size_t colon = url.find(':');
  if (!HasScheme(url) || url.substr(colon + 1, 2) != "//" || url.substr(colon + 3, 1) == "/") {
    return UrlError("is not an absolute URL");
  }
  const std::string_view rest = url.substr(colon + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty()) return UrlError("has no host");
  if (authority.back() == ':') return UrlError("has an empty port");

  UrlPtr u;
  CURLUcode rc;
  auto parsed = Parse(url, u, &rc);
  if (!parsed) {
    if (rc == CURLUE_BAD_PORT_NUMBER) return UrlError("has an invalid port");
    if (rc == CURLUE_NO_HOST) return UrlError("has no host");
    if (rc == CURLUE_OK) return parsed;  // not curl's refusal (no host part, out of memory)
    std::string message = "is malformed (";
    message += curl_url_strerror(rc);  // "Bad hostname", "Bad IPv6 address", ...
    message += ')';
    return UrlError(std::move(message));
  }
  if (GetPart(u.get(), CURLUPART_USER) || GetPart(u.get(), CURLUPART_PASSWORD)) {
    return UrlError("carries user info");
  }
  if (GetPart(u.get(), CURLUPART_PORT) && parsed->port == 0) {
    return UrlError("has an invalid port");  // curl allows port 0; no server listens there
  }
  return parsed;
}

}  // namespace posh::core
