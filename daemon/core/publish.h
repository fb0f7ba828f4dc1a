// `poshctl publish`: the POSH document that serves a set of certificates. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/certificate.h"
#include "core/result.h"

namespace posh::core {

// RFC 7711: {"fingerprints":[{"sha-256":"...","sha-512":"..."},...],"expires":N}
std::string PublishFingerprints(const std::vector<Certificate>& certs, int64_t expires);

// Seed draft JWK Set: one key per certificate with kty, kid (CN or subject + notBefore
// date), n/e or crv/x/y (base64url, no padding) and x5c [standard base64 DER]; includes
// "expires" too when expires > 0. Error for a key type JWK cannot express.
Result<std::string> PublishJwkSet(const std::vector<Certificate>& certs, int64_t expires);

}  // namespace posh::core
