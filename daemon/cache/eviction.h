// Sampled LRU (approximate least-recently-used eviction, as Redis does it): each element
// carries a recency tick; to evict, a few elements are sampled at random and the least
// recently used of them goes, those already past their servable time first. O(1) per
// eviction, no list to relink on a hit: a hit only stores a tick, under a shared lock.
//
// Not synchronised: the owner (a Store shard) guards it with its lock. Every member that
// changes the policy's state needs the owner's exclusive lock; clock() and Touch() are safe
// under the shared lock (the clock only moves under the exclusive lock; ticks are atomic).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace posh::cache {

// The per-element part of the policy, embedded in each stored element.
struct LruHook {
  std::atomic<uint64_t> tick{0};  // last use: the owner's clock value (approximate LRU)
  size_t slot = 0;                // index in SampledLru's dense array
};

// How many elements an eviction compares (all of them when there are at most one more).
inline constexpr size_t kEvictionSample = 16;

// xorshift64: the sampling's random source. `state` must not be 0.
uint64_t NextRandom(uint64_t& state);

// An element ranks for eviction by its tick (lower = older); one already past its
// servable time at `now_hint` (> 0) ranks below every live one.
uint64_t EvictionScore(uint64_t tick, int64_t servable_until_ms, int64_t now_hint);

// `Traits` tells the policy how to reach an element's hook and when it stops being
// servable:  static LruHook& Hook(Element&);  static int64_t ServableUntilMs(const Element&);
// Elements must not move while tracked (the owner's map gives stable pointers).
template <typename Element, typename Traits>
class SampledLru {
 public:
  void Seed(uint64_t seed) { rng_ = seed != 0 ? seed : 1; }

  // The recency clock; a hit stores it in the element (Touch).
  uint64_t clock() const { return clock_; }
  // A write (insert or replace) takes an odd tick and leaves the clock one above it, so a
  // later hit (which stores the clock) ranks as more recent than this write.
  uint64_t TickForWrite() {
    clock_ += 2;
    return clock_ - 1;
  }
  // Marks a hit. Stores only when the tick changed, so hot elements do not bounce their
  // cache line on every read.
  static void Touch(Element& e, uint64_t clock) {
    std::atomic<uint64_t>& tick = Traits::Hook(e).tick;
    if (tick.load(std::memory_order_relaxed) != clock) tick.store(clock, std::memory_order_relaxed);
  }
  static void Stamp(Element& e, uint64_t tick) {
    Traits::Hook(e).tick.store(tick, std::memory_order_relaxed);
  }

  void Reserve(size_t n) { slots_.reserve(n); }
  // Tracks a new element with the given tick.
  void Add(Element* e, uint64_t tick) {
    LruHook& hook = Traits::Hook(*e);
    hook.tick.store(tick, std::memory_order_relaxed);
    hook.slot = slots_.size();
    slots_.push_back(e);
  }
  // Stops tracking `e` (before the owner destroys it). O(1): the last slot takes its place.
  void Remove(Element* e) {
    const size_t slot = Traits::Hook(*e).slot;
    Element* last = slots_.back();
    slots_[slot] = last;
    Traits::Hook(*last).slot = slot;
    slots_.pop_back();
  }
  void Clear() { slots_.clear(); }

  // The element to evict: the least recently used of a sample (of all of them when few),
  // never `keep`; those past their servable time at `now_hint` (> 0) first. nullptr when
  // there is no other element.
  Element* PickVictim(const Element* keep, int64_t now_hint) {
    Element* victim = nullptr;
    uint64_t best = std::numeric_limits<uint64_t>::max();
    auto consider = [&](Element* e) {
      if (e == keep) return;
      const uint64_t score = EvictionScore(Traits::Hook(*e).tick.load(std::memory_order_relaxed),
                                           Traits::ServableUntilMs(*e), now_hint);
      if (victim == nullptr || score < best) {
        victim = e;
        best = score;
      }
    };
    const size_t n = slots_.size();
    if (n <= kEvictionSample + 1) {
      for (Element* e : slots_) consider(e);
    } else {
      for (size_t i = 0; i < kEvictionSample; ++i) consider(slots_[NextRandom(rng_) % n]);
    }
    return victim;
  }

 private:
  // Dense array of the tracked elements: O(1) random sampling.
  std::vector<Element*> slots_;
  uint64_t clock_ = 0;
  uint64_t rng_ = 0x2545f4914f6cdd1dULL;
};

}  // namespace posh::cache
