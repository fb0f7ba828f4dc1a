#include "fetch/url.h"

#include <cctype>
#include <charconv>

namespace posh::fetch {
namespace {

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

}  // namespace

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
