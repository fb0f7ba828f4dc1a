#include "util/text.h"

#include <algorithm>

#include "core/utf8.h"

namespace posh {

std::string SanitizeUtf8(std::string_view in, size_t max_bytes) {
  static constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD
  auto is_control = [](unsigned char c) { return c < 0x20 || c == 0x7f; };
  // The common case, clean text, in one validator pass and one scan.
  if (in.size() <= max_bytes && core::IsValidUtf8(in) &&
      std::none_of(in.begin(), in.end(),
                   [&](char c) { return is_control(static_cast<unsigned char>(c)); })) {
    return std::string(in);
  }
  std::string out;
  out.reserve(in.size() < max_bytes ? in.size() : max_bytes);
  size_t i = 0;
  while (i < in.size()) {
    size_t len = core::Utf8CharLength(in.substr(i));
    std::string_view piece;
    if (len == 0) {
      // Not the start of a valid character: one replacement per byte, then resynchronise.
      piece = kReplacementCharacter;
      len = 1;
    } else if (len == 1 && is_control(static_cast<unsigned char>(in[i]))) {
      piece = "?";
    } else {
      piece = in.substr(i, len);
    }
    if (out.size() + piece.size() > max_bytes) break;
    out.append(piece);
    i += len;
  }
  return out;
}

}  // namespace posh
