#include "core/base64.h"

#include <array>

namespace posh::core {
namespace {

constexpr std::string_view kStd =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrl =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> MakeTable(std::string_view chars) {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (size_t i = 0; i < chars.size(); ++i)
    t[static_cast<uint8_t>(chars[i])] = static_cast<int8_t>(i);
  return t;
}

constexpr auto kStdTable = MakeTable(kStd);
constexpr auto kUrlTable = MakeTable(kUrl);

}  // namespace

std::optional<std::vector<uint8_t>> DecodeBase64(std::string_view text, Base64Alphabet alphabet) {
  // Padding: optional, but when present it must complete the last quantum exactly.
  size_t pad = 0;
  while (pad < text.size() && pad < 3 && text[text.size() - 1 - pad] == '=') ++pad;
  if (pad > 0) {
    if (pad > 2 || text.size() % 4 != 0) return std::nullopt;
    text.remove_suffix(pad);
  }
  if (text.size() % 4 == 1) return std::nullopt;
  const auto& table = alphabet == Base64Alphabet::kStandard ? kStdTable : kUrlTable;
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int8_t v = table[static_cast<uint8_t>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits (2 or 4) must be zero: canonical encoding only.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string EncodeBase64(std::span<const uint8_t> data, Base64Alphabet alphabet) {
  const std::string_view chars = alphabet == Base64Alphabet::kStandard ? kStd : kUrl;
  const bool pad = alphabet == Base64Alphabet::kStandard;
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(chars[(v >> 18) & 63]);
    out.push_back(chars[(v >> 12) & 63]);
    out.push_back(chars[(v >> 6) & 63]);
    out.push_back(chars[v & 63]);
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t v = uint32_t{data[i]} << 16;
    out.push_back(chars[(v >> 18) & 63]);
    out.push_back(chars[(v >> 12) & 63]);
    if (pad) out += "==";
  } else if (rest == 2) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out.push_back(chars[(v >> 18) & 63]);
    out.push_back(chars[(v >> 12) & 63]);
    out.push_back(chars[(v >> 6) & 63]);
    if (pad) out += "=";
  }
  return out;
}

}  // namespace posh::core
