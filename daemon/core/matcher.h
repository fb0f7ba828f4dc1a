// R13-R15: does a presented chain match a POSH record at a given time? Pure.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/certificate.h"
#include "core/record.h"

namespace posh::core {

enum class Verdict : uint8_t { kVerified = 1, kNotVerified = 2, kNoPosh = 3, kError = 4 };

struct MatchOutcome {
  bool matched = false;
  int key_index = -1;  // index into record.keys
  std::string kid;     // matched key id (JWK)
  std::string reason;  // why not matched (when !matched)
};

// `leaf` is the presented leaf, already parsed. R14: the leaf must be within its validity
// at `now`; JWK keys whose not_after < now (or not_before > now) never match.
// RFC 7711: per descriptor (key), hash the leaf DER with the strongest trusted hash the
// descriptor carries and compare; no fallback to weaker hashes. JWK: leaf DER hash equals
// the x5c[0] fingerprint, or the leaf public key equals the JWK key.
MatchOutcome Match(const PoshRecord& record, const Certificate& leaf, int64_t now);

}  // namespace posh::core
