// Fuzzes certificate parsing (DER, PEM chain files) and JWK Sets built around arbitrary x5c
// bytes, plus the publish -> parse round trip for every certificate that parses.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/base64.h"
#include "core/certificate.h"
#include "core/document.h"
#include "core/publish.h"
#include "core/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace posh::core;
  std::span<const uint8_t> bytes(data, size);
  std::string_view text(reinterpret_cast<const char*>(data), size);

  (void)ParseChainFile(text);

  const std::string x5c = EncodeBase64(bytes);
  for (const char* kty : {"RSA", "EC"}) {
    std::string body =
        std::string(R"({"keys":[{"kty":")") + kty + R"(","kid":"f","x5c":[")" + x5c + R"("]}]})";
    auto doc = ParseDocument(body, 1700000000);
    if (doc.ok()) (void)BuildRecord(doc.value());
  }

  auto cert = ParseCertificateDer(bytes);
  if (!cert.ok()) return 0;
  if (cert->der.size() != size) __builtin_trap();
  (void)FormatTime(cert->not_before);
  (void)FormatTime(cert->not_after);
  const int64_t when = cert->not_before;
  if (cert->not_before > cert->not_after) return 0;

  // What publish writes must parse back (R10, R12).
  auto fps = ParseDocument(PublishFingerprints({cert.value()}, 60), when);
  if (!fps.ok()) __builtin_trap();
  auto jwk = PublishJwkSet({cert.value()}, 60);
  if (jwk.ok()) {
    auto doc = ParseDocument(jwk.value(), when);
    if (!doc.ok()) __builtin_trap();
    if (!BuildRecord(doc.value()).ok()) __builtin_trap();
  }
  return 0;
}
