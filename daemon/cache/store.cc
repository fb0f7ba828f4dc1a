#include "cache/store.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <unordered_map>
#include <utility>

#include "cache/eviction.h"
#include "util/mutex.h"

namespace posh::cache {
namespace {

// ---------------------------------------------------------------------------------------
// Keys and hashing. The hash is computed once over string_views (no allocation) and used
// both for the shard and, cached in a KeyRef, for the shard's map.

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t HashKey(std::string_view domain, std::string_view service) noexcept {
  const uint64_t hd = std::hash<std::string_view>{}(domain);
  const uint64_t hs = std::hash<std::string_view>{}(service);
  return Mix64(hd ^ Mix64(hs));
}

struct KeyRef {
  const Key* key;
  uint64_t hash;
};

struct KeyHash {
  using is_transparent = void;
  size_t operator()(const Key& k) const noexcept { return HashKey(k.domain, k.service); }
  size_t operator()(const KeyRef& k) const noexcept { return k.hash; }
};

struct KeyEq {
  using is_transparent = void;
  bool operator()(const Key& a, const Key& b) const noexcept { return a == b; }
  bool operator()(const KeyRef& a, const Key& b) const noexcept { return *a.key == b; }
  bool operator()(const Key& a, const KeyRef& b) const noexcept { return a == *b.key; }
};

bool KeyLess(const Key& a, const Key& b) {
  if (a.domain != b.domain) return a.domain < b.domain;
  return a.service < b.service;
}

// ---------------------------------------------------------------------------------------
// Shards.

struct Node {
  std::shared_ptr<const Entry> entry;
  LruHook lru;
  std::atomic<uint64_t> hits{0};
};

using Map = std::unordered_map<Key, Node, KeyHash, KeyEq>;
using MapValue = Map::value_type;

struct NodeLruTraits {
  static LruHook& Hook(MapValue& v) { return v.second.lru; }
  static int64_t ServableUntilMs(const MapValue& v) {
    return cache::ServableUntilMs(*v.second.entry);
  }
};
using Lru = SampledLru<MapValue, NodeLruTraits>;

struct alignas(64) Shard {
  mutable util::SharedMutex mu;
  Map map ABSL_GUARDED_BY(mu);
  // Readers under the shared lock read its clock and touch ticks (atomics); everything
  // else in it changes under the exclusive lock.
  Lru lru ABSL_GUARDED_BY(mu);
  uint64_t evictions ABSL_GUARDED_BY(mu) = 0;
  size_t cap ABSL_GUARDED_BY(mu) = 1;
};

void RemoveNode(Shard& s, MapValue* v) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
  s.lru.Remove(v);
  s.map.erase(s.map.find(v->first));
}

// Evicts one entry chosen by the sampled LRU, never `keep`.
void EvictOne(Shard& s, const MapValue* keep, int64_t now_hint)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
  MapValue* victim = s.lru.PickVictim(keep, now_hint);
  if (victim == nullptr) return;
  RemoveNode(s, victim);
  ++s.evictions;
}

// ---------------------------------------------------------------------------------------
// Page tokens: "<domain length>:<domain><service>" (opaque to callers).

std::string MakeToken(const Key& k) {
  return std::to_string(k.domain.size()) + ":" + k.domain + k.service;
}

std::optional<Key> ParseToken(std::string_view token) {
  const size_t colon = token.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 9) return std::nullopt;
  size_t len = 0;
  for (size_t i = 0; i < colon; ++i) {
    if (token[i] < '0' || token[i] > '9') return std::nullopt;
    len = len * 10 + static_cast<size_t>(token[i] - '0');
  }
  std::string_view rest = token.substr(colon + 1);
  if (len > rest.size()) return std::nullopt;
  return Key{std::string(rest.substr(0, len)), std::string(rest.substr(len))};
}

// Inserts or replaces under the shard's exclusive lock. `movable` (may be null) is `*ref.key`
// and may be moved from when a new node is created.
void PutInShard(Shard& s, const KeyRef& ref, Key* movable, std::shared_ptr<const Entry> entry)
    ABSL_LOCKS_EXCLUDED(s.mu) {
  const int64_t now_hint = entry->fetched_at_ms;
  std::shared_ptr<const Entry> old;  // released after the lock
  util::WriterMutexLock lock(&s.mu);
  const uint64_t t = s.lru.TickForWrite();
  auto it = s.map.find(ref);
  if (it != s.map.end()) {
    old = std::exchange(it->second.entry, std::move(entry));
    Lru::Stamp(*it, t);
    return;
  }
  s.lru.Reserve(s.map.size() + 1);
  it = movable ? s.map.try_emplace(std::move(*movable)).first : s.map.try_emplace(*ref.key).first;
  MapValue* v = &*it;
  v->second.entry = std::move(entry);
  s.lru.Add(v, t);
  while (s.map.size() > s.cap) EvictOne(s, v, now_hint);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Store.

struct Store::Impl {
  explicit Impl(size_t n) : shard_count(std::max<size_t>(1, n)), shards(new Shard[shard_count]) {
    for (size_t i = 0; i < shard_count; ++i) {
      util::WriterMutexLock lock(&shards[i].mu);
      shards[i].lru.Seed(Mix64(i + 1) | 1);
    }
  }

  Shard& ShardFor(uint64_t hash) const { return shards[(hash >> 32) % shard_count]; }

  size_t CapFor(size_t i, size_t max_entries) const {
    const size_t cap = max_entries / shard_count + (i < max_entries % shard_count ? 1 : 0);
    return std::max<size_t>(1, cap);
  }

  const size_t shard_count;
  std::unique_ptr<Shard[]> shards;
};

Store::Store(size_t max_entries, size_t shards) : impl_(std::make_unique<Impl>(shards)) {
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    util::WriterMutexLock lock(&s.mu);
    s.cap = impl_->CapFor(i, max_entries);
  }
}

Store::~Store() = default;

std::optional<Hit> Store::Get(const Key& key, int64_t now_ms) {
  const KeyRef ref{&key, HashKey(key.domain, key.service)};
  Shard& s = impl_->ShardFor(ref.hash);
  util::ReaderMutexLock lock(&s.mu);
  auto it = s.map.find(ref);
  if (it == s.map.end()) return std::nullopt;
  const Entry& e = *it->second.entry;
  if (now_ms >= ServableUntilMs(e)) return std::nullopt;
  // Recency and the hit count are atomics: a reader may update them under the shared lock.
  Lru::Touch(*it, s.lru.clock());
  it->second.hits.fetch_add(1, std::memory_order_relaxed);
  const Freshness f = FreshnessAt(e, now_ms);
  std::optional<Hit> hit(std::in_place);
  hit->entry = it->second.entry;
  hit->stale = f.stale;
  hit->needs_refresh = f.needs_refresh;
  return hit;
}

std::shared_ptr<const Entry> Store::Peek(const Key& key) const {
  const KeyRef ref{&key, HashKey(key.domain, key.service)};
  Shard& s = impl_->ShardFor(ref.hash);
  util::ReaderMutexLock lock(&s.mu);
  auto it = s.map.find(ref);
  if (it == s.map.end()) return nullptr;
  return it->second.entry;
}

void Store::Put(const Key& key, std::shared_ptr<const Entry> entry) {
  if (!entry) return;
  const KeyRef ref{&key, HashKey(key.domain, key.service)};
  PutInShard(impl_->ShardFor(ref.hash), ref, nullptr, std::move(entry));
}

bool Store::Evict(const Key& key) {
  const KeyRef ref{&key, HashKey(key.domain, key.service)};
  Shard& s = impl_->ShardFor(ref.hash);
  util::WriterMutexLock lock(&s.mu);
  auto it = s.map.find(ref);
  if (it == s.map.end()) return false;
  RemoveNode(s, &*it);
  return true;
}

size_t Store::Flush() {
  size_t n = 0;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    Map dropped;  // destroyed after the lock
    {
      util::WriterMutexLock lock(&s.mu);
      n += s.map.size();
      dropped.swap(s.map);
      s.lru.Clear();
    }
  }
  return n;
}

size_t Store::Size() const {
  size_t n = 0;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    util::ReaderMutexLock lock(&s.mu);
    n += s.map.size();
  }
  return n;
}

StoreStats Store::Stats() const {
  StoreStats st;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    util::ReaderMutexLock lock(&s.mu);
    st.entries += s.map.size();
    st.evictions += s.evictions;
  }
  return st;
}

void Store::SetMaxEntries(size_t max_entries) {
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    util::WriterMutexLock lock(&s.mu);
    s.cap = impl_->CapFor(i, max_entries);
    while (s.map.size() > s.cap) EvictOne(s, nullptr, 0);
  }
}

std::vector<ListedEntry> Store::List(std::string_view domain_filter, std::string_view page_token,
                                     size_t page_size, std::string* next_token) const {
  // Parse the token first: callers may pass the previous *next_token as page_token.
  std::optional<Key> after;
  if (!page_token.empty()) after = ParseToken(page_token);
  if (next_token) next_token->clear();
  if (!page_token.empty() && !after) return {};
  constexpr size_t kUnlimited = std::numeric_limits<size_t>::max();
  const size_t limit = (page_size == 0 || page_size == kUnlimited) ? kUnlimited : page_size + 1;
  auto less = [](const ListedEntry& a, const ListedEntry& b) { return KeyLess(a.key, b.key); };
  std::vector<ListedEntry> all;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    // The `limit` smallest keys of this shard after the token: a max-heap by key.
    std::vector<ListedEntry> heap;
    {
      util::ReaderMutexLock lock(&s.mu);
      for (const auto& [k, node] : s.map) {
        if (!domain_filter.empty() && k.domain != domain_filter) continue;
        if (after && !KeyLess(*after, k)) continue;
        if (heap.size() == limit) {
          if (!KeyLess(k, heap.front().key)) continue;
          std::pop_heap(heap.begin(), heap.end(), less);
          heap.pop_back();
        }
        heap.push_back(ListedEntry{k, node.entry, node.hits.load(std::memory_order_relaxed)});
        std::push_heap(heap.begin(), heap.end(), less);
      }
    }
    for (ListedEntry& le : heap) all.push_back(std::move(le));
  }
  std::sort(all.begin(), all.end(), less);
  if (page_size != 0 && all.size() > page_size) {
    all.resize(page_size);
    if (next_token) *next_token = MakeToken(all.back().key);
  }
  return all;
}

// ---------------------------------------------------------------------------------------
// Persistence (R20): the store picks the entries; snapshot.cc owns the file format.

Result<size_t> Store::Save(const std::string& path, int64_t now_ms) const {
  SnapshotItems items;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    util::ReaderMutexLock lock(&s.mu);
    items.reserve(items.size() + s.map.size());
    for (const auto& [k, node] : s.map) {
      if (now_ms >= ServableUntilMs(*node.entry)) continue;
      items.emplace_back(k, node.entry);
    }
  }
  std::sort(items.begin(), items.end(),
            [](const auto& a, const auto& b) { return KeyLess(a.first, b.first); });
  return WriteSnapshot(path, items, now_ms);
}

Result<size_t> Store::Load(const std::string& path, int64_t now_ms) {
  auto read = ReadSnapshot(path, now_ms);
  if (!read) return Fail(std::move(read).error());
  SnapshotItems& items = *read;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    util::WriterMutexLock lock(&s.mu);
    const size_t want = std::min(s.cap, s.map.size() + items.size() / impl_->shard_count + 16);
    s.map.reserve(want);
    s.lru.Reserve(want);
  }
  for (auto& [key, entry] : items) {
    const KeyRef ref{&key, HashKey(key.domain, key.service)};
    PutInShard(impl_->ShardFor(ref.hash), ref, &key, std::move(entry));
  }
  return items.size();
}

}  // namespace posh::cache
