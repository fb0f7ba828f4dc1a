// Text hygiene for strings that reach the API: protobuf `string` fields must be valid
// UTF-8, and error reasons often quote network bytes.
#pragma once

#include <string>
#include <string_view>

namespace posh {

// Replaces each byte that does not start a valid UTF-8 character (core/utf8 decides) with
// U+FFFD and control characters with '?'; truncates to max_bytes (on a character boundary).
std::string SanitizeUtf8(std::string_view in, size_t max_bytes = 1024);

}  // namespace posh
