// The shared verification store (R16-R20): a bounded, sharded, expiry-aware map from
// (domain, service) to the last resolution. Thread-safe: gRPC threads read it directly
// (the hot path: no loop round trip, no global exclusive lock); the loop thread writes.
// Pure data structure: no I/O except Save/Load of the snapshot file.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/record.h"
#include "core/result.h"

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
// (when set). An entry is servable while now_ms < ServableUntilMs(entry).
int64_t ServableUntilMs(const Entry& entry);

// Error::code values of Save/Load.
enum SnapshotErrorCode : int {
  kSnapIo = 1,         // open/read/write/fsync/rename failed
  kSnapTruncated = 2,  // shorter than its header says
  kSnapBadMagic = 3,   // not a snapshot file (or unknown header format)
  kSnapChecksum = 4,   // CRC mismatch or trailing bytes: corrupt
  kSnapParse = 5,      // the payload is not a Snapshot message
  kSnapVersion = 6,    // Snapshot.version unknown
  kSnapBadEntry = 7,   // an entry with out-of-range values
};

struct Hit {
  std::shared_ptr<const Entry> entry;
  bool needs_refresh = false;  // in the last 10 % of a positive lifetime, or stale (R19)
  bool stale = false;          // served past expires_at within the stale window
};

struct ListedEntry {
  Key key;
  std::shared_ptr<const Entry> entry;
  uint64_t hits = 0;
};

struct StoreStats {
  uint64_t entries = 0;
  uint64_t evictions = 0;  // LRU evictions for capacity (not explicit Evict/Flush)
};

class Store {
 public:
  explicit Store(size_t max_entries = 100000, size_t shards = 64);
  ~Store();

  // Fresh or stale-but-servable entry at `now_ms`; nullopt when absent or past its
  // lifetime (an expired entry is never returned; it may be dropped lazily).
  // Marks the entry recently used. Safe from any thread, concurrently with writers.
  std::optional<Hit> Get(const Key& key, int64_t now_ms);
  // The entry regardless of expiry (for refresh/stale decisions on the loop thread).
  std::shared_ptr<const Entry> Peek(const Key& key) const;

  // Inserts or replaces; evicts the shard's least recently used entry over capacity
  // (capacity is split per shard: max(1, max_entries / shards) each). nullptr is ignored.
  void Put(const Key& key, std::shared_ptr<const Entry> entry);
  bool Evict(const Key& key);
  size_t Flush();
  size_t Size() const;
  StoreStats Stats() const;
  void SetMaxEntries(size_t max_entries);

  // Paged listing in a stable order (domain, service). `domain_filter` empty = all.
  // `page_token` is opaque ("" = first page); next_token "" = last page. page_size 0 =
  // everything. Lists every stored entry, expired or not (callers show expires_at).
  // `domain_filter` matches the domain exactly. An unparsable token gives an empty page.
  std::vector<ListedEntry> List(std::string_view domain_filter, std::string_view page_token,
                                size_t page_size, std::string* next_token) const;

  // R20: atomic snapshot (temp file in the same directory, fsync, rename, fsync dir).
  // Entries past their servable lifetime at `now_ms` are not written.
  Result<size_t> Save(const std::string& path, int64_t now_ms) const;
  // Loads a snapshot; drops entries expired at `now_ms`. Missing file: 0 entries, ok.
  // Truncated/corrupt/unknown version: error (the caller logs it and starts empty); the
  // load is all-or-nothing. Loaded entries are Put (replacing same keys).
  Result<size_t> Load(const std::string& path, int64_t now_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace posh::cache
