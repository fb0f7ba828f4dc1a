#include "support/test_certs.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <map>
#include <memory>
#include <utility>

#include "core/base64.h"

namespace posh::testing {

namespace {
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
}  // namespace

EVP_PKEY* RsaKey(int index) {
  static std::map<int, PkeyPtr> keys;
  auto& k = keys[index];
  if (!k) k.reset(EVP_RSA_gen(2048));
  return k.get();
}

EVP_PKEY* EcKey(int index, const char* curve) {
  static std::map<std::pair<int, std::string>, PkeyPtr> keys;
  auto& k = keys[{index, curve}];
  if (!k) k.reset(EVP_EC_gen(curve));
  return k.get();
}

EVP_PKEY* Ed25519Key() {
  static PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  return k.get();
}

namespace {

// A self-signed DER certificate whose validity `set_validity` writes.
template <class SetValidity>
std::vector<uint8_t> SignedCertDer(EVP_PKEY* key, const std::string& cn, long serial,
                                   SetValidity set_validity) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  set_validity(x);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  const bool no_digest = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
  if (X509_sign(x, key, no_digest ? nullptr : EVP_sha256()) <= 0) {
    ADD_FAILURE() << "X509_sign failed";
  }
  unsigned char* buf = nullptr;
  int len = i2d_X509(x, &buf);
  std::vector<uint8_t> der;
  if (len > 0) der.assign(buf, buf + len);
  OPENSSL_free(buf);
  X509_free(x);
  return der;
}

}  // namespace

std::vector<uint8_t> MakeCertDer(EVP_PKEY* key, int64_t not_before, int64_t not_after,
                                 const std::string& cn, long serial) {
  return SignedCertDer(key, cn, serial, [&](X509* x) {
    ASN1_TIME_set(X509_getm_notBefore(x), static_cast<time_t>(not_before));
    ASN1_TIME_set(X509_getm_notAfter(x), static_cast<time_t>(not_after));
  });
}

std::vector<uint8_t> MakeCertDerWithValidityText(EVP_PKEY* key, const std::string& not_before,
                                                 const std::string& not_after) {
  return SignedCertDer(key, "test.example", 1, [&](X509* x) {
    if (ASN1_TIME_set_string(X509_getm_notBefore(x), not_before.c_str()) != 1 ||
        ASN1_TIME_set_string(X509_getm_notAfter(x), not_after.c_str()) != 1) {
      ADD_FAILURE() << "bad ASN.1 time text: " << not_before << " / " << not_after;
    }
  });
}

core::Certificate MakeCert(EVP_PKEY* key, int64_t not_before, int64_t not_after,
                           const std::string& cn, long serial) {
  auto der = MakeCertDer(key, not_before, not_after, cn, serial);
  auto cert = core::ParseCertificateDer(der);
  if (!cert.ok()) {
    ADD_FAILURE() << "test certificate does not parse: " << cert.error().message;
    return {};
  }
  return std::move(cert.value());
}

std::string ToPem(const std::vector<uint8_t>& der) {
  std::string b64 = core::EncodeBase64(der);
  std::string out = "-----BEGIN CERTIFICATE-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  out += "-----END CERTIFICATE-----\n";
  return out;
}

std::string JwkFor(const core::Certificate& cert, const std::string& kid, bool with_params,
                   bool with_x5c) {
  using core::Base64Alphabet;
  using core::EncodeBase64;
  const auto& pk = cert.public_key;
  std::string out = "{";
  if (pk.type == core::PublicKey::Type::kEc) {
    out += "\"kty\":\"EC\",\"kid\":\"" + kid + "\"";
    if (with_params) {
      out += ",\"crv\":\"" + pk.curve + "\",\"x\":\"" + EncodeBase64(pk.a, Base64Alphabet::kUrl) +
             "\",\"y\":\"" + EncodeBase64(pk.b, Base64Alphabet::kUrl) + "\"";
    }
  } else {
    out += "\"kty\":\"RSA\",\"kid\":\"" + kid + "\"";
    if (with_params) {
      out += ",\"n\":\"" + EncodeBase64(pk.a, Base64Alphabet::kUrl) + "\",\"e\":\"" +
             EncodeBase64(pk.b, Base64Alphabet::kUrl) + "\"";
    }
  }
  if (with_x5c) out += ",\"x5c\":[\"" + EncodeBase64(cert.der) + "\"]";
  return out + "}";
}

}  // namespace posh::testing
