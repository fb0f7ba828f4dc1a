#include "fetch/url.h"

#include <curl/curl.h>

#include <cctype>
#include <charconv>
#include <memory>

namespace posh::fetch {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::optional<std::string> GetPart(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* value = nullptr;
  if (curl_url_get(u, part, &value, flags) != CURLUE_OK || value == nullptr) return std::nullopt;
  std::string out(value);
  curl_free(value);
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
  if (!HasScheme(url)) return Fail(Error{1, "not an absolute URL"});
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u) return Fail(Error{2, "out of memory"});
  std::string s(url);
  CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, s.c_str(), CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    return Fail(Error{1, std::string("malformed URL: ") + curl_url_strerror(rc)});
  }
  ParsedUrl out;
  auto scheme = GetPart(u.get(), CURLUPART_SCHEME);
  auto host = GetPart(u.get(), CURLUPART_HOST);
  if (!scheme || !host || host->empty()) return Fail(Error{1, "URL without a host"});
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

std::string_view LastPathSegment(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::optional<size_t> MatchConnectTo(const std::vector<std::string>& rules, std::string_view host,
                                     int port) {
  for (size_t i = 0; i < rules.size(); ++i) {
    std::string_view rule = rules[i];
    std::string_view rest;
    // HOST part (may be a bracketed IPv6 literal).
    if (!rule.empty() && rule[0] == ':') {
      rest = rule.substr(1);
    } else {
      size_t end;
      if (!rule.empty() && rule[0] == '[') {
        size_t close = rule.find(']');
        if (close == std::string_view::npos) continue;
        end = close + 1;
      } else {
        end = rule.find(':');
      }
      if (end == std::string_view::npos || end >= rule.size() || rule[end] != ':') continue;
      if (!IEquals(rule.substr(0, end), host)) continue;
      rest = rule.substr(end + 1);
    }
    // PORT part.
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view port_text = rest.substr(0, colon);
    if (!port_text.empty()) {
      int p = -1;
      auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
      if (ec != std::errc() || ptr != port_text.data() + port_text.size() || p != port) continue;
    }
    return i;
  }
  return std::nullopt;
}

}  // namespace posh::fetch
