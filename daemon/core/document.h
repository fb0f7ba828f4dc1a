// POSH documents (R9-R12): parsing JSON bodies with simdjson. Pure: the time is a
// parameter, there is no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/certificate.h"
#include "core/hash.h"
#include "core/result.h"

namespace posh::core {

// Document-level error codes (Error::code).
enum DocumentErrorCode : int {
  kDocNotJson = 1,       // malformed JSON, invalid UTF-8, too deep, not an object
  kDocBadKind = 2,       // none of fingerprints/url/keys, or both fingerprints and url (R9)
  kDocBadExpires = 3,    // missing, negative, fractional, not a number (R10/R11)
  kDocExpiresZero = 4,   // expires 0: material invalid (R10/R11)
  kDocNoUsableKey = 5,   // no usable descriptor / key (R10/R12)
  kDocBadUrl = 6,        // reference url not an absolute https URL (R11, core/url)
  kDocBadStructure = 7,  // wrong member types (fingerprints not an array, ...)
};

struct Fingerprint {
  HashAlg alg;
  DigestValue value;  // decoded digest, length == HashAlgDigestSize(alg); inline, no allocation
};

// One RFC 7711 descriptor object: the hashes it carries with a correct decoded length.
// Entries with a wrong length or bad base64 are dropped (unusable); unknown names ignored.
struct Descriptor {
  std::vector<Fingerprint> fingerprints;
};

struct FingerprintsDocument {
  std::vector<Descriptor> descriptors;  // only usable ones (>= 1 trusted fingerprint)
  int64_t expires = 0;                  // seconds, > 0
};

struct ReferenceDocument {
  // Absolute https URL, as written. The delegated domain (R11) is the host of the URL the
  // target is finally fetched from (after redirects, R6), which the resolver knows.
  std::string url;
  int64_t expires = 0;
};

struct JwkKey {
  std::string kid;
  std::string kty;
  std::optional<PublicKey> params;  // from n/e or crv/x/y when present and decodable
  std::optional<Certificate> cert;  // x5c[0] when present and parsable
  bool usable = false;
  std::string unusable_reason;  // set when !usable
};

struct JwkSet {
  std::vector<JwkKey> keys;        // all keys, usable or not (for diagnostics)
  std::optional<int64_t> expires;  // optional in the draft format; validated if present
};

using Document = std::variant<FingerprintsDocument, ReferenceDocument, JwkSet>;

// Parses a body. `now` (unix seconds) decides JWK key usability: a key whose x5c[0]
// certificate has expired at `now` is unusable (R12/R14). A certificate that is not yet
// valid keeps its key usable (published ahead of a roll-over, seed draft §7; the vectors
// README requires every seed key usable on 2012-06-01); Match() skips it until notBefore.
// A JWK Set with no usable key, or a fingerprints document with no usable descriptor,
// is an error (kDocNoUsableKey).
Result<Document> ParseDocument(std::string_view body, int64_t now);

}  // namespace posh::core
