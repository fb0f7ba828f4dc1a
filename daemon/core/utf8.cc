#include "core/utf8.h"

#include <simdjson.h>

#include <cstdint>

namespace posh::core {

bool IsValidUtf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

size_t Utf8CharLength(std::string_view s) {
  if (s.empty()) return 0;
  const auto lead = static_cast<uint8_t>(s[0]);
  if (lead < 0x80) return 1;  // ASCII: no need to ask the validator
  // The length the lead byte announces; whether those bytes form a character (continuation
  // bytes, overlong forms, surrogates, range) is the validator's call.
  const size_t announced = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 0;
  if (announced == 0 || announced > s.size()) return 0;
  return IsValidUtf8(s.substr(0, announced)) ? announced : 0;
}

std::string ReplaceInvalidUtf8(std::string_view s, std::string_view replacement) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = Utf8CharLength(s.substr(i));
    if (n == 0) {
      out.append(replacement);
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace posh::core
