// Test helper: self-signed certificates made with OpenSSL, with chosen keys and validity.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/certificate.h"

namespace posh::testing {

// Cached keys (generated once per process). Different indexes are different keys.
EVP_PKEY* RsaKey(int index = 0);  // 2048-bit RSA
EVP_PKEY* EcKey(int index = 0, const char* curve = "P-256");
EVP_PKEY* Ed25519Key();

// A self-signed DER certificate for `key` with the given validity (unix seconds).
std::vector<uint8_t> MakeCertDer(EVP_PKEY* key, int64_t not_before, int64_t not_after,
                                 const std::string& cn = "test.example", long serial = 1);
// The same with the validity written as ASN.1 time text: 13 characters ("YYMMDDHHMMSSZ")
// make a UTCTime, 15 ("YYYYMMDDHHMMSSZ") a GeneralizedTime.
std::vector<uint8_t> MakeCertDerWithValidityText(EVP_PKEY* key, const std::string& not_before,
                                                 const std::string& not_after);
// MakeCertDer's certificate, parsed (the test fails via ADD_FAILURE if parsing fails).
core::Certificate MakeCert(EVP_PKEY* key, int64_t not_before, int64_t not_after,
                           const std::string& cn = "test.example", long serial = 1);

std::string ToPem(const std::vector<uint8_t>& der);

// Commonly used times.
inline constexpr int64_t kNow = 1700000000;  // 2023-11-14T22:13:20Z
inline constexpr int64_t kDay = 86400;
inline constexpr int64_t kYear = 365 * kDay;

// A valid JWK (object text) for `cert`: kty/kid/n,e or crv,x,y and x5c [cert].
std::string JwkFor(const core::Certificate& cert, const std::string& kid, bool with_params = true,
                   bool with_x5c = true);

}  // namespace posh::testing
