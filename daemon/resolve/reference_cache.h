// The reference-target cache (issue 13, delegation fan-in). A hosting provider publishes
// one document that thousands of customer domains reference by `url` (R11); this keeps the
// terminal document behind such a URL for its own lifetime, so N delegating domains cost
// one fetch of the shared target while it is fresh. Loop thread only (owned by a Resolver);
// pure data, the time is a parameter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/document.h"

namespace posh::resolve {

// One redirect answered while retrieving a reference target. Every delegating job replays
// the hops against its own R6 state (redirect budget, visited URLs), so sharing the fetch
// changes nothing in what a job accepts.
struct RedirectHop {
  std::string from;      // URL that answered with the redirect
  long status = 0;       // 301/302/303/307/308
  std::string location;  // raw Location header
};

// A reference target retrieved successfully: a terminal document (a fingerprints document
// or a JWK Set, never another reference) and how it was reached.
struct ReferenceTarget {
  std::shared_ptr<const core::Document> document;
  std::vector<RedirectHop> hops;
  std::string final_url;      // after redirects: source_url / delegated_to of the records
  size_t body_size = 0;       // a job with a lower body limit (R7) must not use it
  int64_t fetched_at_ms = 0;  // injected Clock
  int64_t expires_at_ms = 0;  // fresh while now < expires_at_ms
};

// When a target fetched at `fetched_at_ms` stops being reusable: after its own `expires`
// (R10; a JWK Set without one is bounded by the cap alone), after `max_ttl_ms`, and as soon
// as the earliest certificate of a usable JWK key expires, since parsing again then would
// find that key unusable (R12, R14). Returns <= fetched_at_ms when it must not be kept.
int64_t ReferenceTargetExpiry(const core::Document& doc, int64_t fetched_at_ms, int64_t max_ttl_ms);

// Bounded map from the exact reference URL to its target, least recently used evicted.
class ReferenceTargetCache {
 public:
  explicit ReferenceTargetCache(size_t capacity) : capacity_(capacity) {}
  ReferenceTargetCache(const ReferenceTargetCache&) = delete;
  ReferenceTargetCache& operator=(const ReferenceTargetCache&) = delete;

  // The fresh target for `url`, or null. An expired entry is dropped here.
  std::shared_ptr<const ReferenceTarget> Find(const std::string& url, int64_t now_ms);
  // Replaces any entry for `url`; evicts the least recently used beyond the capacity.
  // Capacity 0 keeps nothing.
  void Insert(const std::string& url, std::shared_ptr<const ReferenceTarget> target);
  void SetCapacity(size_t capacity);

  size_t size() const { return lru_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  struct Node {
    std::string url;
    std::shared_ptr<const ReferenceTarget> target;
  };
  using List = std::list<Node>;  // most recently used first; nodes never move in memory

  void EvictToCapacity();

  List lru_;
  std::unordered_map<std::string_view, List::iterator> index_;  // views into lru_'s urls
  size_t capacity_;
};

}  // namespace posh::resolve
