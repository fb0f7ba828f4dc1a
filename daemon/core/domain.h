// R1 domain and R2 service names. Pure functions: no I/O.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace posh::core {

inline constexpr std::string_view kDefaultService = "xmpp-server";

// R1: lower-case, drop one trailing dot, U-labels -> A-labels (IDNA 2008, libidn2),
// then reject: empty, > 253 octets, a label empty or > 63 octets, characters outside
// [a-z0-9-], a label starting/ending with '-', an IP literal (v4 dotted or [v6] or bare
// v6), anything with a port, path, scheme, query, fragment or user info.
// The error message says precisely what is wrong (it is shown to API users).
Result<std::string> NormalizeDomain(std::string_view input);

// R2: empty -> "xmpp-server"; else 1..63 chars of [a-z0-9-], no leading/trailing '-'.
// Upper case is rejected (not folded): service names are defined lower case.
Result<std::string> NormalizeService(std::string_view input);

}  // namespace posh::core
