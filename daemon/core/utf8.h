// UTF-8 validity, defined once for the whole daemon by simdjson's validator (linked anyway
// to parse documents): no overlong forms, no surrogates, nothing past U+10FFFF, no
// truncated sequence. Knows nothing of POSH, so util/text (API text hygiene) uses it too:
// it is its own small library, posh_utf8, that both posh_core and posh_util link.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace posh::core {

// True when all of `s` is valid UTF-8 (the empty string is).
bool IsValidUtf8(std::string_view s);

// Length (1-4) of the valid UTF-8 character `s` starts with, or 0 when `s` is empty or
// does not start with one.
size_t Utf8CharLength(std::string_view s);

// `s` with each byte that does not start a valid UTF-8 character replaced by
// `replacement`; valid characters are kept as they are.
std::string ReplaceInvalidUtf8(std::string_view s, std::string_view replacement);

}  // namespace posh::core
