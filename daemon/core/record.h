// The compact, verified POSH record kept by the cache and used for matching: what a
// document proves, without the document. Built from parsed documents (pure).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/certificate.h"
#include "core/document.h"
#include "core/hash.h"

namespace posh::core {

// Values are persisted in snapshots: never renumber.
enum class Format : uint8_t { kUnknown = 0, kRfc7711 = 1, kJwk = 2 };

// One usable key. For RFC 7711: the descriptor's fingerprints. For JWK: sha-256 and
// sha-512 of x5c[0] (when it has a certificate), the key parameters, and notAfter.
struct KeyMaterial {
  std::string kid;
  std::string kty;
  std::vector<Fingerprint> fingerprints;
  // JWK only (null for RFC 7711 keys). Shared and immutable: 16 bytes per key instead of
  // the ~90 of an inline std::optional<PublicKey>, most keys have none.
  std::shared_ptr<const PublicKey> public_key;
  bool has_certificate = false;  // JWK with x5c: leaf DER must hash to fingerprints
  int64_t not_before = 0;        // 0 = unknown
  int64_t not_after = 0;         // 0 = unknown / unbounded
};

struct PoshRecord {
  Format format = Format::kUnknown;
  std::vector<KeyMaterial> keys;
  std::string delegated_to;  // empty when not delegated
  std::string source_url;    // final URL of the document
  int64_t expires_seconds =
      0;  // document expires (lower of reference and target), 0 = none (JWK without expires)
  int64_t latest_not_after = 0;  // latest notAfter among usable JWK certs, 0 = none
};

// Builds the record from a terminal document (fingerprints or JWK Set). A
// ReferenceDocument is not terminal: returns an error. `reference_expires` is the
// expires of the reference that led here (0 = none): the lower one is kept (R11).
Result<PoshRecord> BuildRecord(const Document& doc, int64_t reference_expires = 0);

}  // namespace posh::core
