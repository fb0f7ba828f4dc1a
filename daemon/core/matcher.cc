#include "core/matcher.h"

#include <array>
#include <optional>

#include "core/base64.h"

namespace posh::core {
namespace {

std::string KeyName(const KeyMaterial& k, size_t index) {
  if (!k.kid.empty()) return "key " + k.kid;
  return "key " + std::to_string(index);
}

MatchOutcome Matched(const PoshRecord& record, size_t index) {
  MatchOutcome m;
  m.matched = true;
  m.key_index = static_cast<int>(index);
  m.kid = record.keys[index].kid;
  return m;
}

}  // namespace

MatchOutcome Match(const PoshRecord& record, const Certificate& leaf, int64_t now) {
  MatchOutcome out;
  if (now < leaf.not_before) {
    out.reason = "presented certificate is not valid before " + FormatTime(leaf.not_before);
    return out;
  }
  if (now > leaf.not_after) {
    out.reason = "presented certificate expired at " + FormatTime(leaf.not_after);
    return out;
  }
  if (record.keys.empty()) {
    out.reason = "the POSH record has no usable key";
    return out;
  }

  if (record.format != Format::kJwk) {
    // R13, RFC 7711: strongest trusted hash of each descriptor, no fallback. Each digest
    // of the leaf is computed once (lazily); text is built only for the mismatch reason.
    // A parsed leaf carries its trusted digests already (ParseCertificateDer).
    std::array<std::optional<DigestValue>, 8> digests;
    std::array<HashAlg, 8> order{};  // algorithms used, in first-use order (no allocation)
    size_t used = 0;
    auto leaf_hash = [&](HashAlg alg) -> const DigestValue& {
      auto& slot = digests[static_cast<size_t>(alg) % digests.size()];
      if (!slot) {
        const DigestValue* pre = leaf.TrustedDigest(alg);
        slot = pre != nullptr ? *pre : DigestValue(Digest(alg, leaf.der));
        order[used++] = alg;
      }
      return *slot;
    };
    for (size_t i = 0; i < record.keys.size(); ++i) {
      const Fingerprint* best = nullptr;
      for (const auto& f : record.keys[i].fingerprints) {
        if (!HashAlgTrusted(f.alg)) continue;
        if (best == nullptr || HashAlgStrength(f.alg) > HashAlgStrength(best->alg)) best = &f;
      }
      if (best == nullptr) continue;
      if (leaf_hash(best->alg) == best->value) return Matched(record, i);
    }
    out.reason = "no descriptor matches the presented certificate (";
    for (size_t i = 0; i < used; ++i) {
      if (i > 0) out.reason += ", ";
      out.reason += std::string(HashAlgName(order[i])) + " " +
                    EncodeBase64(*digests[static_cast<size_t>(order[i]) % digests.size()]);
    }
    out.reason += ")";
    return out;
  }

  // R13/R14, JWK: x5c[0] equality (by sha-256) or public key equality; expired keys never match.
  const DigestValue* pre_sha256 = leaf.TrustedDigest(HashAlg::kSha256);
  const DigestValue leaf_sha256 =
      pre_sha256 != nullptr ? *pre_sha256 : DigestValue(Digest(HashAlg::kSha256, leaf.der));
  std::string skipped;
  for (size_t i = 0; i < record.keys.size(); ++i) {
    const auto& k = record.keys[i];
    if (k.not_after != 0 && now > k.not_after) {
      skipped += "; " + KeyName(k, i) + " expired at " + FormatTime(k.not_after);
      continue;
    }
    if (k.not_before != 0 && now < k.not_before) {
      skipped += "; " + KeyName(k, i) + " not valid before " + FormatTime(k.not_before);
      continue;
    }
    for (const auto& f : k.fingerprints) {
      if (f.alg == HashAlg::kSha256 && f.value == leaf_sha256) return Matched(record, i);
    }
    if (k.public_key && leaf.public_key == *k.public_key) return Matched(record, i);
  }
  out.reason = "no key matches the presented certificate (sha-256 " + EncodeBase64(leaf_sha256) +
               ")" + skipped;
  return out;
}

}  // namespace posh::core
