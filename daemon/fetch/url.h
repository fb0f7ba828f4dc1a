// Absolute URL parsing (libcurl's URL API, so that we read URLs exactly as curl does) and
// curl --connect-to rule matching. No I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace posh::fetch {

struct ParsedUrl {
  std::string scheme;  // lower case
  std::string host;    // lower case; IPv6 literal with brackets ("[::1]")
  int port = 0;        // explicit or the scheme's default
  std::string path;    // "/" at least
};

// Absolute URLs only ("scheme://host..."): a relative reference is an error.
Result<ParsedUrl> ParseAbsoluteUrl(std::string_view url);

// True when `text` starts with an RFC 3986 scheme followed by ':' ("https:", "http:").
bool HasScheme(std::string_view text);

// Last path segment ("/a/b.json" -> "b.json").
std::string_view LastPathSegment(std::string_view path);

// CURLOPT_CONNECT_TO semantics: rules "HOST:PORT:CHOST:CPORT", empty HOST or PORT matches
// any; the first rule whose HOST and PORT match wins. Returns the index of that rule.
std::optional<size_t> MatchConnectTo(const std::vector<std::string>& rules, std::string_view host,
                                     int port);

}  // namespace posh::fetch
