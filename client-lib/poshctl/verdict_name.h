// The verdict's name in poshctl's output (INTERFACE.md: verify's `verdict`, probe's
// `posh.verdict`).
#pragma once

#include "posh/v1/resolver.pb.h"

namespace posh::ctl {

inline const char* VerdictName(posh::v1::Verdict v) {
  switch (v) {
    case posh::v1::VERDICT_VERIFIED:
      return "verified";
    case posh::v1::VERDICT_NOT_VERIFIED:
      return "not_verified";
    case posh::v1::VERDICT_NO_POSH:
      return "no_posh";
    default:
      return "error";
  }
}

}  // namespace posh::ctl
