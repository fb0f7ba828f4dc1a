#include "server/answer_cache.h"

#include <cstdint>
#include <vector>

namespace posh::server {

size_t AnswerCache::Cost(const Answer& a) {
  // The bytes plus a rough overhead: the map node and slice header (~190 B) and the
  // dropped entry's block a weak reference keeps allocated (~130 B with make_shared).
  return a.bytes.size() + a.key.domain.size() + a.key.service.size() + 320;
}

size_t AnswerCache::ShardIndex(const cache::Entry* entry) {
  // Fibonacci hashing of the address: its low bits are zeros in a pattern that depends on
  // the allocator (alignment, sanitizer redzones), the high bits of the product are not.
  static_assert(kShards == 16);
  return static_cast<size_t>((reinterpret_cast<uintptr_t>(entry) * 0x9E3779B97F4A7C15ull) >> 60);
}

const AnswerCache::Shard& AnswerCache::ShardFor(const cache::Entry* entry) const {
  return shards_[ShardIndex(entry)];
}

AnswerCache::Shard& AnswerCache::ShardFor(const cache::Entry* entry) {
  return shards_[ShardIndex(entry)];
}

bool AnswerCache::Get(const cache::Key& key, const std::shared_ptr<const cache::Entry>& entry,
                      grpc::Slice* out) const {
  const Shard& s = ShardFor(entry.get());
  util::ReaderMutexLock lock(&s.mu);
  auto it = s.map.find(entry.get());
  if (it == s.map.end()) return false;
  const Answer& a = it->second;
  // Same owner: the very entry the answer was made for, not one at a recycled address.
  if (a.entry.owner_before(entry) || entry.owner_before(a.entry) || a.key != key) return false;
  *out = it->second.bytes;  // a reference, not a copy of the bytes
  return true;
}

void AnswerCache::Put(const cache::Key& key, const std::shared_ptr<const cache::Entry>& entry,
                      const grpc::Slice& bytes) {
  if (!entry || bytes.size() > kMaxAnswerBytes) return;
  Answer answer{entry, key, bytes};
  const size_t cost = Cost(answer);
  const cache::Entry* id = entry.get();
  Shard& s = ShardFor(id);
  std::vector<Answer> dropped;  // released after the lock
  util::WriterMutexLock lock(&s.mu);
  if (auto it = s.map.find(id); it != s.map.end()) {
    s.bytes -= Cost(it->second);
    dropped.push_back(std::move(it->second));
    s.map.erase(it);
  }
  while (!s.map.empty() && s.bytes + cost > kBytesPerShard) {
    auto victim = s.map.begin();
    s.bytes -= Cost(victim->second);
    dropped.push_back(std::move(victim->second));
    s.map.erase(victim);
  }
  s.bytes += cost;
  s.map.emplace(id, std::move(answer));
}

size_t AnswerCache::Size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    util::ReaderMutexLock lock(&s.mu);
    n += s.map.size();
  }
  return n;
}

}  // namespace posh::server
