// The lifetime rules of cache entries (R16, R17, R19): how long a resolution is served, when
// it is refreshed, how long a stale copy survives a failing origin. Pure functions of the
// entry and `now_ms` (time is a parameter, never read here).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "cache/entry.h"
#include "core/record.h"

namespace posh::cache {

struct Lifetimes {
  int64_t max_ttl_ms = 24 * 3600 * 1000LL;  // R16
  int64_t negative_ttl_ms = 300 * 1000LL;   // R17 not found
  int64_t error_ttl_ms = 30 * 1000LL;       // R17 error
  int64_t stale_ttl_ms = 3600 * 1000LL;     // R19
};

// R16: positive entry from a record: expires = fetched + min(doc expires (already the
// lower of reference and target), latest usable notAfter - now, max_ttl); hard limit = the
// latest notAfter; refresh_at = expires - 10 % of the lifetime. A record with expires 0
// never gets here (the core rejects it). Returns nullptr when the lifetime is <= 0.
std::shared_ptr<const Entry> MakePositiveEntry(std::shared_ptr<const core::PoshRecord> record,
                                               int64_t now_ms, const Lifetimes& lifetimes);
// R17.
std::shared_ptr<const Entry> MakeNotFoundEntry(int64_t now_ms, const Lifetimes& lifetimes);
std::shared_ptr<const Entry> MakeErrorEntry(std::string error, uint8_t error_kind, int64_t now_ms,
                                            const Lifetimes& lifetimes);
// R19: a transient refresh failure for an old positive entry: a copy of `old` servable
// until min(old->expires_at_ms + stale_ttl, hard_limit). nullptr when that is already past.
std::shared_ptr<const Entry> MakeStaleEntry(const Entry& old, int64_t now_ms,
                                            const Lifetimes& lifetimes);

// The end of an entry's servable time: max(expires_at, stale_until) capped by hard_limit
// (when set). An entry is servable while now_ms < ServableUntilMs(entry). Inline: the
// store's hit path calls it under a shard lock.
inline int64_t ServableUntilMs(const Entry& entry) {
  int64_t until = std::max(entry.expires_at_ms, entry.stale_until_ms);
  if (entry.hard_limit_ms > 0) until = std::min(until, entry.hard_limit_ms);
  return until;
}

// How a servable entry is served at `now_ms` (R19): stale once past expires_at (within the
// stale window), due for a background refresh in the last 10 % of a positive lifetime or
// once a stale copy's retry time has come.
struct Freshness {
  bool stale = false;
  bool needs_refresh = false;
};
inline Freshness FreshnessAt(const Entry& entry, int64_t now_ms) {
  return Freshness{
      .stale = now_ms >= entry.expires_at_ms,
      .needs_refresh = entry.status == EntryStatus::kFound && now_ms >= entry.refresh_at_ms};
}

}  // namespace posh::cache
