#include "core/publish.h"

#include "core/base64.h"
#include "core/hash.h"
#include "core/utf8.h"

namespace posh::core {
namespace {

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    uint8_t u = static_cast<uint8_t>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[u >> 4];
          out += hex[u & 15];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string Kid(const Certificate& cert) {
  std::string name = !cert.common_name.empty() ? cert.common_name : cert.subject;
  if (name.empty()) name = "key";
  // Names come from certificates: anything not UTF-8 becomes '?' so the output stays JSON.
  return ReplaceInvalidUtf8(name, "?") + ":" + FormatTime(cert.not_before).substr(0, 10);
}

std::string Url(const std::vector<uint8_t>& v) { return EncodeBase64(v, Base64Alphabet::kUrl); }

}  // namespace

std::string PublishFingerprints(const std::vector<Certificate>& certs, int64_t expires) {
  std::string out = "{\"fingerprints\":[";
  for (size_t i = 0; i < certs.size(); ++i) {
    if (i > 0) out += ",";
    out += "{\"sha-256\":\"" + EncodeBase64(Digest(HashAlg::kSha256, certs[i].der)) +
           "\",\"sha-512\":\"" + EncodeBase64(Digest(HashAlg::kSha512, certs[i].der)) + "\"}";
  }
  out += "],\"expires\":" + std::to_string(expires) + "}";
  return out;
}

Result<std::string> PublishJwkSet(const std::vector<Certificate>& certs, int64_t expires) {
  std::string out = "{\"keys\":[";
  for (size_t i = 0; i < certs.size(); ++i) {
    const auto& c = certs[i];
    const auto& pk = c.public_key;
    if (i > 0) out += ",";
    out += "{";
    if (pk.type == PublicKey::Type::kRsa) {
      out += "\"kty\":\"RSA\",\"kid\":" + JsonString(Kid(c)) + ",\"n\":\"" + Url(pk.a) +
             "\",\"e\":\"" + Url(pk.b) + "\"";
    } else if (pk.type == PublicKey::Type::kEc) {
      out += "\"kty\":\"EC\",\"kid\":" + JsonString(Kid(c)) + ",\"crv\":" + JsonString(pk.curve) +
             ",\"x\":\"" + Url(pk.a) + "\",\"y\":\"" + Url(pk.b) + "\"";
    } else {
      return Fail(
          Error{1, "certificate " + std::to_string(i + 1) + " (" + c.subject +
                       "): key type not expressible as a JWK (RSA, EC P-256/384/521 only)"});
    }
    out += ",\"x5c\":[\"" + EncodeBase64(c.der) + "\"]}";
  }
  out += "]";
  if (expires > 0) out += ",\"expires\":" + std::to_string(expires);
  out += "}";
  return out;
}

}  // namespace posh::core
