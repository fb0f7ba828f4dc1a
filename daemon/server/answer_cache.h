// Serialised Lookup answers of recently served cache hits, so that a hit on a hot entry
// costs a reference to bytes already on hand instead of building and serialising a
// LookupResponse (the answer to a hit depends only on the entry and its key, as long as it
// is not stale). Bounded in bytes; keyed by the entry's identity: an entry is immutable
// and a refreshed record is a new entry, so a kept answer is never out of date. A kept
// answer holds a weak reference to its entry: it does not keep a dropped entry's record
// alive, and a hit is checked against the owner (control block) of the caller's entry,
// which cannot be reused while the weak reference exists, so a new entry at a recycled
// address never gets an old answer.
#pragma once

#include <grpcpp/support/slice.h>

#include <cstddef>
#include <memory>
#include <unordered_map>

#include "cache/store.h"
#include "util/mutex.h"

namespace posh::server {

class AnswerCache {
 public:
  static constexpr size_t kShards = 16;
  static constexpr size_t kBytesPerShard = 256 * 1024;  // 4 MiB in all
  static constexpr size_t kMaxAnswerBytes = 16 * 1024;  // larger answers are not kept

  // The kept answer for `entry` served under `key`; false when there is none.
  bool Get(const cache::Key& key, const std::shared_ptr<const cache::Entry>& entry,
           grpc::Slice* out) const;
  // Keeps `bytes` as the answer for `entry` under `key`, dropping arbitrary older answers
  // of the shard to stay within its budget.
  void Put(const cache::Key& key, const std::shared_ptr<const cache::Entry>& entry,
           const grpc::Slice& bytes);
  size_t Size() const;

 private:
  struct Answer {
    std::weak_ptr<const cache::Entry> entry;
    cache::Key key;  // checked on every hit: the identity alone would trust the caller
    grpc::Slice bytes;
  };
  struct alignas(64) Shard {
    mutable util::SharedMutex mu;
    std::unordered_map<const cache::Entry*, Answer> map ABSL_GUARDED_BY(mu);
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
  };
  static size_t Cost(const Answer& a);
  static size_t ShardIndex(const cache::Entry* entry);
  const Shard& ShardFor(const cache::Entry* entry) const;
  Shard& ShardFor(const cache::Entry* entry);

  Shard shards_[kShards];
};

}  // namespace posh::server
