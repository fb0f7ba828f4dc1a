// The second tier: a cache shared by the daemons of a fleet, asked on a local miss before
// fetching (issue 16). Optional: without --redis no tier exists and nothing changes.
// Loop thread only (the service's retrieval state lives there).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "cache/entry.h"
#include "cache/lifetime.h"

namespace posh::l2 {

// Counters, read by the stats (any thread).
struct L2Stats {
  std::atomic<uint64_t> hits{0};      // an authenticated, still servable entry was read
  std::atomic<uint64_t> misses{0};    // absent, or refused by the local clock (expired)
  std::atomic<uint64_t> writes{0};    // SETs acknowledged
  std::atomic<uint64_t> errors{0};    // not connected, read budget ran out, refused command
                                      // (maxmemory), malformed authenticated value
  std::atomic<uint64_t> bad_macs{0};  // a value whose MAC is missing or wrong: ignored
};

class SecondTier {
 public:
  // nullptr: a miss (absent, refused, timed out, error). Never run from inside Get.
  using GetCallback = std::function<void(std::shared_ptr<const cache::Entry>)>;
  virtual ~SecondTier() = default;
  // False when the tier cannot be asked now (not connected, too much outstanding): the
  // caller fetches at once and `cb` is dropped. True: `cb` runs later, once, on the loop,
  // within the read budget.
  virtual bool Get(const cache::Key& key, GetCallback cb) = 0;
  // Fire and forget: a fresh found / not-found entry, kept for its remaining lifetime.
  virtual void Put(const cache::Key& key, const cache::Entry& entry) = 0;
  // Reloaded lifetimes (SIGHUP): entries read afterwards are judged by them.
  virtual void SetLifetimes(const cache::Lifetimes& lifetimes) = 0;
};

}  // namespace posh::l2
