// Fuzzes R9-R12 document parsing, record building and R13/R14 matching on arbitrary bodies.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/document.h"
#include "core/matcher.h"
#include "core/record.h"
#include "core/url.h"

namespace {

[[noreturn]] void Invariant(const char* what) {
  (void)what;
  __builtin_trap();
}

void Check(std::string_view body, int64_t now) {
  auto doc = posh::core::ParseDocument(body, now);
  if (!doc.ok()) {
    if (doc.error().message.empty()) Invariant("error without a message");
    return;
  }
  if (const auto* ref = std::get_if<posh::core::ReferenceDocument>(&doc.value())) {
    if (ref->expires <= 0) Invariant("bad reference accepted");
    // R11: what the resolver will fetch is an absolute https URL with a host, read as curl
    // (the fetcher) reads it.
    auto url = posh::core::ParseAbsoluteUrl(ref->url);
    if (!url || url->scheme != "https" || url->host.empty()) Invariant("bad reference url");
    if (posh::core::BuildRecord(doc.value()).ok()) Invariant("reference became a record");
    return;
  }
  auto rec = posh::core::BuildRecord(doc.value(), 3600);
  if (!rec.ok()) Invariant("parsed document without a record");
  if (rec->keys.empty()) Invariant("record without keys");
  if (const auto* set = std::get_if<posh::core::JwkSet>(&doc.value())) {
    for (const auto& k : set->keys) {
      if (!k.usable && k.unusable_reason.empty()) Invariant("unusable without reason");
      if (k.usable && k.cert) {
        auto m = posh::core::Match(rec.value(), *k.cert, now);
        // A usable key's own certificate matches whenever it is within its validity.
        if (!m.matched && now >= k.cert->not_before && now <= k.cert->not_after)
          Invariant("usable key does not match its own certificate");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  Check(body, 1338508800);  // 2012-06-01: the seed draft's examples are valid then
  Check(body, 1700000000);  // 2023-11-14
  return 0;
}
