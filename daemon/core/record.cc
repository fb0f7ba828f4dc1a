#include "core/record.h"

#include <algorithm>

namespace posh::core {
namespace {

int64_t LowerExpires(int64_t a, int64_t b) {
  if (a <= 0) return b > 0 ? b : 0;
  if (b <= 0) return a;
  return std::min(a, b);
}

}  // namespace

Result<PoshRecord> BuildRecord(const Document& doc, int64_t reference_expires) {
  PoshRecord rec;
  if (std::holds_alternative<ReferenceDocument>(doc)) {
    return Fail(Error{kDocBadKind,
                      "a reference document must point to a fingerprints document "
                      "or a JWK Set, not to another reference"});
  }
  if (const auto* fp = std::get_if<FingerprintsDocument>(&doc)) {
    rec.format = Format::kRfc7711;
    for (const auto& d : fp->descriptors) {
      if (!std::any_of(d.fingerprints.begin(), d.fingerprints.end(),
                       [](const Fingerprint& f) { return HashAlgTrusted(f.alg); }))
        continue;
      KeyMaterial k;
      k.fingerprints = d.fingerprints;
      rec.keys.push_back(std::move(k));
    }
    rec.expires_seconds = LowerExpires(fp->expires, reference_expires);
  } else {
    const auto& set = std::get<JwkSet>(doc);
    rec.format = Format::kJwk;
    for (const auto& key : set.keys) {
      if (!key.usable) continue;
      KeyMaterial k;
      k.kid = key.kid;
      k.kty = key.kty;
      if (key.cert) {
        k.has_certificate = true;
        k.fingerprints.push_back({HashAlg::kSha256, Digest(HashAlg::kSha256, key.cert->der)});
        k.fingerprints.push_back({HashAlg::kSha512, Digest(HashAlg::kSha512, key.cert->der)});
        k.not_before = key.cert->not_before;
        k.not_after = key.cert->not_after;
        k.public_key = std::make_shared<const PublicKey>(key.cert->public_key);
        rec.latest_not_after = std::max(rec.latest_not_after, key.cert->not_after);
      } else if (key.params) {
        k.public_key = std::make_shared<const PublicKey>(*key.params);
      } else {
        continue;
      }
      rec.keys.push_back(std::move(k));
    }
    rec.expires_seconds = LowerExpires(set.expires.value_or(0), reference_expires);
  }
  if (rec.keys.empty()) return Fail(Error{kDocNoUsableKey, "no usable key in the document"});
  return rec;
}

}  // namespace posh::core
