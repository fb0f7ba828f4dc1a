// Hash algorithms named by POSH descriptors (R10) and digests over DER (OpenSSL EVP).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

// A digest value stored inline (at most 64 bytes: sha-512), so that a fingerprint costs no
// heap allocation of its own (the cache keeps two per RFC 7711 entry). Reads like a
// const std::vector<uint8_t>: data/size/iteration/==, and converts from one implicitly.
// A value longer than kMaxSize cannot be a digest: it is stored as empty (which never
// equals a computed digest).
class DigestValue {
 public:
  static constexpr size_t kMaxSize = 64;
  using value_type = uint8_t;
  using iterator = const uint8_t*;
  using const_iterator = const uint8_t*;

  DigestValue() = default;
  DigestValue(const std::vector<uint8_t>& v) : DigestValue(std::span<const uint8_t>(v)) {}
  explicit DigestValue(std::span<const uint8_t> v) {
    if (v.size() > kMaxSize) return;
    size_ = static_cast<uint8_t>(v.size());
    if (!v.empty()) std::memcpy(bytes_, v.data(), v.size());
  }

  const uint8_t* data() const { return bytes_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const uint8_t* begin() const { return bytes_; }
  const uint8_t* end() const { return bytes_ + size_; }
  uint8_t operator[](size_t i) const { return bytes_[i]; }

  bool operator==(const DigestValue& o) const {
    return std::equal(begin(), end(), o.begin(), o.end());
  }
  bool operator==(const std::vector<uint8_t>& o) const {
    return std::equal(begin(), end(), o.begin(), o.end());
  }

 private:
  uint8_t size_ = 0;
  uint8_t bytes_[kMaxSize] = {};
};

}  // namespace posh::core
