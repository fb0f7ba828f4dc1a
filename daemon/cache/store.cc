#include "cache/store.h"

#include <fcntl.h>
#include <google/protobuf/arena.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

#include "posh/v1/snapshot.pb.h"

namespace posh::cache {
namespace {

namespace pb = ::posh::v1::snapshot;

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
  std::atomic<uint64_t> tick{0};  // last use: the shard clock value (approximate LRU)
  std::atomic<uint64_t> hits{0};
  size_t slot = 0;  // index in Shard::slots
};

using Map = std::unordered_map<Key, Node, KeyHash, KeyEq>;
using MapValue = Map::value_type;

struct alignas(64) Shard {
  mutable std::shared_mutex mu;
  Map map;
  // Dense array of the map's elements (stable pointers): O(1) random sampling for eviction.
  std::vector<MapValue*> slots;
  // Written only under the exclusive lock, so readers under the shared lock read it safely.
  uint64_t clock = 0;
  uint64_t evictions = 0;
  uint64_t rng = 0x2545f4914f6cdd1dULL;
  size_t cap = 1;
};

constexpr size_t kEvictionSample = 16;

void RemoveNode(Shard& s, MapValue* v) {
  const size_t slot = v->second.slot;
  MapValue* last = s.slots.back();
  s.slots[slot] = last;
  last->second.slot = slot;
  s.slots.pop_back();
  s.map.erase(s.map.find(v->first));
}

uint64_t NextRandom(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

// Evicts the least recently used entry among a sample (all entries when the shard is small),
// never `keep`. Entries already past their servable time at `now_hint` go first.
void EvictOne(Shard& s, const MapValue* keep, int64_t now_hint) {
  MapValue* victim = nullptr;
  uint64_t best = std::numeric_limits<uint64_t>::max();
  auto consider = [&](MapValue* v) {
    if (v == keep) return;
    uint64_t score = v->second.tick.load(std::memory_order_relaxed) + 1;
    if (now_hint > 0 && now_hint >= ServableUntilMs(*v->second.entry)) score = 0;
    if (victim == nullptr || score < best) {
      victim = v;
      best = score;
    }
  };
  const size_t n = s.slots.size();
  if (n <= kEvictionSample + 1) {
    for (MapValue* v : s.slots) consider(v);
  } else {
    for (size_t i = 0; i < kEvictionSample; ++i) consider(s.slots[NextRandom(s.rng) % n]);
  }
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

// ---------------------------------------------------------------------------------------
// Snapshot file format (see proto/posh/v1/snapshot.proto).

constexpr char kMagic[8] = {'P', 'O', 'S', 'H', 'S', 'N', 'A', 'P'};
constexpr uint32_t kHeaderFormat = 1;
constexpr size_t kHeaderSize = 24;
constexpr uint32_t kSnapshotVersion = 1;

// CRC-32 (IEEE 802.3) from zlib: optimised even in sanitizer/debug builds.
uint32_t Crc32(std::string_view data) {
  uLong c = crc32(0L, Z_NULL, 0);
  const auto* p = reinterpret_cast<const Bytef*>(data.data());
  size_t n = data.size();
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    c = crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(c);
}

void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLe(std::string_view in, size_t off, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[off + i])) << (8 * i);
  return v;
}

Unexpected<Error> SnapError(SnapshotErrorCode code, const std::string& path,
                            const std::string& what) {
  return Fail(Error{code, "snapshot " + path + ": " + what});
}

std::string ErrnoText(const char* op) { return std::string(op) + ": " + std::strerror(errno); }

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void EncodeEntry(const Key& key, const Entry& e, pb::SnapEntry* out) {
  out->set_domain(key.domain);
  out->set_service(key.service);
  out->set_status(static_cast<uint32_t>(e.status));
  out->set_expires_at_ms(e.expires_at_ms);
  out->set_fetched_at_ms(e.fetched_at_ms);
  out->set_refresh_at_ms(e.refresh_at_ms);
  out->set_hard_limit_ms(e.hard_limit_ms);
  out->set_stale_until_ms(e.stale_until_ms);
  out->set_error(e.error);
  out->set_error_kind(e.error_kind);
  if (const core::PoshRecord* r = e.record.get()) {
    out->set_format(static_cast<uint32_t>(r->format));
    out->set_delegated_to(r->delegated_to);
    out->set_source_url(r->source_url);
    out->set_expires_seconds(r->expires_seconds);
    out->set_latest_not_after(r->latest_not_after);
    out->mutable_keys()->Reserve(static_cast<int>(r->keys.size()));
    for (const core::KeyMaterial& k : r->keys) {
      pb::SnapKey* sk = out->add_keys();
      sk->set_kid(k.kid);
      sk->set_key_type(k.kty);
      sk->set_not_after(k.not_after);
      sk->set_not_before(k.not_before);
      sk->set_has_certificate(k.has_certificate);
      for (const core::Fingerprint& f : k.fingerprints) {
        pb::SnapFingerprint* sf = sk->add_fingerprints();
        sf->set_alg(static_cast<uint32_t>(f.alg));
        sf->set_value(f.value.data(), f.value.size());
      }
      if (k.public_key) {
        sk->set_has_public_key(true);
        sk->set_pk_type(static_cast<uint32_t>(k.public_key->type));
        sk->set_pk_curve(k.public_key->curve);
        sk->set_pk_a(k.public_key->a.data(), k.public_key->a.size());
        sk->set_pk_b(k.public_key->b.data(), k.public_key->b.size());
      }
    }
  }
}

std::vector<uint8_t> ToBytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

// Returns an empty string on success, else why the entry is invalid.
std::string DecodeEntry(const pb::SnapEntry& in, Key* key, std::shared_ptr<const Entry>* out) {
  if (in.domain().empty()) return "empty domain";
  if (in.status() < 1 || in.status() > 3) return "unknown status " + std::to_string(in.status());
  if (in.error_kind() > 255) return "error_kind out of range";
  auto e = std::make_shared<Entry>();
  e->status = static_cast<EntryStatus>(in.status());
  e->error = in.error();
  e->error_kind = static_cast<uint8_t>(in.error_kind());
  e->fetched_at_ms = in.fetched_at_ms();
  e->expires_at_ms = in.expires_at_ms();
  e->refresh_at_ms = in.refresh_at_ms();
  e->hard_limit_ms = in.hard_limit_ms();
  e->stale_until_ms = in.stale_until_ms();
  if (e->status == EntryStatus::kFound) {
    if (in.format() > static_cast<uint32_t>(core::Format::kJwk)) {
      return "unknown format " + std::to_string(in.format());
    }
    auto r = std::make_shared<core::PoshRecord>();
    r->format = static_cast<core::Format>(in.format());
    r->delegated_to = in.delegated_to();
    r->source_url = in.source_url();
    r->expires_seconds = in.expires_seconds();
    r->latest_not_after = in.latest_not_after();
    r->keys.reserve(static_cast<size_t>(in.keys_size()));
    for (const pb::SnapKey& sk : in.keys()) {
      core::KeyMaterial& k = r->keys.emplace_back();
      k.kid = sk.kid();
      k.kty = sk.key_type();
      k.not_after = sk.not_after();
      k.not_before = sk.not_before();
      k.has_certificate = sk.has_certificate();
      k.fingerprints.reserve(static_cast<size_t>(sk.fingerprints_size()));
      for (const pb::SnapFingerprint& sf : sk.fingerprints()) {
        if (sf.alg() < static_cast<uint32_t>(core::HashAlg::kMd5) ||
            sf.alg() > static_cast<uint32_t>(core::HashAlg::kSha512)) {
          return "unknown hash algorithm " + std::to_string(sf.alg());
        }
        if (sf.value().size() > core::DigestValue::kMaxSize) {
          return "fingerprint value of " + std::to_string(sf.value().size()) + " bytes";
        }
        const auto* v = reinterpret_cast<const uint8_t*>(sf.value().data());
        k.fingerprints.push_back(
            core::Fingerprint{static_cast<core::HashAlg>(sf.alg()),
                              core::DigestValue(std::span<const uint8_t>(v, sf.value().size()))});
      }
      if (sk.has_public_key()) {
        if (sk.pk_type() > static_cast<uint32_t>(core::PublicKey::Type::kOther)) {
          return "unknown public key type " + std::to_string(sk.pk_type());
        }
        core::PublicKey pk;
        pk.type = static_cast<core::PublicKey::Type>(sk.pk_type());
        pk.curve = sk.pk_curve();
        pk.a = ToBytes(sk.pk_a());
        pk.b = ToBytes(sk.pk_b());
        k.public_key = std::make_shared<const core::PublicKey>(std::move(pk));
      }
    }
    e->record = std::move(r);
  } else if (in.keys_size() > 0) {
    return "keys on a non-found entry";
  }
  key->domain = in.domain();
  key->service = in.service();
  *out = std::move(e);
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Lifetimes (R16, R17, R19).

int64_t ServableUntilMs(const Entry& entry) {
  int64_t until = std::max(entry.expires_at_ms, entry.stale_until_ms);
  if (entry.hard_limit_ms > 0) until = std::min(until, entry.hard_limit_ms);
  return until;
}

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

// ---------------------------------------------------------------------------------------
// Store.

struct Store::Impl {
  explicit Impl(size_t n) : shard_count(std::max<size_t>(1, n)), shards(new Shard[shard_count]) {
    for (size_t i = 0; i < shard_count; ++i) shards[i].rng = Mix64(i + 1) | 1;
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
  for (size_t i = 0; i < impl_->shard_count; ++i)
    impl_->shards[i].cap = impl_->CapFor(i, max_entries);
}

Store::~Store() = default;

std::optional<Hit> Store::Get(const Key& key, int64_t now_ms) {
  const KeyRef ref{&key, HashKey(key.domain, key.service)};
  Shard& s = impl_->ShardFor(ref.hash);
  std::shared_lock lock(s.mu);
  auto it = s.map.find(ref);
  if (it == s.map.end()) return std::nullopt;
  Node& n = it->second;
  const Entry& e = *n.entry;
  if (now_ms >= ServableUntilMs(e)) return std::nullopt;
  // Recency: the shard clock only moves under the exclusive lock; store it only when it
  // changed, so hot entries do not bounce their cache line on every read.
  const uint64_t t = s.clock;
  if (n.tick.load(std::memory_order_relaxed) != t) n.tick.store(t, std::memory_order_relaxed);
  n.hits.fetch_add(1, std::memory_order_relaxed);
  std::optional<Hit> hit(std::in_place);
  hit->entry = n.entry;
  hit->stale = now_ms >= e.expires_at_ms;
  hit->needs_refresh = e.status == EntryStatus::kFound && now_ms >= e.refresh_at_ms;
  return hit;
}

std::shared_ptr<const Entry> Store::Peek(const Key& key) const {
  const KeyRef ref{&key, HashKey(key.domain, key.service)};
  Shard& s = impl_->ShardFor(ref.hash);
  std::shared_lock lock(s.mu);
  auto it = s.map.find(ref);
  if (it == s.map.end()) return nullptr;
  return it->second.entry;
}

namespace {

// Inserts or replaces under the shard's exclusive lock. `movable` (may be null) is `*ref.key`
// and may be moved from when a new node is created.
void PutInShard(Shard& s, const KeyRef& ref, Key* movable, std::shared_ptr<const Entry> entry) {
  const int64_t now_hint = entry->fetched_at_ms;
  std::shared_ptr<const Entry> old;  // released after the lock
  std::unique_lock lock(s.mu);
  // A Put takes an odd tick and leaves the clock one above it, so a later Get (which
  // stores the clock) ranks as more recent than this Put.
  s.clock += 2;
  const uint64_t t = s.clock - 1;
  auto it = s.map.find(ref);
  if (it != s.map.end()) {
    old = std::exchange(it->second.entry, std::move(entry));
    it->second.tick.store(t, std::memory_order_relaxed);
    return;
  }
  s.slots.reserve(s.slots.size() + 1);
  it = movable ? s.map.try_emplace(std::move(*movable)).first : s.map.try_emplace(*ref.key).first;
  MapValue* v = &*it;
  v->second.entry = std::move(entry);
  v->second.tick.store(t, std::memory_order_relaxed);
  v->second.slot = s.slots.size();
  s.slots.push_back(v);
  while (s.map.size() > s.cap) EvictOne(s, v, now_hint);
}

}  // namespace

void Store::Put(const Key& key, std::shared_ptr<const Entry> entry) {
  if (!entry) return;
  const KeyRef ref{&key, HashKey(key.domain, key.service)};
  PutInShard(impl_->ShardFor(ref.hash), ref, nullptr, std::move(entry));
}

bool Store::Evict(const Key& key) {
  const KeyRef ref{&key, HashKey(key.domain, key.service)};
  Shard& s = impl_->ShardFor(ref.hash);
  std::unique_lock lock(s.mu);
  auto it = s.map.find(ref);
  if (it == s.map.end()) return false;
  RemoveNode(s, &*it);
  return true;
}

size_t Store::Flush() {
  size_t n = 0;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    Map dropped;
    {
      std::unique_lock lock(s.mu);
      n += s.map.size();
      dropped.swap(s.map);
      s.slots.clear();
    }
  }
  return n;
}

size_t Store::Size() const {
  size_t n = 0;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    std::shared_lock lock(s.mu);
    n += s.map.size();
  }
  return n;
}

StoreStats Store::Stats() const {
  StoreStats st;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    std::shared_lock lock(s.mu);
    st.entries += s.map.size();
    st.evictions += s.evictions;
  }
  return st;
}

void Store::SetMaxEntries(size_t max_entries) {
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    std::unique_lock lock(s.mu);
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
    std::shared_lock lock(s.mu);
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
    lock.unlock();
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
// Persistence (R20).

Result<size_t> Store::Save(const std::string& path, int64_t now_ms) const {
  std::vector<std::pair<Key, std::shared_ptr<const Entry>>> items;
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    std::shared_lock lock(s.mu);
    items.reserve(items.size() + s.map.size());
    for (const auto& [k, node] : s.map) {
      if (now_ms >= ServableUntilMs(*node.entry)) continue;
      items.emplace_back(k, node.entry);
    }
  }
  std::sort(items.begin(), items.end(),
            [](const auto& a, const auto& b) { return KeyLess(a.first, b.first); });

  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 * 1024;
  arena_options.max_block_size = 4 * 1024 * 1024;
  google::protobuf::Arena arena(arena_options);
  pb::Snapshot& snap = *google::protobuf::Arena::CreateMessage<pb::Snapshot>(&arena);
  snap.set_version(kSnapshotVersion);
  snap.set_written_at_ms(now_ms);
  snap.mutable_entries()->Reserve(static_cast<int>(items.size()));
  for (const auto& [k, e] : items) EncodeEntry(k, *e, snap.add_entries());
  std::string payload;
  if (!snap.SerializeToString(&payload)) return SnapError(kSnapIo, path, "serialization failed");

  std::string file;
  file.reserve(kHeaderSize + payload.size());
  file.append(kMagic, sizeof(kMagic));
  PutLe(file, kHeaderFormat, 4);
  PutLe(file, Crc32(payload), 4);
  PutLe(file, payload.size(), 8);
  file += payload;

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return SnapError(kSnapIo, path, ErrnoText(("open " + tmp).c_str()));
  bool ok = WriteAll(fd, file);
  std::string why = ok ? "" : ErrnoText("write");
  if (ok && ::fsync(fd) != 0) {
    ok = false;
    why = ErrnoText("fsync");
  }
  if (::close(fd) != 0 && ok) {
    ok = false;
    why = ErrnoText("close");
  }
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    why = ErrnoText("rename");
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return SnapError(kSnapIo, path, why);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return SnapError(kSnapIo, path, ErrnoText(("open directory " + dir).c_str()));
  const bool dir_ok = ::fsync(dfd) == 0;
  const std::string dir_why = dir_ok ? "" : ErrnoText("fsync directory");
  ::close(dfd);
  if (!dir_ok) return SnapError(kSnapIo, path, dir_why);
  return items.size();
}

Result<size_t> Store::Load(const std::string& path, int64_t now_ms) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return size_t{0};
    return SnapError(kSnapIo, path, ErrnoText("open"));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = ErrnoText("fstat");
    ::close(fd);
    return SnapError(kSnapIo, path, why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return SnapError(kSnapIo, path, "not a regular file");
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = ErrnoText("read");
      ::close(fd);
      return SnapError(kSnapIo, path, why);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  data.resize(got);

  if (std::memcmp(data.data(), kMagic, std::min(data.size(), sizeof(kMagic))) != 0) {
    return SnapError(kSnapBadMagic, path, "not a poshd snapshot (bad magic)");
  }
  if (data.size() < kHeaderSize) {
    return SnapError(kSnapTruncated, path,
                     "truncated header (" + std::to_string(data.size()) + " bytes)");
  }
  const uint64_t format = GetLe(data, 8, 4);
  if (format != kHeaderFormat) {
    return SnapError(kSnapBadMagic, path, "unknown header format " + std::to_string(format));
  }
  const uint32_t crc = static_cast<uint32_t>(GetLe(data, 12, 4));
  const uint64_t length = GetLe(data, 16, 8);
  const uint64_t have = data.size() - kHeaderSize;
  if (have < length) {
    return SnapError(kSnapTruncated, path,
                     "truncated: header says " + std::to_string(length) +
                         " payload bytes, file has " + std::to_string(have));
  }
  if (have > length) {
    return SnapError(kSnapChecksum, path,
                     std::to_string(have - length) + " trailing bytes after the payload");
  }
  const std::string_view payload = std::string_view(data).substr(kHeaderSize);
  if (Crc32(payload) != crc)
    return SnapError(kSnapChecksum, path, "checksum mismatch (corrupt file)");

  if (payload.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return SnapError(kSnapParse, path,
                     "payload too large (" + std::to_string(payload.size()) + " bytes)");
  }
  // An arena: parsing and, above all, freeing 100 000 nested messages is much faster.
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 * 1024;
  arena_options.max_block_size = 4 * 1024 * 1024;
  google::protobuf::Arena arena(arena_options);
  pb::Snapshot& snap = *google::protobuf::Arena::CreateMessage<pb::Snapshot>(&arena);
  if (!snap.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return SnapError(kSnapParse, path, "payload is not a valid Snapshot message");
  }
  if (snap.version() != kSnapshotVersion) {
    return SnapError(kSnapVersion, path,
                     "unsupported snapshot version " + std::to_string(snap.version()) +
                         " (expected " + std::to_string(kSnapshotVersion) + ")");
  }
  std::vector<std::pair<Key, std::shared_ptr<const Entry>>> items;
  items.reserve(static_cast<size_t>(snap.entries_size()));
  for (int i = 0; i < snap.entries_size(); ++i) {
    Key key;
    std::shared_ptr<const Entry> entry;
    const std::string why = DecodeEntry(snap.entries(i), &key, &entry);
    if (!why.empty()) {
      return SnapError(kSnapBadEntry, path, "entry " + std::to_string(i) + ": " + why);
    }
    if (now_ms >= ServableUntilMs(*entry)) continue;  // expired: dropped (R20)
    items.emplace_back(std::move(key), std::move(entry));
  }
  data = std::string();
  for (size_t i = 0; i < impl_->shard_count; ++i) {
    Shard& s = impl_->shards[i];
    std::unique_lock lock(s.mu);
    const size_t want = std::min(s.cap, s.map.size() + items.size() / impl_->shard_count + 16);
    s.map.reserve(want);
    s.slots.reserve(want);
  }
  for (auto& [key, entry] : items) {
    const KeyRef ref{&key, HashKey(key.domain, key.service)};
    PutInShard(impl_->ShardFor(ref.hash), ref, &key, std::move(entry));
  }
  return items.size();
}

}  // namespace posh::cache
