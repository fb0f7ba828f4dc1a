#include "resolve/reference_cache.h"

#include <algorithm>
#include <limits>
#include <variant>

namespace posh::resolve {

int64_t ReferenceTargetExpiry(const core::Document& doc, int64_t fetched_at_ms,
                              int64_t max_ttl_ms) {
  int64_t expires_s = 0;
  int64_t earliest_not_after = std::numeric_limits<int64_t>::max();
  if (const auto* fp = std::get_if<core::FingerprintsDocument>(&doc)) {
    expires_s = fp->expires;
  } else if (const auto* set = std::get_if<core::JwkSet>(&doc)) {
    expires_s = set->expires.value_or(0);
    for (const auto& key : set->keys) {
      if (key.usable && key.cert)
        earliest_not_after = std::min(earliest_not_after, key.cert->not_after);
    }
  } else {
    return fetched_at_ms;  // a reference is never a target worth keeping (R11)
  }
  int64_t ttl_ms = std::max<int64_t>(0, max_ttl_ms);
  if (expires_s > 0 && expires_s <= ttl_ms / 1000) ttl_ms = expires_s * 1000;  // no overflow
  int64_t until = fetched_at_ms + ttl_ms;
  // A key stays usable through the second `not_after` (document.cc drops it when
  // now > not_after); a date too far away to count in milliseconds bounds nothing.
  if (earliest_not_after < std::numeric_limits<int64_t>::min() / 1000 + 1) return fetched_at_ms;
  if (earliest_not_after < std::numeric_limits<int64_t>::max() / 1000 - 1) {
    until = std::min(until, (earliest_not_after + 1) * 1000);
  }
  return until;
}

std::shared_ptr<const ReferenceTarget> ReferenceTargetCache::Find(const std::string& url,
                                                                  int64_t now_ms) {
  auto it = index_.find(url);
  if (it == index_.end()) return nullptr;
  List::iterator node = it->second;
  if (now_ms >= node->target->expires_at_ms) {
    index_.erase(it);
    lru_.erase(node);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, node);
  return node->target;
}

void ReferenceTargetCache::Insert(const std::string& url,
                                  std::shared_ptr<const ReferenceTarget> target) {
  if (capacity_ == 0) return;
  auto it = index_.find(url);
  if (it != index_.end()) {
    it->second->target = std::move(target);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(Node{url, std::move(target)});
  index_.emplace(std::string_view(lru_.front().url), lru_.begin());
  EvictToCapacity();
}

void ReferenceTargetCache::SetCapacity(size_t capacity) {
  capacity_ = capacity;
  EvictToCapacity();
}

void ReferenceTargetCache::EvictToCapacity() {
  while (lru_.size() > capacity_) {
    index_.erase(std::string_view(lru_.back().url));
    lru_.pop_back();
  }
}

}  // namespace posh::resolve
