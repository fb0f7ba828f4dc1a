#include "cache/eviction.h"

namespace posh::cache {

uint64_t NextRandom(uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

uint64_t EvictionScore(uint64_t tick, int64_t servable_until_ms, int64_t now_hint) {
  if (now_hint > 0 && now_hint >= servable_until_ms) return 0;
  return tick + 1;
}

}  // namespace posh::cache
