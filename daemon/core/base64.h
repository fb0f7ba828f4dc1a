// Base64 (RFC 4648 §4 standard and §5 URL-safe alphabets). Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace posh::core {

enum class Base64Alphabet { kStandard, kUrl };

// Decodes with padding optional (but if present it must be correct). Whitespace is not
// allowed. Returns nullopt on any invalid character, bad length (len % 4 == 1), or
// non-zero trailing bits.
std::optional<std::vector<uint8_t>> DecodeBase64(
    std::string_view text, Base64Alphabet alphabet = Base64Alphabet::kStandard);

// Encodes with padding (standard) or without padding (URL alphabet, as JWK writes it).
std::string EncodeBase64(std::span<const uint8_t> data,
                         Base64Alphabet alphabet = Base64Alphabet::kStandard);

}  // namespace posh::core
