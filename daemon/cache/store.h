// The shared verification store (R16-R20): a bounded, sharded, expiry-aware map from
// (domain, service) to the last resolution. The map and its public API live here; the
// lifetime rules in lifetime.h, the eviction policy in eviction.h, the snapshot file format
// in snapshot.h (this header includes entry.h, lifetime.h and snapshot.h for its callers).
//
// Threads: every method is safe from any thread, concurrently with any other: each takes
// the lock of the shard(s) it touches (a shared lock to read, an exclusive one to write),
// so no caller needs to be on a particular thread. Who calls what in poshd:
//   Get, Peek           gRPC threads (the hot path: no loop round trip) and the loop thread
//   Put                 the loop thread (a finished retrieval, PoshService)
//   Evict, Flush        gRPC threads (the admin RPCs)
//   Load                the main thread, before the loop and gRPC start
//   Save                the main thread (periodic and final snapshots; shared locks only)
//   SetMaxEntries       the main thread (SIGHUP reload)
//   List, Size, Stats   gRPC threads, the loop thread (metrics endpoint), the main thread
// Pure data structure: no I/O except Save/Load of the snapshot file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/entry.h"
#include "cache/lifetime.h"
#include "cache/snapshot.h"
#include "core/result.h"

namespace posh::cache {

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
  // Marks the entry recently used. Shared lock only.
  std::optional<Hit> Get(const Key& key, int64_t now_ms);
  // The entry regardless of expiry (for refresh/stale decisions). Shared lock only.
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
