#include "cache/lifetime.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace posh::cache {

std::shared_ptr<const Entry> MakePositiveEntry(std::shared_ptr<const core::PoshRecord> record,
                                               int64_t now_ms, const Lifetimes& lifetimes) {
  if (!record) return nullptr;
  int64_t lifetime = lifetimes.max_ttl_ms;
  if (record->expires_seconds > 0) {
    // Saturate: an absurd expires must not overflow.
    const int64_t doc_ms = record->expires_seconds > std::numeric_limits<int64_t>::max() / 1000
                               ? std::numeric_limits<int64_t>::max()
                               : record->expires_seconds * 1000;
    lifetime = std::min(lifetime, doc_ms);
  }
  int64_t hard_limit = 0;
  if (record->latest_not_after > 0) {
    hard_limit = record->latest_not_after > std::numeric_limits<int64_t>::max() / 1000
                     ? std::numeric_limits<int64_t>::max()
                     : record->latest_not_after * 1000;
    lifetime = std::min(lifetime, hard_limit - now_ms);
  }
  if (lifetime <= 0) return nullptr;
  auto e = std::make_shared<Entry>();
  e->status = EntryStatus::kFound;
  e->record = std::move(record);
  e->fetched_at_ms = now_ms;
  e->expires_at_ms = now_ms + lifetime;
  e->refresh_at_ms = e->expires_at_ms - lifetime / 10;
  e->hard_limit_ms = hard_limit;
  return e;
}

std::shared_ptr<const Entry> MakeNotFoundEntry(int64_t now_ms, const Lifetimes& lifetimes) {
  auto e = std::make_shared<Entry>();
  e->status = EntryStatus::kNotFound;
  e->fetched_at_ms = now_ms;
  e->expires_at_ms = now_ms + lifetimes.negative_ttl_ms;
  e->refresh_at_ms = e->expires_at_ms;
  return e;
}

std::shared_ptr<const Entry> MakeErrorEntry(std::string error, uint8_t error_kind, int64_t now_ms,
                                            const Lifetimes& lifetimes) {
  auto e = std::make_shared<Entry>();
  e->status = EntryStatus::kError;
  e->error = std::move(error);
  e->error_kind = error_kind;
  e->fetched_at_ms = now_ms;
  e->expires_at_ms = now_ms + lifetimes.error_ttl_ms;
  e->refresh_at_ms = e->expires_at_ms;
  return e;
}

std::shared_ptr<const Entry> MakeStaleEntry(const Entry& old, int64_t now_ms,
                                            const Lifetimes& lifetimes) {
  if (old.status != EntryStatus::kFound || lifetimes.stale_ttl_ms <= 0) return nullptr;
  int64_t until = old.expires_at_ms + lifetimes.stale_ttl_ms;
  if (old.hard_limit_ms > 0) until = std::min(until, old.hard_limit_ms);
  if (until <= now_ms || until <= old.expires_at_ms) return nullptr;
  auto e = std::make_shared<Entry>(old);
  e->stale_until_ms = until;
  // Retry the failing origin no sooner than the error TTL (not on every hit).
  e->refresh_at_ms = std::min(until, now_ms + std::max<int64_t>(lifetimes.error_ttl_ms, 1000));
  return e;
}

}  // namespace posh::cache
