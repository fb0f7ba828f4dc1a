// Fuzzes R1 NormalizeDomain and R2 NormalizeService: no crash, and normalisation is
// idempotent and only ever yields LDH names.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/domain.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto d = posh::core::NormalizeDomain(in);
  if (d.ok()) {
    const std::string& s = d.value();
    if (s.empty() || s.size() > 253) __builtin_trap();
    for (char c : s) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
        __builtin_trap();
    }
    auto again = posh::core::NormalizeDomain(s);
    if (!again.ok() || again.value() != s) __builtin_trap();
  } else if (d.error().message.empty()) {
    __builtin_trap();
  }
  auto svc = posh::core::NormalizeService(in);
  if (svc.ok() && (svc.value().empty() || svc.value().size() > 63)) __builtin_trap();
  return 0;
}
