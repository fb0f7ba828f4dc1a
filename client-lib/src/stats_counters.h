// The counters of a GetStatsResponse, by the names and in the order of `poshctl stats
// --json` (INTERFACE.md). A template over the message type: the library's hidden
// protobuf-lite copy of posh.v1 and poshctl's full one have the same accessors.
#pragma once

#include <array>
#include <cstdint>
#include <utility>

namespace posh::client_rpc {

template <class GetStatsResponse>
std::array<std::pair<const char*, uint64_t>, 27> StatsCounters(const GetStatsResponse& s) {
  return {{{"lookups", s.lookups()},
           {"verifies", s.verifies()},
           {"cache_hits", s.cache_hits()},
           {"cache_misses", s.cache_misses()},
           {"fetches", s.fetches()},
           {"coalesced", s.coalesced()},
           {"entries", s.entries()},
           {"in_flight", s.in_flight()},
           {"errors", s.errors()},
           {"not_found", s.not_found()},
           {"refreshes", s.refreshes()},
           {"stale_served", s.stale_served()},
           {"evictions", s.evictions()},
           {"invalid_requests", s.invalid_requests()},
           {"queued", s.queued()},
           {"dropped", s.dropped()},
           {"displaced", s.displaced()},
           {"reference_shared", s.reference_shared()},
           {"reference_fetches", s.reference_fetches()},
           {"connections", s.connections()},
           {"connections_refused", s.connections_refused()},
           {"requests_too_large", s.requests_too_large()},
           {"l2_hits", s.l2_hits()},
           {"l2_misses", s.l2_misses()},
           {"l2_writes", s.l2_writes()},
           {"l2_errors", s.l2_errors()},
           {"l2_bad_macs", s.l2_bad_macs()}}};
}

}  // namespace posh::client_rpc
