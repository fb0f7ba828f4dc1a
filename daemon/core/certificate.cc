#include "core/certificate.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

static_assert(sizeof(time_t) >= 8, "certificate times past 2038 need a 64-bit time_t");

namespace posh::core {
namespace {

enum CertErrorCode : int {
  kCertEmpty = 1,
  kCertParse = 2,
  kCertTrailing = 3,
  kCertTime = 4,
  kChain = 5
};

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// Both encodings (RFC 5280 4.1.2.5): ASN1_TIME_to_tm reads UTCTime's two-digit year as
// 1950-2049 and GeneralizedTime's four digits; timegm turns the UTC calendar time into unix
// seconds over the whole 0001-9999 range (time_t is 64-bit). Measured on the build host
// (2 cores, -O2): timegm ~0.1 us a call, ~0.36 us with two threads calling at once (glibc
// serialises them); the hand-written days-from-civil it replaced took ~0.01 us. Either is
// noise next to parsing the certificate, so the library call stays.
bool AsnTimeToUnix(const ASN1_TIME* t, int64_t* out) {
  if (t == nullptr) return false;
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return false;
  *out = static_cast<int64_t>(timegm(&tm));
  return true;
}

std::vector<uint8_t> BnBytes(const BIGNUM* bn) {
  std::vector<uint8_t> out(static_cast<size_t>(BN_num_bytes(bn)));
  if (!out.empty()) BN_bn2bin(bn, out.data());
  return out;  // big-endian, no leading zeros
}

bool GetBnParam(const EVP_PKEY* pkey, const char* name, std::vector<uint8_t>* out) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || bn == nullptr) return false;
  BnPtr holder(bn);
  *out = BnBytes(bn);
  return true;
}

size_t CurveFieldSize(std::string_view crv) {
  if (crv == "P-256") return 32;
  if (crv == "P-384") return 48;
  if (crv == "P-521") return 66;
  return 0;
}

std::vector<uint8_t> LeftPad(std::vector<uint8_t> v, size_t size) {
  if (v.size() < size) v.insert(v.begin(), size - v.size(), 0);
  return v;
}

PublicKey ExtractPublicKey(X509* x) {
  PublicKey key;
  key.type = PublicKey::Type::kOther;
  EVP_PKEY* pkey = X509_get0_pubkey(x);  // not owned
  if (pkey == nullptr) {
    ERR_clear_error();
    return key;
  }
  int id = EVP_PKEY_get_base_id(pkey);
  if (id == EVP_PKEY_RSA) {
    PublicKey rsa;
    rsa.type = PublicKey::Type::kRsa;
    if (GetBnParam(pkey, OSSL_PKEY_PARAM_RSA_N, &rsa.a) &&
        GetBnParam(pkey, OSSL_PKEY_PARAM_RSA_E, &rsa.b) && !rsa.a.empty() && !rsa.b.empty()) {
      key = std::move(rsa);
    }
  } else if (id == EVP_PKEY_EC) {
    char group[80] = {0};
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) == 1) {
      std::string_view g(group, strnlen(group, sizeof(group)));
      std::string crv;
      if (g == "prime256v1" || g == "P-256" || g == "secp256r1") crv = "P-256";
      if (g == "secp384r1" || g == "P-384") crv = "P-384";
      if (g == "secp521r1" || g == "P-521") crv = "P-521";
      PublicKey ec;
      ec.type = PublicKey::Type::kEc;
      size_t size = CurveFieldSize(crv);
      if (size != 0 && GetBnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &ec.a) &&
          GetBnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &ec.b) && ec.a.size() <= size &&
          ec.b.size() <= size) {
        ec.curve = crv;
        ec.a = LeftPad(std::move(ec.a), size);
        ec.b = LeftPad(std::move(ec.b), size);
        key = std::move(ec);
      }
    }
  }
  ERR_clear_error();
  return key;
}

std::string NameString(const X509_NAME* name) {
  if (name == nullptr) return {};
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return {};
  if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
    return {};
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<size_t>(len));
}

std::string CommonName(const X509_NAME* name) {
  if (name == nullptr) return {};
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return {};
  const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, idx);
  const ASN1_STRING* s = e != nullptr ? X509_NAME_ENTRY_get_data(e) : nullptr;
  if (s == nullptr) return {};
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, s);
  if (len < 0 || utf8 == nullptr) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::string OpensslError() {
  unsigned long e = ERR_peek_last_error();
  std::string msg;
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    msg = buf;
  }
  ERR_clear_error();
  return msg;
}

}  // namespace

Result<Certificate> ParseCertificateDer(std::span<const uint8_t> der) {
  if (der.empty()) return Fail(Error{kCertEmpty, "certificate is empty"});
  if (der.size() > static_cast<size_t>(LONG_MAX))
    return Fail(Error{kCertParse, "certificate is too large"});
  const unsigned char* p = der.data();
  X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) {
    std::string why = OpensslError();
    return Fail(Error{kCertParse, "not a DER X.509 certificate" + (why.empty() ? "" : ": " + why)});
  }
  ERR_clear_error();
  size_t consumed = static_cast<size_t>(p - der.data());
  if (consumed != der.size()) {
    return Fail(Error{kCertTrailing, "certificate has " + std::to_string(der.size() - consumed) +
                                         " trailing bytes after the DER structure"});
  }
  Certificate cert;
  cert.der.assign(der.begin(), der.end());
  if (!AsnTimeToUnix(X509_get0_notBefore(x.get()), &cert.not_before) ||
      !AsnTimeToUnix(X509_get0_notAfter(x.get()), &cert.not_after)) {
    ERR_clear_error();
    return Fail(Error{kCertTime, "certificate has an invalid validity period"});
  }
  cert.public_key = ExtractPublicKey(x.get());
  cert.subject = NameString(X509_get_subject_name(x.get()));
  cert.common_name = CommonName(X509_get_subject_name(x.get()));
  for (HashAlg alg : {HashAlg::kSha224, HashAlg::kSha256, HashAlg::kSha384, HashAlg::kSha512}) {
    cert.trusted_digests[static_cast<size_t>(alg) - static_cast<size_t>(HashAlg::kSha224)] =
        DigestValue(Digest(alg, cert.der));
  }
  ERR_clear_error();
  return cert;
}

Result<std::vector<std::vector<uint8_t>>> ParseChainFile(std::string_view content) {
  if (content.empty()) return Fail(Error{kChain, "certificate file is empty"});
  std::vector<std::vector<uint8_t>> chain;
  if (content.find("-----BEGIN") != std::string_view::npos) {
    if (content.size() > static_cast<size_t>(INT_MAX))
      return Fail(Error{kChain, "certificate file is too large"});
    BioPtr bio(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
    if (!bio) return Fail(Error{kChain, "out of memory"});
    while (true) {
      char* name = nullptr;
      char* header = nullptr;
      unsigned char* data = nullptr;
      long len = 0;
      int ok = PEM_read_bio(bio.get(), &name, &header, &data, &len);
      if (ok != 1) {
        unsigned long e = ERR_peek_last_error();
        bool end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
        std::string why = OpensslError();
        if (end) break;
        return Fail(Error{kChain, "malformed PEM" + (why.empty() ? "" : ": " + why)});
      }
      std::string_view n(name != nullptr ? name : "");
      bool is_cert = n == "CERTIFICATE" || n == "X509 CERTIFICATE";
      std::vector<uint8_t> der;
      if (is_cert && data != nullptr && len > 0) der.assign(data, data + len);
      OPENSSL_free(name);
      OPENSSL_free(header);
      OPENSSL_free(data);
      if (!is_cert) continue;  // keys and other blocks are skipped
      auto parsed = ParseCertificateDer(der);
      if (!parsed.ok()) {
        return Fail(Error{kChain, "PEM certificate " + std::to_string(chain.size() + 1) + ": " +
                                      parsed.error().message});
      }
      chain.push_back(std::move(der));
    }
    if (chain.empty()) return Fail(Error{kChain, "no PEM certificate found"});
    return chain;
  }
  auto parsed = ParseCertificateDer(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(content.data()), content.size()));
  if (!parsed.ok())
    return Fail(Error{kChain, "neither PEM nor a DER certificate: " + parsed.error().message});
  chain.push_back(std::move(parsed.value().der));
  return chain;
}

std::string FormatTime(int64_t t) {
  constexpr int64_t kMax = int64_t{253402300799};  // 9999-12-31T23:59:59Z
  constexpr int64_t kMin = int64_t{-62135596800};  // 0001-01-01T00:00:00Z
  // Four-digit years only (RFC 3339): clamp, then let gmtime_r do the calendar.
  const time_t clamped = static_cast<time_t>(t > kMax ? kMax : t < kMin ? kMin : t);
  struct tm tm {};
  if (gmtime_r(&clamped, &tm) == nullptr) return "(invalid time)";  // not after the clamp
  char buf[64];
  // Not strftime's %Y: glibc writes year 1 as "1", RFC 3339 wants "0001".
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace posh::core
