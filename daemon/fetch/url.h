// URLs as the fetcher needs them: absolute URL parsing (core/url: libcurl's URL API, so that
// we read URLs exactly as curl does; shared with the core's R11 check) and curl
// --connect-to rule matching. No I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/url.h"

namespace posh::fetch {

using core::HasScheme;
using core::ParseAbsoluteUrl;
using core::ParsedUrl;

// Last path segment ("/a/b.json" -> "b.json").
std::string_view LastPathSegment(std::string_view path);

// CURLOPT_CONNECT_TO semantics: rules "HOST:PORT:CHOST:CPORT", empty HOST or PORT matches
// any; the first rule whose HOST and PORT match wins. Returns the index of that rule.
std::optional<size_t> MatchConnectTo(const std::vector<std::string>& rules, std::string_view host,
                                     int port);

}  // namespace posh::fetch
