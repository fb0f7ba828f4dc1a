// The store's value types: the key (domain, service) and the immutable resolution kept for
// it. Shared by the store, the lifetime rules and the snapshot format.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/record.h"

namespace posh::cache {

struct Key {
  std::string domain;   // normalised (R1)
  std::string service;  // normalised (R2)
  bool operator==(const Key&) const = default;
};

// Values are persisted: never renumber. Match posh.v1.LookupStatus.
enum class EntryStatus : uint8_t { kFound = 1, kNotFound = 2, kError = 3 };

// Immutable once published; shared between readers with shared_ptr.
struct Entry {
  EntryStatus status = EntryStatus::kError;
  std::shared_ptr<const core::PoshRecord> record;  // kFound only
  std::string error;                               // kError only
  uint8_t error_kind = 0;                          // resolve::ErrorKind value
  int64_t fetched_at_ms = 0;
  int64_t expires_at_ms = 0;   // end of the normal lifetime (R16/R17)
  int64_t refresh_at_ms = 0;   // start of the last 10 % of a positive lifetime (R19)
  int64_t hard_limit_ms = 0;   // never served after this, stale or not (cert notAfter); 0 = none
  int64_t stale_until_ms = 0;  // > expires_at_ms when a transient refresh failure keeps it (R19)
};

}  // namespace posh::cache
