// Hash algorithms named by POSH descriptors (R10) and digests over DER (OpenSSL EVP).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace posh::core {

// Values are persisted in snapshots: never renumber.
enum class HashAlg : uint8_t {
  kMd5 = 1,
  kSha1 = 2,
  kSha224 = 3,
  kSha256 = 4,
  kSha384 = 5,
  kSha512 = 6
};

// "sha-256" -> kSha256 etc. (exact, lower case as RFC 7711 / IANA "Hash Function
// Textual Names" write them). nullopt for unknown names (R10: ignored).
std::optional<HashAlg> HashAlgFromName(std::string_view name);
std::string_view HashAlgName(HashAlg alg);
size_t HashAlgDigestSize(HashAlg alg);
// sha-1 and md5 are recognised but never trusted (R10).
bool HashAlgTrusted(HashAlg alg);
// Strength order for R13 ("strongest trusted hash"): sha-512 > sha-384 > sha-256 > sha-224.
int HashAlgStrength(HashAlg alg);

std::vector<uint8_t> Digest(HashAlg alg, std::span<const uint8_t> data);

}  // namespace posh::core
