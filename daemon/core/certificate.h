// X.509 certificates as POSH needs them (OpenSSL): DER parsing, validity, public key.
// No chain validation: POSH pins certificates, it does not build paths (vectors/README).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/result.h"

namespace posh::core {

// A public key in canonical form so that equality is value equality:
// RSA: a = modulus n, b = exponent e, both big-endian with leading zero bytes stripped
//      (JWK "n" may carry a leading 0x00: compare as integers).
// EC:  curve = JWK curve name ("P-256", "P-384", "P-521"), a = x, b = y, each left-padded
//      with zeros to the curve's field size.
// Other key types (Ed25519...) are kOther and never equal anything.
struct PublicKey {
  // Values are persisted in snapshots: never renumber.
  enum class Type : uint8_t { kNone = 0, kRsa = 1, kEc = 2, kOther = 3 };
  Type type = Type::kNone;
  std::string curve;
  std::vector<uint8_t> a;
  std::vector<uint8_t> b;

  bool operator==(const PublicKey& o) const {
    return type == o.type && type != Type::kOther && type != Type::kNone && curve == o.curve &&
           a == o.a && b == o.b;
  }
};

struct Certificate {
  std::vector<uint8_t> der;
  int64_t not_before = 0;  // unix seconds
  int64_t not_after = 0;   // unix seconds
  PublicKey public_key;
  std::string subject;      // one-line, for messages only
  std::string common_name;  // subject CN (UTF-8) or empty; used for JWK kid by publish
  // Digests of `der` under each trusted algorithm (sha-224, -256, -384, -512), computed
  // once by ParseCertificateDer: Verify keeps parsed leaves and matches each one many
  // times (R13). Empty when the Certificate was built by hand; see TrustedDigest.
  std::array<DigestValue, 4> trusted_digests;

  // The precomputed digest for `alg`, or nullptr (untrusted algorithm, or not computed).
  const DigestValue* TrustedDigest(HashAlg alg) const {
    const int i = static_cast<int>(alg) - static_cast<int>(HashAlg::kSha224);
    if (i < 0 || i >= static_cast<int>(trusted_digests.size())) return nullptr;
    const DigestValue& d = trusted_digests[static_cast<size_t>(i)];
    return d.empty() ? nullptr : &d;
  }
};

// Parses exactly one DER certificate (trailing bytes: error). Never throws, never aborts
// on garbage; the error says why.
Result<Certificate> ParseCertificateDer(std::span<const uint8_t> der);

// Parses a presented chain from a file body: one or more PEM certificates (leaf first), or
// a single DER certificate. Returns the DER blobs. Error when empty or unparsable.
Result<std::vector<std::vector<uint8_t>>> ParseChainFile(std::string_view content);

// RFC 3339 UTC ("2026-01-02T03:04:05Z") for messages and JSON.
std::string FormatTime(int64_t unix_seconds);

}  // namespace posh::core
