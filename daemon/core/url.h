// Absolute URLs, read with libcurl's URL API (parsing only: no transfer, no I/O) so that
// the daemon reads a URL exactly as the fetcher's curl will. Shared by fetch (request and
// redirect URLs) and core/document (R11 reference urls).
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace posh::core {

struct ParsedUrl {
  std::string scheme;  // lower case
  std::string host;    // lower case; IPv6 literal with brackets ("[::1]")
  int port = 0;        // explicit or the scheme's default (0: unknown scheme, none given)
  std::string path;    // "/" at least
};

// True when `text` starts with an RFC 3986 scheme followed by ':' ("https:", "http:").
bool HasScheme(std::string_view text);

// Absolute URLs only ("scheme:..."): a relative reference is an error. As lenient as curl
// itself: "https:/host/x" and "https:///host/x" read as "https://host/x", an empty port
// as the default one, user info is accepted (and not returned).
Result<ParsedUrl> ParseAbsoluteUrl(std::string_view url);

// The same, but only in the RFC 3986 form "scheme://authority[/path][?query][#fragment]"
// (exactly two slashes and a non-empty host), printable ASCII only, without user info, and
// with a port, when one is written, of 1-65535. Error messages are predicates ("carries
// user info") for the caller to prefix with what the URL is.
Result<ParsedUrl> ParseStrictAbsoluteUrl(std::string_view url);

}  // namespace posh::core
